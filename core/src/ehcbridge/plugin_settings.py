"""Base class for a plugin's settings section (``[plugins.<name>]``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PluginSettings(BaseModel):
    """Subclass this for your ``[plugins.<name>]`` section; unknown keys are an error (typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
