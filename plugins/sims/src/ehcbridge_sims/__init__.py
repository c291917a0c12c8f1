"""ehcbridge plugin: keeps pupils, parents and SEN status in step with the school MIS.

Two sources: DfE Common Transfer Files (CTF XML, from SIMS or any English MIS) and an MIS
aggregator API shaped like Wonde's. Vendor libraries are imported inside the hooks so that
loading the plugin (and ``ehcbridge --help``) stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ehcbridge import hookimpl
from ehcbridge.events import CheckResult, HookContext
from ehcbridge.plugin_settings import PluginSettings, settings_of
from pydantic import Field, SecretStr, field_validator


class SimsSettings(PluginSettings):
    """Settings of the [plugins.sims] section."""

    source: Literal["ctf", "api"] = "ctf"
    api_url: str | None = None
    token: SecretStr | None = None
    school_ids: list[str] = Field(default_factory=list)
    page_size: int = Field(default=100, ge=1, le=1000)
    schedule: str = "0 2 * * *"
    drop_dir: Path | None = None
    drop_schedule: str = "* * * * *"

    @field_validator("schedule", "drop_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 2 * * *')")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("api_url must start with https://")
        return value.rstrip("/") if value else value

    @property
    def api_configured(self) -> bool:
        """True when the aggregator API can be called."""
        return bool(self.api_url and self.token and self.token.get_secret_value()
                    and self.school_ids)


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(SimsSettings)


@hookimpl
def register_schedules(register: Any, ctx: HookContext) -> None:
    """The nightly sync (API and drop folder) and the drop-folder poll."""
    from .sync import scheduled_drop, scheduled_sync

    settings = settings_of(ctx, SimsSettings, require=False)
    if not settings.enabled:
        return
    register("sims-sync", settings.schedule, scheduled_sync)
    if settings.drop_dir is not None:
        register("sims-drop-folder", settings.drop_schedule, scheduled_drop)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``ehcbridge sims ...``."""
    from .cli import sims

    cli.add_command(sims)


@hookimpl
def lookup_pupil(upn: str, ctx: HookContext) -> Any:
    """The pupil, contacts, SEN provision and needs the MIS last gave for this UPN."""
    from .sync import lookup

    return lookup(upn, ctx)


@hookimpl
def check(ctx: HookContext) -> list[CheckResult]:
    """Doctor lines: the aggregator API, the drop folder and the last sync."""
    from .doctor import run_checks

    return run_checks(ctx)


__all__ = ["SimsSettings"]
