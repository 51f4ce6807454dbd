"""Imports every command module so that each registers on the app."""

from __future__ import annotations

from ceremony.cli import (
    ceremony_cmds,  # noqa: F401
    keys,  # noqa: F401
    trust_cmds,  # noqa: F401
)
