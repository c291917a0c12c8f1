"""Email delivery shared by plugins: SMTP (STARTTLS, implicit TLS or plain) or an outbox folder.

Temporary failures (4xx replies, connection errors) raise ``RetryLater`` so the engine retries the
delivery; permanent ones (5xx) raise ``PermanentError`` naming the refused recipients.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import Message
from email.utils import make_msgid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from ehcbridge import PermanentError, RetryLater


class MailSettings(BaseModel):
    """How messages leave: ``transport = "outbox"`` (files) or ``"smtp"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["outbox", "smtp"] = "outbox"
    outbox_dir: Path = Path("outbox")
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = 30.0
    ca_bundle: Path | None = None
    from_address: str = "ehcbridge@localhost"


def _tls_context(settings: MailSettings) -> ssl.SSLContext:
    cafile = str(settings.ca_bundle) if settings.ca_bundle else None
    return ssl.create_default_context(cafile=cafile)


def send(message: Message, settings: MailSettings) -> str:
    """Send ``message`` by the configured transport and return its Message-ID."""
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=settings.from_address.rpartition("@")[2] or None)
    if "From" not in message:
        message["From"] = settings.from_address
    if settings.transport == "outbox":
        _write_outbox(message, settings.outbox_dir)
    else:
        _send_smtp(message, settings)
    return str(message["Message-ID"])


def _write_outbox(message: Message, folder: Path) -> None:
    from ehcbridge.operations import create_private_file

    name = str(message["Message-ID"]).strip("<>").replace("/", "_").replace("@", "_at_")
    target = folder / f"{name}.eml"
    tmp = target.with_suffix(".eml.tmp")
    data = message.as_bytes()
    # One open per message: the folder 0700 and the message 0600 (children's data) are made
    # by create_private_file only when the folder is missing; a file that exists keeps its mode.
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except FileNotFoundError:
        create_private_file(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
    with open(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)  # atomic, so a reader never sees half a message


def _send_smtp(message: Message, settings: MailSettings) -> None:
    if not settings.smtp_host:
        raise PermanentError("transport is smtp but smtp_host is not set")
    smtp: smtplib.SMTP
    try:
        if settings.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                    timeout=settings.smtp_timeout, context=_tls_context(settings))
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                                timeout=settings.smtp_timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=_tls_context(settings))
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        _raise_for_codes({rcpt: code for rcpt, (code, _msg) in exc.recipients.items()})
        raise  # pragma: no cover - _raise_for_codes always raises
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise RetryLater(f"SMTP temporary failure {exc.smtp_code}") from exc
        raise PermanentError(f"SMTP refused the message: {exc.smtp_code}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise RetryLater(f"SMTP connection to {settings.smtp_host}:{settings.smtp_port} failed: "
                         f"{type(exc).__name__}") from exc
    if refused:
        _raise_for_codes({rcpt: code for rcpt, (code, _msg) in refused.items()})


def _raise_for_codes(codes: dict[str, int]) -> None:
    detail = ", ".join(f"{rcpt} ({code})" for rcpt, code in sorted(codes.items()))
    if any(400 <= code < 500 for code in codes.values()):
        raise RetryLater(f"SMTP deferred recipients: {detail}")
    raise PermanentError(f"SMTP refused recipients: {detail}")
