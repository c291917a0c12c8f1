"""iCalendar objects (RFC 5545) for iTIP scheduling (RFC 5546): meetings, deadlines and the feed."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from icalendar import (
    Alarm,
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
    vRecur,
    vUri,
)
from icalendar.enums import CUTYPE, PARTSTAT, ROLE, STATUS, TRANSP

PRODID = "-//ehcbridge//ehcbridge-outlook//EN"
TZID = "Europe/London"
# Fixed so every install derives the same UID for the same meeting.
NAMESPACE = uuid.UUID("6f0c4f3e-4d0e-5b8a-9a53-5f2b1d8e7c21")


def make_uid(*parts: object) -> str:
    """A UID derived only from ``parts``: the same meeting keeps it for its whole life."""
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts))) + "@ehcbridge"


@dataclass(frozen=True)
class Person:
    """An organiser or attendee: address, display name and whether reg 20(2) requires them."""

    email: str
    name: str | None = None
    required: bool = True
    rsvp: bool = True


@dataclass(frozen=True)
class MeetingEntry:
    """Everything an iTIP message about one meeting says."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    summary: str
    organiser: Person
    attendees: Sequence[Person] = ()
    location: str | None = None
    join_url: str | None = None
    description: str = ""
    sent_by: str | None = None
    cancelled: bool = False
    online: bool = False  # an online meeting, whether or not its link is known yet


@dataclass(frozen=True)
class DeadlineEntry:
    """An all-day deadline with an optional alarm."""

    uid: str
    sequence: int
    day: date
    summary: str
    organiser: Person
    attendees: Sequence[Person] = ()
    description: str = ""
    alarm_before: timedelta | None = None
    sent_by: str | None = None
    cancelled: bool = False
    categories: tuple[str, ...] = field(default=("EHCP review",))


def london_timezone() -> Timezone:
    """VTIMEZONE for Europe/London with yearly rules (current UK rules since 1996).

    Written with RRULEs rather than icalendar's RDATE lists because Outlook mishandles
    RDATE-only time zones; this is the same shape Google Calendar sends.
    """
    tz = Timezone()
    tz.add("TZID", TZID)
    daylight = TimezoneDaylight()
    daylight.add("TZNAME", "BST")
    daylight.add("DTSTART", datetime(1970, 3, 29, 1, 0))
    daylight.add("TZOFFSETFROM", timedelta(0))
    daylight.add("TZOFFSETTO", timedelta(hours=1))
    daylight.add("RRULE", vRecur({"FREQ": "YEARLY", "BYMONTH": 3, "BYDAY": "-1SU"}))
    standard = TimezoneStandard()
    standard.add("TZNAME", "GMT")
    standard.add("DTSTART", datetime(1970, 10, 25, 2, 0))
    standard.add("TZOFFSETFROM", timedelta(hours=1))
    standard.add("TZOFFSETTO", timedelta(0))
    standard.add("RRULE", vRecur({"FREQ": "YEARLY", "BYMONTH": 10, "BYDAY": "-1SU"}))
    tz.add_component(daylight)
    tz.add_component(standard)
    return tz


def _cn(name: str | None) -> str | None:
    # Parameter values cannot hold a double quote; RFC 6868's ^' escape is not understood by
    # Outlook, so use a single quote. Line breaks would end the property.
    if not name:
        return None
    return " ".join(name.replace('"', "'").split()) or None


def _address(person: Person, *, organiser: bool = False, sent_by: str | None = None) -> vCalAddress:
    if organiser:
        return vCalAddress.new(person.email, cn=_cn(person.name),
                               sent_by=f"mailto:{sent_by}" if sent_by else None)
    return vCalAddress.new(
        person.email,
        cn=_cn(person.name),
        cutype=CUTYPE.INDIVIDUAL,
        role=ROLE.REQ_PARTICIPANT if person.required else ROLE.OPT_PARTICIPANT,
        partstat=PARTSTAT.NEEDS_ACTION,
        rsvp=person.rsvp,
    )


def _calendar(method: str, components: Iterable[Event], *, with_tz: bool,
              name: str | None = None) -> Calendar:
    cal = Calendar.new(method=method, prodid=PRODID, name=name)
    # Calendar.new invents an RFC 7986 calendar UID each time; iTIP needs none and a random
    # one would make identical messages differ.
    cal.pop("UID", None)
    if with_tz:
        cal.add_component(london_timezone())
    for component in components:
        cal.add_component(component)
    return cal


def meeting_event(entry: MeetingEntry, *, stamp: datetime, itip: bool = True) -> Event:
    """The VEVENT of a meeting (attendees only when ``itip``, so a feed lists nobody)."""
    event = Event.new(
        uid=entry.uid,
        sequence=entry.sequence,
        stamp=stamp,
        start=entry.start,
        end=entry.end,
        summary=entry.summary,
        organizer=_address(entry.organiser, organiser=True, sent_by=entry.sent_by),
        attendees=[_address(p) for p in entry.attendees] if itip else None,
        location=entry.location or None,
        description=entry.description or None,
        url=entry.join_url or None,
        status=STATUS.CANCELLED if entry.cancelled else STATUS.CONFIRMED,
        transparency=TRANSP.OPAQUE,
    )
    if entry.join_url and not entry.cancelled:
        # RFC 7986; built by hand because icalendar's Conference quotes FEATURE as one value.
        event.add("CONFERENCE", vUri(entry.join_url, params={
            "VALUE": "URI", "FEATURE": ["AUDIO", "VIDEO"], "LABEL": "Join the meeting"}))
    return event


def deadline_event(entry: DeadlineEntry, *, stamp: datetime, itip: bool = True) -> Event:
    """The all-day VEVENT of a deadline, with a display alarm unless cancelled."""
    event = Event.new(
        uid=entry.uid,
        sequence=entry.sequence,
        stamp=stamp,
        start=entry.day,
        end=entry.day + timedelta(days=1),
        summary=entry.summary,
        organizer=_address(entry.organiser, organiser=True, sent_by=entry.sent_by),
        attendees=[_address(p) for p in entry.attendees] if itip else None,
        description=entry.description or None,
        status=STATUS.CANCELLED if entry.cancelled else STATUS.CONFIRMED,
        transparency=TRANSP.TRANSPARENT,
        categories=entry.categories,
    )
    if entry.alarm_before is not None and not entry.cancelled:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", entry.summary)
        alarm.add("TRIGGER", -entry.alarm_before)
        event.add_component(alarm)
    return event


def alarm_offset(days_before: int, at: time = time(9, 0)) -> timedelta:
    """How long before an all-day event's midnight start an alarm fires, ``days_before`` days
    ahead at ``at`` o'clock (0 days = that morning)."""
    return timedelta(days=days_before) - timedelta(hours=at.hour, minutes=at.minute)


def meeting_calendar(entry: MeetingEntry, *, stamp: datetime) -> Calendar:
    """An iTIP REQUEST (or CANCEL when ``entry.cancelled``) for a meeting."""
    method = "CANCEL" if entry.cancelled else "REQUEST"
    return _calendar(method, [meeting_event(entry, stamp=stamp)], with_tz=True)


def deadline_calendar(entry: DeadlineEntry, *, stamp: datetime) -> Calendar:
    """An iTIP REQUEST (or CANCEL) for an all-day deadline; dates need no VTIMEZONE."""
    method = "CANCEL" if entry.cancelled else "REQUEST"
    return _calendar(method, [deadline_event(entry, stamp=stamp)], with_tz=False)


def feed_calendar(meetings: Iterable[MeetingEntry], deadlines: Iterable[DeadlineEntry], *,
                  stamp: datetime, name: str) -> Calendar:
    """A METHOD:PUBLISH calendar to subscribe to; attendees are left out on purpose."""
    events = [meeting_event(m, stamp=stamp, itip=False) for m in meetings]
    with_tz = bool(events)
    events += [deadline_event(d, stamp=stamp, itip=False) for d in deadlines]
    cal = _calendar("PUBLISH", events, with_tz=with_tz, name=name)
    cal.add("REFRESH-INTERVAL", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    return cal


def to_bytes(cal: Calendar) -> bytes:
    """Serialise a calendar (CRLF line ends, folded at 75 octets), as ``cal.to_ical()`` does."""
    # icalendar folds every line character by character: a fifth of a first run's time
    # building invitations went there. Short ASCII lines need no fold, long ASCII lines are
    # cut the way icalendar cuts them, and only lines with other characters go to icalendar.
    return b"\r\n".join(line.encode("ascii") if len(line) < 75 and line.isascii()
                         else _fold_ascii(line) if line.isascii()
                         else bytes(line.to_ical())
                         for line in cal.content_lines() if line) + b"\r\n"


def _fold_ascii(line: str) -> bytes:
    """An ASCII content line folded as icalendar folds it: pieces of 74 octets, except that a
    backslash or caret (the start of an escape) never ends a piece but begins the next."""
    pieces: list[str] = []
    start = 0
    while len(line) - start > 74:
        end = start + 74
        if line[end - 1] in "\\^":
            end -= 1
        pieces.append(line[start:end])
        start = end
    pieces.append(line[start:])
    return "\r\n ".join(pieces).encode("ascii")


@functools.cache
def _london_bytes() -> bytes:
    return bytes(london_timezone().to_ical())


def meeting_calendar_bytes(entry: MeetingEntry, *, stamp: datetime) -> bytes:
    """``to_bytes(meeting_calendar(entry, stamp=stamp))``, with the VTIMEZONE (the same in every
    message) serialised once: the calendar is written without it and it goes in where
    icalendar puts it, after the calendar's properties and before the VEVENT."""
    method = "CANCEL" if entry.cancelled else "REQUEST"
    data = to_bytes(_calendar(method, [meeting_event(entry, stamp=stamp)], with_tz=False))
    at = data.index(b"BEGIN:VEVENT\r\n")
    return data[:at] + _london_bytes() + data[at:]
