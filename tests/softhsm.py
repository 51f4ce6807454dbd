"""SoftHSM2 tokens for tests: each test gets its own token directory and SOFTHSM2_CONF.

SoftHSM reads its configuration once per process, so the tests never load the module
themselves: `ceremony` runs as a subprocess, and token contents are read by a small
python-pkcs11 script in a subprocess too (`objects`, `destroy`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "246810"
SO_PIN = "13579246"

_LIST = """
import json, sys, pkcs11
from pkcs11 import Attribute
label, pin, destroy = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]) if len(sys.argv) > 3 else None
lib = pkcs11.lib({module!r})
token = lib.get_token(token_label=label)
out = []
def get(obj, attr):
    try:
        value = obj[attr]
    except pkcs11.PKCS11Error:
        return None
    return value.hex() if isinstance(value, bytes) else value if isinstance(value, (bool, str)) else int(value)
with token.open(rw=True, user_pin=pin) as session:
    for obj in session.get_objects({{}}):
        if destroy is not None and get(obj, Attribute.ID) == destroy.hex():
            obj.destroy()
            continue
        out.append({{
            "class": get(obj, Attribute.CLASS),
            "id": get(obj, Attribute.ID),
            "label": get(obj, Attribute.LABEL),
            "sensitive": get(obj, Attribute.SENSITIVE),
            "extractable": get(obj, Attribute.EXTRACTABLE),
            "never_extractable": get(obj, Attribute.NEVER_EXTRACTABLE),
            "local": get(obj, Attribute.LOCAL),
            "value": get(obj, Attribute.VALUE),
        }})
print(json.dumps(out))
"""

CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 1, 2, 3


@dataclass(frozen=True)
class SoftHsm:
    """One SoftHSM2 token directory and the configuration file that points at it."""

    tokens: Path
    conf: Path

    def env(self) -> dict[str, str]:
        """What `ceremony` needs to use this token: the configuration, the module, the PIN."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "CEREMONY_PKCS11_MODULE": MODULE,
            "CEREMONY_PKCS11_PIN": PIN,
        }

    def util(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["softhsm2-util", *args],
            env={"SOFTHSM2_CONF": str(self.conf), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def init_token(self, label: str) -> None:
        self.util("--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN)

    def _script(self, label: str, *extra: str) -> list[dict[str, object]]:
        proc = subprocess.run(
            [sys.executable, "-c", _LIST.format(module=MODULE), label, PIN, *extra],
            env={"SOFTHSM2_CONF": str(self.conf)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result: list[dict[str, object]] = json.loads(proc.stdout)
        return result

    def objects(self, label: str) -> list[dict[str, object]]:
        """Every object on the token (after logging in), with the attributes tests check."""
        return self._script(label)

    def destroy(self, label: str, key_id: str) -> None:
        """Remove every object with CKA_ID `key_id` (hex) from the token."""
        self._script(label, key_id)


def make_softhsm(directory: Path) -> SoftHsm:
    """A fresh, empty SoftHSM2 token directory under `directory`, with its own configuration."""
    tokens = directory / "softhsm-tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    return SoftHsm(tokens, conf)
