"""Imports every command module so that each registers on the app."""

from __future__ import annotations
