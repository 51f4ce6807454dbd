"""The offline signing policy file, HOME/policy.toml (ceremony.offline.policy.Policy.from_toml).

Property of a policy read: every limit it holds has the type its rules use.
"""

from __future__ import annotations

from ceremony.offline.policy import Policy
from fuzz.driver import REFUSED, Target, expect, refused


def check(data: bytes) -> None:
    policy = refused(lambda: Policy.from_toml(data))
    if policy is REFUSED:
        return
    for limits in (policy.max_expiry_days, policy.min_threshold):
        expect(all(type(v) is int and v >= 1 for v in limits.values()), "a limit is not a count")
    expect(all(isinstance(p, str) and p for p in policy.gun_prefixes), "a GUN prefix is empty")
    expect(isinstance(policy.allow_wildcard_root_cn, bool), "the wildcard setting is not a flag")


TARGET = Target("policy", check, "the offline policy file (policy.toml)", None, max_len=4096)
