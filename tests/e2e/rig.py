"""Drive both real CLIs (`ceremony`, `ceremony-online`) as subprocesses against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ceremony.core.documents import PublicKeysDocument
from ceremony.core.keys import key_fingerprint
from tests.notary_env import PASSPHRASE, NotaryServer

BIN = Path(sys.executable).parent


class Rig:
    """One GUN, one offline home and one online home; `run` asserts the exit code."""

    def __init__(self, server: NotaryServer, tmp: Path, gun: str) -> None:
        self.gun = gun
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env.update(
            {
                "PATH": f"{BIN}:{os.environ['PATH']}",
                "CEREMONY_HOME": str(tmp / "offline"),
                "CEREMONY_ONLINE_HOME": str(tmp / "online"),
                "CEREMONY_SERVER": server.url,
                "CEREMONY_TLS_CA": str(server.ca),
                "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
                "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
                "NOTARY_DELEGATION_PASSPHRASE": PASSPHRASE,
                "COLUMNS": "200",
            }
        )

    def run(self, *cmd: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        return self.run_env(self.env, *cmd, code=code)

    def setup_repository(self) -> None:
        pub = self.tmp / "public-keys.json"
        self.run("ceremony", "key", "generate", "root", "--gun", self.gun)
        self.run("ceremony", "key", "generate", "targets", "--gun", self.gun)
        self.run("ceremony", "key", "export-public", "--gun", self.gun, "--out", str(pub))
        self.run("ceremony-online", "init", self.gun, "--public-keys", str(pub))

    def offline(self, home: Path) -> dict[str, str]:
        """The environment of another keyholder's offline machine."""
        return dict(self.env, CEREMONY_HOME=str(home))

    def run_env(
        self, env: dict[str, str], *cmd: str, code: int = 0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == code, f"{cmd} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


def one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    """The single error line a failing command must print (and no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def full_ceremony(rig: Rig, name: str, gun: str | None = None, *sign_args: str) -> None:
    """Export what is staged, sign it offline with `--yes` (and `sign_args`), publish it."""
    gun = gun or rig.gun
    request, signatures = rig.tmp / f"{name}.request.json", rig.tmp / f"{name}.sig"
    rig.run("ceremony-online", "export", gun, "--out", str(request))
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes", *sign_args)
    rig.run("ceremony-online", "publish", str(signatures))


def publish_new(server: NotaryServer, tmp_path: Path, gun: str) -> Rig:
    """A repository initialised and published through a full ceremony, with one target."""
    rig = Rig(server, tmp_path, gun)
    rig.setup_repository()
    stage_text_target(rig, "a", "a\n")
    full_ceremony(rig, "init")
    return rig


def export_change(rig: Rig, name: str) -> Path:
    """Stage target `name` and export the request for it."""
    (rig.tmp / f"{name}.txt").write_text(f"{name}\n")
    rig.run("ceremony-online", "add", rig.gun, name, str(rig.tmp / f"{name}.txt"))
    out = rig.tmp / f"{name}.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(out))
    return out


def fingerprints(public_keys: Path) -> dict[str, list[str]]:
    """Role -> key fingerprints of a public keys document: what a keyholder reads aloud for
    the ceremony record (`ceremony key generate` prints it too)."""
    document = PublicKeysDocument.from_bytes(public_keys.read_bytes())
    out: dict[str, list[str]] = {}
    for entry in document.keys:
        out.setdefault(entry.role, []).append(key_fingerprint(entry.key))
    return out


def expect_keys(*fps: str) -> list[str]:
    """`--expect-key FP` options for `ceremony sign`."""
    return [arg for fp in fps for arg in ("--expect-key", fp)]


def stage_text_target(rig: Rig, name: str, text: str, gun: str | None = None) -> None:
    path = rig.tmp / f"{name}.txt"
    path.write_text(text)
    rig.run("ceremony-online", "add", gun or rig.gun, name, str(path))


def new_key(rig: Rig, role: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """A new `role` key in an offline home (`env`'s, else the rig's) for the rig's GUN, and
    its public keys file (what a keyholder carries to the online machine)."""
    env = env or rig.env
    key_id = rig.run_env(env, "ceremony", "key", "generate", role, "--gun", rig.gun).stdout
    key_id = key_id.split()[-1]
    pub = rig.tmp / f"{role}-{key_id[:8]}.json"
    rig.run_env(
        env,
        "ceremony",
        "key",
        "export-public",
        "--gun",
        rig.gun,
        "--key",
        key_id,
        "--out",
        str(pub),
    )
    return key_id, pub


def offline_delegation(rig: Rig, *paths: str, role: str = "targets/releases") -> str:
    """A delegation whose key is made in the offline home, published through a ceremony that
    accepts it (paths `paths`, or all paths); the key's id."""
    key_id, pub = new_key(rig, "delegation")
    scope = [arg for p in paths for arg in ("--path", p)] or ["--all-paths"]
    rig.run(
        "ceremony-online", "delegation", "add", rig.gun, role, "--public-keys", str(pub), *scope
    )
    full_ceremony(rig, "delegation", None, "--accept", role)
    return key_id
