"""Inputs that once crashed a parser under `make fuzz`, each now a clean refusal.

Every file under `fuzz/regressions/<parser>/` goes through that parser's harness
(the same contract and properties as the fuzzer checks), and each crash found has
its own test of the sentence and exit code the operator now gets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ceremony.core.canonical import (
    RawJSON,
    encode_canonical,
    parse_json,
    reference_encode,
    reference_parse,
)
from ceremony.core.changes import read_change
from ceremony.core.documents import LivenessProof, PublicKeysDocument, Request
from ceremony.core.errors import EnvironmentFailure, InputRejected, MalformedInput, UsageError
from ceremony.core.keys import pem_encode, public_key_of
from ceremony.core.metadata import Key
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.keyfile import decode_key_file
from ceremony.signing.private import PrivateKey
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


def test_a_sentence_quoting_a_huge_name_is_cut_in_the_middle() -> None:
    """Found by the metadata harness: a hash algorithm named by 1,000 characters was quoted whole."""
    error = MalformedInput("The file names " + "x" * 50_000 + "; pass another file.")
    assert len(error.message) <= 1000
    assert error.message.startswith("The file names xxx")
    assert error.message.endswith("; pass another file.")
    assert "characters cut" in error.message
    assert_one_sentence(error.message)


def test_a_huge_media_type_is_not_quoted_whole() -> None:
    """Found by the liveness harness: the media type of another document was quoted whole."""
    data = json.dumps({"media_type": "z" * 5000}).encode()
    with pytest.raises(MalformedInput) as caught:
        LivenessProof.from_bytes(data)
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("depth", [255, 600, 100_000])
def test_json_nested_too_deep_is_refused_in_one_sentence(depth: int) -> None:
    """Found by the liveness harness: 300 nested arrays made the reference encoder recurse
    past Python's limit (RecursionError) while checking the canonical form."""
    data = b'{"media_type":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(MalformedInput) as caught:
        LivenessProof.from_bytes(data)
    assert caught.value.message == "The liveness proof nests deeper than 254 levels."
    with pytest.raises(MalformedInput):
        reference_parse(data)


def test_json_nested_to_the_limit_still_reads_and_writes() -> None:
    data = b"[" * 254 + b"]" * 254
    value = parse_json(data)
    assert encode_canonical(value) == data == reference_encode(value)
    with pytest.raises(ValueError, match="nests deeper"):  # CanonicalError
        encode_canonical(_nested(300))
    with pytest.raises(ValueError, match="nests deeper"):
        reference_encode(_nested(5000))
    with pytest.raises(ValueError, match="nests deeper"):
        encode_canonical({"custom": RawJSON(_nested(5000))})


def test_deep_json_with_a_big_integer_agrees_in_both_parsers() -> None:
    """Found by the short fuzz run: a 2^53 integer sent orjson's encoder to the reference
    one, which wrote 900 levels, so the fast parser accepted what the strict one refused."""
    data = b'{"n":9007199254740992,"v":' + b"[" * 900 + b"]" * 900 + b"}"
    for parse in (parse_json, reference_parse):
        with pytest.raises(MalformedInput, match="nests deeper than 254 levels"):
            parse(data)
    with pytest.raises(ValueError, match="nests deeper"):
        reference_encode({"n": 2**53, "v": _nested(300)})


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def _root_key_with_der(edit: Callable[[bytes], bytes]) -> Key:
    private = PrivateKey.generate_ecdsa()
    cert = make_root_certificate(private, "example.com/x", datetime(2030, 1, 1, tzinfo=UTC))
    der = x509.load_pem_x509_certificate(cert.public_bytes).public_bytes(Encoding.DER)
    pem = pem_encode("CERTIFICATE", edit(der), {})
    return Key("ecdsa-x509", base64.b64encode(pem).decode())


def test_a_certificate_of_an_unknown_x509_version_is_refused() -> None:
    """Found by the public_keys harness: cryptography's InvalidVersion (not a ValueError) escaped."""
    key = _root_key_with_der(
        lambda der: der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x1a", 1)
    )
    with pytest.raises(MalformedInput) as caught:
        public_key_of(key)
    assert caught.value.message == "The certificate bundle holds an unreadable certificate."
    with pytest.raises(MalformedInput):
        PublicKeysDocument.from_bytes(
            (REGRESSIONS / "public_keys" / "x509-version-26").read_bytes()
        )


def test_a_certificate_whose_subject_cannot_be_parsed_is_refused() -> None:
    """Found by the public_keys harness: the subject is parsed lazily, so reading its CN for
    the GUN check raised ValueError long after the certificate was 'read'."""
    data = (REGRESSIONS / "public_keys" / "bad-subject").read_bytes()
    with pytest.raises(MalformedInput) as caught:
        PublicKeysDocument.from_bytes(data)
    assert_one_sentence(caught.value.message)


def test_a_legacy_encrypted_key_on_an_unknown_curve_is_refused() -> None:
    """Found by the keyfile harness: cryptography's UnsupportedAlgorithm ("Curve
    1.2.38.72.10045.3.1.7 is not supported") escaped from a legacy-encrypted EC key file."""
    data = (REGRESSIONS / "keyfile" / "legacy-unknown-curve").read_bytes()
    with pytest.raises(InputRejected) as caught:
        decode_key_file(data, "fuzz-passphrase")
    assert caught.value.exit_code == 1
    assert "Notary does not sign with" in caught.value.message
    assert_one_sentence(caught.value.message)
