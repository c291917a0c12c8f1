"""Invitations over real SMTP: iTIP REQUEST and CANCEL, UID and SEQUENCE, recipients, failures."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import ehcbridge_outlook
import pytest
import vobject
from ehcbridge import PermanentError, RetryLater
from ehcbridge.models import LONDON, Decision, Invitee, Outcome, Role
from ehcbridge.testing import make_event
from ehcbridge_outlook import service
from icalendar import Calendar

JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=x"
START = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
INVITEES = {
    "parent@example.net": "REQ-PARTICIPANT",
    "senco@school.example.org": "REQ-PARTICIPANT",
    "sen@la.example.gov.uk": "REQ-PARTICIPANT",
    "salt@nhs.example.net": "REQ-PARTICIPANT",
    "csc@la.example.gov.uk": "REQ-PARTICIPANT",
    "teacher@school.example.org": "OPT-PARTICIPANT",
}


def scheduled(**kwargs: Any) -> Any:
    kwargs.setdefault("join_url", JOIN)
    return make_event("on_review_scheduled", kwargs.pop("action", "scheduled"), **kwargs)


def rescheduled(start: datetime, sequence: int = 1, **kwargs: Any) -> Any:
    return scheduled(action="rescheduled", start=start, sequence=sequence, **kwargs)


def ical_errors(data: bytes) -> list[str]:
    """RFC 5546 REQUEST/CANCEL checks beyond what a parser enforces."""
    cal = Calendar.from_ical(data)
    problems = []
    method = str(cal["METHOD"])
    for event in cal.events:
        required = ["UID", "DTSTAMP", "DTSTART", "ORGANIZER", "SUMMARY"]
        required += ["ATTENDEE"] if method in ("REQUEST", "CANCEL") else []
        required += ["SEQUENCE"] if method == "CANCEL" else []
        problems += [f"missing {name}" for name in required if name not in event]
        if ("DTEND" in event) == ("DURATION" in event):
            problems.append("needs exactly one of DTEND and DURATION")
        if method == "CANCEL" and (event.get("STATUS") != "CANCELLED" or event.walk("VALARM")):
            problems.append("CANCEL must have STATUS:CANCELLED and no VALARM")
        tzid = event["DTSTART"].params.get("TZID")
        if tzid and tzid not in {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}:
            problems.append(f"no VTIMEZONE for {tzid}")
        problems += [str(e) for e in event.errors]
    return problems


def test_each_invitee_gets_one_request_with_every_required_property(tools: Any,
                                                                     smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())

    received = smtp_server.handler.messages
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(INVITEES)
    assert all(len(r.rcpt_tos) == 1 for r in received)
    assert {r.mail_from for r in received} == {"reviews@council.example.gov.uk"}
    uids = set()
    for r in received:
        message = r.message
        data, mime_method = tools.calendar_part(message)
        assert mime_method == "REQUEST"
        assert tools.attachment(message) == data
        assert message.get_content_type() == "multipart/mixed"
        assert ical_errors(data) == []
        cal = Calendar.from_ical(data)
        assert cal["METHOD"] == "REQUEST"
        event = cal.events[0]
        uids.add(str(event["UID"]))
        assert event["SEQUENCE"] == 0
        assert event["DTSTART"].params["TZID"] == "Europe/London"
        assert event.start == START and event.end == START + timedelta(hours=1)
        assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
        assert str(event["SUMMARY"]) == "EHCP annual review: SE (EHC-0001)"
        assert str(event["ORGANIZER"]) == "mailto:senco@school.example.org"
        assert event["ORGANIZER"].params["SENT-BY"] == "mailto:reviews@council.example.gov.uk"
        roles = {str(a).removeprefix("mailto:"): a.params["ROLE"] for a in event["ATTENDEE"]}
        assert roles == INVITEES
        for attendee in event["ATTENDEE"]:
            assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
            assert attendee.params["RSVP"] == "TRUE"
            assert attendee.params["CN"]
        assert JOIN in str(event["LOCATION"])
        assert JOIN in str(event["DESCRIPTION"])
        assert str(event["URL"]) == JOIN
        assert str(event["CONFERENCE"]) == JOIN
        assert event["CONFERENCE"].params["FEATURE"] == ["AUDIO", "VIDEO"] or \
            event["CONFERENCE"].params["FEATURE"] == "AUDIO,VIDEO"
        # An independent parser reads the same facts.
        parsed = vobject.readOne(data.decode())
        assert parsed.method.value == "REQUEST"
        assert parsed.vevent.uid.value == str(event["UID"])
        assert parsed.vevent.dtstart.value == START
        assert len(parsed.vevent.attendee_list) == len(INVITEES)
        # Readers that ignore the calendar part get the same facts.
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        assert text is not None and html is not None
        for body in (text.get_content(), html.get_content()):
            assert JOIN.replace("&", "&amp;") in body or JOIN in body
            assert "Tuesday 10 March 2026, 10:00 to 11:00" in body
        assert message["Subject"].startswith("Invitation: EHCP annual review: SE (EHC-0001)")
        assert message["Reply-To"] == "senco@school.example.org"
    assert len(uids) == 1 and next(iter(uids)).endswith("@ehcbridge")
    records = tools.store.invitation_records
    assert sorted(r["email"] for r in records if r["status"] == "sent") == sorted(INVITEES)


def test_no_message_carries_the_childs_name(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    ehcbridge_outlook.on_views_due(make_event("on_views_due", "request", join_url=JOIN),
                                   tools.ctx())
    assert len(smtp_server.handler.messages) == len(INVITEES) + 2
    for r in smtp_server.handler.messages:
        raw = r.message.as_string()
        decoded = " ".join(str(p.get_payload(decode=True)) for p in r.message.walk()
                           if not p.is_multipart())
        for word in ("Sam", "Example School", "2014-05-02", "A123456789012"):
            assert word not in raw and word not in decoded


def test_reschedule_keeps_uid_and_raises_sequence(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    first = tools.vevent(smtp_server.handler.to("parent@example.net")[0])
    moved = START + timedelta(days=2, hours=3)
    ehcbridge_outlook.on_review_scheduled(rescheduled(moved), tools.ctx())

    updates = smtp_server.handler.to("parent@example.net")
    assert len(updates) == 2
    second = tools.vevent(updates[1])
    assert second["UID"] == first["UID"]
    assert second["SEQUENCE"] == 1 > first["SEQUENCE"]
    assert second.start == moved
    assert updates[1]["Subject"].startswith("Updated invitation:")
    assert updates[1]["Message-ID"] != updates[0]["Message-ID"]
    # Other plugins see one invitation per person, not one per revision.
    assert [r["email"] for r in tools.store.invitation_records].count("parent@example.net") == 1
    # Moving again, even if the core forgot to raise the sequence, still goes up.
    ehcbridge_outlook.on_review_scheduled(rescheduled(moved + timedelta(days=1), sequence=1,
                                                      key="again"), tools.ctx())
    assert tools.vevent(smtp_server.handler.to("parent@example.net")[2])["SEQUENCE"] == 2


def test_cancel_has_same_uid_higher_sequence_and_reaches_everyone(tools: Any,
                                                                  smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    ehcbridge_outlook.on_review_scheduled(rescheduled(START + timedelta(days=1)), tools.ctx())
    before = len(smtp_server.handler.messages)
    ehcbridge_outlook.on_review_scheduled(scheduled(action="cancelled", sequence=1), tools.ctx())

    cancels = smtp_server.handler.messages[before:]
    assert sorted(r.rcpt_tos[0] for r in cancels) == sorted(INVITEES)
    request = tools.vevent(smtp_server.handler.messages[before - 1].message)
    for r in cancels:
        data, mime_method = tools.calendar_part(r.message)
        assert mime_method == "CANCEL"
        assert ical_errors(data) == []
        cal = Calendar.from_ical(data)
        assert cal["METHOD"] == "CANCEL"
        event = cal.events[0]
        assert event["UID"] == request["UID"]
        assert event["SEQUENCE"] == 2 > request["SEQUENCE"]
        assert event["STATUS"] == "CANCELLED"
        assert {str(a).removeprefix("mailto:") for a in event["ATTENDEE"]} == set(INVITEES)
        assert "CONFERENCE" not in event
        assert r.message["Subject"].startswith("Cancelled:")
        assert vobject.readOne(data.decode()).vevent.status.value == "CANCELLED"
    # A retried cancellation sends nothing more.
    ehcbridge_outlook.on_review_scheduled(scheduled(action="cancelled", sequence=1), tools.ctx())
    assert len(smtp_server.handler.messages) == before + len(INVITEES)


def test_cease_before_the_meeting_cancels_it_but_not_after(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    sent = len(smtp_server.handler.messages)
    cease = Decision(outcome=Outcome.CEASE, reason="moved out of area", decided_on=date(2026, 3, 1))
    after = tools.ctx(now=START + timedelta(days=1))
    ehcbridge_outlook.on_decision(make_event("on_decision", "recorded", join_url=JOIN,
                                             decision=cease), after)
    assert len(smtp_server.handler.messages) == sent
    maintain = Decision(outcome=Outcome.MAINTAIN, reason="", decided_on=date(2026, 3, 1))
    ehcbridge_outlook.on_decision(make_event("on_decision", "recorded", join_url=JOIN,
                                             decision=maintain), tools.ctx())
    assert len(smtp_server.handler.messages) == sent

    ehcbridge_outlook.on_decision(make_event("on_decision", "recorded", join_url=JOIN,
                                             decision=cease), tools.ctx())
    cancels = smtp_server.handler.messages[sent:]
    assert len(cancels) == len(INVITEES)
    assert {tools.calendar_part(r.message)[1] for r in cancels} == {"CANCEL"}


def test_nobody_gets_the_same_invitation_twice_across_restarts(tools: Any,
                                                                smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    # A restart: the state goes through JSON as the real store keeps it, and a new context.
    tools.store.state = json.loads(json.dumps(tools.store.state))
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    ehcbridge_outlook.on_review_scheduled(scheduled(key="redelivered"), tools.ctx())
    assert len(smtp_server.handler.messages) == len(INVITEES)


def test_temporary_failure_is_retried_until_accepted(tools: Any, smtp_server: Any,
                                                     sleeps: Any) -> None:
    smtp_server.handler.scripted["salt@nhs.example.net"] = [
        "451 4.7.1 Greylisted, try again", "421 4.3.2 Busy"]
    patient = tools.settings.model_copy(update={"send_attempts": 3, "retry_wait": 0.5})
    service.on_review_scheduled(scheduled(), tools.ctx(settings=patient), sleep=sleeps)
    assert len(smtp_server.handler.to("salt@nhs.example.net")) == 1
    assert smtp_server.handler.rcpt_attempts["salt@nhs.example.net"] == 3
    assert sleeps == [0.5, 1.0]
    assert len(smtp_server.handler.messages) == len(INVITEES)


def test_lasting_temporary_failure_asks_the_engine_to_retry_and_resumes(tools: Any,
                                                                       smtp_server: Any,
                                                                       sleeps: Any) -> None:
    smtp_server.handler.forever["sen@la.example.gov.uk"] = "452 4.2.2 Mailbox full"
    with pytest.raises(RetryLater):
        service.on_review_scheduled(scheduled(), tools.ctx(), sleep=sleeps)
    assert smtp_server.handler.rcpt_attempts["sen@la.example.gov.uk"] == 2
    delivered = {r.rcpt_tos[0] for r in smtp_server.handler.messages}
    assert "sen@la.example.gov.uk" not in delivered
    assert not [r for r in tools.store.invitation_records if r["status"] == "failed"]

    del smtp_server.handler.forever["sen@la.example.gov.uk"]
    service.on_review_scheduled(scheduled(), tools.ctx(), sleep=sleeps)
    counts = {a: len(smtp_server.handler.to(a)) for a in INVITEES}
    assert counts == dict.fromkeys(INVITEES, 1)


def test_connection_failure_is_temporary(tools: Any, sleeps: Any) -> None:
    nowhere = tools.settings.model_copy(update={"smtp_port": tools.free_port()})
    with pytest.raises(RetryLater, match="connection"):
        service.on_review_scheduled(scheduled(), tools.ctx(settings=nowhere), sleep=sleeps)
    assert len(sleeps) == nowhere.send_attempts - 1
    assert tools.store.invitation_records == []
    assert not tools.store.state_items("sent:")


def test_permanent_refusal_is_recorded_not_retried(tools: Any, smtp_server: Any,
                                                    sleeps: Any) -> None:
    smtp_server.handler.forever["salt@nhs.example.net"] = "550 5.1.1 No such mailbox"
    service.on_review_scheduled(scheduled(), tools.ctx(), sleep=sleeps)
    assert smtp_server.handler.rcpt_attempts["salt@nhs.example.net"] == 1
    assert sleeps == []
    failed = [r for r in tools.store.invitation_records if r["status"] == "failed"]
    assert [(r["email"], r["plugin"]) for r in failed] == [("salt@nhs.example.net", "outlook")]
    assert "550" in failed[0]["detail"]
    assert service.FAILED_FLAG in tools.store.flags["EHC-0001"]
    assert len(smtp_server.handler.messages) == len(INVITEES) - 1
    # Not tried again on redelivery.
    service.on_review_scheduled(scheduled(), tools.ctx(), sleep=sleeps)
    assert smtp_server.handler.rcpt_attempts["salt@nhs.example.net"] == 1


def test_refused_sender_fails_the_delivery_without_blaming_invitees(tools: Any,
                                                                    smtp_server: Any) -> None:
    # Refusing the sender is a configuration fault, not the invitees': PermanentError.
    bad = tools.settings.model_copy(update={"from_address": "nobody@blocked.example"})
    smtp_server.handler.blocked_senders.add("nobody@blocked.example")
    with pytest.raises(PermanentError):
        ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx(settings=bad))
    assert tools.store.invitation_records == []


@pytest.mark.parametrize(("mode", "expected"), [
    ("uninvited", set(INVITEES) - {"sen@la.example.gov.uk", "csc@la.example.gov.uk"}),
    ("all", set(INVITEES)),
    ("none", set()),
])
def test_invite_mode_chooses_recipients(tools: Any, smtp_server: Any, mode: str,
                                        expected: set[str]) -> None:
    tools.store.invitation_records += [
        {"case_id": "EHC-0001", "email": "sen@la.example.gov.uk", "plugin": "teams",
         "status": "sent", "detail": ""},
        {"case_id": "EHC-0001", "email": "CSC@la.example.gov.uk", "plugin": "teams",
         "status": "sent", "detail": ""},
        {"case_id": "EHC-0001", "email": "salt@nhs.example.net", "plugin": "teams",
         "status": "failed", "detail": "no mailbox"},
    ]
    settings = tools.settings.model_copy(update={"invite": mode})
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx(settings=settings))
    assert {r.rcpt_tos[0] for r in smtp_server.handler.messages} == expected
    for r in smtp_server.handler.messages:
        # The attendee list is the whole meeting's, whoever else sent the invitation.
        attendees = {str(a).removeprefix("mailto:") for a in tools.vevent(r.message)["ATTENDEE"]}
        assert attendees == set(INVITEES)
    # The feed is kept whatever the mode.
    assert tools.store.state_items("feed:meeting:")


def test_uninvited_mode_keeps_updating_people_it_invited(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    tools.store.invitation_records.append({"case_id": "EHC-0001", "email": "parent@example.net",
                                           "plugin": "teams", "status": "sent", "detail": ""})
    ehcbridge_outlook.on_review_scheduled(rescheduled(START + timedelta(days=3)), tools.ctx())
    assert len(smtp_server.handler.to("parent@example.net")) == 2


def test_new_invitee_gets_the_current_revision_only(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(), tools.ctx())
    extra = Invitee(role=Role.HEALTH, name="OT service", email="ot@nhs.example.net", team="OT")
    base = scheduled()
    ehcbridge_outlook.on_review_scheduled(
        scheduled(invitees=(*base.invitees, extra), key="added"), tools.ctx())
    assert len(smtp_server.handler.messages) == len(INVITEES) + 1
    newcomer = smtp_server.handler.to("ot@nhs.example.net")[0]
    assert tools.vevent(newcomer)["SEQUENCE"] == 0
    assert newcomer["Subject"].startswith("Invitation:")


def test_in_person_meeting_has_no_join_link(tools: Any, smtp_server: Any) -> None:
    ehcbridge_outlook.on_review_scheduled(scheduled(online=False, join_url=None), tools.ctx())
    event = tools.vevent(smtp_server.handler.messages[0].message)
    assert str(event["LOCATION"]) == "Room 4, Example School"
    assert "URL" not in event and "CONFERENCE" not in event
    assert ical_errors(tools.calendar_part(smtp_server.handler.messages[0].message)[0]) == []


def test_awkward_names_survive_both_parsers(tools: Any, smtp_server: Any) -> None:
    odd = Invitee(role=Role.HEALTH, name='Team "North",\nZoë; Ward: 7', email="zoe@nhs.example.net")
    ehcbridge_outlook.on_review_scheduled(scheduled(invitees=(odd,)), tools.ctx())
    (received,) = smtp_server.handler.messages
    data, _method = tools.calendar_part(received.message)
    (attendee,) = [Calendar.from_ical(data).events[0]["ATTENDEE"]]
    assert attendee.params["CN"] == "Team 'North', Zoë; Ward: 7"
    assert vobject.readOne(data.decode()).vevent.attendee.params["CN"] == [
        "Team 'North', Zoë; Ward: 7"]
    assert "Zoë" in str(received.message["To"])


class Crash(BaseException):
    """The process dying between two messages (not an error a plugin would catch)."""


def _crash_after(monkeypatch: Any, count: int) -> None:
    real = service.send
    sent = [0]

    def send(message: Any, mail: Any) -> str:
        if sent[0] == count:
            raise Crash
        sent[0] += 1
        return real(message, mail)

    monkeypatch.setattr(service, "send", send)


def test_a_crash_mid_delivery_to_the_outbox_leaves_one_copy_each_after_the_retry(
        tools: Any, tmp_path: Any, monkeypatch: Any) -> None:
    # The outbox replaces a message's file when it is written again, so the delivery is one
    # transaction: the crash loses every record and the retry rewrites the same files.
    outbox = tools.settings.model_copy(update={"transport": "outbox",
                                               "outbox_dir": tmp_path / "out"})
    _crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        service.on_review_scheduled(scheduled(), tools.ctx(settings=outbox))
    first = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*.eml")}
    assert len(first) == 2
    assert not tools.store.state_items("sent:") and tools.store.invitation_records == []

    monkeypatch.undo()
    service.on_review_scheduled(scheduled(), tools.ctx(settings=outbox))
    files = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*.eml")}
    assert len(files) == len(INVITEES)
    assert {n: files[n] for n in first} == first  # the same messages, byte for byte
    assert sorted(r["email"] for r in tools.store.invitation_records) == sorted(INVITEES)
    service.on_review_scheduled(scheduled(), tools.ctx(settings=outbox))
    assert len(list((tmp_path / "out").glob("*.eml"))) == len(INVITEES)


def test_a_crash_mid_delivery_over_smtp_keeps_the_record_of_each_message_sent(
        tools: Any, smtp_server: Any, monkeypatch: Any) -> None:
    # Mail that has left cannot be called back: each message's record commits as it is sent,
    # so after the crash only the unsent invitees are sent to.
    _crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        service.on_review_scheduled(scheduled(), tools.ctx())
    assert len(tools.store.invitation_records) == 2
    monkeypatch.undo()
    service.on_review_scheduled(scheduled(), tools.ctx())
    counts = {a: len(smtp_server.handler.to(a)) for a in INVITEES}
    assert counts == dict.fromkeys(INVITEES, 1)


def test_an_in_person_meeting_without_a_place_says_it_is_to_be_confirmed(
        tools: Any, smtp_server: Any) -> None:
    event = scheduled(online=False, join_url=None)
    assert event.meeting is not None
    event = event.model_copy(update={
        "meeting": event.meeting.model_copy(update={"location": None})})
    ehcbridge_outlook.on_review_scheduled(event, tools.ctx())
    message = smtp_server.handler.messages[0].message
    assert str(tools.vevent(message)["LOCATION"]) == "To be confirmed by the organiser"
    assert "Where: To be confirmed by the organiser" in message.get_body(("plain",)).get_content()
