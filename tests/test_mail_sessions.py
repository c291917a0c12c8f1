"""SMTP connections shared by a lane's messages: fewer handshakes and logins, and no message lost
or sent twice when the server closes a kept connection (idle, or past its per-connection limit).

The server is aiosmtpd on loopback; it counts connections and can close them the way Exchange
and Postfix do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import ehcbridge_outlook
import pytest
from ehcbridge import PermanentError, RetryLater, mail
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Invitee, Role
from ehcbridge.store import Store
from ehcbridge.testing import make_app

T0 = datetime(2027, 1, 4, 8, 0, tzinfo=LONDON)
# Exchange Online's replies to a submission refused for the sending mailbox (Microsoft Learn:
# "Message storage and concurrent connection throttling for SMTP Authenticated Submission",
# "Continuous error throttling for SMTP AUTH submissions").
DAILY_LIMIT = ("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; "
               "Failed to process message due to a permanent exception")
THROTTLED = "550 5.2.253 Sender throttled due to continuous invalid license errors"
MAILBOX_FULL = ("554 5.2.2 mailbox full; "
                "STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionQuotaExceeded")


@dataclass
class Server:
    """Accepts mail; counts connections; closes or limits them on request."""

    connections: int = 0
    received: list[str] = field(default_factory=list)
    close_after_each: bool = False  # as a server that drops an idle connection
    limit: int | None = None  # messages a connection may carry, then 421 (Exchange's limit)
    refuse: set[str] = field(default_factory=set)
    per_session: dict[int, int] = field(default_factory=dict)
    quota: int | None = None  # messages accepted before every DATA gets ``over_quota``
    over_quota: str = DAILY_LIMIT
    data_calls: int = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """A new connection greets once (no STARTTLS here)."""
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        """421 past the connection's limit."""
        if self.limit is not None and self.per_session.get(id(session), 0) >= self.limit:
            return "421 4.3.2 Too many messages on this connection"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        """Refuse the addresses in ``refuse`` for good."""
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the recipient (unless over the quota); close the connection just after when
        asked to."""
        self.data_calls += 1
        if self.quota is not None and len(self.received) >= self.quota:
            return self.over_quota
        self.received.extend(envelope.rcpt_tos)
        self.per_session[id(session)] = self.per_session.get(id(session), 0) + 1
        if self.close_after_each:
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return "250 Accepted"


@pytest.fixture
def server(loopback_smtp: Any) -> tuple[Server, int]:
    """aiosmtpd on a free loopback port."""
    handler = Server()
    return handler, loopback_smtp(handler)


def _settings(port: int) -> mail.MailSettings:
    return mail.MailSettings(transport="smtp", smtp_host="127.0.0.1", smtp_port=port,
                             smtp_security="none", smtp_timeout=5,
                             from_address="reviews@council.example.gov.uk")


INVITEES = [("parent@example.net", Role.PARENT), ("senco@school.example.org", Role.SETTING),
            ("sen@la.example.gov.uk", Role.LA_SEN_OFFICER),
            ("salt@nhs.example.net", Role.HEALTH), ("csc@la.example.gov.uk", Role.SOCIAL_CARE)]


def _outlook(port: int) -> dict[str, Any]:
    return {"plugins": {"outlook": {"transport": "smtp", "smtp_host": "127.0.0.1",
                                    "smtp_port": port, "smtp_security": "none",
                                    "from_address": "reviews@council.example.gov.uk"}}}


def _message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = "Advice request"
    message.set_content("Please send your advice.")
    return message


def _send(settings: mail.MailSettings, to: str) -> None:
    mail.send(_message(to), settings)


def test_without_a_session_each_message_has_its_own_connection(server: Any) -> None:
    handler, port = server
    for n in range(3):
        _send(_settings(port), f"p{n}@example.net")
    assert handler.connections == 3 and len(handler.received) == 3


def test_in_a_session_messages_share_a_connection_up_to_the_per_connection_limit(
        server: Any) -> None:
    handler, port = server
    count = mail.PER_CONNECTION + 5
    with mail.session():
        for n in range(count):
            _send(_settings(port), f"p{n}@example.net")
    assert handler.received == [f"p{n}@example.net" for n in range(count)]
    assert handler.connections == 2


def test_a_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice(
        server: Any) -> None:
    handler, port = server
    handler.close_after_each = True
    with mail.session():
        for n in range(4):
            _send(_settings(port), f"p{n}@example.net")
            # Let the server's close arrive, as it would on a connection left idle.
            asyncio.run(asyncio.sleep(0.15))
    assert handler.received == [f"p{n}@example.net" for n in range(4)]
    assert handler.connections == 4


def test_a_421_for_too_many_messages_opens_a_new_connection_for_the_same_message(
        server: Any) -> None:
    handler, port = server
    handler.limit = 2  # lower than ours, as a stricter server might be
    with mail.session():
        for n in range(5):
            _send(_settings(port), f"p{n}@example.net")
    assert handler.received == [f"p{n}@example.net" for n in range(5)]
    assert handler.connections == 3


def test_a_refused_recipient_does_not_spoil_the_shared_connection(server: Any) -> None:
    handler, port = server
    handler.refuse = {"gone@example.net"}
    with mail.session():
        _send(_settings(port), "p0@example.net")
        with pytest.raises(PermanentError, match="550"):
            _send(_settings(port), "gone@example.net")
        _send(_settings(port), "p1@example.net")
    assert handler.received == ["p0@example.net", "p1@example.net"]
    assert handler.connections == 1


def test_the_engine_sends_a_meetings_invitations_over_one_connection(
        server: Any, scheduled: Store) -> None:
    handler, port = server
    app = make_app(scheduled, {"outlook": ehcbridge_outlook}, settings=_outlook(port), now=T0)
    Engine(app).run_once(T0)
    assert sorted(handler.received) == sorted(a for a, _role in INVITEES)
    assert handler.connections == 1


@pytest.mark.parametrize(("reply", "error", "wait"), [
    (DAILY_LIMIT, RetryLater, mail.DAILY_LIMIT_WAIT),
    (THROTTLED, RetryLater, mail.THROTTLED_WAIT),
    (MAILBOX_FULL, mail.SenderRefused, None),
])
def test_a_refusal_of_the_sending_mailbox_is_not_a_refused_recipient_and_is_asked_once(
        server: Any, reply: str, error: type[Exception], wait: float | None) -> None:
    handler, port = server
    handler.quota, handler.over_quota = 2, reply
    with mail.session():
        for n in range(2):
            _send(_settings(port), f"p{n}@example.net")
        for n in range(2, 5):
            with pytest.raises(error) as caught:
                _send(_settings(port), f"p{n}@example.net")
            assert "recipient" not in str(caught.value).replace("recipient limit", "")
            assert getattr(caught.value, "retry_after", None) == wait
    assert handler.received == ["p0@example.net", "p1@example.net"]
    assert handler.data_calls == 3  # the server was asked once; the rest failed at once
    # A new session (the engine's next pass) asks the server again.
    handler.quota = None
    with mail.session():
        _send(_settings(port), "p2@example.net")
    assert handler.received[-1] == "p2@example.net"


@pytest.fixture
def scheduled(tmp_path: Path, add_case: Any) -> Iterator[Store]:
    """A store with EHC-1's meeting on 10 March 2027 set, five people invited."""
    store = Store(f"sqlite:///{tmp_path / 'ehcbridge.sqlite3'}")
    meeting = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
    issued = meeting.date() - timedelta(days=340)
    add_case(store, "EHC-1", upn="C999000000001", coordinator="senco@school.example.org",
             issued=issued, due=issued + timedelta(days=364))
    for address, role in INVITEES:
        store.add_invitee("EHC-1", Invitee(role=role, name=role.value, email=address))
    store.schedule_meeting("EHC-1", start=meeting, end=meeting + timedelta(hours=1),
                           location="Room 4", online=False, now=T0)
    try:
        yield store
    finally:
        store.close()


def invitations(store: Store) -> list[Any]:
    return [r for r in store.deliveries()
            if r.plugin == "outlook" and r.hook == "on_review_scheduled"]


def test_exchanges_daily_limit_mid_delivery_waits_and_fails_no_invitee(
        server: Any, scheduled: Store) -> None:
    handler, port = server
    handler.quota = 2  # the mailbox reaches its 10,000 recipients a day after two invitations
    store = scheduled
    app = make_app(store, {"outlook": ehcbridge_outlook}, settings=_outlook(port), now=T0)
    Engine(app).run_once(T0)
    [row] = invitations(store)
    assert row.status == "retrying" and "daily recipient limit" in (row.last_error or "")
    case = store.case("EHC-1")
    assert "outlook_invitation_failed" not in case.flags
    assert {i["status"] for i in case.invitations if i["plugin"] == "outlook"} <= {"sent"}
    assert len(handler.received) == 2 and handler.data_calls == 3
    handler.quota = None  # the rolling 24 hours moved on
    Engine(app).run_once(T0 + timedelta(hours=1))  # too early: not asked again
    assert handler.data_calls == 3
    Engine(app).run_once(T0 + timedelta(seconds=mail.DAILY_LIMIT_WAIT + 60))
    [row] = invitations(store)
    assert row.status == "delivered"
    assert "outlook_invitation_failed" not in store.case("EHC-1").flags
    assert sorted(handler.received) == sorted(a for a, _role in INVITEES)  # each exactly once


def test_a_full_sending_mailbox_fails_the_delivery_and_blames_no_invitee(
        server: Any, scheduled: Store) -> None:
    handler, port = server
    handler.quota, handler.over_quota = 0, MAILBOX_FULL
    app = make_app(scheduled, {"outlook": ehcbridge_outlook}, settings=_outlook(port), now=T0)
    Engine(app).run_once(T0)
    [row] = invitations(scheduled)
    assert row.status == "dead" and "sending mailbox is full" in (row.last_error or "")
    case = scheduled.case("EHC-1")
    assert "outlook_invitation_failed" not in case.flags
    assert [i for i in case.invitations if i["status"] == "failed"] == []
    assert handler.data_calls == 1  # asked once; the other invitees were not tried in vain
