"""The ``[plugins.notify]`` settings: the GOV.UK Notify API key and the templates to use."""

from __future__ import annotations

import re
from typing import Literal

from ehcbridge.plugin_settings import PluginSettings
from pydantic import Field, SecretStr, field_validator

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotifySettings(PluginSettings):
    """Settings of [plugins.notify]."""

    api_key: SecretStr | None = Field(default=None, description="A live (or test) API key")
    base_url: str = "https://api.notifications.service.gov.uk"
    email_template_id: str | None = Field(
        default=None, description="Email template whose subject is ((subject)) and body ((body))")
    sms_template_id: str | None = Field(default=None,
                                        description="Text message template: ((body))")
    file_placeholders: int = Field(
        default=0, ge=0, le=10,
        description="How many ((file_1)) ... ((file_N)) placeholders the email template has: "
                    "a notice's documents go as Notify's download links (0: listed, not sent)")
    file_retention_weeks: int = Field(
        default=26, ge=1, le=78, description="How long Notify keeps a sent file to download")
    postage: Literal["first", "second", "economy"] = "second"
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("api_key")
    @classmethod
    def _key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # A Notify key ends with the service id and the secret, two UUIDs (never echoed back).
        if value is not None and value.get_secret_value():
            raw = value.get_secret_value()
            if len(raw) < 74 or not (UUID.match(raw[-73:-37]) and UUID.match(raw[-36:])):
                raise ValueError("api_key is not a GOV.UK Notify API key (name-serviceid-secret)")
        return value

    @field_validator("email_template_id", "sms_template_id")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value and not UUID.match(value):
            raise ValueError("a Notify template id is a UUID")
        return value or None

    @property
    def configured(self) -> bool:
        """True when an API key is set."""
        return self.api_key is not None and bool(self.api_key.get_secret_value())
