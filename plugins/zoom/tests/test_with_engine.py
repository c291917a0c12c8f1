"""Zoom as the engine's online meeting provider, with the outlook plugin sending invitations."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ehcbridge_outlook
import ehcbridge_zoom
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Invitee, Plan, Pupil, ReviewKind, Role
from ehcbridge.store import Store
from ehcbridge.testing import make_app
from ehcbridge_zoom.settings import ZoomSettings

T0 = datetime(2027, 1, 4, 9, 0, tzinfo=LONDON)
MEETING = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)


def _app(store: Store, settings: ZoomSettings, outbox: Path) -> Any:
    return make_app(store, {"zoom": ehcbridge_zoom, "outlook": ehcbridge_outlook},
                    settings={"engine": {"online_meetings": "zoom"},
                              "plugins": {"zoom": settings.model_dump(),
                                          "outlook": {"outbox_dir": str(outbox)}}})


def _calendar_parts(outbox: Path) -> list[str]:
    import email

    parts = []
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                parts.append(payload.decode())
    return parts


def test_zoom_link_reaches_outlook_invitations_and_follows_every_change(
        zoom: Any, settings: ZoomSettings, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000001", forename="Sam", surname="Ex",
                                            dob=date(2014, 5, 2), nc_year=7),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          coordinator_email="senco@school.example.org",
                          review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, email="parent@example.net"))
    store.schedule_meeting("EHC-1", start=MEETING, end=MEETING + timedelta(hours=1),
                           online=True, now=T0)
    outbox = tmp_path / "outbox"
    Engine(_app(store, settings, outbox)).run_once(T0)

    [created] = zoom.meetings.values()
    meeting = store.case("EHC-1").meeting
    assert meeting is not None and meeting.provider == "zoom"
    assert meeting.join_url == created["join_url"]
    invitations = _calendar_parts(outbox)
    assert invitations and all(created["join_url"] in text.replace("\r\n ", "")
                               for text in invitations)

    # A restarted engine (new App, same database) creates nothing new.
    Engine(_app(store, settings, outbox)).run_once(T0 + timedelta(minutes=5))
    assert len(zoom.calls("POST", "/v2/users/")) == 1

    moved = MEETING + timedelta(days=7)
    store.schedule_meeting("EHC-1", start=moved, end=moved + timedelta(hours=1), online=True,
                           now=T0)
    Engine(_app(store, settings, outbox)).run_once(T0 + timedelta(hours=1))
    assert len(zoom.calls("PATCH", "/v2/meetings/")) == 1
    assert len(zoom.meetings) == 1

    store.cancel_meeting("EHC-1", reason="family unwell", now=T0)
    Engine(_app(store, settings, outbox)).run_once(T0 + timedelta(hours=2))
    assert len(zoom.calls("DELETE", "/v2/meetings/")) == 1
    assert zoom.meetings == {}
    assert any("METHOD:CANCEL" in text for text in _calendar_parts(outbox))
    assert {d.status for d in store.deliveries()} == {"delivered"}
    store.close()
