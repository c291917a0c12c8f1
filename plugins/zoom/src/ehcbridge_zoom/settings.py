"""The ``[plugins.zoom]`` settings section."""

from __future__ import annotations

import string
from typing import Literal
from urllib.parse import urlsplit

from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, SecretStr, field_validator

# Fields a topic or agenda template may use. Full names are allowed because the template is
# the setting that asks for them; the defaults only use initials and the case id.
TEMPLATE_FIELDS = frozenset(
    {"case_id", "initials", "kind", "date", "time", "forename", "surname"}
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _check_template(value: str, name: str) -> str:
    for _text, field, _spec, _conv in string.Formatter().parse(value):
        if field is not None and field not in TEMPLATE_FIELDS:
            allowed = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ValueError(f"{name}: unknown placeholder {{{field}}}; use one of {allowed}")
    return value


class ZoomSettings(PluginSettings):
    """Settings of the [plugins.zoom] section."""

    account_id: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    host: str = Field("", description="Zoom user (email or id) who hosts the review meetings")
    oauth_url: str = "https://zoom.us"
    api_url: str = "https://api.zoom.us/v2"

    topic_template: str = "EHCP annual review: {initials} ({case_id})"
    agenda_template: str = "EHCP annual review meeting ({case_id}). Please do not share this link."

    # Meeting settings sent with every create and update.
    waiting_room: bool = True
    join_before_host: bool = False
    mute_upon_entry: bool = True
    meeting_authentication: bool = False
    host_video: bool = False
    participant_video: bool = False
    auto_recording: Literal["none", "local", "cloud"] = "none"
    alternative_hosts: list[str] = Field(default_factory=list)

    # Transport and retries.
    timeout: float = Field(20.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff: float = Field(1.0, ge=0)
    max_inline_wait: float = Field(30.0, ge=0)

    @field_validator("oauth_url", "api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {value!r}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"use https (plain http is only allowed for loopback): {value!r}")
        return value.rstrip("/")

    @field_validator("topic_template")
    @classmethod
    def _topic(cls, value: str) -> str:
        return _check_template(value, "topic_template")

    @field_validator("agenda_template")
    @classmethod
    def _agenda(cls, value: str) -> str:
        return _check_template(value, "agenda_template")

    def missing(self) -> list[str]:
        """Names of the required settings that are empty."""
        values = {
            "account_id": self.account_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            "host": self.host,
        }
        return [name for name, value in values.items() if not value.strip()]

    @property
    def configured(self) -> bool:
        """True when the credentials and host are all set."""
        return not self.missing()
