"""A fleet in one ceremony: N repositories x T targets refreshed in one batch, against a local
notary-server, beside N single ceremonies (extrapolated from a measured sample).

Setup (not timed): one root key and one targets key certified for every repository, the
repositories created in one batch ceremony. Timed, as whole commands (process start
included): the refresh of root and targets for every repository (stage + thin export),
the offline review + sign (wall time and peak memory of the process, from os.wait4),
and the batch publish. Then `--sample` repositories go through today's single-repository
ceremony (refresh, export, sign, publish: four commands each) and the per-repository
time is multiplied by N.

    .venv/bin/python bench/fleet.py [--repos 1000] [--targets 100] [--sample 10] [--jobs 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ceremony.core.changes import AddTarget  # noqa: E402
from ceremony.core.documents import PublicKeysDocument  # noqa: E402
from ceremony.core.gun import gun_folder  # noqa: E402
from ceremony.core.metadata import FileMeta  # noqa: E402
from online.client.config import ServerConfig  # noqa: E402
from online.client.http import TrustServer  # noqa: E402
from online.home import Home  # noqa: E402
from online.operations import stage_init  # noqa: E402
from tests.notary_env import PASSPHRASE, start_server  # noqa: E402

BIN = Path(sys.executable).parent


def run(env: dict[str, str], *cmd: str) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB) of one command, which must succeed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # files, not pipes: a chatty command never blocks
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            err.seek(0)
            raise SystemExit(
                f"{' '.join(cmd)} failed: {out.read().decode()[-2000:]}{err.read().decode()[-2000:]}"
            )
    return elapsed, usage.ru_maxrss


def setup(env: dict[str, str], work: Path, guns: list[str], targets: int, jobs: int) -> None:
    """The fleet, published, with `targets` targets each (untimed)."""
    root = subprocess.run(
        [BIN / "ceremony", "key", "generate", "root", "--gun", guns[0]],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tkey = subprocess.run(
        [BIN / "ceremony", "key", "generate", "targets", "--gun", guns[0]],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    pub = work / "pub"
    every = [a for g in guns for a in ("--gun", g)]
    if len(guns) > 1:
        run(env, str(BIN / "ceremony"), "key", "certify", root, *every[2:])
    run(
        env, str(BIN / "ceremony"), "key", "export-public", *every,
        "--key", root, "--key", tkey, "--out", str(pub),
    )  # fmt: skip
    home = Home(Path(env["CEREMONY_ONLINE_HOME"]))
    config = ServerConfig(url=env["CEREMONY_SERVER"], tls_ca=Path(env["CEREMONY_TLS_CA"]))

    def one(gun: str) -> None:
        keys = PublicKeysDocument.from_bytes((pub / f"{gun_folder(gun)}.json").read_bytes())
        stage_init(home, server, gun, keys)
        home.repository(gun).stage(
            [
                AddTarget("targets", f"pkg/{i:04d}", FileMeta.for_bytes(f"{gun} {i}".encode()))
                for i in range(targets)
            ]
        )

    # One at a time: notary-server's in-memory key store can crash under concurrent key
    # creation ("concurrent map writes"); the timed steps below create no server key.
    with TrustServer(config) as server, ThreadPoolExecutor(1) as pool:
        list(pool.map(one, guns))
    batch, sigs = work / "init.batch.json", work / "init.sigs.json"
    run(env, str(BIN / "ceremony-online"), "export", "--all", "--out", str(batch))
    run(env, str(BIN / "ceremony"), "sign", str(batch), "--out", str(sigs), "--yes")
    run(env, str(BIN / "ceremony-online"), "publish", str(sigs), "--jobs", str(jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        server = start_server(work / "server")
        try:
            env = dict(os.environ)
            env.update(
                {
                    "PATH": f"{BIN}:{env['PATH']}",
                    "CEREMONY_HOME": str(work / "offline"),
                    "CEREMONY_ONLINE_HOME": str(work / "online"),
                    "CEREMONY_SERVER": server.url,
                    "CEREMONY_TLS_CA": str(server.ca),
                    "NOTARY_ROOT_PASSPHRASE": PASSPHRASE,
                    "NOTARY_TARGETS_PASSPHRASE": PASSPHRASE,
                }
            )
            guns = [f"bench.example.com/fleet/app-{i:04d}" for i in range(args.repos)]
            t0 = time.perf_counter()
            try:
                setup(env, work, guns, args.targets, args.jobs)
            except Exception:
                alive = server.proc is not None and server.proc.poll() is None
                print(f"notary-server alive: {alive}; its log ends:", file=sys.stderr)
                text = server.log.read_text()
                start = max(text.find("fatal error"), text.find("panic:"), 0)
                print(text[start : start + 3000], file=sys.stderr)
                raise
            setup_s = time.perf_counter() - t0
            on, off = str(BIN / "ceremony-online"), str(BIN / "ceremony")
            batch, sigs = work / "refresh.batch.json", work / "refresh.sigs.json"
            stage_s, _ = run(env, on, "refresh", "--all", "--role", "root", "--role", "targets")
            export_s, _ = run(
                env, on, "export", "--all", "--thin", "--out", str(batch), "--jobs", str(args.jobs)
            )
            sign_s, sign_kib = run(env, off, "sign", str(batch), "--out", str(sigs), "--yes")
            publish_s, _ = run(env, on, "publish", str(sigs), "--jobs", str(args.jobs))
            # Today's way: one ceremony per repository, four commands each.
            sample = guns[: args.sample]
            single = 0.0
            for gun in sample:
                request, signature = work / "one.json", work / "one.sig"
                steps = (
                    (on, "refresh", gun, "--role", "root", "--role", "targets"),
                    (on, "export", gun, "--out", str(request)),
                    (off, "sign", str(request), "--out", str(signature), "--yes"),
                    (on, "publish", str(signature)),
                )
                single += sum(run(env, *step)[0] for step in steps)
            per_repo = single / len(sample)
            batch_mb, sigs_kb = batch.stat().st_size / 1e6, sigs.stat().st_size / 1e3
        finally:
            server.stop()
    batch_total = stage_s + export_s + sign_s + publish_s
    extrapolated = per_repo * args.repos
    n = args.repos
    print(
        f"{n} repositories x {args.targets} targets; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d}; setup (untimed "
        f"below) {setup_s:.0f} s; batch request {batch_mb:.1f} MB thin, "
        f"signatures {sigs_kb:.0f} KB\n"
    )
    print("| work | seconds | goal |")
    print("|---|---|---|")
    print(f"| refresh stage + export (thin), {n} repositories | {stage_s + export_s:.1f} "
          f"(stage {stage_s:.1f}, export {export_s:.1f}) | <= 60 |")  # fmt: skip
    print(f"| review + sign offline, one shared root key | {sign_s:.1f}, peak "
          f"{sign_kib / 1024:.0f} MiB | <= 60 s, < 1 GiB |")  # fmt: skip
    print(
        f"| publish to a local notary-server ({args.jobs} at a time) | {publish_s:.1f} | <= 300 |"
    )
    print(f"| whole batch | {batch_total:.1f} | |")
    print(
        f"| {n} single ceremonies (measured {len(sample)}: {per_repo:.2f} s each, x {n}) | "
        f"{extrapolated:.0f} | |"
    )
    print(f"| ratio single / batch | {extrapolated / batch_total:.1f}x | |")
    print(
        f"| operator actions | batch: 1 transfer each way, 1 confirmation, 1 passphrase per key; "
        f"single: {n} of each | |"
    )


if __name__ == "__main__":
    main()
