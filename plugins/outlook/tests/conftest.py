"""Fixtures: a real SMTP server on 127.0.0.1 (aiosmtpd) and helpers to read what it received."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from ehcbridge.models import LONDON
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_outlook.settings import OutlookSettings

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=LONDON)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Handler:
    """aiosmtpd handler: accepts mail, or answers RCPT with scripted replies per recipient."""

    messages: list[Received] = field(default_factory=list)
    # recipient -> replies to give, one per attempt; when the list runs out the recipient is
    # accepted. A reply given with ``forever`` stays.
    scripted: dict[str, list[str]] = field(default_factory=dict)
    forever: dict[str, str] = field(default_factory=dict)
    rcpt_attempts: dict[str, int] = field(default_factory=dict)
    blocked_senders: set[str] = field(default_factory=set)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        """Refuse blocked senders, accept the rest."""
        if address.lower() in self.blocked_senders:
            return "553 5.7.1 Sender address rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Reply to RCPT TO as scripted."""
        key = address.lower()
        self.rcpt_attempts[key] = self.rcpt_attempts.get(key, 0) + 1
        if key in self.forever:
            return self.forever[key]
        queue = self.scripted.get(key)
        if queue:
            return queue.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages delivered to ``address``."""
        return [r.message for r in self.messages
                if address.lower() in (a.lower() for a in r.rcpt_tos)]


@dataclass
class SmtpServer:
    """A running SMTP server and its handler."""

    host: str
    port: int
    handler: Handler


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that records every message."""
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


@pytest.fixture
def settings(smtp_server: SmtpServer) -> OutlookSettings:
    """Settings sending through the test server without TLS and without waiting between tries."""
    return OutlookSettings(transport="smtp", smtp_host=smtp_server.host,
                           smtp_port=smtp_server.port, smtp_security="none",
                           smtp_timeout=5, from_address="reviews@council.example.gov.uk",
                           retry_wait=0)


@pytest.fixture
def store() -> MemoryPluginStore:
    """The plugin store, shared by every context of one test (it outlives 'restarts')."""
    return MemoryPluginStore(plugin="outlook")


class Sleeps(list[float]):
    """Records the waits the retry loop asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        """Record a wait."""
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    """A sleep function that returns at once."""
    return Sleeps()


class Tools:
    """Helpers the tests share (reached through the ``tools`` fixture: importlib import mode)."""

    now = NOW
    free_port = staticmethod(free_port)
    Handler = Handler

    def __init__(self, settings: OutlookSettings, store: MemoryPluginStore) -> None:
        self.settings = settings
        self.store = store

    def ctx(self, settings: OutlookSettings | None = None, now: datetime = NOW) -> Any:
        """A fresh HookContext over the shared store (a new one per call, as after a restart)."""
        return make_context("outlook", settings or self.settings, now=now, store=self.store)

    @staticmethod
    def calendar_part(message: EmailMessage) -> tuple[bytes, str]:
        """The text/calendar alternative's bytes and its MIME ``method`` parameter."""
        return calendar_part(message)

    @staticmethod
    def attachment(message: EmailMessage) -> bytes:
        """The invite.ics attachment's bytes."""
        return attachment(message)

    @staticmethod
    def vevent(message: EmailMessage) -> Any:
        """The VEVENT of a message's calendar part, parsed by icalendar."""
        from icalendar import Calendar

        data, _method = calendar_part(message)
        return Calendar.from_ical(data).events[0]


@pytest.fixture
def tools(settings: OutlookSettings, store: MemoryPluginStore) -> Tools:
    """Shared helpers bound to this test's settings and store."""
    return Tools(settings, store)


def calendar_part(message: EmailMessage) -> tuple[bytes, str]:
    """The text/calendar alternative's bytes and its MIME ``method`` parameter."""
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload, str(part.get_param("method"))
    raise AssertionError("no text/calendar part")


def attachment(message: EmailMessage) -> bytes:
    """The invite.ics attachment's bytes."""
    for part in message.iter_attachments():
        if part.get_filename() == "invite.ics":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload
    raise AssertionError("no invite.ics attachment")
