"""PKCS#11 URIs (RFC 7512): which token, which key, and which module to load.

A key record's signer URI names the token by label and serial, the key by `id`
(its CKA_ID) and `object` (its label), and the module by the `module-path` query
attribute, so signing later needs nothing else. A PIN never goes into a URI: the
record and the process list would show it, so `pin-value` and `pin-source` are
refused. Pure: no module is loaded here (see `ceremony.signing.pkcs11`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ceremony.core.errors import UsageError

SCHEME = "pkcs11:"

# RFC 7512 §2.3: characters a value may hold unencoded (path, query).
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_PATH_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,&")
_QUERY_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,/?|")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")

_PATH_ATTRIBUTES = (
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "object",
    "type",
    "id",
    "slot-manufacturer",
    "slot-description",
    "slot-id",
)
_OBJECT_TYPES = ("private", "public", "cert", "data", "secret-key")


def _decode(value: str, uri: str) -> bytes:
    if "%" in _PCT.sub("", value):
        raise UsageError(
            f"The PKCS#11 URI {uri!r} has a '%' that is not followed by two hex digits."
        )
    out = bytearray()
    pos = 0
    for match in _PCT.finditer(value):
        out += value[pos : match.start()].encode("utf-8")
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += value[pos:].encode("utf-8")
    return bytes(out)


def _encode(raw: bytes, safe: frozenset[str]) -> str:
    return "".join(chr(b) if chr(b) in safe else f"%{b:02X}" for b in raw)


def _text(raw: bytes, name: str, uri: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"The {name} in PKCS#11 URI {uri!r} is not UTF-8 text.") from exc


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI this tool uses; None means "any"."""

    token: str | None = None
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    module_path: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Read a URI; UsageError (exit 2) naming what is wrong with it."""
        if not text[: len(SCHEME)].lower() == SCHEME:
            raise UsageError(f"{text!r} is not a PKCS#11 URI: it must start with 'pkcs11:'.")
        body = text[len(SCHEME) :]
        path, _, query = body.partition("?")
        values: dict[str, bytes] = {}
        for part in path.split(";") if path else []:
            name, eq, value = part.partition("=")
            if not eq or name not in _PATH_ATTRIBUTES:
                raise UsageError(
                    f"The PKCS#11 URI {text!r} has an attribute {name!r} this tool does not know; "
                    "use token, serial, manufacturer, model, slot-id, object, id and type."
                )
            if name in values:
                raise UsageError(f"The PKCS#11 URI {text!r} names {name!r} twice.")
            values[name] = _decode(value, text)
        module_path: str | None = None
        for part in query.split("&") if query else []:
            name, eq, value = part.partition("=")
            if name in ("pin-value", "pin-source"):
                raise UsageError(
                    "A PKCS#11 URI must not carry the PIN (the key record and the process list "
                    "would show it); give it with CEREMONY_PKCS11_PIN or at the prompt."
                )
            if not eq or name not in ("module-path", "module-name") or module_path is not None:
                raise UsageError(
                    f"The PKCS#11 URI {text!r} has a query attribute {name!r} this tool does not "
                    "take; give the module once, as module-path=PATH."
                )
            if name == "module-name":
                raise UsageError(
                    "Give the PKCS#11 module as module-path=/full/path.so (or --pkcs11-module), "
                    "not module-name: the path is recorded so signing later loads the same file."
                )
            module_path = _text(_decode(value, text), "module-path", text)
        kind = values.get("type")
        if kind is not None and _text(kind, "type", text) not in _OBJECT_TYPES:
            raise UsageError(f"The PKCS#11 URI {text!r} has an unknown object type.")
        slot = values.get("slot-id")
        slot_id: int | None = None
        if slot is not None:
            if not slot.isdigit():
                raise UsageError(f"The slot-id in PKCS#11 URI {text!r} is not a number.")
            slot_id = int(slot)

        def text_of(name: str) -> str | None:
            raw = values.get(name)
            return None if raw is None else _text(raw, name, text)

        return cls(
            token=text_of("token"),
            serial=text_of("serial"),
            manufacturer=text_of("manufacturer"),
            model=text_of("model"),
            slot_id=slot_id,
            object=text_of("object"),
            id=values.get("id"),
            module_path=module_path or None,
        )

    def __str__(self) -> str:
        parts = []
        for name, value in (
            ("token", self.token),
            ("manufacturer", self.manufacturer),
            ("model", self.model),
            ("serial", self.serial),
        ):
            if value is not None:
                parts.append(f"{name}={_encode(value.encode('utf-8'), _PATH_SAFE)}")
        if self.slot_id is not None:
            parts.append(f"slot-id={self.slot_id}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02X}" for b in self.id))
        if self.object is not None:
            parts.append(f"object={_encode(self.object.encode('utf-8'), _PATH_SAFE)}")
        uri = SCHEME + ";".join(parts)
        if self.module_path is not None:
            uri += "?module-path=" + _encode(self.module_path.encode("utf-8"), _QUERY_SAFE)
        return uri

    def with_module(self, module_path: str | None) -> Pkcs11Uri:
        """This URI, with `module_path` when it names none itself (the URI's own one wins)."""
        if self.module_path is not None or not module_path:
            return self
        return replace(self, module_path=module_path)

    def token_name(self) -> str:
        """The token as people know it: its label, and its serial when the URI has one."""
        name = repr(self.token) if self.token is not None else "any token"
        return f"token {name}" + (f" (serial {self.serial})" if self.serial else "")

    def describe(self) -> str:
        """Where the key lives, for `key list`: the token's label and serial, and the key's id."""
        text = self.token_name()
        if self.id is not None:
            text += f", key id {self.id.hex()}"
        elif self.object is not None:
            text += f", key {self.object!r}"
        return text


PIN_ALIAS_PREFIX = "pkcs11-pin:"


def pin_alias(token_label: str) -> str:
    """What a token backend asks its `PassphraseSource` for: the user PIN of this token."""
    return f"{PIN_ALIAS_PREFIX}{token_label}"


def token_of_pin_alias(alias: str) -> str | None:
    """The token label a PIN request names, or None when `alias` asks for a key passphrase."""
    return alias.removeprefix(PIN_ALIAS_PREFIX) if alias.startswith(PIN_ALIAS_PREFIX) else None
