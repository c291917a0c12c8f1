"""Settings: one TOML file plus ``EHCBRIDGE_`` environment variables (environment wins).

Plugins own their ``[plugins.<name>]`` section through the model they register; this module keeps
that section raw and :func:`validate_section` checks it, naming the file, section and key on error.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ehcbridge.configfile import DEFAULT_CONFIG, SettingsError, config_path_from
from ehcbridge.formats.limits import Limits
from ehcbridge.invite_rules import InvitationRule
from ehcbridge.notices.settings import NoticeSettings

__all__ = ["DEFAULT_CONFIG", "SettingsError", "config_path_from", "load_settings"]


def driver_url(url: str) -> str:
    """A database URL with the driver SQLAlchemy should use (psycopg 3 for PostgreSQL)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def default_data_dir() -> Path:
    """Where the embedded database lives by default (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ehcbridge"


class HolidayRange(BaseModel):
    """A school holiday, both ends inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date
    name: str = ""


class TransferReviewWindow(BaseModel):
    """When a phase transfer review should be held: a term of an NC year (good practice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transfer_year: int = Field(ge=0, le=14, description="NC year at whose end the pupil moves")
    nc_year: int = Field(ge=0, le=14, description="NC year the review should be held in")
    term: Literal["autumn", "spring", "summer"]


def _default_transfer_windows() -> list[TransferReviewWindow]:
    # Council guidance: Year 2 (infant schools), summer term of Year 5, autumn term of Year 11.
    return [TransferReviewWindow(transfer_year=2, nc_year=2, term="autumn"),
            TransferReviewWindow(transfer_year=6, nc_year=5, term="summer"),
            TransferReviewWindow(transfer_year=11, nc_year=11, term="autumn")]


class StoreSettings(BaseModel):
    """``[store]``: where reviews, deliveries and plugin state are kept."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means an SQLite file in data_dir. "
        "PostgreSQL: postgresql://user@host/db",
    )
    data_dir: Path = Field(default_factory=default_data_dir)
    keep_ceased_months: int | None = Field(
        default=None, ge=1, le=1200,
        description="Months a ceased plan is kept: `ehcbridge doctor` then warns that it is due "
        "for erasure (`ehcbridge erase`); unset, no reminder")

    def resolved_url(self) -> str:
        """The URL to connect to, with the SQLite default and the psycopg driver filled in."""
        if not self.url:
            return f"sqlite:///{self.data_dir / 'ehcbridge.sqlite3'}"
        return driver_url(self.url)


class TermRange(BaseModel):
    """A school term, both ends inclusive (``[[engine.terms]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    start: date
    end: date


class EngineSettings(BaseModel):
    """``[engine]``: how lifecycle events are fired and retried."""

    model_config = ConfigDict(extra="forbid")

    tick_seconds: float = 60.0
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=30.0, ge=0)
    backoff_max_seconds: float = Field(default=6 * 3600.0, ge=0)
    online_meetings: str | None = None
    school_holidays: list[HolidayRange] = Field(default_factory=list)
    infant_schools: list[str] = Field(default_factory=list, description="URNs of infant schools")
    max_meetings_per_day: int = Field(default=3, ge=1)
    meeting_start_time: str = "09:30"
    meeting_minutes: int = Field(default=60, ge=15)
    call_timeout_seconds: float = Field(default=120.0, gt=0, description=(
        "Time limit of one plugin call; past it the attempt counts as failed and is retried"))
    call_timeouts: dict[str, float] = Field(default_factory=dict, description=(
        "Per-plugin time limits overriding call_timeout_seconds, e.g. {outlook = 300}"))
    lease_seconds: float = Field(default=60.0, gt=0, description=(
        "How long a worker's claim on a delivery holds unless renewed (several workers)"))
    worker_name: str | None = Field(default=None, description=(
        "Name of this worker in the delivery ledger (default host:pid)"))
    # Termly lists, figures and invitation rules (docs/lists-and-returns.md).
    terms: list[TermRange] = Field(default_factory=list)
    term_dates_ics: Path | None = Field(
        default=None, description="A published term-dates calendar (terms and holidays)")
    schools_directory: Path | None = Field(
        default=None, description="CSV of schools: urn, name, headteacher_email, senco_email")
    lists_health_email: str | None = Field(
        default=None, description="The ICB's (DCO service's) address for the whole termly list")
    lists_social_care_email: str | None = Field(
        default=None, description="Social care's address for the whole termly list")
    lists_days_before_term: int = Field(default=14, ge=14, le=120)
    invitation_rules: list[InvitationRule] = Field(default_factory=list)
    at_risk_school_days: int = Field(default=5, ge=0, description="on_deadline at_risk: school "
                                     "days before a duty's due date")
    under_five_review_months: int = Field(default=6, ge=3, le=6, description="months from the "
                                          "decision to an under-five's next review (CoP 9.178)")
    transfer_review_windows: list[TransferReviewWindow] = Field(
        default_factory=_default_transfer_windows)

    @field_validator("online_meetings")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class ServeSettings(BaseModel):
    """``[serve]``: the dashboard, webhook and health endpoints of ``ehcbridge serve``."""

    model_config = ConfigDict(extra="forbid")

    webhook_secret: SecretStr = Field(default=SecretStr(""),
                                      description="HMAC key of POST /api/v1/events; empty: off")
    session_minutes: int = Field(default=480, ge=5)
    secure_cookies: bool = True
    names_for_caseworkers: bool = False
    engine_stale_seconds: float = Field(default=900.0, gt=0)
    sign_in_attempts: int = Field(default=5, ge=1, description="per user and address in 15 min")
    oidc_authority: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr = Field(default=SecretStr(""))
    oidc_redirect_uri: str | None = None
    oidc_ca_bundle: str | None = None


class Settings(BaseSettings):
    """All settings. Plugin sections stay raw here and are validated by each plugin's model."""

    model_config = SettingsConfigDict(
        env_prefix="EHCBRIDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    notices: NoticeSettings = Field(default_factory=NoticeSettings)
    limits: Limits = Field(default_factory=Limits)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Set by load_settings; not a setting itself.
    _config_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the TOML file chosen by ``load_settings``."""
        toml_file = _TOML_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def config_path(self) -> Path | None:
        """The TOML file these settings were read from, if any."""
        return self._config_path


_TOML_FILE: dict[str, Path | None] = {}


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the TOML file and the environment; raise SettingsError naming the key."""
    path = config_path_from(config)
    _TOML_FILE["path"] = path
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, path, section=None)) from None
    except Exception as exc:  # malformed TOML raises tomllib.TOMLDecodeError
        raise SettingsError(f"{path}: cannot read settings: {exc}") from None
    finally:
        _TOML_FILE.pop("path", None)
    settings._config_path = path
    # Env var names are case-insensitive; plugin sections are keyed by lower-case names.
    settings.plugins = {k.lower(): {kk.lower(): vv for kk, vv in v.items()}
                        for k, v in settings.plugins.items()}
    return settings


def _where(path: Path | None) -> str:
    return str(path) if path else "settings"


def _describe(exc: ValidationError, path: Path | None, section: str | None) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if section is None and loc:
            sect = ".".join(loc[:-1]) if len(loc) > 1 else ""
            key = loc[-1]
        else:
            sect, key = section or "", ".".join(loc)
        env_name = "EHCBRIDGE_" + "__".join([*sect.split("."), key]).upper() if sect else \
            "EHCBRIDGE_" + key.upper()
        origin = f"environment variable {env_name}" if env_name in os.environ else _where(path)
        got = err.get("input")
        shown = "" if _is_secret_key(key) or isinstance(got, dict) else f", got {got!r}"
        label = f"[{sect}] key '{key}'" if sect else f"key '{key}'"
        lines.append(f"{origin}: {label}: {err['msg']}{shown}")
    return "; ".join(lines)


def _is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in ("secret", "password", "token", "key"))


def validate_section(
    name: str, model: type[BaseModel], raw: dict[str, Any], path: Path | None
) -> BaseModel:
    """Validate ``[plugins.<name>]`` with the plugin's model; errors name the section and key."""
    # Plugins may resolve relative paths against the settings file's folder.
    context = {"config_dir": str(path.parent) if path else None}
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as first:
        # Environment values arrive as strings; lists and tables may be given as JSON.
        coerced = {k: _maybe_json(v) for k, v in raw.items()}
        if coerced != raw:
            try:
                return model.model_validate(coerced, context=context)
            except ValidationError:
                pass
        raise SettingsError(_describe(first, path, section=f"plugins.{name}")) from None


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def masked(value: Any, key: str = "") -> Any:
    """A JSON-friendly copy of settings with every secret replaced by '********'."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {k: masked(getattr(value, k), k) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, key) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value and _is_secret_key(key):
        return "********"
    return value
