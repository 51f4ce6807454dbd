"""A fleet for the batch tests: repositories sharing keys, made and signed in batches."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ceremony.core.batch import BatchRequest
from ceremony.core.documents import Request
from ceremony.core.gun import gun_folder
from tests.e2e.rig import Rig

DIGEST = "ab" * 32


def gun_args(guns: list[str]) -> list[str]:
    return [a for g in guns for a in ("--gun", g)]


def make_fleet(
    rig: Rig, guns: list[str], *, jobs: int = 4, token: str | None = None
) -> tuple[str, str]:
    """Repositories sharing one root key and one targets key (in files, or on `token`),
    created in ONE batch ceremony, each with target `app-1.0`. Returns the two key ids."""
    on_token = ["--token", token] if token else []
    root, targets = (
        rig.run("ceremony", "key", "generate", role, "--gun", guns[0], *on_token).stdout.strip()
        for role in ("root", "targets")
    )
    if len(guns) > 1:
        rig.run("ceremony", "key", "certify", root, *gun_args(guns[1:]))
    pub = rig.tmp / "pub"
    rig.run(
        "ceremony", "key", "export-public", *gun_args(guns), "--key", root, "--key", targets,
        "--out", str(pub if len(guns) > 1 else pub / f"{gun_folder(guns[0])}.json"),
    )  # fmt: skip
    with ThreadPoolExecutor(jobs) as pool:
        list(
            pool.map(
                lambda g: rig.run(
                    "ceremony-online",
                    "init",
                    g,
                    "--public-keys",
                    str(pub / f"{gun_folder(g)}.json"),
                ),
                guns,
            )
        )
    batch_list = rig.tmp / "targets.txt"
    batch_list.write_text("".join(f"{g} app-1.0 {DIGEST} 10\n" for g in guns))
    rig.run("ceremony-online", "add", "--from-batch", str(batch_list))
    ceremony(rig, "init", guns)
    return root, targets


def ceremony(rig: Rig, name: str, guns: list[str], *sign_args: str) -> str:
    """Export one batch, sign it once offline, publish it; the sign output."""
    request, signatures = rig.tmp / f"{name}.batch.json", rig.tmp / f"{name}.sigs.json"
    rig.run("ceremony-online", "export", *gun_args(guns), "--out", str(request))
    signed = rig.run(
        "ceremony", "sign", str(request), "--out", str(signatures), "--yes", *sign_args
    )
    rig.run("ceremony-online", "publish", str(signatures))
    return signed.stdout


def versions(rig: Rig, gun: str) -> dict[str, int]:
    status = json.loads(rig.run("ceremony-online", "status", "--gun", gun, "--json").stdout)
    return {r["role"]: r["version"] for r in status[0]["published"]}


def inner(path: Path) -> dict[str, Request]:
    """The inner requests of a batch request file, by GUN."""
    return {r.gun: r for r in BatchRequest.from_bytes(path.read_bytes()).requests}


def rebatch(requests: dict[str, Request], out: Path, *, thin: bool = False) -> Path:
    """What a compromised online machine can do: rebuild the batch (its id is unkeyed)."""
    out.write_bytes(BatchRequest(tuple(requests.values())).to_bytes(thin=thin))
    return out
