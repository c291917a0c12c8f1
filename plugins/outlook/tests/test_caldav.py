"""Every calendar the plugin writes is accepted by a CalDAV server (Radicale) and vobject.

The whole life of a review runs through the outbox transport: invitation, reschedule, deadline
reminders, their move, and the cancellation. Each .eml's calendar part is stored on a real Radicale
server on 127.0.0.1 and read back.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import caldav
import ehcbridge_outlook
import pytest
import vobject
from ehcbridge.models import LONDON
from ehcbridge.testing import make_event
from ehcbridge_outlook import service
from ehcbridge_outlook.settings import OutlookSettings
from icalendar import Calendar

JOIN = "https://zoom.example/j/123456789?pwd=abc"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


@pytest.fixture(scope="module")
def radicale_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Radicale server on 127.0.0.1: filesystem storage, no authentication."""
    from radicale import config
    from radicale.app import Application

    configuration = config.load()
    configuration.update({
        "storage": {"filesystem_folder": str(tmp_path_factory.mktemp("radicale")),
                    "_filesystem_fsync": "False"},
        "auth": {"type": "none"},
        "rights": {"type": "owner_only"},
    }, "test", privileged=True)
    server: WSGIServer = make_server("127.0.0.1", 0, Application(configuration),
                                     handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def _calendars(paths: list[Path]) -> list[tuple[str, bytes]]:
    found = []
    for path in paths:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                found.append((str(message["Subject"]), payload))
    return found


def test_every_message_of_a_review_is_stored_and_read_back(tmp_path: Path,
                                                           radicale_url: str) -> None:
    outbox = tmp_path / "outbox"
    settings = OutlookSettings(outbox_dir=outbox, organiser="reviews@la.example.gov.uk",
                               organiser_name="SEN reviews team")
    from ehcbridge.testing import MemoryPluginStore, make_context

    ctx = make_context("outlook", settings, store=MemoryPluginStore(plugin="outlook"))
    start = make_event().meeting.start  # type: ignore[union-attr]
    moved = start + timedelta(days=7)
    steps = [
        (ehcbridge_outlook.on_review_scheduled, make_event(join_url=JOIN)),
        (ehcbridge_outlook.on_views_due, make_event("on_views_due", "request", join_url=JOIN)),
        (ehcbridge_outlook.on_review_scheduled,
         make_event("on_review_scheduled", "rescheduled", start=moved, sequence=1,
                    join_url=JOIN)),
        (ehcbridge_outlook.on_review_scheduled,
         make_event("on_review_scheduled", "cancelled", start=moved, sequence=1, join_url=JOIN)),
    ]
    seen: set[Path] = set()
    calendars = []
    for hook, event in steps:
        hook(event, ctx)
        new = sorted(set(outbox.glob("*.eml")) - seen)
        seen.update(new)
        calendars += _calendars(new)
    # 6 invitations, 2 reminders, 6 updates, 2 moved reminders, 6 + 2 cancellations.
    assert len(calendars) == 24

    client = caldav.DAVClient(radicale_url, username="coordinator", password="unused")
    calendar = client.principal().make_calendar(name="EHCP reviews")
    last_sequence: dict[str, int] = {}
    for subject, data in calendars:
        parsed = Calendar.from_ical(data)
        event = parsed.events[0]
        uid = str(event["UID"])
        assert vobject.readOne(data.decode()).vevent.uid.value == uid
        assert int(event["SEQUENCE"]) >= last_sequence.get(uid, 0), subject
        last_sequence[uid] = int(event["SEQUENCE"])
        # A plain PUT, as any CalDAV client would store it (caldav's save_event bumps SEQUENCE).
        resource = f"{str(calendar.url).rstrip('/')}/{hashlib.sha256(uid.encode()).hexdigest()}.ics"
        response = client.put(resource, data.decode(),
                              {"Content-Type": "text/calendar; charset=utf-8"})
        assert response.status in (201, 204), (subject, response.status)
        fetched = client.request(resource, "GET")
        assert fetched.status == 200
        back = Calendar.from_ical(fetched.raw).events[0]
        assert back["SEQUENCE"] == event["SEQUENCE"]
        assert back.start == event.start and back.end == event.end
        assert str(back["SUMMARY"]) == str(event["SUMMARY"])
        assert back.get("STATUS") == event.get("STATUS")
    # One meeting and two deadlines, each a single resource holding its last revision.
    assert len(last_sequence) == 3
    stored = {str(Calendar.from_ical(e.data).events[0]["UID"]): e for e in calendar.events()}
    assert set(stored) == set(last_sequence)
    meeting = Calendar.from_ical(stored[service.meeting_uid(make_event())].data).events[0]
    assert meeting["STATUS"] == "CANCELLED" and meeting["SEQUENCE"] == 2
    assert meeting.start == moved.astimezone(LONDON)


def test_feed_is_read_by_two_parsers(tmp_path: Path) -> None:
    from ehcbridge.testing import MemoryPluginStore, make_context

    store = MemoryPluginStore(plugin="outlook")
    ctx = make_context("outlook", OutlookSettings(outbox_dir=tmp_path), store=store)
    ehcbridge_outlook.on_review_scheduled(make_event(join_url=JOIN), ctx)
    data = service.build_feed(store.state_items("feed:"), now=ctx.clock.now())
    parsed = vobject.readOne(data.decode())
    assert parsed.method.value == "PUBLISH"
    assert len(parsed.vevent_list) == 5
    assert Calendar.from_ical(data).events[0].errors == []
