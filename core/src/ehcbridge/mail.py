"""Email delivery shared by plugins: SMTP (STARTTLS, implicit TLS or plain) or an outbox folder.

Temporary failures (4xx replies, connection errors) raise ``RetryLater`` so the engine retries the
delivery; permanent ones (5xx) raise ``PermanentError`` naming the refused recipients.

Inside ``with session():`` a thread's messages share one SMTP connection (opened at its first
message, closed with QUIT when the block ends) instead of each making its own: a first run sends
tens of thousands, and each connection costs a TLS handshake and a login.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


_local = threading.local()  # the connections of the thread's open session, if any

# Messages sent over one connection before a fresh one is opened, as Exchange's own send
# connectors do (MaxMessagesPerConnection, 20 by default); a server that allows fewer answers
# 421 and the message goes on a new connection.
PER_CONNECTION = 20


@dataclass
class _Shared:
    smtp: smtplib.SMTP
    sent: int = 0


@contextmanager
def session() -> Iterator[None]:
    """Messages sent by this thread inside the block share an SMTP connection per server
    (nested blocks join the outer one); the outbox is not affected."""
    if getattr(_local, "open", None) is not None:
        yield
        return
    _local.open = {}
    try:
        yield
    finally:
        opened, _local.open = _local.open, None
        for shared in opened.values():
            _close(shared.smtp)


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def connect(settings: MailSettings) -> smtplib.SMTP:
    """An SMTP connection to the configured server, with TLS and the login done (the caller
    closes it); smtplib's errors propagate."""
    assert settings.smtp_host is not None
    smtp: smtplib.SMTP
    if settings.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                timeout=settings.smtp_timeout, context=_tls_context(settings))
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                            timeout=settings.smtp_timeout)
    try:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=_tls_context(settings))
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _reused(shared: _Shared, message: Message) -> dict[str, tuple[int, bytes]] | None:
    """Send over a connection kept from an earlier message; None when the server has closed
    it (idle too long, or too many messages: 421), so a new one is needed."""
    try:
        return shared.smtp.send_message(message)
    except smtplib.SMTPServerDisconnected:
        pass
    except smtplib.SMTPSenderRefused as exc:
        if exc.smtp_code != 421:
            raise
    shared.smtp.close()
    return None


def _send_smtp(message: Message, settings: MailSettings) -> None:
    if not settings.smtp_host:
        raise PermanentError("transport is smtp but smtp_host is not set")
    opened: dict[object, _Shared] | None = getattr(_local, "open", None)
    key = (settings.smtp_host, settings.smtp_port, settings.smtp_security,
           settings.smtp_username)
    shared = opened.pop(key, None) if opened is not None else None
    if shared is not None and shared.sent >= PER_CONNECTION:
        _close(shared.smtp)
        shared = None
    refused = None
    try:
        if shared is not None:
            refused = _reused(shared, message)
            if refused is None:
                shared = None
        if shared is None:
            shared = _Shared(connect(settings))
            refused = shared.smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        _keep(opened, key, shared)
        _raise_for_codes({rcpt: code for rcpt, (code, _msg) in exc.recipients.items()})
        raise  # pragma: no cover - _raise_for_codes always raises
    except smtplib.SMTPResponseException as exc:
        # smtplib resets the transaction (RSET) after a refused MAIL or DATA, so the
        # connection can serve the next message; after a 421 it has closed it.
        _keep(opened, key, shared if exc.smtp_code != 421 else None)
        if 400 <= exc.smtp_code < 500:
            raise RetryLater(f"SMTP temporary failure {exc.smtp_code}") from exc
        raise PermanentError(f"SMTP refused the message: {exc.smtp_code}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        if shared is not None:
            shared.smtp.close()
        raise RetryLater(f"SMTP connection to {settings.smtp_host}:{settings.smtp_port} failed: "
                         f"{type(exc).__name__}") from exc
    shared.sent += 1
    _keep(opened, key, shared)
    if refused:
        _raise_for_codes({rcpt: code for rcpt, (code, _msg) in refused.items()})


def _keep(opened: dict[object, _Shared] | None, key: object, shared: _Shared | None) -> None:
    """Give the connection back to the session, or close it when there is none."""
    if shared is None:
        return
    if opened is not None:
        opened[key] = shared
    else:
        _close(shared.smtp)


def _raise_for_codes(codes: dict[str, int]) -> None:
    detail = ", ".join(f"{rcpt} ({code})" for rcpt, code in sorted(codes.items()))
    if any(400 <= code < 500 for code in codes.values()):
        raise RetryLater(f"SMTP deferred recipients: {detail}")
    raise PermanentError(f"SMTP refused recipients: {detail}")
