"""The ``[plugins.outlook]`` settings: who gets invitations, how they look and how they leave."""

from __future__ import annotations

import string
from typing import Literal

from ehcbridge.mail import MailSettings
from ehcbridge.plugin_settings import PluginSettings
from pydantic import SecretStr, field_validator, model_validator

# Fields a summary template may use; the name fields need ``include_names = true``.
SAFE_FIELDS = frozenset({"initials", "case_id", "kind"})
NAME_FIELDS = frozenset({"forename", "surname", "full_name"})
MAIL_KEYS = tuple(MailSettings.model_fields)


def template_fields(template: str) -> set[str]:
    """The replacement fields a ``str.format`` template refers to."""
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


class OutlookSettings(PluginSettings, MailSettings):
    """Settings of [plugins.outlook]; keys are flat, the mail keys those of ``ehcbridge.mail``."""

    invite: Literal["uninvited", "all", "none"] = "uninvited"
    organiser: str | None = None
    organiser_name: str | None = None
    summary_template: str = "EHCP annual review: {initials} ({case_id})"
    reminder_template: str = "EHCP review deadline: {milestone} ({initials}, {case_id})"
    include_names: bool = False
    reminders: bool = True
    alarm_days_before: int = 1
    # Kept short: the engine's own backoff handles longer outages without blocking its loop.
    send_attempts: int = 2
    retry_wait: float = 1.0
    max_message_mb: float = 20.0  # notices: attachments beyond this are listed, not attached
    # The mailbox replies come to (IMAP): RSVPs and views sent back with files.
    imap_host: str | None = None
    imap_port: int = 993
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_username: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"


    @field_validator("alarm_days_before")
    @classmethod
    def _days(cls, value: int) -> int:
        if not 0 <= value <= 60:
            raise ValueError("alarm_days_before must be between 0 and 60")
        return value

    @field_validator("send_attempts")
    @classmethod
    def _attempts(cls, value: int) -> int:
        if not 1 <= value <= 10:
            raise ValueError("send_attempts must be between 1 and 10")
        return value

    @model_validator(mode="after")
    def _templates(self) -> OutlookSettings:
        allowed = SAFE_FIELDS | (NAME_FIELDS if self.include_names else frozenset())
        for key, template, extra in (("summary_template", self.summary_template, set()),
                                     ("reminder_template", self.reminder_template, {"milestone"})):
            unknown = template_fields(template) - allowed - extra
            names = unknown & NAME_FIELDS
            if names:
                raise ValueError(f"{key} uses {', '.join(sorted(names))}: children's names stay "
                                 "out of calendars unless include_names = true")
            if unknown:
                raise ValueError(f"{key} uses unknown field(s) {', '.join(sorted(unknown))}; "
                                 f"allowed: {', '.join(sorted(allowed | extra))}")
        return self

    @property
    def configured(self) -> bool:
        """False when SMTP is chosen but no server is named."""
        return self.transport == "outbox" or bool(self.smtp_host)

    def missing(self) -> list[str]:
        """``smtp_host`` when SMTP is chosen without a server."""
        return [] if self.configured else ["smtp_host (transport is smtp)"]

    def mail(self) -> MailSettings:
        """The core mail transport settings built from the flat keys."""
        values = {key: getattr(self, key) for key in MAIL_KEYS}
        if values["smtp_host"] is None:
            values["smtp_host"] = "localhost"
        return MailSettings(**values)
