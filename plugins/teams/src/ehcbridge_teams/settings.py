"""The ``[plugins.teams]`` settings section (no vendor imports: loaded with the CLI)."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import urlsplit

from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, SecretStr, field_validator, model_validator

DEFAULT_SUBJECT = "EHCP annual review: {initials} ({case_id})"
# {forename} and {surname} are allowed but opt-in: the default keeps full names out of calendars.
SUBJECT_FIELDS = frozenset({"initials", "case_id", "kind", "forename", "surname"})
COORDINATOR = "coordinator"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class TeamsSettings(PluginSettings):
    """Settings of the [plugins.teams] section."""

    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_passphrase: SecretStr | None = None
    thumbprint: str | None = None
    organiser: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    ca_bundle: Path | None = None
    subject_template: str = DEFAULT_SUBJECT
    allow_new_time_proposals: bool = False
    timeout_seconds: float = 30.0
    max_retry_wait_seconds: float = 120.0
    # How long to keep reading a new event whose Teams join URL is not there yet (it can lag
    # Graph's 201 by a moment); after that the delivery is retried later.
    join_url_wait_seconds: float = Field(default=20.0, ge=0, le=300)

    @field_validator("authority_host")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"authority_host must be an https:// URL (msal requires it), got {value!r}"
            )
        return value.rstrip("/")

    @field_validator("graph_url")
    @classmethod
    def _graph_url(cls, value: str) -> str:
        parts = urlsplit(value)
        # Bearer tokens must not travel in clear text, except to a local test double.
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise ValueError(f"graph_url must be an https:// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("subject_template")
    @classmethod
    def _subject_fields(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"subject_template is not a valid template: {exc}") from exc
        names = {field for _, field, _, _ in parsed if field is not None}
        unknown = sorted(n for n in names if n not in SUBJECT_FIELDS)
        if unknown or "" in names:
            allowed = ", ".join("{" + f + "}" for f in sorted(SUBJECT_FIELDS))
            raise ValueError(
                f"subject_template uses unknown field(s) {unknown}; allowed: {allowed}"
            )
        return value

    @field_validator("organiser")
    @classmethod
    def _organiser(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if value.lower() == COORDINATOR:
            return COORDINATOR
        if "@" not in value:
            raise ValueError(
                f"organiser must be a mailbox address or 'coordinator', got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> TeamsSettings:
        if self.client_secret is not None and self.certificate_path is not None:
            raise ValueError("set either client_secret or certificate_path, not both")
        if self.certificate_path is not None:
            if not self.certificate_path.is_file():
                raise ValueError(f"certificate_path {self.certificate_path} is not a file")
            if self.certificate_path.suffix.lower() not in {".pfx", ".p12"} and not self.thumbprint:
                raise ValueError(
                    "thumbprint is required with a PEM certificate_path "
                    "(the certificate's thumbprint shown in the app registration)"
                )
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ValueError(f"ca_bundle {self.ca_bundle} is not a file")
        return self

    @property
    def configured(self) -> bool:
        """True when tenant, client, a credential and an organiser are all set."""
        return self.enabled and not self.missing()

    def missing(self) -> list[str]:
        """The names of the settings still needed before the plugin can talk to Graph."""
        needed = []
        if not self.tenant_id:
            needed.append("tenant_id")
        if not self.client_id:
            needed.append("client_id")
        if self.client_secret is None and self.certificate_path is None:
            needed.append("client_secret or certificate_path")
        if not self.organiser:
            needed.append("organiser")
        return needed

    @property
    def authority(self) -> str:
        """The tenant-specific authority URL msal signs in against."""
        return f"{self.authority_host}/{self.tenant_id}"
