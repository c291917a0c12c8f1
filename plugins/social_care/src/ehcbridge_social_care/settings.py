"""The ``[plugins.social_care]`` settings section."""

from __future__ import annotations

from pathlib import Path

from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, SecretStr


class SocialCareSettings(PluginSettings):
    """Settings of the [plugins.social_care] section."""

    mapping_file: Path | None = None
    """Default CSV mapping social care ids to UPNs (``social_care_id,upn,dob``)."""

    feed_url: SecretStr | None = None
    """iCalendar feed of a team's review meetings, polled daily (secret: URLs carry tokens)."""

    feed_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long to wait for the feed before giving up."""

    weight_real: float = Field(default=3.0, gt=0)
    """Planner weight of a known social care review date."""

    weight_projected: float = Field(default=1.0, gt=0)
    """Planner weight of a projected (statutory due) review date."""

    projected_reviews: int = Field(default=2, ge=0, le=6)
    """How many reviews to project past the last known one (0 turns projections off)."""

    add_invitees: bool = True
    """Add the allocated social worker or team as the social care invitee of open reviews."""
