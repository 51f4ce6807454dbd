"""Which rollback floors a newer trusted root voids (TUF 5.3.11, fast-forward recovery).

The whole path (server double, online home) is in tests/online/test_fast_forward_double.py;
this pins the rule itself, including the cases the double does not produce.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ceremony.core.gotime import GoTime
from ceremony.core.metadata import Envelope, RoleKeys, Root
from ceremony.core.verify import floors_to_reset

BASE = {
    "root": RoleKeys(("r",), 1),
    "targets": RoleKeys(("t",), 1),
    "snapshot": RoleKeys(("s1", "s2"), 1),
    "timestamp": RoleKeys(("ts",), 1),
}


def root(version: int, **roles: RoleKeys) -> Envelope[Root]:
    expires = GoTime.from_datetime(datetime(2030, 1, 1, tzinfo=UTC))
    return Envelope.create(Root(expires, version, {}, {**BASE, **roles}))


@pytest.mark.parametrize(
    ("changes", "reset"),
    [
        ({}, ()),
        ({"root": RoleKeys(("r2",), 1)}, ()),
        ({"targets": RoleKeys(("t2",), 1)}, ()),
        ({"snapshot": RoleKeys(("s2", "s1"), 1)}, ()),  # the same keys in another order
        ({"timestamp": RoleKeys(("ts2",), 1)}, ("timestamp",)),
        ({"timestamp": RoleKeys(("ts", "ts2"), 1)}, ("timestamp",)),
        ({"snapshot": RoleKeys(("s1", "s2"), 2)}, ("snapshot", "timestamp")),
        ({"snapshot": RoleKeys(("s3",), 1)}, ("snapshot", "timestamp")),
        (
            {"snapshot": RoleKeys(("s3",), 1), "timestamp": RoleKeys(("ts2",), 1)},
            ("snapshot", "timestamp"),
        ),
    ],
)
def test_only_new_snapshot_or_timestamp_keys_void_floors(
    changes: dict[str, RoleKeys], reset: tuple[str, ...]
) -> None:
    assert floors_to_reset(root(1), root(3, **changes)) == reset


def test_nothing_is_reset_without_a_trusted_root_or_a_newer_root() -> None:
    rotated = root(2, timestamp=RoleKeys(("ts2",), 1))
    assert floors_to_reset(None, rotated) == ()
    assert floors_to_reset(rotated, rotated) == ()


def test_an_older_root_voids_nothing() -> None:
    rotated = root(3, timestamp=RoleKeys(("ts2",), 1))
    assert floors_to_reset(rotated, root(2)) == ()


def test_the_offline_trust_state_replaces_only_voided_floors() -> None:
    from ceremony.offline.review import record_signing
    from ceremony.offline.trust import TrustState

    forwarded = {"root": 1, "targets": 4, "snapshot": 9, "timestamp": 10**9}
    stored = TrustState("example.com/app", root(1), forwarded)
    honest = {"root": 2, "targets": 4, "snapshot": 10, "timestamp": 12}
    rotated = TrustState("example.com/app", root(2, timestamp=RoleKeys(("ts2",), 1)), honest)
    assert record_signing(stored, rotated).versions == {
        **forwarded,
        "root": 2,
        "snapshot": 10,
        "timestamp": 12,
    }
    unrelated = TrustState("example.com/app", root(2, targets=RoleKeys(("t2",), 1)), honest)
    assert record_signing(stored, unrelated).versions["timestamp"] == 10**9
