"""ehcbridge plugin: sims."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl
from ehcbridge.plugin_settings import PluginSettings


class SimsSettings(PluginSettings):
    """Settings of the [plugins.sims] section."""


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(SimsSettings)
