"""A lying or failing server, met through the online CLI (`status`, `export`, `publish`).

The real notary-server holds the repository; `tests/lying_proxy.py` sits in front of it
on 127.0.0.1 and lies or fails at the transport level. Each case: the documented exit
code, one sentence, nothing lost (the same command succeeds once the server behaves).
The freeze case moves the online machine's clock 20 days on with `faketime`.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.rig import Rig, full_ceremony, one_sentence, stage_text_target
from tests.e2e.test_ceremony_cli import publish_new
from tests.lying_proxy import LyingProxy, start_proxy
from tests.notary_env import NotaryServer

pytestmark = pytest.mark.notary

LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)


# Tests that change what the server or the homes hold get their own repository; the
# others only read, and share one (a ceremony takes a while on a busy machine).
FRESH = {
    "test_a_frozen_timestamp_is_refused_and_only_an_acknowledgement_goes_on",
    "test_a_rolled_back_timestamp_is_refused",
    "test_409_on_publish_says_conflict_and_the_rerun_publishes",
    "test_a_vanished_repository_is_loud_and_init_over_it_needs_acknowledgement",
}


@pytest.fixture(scope="module")
def shared_rig(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    return publish_new(
        notary_server, tmp_path_factory.mktemp("lying"), "example.com/test/lying-shared"
    )


@pytest.fixture
def rig(
    request: pytest.FixtureRequest, notary_server: NotaryServer, new_gun, tmp_path: Path
) -> Rig:
    if request.node.originalname in FRESH:
        return publish_new(notary_server, tmp_path, new_gun())
    shared: Rig = request.getfixturevalue("shared_rig")
    mine = copy.copy(shared)
    mine.env = dict(shared.env)
    return mine


@pytest.fixture
def proxy(notary_server: NotaryServer, rig: Rig) -> Iterator[LyingProxy]:
    d = notary_server.directory
    lying = start_proxy(
        notary_server.port, notary_server.ca, d / "notary-server.crt", d / "notary-server.key"
    )
    rig.env["CEREMONY_SERVER"] = lying.url
    rig.env["CEREMONY_DOWNLOAD_DEADLINE"] = "3"
    yield lying
    lying.stop()


def _tuf(rig: Rig, name: str) -> str:
    return re.escape(f"/v2/{rig.gun}/_trust/tuf/{name}")


def _later(rig: Rig, days: int = 20) -> dict[str, str]:
    if LIBFAKETIME is None:
        pytest.skip("faketime is not installed")
    return {**rig.env, "FAKETIME": f"+{days}d", "LD_PRELOAD": str(LIBFAKETIME)}


def _fails(rig: Rig, code: int, *cmd: str, env: dict[str, str] | None = None) -> str:
    proc = rig.run_env(env or rig.env, *cmd, code=code)
    return one_sentence(proc)


# ---------------------------------------------------------------------------
# freeze


def test_a_frozen_timestamp_is_refused_and_only_an_acknowledgement_goes_on(rig: Rig) -> None:
    later = _later(rig)
    stage_text_target(rig, "b", "b\n")
    status = rig.run_env(later, "ceremony-online", "status", rig.gun, code=1)
    sentence = one_sentence(status)
    assert "freeze" in sentence and "expired at" in sentence
    assert "targets" in status.stdout  # the published roles are still shown
    request = rig.tmp / "frozen.request.json"
    export = ["ceremony-online", "export", rig.gun, "--out", str(request)]
    sentence = _fails(rig, 1, *export, env=later)
    assert "freeze" in sentence and "--accept-expired-timestamp" in sentence
    assert not request.exists()

    rig.run_env(later, *export, "--accept-expired-timestamp")
    review = rig.run("ceremony", "review", str(request)).stdout
    assert "base: the server's timestamp v" in review  # its date is shown
    assert re.search(r"! the base timestamp expired at .* by the request's own clock", review)
    assert re.search(r"! the request was made at .*, 20\.0 days ahead of this machine", review)
    signatures = rig.tmp / "frozen.sig"
    sign = ["ceremony", "sign", str(request), "--out", str(signatures), "--yes"]
    assert "--accept timestamp" in one_sentence(rig.run(*sign, code=1))
    rig.run(*sign, "--accept", "timestamp")

    publish = ["ceremony-online", "publish", str(signatures)]
    assert "freeze" in _fails(rig, 1, *publish, env=later)
    rig.run_env(later, *publish, "--accept-expired-timestamp")
    assert "Staged changes: 0" in rig.run("ceremony-online", "status", rig.gun).stdout


# ---------------------------------------------------------------------------
# TUF attacks through the proxy


def test_a_rolled_back_timestamp_is_refused(
    rig: Rig, proxy: LyingProxy, notary_server: NotaryServer
) -> None:
    old = notary_server.fetch(rig.gun, "timestamp.json")
    stage_text_target(rig, "b", "b\n")
    full_ceremony(rig, "second")
    proxy.lie(_tuf(rig, "timestamp.json"), "replace", old)
    sentence = _fails(rig, 1, "ceremony-online", "status", rig.gun)
    assert "timestamp" in sentence and re.search(r"older|rollback|v\d", sentence), sentence
    proxy.rules.clear()
    rig.run("ceremony-online", "status", rig.gun)


def test_another_guns_metadata_is_refused(
    rig: Rig, proxy: LyingProxy, notary_server: NotaryServer, new_gun, tmp_path: Path
) -> None:
    other = publish_new(notary_server, tmp_path / "other", new_gun())
    for name in ("timestamp.json", "root.json"):
        proxy.rules.clear()
        proxy.lie(_tuf(rig, name), "replace", notary_server.fetch(other.gun, name))
        sentence = _fails(rig, 1, "ceremony-online", "status", rig.gun)
        assert sentence, name
    proxy.rules.clear()
    rig.run("ceremony-online", "status", rig.gun)


def test_mix_and_match_and_a_changed_target_hash_are_refused(
    rig: Rig, proxy: LyingProxy, notary_server: NotaryServer
) -> None:
    def change_hash(data: bytes) -> bytes:
        doc = json.loads(data)
        for meta in doc["signed"]["targets"].values():
            meta["hashes"]["sha256"] = "AAAA" + meta["hashes"]["sha256"][4:]
        return json.dumps(doc).encode()

    proxy.lie(_tuf(rig, "targets.") + "[0-9a-f]{64}", "replace", change_hash)
    # The home's cache holds the bytes the snapshot names, so the lie is never read ...
    rig.run("ceremony-online", "status", rig.gun)
    for cache in (rig.tmp / "online").glob("repositories/*/cache"):
        shutil.rmtree(cache)  # ... until they must be downloaded
    sentence = _fails(rig, 1, "ceremony-online", "status", rig.gun)
    assert "checksum" in sentence or "targets" in sentence, sentence
    proxy.rules.clear()
    old_snapshot = notary_server.fetch(rig.gun, "snapshot.json")
    proxy.lie(_tuf(rig, "snapshot.") + "[0-9a-f]{64}", "replace", lambda _: old_snapshot + b" ")
    sentence = _fails(rig, 1, "ceremony-online", "status", rig.gun)
    assert "checksum" in sentence or "more than" in sentence, sentence
    proxy.rules.clear()
    rig.run("ceremony-online", "status", rig.gun)


def test_endless_data_is_cut_at_the_role_cap(rig: Rig, proxy: LyingProxy) -> None:
    proxy.lie(_tuf(rig, "timestamp.json"), "endless")
    sentence = _fails(rig, 1, "ceremony-online", "status", rig.gun)
    assert "more than 1048576 bytes" in sentence


# ---------------------------------------------------------------------------
# transport faults


def test_a_dripping_server_is_cut_at_the_deadline(rig: Rig, proxy: LyingProxy) -> None:
    proxy.lie(_tuf(rig, "timestamp.json"), "drip")
    sentence = _fails(rig, 3, "ceremony-online", "status", rig.gun)
    assert "in 3 s, so the connection was cut" in sentence
    stage_text_target(rig, "b", "b\n")
    sentence = _fails(rig, 3, "ceremony-online", "export", rig.gun, "--out", str(rig.tmp / "r"))
    assert "connection was cut" in sentence


def test_redirects_are_not_followed(rig: Rig, proxy: LyingProxy) -> None:
    for target in ("https://127.0.0.1:9", "http://127.0.0.1:9"):
        proxy.rules.clear()
        proxy.lie(_tuf(rig, "root.json"), "redirect", target)
        sentence = _fails(rig, 3, "ceremony-online", "status", rig.gun)
        assert "redirects" in sentence and "HTTP 302" in sentence


@pytest.mark.parametrize("code", [500, 502, 503])
def test_5xx_is_retried_a_bounded_number_of_times(rig: Rig, proxy: LyingProxy, code: int) -> None:
    proxy.lie(_tuf(rig, "timestamp.json"), "status", code)
    sentence = _fails(rig, 3, "ceremony-online", "status", rig.gun)
    assert f"HTTP {code}" in sentence
    assert sum(1 for _, p in proxy.seen if p.endswith("/timestamp.json")) == 4  # 1 + 3 retries
    proxy.rules.clear()
    proxy.lie(_tuf(rig, "timestamp.json"), "status", code, times=2)
    rig.run("ceremony-online", "status", rig.gun)  # a transient failure recovers


def test_409_on_publish_says_conflict_and_the_rerun_publishes(rig: Rig, proxy: LyingProxy) -> None:
    stage_text_target(rig, "b", "b\n")
    request, signatures = rig.tmp / "c.request.json", rig.tmp / "c.sig"
    rig.run("ceremony-online", "export", rig.gun, "--out", str(request))
    rig.run("ceremony", "sign", str(request), "--out", str(signatures), "--yes")
    proxy.lie(re.escape(f"/v2/{rig.gun}/_trust/tuf/") + "$", "status", 409, method="POST", times=1)
    sentence = _fails(rig, 1, "ceremony-online", "publish", str(signatures))
    assert "conflict (HTTP 409)" in sentence and "Notary server" not in sentence
    rig.run("ceremony-online", "publish", str(signatures))


@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_a_body_cut_or_reset_midway_fails_fast(rig: Rig, proxy: LyingProxy, fault: str) -> None:
    proxy.lie(_tuf(rig, "root.json"), fault)
    proc = subprocess.run(
        ["ceremony-online", "status", rig.gun],
        env=rig.env,
        capture_output=True,
        text=True,
        timeout=30,  # today's 4 x 30 s would not fit
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3, proc.stderr
    sentence = one_sentence(proc)
    assert "broke off" in sentence or "reset" in sentence, sentence


def _cert(directory: Path, name: str, san: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"),
            *("-keyout", str(key), "-out", str(crt), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName={san}"),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


@pytest.mark.parametrize(
    ("name", "san", "trust_it"),
    [("wrong-name", "DNS:wrong.example", True), ("other-ca", "IP:127.0.0.1", False)],
)
def test_a_certificate_for_another_name_or_from_another_ca_is_refused(
    rig: Rig, notary_server: NotaryServer, name: str, san: str, trust_it: bool
) -> None:
    crt, key = _cert(rig.tmp, name, san)
    lying = start_proxy(notary_server.port, notary_server.ca, crt, key)
    try:
        env = {**rig.env, "CEREMONY_SERVER": lying.url}
        if trust_it:
            env["CEREMONY_TLS_CA"] = str(crt)
        sentence = _fails(rig, 3, "ceremony-online", "status", rig.gun, env=env)
        assert "TLS certificate verification failed" in sentence
    finally:
        lying.stop()


def test_plain_http_is_refused_unless_allowed(rig: Rig, notary_server: NotaryServer) -> None:
    plain = start_proxy(notary_server.port, notary_server.ca, None, None)
    try:
        env = {**rig.env, "CEREMONY_SERVER": plain.url}
        assert "plain http" in _fails(rig, 2, "ceremony-online", "status", rig.gun, env=env)
        rig.run_env(env, "ceremony-online", "--allow-http", "status", rig.gun)
        rig.run_env({**env, "CEREMONY_ALLOW_HTTP": "1"}, "ceremony-online", "status", rig.gun)
    finally:
        plain.stop()


# ---------------------------------------------------------------------------
# a server that forgets a repository


def test_a_vanished_repository_is_loud_and_init_over_it_needs_acknowledgement(
    rig: Rig, proxy: LyingProxy
) -> None:
    proxy.lie(re.escape(f"/v2/{rig.gun}/_trust/tuf/") + r".*\.json$", "missing")
    status = rig.run("ceremony-online", "status", rig.gun, code=1)
    assert "no longer serves" in one_sentence(status)
    assert "not published on the server yet" not in status.stdout
    public = rig.tmp / "public-keys.json"
    init = ["ceremony-online", "init", rig.gun, "--public-keys", str(public)]
    assert "--over-vanished" in _fails(rig, 1, *init)
    assert "Staged changes: 0" in rig.run("ceremony-online", "status", rig.gun, code=1).stdout
    rig.run(*init, "--over-vanished")
    assert "Staged changes: 1" in rig.run("ceremony-online", "status", rig.gun).stdout
