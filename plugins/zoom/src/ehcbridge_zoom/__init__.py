"""ehcbridge plugin: zoom."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl
from ehcbridge.plugin_settings import PluginSettings


class ZoomSettings(PluginSettings):
    """Settings of the [plugins.zoom] section."""


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(ZoomSettings)
