"""PKCS#11 URIs (RFC 7512) and the wrong-PIN sentence: pure parts of the token backend.

The token itself is exercised through SoftHSM2 in tests/e2e/test_token.py.
"""

from __future__ import annotations

import pytest
from pkcs11 import TokenFlag

from ceremony.core.errors import UsageError
from ceremony.signing.pkcs11 import wrong_pin_message
from ceremony.signing.pkcs11uri import Pkcs11Uri, pin_alias, token_of_pin_alias


def test_rfc7512_examples_parse() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "serial=3d1c;id=%01%02%AB;object=my%20key?module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert uri.token == "Software PKCS#11 softtoken"
    assert uri.manufacturer == "Snake Oil, Inc."
    assert uri.serial == "3d1c"
    assert uri.id == b"\x01\x02\xab"
    assert uri.object == "my key"
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert Pkcs11Uri.parse(str(uri)) == uri
    assert Pkcs11Uri.parse("pkcs11:") == Pkcs11Uri()
    assert Pkcs11Uri.parse("PKCS11:slot-id=3").slot_id == 3


def test_written_uris_read_back_the_same() -> None:
    uri = Pkcs11Uri(
        token="YubiKey PIV #123",
        serial="123",
        id=bytes(range(0, 256, 17)),
        object="notary root registry.example.com/team/app",
        module_path="/usr/lib/x86_64-linux-gnu/libykcs11.so",
    )
    text = str(uri)
    assert " " not in text and ";id=%00%11%22" in text
    assert Pkcs11Uri.parse(text) == uri


def test_module_from_the_option_only_when_the_uri_names_none() -> None:
    bare = Pkcs11Uri.parse("pkcs11:token=a")
    assert bare.with_module("/m.so").module_path == "/m.so"
    assert bare.with_module(None).module_path is None
    own = Pkcs11Uri.parse("pkcs11:token=a?module-path=/own.so")
    assert own.with_module("/m.so").module_path == "/own.so"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("file:/x", "not a PKCS#11 URI"),
        ("pkcs11:token=a?pin-value=1234", "must not carry the PIN"),
        ("pkcs11:token=a?pin-source=file:/p", "must not carry the PIN"),
        ("pkcs11:token=a?module-name=softhsm2", "module-path"),
        ("pkcs11:token=a;token=b", "twice"),
        ("pkcs11:colour=blue", "does not know"),
        ("pkcs11:token=a%2", "two hex digits"),
        ("pkcs11:slot-id=x", "not a number"),
        ("pkcs11:type=key", "unknown object type"),
        ("pkcs11:token=%FF", "not UTF-8"),
    ],
)
def test_malformed_uris_are_usage_errors(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        Pkcs11Uri.parse(text)
    assert says in caught.value.message
    assert "1234" not in caught.value.message


def test_key_list_shows_label_and_serial() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=ceremony;serial=ab12;id=%0A%0B?module-path=/m.so")
    assert uri.describe() == "token 'ceremony' (serial ab12), key id 0a0b"


def test_pin_requests_are_told_apart_from_key_passphrases() -> None:
    assert token_of_pin_alias(pin_alias("ceremony")) == "ceremony"
    assert token_of_pin_alias("root") is None
    assert token_of_pin_alias("targets/releases") is None


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (TokenFlag.USER_PIN_LOCKED | TokenFlag.USER_PIN_COUNT_LOW, "has now locked it"),
        (
            TokenFlag.USER_PIN_FINAL_TRY | TokenFlag.USER_PIN_COUNT_LOW,
            "one more wrong PIN locks it",
        ),
        (TokenFlag.USER_PIN_COUNT_LOW, "few tries are left"),
        (TokenFlag.TOKEN_INITIALIZED, "does not say how many tries are left"),
    ],
)
def test_wrong_pin_sentence_says_what_the_flags_tell(flags: int, says: str) -> None:
    message = wrong_pin_message("token 'a'", int(flags))
    assert says in message
    assert message.count(".") == 1 and message.endswith(".")


def test_public_half_from_an_ec_point_raw_or_wrapped() -> None:
    """CKA_EC_POINT is a DER OCTET STRING by the standard; some tokens give the raw point."""
    from asn1crypto.core import OctetString
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ceremony.signing.pkcs11 import P256_PARAMS, _p256_spki, _spki_from_point

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert _p256_spki(_spki_from_point(P256_PARAMS, raw)) == spki
    assert _p256_spki(_spki_from_point(P256_PARAMS, OctetString(raw).dump())) == spki
    assert _p256_spki(_spki_from_point(P256_PARAMS, b"\x04\x01junk")) is None
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert (
        _p256_spki(
            p384.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        is None
    )
