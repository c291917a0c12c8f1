"""The bytes of an invitation as written to the outbox: read back as a recipient's mail client
would (the email package, icalendar), whatever shortcuts built them.

The messages of one delivery share their calendar and body parts and most headers skip the
email package's folding; these tests hold what each recipient sees to what they saw before.
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import stat
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path
from typing import Any

import ehcbridge_outlook
import pytest
from ehcbridge.models import LONDON, Invitee, Role
from ehcbridge.testing import MemoryPluginStore, make_context, make_event
from ehcbridge_outlook import imip
from ehcbridge_outlook.settings import OutlookSettings
from icalendar import Calendar

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=LONDON)
START = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
JOIN = "https://teams.example.net/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=x"
PEOPLE = (
    Invitee(role=Role.PARENT, name="Zoë Ñame-Ünïcode", email="parent@example.net"),
    Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
    Invitee(role=Role.OTHER, name="A class teacher whose name is long enough to need folding "
                                  "in the To header of the message", email="t@school.example.org"),
)


def outbox_run(tmp_path: Path, *events: Any) -> list[EmailMessage]:
    """Deliver ``events`` through the outbox transport; the messages written, parsed."""
    settings = OutlookSettings(transport="outbox", outbox_dir=tmp_path / "outbox",
                               from_address="Reviews <reviews@council.example.gov.uk>")
    store = MemoryPluginStore(plugin="outlook")
    for event in events:
        ehcbridge_outlook.on_review_scheduled(
            event=event, ctx=make_context("outlook", settings=settings, store=store, now=NOW))
    found: list[EmailMessage] = []
    for path in sorted((tmp_path / "outbox").glob("*.eml")):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0  # children's data: owner only
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def parts_of(message: EmailMessage) -> dict[str, Any]:
    """What a recipient's client shows: the bodies, the calendar part and the attachment."""
    out: dict[str, Any] = {}
    for part in message.walk():
        kind = part.get_content_type()
        if part.get_filename() == "invite.ics":
            out["ics"] = part.get_payload(decode=True)
        elif kind == "text/calendar":
            out["calendar"] = part.get_payload(decode=True)
            out["method"] = part.get_param("method")
        elif kind in ("text/plain", "text/html"):
            assert isinstance(part, EmailMessage)
            out[kind] = part.get_content()
    return out


def test_each_recipient_reads_their_own_invitation_with_the_shared_calendar(
        tmp_path: Path) -> None:
    written = outbox_run(tmp_path, make_event(invitees=PEOPLE, join_url=JOIN, start=START))
    messages = {m["To"].addresses[0].addr_spec: m for m in written}
    assert len(messages) == len(written)  # one message per recipient

    assert sorted(messages) == ["parent@example.net", "senco@school.example.org",
                                "t@school.example.org"]
    calendars = set()
    for message in messages.values():
        assert message.get_content_type() == "multipart/mixed"
        assert message["Subject"] == ("Invitation: EHCP annual review: SE (EHC-0001), "
                                      "Tuesday 10 March 2026, 10:00 to 11:00 (UK time)")
        assert message["From"].addresses[0].addr_spec == "reviews@council.example.gov.uk"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Message-ID"].endswith("@council.example.gov.uk>")
        assert message["Date"].datetime == NOW
        parts = parts_of(message)
        assert parts["method"] == "REQUEST"
        assert parts["calendar"] == parts["ics"]  # the attachment is the same calendar
        calendars.add(parts["calendar"])
        cal = Calendar.from_ical(parts["calendar"])
        assert str(cal["METHOD"]) == "REQUEST"
        event = cal.events[0]
        assert event["SEQUENCE"] == 0
        assert event.decoded("DTSTART") == START
        attendees = {str(a).removeprefix("mailto:").lower() for a in event["ATTENDEE"]}
        assert attendees == set(messages)  # everyone listed, whoever the copy is for
        assert "You are invited to an EHC plan review meeting." in parts["text/plain"]
        assert JOIN in parts["text/plain"]
        assert f'<a href="{JOIN}">' in parts["text/html"]
        assert b"\r\n" in parts["calendar"]  # RFC 5545 line ends survive the base64 part
    assert len(calendars) == 1  # one calendar for every recipient of a revision

    to = {a: m["To"].addresses[0].display_name for a, m in messages.items()}
    assert to["parent@example.net"] == "Zoë Ñame-Ünïcode"  # RFC 2047, decoded back
    assert to["t@school.example.org"].startswith("A class teacher whose name is long")
    # The role sentence differs by recipient although the other parts are shared.
    optional = parts_of(messages["t@school.example.org"])["text/plain"]
    required = parts_of(messages["parent@example.net"])["text/plain"]
    assert "Your attendance is optional." in optional
    assert "Your attendance is optional." not in required
    assert "reg 20(2)" in required


def test_an_update_and_a_cancellation_read_as_such(tmp_path: Path) -> None:
    first = make_event(invitees=PEOPLE[:2], join_url=JOIN, start=START)
    moved = make_event("on_review_scheduled", "rescheduled", invitees=PEOPLE[:2],
                       join_url=JOIN, start=START.replace(day=11), sequence=1)
    cancelled = make_event("on_review_scheduled", "cancelled", invitees=PEOPLE[:2],
                           join_url=JOIN, start=START.replace(day=11), sequence=1)
    by_subject: dict[str, list[EmailMessage]] = {}
    for message in outbox_run(tmp_path, first, moved, cancelled):
        by_subject.setdefault(str(message["Subject"]).split(":")[0], []).append(message)
    assert {k: len(v) for k, v in by_subject.items()} == {
        "Invitation": 2, "Updated invitation": 2, "Cancelled": 2}
    for message in by_subject["Updated invitation"]:
        parts = parts_of(message)
        event = Calendar.from_ical(parts["calendar"]).events[0]
        assert event["SEQUENCE"] == 1 and event.decoded("DTSTART") == START.replace(day=11)
        assert "has changed" in parts["text/plain"]
    for message in by_subject["Cancelled"]:
        parts = parts_of(message)
        assert parts["method"] == "CANCEL"
        event = Calendar.from_ical(parts["calendar"]).events[0]
        assert str(event["STATUS"]) == "CANCELLED" and event["SEQUENCE"] == 2
        assert "has been cancelled" in parts["text/plain"]


@pytest.mark.parametrize("name,value", [
    ("Subject", "Invitation: EHCP annual review: SE (EHC-0001), Tuesday 10 March 2026"),
    ("Subject", "Invitation: EHCP annual review: SE (EHC-0001), Tuesday 10 March 2026, 10:00 "
                "to 11:00 (UK time)"),
    ("To", "Parent <parent@example.net>"),
    ("To", "=?utf-8?q?Zo=C3=AB?= <parent@example.net>"),
    ("X-Spaces", "two  spaces"),
    ("X-Edge", " leading"),
    ("X-Edge", "trailing "),
    ("X-Tab", "a\tb"),
    ("X-Long", "x" * 80),
    ("X-Empty", ""),
    ("Message-ID", "<3a94bf9b6f15111dedd7d18746cb64d1a9eab27c@council.example.gov.uk>"),
])
def test_the_fast_header_path_writes_what_compat32_writes(name: str, value: str) -> None:
    assert imip.POLICY.fold_binary(name, value) == compat32.fold_binary(name, value)
    assert imip.POLICY.fold(name, value) == compat32.fold(name, value)


def test_the_fast_header_path_agrees_with_compat32_on_random_values() -> None:
    rng = random.Random(17)
    alphabet = "abc XYZ 019 :;<>@.,()=?\"'-_/\t" + "é"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert imip.POLICY.fold_binary("Subject", value) == compat32.fold_binary(
            "Subject", value), value


def test_outbox_files_are_written_private_in_a_new_folder(tmp_path: Path) -> None:
    from ehcbridge.mail import MailSettings, send

    folder = tmp_path / "new" / "outbox"
    message = imip.build_message(
        calendar=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", method="REQUEST", subject="s",
        sender="a@example.net", to=("", "b@example.net"), reply_to=None,
        msg_id="<m1@example.net>", sent_at=NOW, text="t", html_body="<p>h</p>")
    old = os.umask(0)  # the modes come from the code, not a kind umask
    try:
        send(message, MailSettings(outbox_dir=folder))
        send(message, MailSettings(outbox_dir=folder))  # again: replaced, not duplicated
    finally:
        os.umask(old)
    assert [p.name for p in folder.iterdir()] == ["m1_at_example.net.eml"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "m1_at_example.net.eml").stat().st_mode) == 0o600
    parsed = email.message_from_bytes((folder / "m1_at_example.net.eml").read_bytes())
    assert parsed["Message-ID"] == "<m1@example.net>"


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_meeting_calendar_with_its_time_zone_written_once_is_the_same_bytes(
        cancelled: bool) -> None:
    from ehcbridge_outlook import ical

    entry = ical.MeetingEntry(
        uid="u@ehcbridge", sequence=2, start=START, end=START.replace(hour=11),
        summary="EHCP review", organiser=ical.Person("o@example.net", "Organiser"),
        attendees=(ical.Person("a@example.net", "A"),), location="Online", join_url=JOIN,
        cancelled=cancelled, online=True)
    stamp = NOW.astimezone(UTC)
    for _ in range(2):  # the cached VTIMEZONE, first written and then reused
        assert ical.meeting_calendar_bytes(entry, stamp=stamp) == ical.to_bytes(
            ical.meeting_calendar(entry, stamp=stamp))


def test_the_same_message_is_the_same_bytes_with_boundaries_in_no_part(tmp_path: Path) -> None:
    event = make_event(invitees=PEOPLE, join_url=JOIN, start=START)
    first = {p.name: p.read_bytes() for p in _outbox_files(tmp_path / "one", event)}
    again = {p.name: p.read_bytes() for p in _outbox_files(tmp_path / "two", event)}
    assert first == again  # a resend after a crash is byte for byte the same message
    for data in first.values():
        message = email.message_from_bytes(data, policy=email.policy.default)
        boundaries = [part.get_boundary() for part in message.walk() if part.is_multipart()]
        assert len(set(boundaries)) == 2
        for boundary in boundaries:
            assert boundary is not None
            # Each boundary line appears only as a delimiter, never inside a part.
            lines = data.split(b"\n")
            marks = [line for line in lines if boundary.encode() in line]
            assert all(line.rstrip(b"\r") in (b"--" + boundary.encode(),
                                              b"--" + boundary.encode() + b"--")
                       or b'boundary="' in line for line in marks)


def _outbox_files(folder: Path, event: Any) -> list[Path]:
    outbox_run(folder, event)
    return sorted((folder / "outbox").glob("*.eml"))


def test_shared_parts_written_once_give_the_bytes_the_email_package_writes() -> None:
    from email.generator import BytesGenerator
    from io import BytesIO

    parts = imip.Parts()
    calendar = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    messages = [imip.build_message(
        calendar=calendar, method="REQUEST", subject=f"Invitation {n}", sender="a@example.net",
        to=(name, f"{n}@example.net"), reply_to=None, msg_id=f"<m{n}@example.net>",
        sent_at=NOW, text=f"text {n % 2}", html_body=f"<p>{n % 2}</p>", parts=parts)
        for n, name in enumerate(["", "Zoë", "B"])]
    for _ in range(2):  # the second time round every shared part comes from its bytes
        for message in messages:
            plain = BytesIO()
            BytesGenerator(plain, mangle_from_=False, policy=message.policy).flatten(message)
            assert message.as_bytes() == plain.getvalue()
    bodies = {id(m.get_payload(0)) for m in messages}  # type: ignore[union-attr]
    assert len(bodies) == 2  # two distinct bodies, each built once and shared


def test_one_audit_line_per_invitation_and_none_for_a_repeat(tmp_path: Path) -> None:
    settings = OutlookSettings(transport="outbox", outbox_dir=tmp_path / "outbox",
                               from_address="reviews@council.example.gov.uk")
    store = MemoryPluginStore(plugin="outlook")
    event = make_event(invitees=PEOPLE, join_url=JOIN, start=START)
    for _ in range(2):  # the second delivery of the same event sends nothing
        ehcbridge_outlook.on_review_scheduled(
            event=event, ctx=make_context("outlook", settings=settings, store=store, now=NOW))
    assert [(a["action"], a["detail"]["sent"], a["detail"]["refused"]) for a in store.audits] \
        == [("outlook.invitation", 3, 0)]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3


def test_calendars_are_folded_exactly_as_icalendar_folds_them() -> None:
    # to_bytes skips icalendar's folding for short ASCII lines: the bytes must not change,
    # whatever the lengths (74, 75, 76 octets), accents, emoji or escapes at a fold.
    from ehcbridge_outlook import ical

    rng = random.Random(23)
    alphabet = "abc XYZ 019 :;,\\\"'-_/" + "éß€😀"
    ascii_only = alphabet[:-4] + "^"  # long ASCII lines are folded by ehcbridge, not icalendar
    texts = ["x" * n for n in range(60, 90)] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 160))) for _ in range(300)] + [
        "".join(rng.choice(ascii_only) for _ in range(rng.randint(60, 240))) for _ in range(300)]
    for text in texts:
        entry = ical.MeetingEntry(
            uid="u@ehcbridge", sequence=1, start=START, end=START.replace(hour=11),
            summary=text, organiser=ical.Person("o@example.net", text[:40]),
            attendees=(ical.Person("a@example.net", text),), location=text, join_url=JOIN,
            description=text, online=True)
        cal = ical.meeting_calendar(entry, stamp=NOW.astimezone(UTC))
        assert ical.to_bytes(cal) == cal.to_ical(), text


def test_long_ascii_lines_are_cut_where_icalendar_cuts_them() -> None:
    # Escapes (a backslash, RFC 6868's caret) at every place around each 74-octet boundary.
    from ehcbridge_outlook.ical import _fold_ascii
    from icalendar.parser import Contentline

    lines = ["A" * n + tail + "B" * m for n in range(66, 152) for tail in ("\\", "^", "\\n",
             "^^", "\\,", "") for m in (0, 1, 40, 80)]
    for line in lines:
        assert _fold_ascii(line) == Contentline(line).to_ical(), line
