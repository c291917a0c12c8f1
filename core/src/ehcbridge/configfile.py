"""Which settings file to read; kept free of pydantic so the CLI can start quickly."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = Path("ehcbridge.toml")


class SettingsError(Exception):
    """A setting is missing or has the wrong type; the message names where and what."""


def config_path_from(explicit: str | Path | None) -> Path | None:
    """The TOML file to read: ``--config``, then ``EHCBRIDGE_CONFIG``, then ./ehcbridge.toml."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{path}: configuration file not found")
        return path
    env = os.environ.get("EHCBRIDGE_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise SettingsError(f"{path}: configuration file not found (EHCBRIDGE_CONFIG)")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
