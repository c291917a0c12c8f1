"""From a review to its notices: who hears what, on which channel, meeting which duty."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from ehcbridge import lifecycle
from ehcbridge.models import LONDON, Invitee, MeetingStatus, Role
from ehcbridge.notices.model import (
    EMAIL,
    LETTER,
    SMS,
    Attachment,
    Notice,
    NoticeContact,
    NoticeDate,
    NoticeRecipient,
)
from ehcbridge.notices.render import environment, render
from ehcbridge.notices.settings import NoticeSettings

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from ehcbridge.store import CaseView

FAMILY = frozenset({Role.PARENT, Role.YOUNG_PERSON})
# The lifecycle duty each notice kind meets.
DUTIES = {
    "views_request": lifecycle.VIEWS_REQUESTED,
    "advice_reminder": lifecycle.ADVICE_CIRCULATED,
    "report": lifecycle.REPORT_SENT,
    "decision": lifecycle.DECISION_NOTIFIED,
}
REVIEW_KINDS = {"annual": "annual review", "early": "early review",
                "phase_transfer": "phase transfer review", "under_five": "review"}
ROLE_LABELS = {"setting": "the education setting",
               "la_sen_officer": "the local authority's SEN officer",
               "health": "a health professional", "social_care": "social care",
               "other": "someone who works with the family", "parent": "a parent",
               "young_person": "the young person"}
# The decision notice's ``outcome`` when, after representations, the amendments are not made.
NOT_AMENDED = "not_amended"
OUTCOMES = {"maintain": ("plan maintained", "maintain"),
            "amend": ("plan to be amended", "amend"),
            "cease": ("plan to cease", "cease to maintain")}


def long_date(day: date) -> str:
    """A date as a letter writes it: Tuesday 12 January 2027."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(day: date) -> str:
    """A date for a subject line: 12 Jan 2027."""
    return f"{day.day} {day:%b %Y}"


@dataclass
class Composer:
    """Builds the notices of one review; holds the template environment for all of them."""

    settings: NoticeSettings
    case: CaseView
    today: date
    milestones: dict[str, date] = field(default_factory=dict)
    loaded: frozenset[str] = frozenset()  # plugins implementing deliver_notice
    # Mailboxes (lower case) a plugin asks for advice itself, with its name (Route.advice_by):
    # left out of views_request, and sent the advice_reminder without its chase.
    asked_by: dict[str, str] = field(default_factory=dict)
    env: SandboxedEnvironment | None = None
    config_dir: Any = None

    def __post_init__(self) -> None:
        if self.env is None:
            self.env = environment(self.settings, self.config_dir)

    # Who ------------------------------------------------------------------------------------

    def readers(self, kind: str) -> list[Invitee]:
        """Who a notice of ``kind`` goes to, one entry per mailbox or postal address."""
        from ehcbridge.timeline import over_compulsory_school_age

        invitees = self.case.invitees
        young = [i for i in invitees if i.role == Role.YOUNG_PERSON and _reachable(i)]
        parents = [i for i in invitees if i.role == Role.PARENT and _reachable(i)]
        if young and over_compulsory_school_age(self.case.pupil, self.today):
            family = young  # addressed directly instead of the parent
        else:
            family = parents + young
        if kind == "decision":
            others = [i for i in invitees if i.role == Role.SETTING]
        elif kind == "views_request":  # a plugin that asks a team itself: it asks them once
            others = [i for i in invitees if i.role not in FAMILY and not self.asks(i)]
        else:
            others = [i for i in invitees if i.role not in FAMILY]
        seen: set[str] = set()
        result = []
        for invitee in family + others:
            key = _identity(invitee)
            if key and key not in seen:
                seen.add(key)
                result.append(invitee)
        return result

    def asks(self, invitee: Invitee) -> str | None:
        """The plugin that asks this professional for advice itself (its own request and
        reminder), or None when the core's notices ask them."""
        if invitee.role in FAMILY or not invitee.email:
            return None
        return self.asked_by.get(_identity(invitee))

    def channels(self, invitee: Invitee) -> list[str]:
        """Email when there is an address; a letter without one (or as well, for families, when
        the council asks)."""
        found = []
        if invitee.email:
            found.append(EMAIL)
        if invitee.address and (not invitee.email or (
                invitee.role in FAMILY and self.settings.letters_for_families)):
            found.append(LETTER)
        return found

    def via(self, channel: str) -> str:
        """The plugin that delivers a channel."""
        return {EMAIL: self.settings.email_via, LETTER: self.settings.letter_via,
                SMS: self.settings.text_via}[channel]

    # What -----------------------------------------------------------------------------------

    def context(self, invitee: Invitee, channel: str, extra: dict[str, Any]) -> dict[str, Any]:
        """The template variables for one reader (a professional never gets the child's name
        unless the council allows it)."""
        case, s = self.case, self.settings
        pupil = case.pupil
        family = invitee.role in FAMILY
        young_person = invitee.role == Role.YOUNG_PERSON
        # Families read the child's first name; a professional reads initials unless the council
        # allows names. The full name is only there for templates that need it, for a family.
        full_name = f"{pupil.forename} {pupil.surname}".strip()
        child = pupil.forename if family else full_name if s.include_names_for_professionals \
            else pupil.initials
        meeting = case.meeting
        when, short = "on a date to be confirmed", "soon"
        if meeting is not None:
            start = meeting.start.astimezone(LONDON)
            place = "online" if meeting.online and not meeting.location else \
                f"at {meeting.location}" if meeting.location else ""
            when = f"on {long_date(start.date())} at {start:%H:%M}" + (f" {place}" if place
                                                                       else "")
            short = f"on {short_date(start.date())}"
        views_due = self.milestones.get("views_due")
        context: dict[str, Any] = {
            "council": s.council_name, "hub_url": s.hub_url,
            "sendiass": s.sendiass, "mediation": s.mediation,
            "disagreement_resolution": s.disagreement_resolution,
            "recipient_name": invitee.name or "", "role": invitee.role.value,
            "role_label": ROLE_LABELS.get(invitee.role.value, invitee.role.value),
            "professional": not family, "young_person": young_person,
            "by_letter": channel == LETTER,
            "child": child, "child_possessive": "your" if young_person else f"{child}'s",
            "child_full_name": full_name if family or s.include_names_for_professionals
            else pupil.initials,
            "young_person_word": "young person" if (pupil.nc_year or 0) >= 12 else "child",
            "case_id": case.plan.case_id,
            "review_kind": REVIEW_KINDS.get(case.review.kind.value, "review"),
            "meeting_when": when, "meeting_short": short,
            "views_due": long_date(views_due) if views_due else "two weeks before the meeting",
            "views_due_short": short_date(views_due) if views_due else "soon",
            "pfa": case.review.preparing_for_adulthood,
            "no_setting": case.plan.no_setting,
            "advice": [], "attached": False,
            # False for a team a plugin chases itself: its advice_reminder only circulates.
            "chase": True,
        }
        context.update(extra)
        return context

    def key_of(self, kind: str, invitee: Invitee, channel: str) -> str:
        """The ledger key of this review's notices of ``kind`` to one reader on one channel
        (before any variant)."""
        return (f"{self.case.plan.case_id}/r{self.case.review.id}/notice/{kind}/"
                f"{_digest(_identity(invitee))}/{channel}")

    def notice(self, kind: str, invitee: Invitee, channel: str, *, extra: dict[str, Any],
               attachments: tuple[Attachment, ...] = (), dates: tuple[NoticeDate, ...] = (),
               contacts: tuple[NoticeContact, ...] = (), template: str | None = None,
               variant: str = "", duty: str | None = None) -> Notice:
        """One notice for one reader on one channel (``variant``: what makes a later notice of
        the same kind to the same reader a new one, such as the meeting's revision; ``duty``:
        the duty it meets, when not the kind's own)."""
        assert self.env is not None
        context = self.context(invitee, channel, {**extra, "attached": bool(attachments)
                                                  or extra.get("attached", False)})
        subject, paragraphs, questions = render(self.env, template or kind, context)
        case = self.case
        recipient = NoticeRecipient(
            role=invitee.role.value, name=invitee.name, email=invitee.email,
            address=tuple(line.strip() for line in (invitee.address or "").splitlines()
                          if line.strip()),
            mobile=invitee.mobile, professional=invitee.role not in FAMILY)
        key = self.key_of(kind, invitee, channel) + (f"/{variant}" if variant else "")
        s = self.settings
        contact_lines = tuple(c for c in (s.council_email, s.council_phone) if c)
        return Notice(
            key=key, kind=template or kind, channel=channel, recipient=recipient,
            subject=subject, paragraphs=paragraphs, questions=questions, dates=dates,
            contacts=contacts + ((NoticeContact(name=s.council_name,
                                                detail=", ".join(contact_lines)),)
                                 if contact_lines else ()),
            attachments=attachments, links=(s.hub_url,) if s.hub_url else (),
            sender=s.council_name, sender_address=tuple(s.council_address),
            reply_to=s.council_email, case_id=case.plan.case_id, review_id=case.review.id,
            duty=duty or (DUTIES.get(kind) if template is None else None),
            large_print=s.large_print)

    def for_readers(self, kind: str, *, extra: dict[str, Any] | None = None,
                    attachments: tuple[Attachment, ...] = (),
                    dates: tuple[NoticeDate, ...] = (),
                    family_contacts: tuple[NoticeContact, ...] = (), variant: str = "",
                    duty: str | None = None) -> list[Notice]:
        """The notice of ``kind`` for every reader on each of their channels (``variant`` and
        ``duty``: see :meth:`notice`)."""
        out = []
        for invitee in self.readers(kind):
            mine = dict(extra or {})
            if kind == "advice_reminder" and self.asks(invitee):
                mine["chase"] = False  # reg 20(4): still circulated to them; the plugin chases
            for channel in self.channels(invitee):
                contacts = family_contacts if invitee.role in FAMILY else ()
                out.append(self.notice(kind, invitee, channel, extra=mine,
                                       attachments=attachments, dates=dates,
                                       contacts=contacts, variant=variant, duty=duty))
            if (kind == "advice_reminder" and invitee.role in FAMILY and invitee.mobile
                    and self.settings.text_reminders and self.via(SMS) in self.loaded):
                out.append(self.notice(kind, invitee, SMS, extra=extra or {},
                                       template="text_reminder"))
        return out

    # The four messages ----------------------------------------------------------------------

    def views_request(self) -> list[Notice]:
        """Six weeks ahead: every invitee is asked for views or advice (but a team a plugin
        asks itself)."""
        due = self.milestones.get("views_due")
        dates = (NoticeDate(label="Views and advice due", date=long_date(due)),) if due else ()
        return self.for_readers("views_request", dates=dates + self._join())

    def meeting_letters(self) -> list[Notice]:
        """The meeting itself by letter, to invitees without email (the calendar invitation
        reaches everyone else): set, moved, cancelled, or its joining link arrived. One letter
        per revision of the meeting, however many events led to it."""
        m = self.case.meeting
        if m is None or m.status not in (MeetingStatus.SCHEDULED, MeetingStatus.CANCELLED):
            return []
        cancelled = m.status == MeetingStatus.CANCELLED
        variant = f"m{m.id}.{m.sequence}" + ("-cancelled" if cancelled else
                                             "-link" if self._join() else "")
        extra = {"cancelled": cancelled, "moved": m.sequence > 0}
        return [self.notice("meeting", invitee, LETTER, extra=extra,
                            dates=() if cancelled else self._join(), variant=variant)
                for invitee in self.readers("meeting")
                if not invitee.email and invitee.address]

    def withdrawal_letters(self, removed: Iterable[Invitee], sent: Iterable[str]
                           ) -> list[Notice]:
        """To each person removed who is reached by letter only and was posted the meeting
        (``sent``: the keys of notices sent for this review), while the meeting is still to
        come: they are no longer invited, and the meeting goes ahead. Anyone removed with an
        email address gets the calendar's cancellation instead."""
        m = self.case.meeting
        if m is None or m.status != MeetingStatus.SCHEDULED or m.start.date() < self.today:
            return []
        keys = list(sent)
        out = []
        for invitee in removed:
            if invitee.email or not invitee.address:
                continue
            posted = self.key_of("meeting", invitee, LETTER) + "/"
            if any(k.startswith(posted) for k in keys):
                out.append(self.notice("meeting", invitee, LETTER, extra={},
                                       template="meeting_withdrawn",
                                       variant=f"m{m.id}.{m.sequence}-withdrawn"))
        return out

    def _join(self) -> tuple[NoticeDate, ...]:
        """The joining link of an online meeting, once it has one: a family without email gets
        no calendar invitation, so its letter is the only place the link can reach it."""
        m = self.case.meeting
        if m is None or not m.online or not m.join_url or m.status != MeetingStatus.SCHEDULED:
            return ()
        return (NoticeDate(label="Join the meeting online", date=m.join_url),)

    def advice_reminder(self, files: list[dict[str, Any]]) -> list[Notice]:
        """Two weeks ahead: one reminder to everyone, with the advice received so far (to a team
        a plugin chases itself, the advice received so far without the chase)."""
        limit = int(self.settings.attachment_limit_mb * 1024 * 1024)
        total = sum(int(f["size"]) for f in files)
        attach = bool(files) and total <= limit
        advice: list[dict[str, str]] = []
        seen: set[Any] = set()
        for f in files:
            if f["views_id"] in seen:
                continue
            seen.add(f["views_id"])
            who = ROLE_LABELS.get(str(f.get("role") or ""), "") or "a contributor"
            advice.append({"contributor": who,
                           "received": short_date(f["received_on"]) if f.get("received_on")
                           else ""})
        attachments = tuple(Attachment(filename=f["filename"], content_type=f["content_type"],
                                       size=int(f["size"]), file_id=int(f["id"]))
                            for f in files) if attach else ()
        return self.for_readers("advice_reminder", extra={"advice": advice, "attached": attach},
                                attachments=attachments, dates=self._join())

    def report(self, report: dict[str, Any] | None) -> list[Notice]:
        """Within two weeks of the meeting: the report to everyone invited (reg 20(7))."""
        attachments = (Attachment(filename=report["filename"],
                                  content_type=report["content_type"], size=int(report["size"]),
                                  file_id=int(report["id"])),) if report else ()
        return self.for_readers("report", attachments=attachments)

    def decision(self, next_review_due: date | None) -> list[Notice]:
        """The LA's decision, to the parent or young person and the setting (reg 20(10))."""
        decision = self.case.decision
        if decision is None:
            return []
        label, action = OUTCOMES[decision.outcome.value]
        representations = self.milestones.get("representations_due",
                                              decision.decided_on + timedelta(days=15))
        extra = {"outcome": decision.outcome.value, "outcome_label": label,
                 "outcome_action": action, "reason": decision.reason.strip(),
                 "decided_on": long_date(decision.decided_on),
                 "next_review_due": long_date(next_review_due) if next_review_due
                 else "within 12 months",
                 "representations_due": long_date(representations)}
        dates = [NoticeDate(label="Decision made", date=long_date(decision.decided_on))]
        contacts: tuple[NoticeContact, ...] = ()
        if decision.outcome.value == "maintain" and next_review_due:
            dates.append(NoticeDate(label="Next review due by", date=long_date(next_review_due)))
        elif decision.outcome.value == "amend":
            dates.append(NoticeDate(label="Representations on the proposed amendments",
                                    date=f"at least 15 days, to {long_date(representations)}"))
        if decision.outcome.value in ("maintain", "cease"):
            contacts = self._appeal_contacts()
        return self.for_readers("decision", extra=extra, dates=tuple(dates),
                                family_contacts=contacts)

    def not_amended(self, reason: str, on: date, proposed: date | None,
                    next_review_due: date | None) -> list[Notice]:
        """After the representations on the amendments proposed on ``proposed``, the LA decided
        on ``on`` not to make them: the parent or young person, and the setting, are told why
        (reg 22(4)), in a second decision notice that meets ``final_plan_issued``."""
        if self.case.decision is None:
            return []
        extra = {"outcome": NOT_AMENDED, "outcome_label": "proposed amendments not made",
                 "outcome_action": "keep", "reason": reason.strip(),
                 "decided_on": long_date(on),
                 "amendments_sent_on": long_date(proposed) if proposed else "earlier",
                 "next_review_due": long_date(next_review_due) if next_review_due
                 else "within 12 months",
                 "representations_due": ""}
        dates = [NoticeDate(label="Decision made", date=long_date(on))]
        if next_review_due:
            dates.append(NoticeDate(label="Next review due by", date=long_date(next_review_due)))
        return self.for_readers("decision", extra=extra, dates=tuple(dates),
                                family_contacts=self._appeal_contacts(), variant="not-amended",
                                duty=lifecycle.FINAL_PLAN_ISSUED)

    def _appeal_contacts(self) -> tuple[NoticeContact, ...]:
        # A decision not to amend the plan can be appealed as a decision to cease can (CFA
        # 2014 s51; CoP 9.176): the family is told how, and where to get help.
        s = self.settings
        return (NoticeContact(name="SENDIASS", detail=s.sendiass),
                NoticeContact(name="Mediation", detail=s.mediation),
                NoticeContact(name="Disagreement resolution", detail=s.disagreement_resolution))


def _reachable(invitee: Invitee) -> bool:
    return bool(invitee.email or invitee.address)


def _identity(invitee: Invitee) -> str:
    if invitee.email:
        return invitee.email.strip().lower()
    return " ".join((invitee.address or "").lower().split())


def _digest(text: str) -> str:
    # Keys show in ledgers and logs: a family's address is never spelt out there.
    return hashlib.sha256(text.encode()).hexdigest()[:12]
