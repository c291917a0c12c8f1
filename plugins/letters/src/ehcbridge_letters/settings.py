"""The ``[plugins.letters]`` settings: where print packs go and how letters look."""

from __future__ import annotations

from pathlib import Path

from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, ValidationInfo, field_validator


class LettersSettings(PluginSettings):
    """Settings of [plugins.letters]."""

    folder: Path = Field(default=Path("letters"), validate_default=True,
                         description="Where each day's letters and print pack are written")
    large_print: bool = False
    font_size: float = Field(default=11.0, ge=8, le=24)
    large_print_size: float = Field(default=16.0, ge=14, le=36)

    @field_validator("folder")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        # A relative folder is read against the settings file, not wherever the engine runs.
        base = (info.context or {}).get("config_dir") if info.context else None
        return Path(base) / value if base and not value.is_absolute() else value
