"""Deadline reminders for the coordinator and the subscribable feed."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ehcbridge_outlook
import pytest
import vobject
from click.testing import CliRunner
from ehcbridge.models import LONDON, Invitee, Review, Role
from ehcbridge.testing import make_event
from ehcbridge_outlook import service
from ehcbridge_outlook.cli import outlook
from icalendar import Calendar

START = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
COORDINATOR = "senco@school.example.org"


def views(action: str = "request", **kwargs: Any) -> Any:
    return make_event("on_views_due", action, **kwargs)


def test_views_reminders_are_all_day_events_with_an_alarm(tools: Any, smtp_server: Any) -> None:
    event = views()
    ehcbridge_outlook.on_views_due(event, tools.ctx())
    messages = smtp_server.handler.to(COORDINATOR)
    assert len(messages) == len(smtp_server.handler.messages) == 2
    days = {}
    for message in messages:
        data, method = tools.calendar_part(message)
        assert method == "REQUEST"
        cal = Calendar.from_ical(data)
        vevent = cal.events[0]
        assert vevent["DTSTART"].params.get("VALUE") == "DATE"
        assert vevent.end - vevent.start == timedelta(days=1)
        assert vevent["TRANSP"] == "TRANSPARENT"
        assert str(vevent["ORGANIZER"]) == "mailto:reviews@council.example.gov.uk"
        (attendee,) = [vevent["ATTENDEE"]]
        assert str(attendee) == f"mailto:{COORDINATOR}" and attendee.params["RSVP"] == "FALSE"
        (alarm,) = vevent.walk("VALARM")
        assert alarm["ACTION"] == "DISPLAY"
        # The day before at 09:00.
        assert alarm["TRIGGER"].dt == -timedelta(hours=15)
        assert "SE" in str(vevent["SUMMARY"]) and "EHC-0001" in str(vevent["SUMMARY"])
        assert vobject.readOne(data.decode()).vevent.valarm.trigger.value == -timedelta(hours=15)
        days[str(vevent["SUMMARY"])] = vevent.start
    assert sorted(days.values()) == [event.milestone("views_request").date,
                                     event.milestone("views_due").date]
    # Later stages of the same hook do not repeat them.
    ehcbridge_outlook.on_views_due(views("reminder"), tools.ctx())
    ehcbridge_outlook.on_views_due(views("due"), tools.ctx())
    assert len(smtp_server.handler.messages) == 2


def test_report_and_decision_reminders_follow_the_meeting(tools: Any, smtp_server: Any) -> None:
    event = make_event("on_meeting_held", "recorded")
    ehcbridge_outlook.on_meeting_held(event, tools.ctx())
    starts = sorted(tools.vevent(m).start for m in smtp_server.handler.to(COORDINATOR))
    assert starts == [event.milestone("report_due").date, event.milestone("decision_due").date]


def test_reminders_can_be_turned_off(tools: Any, smtp_server: Any) -> None:
    quiet = tools.settings.model_copy(update={"reminders": False})
    ehcbridge_outlook.on_views_due(views(), tools.ctx(settings=quiet))
    assert smtp_server.handler.messages == []


def test_reminders_move_with_the_meeting_and_are_cancelled_with_it(tools: Any,
                                                                   smtp_server: Any) -> None:
    ehcbridge_outlook.on_views_due(views(), tools.ctx())
    first = {str(tools.vevent(r.message)["UID"]): tools.vevent(r.message)
             for r in smtp_server.handler.messages}
    # Same day, later time: deadlines do not move, so no reminder is resent.
    same_day = make_event("on_review_scheduled", "rescheduled", start=START + timedelta(hours=4),
                          sequence=1, invitees=())
    ehcbridge_outlook.on_review_scheduled(same_day, tools.ctx())
    assert len(smtp_server.handler.messages) == 2

    moved = START + timedelta(weeks=1)
    ehcbridge_outlook.on_review_scheduled(
        make_event("on_review_scheduled", "rescheduled", start=moved, sequence=2, invitees=()),
        tools.ctx())
    updates = smtp_server.handler.messages[2:]
    assert len(updates) == 2
    for r in updates:
        vevent = tools.vevent(r.message)
        before = first[str(vevent["UID"])]
        assert vevent["SEQUENCE"] == before["SEQUENCE"] + 1
        assert vevent.start == before.start + timedelta(weeks=1)
        assert r.message["Subject"].startswith("Moved reminder:")

    ehcbridge_outlook.on_review_scheduled(
        make_event("on_review_scheduled", "cancelled", start=moved, sequence=2, invitees=()),
        tools.ctx())
    cancels = smtp_server.handler.messages[4:]
    assert len(cancels) == 2
    for r in cancels:
        data, method = tools.calendar_part(r.message)
        vevent = Calendar.from_ical(data).events[0]
        assert method == "CANCEL" and vevent["STATUS"] == "CANCELLED"
        assert vevent["SEQUENCE"] == 2 and not vevent.walk("VALARM")


def test_next_years_review_has_its_own_reminders(tools: Any) -> None:
    this_year = views()
    next_year = views(review=this_year.review.model_copy(update={"id": 2,
                                                                 "due_by": date(2027, 3, 31)}))
    assert service.deadline_uid(this_year, "views_due") != service.deadline_uid(next_year,
                                                                               "views_due")
    assert service.deadline_uid(this_year, "views_due") == service.deadline_uid(views("due"),
                                                                               "views_due")


def _schedule_two_cases(tools: Any) -> None:
    settings = tools.settings.model_copy(update={"invite": "none"})
    salt = Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example.net", team="SALT North")
    ehcbridge_outlook.on_review_scheduled(
        make_event(join_url="https://teams.example/join/1", invitees=(salt,)),
        tools.ctx(settings=settings))
    other = make_event(case_id="EHC-0002", start=START + timedelta(days=1),
                       coordinator="other@school.example.org", online=False)
    ehcbridge_outlook.on_review_scheduled(other, tools.ctx(settings=settings))
    cancelled = make_event(case_id="EHC-0003", action="cancelled", invitees=(salt,))
    ehcbridge_outlook.on_review_scheduled(cancelled, tools.ctx(settings=settings))


def test_feed_lists_a_coordinators_upcoming_meetings_and_deadlines(tools: Any) -> None:
    _schedule_two_cases(tools)
    items = tools.store.state_items("feed:")
    data = service.build_feed(items, now=tools.now, coordinator=COORDINATOR.upper())
    cal = Calendar.from_ical(data)
    assert cal["METHOD"] == "PUBLISH"
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    summaries = [str(e["SUMMARY"]) for e in cal.events]
    assert summaries[0] == "EHCP annual review: SE (EHC-0001)"
    assert len(summaries) == 5 and all("EHC-0001" in s for s in summaries)
    assert all("ATTENDEE" not in e for e in cal.events)
    assert str(cal.events[0]["URL"]) == "https://teams.example/join/1"
    assert vobject.readOne(data.decode()).method.value == "PUBLISH"

    # Once the views request date has passed it drops out; the meeting stays until it ends.
    later = service.build_feed(items, now=datetime(2026, 2, 2, 9, tzinfo=LONDON),
                               coordinator=COORDINATOR)
    assert len(Calendar.from_ical(later).events) == 4
    after = service.build_feed(items, now=START + timedelta(hours=2), coordinator=COORDINATOR)
    event = make_event()
    assert [e.start for e in Calendar.from_ical(after).events] == [
        event.milestone("report_due").date, event.milestone("decision_due").date]


def test_feed_for_a_team_and_for_nobody(tools: Any) -> None:
    _schedule_two_cases(tools)
    items = tools.store.state_items("feed:")
    team = Calendar.from_ical(service.build_feed(items, now=tools.now, team="salt north"))
    assert {str(e["SUMMARY"]).split("(")[-1] for e in team.events} >= {"EHC-0001)"}
    assert all("EHC-0002" not in str(e["SUMMARY"]) for e in team.events)
    assert all("EHC-0003" not in str(e["SUMMARY"]) for e in team.events)
    nobody = Calendar.from_ical(service.build_feed(items, now=tools.now, team="nobody"))
    assert nobody.events == [] and nobody["METHOD"] == "PUBLISH"


def test_feed_command_writes_the_file(tools: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ehcbridge.invocation

    _schedule_two_cases(tools)

    class FakeApp:
        def plugin_context(self, name: str) -> Any:
            assert name == "outlook"
            return tools.ctx()

    monkeypatch.setattr(ehcbridge.invocation, "current_app", lambda: FakeApp())
    target = tmp_path / "feed.ics"
    result = CliRunner().invoke(outlook, ["feed", "--coordinator", COORDINATOR, "-o",
                                          str(target)])
    assert result.exit_code == 0, result.output
    assert len(Calendar.from_ical(target.read_bytes()).events) == 5
    both = CliRunner().invoke(outlook, ["feed", "--coordinator", "a@b", "--team", "x"])
    assert both.exit_code == 2 and "not both" in both.output
    stdout = CliRunner().invoke(outlook, ["feed", "--team", "SALT North"])
    assert stdout.exit_code == 0 and "METHOD:PUBLISH" in stdout.output


def test_review_without_coordinator_gets_no_reminders(tools: Any, smtp_server: Any) -> None:
    event = views()
    review: Review = event.review.model_copy(update={"coordinator_email": None})
    ehcbridge_outlook.on_views_due(views(review=review), tools.ctx())
    assert smtp_server.handler.messages == []


def test_state_of_past_reviews_is_forgotten(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(make_event(), tools.ctx())
    ehcbridge_outlook.on_views_due(views(), tools.ctx())
    keys = {k for k, _v in tools.store.state_items()}
    assert any(k.startswith("sent:") for k in keys) and any(k.startswith("feed:") for k in keys)
    # Soon after the meeting nothing is forgotten: the decision is still to come.
    assert service.prune(tools.ctx(now=START + timedelta(weeks=6))) == 0
    assert {k for k, _v in tools.store.state_items()} == keys
    assert service.prune(tools.ctx(now=START + timedelta(days=200))) == len(keys)
    assert tools.store.state_items() == []


def test_prune_is_registered_as_a_nightly_job() -> None:
    jobs: list[tuple[str, str, Any]] = []
    ehcbridge_outlook.register_schedules(lambda name, cron, func: jobs.append((name, cron, func)))
    assert [(name, cron) for name, cron, _f in jobs] == [("outlook-prune", "40 3 * * *"),
                                                         ("outlook-mailbox", "*/10 * * * *")]
