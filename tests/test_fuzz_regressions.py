"""Inputs that once crashed a parser under `make fuzz`, each now a clean refusal.

Every file under `fuzz/regressions/<parser>/` goes through that parser's harness
(the same contract and properties as the fuzzer checks), and each crash found has
its own test of the sentence and exit code the operator now gets.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ceremony.core.changes import read_change
from ceremony.core.documents import Request
from ceremony.core.errors import EnvironmentFailure, MalformedInput, UsageError
from fuzz.worker import load
from online.client.config import ServerConfig, docker_credentials
from tests.core.repos import assert_one_sentence

REGRESSIONS = Path(__file__).resolve().parent.parent / "fuzz" / "regressions"
CASES = sorted((folder.name, path) for folder in REGRESSIONS.iterdir() for path in folder.iterdir())


@pytest.mark.parametrize(("name", "path"), CASES, ids=[f"{n}-{p.name}" for n, p in CASES])
def test_crashing_input_is_refused_cleanly(name: str, path: Path) -> None:
    load(name).check(path.read_bytes())  # raises on a crash or a broken property


def test_a_huge_change_type_is_not_quoted_whole() -> None:
    """Found by the request harness: the whole change object was quoted in the sentence."""
    hostile = {"type": {"data": "A" * 100_000}}
    with pytest.raises(MalformedInput) as caught:
        read_change(hostile)
    assert len(caught.value.message) < 200
    assert_one_sentence(caught.value.message)
    with pytest.raises(MalformedInput) as caught:
        Request.from_bytes((REGRESSIONS / "request" / "long-change-type").read_bytes())
    assert len(caught.value.message) < 200


def test_docker_config_auth_that_is_not_ascii(tmp_path: Path) -> None:
    """Found by the online_config harness: a ValueError from base64 escaped."""
    config = {"auths": {"notary.example.com": {"auth": "YWxpY2U6\u05ea"}}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(EnvironmentFailure) as caught:
        docker_credentials(tmp_path, ("notary.example.com",))
    assert caught.value.exit_code == 3
    assert "malformed auth entry" in caught.value.message
    assert_one_sentence(caught.value.message)


def test_docker_config_auth_that_is_not_utf8(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:\xff\xfe").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"h": {"auth": auth}}}))
    with pytest.raises(EnvironmentFailure):
        docker_credentials(tmp_path, ("h",))


def test_docker_config_nested_too_deep(tmp_path: Path) -> None:
    """A RecursionError from json escaped for a config nested 100,000 deep."""
    (tmp_path / "config.json").write_bytes(b"[" * 100_000)
    with pytest.raises(EnvironmentFailure) as caught:
        docker_credentials(tmp_path, ("h",))
    assert "cannot be read as JSON" in caught.value.message
    assert_one_sentence(caught.value.message)


@pytest.mark.parametrize("url", ["https://[", "http://[::1", "https://[nothex]/"])
def test_server_url_that_cannot_be_split(url: str) -> None:
    """Found by the online_config harness: urlsplit's ValueError ("Invalid IPv6 URL") escaped."""
    with pytest.raises(UsageError) as caught:
        ServerConfig.from_env(url, None, environ={}, allow_http=True)
    assert caught.value.exit_code == 2
    assert_one_sentence(caught.value.message)


def test_a_huge_server_url_is_not_quoted_whole() -> None:
    with pytest.raises(UsageError) as caught:
        ServerConfig.from_env("ftp://" + "h" * 100_000, None, environ={})
    assert len(caught.value.message) < 300
