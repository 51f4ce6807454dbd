"""`make demo`: a whole ceremony on this machine, printed step by step.

A real notary-server on loopback (TLS, memory storage), separate offline and
online homes, keys generated offline, a repository initialised with two
targets, the request carried to the offline half as QR images (with frames
dropped), reviewed and signed, the signatures carried back as one QR image,
published; then a routine change signed against the offline trust state; and
the result listed with the real `notary` client. No prompts.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.notary_env import PASSPHRASE, start_server  # noqa: E402

BIN = Path(sys.executable).parent


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*cmd: str, env: dict[str, str]) -> str:
    shown = " ".join(c if " " not in c else repr(c) for c in cmd)
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, so messages appear in the order they were made
        text=True,
        timeout=300,
    )
    if proc.stdout.strip():
        print(proc.stdout.rstrip())
    if proc.returncode != 0:
        raise SystemExit(f"demo step failed with exit {proc.returncode}")
    return proc.stdout


def main() -> None:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ceremony-demo-"))
    gun = "demo.example.com/acme/app"
    step(
        "Start a real notary-server on 127.0.0.1 (TLS with a throwaway certificate, memory storage)"
    )
    server = start_server(work / "server")
    print(f"notary-server at {server.url}")
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            "CEREMONY_HOME": str(work / "offline-home"),
            "CEREMONY_ONLINE_HOME": str(work / "online-home"),
            "CEREMONY_SERVER": server.url,
            "CEREMONY_TLS_CA": str(server.ca),
            "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
            "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
        }
    )
    try:
        step("Offline: generate the root and targets keys, export their public halves")
        run("ceremony", "key", "generate", "root", "--gun", gun, env=env)
        run("ceremony", "key", "generate", "targets", "--gun", gun, env=env)
        run("ceremony", "key", "list", env=env)
        run(
            "ceremony",
            "key",
            "export-public",
            "--gun",
            gun,
            "--out",
            str(work / "public-keys.json"),
            env=env,
        )

        step("Online: stage a new repository and two targets (no private key on this side)")
        for name, text in (("app-1.0", "release 1.0\n"), ("app-1.1", "release 1.1\n")):
            (work / f"{name}.txt").write_text(text)
        run(
            "ceremony-online", "init", gun, "--public-keys", str(work / "public-keys.json"), env=env
        )
        run("ceremony-online", "add", gun, "app-1.0", str(work / "app-1.0.txt"), env=env)
        run("ceremony-online", "add", gun, "app-1.1", str(work / "app-1.1.txt"), env=env)
        run("ceremony-online", "status", gun, env=env)

        step("Online: export the request as QR frames (PNG images)")
        frames = work / "request-qr"
        run("ceremony-online", "export", gun, "--qr-out", str(frames), env=env)
        pngs = sorted(frames.glob("*.png"))
        dropped = random.Random(7).sample(pngs, len(pngs) // 5) if len(pngs) > 4 else []
        for p in dropped:
            p.unlink()
        print(f"(the camera missed {len(dropped)} of {len(pngs)} frames)")

        step("Offline: review the request from the QR images, then sign it")
        run("ceremony", "review", "--qr", str(frames), env=env)
        sig_qr = work / "signatures-qr"
        run("ceremony", "sign", "--qr", str(frames), "--qr-out", str(sig_qr), "--yes", env=env)

        step(
            "Online: read the signatures QR code, verify, publish, and check what the server serves"
        )
        run("ceremony-online", "publish", "--qr", str(sig_qr), env=env)

        step(
            "Routine change: stage a new release, carry it over by QR, sign against the offline trust state"
        )
        (work / "app-1.2.txt").write_text("release 1.2\n")
        run("ceremony-online", "add", gun, "app-1.2", str(work / "app-1.2.txt"), env=env)
        frames2 = work / "request-2-qr"
        run("ceremony-online", "export", gun, "--qr-out", str(frames2), env=env)
        run(
            "ceremony",
            "sign",
            "--qr",
            str(frames2),
            "--qr-out",
            str(work / "signatures-2-qr"),
            "--yes",
            env=env,
        )
        run("ceremony-online", "publish", "--qr", str(work / "signatures-2-qr"), env=env)

        step("Anyone: the real notary client lists what was signed")
        run(
            "notary",
            "-s",
            server.url,
            "--tlscacert",
            str(server.ca),
            "-d",
            str(work / "notary-trust"),
            "list",
            gun,
            env=env,
        )
        print(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
