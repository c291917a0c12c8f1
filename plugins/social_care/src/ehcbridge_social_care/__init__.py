"""ehcbridge plugin: social_care."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl
from ehcbridge.plugin_settings import PluginSettings


class SocialCareSettings(PluginSettings):
    """Settings of the [plugins.social_care] section."""


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(SocialCareSettings)
