"""Email delivery shared by plugins: SMTP (STARTTLS, implicit TLS or plain) or an outbox folder.

Temporary failures (4xx replies, connection errors) raise ``RetryLater`` so the engine retries the
delivery; permanent ones (5xx) raise ``PermanentError`` naming the refused recipients.

Inside ``with session():`` a thread's messages share one SMTP connection (opened at its first
message, closed with QUIT when the block ends) instead of each making its own: a first run sends
tens of thousands, and each connection costs a TLS handshake and a login.

A refusal that concerns the sending mailbox rather than the recipient (the login, the sender,
Exchange Online's daily recipient limit or throttling of the mailbox) raises ``SenderRefused``,
or ``RetryLater`` with a wait when it lifts by itself, so that no recipient is recorded as
refused for it; inside a session the rest of the messages to that server then fail at once
instead of each being refused again.
"""

from __future__ import annotations

import os
import re
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


class SenderRefused(PermanentError):
    """The server refused the sending mailbox, not a recipient: a fault of the configuration
    or the account that no recipient should be recorded as refused for."""


# Exchange Online refuses a submission for the sending mailbox whoever it is addressed to
# (Microsoft Learn, "Message storage and concurrent connection throttling for SMTP Authenticated
# Submission" and "Continuous error throttling for SMTP AUTH submissions"):
# - 554 5.2.0 ...SubmissionQuotaExceededException: 10,000 recipients a day, over a rolling
#   24 hours, so it lifts as the earliest messages age; trying again every few hours wastes
#   nothing and stays within the engine's attempts;
# - 550 5.2.251-5.2.255 "Sender throttled due to continuous ... errors": for a period of time;
# - 554 5.2.2 mailbox full; ...QuotaExceededException: the Sent Items folder filled the mailbox,
#   which only an administrator can fix.
DAILY_LIMIT_WAIT = 4 * 3600.0
THROTTLED_WAIT = 3600.0
_DAILY_LIMIT = "submissionquotaexceededexception"
_THROTTLED = re.compile(r"\b5\.2\.25[1-5]\b")
_MAILBOX_FULL = "quotaexceededexception"


def sender_fault(code: int, text: str) -> Exception | None:
    """The error for a reply that refuses the sending mailbox rather than a recipient (None
    for any other reply)."""
    lowered = text.lower()
    if _DAILY_LIMIT in lowered:
        return RetryLater(f"the sending mailbox has reached its daily recipient limit ({code} "
                          f"5.2.0); trying again in {DAILY_LIMIT_WAIT / 3600:g} h",
                          retry_after=DAILY_LIMIT_WAIT)
    if _THROTTLED.search(lowered):
        return RetryLater(f"the server throttled the sending mailbox after repeated errors "
                          f"({code}); trying again in {THROTTLED_WAIT / 3600:g} h",
                          retry_after=THROTTLED_WAIT)
    if _MAILBOX_FULL in lowered:
        return SenderRefused(f"the sending mailbox is full ({code} 5.2.2): empty its Sent Items "
                             "or give the folder a retention policy")
    return None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


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
    (nested blocks join the outer one), and once a server refuses the sending mailbox the
    block's later messages to it fail the same way without asking again; the outbox is not
    affected."""
    if getattr(_local, "open", None) is not None:
        yield
        return
    _local.open, _local.refused = {}, {}
    try:
        yield
    finally:
        opened, _local.open, _local.refused = _local.open, None, None
        for shared in opened.values():
            _close(shared.smtp)


def _refuse_sender(key: object, error: Exception) -> Exception:
    """Remember for the session that the server refused the sending mailbox."""
    refused: dict[object, Exception] | None = getattr(_local, "refused", None)
    if refused is not None:
        refused[key] = error
    return error


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
    known = (getattr(_local, "refused", None) or {}).get(key)
    if known is not None:
        # A copy, so that each delivery's error is its own (tracebacks are not shared).
        raise (RetryLater(str(known), retry_after=known.retry_after)
               if isinstance(known, RetryLater) else SenderRefused(str(known)))
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
        _raise_for_codes(key, exc.recipients)
        raise  # pragma: no cover - _raise_for_codes always raises
    except smtplib.SMTPResponseException as exc:
        # smtplib resets the transaction (RSET) after a refused MAIL or DATA, so the
        # connection can serve the next message; after a 421 it has closed it.
        _keep(opened, key, shared if exc.smtp_code != 421 else None)
        fault = sender_fault(exc.smtp_code, _text(exc.smtp_error))
        if fault is not None:
            raise _refuse_sender(key, fault) from exc
        if 400 <= exc.smtp_code < 500:
            raise RetryLater(f"SMTP temporary failure {exc.smtp_code}") from exc
        if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPAuthenticationError):
            raise SenderRefused(f"SMTP refused the sender: {exc.smtp_code}") from exc
        raise PermanentError(f"SMTP refused the message: {exc.smtp_code}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        if shared is not None:
            shared.smtp.close()
        raise RetryLater(f"SMTP connection to {settings.smtp_host}:{settings.smtp_port} failed: "
                         f"{type(exc).__name__}") from exc
    shared.sent += 1
    _keep(opened, key, shared)
    if refused:
        _raise_for_codes(key, refused)


def _keep(opened: dict[object, _Shared] | None, key: object, shared: _Shared | None) -> None:
    """Give the connection back to the session, or close it when there is none."""
    if shared is None:
        return
    if opened is not None:
        opened[key] = shared
    else:
        _close(shared.smtp)


def _raise_for_codes(key: object, replies: dict[str, tuple[int, bytes]]) -> None:
    for code, text in replies.values():
        fault = sender_fault(code, _text(text))
        if fault is not None:  # refused at RCPT, but for the sending mailbox
            raise _refuse_sender(key, fault)
    codes = {rcpt: code for rcpt, (code, _reply) in replies.items()}
    detail = ", ".join(f"{rcpt} ({code})" for rcpt, code in sorted(codes.items()))
    if any(400 <= code < 500 for code in codes.values()):
        raise RetryLater(f"SMTP deferred recipients: {detail}")
    raise PermanentError(f"SMTP refused recipients: {detail}")
