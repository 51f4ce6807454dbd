"""The trust state's records, acknowledgements and the signing policy, without a server."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from ceremony.core.canonical import encode_canonical
from ceremony.core.changes import InitRepository, SetExpiry
from ceremony.core.errors import HomeDamaged, MalformedInput
from ceremony.core.gotime import GoTime
from ceremony.core.gun import check_gun, gun_folder
from ceremony.core.metadata import Envelope, Root
from ceremony.core.plan import plan
from ceremony.offline.policy import Policy
from ceremony.offline.review import Acknowledgements, Needed
from ceremony.offline.trust import SignedRecord, SignedRole, TrustState
from ceremony.signing.certificates import make_root_certificate
from ceremony.signing.private import PrivateKey

NOW = datetime(2026, 12, 1, tzinfo=UTC)
GUN = "example.com/unit/app"


def _plan(root_threshold: int = 1, years: int = 3) -> object:
    root = make_root_certificate(PrivateKey.generate_ecdsa(), GUN, NOW)
    targets = PrivateKey.generate_ecdsa().public_key()
    changes = [
        InitRepository((root,), root_threshold, (targets,), 1, targets, targets),
        SetExpiry("root", GoTime.from_datetime(NOW + timedelta(days=3650))),
        SetExpiry("targets", GoTime.from_datetime(NOW + timedelta(days=365 * years))),
    ]
    return plan({}, changes)


def _state() -> TrustState:
    result = _plan()
    root = result.roles["root"].body  # type: ignore[attr-defined]
    assert isinstance(root, Root)
    record = SignedRecord(
        "ab" * 16, "cd" * 32, "2026-01-01T00:00:00Z", ("2026-01-02T00:00:00Z",),
        {"targets": SignedRole(5, "ef" * 32, ("01" * 32,))}, ("abandon:" + "12" * 16,),
    )  # fmt: skip
    return TrustState(GUN, Envelope.create(root), {"targets": 4}, {record.request_id: record})


def test_state_round_trips_and_answers_what_was_signed() -> None:
    state = _state()
    again = TrustState.from_bytes(state.to_bytes())
    assert again.to_bytes() == state.to_bytes()
    assert again.newest_signed("targets") == 5 and again.newest_signed("root") == 0
    assert [(v, d) for v, d, _ in again.signed_versions("targets")] == [(5, "ef" * 32)]


def test_a_format_1_state_still_reads() -> None:
    state = _state()
    doc = json.loads(state.to_bytes())
    old = {
        "format": 1,
        "gun": GUN,
        "root": doc["root"],
        "versions": doc["versions"],
        "signed": {
            rid: {"created": r["created"], "digest": r["digest"],
                  "roles": {k: {"body_sha256": v["body_sha256"], "version": v["version"]}
                            for k, v in r["roles"].items()}}
            for rid, r in doc["requests"].items()
        },
    }  # fmt: skip
    read = TrustState.from_bytes(encode_canonical(old))
    record = read.requests["ab" * 16]
    assert record.roles["targets"].version == 5 and record.roles["targets"].keys == ()
    assert record.signed_at == ("2026-01-01T00:00:00Z",)


def test_a_damaged_state_is_one_sentence() -> None:
    with pytest.raises(HomeDamaged, match="lacks the field"):
        TrustState.from_bytes(b'{"format": 2, "gun": "x"}')
    with pytest.raises(HomeDamaged, match="damaged"):
        TrustState.from_bytes(base64.b64encode(b"junk"))


def test_fingerprint_acknowledgements_need_sixteen_digits() -> None:
    need = Needed("key", ("0123456789abcdef" + "0" * 48,), "a key")
    assert need.satisfied_by(Acknowledgements(keys=("0123456789abcdef",)))
    assert not need.satisfied_by(Acknowledgements(keys=("0123456789abcde",)))  # 15 digits
    assert not need.satisfied_by(Acknowledgements(keys=("1123456789abcdef",)))
    role = Needed("role", ("targets/releases",), "a role")
    assert role.satisfied_by(Acknowledgements(roles=("targets/releases",)))
    assert not role.satisfied_by(Acknowledgements(roles=("targets",)))
    assert role.flag == "--accept targets/releases"


def test_policy_rules_name_what_they_refuse() -> None:
    result = _plan(root_threshold=1, years=3)
    assert Policy().violations(GUN, result, NOW) == []  # type: ignore[arg-type]
    strict = Policy.from_toml(
        b"max_expiry_days = { targets = 365 }\nmin_threshold = { root = 2 }\n"
        b'gun_prefixes = ["registry.example.com/"]\n'
    )
    found = strict.violations(GUN, result, NOW)  # type: ignore[arg-type]
    assert sorted(v.split(":")[0] for v in found) == [
        "gun_prefixes",
        "max_expiry_days.targets",
        "min_threshold.root",
    ]


@pytest.mark.parametrize(
    "text",
    [b"nonsense = 1\n", b"min_threshold = { root = 0 }\n", b"gun_prefixes = 3\n", b"= broken"],
)
def test_a_bad_policy_is_refused(text: bytes) -> None:
    with pytest.raises(MalformedInput):
        Policy.from_toml(text)


def test_gun_rule_and_folders() -> None:
    assert check_gun("registry.example.com:5000/team/app")
    for bad in ("", "a b", "a*", "a/./b", "a\u202eb", "x" * 256, 3):
        with pytest.raises(MalformedInput):
            check_gun(bad)
    long = "example.com/" + "y" * 243
    assert len(gun_folder(long)) <= 100 and gun_folder(long) != gun_folder(long[:-1] + "z")
    assert gun_folder("example.com/a") == "example.com%2Fa"
