"""ehcbridge plugin: health_referrals."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl
from ehcbridge.plugin_settings import PluginSettings


class HealthReferralsSettings(PluginSettings):
    """Settings of the [plugins.health_referrals] section."""


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(HealthReferralsSettings)
