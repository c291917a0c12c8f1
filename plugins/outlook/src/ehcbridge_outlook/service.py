"""What the hooks do: decide who gets which iTIP message, send it once, remember it.

State kept in the plugin store (all keys are this plugin's own):

``rev:<uid>``
    the last revision of a meeting or deadline: sequence, a fingerprint of what it said, the
    attendees it listed and everyone it has reached so far.
``sent:<uid>:<sequence>:<email>``
    one recipient's copy of one revision (``sent`` or ``failed``), written right after the SMTP
    server accepts or refuses it, so a retry or restart skips that recipient.
``feed:meeting:<uid>`` and ``feed:deadline:<uid>``
    what ``ehcbridge outlook feed`` publishes.

A crash between the server accepting a message and the ``sent:`` record being written can resend
that one message on the next attempt; it carries the same Message-ID, UID and SEQUENCE, so mail
systems and calendars treat it as the same invitation rather than a second one.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ehcbridge import PermanentError, RetryLater, Skipped, plugin_settings
from ehcbridge.events import CheckResult, HookContext, LifecycleEvent
from ehcbridge.mail import SenderRefused, send
from ehcbridge.mail import connect as mail_connect
from ehcbridge.models import LONDON, MeetingStatus, Outcome
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ehcbridge_outlook import ical, imip
from ehcbridge_outlook.settings import OutlookSettings

FAILED_FLAG = "outlook_invitation_failed"
# Deadlines the coordinator is reminded of, with what a reader sees and the reg 20 offset from the
# meeting used only if the core's clock did not supply the milestone.
DEADLINES: dict[str, tuple[str, timedelta]] = {
    "views_request": ("request advice and views", timedelta(weeks=-6)),
    "views_due": ("advice and views due", timedelta(weeks=-2)),
    "report_due": ("review report due", timedelta(weeks=2)),
    "decision_due": ("LA decision due", timedelta(weeks=4)),
}
REMINDERS_BY_HOOK = {
    "on_views_due": ("views_request", "views_due"),
    "on_meeting_held": ("report_due", "decision_due"),
}

Sleep = Callable[[float], None]
# How long after a meeting or deadline its state is kept: past every follow-up that can refer to
# it (the decision is due four weeks after the meeting) with room for late redeliveries.
KEEP_AFTER = timedelta(days=120)


def settings_of(ctx: HookContext) -> OutlookSettings:
    """This plugin's settings, or NotConfigured when SMTP is chosen without a server."""
    return plugin_settings.settings_of(ctx, OutlookSettings)


@dataclass(frozen=True)
class Recipient:
    """One address a message goes to."""

    email: str
    name: str | None
    required: bool


@dataclass
class Report:
    """What one delivery did (counts only: no addresses, so it is safe to log)."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    past: list[str] = field(default_factory=list)  # deadlines already gone: not sent


class Sender:
    """Sends one message through ``ehcbridge.mail``, retrying temporary failures a few times."""

    def __init__(self, settings: OutlookSettings, sleep: Sleep = time.sleep) -> None:
        self.settings = settings
        self.mail = settings.mail()
        self.sleep = sleep
        # An outbox file is named by its Message-ID and replaced whole, so sending a message
        # again leaves one copy: nothing is duplicated if its record is lost in a crash.
        self.idempotent = self.mail.transport == "outbox"

    def __call__(self, message: Any) -> None:
        """Send, retrying RetryLater up to ``send_attempts`` times, then let it propagate."""
        for attempt in Retrying(
            stop=stop_after_attempt(self.settings.send_attempts),
            wait=wait_exponential(multiplier=self.settings.retry_wait, max=60),
            retry=retry_if_exception_type(RetryLater),
            sleep=self.sleep,
            reraise=True,
        ):
            with attempt:
                send(message, self.mail)


def _now_utc(ctx: HookContext) -> datetime:
    return ctx.clock.now().astimezone(UTC)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _whole_message_refused(exc: PermanentError) -> bool:
    # A refusal of the login or the sending mailbox (Exchange's full mailbox, say) is a fault
    # of the configuration, not of this invitee: ehcbridge.mail says so with SenderRefused.
    return isinstance(exc, SenderRefused)


def meeting_uid(event: LifecycleEvent) -> str:
    """UID of the event's meeting: fixed by case and meeting id, so reschedules keep it."""
    meeting = event.meeting
    key = meeting.id if meeting is not None and meeting.id is not None else f"r{event.review.id}"
    return str(ical.make_uid(event.plan.case_id, "meeting", key))


def deadline_uid(event: LifecycleEvent, name: str) -> str:
    """UID of a deadline reminder: one per review (not per case, as each year has its own)."""
    review = event.review.id if event.review.id is not None else event.review.due_by.isoformat()
    return str(ical.make_uid(event.plan.case_id, "review", review, "deadline", name))


def template_values(event: LifecycleEvent) -> dict[str, str]:
    """Fields a summary template may use (name fields are refused by settings unless allowed)."""
    pupil = event.pupil
    return {
        "initials": pupil.initials,
        "case_id": event.plan.case_id,
        "kind": event.review.kind.value.replace("_", " "),
        "forename": pupil.forename,
        "surname": pupil.surname,
        "full_name": f"{pupil.forename} {pupil.surname}".strip(),
    }


def organiser_of(event: LifecycleEvent, settings: OutlookSettings) -> ical.Person:
    """The ORGANIZER: the configured mailbox, else the review's coordinator, else the sender."""
    email = (settings.organiser or event.review.coordinator_email
             or (event.meeting.organiser if event.meeting else None) or settings.from_address)
    return ical.Person(imip.address_of(email), settings.organiser_name)


def recipients_of(event: LifecycleEvent) -> list[Recipient]:
    """Invitees with an address, one per mailbox (a required role wins over an optional one)."""
    found: dict[str, Recipient] = {}
    for invitee in event.invitees:
        if not invitee.email:
            continue
        key = invitee.email.strip().lower()
        # Names come from imports; a stray line break would break the To header.
        name = " ".join((invitee.name or invitee.team or "").split()) or None
        previous = found.get(key)
        if previous is None:
            found[key] = Recipient(invitee.email.strip(), name, invitee.required)
        elif invitee.required and not previous.required:
            found[key] = Recipient(previous.email, previous.name or name, True)
    return list(found.values())


def invited_elsewhere(ctx: HookContext, case_id: str) -> set[str]:
    """Addresses another calendar plugin has invited to this review (failures don't count)."""
    return {
        str(record.get("email", "")).lower()
        for record in ctx.store.invitations(case_id)
        if record.get("plugin") != ctx.plugin and record.get("status") != "failed"
    }


def milestone_day(event: LifecycleEvent, name: str) -> date | None:
    """The date of a deadline: the core's milestone, else the reg 20 offset from the meeting."""
    found = event.milestone(name)
    if found is not None:
        return found.date
    if event.meeting is None:
        return None
    return (event.meeting.start + DEADLINES[name][1]).date()


# Delivery --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """One revision of one calendar object to deliver to some recipients."""

    uid: str
    case_id: str
    fingerprint: str
    base_sequence: int
    cancel: bool
    attendees: tuple[Recipient, ...]
    record_invitations: bool
    keep_until: date | None = None


def _keep_until(day: date) -> date:
    return day + KEEP_AFTER


def _sequence(state: dict[str, Any] | None, revision: Revision) -> int:
    if state is None:
        return revision.base_sequence
    if state.get("fingerprint") == revision.fingerprint:
        return int(state["sequence"])
    return max(revision.base_sequence, int(state["sequence"]) + 1)


_UNREAD: Any = object()  # deliver() reads the revision's state itself


def deliver(
    ctx: HookContext,
    settings: OutlookSettings,
    revision: Revision,
    recipients: Iterable[Recipient],
    build: Callable[[int, Recipient, bool], Any],
    sender: Callable[[Any], None],
    *,
    state: Any = _UNREAD,
    also: dict[str, Any] | None = None,
    audit: Callable[[Report], None] | None = None,
) -> Report:
    """Send ``revision`` to each recipient not yet sent it; RetryLater if the server defers.

    ``state`` is the revision's stored state when the caller has just read it; ``also``, more
    of the plugin's state to write with the revision before anything leaves; ``audit``, called
    with the final report in the last message's transaction. What is written
    goes in one transaction per step: before anything leaves, the revision (its SEQUENCE fixed,
    so a retry sends the same one) with the claims on new invitees; after each message, its
    copy record with the revision's reach and the invitation record. A crash loses at most the
    record of the one message in flight, which a retry resends with the same Message-ID. When
    ``sender.idempotent`` (the outbox, where a resent message replaces its own file), all of
    it is one transaction: a crash loses those records and a retry rewrites the same files."""
    store = ctx.store
    rev_key = f"rev:{revision.uid}"
    if state is _UNREAD:
        state = store.get_state(rev_key)
    sequence = _sequence(state, revision)
    reached: list[str] = list(state.get("reached", [])) if state else []
    attendees = [[a.email, a.name, a.required] for a in revision.attendees]
    if not attendees and state:
        attendees = state.get("attendees", [])

    def save(**also: Any) -> None:
        store.set_state_many({rev_key: {
            "case_id": revision.case_id, "sequence": sequence,
            "fingerprint": revision.fingerprint, "cancelled": revision.cancel,
            "attendees": attendees, "reached": reached,
            "keep_until": revision.keep_until.isoformat() if revision.keep_until else None,
        }, **also})

    sent_prefix = f"sent:{revision.uid}:{sequence}:"
    report = Report()
    failures: list[str] = []
    # One invitation per person per meeting across plugins: claim each new invitee first, so
    # a calendar plugin racing us (or retried later) never invites them a second time.
    exclusive = revision.record_invitations and not revision.cancel and settings.invite != "all"
    seen: set[str] = set()
    todo: list[tuple[Recipient, str, str]] = []
    recipients = list(recipients)
    # Copies already sent, looked up by their own keys, and only for a revision stored before:
    # the revision is always saved before any copy of it is sent.
    already = store.get_state_many(f"{sent_prefix}{r.email.lower()}" for r in recipients) \
        if state is not None else {}
    # One transaction per delivery when a resent message cannot duplicate (see above).
    grouped = bool(getattr(sender, "idempotent", False))
    pending: dict[str, Any] = {}
    with store.batch() if grouped else nullcontext():
        with store.batch():
            # The SEQUENCE fixed before anything leaves: a retry sends the same.
            save(**(also or {}))
            for recipient in recipients:
                email = recipient.email.lower()
                sent_key = f"{sent_prefix}{email}"
                if sent_key in seen or sent_key in already:
                    report.skipped += 1
                    continue
                seen.add(sent_key)  # the same address twice in one list gets one message
                if exclusive and email not in reached and not store.claim_invitation(
                        revision.case_id, recipient.email):
                    report.skipped += 1
                    continue
                todo.append((recipient, email, sent_key))
        last = len(todo) - 1
        for n, (recipient, email, sent_key) in enumerate(todo):
            message = build(sequence, recipient, email in reached)
            try:
                sender(message)
            except PermanentError as exc:
                if _whole_message_refused(exc):
                    raise
                detail = str(exc)
                with store.batch():
                    store.set_state(sent_key, {"status": "failed", "detail": detail,
                                               "at": _now_utc(ctx).isoformat()})
                    if exclusive:
                        store.release_invitations(revision.case_id, [recipient.email],
                                                  detail=detail)
                    if revision.record_invitations:
                        store.record_invitation(revision.case_id, recipient.email,
                                                status="failed", detail=detail)
                    failures.append(detail)
                    report.failed += 1
                    if n == last and audit is not None:
                        audit(report)
                continue
            sent = {"status": "sent", "message_id": str(message["Message-ID"]),
                    "at": _now_utc(ctx).isoformat()}
            with store.batch():  # the copy, the reach and the invitation record agree after a crash
                if email in reached:
                    store.set_state(sent_key, sent)
                else:
                    reached.append(email)
                    if grouped:
                        pending[sent_key] = sent
                    else:
                        save(**{sent_key: sent})
                    if revision.record_invitations and not revision.cancel:
                        store.record_invitation(revision.case_id, recipient.email, status="sent")
                report.sent += 1
                if n == last and audit is not None:  # the audit line commits with the last record
                    audit(report)
        if pending:  # the revision's final reach and every copy's record in one write
            save(**pending)
    if failures:
        store.flag_review(revision.case_id, FAILED_FLAG,
                          f"{len(failures)} calendar invitation(s) refused by the mail server")
    return report


def reached_by(ctx: HookContext, uid: str, state: Any = _UNREAD) -> list[Recipient]:
    """Everyone a revision of ``uid`` has reached, as the recipients of a follow-up (``state``:
    the revision's stored state, when the caller has read it)."""
    if state is _UNREAD:
        state = ctx.store.get_state(f"rev:{uid}")
    state = state or {}
    names = {str(a[0]).lower(): a for a in state.get("attendees", [])}
    result = []
    for email in state.get("reached", []):
        known = names.get(email)
        result.append(Recipient(known[0], known[1], bool(known[2])) if known
                      else Recipient(email, None, True))
    return result


# Meetings --------------------------------------------------------------------------------------

LOCATION_TO_CONFIRM = "To be confirmed by the organiser"


def _meeting_entry(event: LifecycleEvent, settings: OutlookSettings, *, sequence: int,
                   attendees: Iterable[Recipient], cancelled: bool) -> ical.MeetingEntry:
    meeting = event.meeting
    assert meeting is not None
    join_url = meeting.join_url if meeting.online else None
    location = meeting.location
    if join_url:
        location = f"Online: {join_url}" if not location or location.lower() == "online" \
            else f"{location} / online: {join_url}"
    elif meeting.online and (not location or location.lower() == "online"):
        location = "Online (joining link to follow)"
    elif not location:
        # An in-person meeting set without a place (a list row or a planned date): saying so
        # beats an invitation that leaves a family guessing where to go.
        location = LOCATION_TO_CONFIRM
    organiser = organiser_of(event, settings)
    sender = imip.address_of(settings.from_address)
    entry = ical.MeetingEntry(
        uid=meeting_uid(event), sequence=sequence, start=meeting.start, end=meeting.end,
        summary=settings.summary_template.format(**template_values(event)),
        organiser=organiser,
        attendees=tuple(ical.Person(a.email, a.name, a.required) for a in attendees),
        location=location, join_url=join_url,
        sent_by=sender if sender.lower() != organiser.email.lower() else None,
        cancelled=cancelled, online=meeting.online,
    )
    return replace(entry, description=imip.meeting_description(entry))


def _meeting_builder(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
                     attendees: tuple[Recipient, ...], cancelled: bool
                     ) -> Callable[[int, Recipient, bool], Any]:
    made: dict[int, tuple[ical.MeetingEntry, bytes]] = {}
    parts = imip.Parts()  # the calendar and bodies every recipient shares, built once
    domain = imip.address_of(settings.from_address).rpartition("@")[2]

    def build(sequence: int, recipient: Recipient, seen_before: bool) -> Any:
        # Every recipient of a revision gets the same calendar: serialise it once.
        if sequence not in made:
            entry = _meeting_entry(event, settings, sequence=sequence, attendees=attendees,
                                   cancelled=cancelled)
            made[sequence] = entry, ical.meeting_calendar_bytes(entry, stamp=_now_utc(ctx))
        entry, calendar = made[sequence]
        method = "CANCEL" if cancelled else "REQUEST"
        text, html_body = imip.meeting_bodies(entry, recipient.required, update=seen_before)
        prefix = "Cancelled" if cancelled else "Updated invitation" if seen_before else "Invitation"
        subject = f"{prefix}: {entry.summary}, {imip.when_text(entry.start, entry.end)}"
        return imip.build_message(
            calendar=calendar, method=method, subject=subject, sender=settings.from_address,
            to=(recipient.name or "", recipient.email),
            reply_to=entry.organiser.email, sent_at=ctx.clock.now(),
            msg_id=imip.message_id(entry.uid, sequence, method, recipient.email.lower(),
                                   domain=domain),
            text=text, html_body=html_body, parts=parts,
        )
    return build


def withdraw(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
             sender: Callable[[Any], None], state: Any) -> int:
    """Send METHOD:CANCEL to each address this meeting reached that is no longer invited (the
    caseworker removed them, or a later list named someone else), so the meeting leaves their
    calendar; the meeting itself goes ahead. Returns how many were sent.

    Each goes at the revision's SEQUENCE with a later DTSTAMP, which calendars take as newer
    than the invitation they hold (RFC 5546 2.1.5), and lists only them as attendee, as
    Outlook does when an attendee is removed. Once sent, they leave the revision's reach, so
    nothing later goes to them; a retry after a crash sends the same message again."""
    if not state or state.get("cancelled"):
        return 0
    invited = {r.email.lower() for r in recipients_of(event)}
    gone = [r for r in reached_by(ctx, meeting_uid(event), state)
            if r.email.lower() not in invited]
    if not gone:
        return 0
    store = ctx.store
    sequence = int(state.get("sequence", 0))
    domain = imip.address_of(settings.from_address).rpartition("@")[2]
    reached = list(state.get("reached", []))
    for person in gone:
        entry = _meeting_entry(event, settings, sequence=sequence, attendees=(person,),
                               cancelled=True)
        calendar = ical.meeting_calendar_bytes(entry, stamp=_now_utc(ctx))
        text, html_body = imip.meeting_bodies(entry, person.required, update=True,
                                              withdrawn=True)
        sender(imip.build_message(
            calendar=calendar, method="CANCEL",
            subject=f"Cancelled: {entry.summary}, {imip.when_text(entry.start, entry.end)}",
            sender=settings.from_address, to=(person.name or "", person.email),
            reply_to=entry.organiser.email, sent_at=ctx.clock.now(),
            msg_id=imip.message_id(entry.uid, sequence, "WITHDRAW", person.email.lower(),
                                   domain=domain),
            text=text, html_body=html_body))
        reached = [e for e in reached if e != person.email.lower()]
        with store.batch():  # the reach and the invitation record agree after a crash
            state = {**state, "reached": reached}
            store.set_state(f"rev:{meeting_uid(event)}", state)
            store.record_invitation(event.plan.case_id, person.email, status="withdrawn",
                                    detail="no longer invited: cancellation sent")
    store.audit(event.plan.case_id, "outlook.withdrawn", {"sent": len(gone)})
    return len(gone)


def meeting_fingerprint(event: LifecycleEvent, settings: OutlookSettings, cancelled: bool) -> str:
    """What a change of which must reach attendees as a new SEQUENCE."""
    meeting = event.meeting
    assert meeting is not None
    summary = settings.summary_template.format(**template_values(event))
    return _fingerprint(meeting.start, meeting.end, meeting.location, meeting.online,
                        meeting.join_url, summary, cancelled)


def invite(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
           sender: Callable[[Any], None], *, also: dict[str, Any] | None = None,
           state: Any = _UNREAD, audit: Callable[[Report], None] | None = None) -> Report:
    """Send the meeting REQUEST to whoever ``invite`` selects, plus everyone reached before
    (``also``: more state to write with the revision, or on its own when nobody is sent;
    ``state``: the meeting's stored state, when the caller has read it; ``audit``: see
    :func:`deliver`)."""
    meeting = event.meeting
    assert meeting is not None
    case_id = event.plan.case_id
    uid = meeting_uid(event)
    attendees = tuple(recipients_of(event))
    if state is _UNREAD:
        state = ctx.store.get_state(f"rev:{uid}")  # read once for reached_by and deliver
    if withdraw(ctx, event, settings, sender, state):
        state = ctx.store.get_state(f"rev:{uid}")  # without those no longer invited
    previously = {r.email.lower() for r in reached_by(ctx, uid, state)}
    if settings.invite == "none":
        chosen: list[Recipient] = []
    elif settings.invite == "all":
        chosen = list(attendees)
    else:
        elsewhere = invited_elsewhere(ctx, case_id)
        chosen = [a for a in attendees if a.email.lower() not in elsewhere]
    chosen += [a for a in attendees if a.email.lower() in previously and a not in chosen]
    if not chosen:
        if also:
            ctx.store.set_state_many(also)
        return Report()
    revision = Revision(uid=uid, case_id=case_id,
                        fingerprint=meeting_fingerprint(event, settings, False),
                        base_sequence=meeting.sequence, cancel=False, attendees=attendees,
                        record_invitations=True, keep_until=_keep_until(meeting.end.date()))
    return deliver(ctx, settings, revision, chosen,
                   _meeting_builder(ctx, event, settings, attendees, False), sender, state=state,
                   also=also, audit=audit)


def cancel(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
           sender: Callable[[Any], None], *,
           audit: Callable[[Report], None] | None = None) -> Report:
    """Send METHOD:CANCEL (STATUS:CANCELLED, higher SEQUENCE) to everyone the meeting reached."""
    meeting = event.meeting
    assert meeting is not None
    uid = meeting_uid(event)
    stored = ctx.store.get_state(f"rev:{uid}")
    recipients = reached_by(ctx, uid, stored)
    if not recipients:
        return Report()
    state = stored or {}
    listed = tuple(Recipient(a[0], a[1], bool(a[2])) for a in state.get("attendees", [])) \
        or tuple(recipients_of(event)) or tuple(recipients)
    revision = Revision(uid=uid, case_id=event.plan.case_id,
                        fingerprint=meeting_fingerprint(event, settings, True),
                        base_sequence=meeting.sequence, cancel=True, attendees=listed,
                        record_invitations=False, keep_until=_keep_until(meeting.end.date()))
    return deliver(ctx, settings, revision, recipients,
                   _meeting_builder(ctx, event, settings, listed, True), sender, state=stored,
                   audit=audit)


# Deadlines -------------------------------------------------------------------------------------


def _deadline_builder(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
                      name: str, day: date, coordinator: Recipient, cancelled: bool
                      ) -> Callable[[int, Recipient, bool], Any]:
    values = template_values(event) | {"milestone": DEADLINES[name][0]}
    summary = settings.reminder_template.format(**values)
    organiser = ical.Person(imip.address_of(settings.organiser or settings.from_address),
                            settings.organiser_name)
    sender_address = imip.address_of(settings.from_address)
    parts = imip.Parts()

    def build(sequence: int, recipient: Recipient, seen_before: bool) -> Any:
        entry = ical.DeadlineEntry(
            uid=deadline_uid(event, name), sequence=sequence, day=day, summary=summary,
            organiser=organiser,
            attendees=(ical.Person(coordinator.email, coordinator.name, True, rsvp=False),),
            description=f"{summary}: {imip.day_text(day)}.",
            alarm_before=ical.alarm_offset(settings.alarm_days_before),
            sent_by=sender_address if sender_address.lower() != organiser.email.lower() else None,
            cancelled=cancelled,
        )
        calendar = ical.to_bytes(ical.deadline_calendar(entry, stamp=_now_utc(ctx)))
        method = "CANCEL" if cancelled else "REQUEST"
        text, html_body = imip.deadline_bodies(entry)
        prefix = "Cancelled reminder" if cancelled else "Moved reminder" if seen_before \
            else "Reminder"
        return imip.build_message(
            calendar=calendar, method=method,
            subject=f"{prefix}: {summary}, {imip.day_text(day)}",
            sender=settings.from_address, to=(recipient.name or "", recipient.email),
            reply_to=None, sent_at=ctx.clock.now(),
            msg_id=imip.message_id(entry.uid, sequence, method, recipient.email.lower(),
                                   domain=sender_address.rpartition("@")[2]),
            text=text, html_body=html_body, parts=parts,
        )
    return build


def _coordinator(event: LifecycleEvent) -> Recipient | None:
    email = event.review.coordinator_email
    return Recipient(email, None, True) if email else None


def remind(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
           names: Iterable[str], sender: Callable[[Any], None], *, only_reached: bool = False,
           cancelled: bool = False, states: dict[str, Any] | None = None) -> Report:
    """Send (or move, or cancel) the coordinator's all-day deadline reminders ``names``
    (``states``: their stored states by key, when the caller has read them)."""
    coordinator = _coordinator(event)
    total = Report()
    if coordinator is None or (not settings.reminders and not only_reached):
        return total
    names = list(names)
    uids = {name: deadline_uid(event, name) for name in names}
    if states is None:  # each reminder's state, read in one query (an invitation checks four)
        states = ctx.store.get_state_many(f"rev:{uid}" for uid in uids.values())
    for name in names:
        uid = uids[name]
        state = states.get(f"rev:{uid}")
        if only_reached and (state is None or state.get("cancelled")):
            continue
        day = milestone_day(event, name)
        if day is None:
            continue
        if state is None and not only_reached and day < ctx.clock.now().astimezone(LONDON).date():
            # First seen after its date (a late booking or a catch-up run): a reminder for a
            # day already gone would only mislead, so it is recorded and not sent.
            total.past.append(f"{DEADLINES[name][0]} on {imip.day_text(day)}")
            continue
        recipients = reached_by(ctx, uid, state) if only_reached else [coordinator]
        revision = Revision(uid=uid, case_id=event.plan.case_id,
                            fingerprint=_fingerprint(day, cancelled),
                            base_sequence=0 if state is None else int(state["sequence"]),
                            cancel=cancelled, attendees=(coordinator,), record_invitations=False,
                            keep_until=_keep_until(day))
        report = deliver(ctx, settings, revision, recipients,
                         _deadline_builder(ctx, event, settings, name, day, coordinator,
                                           cancelled), sender, state=state)
        total.sent += report.sent
        total.skipped += report.skipped
        total.failed += report.failed
    return total


# Feed ------------------------------------------------------------------------------------------


def record_feed(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
                cancelled: bool) -> None:
    """Keep what ``outlook feed`` publishes in step with the meeting and its deadlines."""
    items = feed_items(event, settings, cancelled)
    if items:
        ctx.store.set_state_many(items)


def feed_items(event: LifecycleEvent, settings: OutlookSettings,
               cancelled: bool) -> dict[str, Any]:
    """The state entries :func:`record_feed` writes (none without a meeting)."""
    meeting = event.meeting
    if meeting is None:
        return {}
    coordinator = (event.review.coordinator_email or "").lower()
    teams = sorted({i.team for i in event.invitees if i.team})
    summary_values = template_values(event)
    entry = _meeting_entry(event, settings, sequence=meeting.sequence, attendees=(),
                           cancelled=cancelled)
    items: dict[str, Any] = {
        f"feed:meeting:{entry.uid}": {
            "case_id": event.plan.case_id, "coordinator": coordinator, "teams": teams,
            "start": meeting.start.isoformat(), "end": meeting.end.isoformat(),
            "summary": entry.summary, "location": entry.location, "join_url": entry.join_url,
            "organiser": entry.organiser.email, "organiser_name": entry.organiser.name,
            "sequence": meeting.sequence, "cancelled": cancelled,
        }
    }
    for name, (label, _offset) in DEADLINES.items():
        day = milestone_day(event, name)
        if day is None:
            continue
        items[f"feed:deadline:{deadline_uid(event, name)}"] = {
            "case_id": event.plan.case_id, "coordinator": coordinator, "teams": teams,
            "name": name, "day": day.isoformat(),
            "summary": settings.reminder_template.format(**summary_values, milestone=label),
            "organiser": imip.address_of(settings.organiser or settings.from_address),
            "sequence": meeting.sequence, "cancelled": cancelled,
        }
    return items


def build_feed(items: Iterable[tuple[str, Any]], *, now: datetime, coordinator: str | None = None,
               team: str | None = None, alarm_days_before: int | None = 1) -> bytes:
    """A METHOD:PUBLISH calendar of the upcoming meetings and deadlines of a coordinator or team."""
    who = (coordinator or "").lower()
    wanted_team = (team or "").lower()
    meetings: list[ical.MeetingEntry] = []
    deadlines: list[ical.DeadlineEntry] = []

    def selected(value: dict[str, Any]) -> bool:
        if value.get("cancelled"):
            return False
        if who and value.get("coordinator", "").lower() != who:
            return False
        return not wanted_team or wanted_team in {t.lower() for t in value.get("teams", [])}

    for key, value in items:
        if not isinstance(value, dict) or not selected(value):
            continue
        uid = key.rpartition(":")[2]
        if key.startswith("feed:meeting:"):
            end = datetime.fromisoformat(value["end"]).astimezone(LONDON)
            if end < now:
                continue
            meetings.append(ical.MeetingEntry(
                uid=uid, sequence=int(value.get("sequence", 0)),
                start=datetime.fromisoformat(value["start"]).astimezone(LONDON), end=end,
                summary=value["summary"],
                organiser=ical.Person(value["organiser"], value.get("organiser_name")),
                location=value.get("location"), join_url=value.get("join_url"),
                description=f"Join online: {value['join_url']}" if value.get("join_url") else "",
            ))
        elif key.startswith("feed:deadline:"):
            day = date.fromisoformat(value["day"])
            if day < now.astimezone(LONDON).date():
                continue
            deadlines.append(ical.DeadlineEntry(
                uid=uid, sequence=int(value.get("sequence", 0)), day=day,
                summary=value["summary"], organiser=ical.Person(value["organiser"]),
                alarm_before=(ical.alarm_offset(alarm_days_before)
                              if alarm_days_before is not None else None),
            ))
    meetings.sort(key=lambda m: m.start)
    deadlines.sort(key=lambda d: d.day)
    label = f"coordinator {coordinator}" if coordinator else f"team {team}" if team else "all"
    calendar = ical.feed_calendar(meetings, deadlines, stamp=now.astimezone(UTC),
                                  name=f"EHCP reviews ({label})")
    return bytes(ical.to_bytes(calendar))


# Hook bodies -----------------------------------------------------------------------------------


def _log(ctx: HookContext, what: str, event: LifecycleEvent, report: Report, *,
         audited: bool = False) -> None:
    ctx.logger.info("outlook %s for %s: %d sent, %d already sent, %d refused", what,
                    event.plan.case_id, report.sent, report.skipped, report.failed)
    if not audited:
        _auditor(ctx, what, event)(report)


def _auditor(ctx: HookContext, what: str, event: LifecycleEvent) -> Callable[[Report], None]:
    """Writes the audit line of a report that sent or refused something."""
    def audit(report: Report) -> None:
        if report.sent or report.failed:
            ctx.store.audit(event.plan.case_id, f"outlook.{what}",
                            {"sent": report.sent, "refused": report.failed,
                             "uid": meeting_uid(event) if event.meeting else None})
    return audit


def _cancel_all(ctx: HookContext, event: LifecycleEvent, settings: OutlookSettings,
                sender: Callable[[Any], None]) -> None:
    record_feed(ctx, event, settings, cancelled=True)
    _log(ctx, "cancellation", event,
         cancel(ctx, event, settings, sender, audit=_auditor(ctx, "cancellation", event)),
         audited=True)
    _log(ctx, "reminder cancellation", event,
         remind(ctx, event, settings, DEADLINES, sender, only_reached=True, cancelled=True))


def on_review_scheduled(event: LifecycleEvent, ctx: HookContext, sleep: Sleep = time.sleep) -> None:
    """Invite, update or cancel; move any deadline reminders already sent."""
    settings = settings_of(ctx)
    if event.meeting is None:
        return
    sender = Sender(settings, sleep)
    if event.action == "cancelled" or event.meeting.status == MeetingStatus.CANCELLED:
        _cancel_all(ctx, event, settings, sender)
        return
    # The meeting's and its reminders' states in one query; the feed entries written with the
    # invitation's revision, in one transaction.
    meeting_key = f"rev:{meeting_uid(event)}"
    states = ctx.store.get_state_many(
        [meeting_key, *(f"rev:{deadline_uid(event, name)}" for name in DEADLINES)])
    _log(ctx, "invitation", event,
         invite(ctx, event, settings, sender, also=feed_items(event, settings, False),
                state=states.get(meeting_key), audit=_auditor(ctx, "invitation", event)),
         audited=True)
    _log(ctx, "reminder update", event,
         remind(ctx, event, settings, DEADLINES, sender, only_reached=True, states=states))


def on_deadlines(event: LifecycleEvent, ctx: HookContext, sleep: Sleep = time.sleep) -> None:
    """Send the reminders that belong to this hook (views on on_views_due, the rest after)."""
    settings = settings_of(ctx)
    names = REMINDERS_BY_HOOK.get(event.hook, ())
    if event.meeting is None or event.meeting.status == MeetingStatus.CANCELLED:
        return
    report = remind(ctx, event, settings, names, Sender(settings, sleep))
    _log(ctx, "reminder", event, report)
    if report.past:
        past = "; ".join(report.past)
        ctx.store.audit(event.plan.case_id, "outlook.reminder_skipped",
                        {"reason": "skipped (past)", "deadlines": report.past})
        if not report.sent and not report.skipped and not report.failed:
            raise Skipped(f"skipped (past): {past} had passed when the reminder was due")


def on_decision(event: LifecycleEvent, ctx: HookContext, sleep: Sleep = time.sleep) -> None:
    """A decision to cease before the meeting took place cancels the meeting and its reminders."""
    settings = settings_of(ctx)
    meeting = event.meeting
    if (event.decision is None or event.decision.outcome != Outcome.CEASE or meeting is None
            or meeting.status != MeetingStatus.SCHEDULED or meeting.start <= ctx.clock.now()):
        return
    _cancel_all(ctx, event, settings, Sender(settings, sleep))


def check_transport(settings: OutlookSettings) -> CheckResult:
    """Doctor line for the transport: the outbox folder, or an SMTP handshake without sending."""
    if settings.transport == "outbox":
        folder = settings.outbox_dir
        where = folder if folder.exists() else folder.parent if folder.parent.exists() else None
        if where is None:
            return CheckResult("outlook transport", "warning",
                               f"outbox {folder} and its parent do not exist yet")
        return CheckResult("outlook transport", "ok", f"writes .eml files to {folder}")
    if not settings.smtp_host:
        return CheckResult("outlook transport", "not configured", "set smtp_host")
    mail = settings.mail()
    target = f"{mail.smtp_host}:{mail.smtp_port}"
    try:
        with mail_connect(mail) as smtp:  # the same handshake and login as sending
            smtp.ehlo()
    except smtplib.SMTPAuthenticationError as exc:
        return CheckResult("outlook transport", "failed",
                           f"{target} refused the login ({exc.smtp_code})")
    except (OSError, smtplib.SMTPException) as exc:
        return CheckResult("outlook transport", "failed", f"{target}: {type(exc).__name__}")
    auth = "logged in" if mail.smtp_username else "no login"
    return CheckResult("outlook transport", "ok", f"{target} ({mail.smtp_security}, {auth})")


def held(ctx: HookContext, case_ids: Iterable[str]) -> list[tuple[str, Any]]:
    """What the plugin keeps about these cases under keys that do not name them: each meeting
    or reminder revision (its state names the case), the copies sent of it (keyed by address)
    and the feed entries naming the case; as (state key, value), copies before their
    revision."""
    wanted = set(case_ids)
    found: list[tuple[str, Any]] = []
    for key, value in ctx.store.state_items("rev:"):
        if isinstance(value, dict) and value.get("case_id") in wanted:
            # The copies before their revision, as prune() deletes them.
            found += ctx.store.state_items(f"sent:{key.removeprefix('rev:')}:")
            found.append((key, value))
    # Feed entries name their case too, whether or not a message went.
    found += [(key, value) for key, value in ctx.store.state_items("feed:")
              if isinstance(value, dict) and value.get("case_id") in wanted]
    return found


def forget(ctx: HookContext, case_ids: Iterable[str]) -> int:
    """Forget the erased cases' meetings, deadline reminders, copies and feed entries
    (:func:`held`). Returns entries deleted."""
    doomed = [key for key, _value in held(ctx, case_ids)]
    for key in doomed:
        ctx.store.delete_state(key)
    return len(doomed)


def prune(ctx: HookContext) -> int:
    """Forget meetings and deadlines long past (their state, copies and feed entries)."""
    today = ctx.clock.now().astimezone(LONDON).date()
    doomed: list[str] = []
    for key, value in ctx.store.state_items("rev:"):
        until = value.get("keep_until") if isinstance(value, dict) else None
        if until and date.fromisoformat(until) < today:
            uid = key.removeprefix("rev:")
            # The copies go before their revision: deliver() only looks for copies of a
            # revision it finds stored.
            doomed += [k for k, _v in ctx.store.state_items(f"sent:{uid}:")]
            doomed.append(key)
    for key, value in ctx.store.state_items("feed:"):
        if not isinstance(value, dict):
            continue
        last = value.get("end", "")[:10] or value.get("day", "")
        if last and date.fromisoformat(last) + KEEP_AFTER < today:
            doomed.append(key)
    for key in doomed:
        ctx.store.delete_state(key)
    if doomed:
        ctx.logger.info("outlook: forgot %d stored entries of past reviews", len(doomed))
    return len(doomed)
