"""Making and reading share sheets (SLIP-39, the PDF, the QR code) and sealing a home backup
load no networking module: these run on the air-gapped machine."""

from __future__ import annotations

import subprocess
import sys

from tests.test_airgap import FORBIDDEN, ROOT

EXERCISE = """
import sys
from datetime import UTC, datetime
sys.path.insert(0, {root!r})
from ceremony.offline.custody import make_sheets
from ceremony.offline.homebackup import HomeArchive, HomeFile, seal, unseal
from ceremony.offline.sheets import KeyFacts, parse_sheet, sheet_pdf, sheet_text
from ceremony.signing.private import PrivateKey
key = PrivateKey.generate_ecdsa()
facts = KeyFacts(key.canonical_id, "0" * 64, "targets", "ecdsa", {{"example.com/a": None}})
sheets = make_sheets(key, facts, count=3, threshold=2, share_passphrase="pass phrase",
                     now=datetime.now(UTC))
assert sheet_pdf(sheets[0]).startswith(b"%PDF")
assert parse_sheet(sheet_text(sheets[1]), "sheet").words == sheets[1].words
archive = HomeArchive("now", {{"keys/x.json": HomeFile(0o600, b"{{}}")}})
assert unseal(seal(archive, "passphrase"), "passphrase") == archive
bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in {forbidden!r}))
print("LOADED", ",".join(bad))
sys.exit(1 if bad else 0)
"""


def test_backups_load_no_network_module() -> None:
    code = EXERCISE.format(root=str(ROOT), forbidden=FORBIDDEN)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "LOADED"
