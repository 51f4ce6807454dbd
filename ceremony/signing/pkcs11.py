"""The `pkcs11:` signing backend: ECDSA P-256 keys on a token or HSM, through python-pkcs11.

A key is named by an RFC 7512 URI (`ceremony.signing.pkcs11uri`) that records the
module path, so signing needs nothing but the URI and the PIN. The PIN comes from
the injected `PassphraseSource` (asked for with `pin_alias(token label)`) and is
tried once: a wrong PIN is reported with what the token's flags say about the tries
left, never retried. PKCS#11 login state belongs to the whole process, so each
token gets one logged-in session per process and its PIN is asked for once.

Signatures are CKM_ECDSA over a SHA-256 digest made here (the mechanism every
token has), returned as raw r‖s: Notary's `ecdsa` method. `KeySigner` verifies
each one right after it is made. Keys made here are non-extractable and
sensitive; the private half never leaves the token. Every token failure becomes
one sentence (exit 3 for a missing or removed token, 1 for a wrong PIN).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets as random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pkcs11
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import (
    Attribute,
    CertificateType,
    KeyType,
    Mechanism,
    MechanismFlag,
    ObjectClass,
    TokenFlag,
)
from pkcs11.util.ec import encode_named_curve_parameters

from ceremony.core.errors import (
    Aborted,
    EnvironmentFailure,
    InputRejected,
    MalformedInput,
    UsageError,
    printable,
)
from ceremony.core.keys import pem_blocks, pem_encode
from ceremony.core.metadata import Key, b64encode
from ceremony.signing.pkcs11uri import Pkcs11Uri, pin_alias
from ceremony.signing.private import PrivateKey
from ceremony.signing.signer import SIGNER_FOR_URI_SCHEME, PassphraseSource, sign_metadata

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as pkcs11_library

P256_PARAMS = encode_named_curve_parameters("secp256r1")
KEY_ID_BYTES = 16
P256_SIGNATURE_BYTES = 64
_WRITE_CHECK = b"notary-ceremony token key check v1\x00"


class TokenMissing(EnvironmentFailure):
    """The token named is not present, or went away during the command."""


class TokenFailed(EnvironmentFailure):
    """The module or the token failed an operation."""


class KeyNotOnToken(EnvironmentFailure):
    """The token is there, but does not hold the key named."""


class WrongPin(InputRejected):
    """The token refused the PIN (tried once; never retried here)."""


class PinLocked(EnvironmentFailure):
    """The token's user PIN is locked."""


def wrong_pin_message(token: str, flags: int) -> str:
    """The sentence for a refused PIN, saying what the token's flags tell about the tries left."""
    if flags & TokenFlag.USER_PIN_LOCKED:
        tries = "and the token has now locked it: unlock it with the security officer PIN or PUK"
    elif flags & TokenFlag.USER_PIN_FINAL_TRY:
        tries = "and the token says one more wrong PIN locks it: check the PIN before trying again"
    elif flags & TokenFlag.USER_PIN_COUNT_LOW:
        tries = "and the token says few tries are left: check the PIN before trying again"
    else:
        tries = "(the token does not say how many tries are left): check it before trying again"
    return f"The PIN for {token} is wrong, {tries}; nothing was signed or written."


def check_pin_tries(token: str, flags: int) -> None:
    """Stop before the last PIN try: when the token says one more wrong PIN locks it, no PIN
    is asked for or sent (a YubiKey PIV locks after 3 wrong PINs)."""
    if flags & TokenFlag.USER_PIN_LOCKED:
        raise PinLocked(
            f"The PIN of {token} is locked: unlock it with the security officer PIN or PUK, "
            "then run the command again."
        )
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        raise PinLocked(
            f"{token} says one more wrong PIN locks it, so no PIN was tried: enter the PIN "
            "once with the token vendor's tool (a right PIN resets the count), then run the "
            "command again; nothing was signed or written."
        )


@contextlib.contextmanager
def _failures(name: str, token: pkcs11.Token | None = None) -> Iterator[None]:
    """Turn the module's exceptions into one sentence each."""
    try:
        yield
    except pkcs11.PinIncorrect as exc:
        raise WrongPin(wrong_pin_message(name, _fresh_flags(token))) from exc
    except pkcs11.PinLocked as exc:
        raise PinLocked(
            f"The PIN of {name} is locked: unlock it with the security officer PIN or PUK, "
            "then run the command again."
        ) from exc
    except (pkcs11.PinLenRange, pkcs11.PinInvalid) as exc:
        raise WrongPin(
            f"{name} does not accept a PIN of that length or with those characters; "
            "check the PIN before trying again."
        ) from exc
    except (
        pkcs11.DeviceRemoved,
        pkcs11.TokenNotPresent,
        pkcs11.TokenNotRecognised,
        pkcs11.SessionClosed,
        pkcs11.SessionHandleInvalid,
        pkcs11.SlotIDInvalid,
        pkcs11.DeviceError,
    ) as exc:
        raise TokenMissing(
            f"{name} was removed or stopped answering; insert it and run the command again "
            "(nothing was signed or written)."
        ) from exc
    except pkcs11.FunctionCancelled as exc:
        raise Aborted(
            f"The operation on {name} was cancelled (was a touch confirmed in time?); "
            "nothing was signed or written."
        ) from exc
    except pkcs11.PKCS11Error as exc:
        raise TokenFailed(
            f"{name} refused the operation ({type(exc).__name__}); nothing was signed or written."
        ) from exc


def _fresh_flags(token: pkcs11.Token | None) -> int:
    """The token's flags as it reports them now (python-pkcs11 caches them per object)."""
    if token is None:
        return 0
    try:
        return int(token.slot.get_token().flags)
    except pkcs11.PKCS11Error:
        return 0


def _library(module_path: str) -> pkcs11_library:
    try:
        return pkcs11.lib(module_path)
    except pkcs11.PKCS11Error as exc:
        if type(exc) is pkcs11.PKCS11Error:  # the shared object itself did not load
            raise TokenFailed(
                f"The PKCS#11 module {module_path} could not be loaded; check --pkcs11-module or "
                "CEREMONY_PKCS11_MODULE."
            ) from exc
        raise TokenFailed(
            f"The PKCS#11 module {module_path} did not start ({type(exc).__name__}); check its "
            "configuration (for SoftHSM2, SOFTHSM2_CONF)."
        ) from exc


def _serial(token: pkcs11.Token) -> str:
    return token.serial.decode("ascii", "replace").strip()


def _token_name(token: pkcs11.Token) -> str:
    serial = _serial(token)
    return f"token {printable(token.label)!r}" + (f" (serial {serial})" if serial else "")


def _find_token(library: pkcs11_library, uri: Pkcs11Uri) -> pkcs11.Token:
    """The one initialised token the URI names; TokenMissing when there is none."""
    found: list[pkcs11.Token] = []
    with _failures(uri.token_name()):
        slots = library.get_slots(token_present=True)
    for slot in slots:
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        try:
            token = slot.get_token()
            flags = token.flags
        except pkcs11.PKCS11Error:
            continue  # pulled while we looked
        if not flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        wanted = (
            (uri.token, token.label),
            (uri.serial, _serial(token)),
            (uri.manufacturer, token.manufacturer_id),
            (uri.model, token.model),
        )
        if all(want is None or want == have.strip() for want, have in wanted):
            found.append(token)
    if not found:
        raise TokenMissing(
            f"No {uri.token_name()} is present; insert it (or check the module's configuration) "
            "and run the command again."
        )
    if len(found) > 1:
        raise UsageError(
            f"{len(found)} tokens match {uri.token_name()}; add serial= to the PKCS#11 URI."
        )
    return found[0]


def token_present(uri_text: str) -> bool:
    """Whether the token a key's URI names is present (no PIN needed): a key restored from
    shares must not leave a second live copy on a token this machine can still reach."""
    uri = Pkcs11Uri.parse(uri_text)
    if uri.module_path is None:
        return False
    try:
        _find_token(_library(uri.module_path), uri)
    except (TokenMissing, TokenFailed):
        return False
    return True


@dataclass(slots=True, eq=False)
class _Login:
    """This process's logged-in session on one token (login state is per process in PKCS#11)."""

    token: pkcs11.Token
    session: pkcs11.Session
    module_path: str
    pin: str | None = field(repr=False)  # kept for keys that want the PIN before each signature

    @property
    def name(self) -> str:
        return _token_name(self.token)


_LOGINS: dict[tuple[str, int, str, str], _Login] = {}


def _login(uri: Pkcs11Uri, secrets: PassphraseSource) -> _Login:
    """Find the token and log in once (asking `secrets` for the PIN); reused within the process."""
    if uri.module_path is None:
        raise UsageError(
            "Say which PKCS#11 module to load: --pkcs11-module PATH, CEREMONY_PKCS11_MODULE, "
            "or module-path= in the URI."
        )
    library = _library(uri.module_path)
    token = _find_token(library, uri)
    key = (uri.module_path, token.slot.slot_id, token.label, _serial(token))
    cached = _LOGINS.get(key)
    if cached is not None:
        return cached
    name = _token_name(token)
    rw = not token.flags & TokenFlag.WRITE_PROTECTED
    pin: str | None = None
    with _failures(name, token):
        if token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:  # a PIN pad on the reader
            session = token.open(rw=rw, user_pin=pkcs11.PROTECTED_AUTH)
        else:
            check_pin_tries(name, int(token.flags))
            pin = secrets(pin_alias(token.label))
            if not pin:
                raise UsageError(f"An empty PIN cannot log in to {name}; give its PIN.")
            try:
                session = token.open(rw=rw, user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:  # logged in by another session of this process
                session = token.open(rw=rw)
    login = _Login(token, session, uri.module_path, pin)
    _LOGINS[key] = login
    return login


def _p256_spki(spki: bytes) -> bytes | None:
    """`spki` re-encoded as cryptography writes it when it is a P-256 key, else None."""
    try:
        native = serialization.load_der_public_key(spki)
    except (ValueError, TypeError):
        return None
    if not isinstance(native, ec.EllipticCurvePublicKey) or not isinstance(
        native.curve, ec.SECP256R1
    ):
        return None
    return native.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _spki_from_point(params: bytes, point: bytes) -> bytes:
    """An SPKI from CKA_EC_PARAMS and CKA_EC_POINT (DER OCTET STRING, or raw on some tokens);
    empty when they do not parse (the caller then looks elsewhere)."""
    try:
        raw = point
        if not (len(point) == 65 and point[0] == 4):
            raw = bytes(asn1_core.OctetString.load(point))
        return bytes(
            asn1_keys.PublicKeyInfo(
                {
                    "algorithm": {
                        "algorithm": "ec",
                        "parameters": asn1_keys.ECDomainParameters.load(params),
                    },
                    "public_key": raw,
                }
            ).dump()
        )
    except (ValueError, TypeError):
        return b""


def _objects(session: pkcs11.Session, attrs: dict[Attribute, Any]) -> list[pkcs11.Object]:
    return list(session.get_objects(attrs))


def _attribute(obj: pkcs11.Object, attribute: Attribute) -> Any:
    """An attribute the token may not have for this object (None then)."""
    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive, pkcs11.FunctionFailed):
        return None


def _certificate_key(der: bytes) -> Key | None:
    """A certificate read from the token as a metadata key (`ecdsa-x509`), or None."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if _p256_spki(spki) is None:
        return None
    return Key("ecdsa-x509", b64encode(pem_encode("CERTIFICATE", der)))


def _certificates(session: pkcs11.Session, key_id: bytes) -> list[Key]:
    found = []
    for obj in _objects(
        session,
        {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.ID: key_id,
        },
    ):
        value = _attribute(obj, Attribute.VALUE)
        key = _certificate_key(bytes(value)) if value else None
        if key is not None:
            found.append(key)
    return found


def _public_spki(session: pkcs11.Session, private: pkcs11.Object, key_id: bytes) -> bytes | None:
    """The private key's public half: a public key object with its id, its own CKA_EC_POINT,
    or a certificate with its id."""
    candidates: list[bytes] = []
    if key_id:
        for obj in _objects(
            session,
            {
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.KEY_TYPE: KeyType.EC,
                Attribute.ID: key_id,
            },
        ):
            params, point = (
                _attribute(obj, Attribute.EC_PARAMS),
                _attribute(obj, Attribute.EC_POINT),
            )
            if params and point:
                candidates.append(_spki_from_point(bytes(params), bytes(point)))
    params, point = (
        _attribute(private, Attribute.EC_PARAMS),
        _attribute(private, Attribute.EC_POINT),
    )
    if params and point:
        candidates.append(_spki_from_point(bytes(params), bytes(point)))
    if key_id:
        candidates.extend(pem_spki(cert) for cert in _certificates(session, key_id))
    for spki in candidates:
        found = _p256_spki(spki)
        if found is not None:
            return found
    return None


def pem_spki(certificate: Key) -> bytes:
    """The SPKI of a certificate metadata key."""
    block = pem_blocks(certificate.public_bytes, what="certificate")[0]
    cert = x509.load_der_x509_certificate(block.body)
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True, eq=False)
class TokenKey:
    """A `Backend`: an EC P-256 private key on a token, used through this process's session."""

    uri: Pkcs11Uri  # canonical: token label and serial, key id and label, module path
    public: Key  # the bare key (DER SPKI)
    handle: pkcs11.Object = field(repr=False)
    login: _Login = field(repr=False)
    always_authenticate: bool = False  # the token wants the PIN again before each signature

    @property
    def label(self) -> str:
        return self.uri.object or ""

    def public_key(self) -> Key:
        return self.public

    def sign_raw(self, message: bytes) -> tuple[str, bytes]:
        """CKM_ECDSA over SHA-256(message): raw r‖s, Notary's `ecdsa` signature."""
        digest = hashlib.sha256(message).digest()
        extra: dict[str, Any] = {}
        if self.always_authenticate and self.login.pin is not None:
            extra["pin"] = self.login.pin
        if not isinstance(self.handle, pkcs11.SignMixin):
            raise TokenFailed(
                f"The key {self.uri.describe()} is not allowed to sign (its CKA_SIGN is off)."
            )
        with _failures(self.login.name, self.login.token):
            raw = self.handle.sign(digest, mechanism=Mechanism.ECDSA, **extra)
        if len(raw) != P256_SIGNATURE_BYTES:
            raise TokenFailed(
                f"{self.login.name} returned a signature of {len(raw)} bytes, not a P-256 "
                "signature; nothing was signed."
            )
        return "ecdsa", bytes(raw)

    def __repr__(self) -> str:
        return f"TokenKey({self.uri.describe()})"


def _token_key(login: _Login, private: pkcs11.Object, *, required: bool = True) -> TokenKey | None:
    key_id = bytes(_attribute(private, Attribute.ID) or b"")
    label = _attribute(private, Attribute.LABEL)
    spki = _public_spki(login.session, private, key_id)
    uri = Pkcs11Uri(
        token=login.token.label,
        serial=_serial(login.token) or None,
        id=key_id or None,
        object=str(label) if label else None,
        module_path=login.module_path,
    )
    if spki is None:
        if not required:
            return None
        raise KeyNotOnToken(
            f"{login.name} holds the private key {uri.describe()} but no P-256 public half "
            "for it (no public key object, EC point or certificate with its id)."
        )
    always = bool(_attribute(private, Attribute.ALWAYS_AUTHENTICATE))
    return TokenKey(uri, Key("ecdsa", b64encode(spki)), private, login, always)


def _private_keys(login: _Login, uri: Pkcs11Uri) -> list[pkcs11.Object]:
    attrs: dict[Attribute, Any] = {
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.KEY_TYPE: KeyType.EC,
    }
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    return _objects(login.session, attrs)


def _what(uri: Pkcs11Uri) -> str:
    parts = []
    if uri.id is not None:
        parts.append(f"id {uri.id.hex()}")
    if uri.object is not None:
        parts.append(f"label {uri.object!r}")
    return " and ".join(parts) or "any id"


def open_token_key(uri_text: str, secrets: PassphraseSource) -> TokenKey:
    """The backend for a key record's `pkcs11:` URI (registered for the scheme)."""
    uri = Pkcs11Uri.parse(uri_text)
    if uri.id is None and uri.object is None:
        raise UsageError(f"The PKCS#11 URI {uri_text!r} names no key: add id= or object=.")
    login = _login(uri, secrets)
    with _failures(login.name, login.token):
        keys = _private_keys(login, uri)
        if not keys:
            raise KeyNotOnToken(
                f"{login.name} holds no EC private key with {_what(uri)}; insert the token that "
                "holds it (or adopt its keys again with `ceremony key import-token`)."
            )
        if len(keys) > 1:
            raise UsageError(
                f"{len(keys)} keys on {login.name} match {uri_text!r}; give the key's id=."
            )
        found = _token_key(login, keys[0])
    assert found is not None  # noqa: S101 - required=True raises instead
    return found


SIGNER_FOR_URI_SCHEME["pkcs11"] = open_token_key


# -- putting keys and certificates on a token -----------------------------------------


def _new_key_id(login: _Login, wanted: bytes | None) -> bytes:
    key_id = wanted if wanted is not None else random.token_bytes(KEY_ID_BYTES)
    if _objects(login.session, {Attribute.ID: key_id}):
        raise UsageError(
            f"{login.name} already holds an object with id {key_id.hex()}; choose another id= "
            "(or leave id= out for a random one)."
        )
    return key_id


def _check_writable(login: _Login) -> None:
    if not login.session.rw:
        raise TokenFailed(f"{login.name} is write-protected; nothing was written to it.")


def _check_kept_secret(login: _Login, private: pkcs11.Object) -> None:
    if _attribute(private, Attribute.EXTRACTABLE) is not False or not _attribute(
        private, Attribute.SENSITIVE
    ):
        raise TokenFailed(
            f"{login.name} did not keep the new key sensitive and non-extractable; it was removed."
        )


def generate_token_key(uri: Pkcs11Uri, secrets: PassphraseSource, *, label: str) -> TokenKey:
    """A new P-256 key pair made ON the token: private half non-extractable and sensitive,
    a random CKA_ID (or the URI's `id`), `label` (or the URI's `object`) on both halves."""
    login = _login(uri, secrets)
    _check_writable(login)
    label = uri.object or label
    with _failures(login.name, login.token):
        key_id = _new_key_id(login, uri.id)
        parameters = login.session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True
        )
        _public, private = parameters.generate_keypair(
            id=key_id,
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.TOKEN: True, Attribute.PRIVATE: False},
            private_template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
        key = _token_key(login, private)
    assert key is not None  # noqa: S101 - required=True raises instead
    try:
        _check_kept_secret(login, private)
    except BaseException:
        discard_token_key(key)
        raise
    return key


def _certificate_der(certificate: Key) -> bytes:
    blocks = pem_blocks(certificate.public_bytes, what="certificate")
    if not certificate.is_x509 or not blocks:
        raise MalformedInput("Only an x509 certificate key can be stored on a token.")
    return blocks[0].body


def store_certificate(key: TokenKey, certificate: Key) -> None:
    """Store `certificate` on the token as a CKO_CERTIFICATE with the key's CKA_ID and label."""
    der = _certificate_der(certificate)
    cert = x509.load_der_x509_certificate(der)
    login = key.login
    _check_writable(login)
    with _failures(login.name, login.token):
        login.session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.ID: key.uri.id or b"",
                Attribute.LABEL: key.label,
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.ISSUER: cert.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: asn1_core.Integer(cert.serial_number).dump(),
                Attribute.VALUE: der,
            }
        )


def write_private_key(
    uri: Pkcs11Uri,
    private: PrivateKey,
    secrets: PassphraseSource,
    *,
    label: str,
    certificates: tuple[Key, ...] = (),
) -> TokenKey:
    """Put an existing P-256 `private` key on the token named by `uri`, non-extractable and
    sensitive, with its public half and `certificates` under one new CKA_ID; check it signs.

    For restoring a key from a backup, or generating one with a backup: the caller
    then forgets its copy. Anything written is removed again when a step fails.
    """
    native = private.native
    if not isinstance(native, ec.EllipticCurvePrivateKey) or not isinstance(
        native.curve, ec.SECP256R1
    ):
        raise InputRejected(
            f"Only a P-256 key can be written to a token; key {private.canonical_id[:12]} is not one."
        )
    point = native.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    value = native.private_numbers().private_value.to_bytes(32, "big")
    login = _login(uri, secrets)
    _check_writable(login)
    label = uri.object or label
    with _failures(login.name, login.token):
        key_id = _new_key_id(login, uri.id)
        common = {Attribute.KEY_TYPE: KeyType.EC, Attribute.TOKEN: True, Attribute.ID: key_id}
        login.session.create_object(
            {
                **common,
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.LABEL: label,
                Attribute.PRIVATE: False,
                Attribute.VERIFY: True,
                Attribute.EC_PARAMS: P256_PARAMS,
                Attribute.EC_POINT: asn1_core.OctetString(point).dump(),
            }
        )
        handle = login.session.create_object(
            {
                **common,
                Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                Attribute.LABEL: label,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.EC_PARAMS: P256_PARAMS,
                Attribute.VALUE: value,
            }
        )
    key = TokenKey(
        Pkcs11Uri(
            token=login.token.label,
            serial=_serial(login.token) or None,
            id=key_id,
            object=label or None,
            module_path=login.module_path,
        ),
        private.public_key(),
        handle,
        login,
    )
    try:
        _check_kept_secret(login, handle)
        for certificate in certificates:
            store_certificate(key, certificate)
        sign_metadata(key, key.public, _WRITE_CHECK + random.token_bytes(16))
    except BaseException:
        discard_token_key(key)
        raise
    return key


def discard_token_key(key: TokenKey) -> None:
    """Remove every object with the key's CKA_ID (undoing a generation that failed half-way)."""
    if not key.uri.id:
        return
    login = key.login
    with contextlib.suppress(pkcs11.PKCS11Error):
        for obj in _objects(login.session, {Attribute.ID: key.uri.id}):
            obj.destroy()


# -- removing a retired key from its token -------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class KeyObjects:
    """A key's objects found on its token (private key first), ready to be destroyed."""

    token: str  # the token, for people: label and serial
    objects: tuple[pkcs11.Object, ...] = field(repr=False)
    login: _Login = field(repr=False)

    def destroy(self) -> int:
        """Destroy every object found; how many were destroyed."""
        _check_writable(self.login)
        with _failures(self.login.name, self.login.token):
            for obj in self.objects:
                obj.destroy()
        return len(self.objects)


def _same_key(spki: bytes | None, wanted: bytes) -> bool:
    return spki is not None and _p256_spki(spki) == wanted


def find_key_objects(uri_text: str, public: Key, secrets: PassphraseSource) -> KeyObjects:
    """What retiring a token key removes: the private key its `pkcs11:` URI names, and the
    public key and certificate objects of the same key (same CKA_ID when it has one, and
    always the same public half, so no other key's objects are touched).

    Logging in (the PIN is asked for here) and finding change nothing; `KeyObjects.destroy`
    removes them.
    """
    uri = Pkcs11Uri.parse(uri_text)
    wanted = _p256_spki(public.public_bytes)
    if wanted is None:
        raise UsageError("Only a P-256 key can be removed from a token.")
    login = _login(uri, secrets)
    _check_writable(login)
    same_id: dict[Attribute, Any] = {Attribute.ID: uri.id} if uri.id is not None else {}
    found: list[pkcs11.Object] = []
    with _failures(login.name, login.token):
        for private in _private_keys(login, uri):
            key_id = bytes(_attribute(private, Attribute.ID) or b"")
            if _same_key(_public_spki(login.session, private, key_id), wanted):
                found.append(private)
        for obj in _objects(login.session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, **same_id}):
            params = _attribute(obj, Attribute.EC_PARAMS)
            point = _attribute(obj, Attribute.EC_POINT)
            if (
                params
                and point
                and _same_key(_spki_from_point(bytes(params), bytes(point)), wanted)
            ):
                found.append(obj)
        for obj in _objects(login.session, {Attribute.CLASS: ObjectClass.CERTIFICATE, **same_id}):
            value = _attribute(obj, Attribute.VALUE)
            certificate = _certificate_key(bytes(value)) if value else None
            if certificate is not None and _same_key(pem_spki(certificate), wanted):
                found.append(obj)
    return KeyObjects(login.name, tuple(found), login)


# -- adopting keys already on a token ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A key found on a token: its backend and the certificates stored with its id."""

    backend: TokenKey
    certificates: tuple[Key, ...]


@dataclass(frozen=True, slots=True)
class TokenScan:
    """What `scan_token` found: usable keys, and one sentence for each EC key it passed over."""

    token: str
    keys: tuple[FoundKey, ...]
    skipped: tuple[str, ...]


def scan_token(uri: Pkcs11Uri, secrets: PassphraseSource) -> TokenScan:
    """Every EC P-256 private key the URI selects, with its public half and certificates."""
    login = _login(uri, secrets)
    keys: list[FoundKey] = []
    skipped: list[str] = []
    with _failures(login.name, login.token):
        privates = _private_keys(login, uri)
        for private in privates:
            found = _token_key(login, private, required=False)
            key_id = bytes(_attribute(private, Attribute.ID) or b"")
            if found is None:
                skipped.append(
                    f"key id {key_id.hex() or '(none)'} is not a P-256 key with a public half "
                    "on the token; it was left out"
                )
                continue
            certificates = tuple(_certificates(login.session, key_id)) if key_id else ()
            keys.append(FoundKey(found, certificates))
    if not keys:
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise KeyNotOnToken(f"{login.name} holds no P-256 private key with {_what(uri)}{detail}.")
    return TokenScan(login.name, tuple(keys), tuple(skipped))
