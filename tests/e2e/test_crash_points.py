"""SIGKILL at each durable write, and ENOSPC at each write, lose nothing.

`CEREMONY_TEST_WRITE_HOOK` (test only, `ceremony.edge.fsutil.write_point`) numbers the
points just before and just after every durable write: a temp file written and fsynced
but not renamed, the rename done, a transcript line about to be appended, appended.
For each command (staging, `export`, `sign`, `publish`, `key generate`, `key import`)
a first run lists its points; then, from the same starting homes each time, the
command is paused at point N and killed with SIGKILL there. After each kill both homes
must read (`ceremony-online status`, `ceremony key list`), staged changes are all there
or none, no request, signatures, key file or trust state is half written, a key file
without a record is shown by `key list` as an orphan, and re-running the command
succeeds (for `sign` recorded but killed before its signatures were written, the rerun
is refused with a sentence naming `--again`, which then succeeds); after the rerun no
temp file is left, in the homes or beside an output file.

The sweeps use 200 targets, not 20,000 (test_crashes.py kills a 20,000-target ceremony
at random delays): the writes are the same whatever the size, and a sweep runs each
command about three times per point. A pause just before a transcript line is appended
is not swept: the disk then is as at the point before it (the ENOSPC sweep fails it);
nor are the trust store's second and third body files (each kind of write is swept once).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ceremony.core.documents import Request, SignaturesDocument
from ceremony.edge.fsutil import WRITE_HOOK_ENV
from tests.e2e.rig import Rig, one_sentence
from tests.e2e.test_ceremony_cli import publish_new
from tests.notary_env import NotaryCli, NotaryServer

pytestmark = pytest.mark.notary

TARGETS = 200


class Hook:
    """The hook folder of one run: where it pauses or fails, and the points it passed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def env(self, rig: Rig, *, pause_at: int = 0, fail_at: int = 0) -> dict[str, str]:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        (self.folder / "pause-at").write_text(str(pause_at))
        (self.folder / "fail-at").write_text(str(fail_at))
        return dict(rig.env, **{WRITE_HOOK_ENV: str(self.folder)})

    def points(self) -> list[str]:
        path = self.folder / "points"
        return path.read_text().splitlines() if path.exists() else []

    def paused(self) -> str | None:
        path = self.folder / "paused"
        text = path.read_text() if path.exists() else ""
        return text.strip() if text.endswith("\n") else None  # written whole


def _points(rig: Rig, hook: Hook, cmd: tuple[str, ...]) -> list[str]:
    """Run `cmd` once through the hook, without pausing: its numbered write points."""
    rig.run_env(hook.env(rig), *cmd)
    points = hook.points()
    assert points, cmd
    return points


def _shape(line: str) -> str:
    """A point with key and request ids left out (a new key or request has a new id)."""
    return re.sub(r"[0-9a-f]{32,64}", "ID", line)


def _swept(points: list[str]) -> list[int]:
    """The points a sweep kills at: each kind of write once (the trust store writes one body
    file per role, alike), and no pause just before a transcript append (the disk is then
    as at the point before)."""
    seen: set[str] = set()
    out = []
    for number, line in enumerate(points, 1):
        shape = _shape(line).split(" ", 1)[1]
        if " append " not in line and shape not in seen:
            out.append(number)
        seen.add(shape)
    return out


def _kill_at(rig: Rig, hook: Hook, cmd: tuple[str, ...], point: int) -> str:
    """Run `cmd` until it pauses at write `point`, then SIGKILL it there; the point's line."""
    proc = subprocess.Popen(
        cmd,
        env=hook.env(rig, pause_at=point),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while hook.paused() is None:
        assert proc.poll() is None, f"{cmd} ended ({proc.returncode}) before write {point}"
        assert time.monotonic() < deadline, f"{cmd} never reached write {point}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    paused = hook.paused()
    assert paused is not None
    return paused


class Homes:
    """A copy of both homes, to start each kill from the same state."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.copy = rig.tmp / "homes-before"
        shutil.rmtree(self.copy, ignore_errors=True)
        for name in ("online", "offline"):
            if (rig.tmp / name).exists():
                shutil.copytree(rig.tmp / name, self.copy / name, symlinks=True)

    def restore(self) -> None:
        for name in ("online", "offline"):
            shutil.rmtree(self.rig.tmp / name, ignore_errors=True)
            if (self.copy / name).exists():
                shutil.copytree(self.copy / name, self.rig.tmp / name, symlinks=True)


def _temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob(".*.tmp")]


def _staged(rig: Rig) -> int:
    out = rig.run("ceremony-online", "status", rig.gun).stdout
    line = next(line for line in out.splitlines() if line.startswith("Staged changes:"))
    return int(line.split(":")[1])


def _key_list(rig: Rig) -> str:
    return rig.run("ceremony", "key", "list").stdout


def _both_homes_read(rig: Rig) -> int:
    """`status` and `key list` both work (run side by side); the staged count."""
    listing = subprocess.Popen(
        ("ceremony", "key", "list"),
        env=rig.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    staged = _staged(rig)
    _, err = listing.communicate(timeout=300)
    assert listing.returncode == 0, err
    return staged


def _listing(tmp: Path, count: int = TARGETS, prefix: str = "t") -> Path:
    listing = tmp / f"{prefix}-targets.txt"
    listing.write_text("".join(f"{prefix}{i:05d} {i:064x} {i + 1}\n" for i in range(count)))
    return listing


def _sweep(
    rig: Rig,
    cmd: tuple[str, ...],
    after_kill: Callable[[int, str], None],
    rerun: Callable[[], None],
    *,
    outputs: tuple[Path, ...] = (),
    skip: Callable[[int, str], bool] = lambda number, line: False,
) -> list[str]:
    """Kill `cmd` at each of its write points (but those `skip` names), from the same homes
    each time; after each kill `after_kill(point, line)` checks the homes, then `rerun`
    must succeed and leave no temp file. Returns the points."""
    hook = Hook(rig.tmp / "hook")
    homes = Homes(rig)
    points = _points(rig, hook, cmd)
    for number in _swept(points):
        if skip(number, points[number - 1]):
            continue
        homes.restore()
        for out in outputs:
            out.unlink(missing_ok=True)
        line = _kill_at(rig, hook, cmd, number)
        assert _shape(line) == _shape(points[number - 1])  # the same write: all are covered
        after_kill(number, line)
        rerun()
        left = _temporaries(rig.tmp / "online", rig.tmp / "offline", *(o.parent for o in outputs))
        assert not left, (line, left)
    return points


# -- staging, export, publish -------------------------------------------------


def test_staging_killed_at_each_write_stages_all_or_nothing(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    add = ("ceremony-online", "add", rig.gun, "--from", str(_listing(tmp_path)))

    def after_kill(number: int, line: str) -> None:
        assert _both_homes_read(rig) == (TARGETS if " renamed " in line else 0), line

    def rerun() -> None:
        if _staged(rig) == 0:
            rig.run(*add)
        assert _staged(rig) == TARGETS

    points = _sweep(rig, add, after_kill, rerun)
    assert any("staged.json" in p for p in points), points


def test_export_killed_at_each_write_leaves_whole_requests(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    rig.run("ceremony-online", "add", rig.gun, "--from", str(_listing(tmp_path)))
    out = tmp_path / "out" / "bulk.request.json"
    out.parent.mkdir()
    export = ("ceremony-online", "export", rig.gun, "--out", str(out))
    init_requests = set((tmp_path / "online").rglob("*.request.json"))

    def after_kill(number: int, line: str) -> None:
        assert _both_homes_read(rig) == TARGETS, line
        rig.run("ceremony-online", "requests", "list", rig.gun)
        for request in (*(tmp_path / "online").rglob("*.request.json"), out):
            if request.exists() and request not in init_requests:  # whole, or not there at all
                assert len(Request.from_bytes(request.read_bytes()).changes) >= TARGETS, line

    def rerun() -> None:
        rig.run(*export)
        assert len(Request.from_bytes(out.read_bytes()).changes) >= TARGETS

    def trust_again(number: int, line: str) -> bool:
        """The trust anchor's writes (the same as publish's, swept there) but the first."""
        return "/trust/" in line and number > 1

    points = _sweep(rig, export, after_kill, rerun, outputs=(out,), skip=trust_again)
    assert any(".record.json" in p for p in points) and any(str(out) in p for p in points)


def _publish_points(points: list[str]) -> list[int]:
    """Publish is killed just after each kind of write, at its last occurrence (the trust
    anchor written again after the upload, before the request is marked published), and
    once with a temp file written: staging and export sweep the temp files of the same
    home folder, each of which needs a request signed for it first."""
    last = {_shape(line).split(" ", 2)[2]: n for n, line in enumerate(points, 1)}
    renamed = [n for n in last.values() if " renamed " in points[n - 1]]
    return sorted({1, *renamed})


def test_publish_killed_at_each_write_resumes(
    notary_server: NotaryServer, notary_cli: NotaryCli, new_gun, tmp_path: Path
) -> None:
    """Each kill needs a request of its own (the server moves on at each rerun)."""
    rig = publish_new(notary_server, tmp_path, new_gun())
    hook = Hook(tmp_path / "hook")

    def signed(name: str) -> Path:
        target = tmp_path / f"{name}.txt"
        target.write_text(name)
        rig.run("ceremony-online", "add", rig.gun, name, str(target))
        request, signatures = tmp_path / f"{name}.request.json", tmp_path / f"{name}.sig"
        rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
        rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
        return signatures

    points = _points(rig, hook, ("ceremony-online", "publish", str(signed("p0"))))
    assert any("publish-log.json" in p for p in points), points
    done: list[int] = []
    for number in _publish_points(points):
        name = f"p{number}"
        publish = ("ceremony-online", "publish", str(signed(name)))
        line = _kill_at(rig, hook, publish, number)
        assert _both_homes_read(rig) in (0, 1), line  # the one change: still staged, or done
        rig.run(*publish)
        assert _staged(rig) == 0, line  # killed after marking it published: dropped on rerun
        log = json.loads(next((tmp_path / "online").rglob("publish-log.json")).read_text())
        assert len(log) == len({e["request_id"] for e in log}) == 3 + len(done), (
            line
        )  # init, p0, these
        done.append(number)
        assert not _temporaries(tmp_path / "online", tmp_path / "offline"), line
    listed = notary_cli.list_targets(rig.gun)
    assert {f"p{n}" for n in (0, *done)} <= set(listed), listed


# -- sign ---------------------------------------------------------------------


def _recorded(rig: Rig, request: Path) -> bool:
    from ceremony.core.gun import gun_folder
    from ceremony.offline.trust import TrustState

    state_file = rig.tmp / "offline" / "trust" / gun_folder(rig.gun) / "state.json"
    state = TrustState.from_bytes(state_file.read_bytes())
    return json.loads(request.read_text())["id"] in state.requests


def test_sign_killed_at_each_write_is_recorded_whole_and_reruns(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    rig.run("ceremony-online", "add", rig.gun, "--from", str(_listing(tmp_path)))
    request = tmp_path / "bulk.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    signatures = tmp_path / "out" / "bulk.sig"
    signatures.parent.mkdir()
    sign = ("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    refusals: list[str] = []

    def after_kill(number: int, line: str) -> None:
        _both_homes_read(rig)
        recorded = _recorded(rig, request)  # the trust state reads, whole
        if signatures.exists():  # whole, and only once the signing is recorded
            assert SignaturesDocument.from_bytes(signatures.read_bytes()).request_id
            assert recorded, line

    def rerun() -> None:
        recorded = _recorded(rig, request)
        again = subprocess.run(
            sign, env=rig.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
        if recorded:  # replay protection holds after any kill: a second signing is refused
            assert again.returncode == 1, again.stderr
            refusal = one_sentence(again)
            assert "--again" in refusal, refusal
            refusals.append(refusal)
            rig.run(*sign, "--again")
        else:
            assert again.returncode == 0, again.stderr
        assert SignaturesDocument.from_bytes(signatures.read_bytes()).request_id

    points = _sweep(rig, sign, after_kill, rerun, outputs=(signatures,))
    assert any("state.json" in p for p in points) and any(str(signatures) in p for p in points)
    assert refusals  # killed recorded but before the signatures were written: `--again`
    rig.run("ceremony-online", "publish", str(signatures))
    assert _staged(rig) == 0


# -- key generate, key import -------------------------------------------------


def _check_keys(rig: Rig, line: str) -> list[Path]:
    """Every key file is listed by `key list`, as a key or as an orphan; the orphans."""
    listed = _key_list(rig)
    _staged(rig)
    private = rig.tmp / "offline" / "private"
    orphans = []
    for key in private.glob("*.key") if private.is_dir() else ():
        assert key.stem in listed, (line, key, listed)
        if f"orphan key file {key}" in listed:
            orphans.append(key)
            assert f"ceremony key import {key}" in listed, listed
    return orphans


def test_key_generate_killed_at_each_write_leaves_no_invisible_key(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/test/crash-points-generate")
    rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    generate = ("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    adopted: list[Path] = []

    def after_kill(number: int, line: str) -> None:
        for orphan in _check_keys(rig, line):  # adopt it as `key list` says
            rig.run("ceremony", "key", "import", str(orphan))
            assert orphan.stem in _key_list(rig) and "orphan" not in _key_list(rig)
            adopted.append(orphan)

    def rerun() -> None:
        rig.run(*generate)
        assert not _check_keys(rig, "rerun")

    points = _sweep(rig, generate, after_kill, rerun)
    assert any(p.endswith(".key") for p in points), points
    assert adopted  # a kill between the key file and its record was met, and adopted


def _key_file(rig: Rig, tmp_path: Path, role: str = "targets") -> Path:
    """A Notary key file made on another machine (an encrypted PKCS#8 PEM with headers)."""
    other = tmp_path / "other-home"
    rig.run_env(rig.offline(other), "ceremony", "key", "generate", role, "--gun", rig.gun)
    (made,) = (other / "private").glob("*.key")
    copy = tmp_path / "imports" / made.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(made, copy)
    return copy


def test_key_import_killed_at_each_write_leaves_no_invisible_key(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/test/crash-points-import")
    key_file = _key_file(rig, tmp_path)
    importing = ("ceremony", "key", "import", str(key_file))
    orphans: list[Path] = []

    def after_kill(number: int, line: str) -> None:
        orphans.extend(_check_keys(rig, line))

    def rerun() -> None:
        rig.run(*importing)  # a rerun adopts the orphan it left
        listed = _key_list(rig)
        assert key_file.stem in listed and "orphan" not in listed, listed

    points = _sweep(rig, importing, after_kill, rerun)
    assert any(p.endswith(".key") for p in points), points
    assert orphans  # a kill between the key file and its record was met, and shown


def test_key_import_killed_at_random_points(notary_server: NotaryServer, tmp_path: Path) -> None:
    rng = random.Random(11)
    rig = Rig(notary_server, tmp_path, "example.com/test/crash-random-import")
    key_file = _key_file(rig, tmp_path, "root")
    importing = ("ceremony", "key", "import", str(key_file), "--gun", rig.gun)
    for _ in range(4):
        proc = subprocess.Popen(
            importing, env=rig.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.1, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _check_keys(rig, "random kill")
    rig.run(*importing)
    listed = _key_list(rig)
    assert key_file.stem in listed and "orphan" not in listed, listed
    assert not _temporaries(tmp_path / "offline")


# -- ENOSPC at each write -----------------------------------------------------


def _digest(*folders: Path) -> dict[str, str]:
    """Every file of the homes but the transcript (a failure is recorded), lock files and the
    trust store's bodies (content-addressed copies of what was verified, kept once written)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != ".lock" and "transcript" not in path.name:
                if path.parent.name == "bodies":
                    continue
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _fail_each_write(
    rig: Rig,
    cmd: tuple[str, ...],
    check: Callable[[str, subprocess.CompletedProcess[str], bool], None],
    *,
    outputs: tuple[Path, ...] = (),
) -> list[str]:
    """Run `cmd` with ENOSPC at each write that can fail, from the same homes each time:
    exit 3 with one sentence; the homes unchanged (but for the transcript), or, when a
    failure came after the command's last write to them, `check` decides."""
    hook = Hook(rig.tmp / "hook")
    homes = Homes(rig)
    homes_now = (rig.tmp / "online", rig.tmp / "offline")
    before = _digest(*homes_now)
    points = _points(rig, hook, cmd)
    failable = [
        n for n, p in enumerate(points, 1) if " renamed " not in p and " appended " not in p
    ]
    for number in failable:
        homes.restore()
        for out in outputs:
            out.unlink(missing_ok=True)
        failed = rig.run_env(hook.env(rig, fail_at=number), *cmd, code=3)
        line = points[number - 1]
        sentence = one_sentence(failed)
        assert "No space left on device" in sentence, (line, sentence)
        assert "Traceback" not in failed.stderr
        unchanged = _digest(*homes_now) == before
        check(line, failed, unchanged)
        assert not _temporaries(*homes_now, *(o.parent for o in outputs)), line
    return points


def _written_only_if_true(failed: subprocess.CompletedProcess[str], claim: str, true: bool) -> None:
    if not true:
        assert claim not in failed.stdout + failed.stderr, failed.stderr


def test_enospc_at_each_write_of_staging_and_export(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    add = ("ceremony-online", "add", rig.gun, "--from", str(_listing(tmp_path, 200)))

    def staging(line: str, failed: subprocess.CompletedProcess[str], unchanged: bool) -> None:
        assert unchanged and _staged(rig) == 0, line  # nothing staged
        _written_only_if_true(failed, "Staged changes: 200", False)

    _fail_each_write(rig, add, staging)
    rig.run(*add)

    out = tmp_path / "out" / "b.request.json"
    out.parent.mkdir()
    export = ("ceremony-online", "export", rig.gun, "--out", str(out))

    def exporting(line: str, failed: subprocess.CompletedProcess[str], unchanged: bool) -> None:
        assert _staged(rig) == 200, line
        assert not out.exists(), line  # the output is the last write: not there
        assert "Wrote" not in failed.stdout + failed.stderr, failed.stderr
        rig.run("ceremony-online", "requests", "list", rig.gun)

    _fail_each_write(rig, export, exporting, outputs=(out,))
    rig.run(*export)


def test_enospc_at_each_write_of_sign_says_only_what_is_true(
    notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    rig = publish_new(notary_server, tmp_path, new_gun())
    rig.run("ceremony-online", "add", rig.gun, "--from", str(_listing(tmp_path, 200)))
    request = tmp_path / "b.request.json"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    signatures = tmp_path / "out" / "b.sig"
    signatures.parent.mkdir()
    sign = ("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    seen = []

    def check(line: str, failed: subprocess.CompletedProcess[str], unchanged: bool) -> None:
        written = signatures.exists()
        _written_only_if_true(failed, "Signatures written", written)
        if written:
            SignaturesDocument.from_bytes(signatures.read_bytes())
            assert "NOT on the record" in failed.stderr, failed.stderr  # the transcript failed
        recorded = _recorded(rig, request)
        assert unchanged != recorded, line  # nothing changed, or the signing recorded whole
        retry = subprocess.run(
            sign, env=rig.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
        if recorded:
            assert retry.returncode == 1 and "--again" in one_sentence(retry), retry.stderr
        else:
            assert retry.returncode == 0, retry.stderr
        seen.append((recorded, written))

    _fail_each_write(rig, sign, check, outputs=(signatures,))
    assert (False, False) in seen and (True, False) in seen and (True, True) in seen, seen


def test_enospc_at_each_write_of_key_generate_leaves_no_invisible_key(
    notary_server: NotaryServer, tmp_path: Path
) -> None:
    rig = Rig(notary_server, tmp_path, "example.com/test/enospc-generate")
    rig.run("ceremony", "key", "generate", "targets", "--gun", rig.gun)
    generate = ("ceremony", "key", "generate", "targets", "--gun", rig.gun)

    def check(line: str, failed: subprocess.CompletedProcess[str], unchanged: bool) -> None:
        orphans = _check_keys(rig, line)
        assert not orphans, line
        keys = len(list((tmp_path / "offline" / "private").glob("*.key")))
        assert keys in (1, 2), line
        _written_only_if_true(failed, "Generated", keys == 2)
        if keys == 2:  # only the transcript line failed, and the sentence says so
            assert "NOT on the record" in failed.stderr, failed.stderr
        else:
            assert unchanged, line

    _fail_each_write(rig, generate, check)
