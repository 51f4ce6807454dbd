"""A signing policy held on the offline machine: limits no request can talk it out of.

`HOME/policy.toml` (optional; without it nothing is limited)::

    # the longest expiry this machine signs, in days from its own clock
    max_expiry_days = { root = 3650, targets = 1095, delegation = 1095 }
    # the lowest thresholds it signs
    min_threshold = { root = 2, targets = 1, delegation = 1 }
    # the repositories it signs for (GUN prefixes); absent or empty: any
    gun_prefixes = ["registry.example.com/"]
    # whether a root certificate may name a wildcard (CN = "prefix*")
    allow_wildcard_root_cn = false

Unknown keys are refused, so a typo never silently disables a rule. `sign`
refuses a request that breaks a rule and names the rule; `review` shows it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ceremony.core.errors import MalformedInput
from ceremony.core.keys import describe_key
from ceremony.core.metadata import Root, Targets
from ceremony.core.plan import Plan

POLICY_FILE = "policy.toml"
_CLASSES = ("root", "targets", "delegation")
_KEYS = {"max_expiry_days", "min_threshold", "gun_prefixes", "allow_wildcard_root_cn"}


def _class_of(role: str) -> str:
    return role if role in ("root", "targets") else "delegation"


def _per_class(value: Any, name: str) -> dict[str, int]:
    if not isinstance(value, dict) or not set(value) <= set(_CLASSES):
        raise MalformedInput(
            f"The policy's {name} must be a table with root, targets and/or delegation."
        )
    for key, number in value.items():
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise MalformedInput(f"The policy's {name}.{key} must be a positive whole number.")
    return dict(value)


@dataclass(frozen=True, slots=True)
class Policy:
    max_expiry_days: Mapping[str, int] = field(default_factory=dict)
    min_threshold: Mapping[str, int] = field(default_factory=dict)
    gun_prefixes: tuple[str, ...] = ()
    allow_wildcard_root_cn: bool = True

    @classmethod
    def from_toml(cls, data: bytes) -> Policy:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MalformedInput(f"The signing policy {POLICY_FILE} is not valid TOML.") from exc
        unknown = set(doc) - _KEYS
        if unknown:
            raise MalformedInput(
                f"The signing policy {POLICY_FILE} has unknown settings: {', '.join(sorted(unknown))}."
            )
        prefixes = doc.get("gun_prefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p for p in prefixes):
            raise MalformedInput("The policy's gun_prefixes must be a list of non-empty strings.")
        wildcard = doc.get("allow_wildcard_root_cn", True)
        if not isinstance(wildcard, bool):
            raise MalformedInput("The policy's allow_wildcard_root_cn must be true or false.")
        return cls(
            _per_class(doc.get("max_expiry_days", {}), "max_expiry_days"),
            _per_class(doc.get("min_threshold", {}), "min_threshold"),
            tuple(prefixes),
            wildcard,
        )

    @classmethod
    def load(cls, home: Path) -> Policy:
        """The home's policy, or no limits when it has none."""
        path = home / POLICY_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        return cls.from_toml(data)

    def violations(self, gun: str, plan: Plan, now: datetime) -> list[str]:
        """Each rule the signed bodies would break, as 'rule: what' (empty: none)."""
        out: list[str] = []
        if self.gun_prefixes and not any(gun.startswith(p) for p in self.gun_prefixes):
            out.append(f"gun_prefixes: this machine does not sign for {gun}")
        for role, rp in plan.roles.items():
            limit = self.max_expiry_days.get(_class_of(role))
            if limit is not None and rp.body.expires.to_datetime() > now + timedelta(days=limit):
                out.append(
                    f"max_expiry_days.{_class_of(role)}: {role} would expire "
                    f"{rp.body.expires.format()}, more than {limit} days from now"
                )
            if rp.signers:  # the threshold this role is signed under
                out.extend(self._threshold(_class_of(role), role, rp.signers[0].threshold))
            body = rp.body
            if isinstance(body, Root):
                out.extend(self.root_violations(body))
            elif isinstance(body, Targets):
                for d in body.delegations.roles:
                    out.extend(self._threshold("delegation", d.name, d.threshold))
        return list(dict.fromkeys(out))

    def root_violations(self, root: Root) -> list[str]:
        """The rules a root breaks: its root and targets thresholds, wildcard certificates."""
        out: list[str] = []
        for name in ("root", "targets"):
            out.extend(self._threshold(name, name, root.roles[name].threshold))
        for kid in root.roles["root"].keyids:
            prefix = describe_key(root.keys[kid]).wildcard_prefix
            if prefix is not None and not self.allow_wildcard_root_cn:
                out.append(
                    f"allow_wildcard_root_cn: root key {kid[:12]} has a wildcard "
                    f"certificate for every GUN starting with {prefix!r}"
                )
        return out

    def _threshold(self, kind: str, role: str, threshold: int) -> list[str]:
        lowest = self.min_threshold.get(kind)
        if lowest is not None and threshold < lowest:
            return [
                f"min_threshold.{kind}: {role} would need {threshold} signature(s), fewer than {lowest}"
            ]
        return []
