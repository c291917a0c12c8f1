"""Through the real engine and store: events arrive, state survives restarts, records are shared."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ehcbridge_outlook
import pytest
from ehcbridge import hookimpl
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Invitee, Plan, Pupil, ReviewKind, Role
from ehcbridge.store import Store
from ehcbridge.testing import make_app, plugin_module
from icalendar import Calendar

T0 = datetime(2027, 1, 4, 8, 0, tzinfo=LONDON)
MEETING = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
INVITEES = [
    Invitee(role=Role.PARENT, name="Parent of S.E.", email="parent@example.net"),
    Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
    Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example.net", team="SALT North"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store in a temporary folder."""
    store = Store(f"sqlite:///{tmp_path / 'ehcbridge.sqlite3'}")
    try:
        yield store
    finally:
        store.close()


def _case(store: Store, meeting: datetime = MEETING, now: datetime = T0) -> None:
    issued = meeting.date() - timedelta(days=340)
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000001", forename="Sam", surname="Example",
                                            dob=date(2014, 5, 2), nc_year=7),
                          plan=Plan(case_id="EHC-1", issued_on=issued),
                          coordinator_email="senco@school.example.org",
                          review_due=issued + timedelta(days=364), kind=ReviewKind.ANNUAL,
                          pfa=False)
    for invitee in INVITEES:
        store.add_invitee("EHC-1", invitee)
    store.schedule_meeting("EHC-1", start=meeting, end=meeting + timedelta(hours=1),
                           location="Room 4", online=False, now=now)


def _calendars(outbox: Path) -> list[tuple[str, Any]]:
    found = []
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                cal = Calendar.from_ical(part.get_payload(decode=True))
                found.append((str(message["To"]), cal))
    return found


def _app(store: Store, outbox: Path, plugins: dict[str, Any] | None = None) -> Any:
    settings = {"plugins": {"outlook": {"outbox_dir": str(outbox), "invite": "uninvited"}}}
    return make_app(store, {"outlook": ehcbridge_outlook, **(plugins or {})}, settings=settings,
                    now=T0)


def test_schedule_move_and_cancel_through_the_engine(store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _case(store)
    engine = Engine(_app(store, outbox))
    engine.run_once(T0)
    first = _calendars(outbox)
    assert len(first) == 3 and {c["METHOD"] for _to, c in first} == {"REQUEST"}
    records = store.case("EHC-1").invitations
    assert {(r["email"], r["plugin"], r["status"]) for r in records} == {
        (i.email, "outlook", "sent") for i in INVITEES}

    # A restarted process (new app, same database) moves the meeting: one update each.
    engine = Engine(_app(store, outbox))
    store.schedule_meeting("EHC-1", start=MEETING + timedelta(days=1),
                           end=MEETING + timedelta(days=1, hours=1), location="Room 4",
                           online=False, now=T0 + timedelta(hours=1))
    engine.run_once(T0 + timedelta(hours=1))
    engine.run_once(T0 + timedelta(hours=2))
    calendars = _calendars(outbox)
    assert len(calendars) == 6
    sequences = sorted(int(c.events[0]["SEQUENCE"]) for _to, c in calendars)
    assert sequences == [0, 0, 0, 1, 1, 1]
    assert len({str(c.events[0]["UID"]) for _to, c in calendars}) == 1

    store.cancel_meeting("EHC-1", reason="family asked", now=T0 + timedelta(hours=3))
    engine.run_once(T0 + timedelta(hours=3))
    cancels = [c for _to, c in _calendars(outbox) if c["METHOD"] == "CANCEL"]
    assert len(cancels) == 3 and {int(c.events[0]["SEQUENCE"]) for c in cancels} == {2}


def test_feed_from_the_real_store(store: Store, tmp_path: Path) -> None:
    from ehcbridge_outlook import service

    _case(store)
    app = _app(store, tmp_path / "outbox")
    Engine(app).run_once(T0)
    ctx = app.plugin_context("outlook")
    feed = Calendar.from_ical(service.build_feed(ctx.store.state_items("feed:"), now=T0,
                                                 team="SALT North"))
    assert str(feed.events[0]["SUMMARY"]) == "EHCP annual review: SE (EHC-1)"
    assert len(feed.events) == 5


def test_a_teams_invitation_in_the_same_event_is_respected(store: Store, tmp_path: Path) -> None:
    @hookimpl
    def on_review_scheduled(event: Any, ctx: Any) -> None:
        ctx.store.record_invitation(event.plan.case_id, "parent@example.net", status="sent")

    teams = plugin_module("teams", on_review_scheduled=on_review_scheduled)
    outbox = tmp_path / "outbox"
    _case(store)
    Engine(_app(store, outbox, {"teams": teams})).run_once(T0)
    recipients = sorted(to for to, _c in _calendars(outbox))
    # Outlook's implementation is trylast, so it sees who Teams invited in the same event.
    assert not any("parent@example.net" in to for to in recipients)
    assert len(recipients) == 2


def test_deadline_reminders_follow_the_clock(store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    _case(store)
    engine = Engine(_app(store, outbox))
    for moment in (T0, MEETING - timedelta(weeks=6), MEETING - timedelta(weeks=2),
                   MEETING + timedelta(hours=2)):
        engine.run_once(moment)
    reminders = [c.events[0] for _to, c in _calendars(outbox)
                 if c.events[0]["DTSTART"].params.get("VALUE") == "DATE"]
    assert sorted(e.start for e in reminders) == [
        date(2027, 1, 27), date(2027, 2, 24), date(2027, 3, 24), date(2027, 4, 3)]


def test_feed_command_reads_the_store_named_by_config(store: Store, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from ehcbridge.app import App
    from ehcbridge.cli import cli

    config = tmp_path / "ehcbridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{(tmp_path / "ehcbridge.sqlite3").as_posix()}"\n'
                      f'[plugins.outlook]\noutbox_dir = "{(tmp_path / "outbox").as_posix()}"\n')
    # The command runs on the real clock, so the meeting is a month from today: its views
    # request date (six weeks before) has passed and drops out of the feed.
    today = datetime.now(LONDON).replace(hour=8, minute=0, second=0, microsecond=0)
    meeting = today + timedelta(days=30, hours=2)
    _case(store, meeting=meeting, now=today)
    app = App(config=config)
    try:
        Engine(app).run_once(today)
    finally:
        app.close()
    target = tmp_path / "feed.ics"
    result = CliRunner().invoke(cli, ["--config", str(config), "outlook", "feed",
                                      "--coordinator", "senco@school.example.org",
                                      "-o", str(target)])
    assert result.exit_code == 0, result.output
    events = Calendar.from_ical(target.read_bytes()).events
    summaries = [str(e["SUMMARY"]) for e in events]
    assert summaries[0] == "EHCP annual review: SE (EHC-1)"
    assert any("advice and views due" in x for x in summaries)
    assert any("review report due" in x for x in summaries)
    assert not any("request advice" in x for x in summaries)
    assert events[0].start == meeting
