"""The review lifecycle: every duty of a review as data, and each transition as a pure function.

Nothing here reads the clock, a file or the database. A transition takes what is known about a
review and returns what must be written (status, duties, timers, events with their keys and hook
names); the store persists it and decides nothing. Dates come from ``timeline.milestones()`` so a
date is defined once. See docs/lifecycle.md for every duty, its rule, who owes it and to whom.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from ehcbridge import timeline
from ehcbridge.models import (
    LONDON,
    Decision,
    Duty,
    DutyStatus,
    Frozen,
    Invitee,
    Meeting,
    MeetingStatus,
    Milestone,
    Outcome,
    Plan,
    Pupil,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
)

# Duty names (stable: stored in the ``duties`` table and shown to plugins) -----------------------

INVITATIONS_SENT = "invitations_sent"  # reg 20(3): >= 2 weeks before the meeting
INVITATIONS_GOOD_PRACTICE = "invitations_good_practice"  # 16 weeks ahead (good practice)
VIEWS_REQUESTED = "views_requested"  # 6 weeks ahead (good practice)
ADVICE_CIRCULATED = "advice_circulated"  # reg 20(4): >= 2 weeks before the meeting
MEETING_HELD = "meeting_held"  # by meeting_latest and before the review is due
REPORT_SENT = "report_sent"  # reg 20(7): within 2 weeks of the meeting
DECISION_MADE = "decision_made"  # reg 20(10)/s44: 4 weeks after the meeting, in 12 months
DECISION_NOTIFIED = "decision_notified"  # reg 20(10): told to parent/YP and setting
AMENDMENTS_PROPOSED = "amendments_proposed"  # reg 22, after `amend`
REPRESENTATIONS_WINDOW = "representations_window"  # reg 22: at least 15 days
FINAL_PLAN_ISSUED = "final_plan_issued"  # reg 22: within 8 weeks of proposed amendments
PHASE_TRANSFER_FINAL_PLAN = "phase_transfer_final_plan"  # reg 18: 15 Feb (31 Mar post-16)

# Hook names, shared with hookspecs and the engine -----------------------------------------------

HOOK_REVIEW_SCHEDULED = "on_review_scheduled"
HOOK_VIEWS_DUE = "on_views_due"
HOOK_MEETING_HELD = "on_meeting_held"
HOOK_DECISION = "on_decision"
# on_decision's second action: after representations, no amendments after all (reg 22(4)).
ACTION_NOT_AMENDED = "not_amended"
HOOK_DEADLINE = "on_deadline"
LIFECYCLE_HOOKS = (HOOK_REVIEW_SCHEDULED, HOOK_VIEWS_DUE, HOOK_MEETING_HELD, HOOK_DECISION,
                   HOOK_DEADLINE)


def meet(duty: Duty, on: date, evidence: str) -> Duty:
    """The duty marked met on ``on`` (``late`` when after its due date), with its evidence."""
    late = duty.due is not None and on > duty.due
    return duty.model_copy(update={"status": DutyStatus.LATE if late else DutyStatus.MET,
                                   "met_on": on, "evidence": evidence})


# Data: every duty, the rule it comes from, who owes it to whom, and which date it is due by ------

STATUTORY, GOOD_PRACTICE = timeline.STATUTORY, timeline.GOOD_PRACTICE
SETTING, LA = "setting", "la"
# reg 20(2): everyone the setting must invite, besides itself.
INVITED = (Role.PARENT.value, Role.YOUNG_PERSON.value, Role.LA_SEN_OFFICER.value,
           Role.HEALTH.value, Role.SOCIAL_CARE.value)
FAMILY = (Role.PARENT.value, Role.YOUNG_PERSON.value)
FAMILY_AND_SETTING = (*FAMILY, Role.SETTING.value)
RULE_HELD = "SEND Regs 2014 reg 20(10); CFA 2014 s44(1)"
RULE_DECIDED = "SEND Regs 2014 reg 20(10); CFA 2014 s44(1)"
RULE_PROPOSED = "SEND Regs 2014 reg 22(2)"
RULE_TRANSFER = "SEND Regs 2014 reg 18"
# Reg 21 (no school or other institution): the LA arranges the review and owes what a setting
# would; nobody invites or tells a setting.
REG21_RULES = {**timeline.REG21, RULE_HELD: "SEND Regs 2014 reg 21; CFA 2014 s44(1)"}

# Stages a duty belongs to: every review, after an amend decision, phase transfer reviews.
REVIEW, AMEND, TRANSFER = "review", "amend", "transfer"


@dataclass(frozen=True)
class DutySpec:
    """What a duty is: its rule, who owes it to whom, and the milestone that dates it."""

    name: str
    rule: str
    kind: str
    owed_by: str
    owed_to: tuple[str, ...]
    milestone: str
    stage: str = REVIEW
    meeting_linked: bool = False
    window: bool = False  # a period to allow (met by waiting), not a thing to do by a date
    automatic: bool = False  # met by the engine itself on its date: never "at risk"
    silent: bool = False  # met with another duty (the decision): its status moves, no on_deadline
    text: str = ""
    record: str = ""  # the ``ehcbridge review`` command that records it done ({case}: the case)


SPECS: tuple[DutySpec, ...] = (
    DutySpec(INVITATIONS_GOOD_PRACTICE, timeline.RULE_GUIDANCE, GOOD_PRACTICE, SETTING, INVITED,
             "invites_good_practice", meeting_linked=True,
             text="invitations sent 16 weeks before the meeting",
             record="schedule {case} --start DATETIME"),
    DutySpec(INVITATIONS_SENT, timeline.RULE_NOTICE, STATUTORY, SETTING, INVITED,
             "invites_statutory", meeting_linked=True,
             text="invitations sent to each reg 20(2) role at least 2 weeks before the meeting",
             record="schedule {case} --start DATETIME"),
    DutySpec(VIEWS_REQUESTED, timeline.RULE_GUIDANCE, GOOD_PRACTICE, SETTING, INVITED,
             "views_request", meeting_linked=True, automatic=True,
             text="advice and views requested 6 weeks before the meeting"),
    DutySpec(ADVICE_CIRCULATED, timeline.RULE_ADVICE, STATUTORY, SETTING, INVITED, "views_due",
             meeting_linked=True,
             text="advice and information circulated to everyone invited at least 2 weeks "
                  "before the meeting",
             record="advice {case} --on DATE"),
    DutySpec(MEETING_HELD, RULE_HELD, STATUTORY, SETTING, INVITED, "meeting_latest",
             text="the meeting held by the latest meeting date, before the review is due",
             record="held {case}"),
    DutySpec(REPORT_SENT, timeline.RULE_REPORT, STATUTORY, SETTING, INVITED, "report_due",
             meeting_linked=True,
             text="the report sent to the LA and everyone invited within 2 weeks of the meeting",
             record="report {case} --on DATE"),
    DutySpec(DECISION_MADE, RULE_DECIDED, STATUTORY, LA, FAMILY, "decision_due",
             text="the LA decides within 4 weeks of the meeting and within the 12 months",
             record="decide {case} maintain|amend|cease --reason TEXT --on DATE"),
    DutySpec(DECISION_NOTIFIED, timeline.RULE_DECISION, STATUTORY, LA, FAMILY_AND_SETTING,
             "decision_due", silent=True,
             text="the decision notified to the parent or young person and the setting"),
    DutySpec(AMENDMENTS_PROPOSED, RULE_PROPOSED, STATUTORY, LA, FAMILY_AND_SETTING,
             "decision_due", stage=AMEND,
             text="after an amend decision, the proposed amendments sent with the evidence",
             record="amendments {case} --on DATE"),
    DutySpec(REPRESENTATIONS_WINDOW, timeline.RULE_REPRESENTATIONS, STATUTORY, LA, FAMILY,
             "representations_due", stage=AMEND, window=True,
             text="at least 15 days for representations on the proposed amendments"),
    DutySpec(FINAL_PLAN_ISSUED, timeline.RULE_FINAL_PLAN, STATUTORY, LA, FAMILY_AND_SETTING,
             "final_amended_plan_due", stage=AMEND,
             text="the final amended plan issued within 8 weeks of the proposed amendments",
             record="final-plan {case} --on DATE"),
    DutySpec(PHASE_TRANSFER_FINAL_PLAN, RULE_TRANSFER, STATUTORY, LA, FAMILY_AND_SETTING,
             "phase_transfer_deadline", stage=TRANSFER,
             text="for a phase transfer, the amended plan naming the new setting by 15 February "
                  "(31 March for post-16)",
             record="final-plan {case} --on DATE"),
)
SPEC = {s.name: s for s in SPECS}
DUTY_NAMES = tuple(SPEC)
# Duties that follow a decision (amendments, final plan, a transfer's plan): still open on the
# review decided before the current one (see to_act_on).
AFTER_DECISION = tuple(s.name for s in SPECS if s.stage in (AMEND, TRANSFER))
# Who owes a duty, in words for the people who receive messages about it.
OWED_BY_WORDS = {SETTING: "the school or setting", LA: "the local authority",
                 Role.HEALTH.value: "health", Role.SOCIAL_CARE.value: "social care"}


class Named(Protocol):
    """Anything that names a duty: a Duty, or a store's light row of one."""

    @property
    def name(self) -> str: ...


D = TypeVar("D", bound=Named)


def to_act_on(rows: Iterable[tuple[str, int, D]], current: dict[str, int]
              ) -> list[tuple[str, int, D]]:
    """The (case, review, duty) rows still calling for action, given each case's current
    review: every duty of the current review, and of the review decided before it only those
    that follow the decision (amendments, final plan, a transfer's plan). What an older review
    missed is history: reported by the figures, not an open duty."""
    rows = list(rows)
    earlier: dict[str, int] = {}
    for case_id, review_id, duty in rows:
        if review_id != current.get(case_id) and duty.name in AFTER_DECISION:
            earlier[case_id] = max(earlier.get(case_id, 0), review_id)
    return [(c, r, d) for c, r, d in rows if r == current.get(c) or (
        r == earlier.get(c) and d.name in AFTER_DECISION)]


def record_command(name: str, case_id: str) -> str | None:
    """The command that records the duty done (``ehcbridge review ...``), for messages about
    it; None for a duty met by the engine or with another duty."""
    spec = SPEC.get(name)
    return f"ehcbridge review {spec.record.format(case=case_id)}" if spec and spec.record \
        else None

# Timers: milestones whose day (at 08:00) fires a views stage, and the meeting's end.
VIEWS_TIMERS = {"views_request": "request", "reminder": "reminder", "views_due": "due"}
MEETING_END = "meeting_end"
TIMER_HOUR = 8

# Flags the lifecycle raises (shown by `review show`, listed by `review list --flag`).
FLAG_LATE = "deadline_late"
# A meeting set (not yet held) after its latest date, or with less notice than invitations need:
# a warning about a plan, cleared when the meeting is moved into time or cancelled, and turned
# into deadline_late (a fact) if the meeting is held as set.
FLAG_MEETING_LATE = "meeting_late"
FLAG_MISSED = "deadline_missed"
FLAG_OVERDUE = "overdue"
FLAG_EARLY = "early_review"
FLAG_EARLY_SUGGESTED = "early_review_suggested"


class LifecycleError(Exception):
    """A transition refused (a decision before the meeting...), naming the case and field."""

    def __init__(self, message: str, *, case_id: str | None = None, field: str | None = None,
                 value: str | None = None) -> None:
        super().__init__(message)
        self.case_id = case_id
        self.field = field
        self.value = value


# Settings ----------------------------------------------------------------------------------


class TransferWindow(Frozen):
    """When a phase transfer review should be held: a term of an NC year (good practice)."""

    transfer_year: int  # the NC year at whose end the pupil moves on
    nc_year: int  # the year the review should be held in
    term: str  # "autumn" (Sep-Dec), "spring" (Jan-Mar) or "summer" (Apr-Jul)


DEFAULT_TRANSFER_WINDOWS = (
    TransferWindow(transfer_year=2, nc_year=2, term="autumn"),  # infant to junior school
    TransferWindow(transfer_year=6, nc_year=5, term="summer"),  # primary to secondary
    TransferWindow(transfer_year=11, nc_year=11, term="autumn"),  # school to post-16
)
_TERMS = {"autumn": ((9, 1), (12, 31), 0), "spring": ((1, 1), (3, 31), 1),
          "summer": ((4, 1), (7, 31), 1)}


class Policy(Frozen):
    """The local settings the lifecycle needs (from ``[engine]``)."""

    school_holidays: tuple[tuple[date, date], ...] = ()
    infant_schools: frozenset[str] = frozenset()
    at_risk_school_days: int = 5
    under_five_review_months: int = 6
    transfer_windows: tuple[TransferWindow, ...] = DEFAULT_TRANSFER_WINDOWS

    def clock(self, pupil: Pupil | None) -> timeline.ClockOptions:
        """The clock's options for this pupil (school holidays, infant school)."""
        return _clock_options(self.school_holidays, bool(
            pupil is not None and pupil.school_urn in self.infant_schools))


@lru_cache(maxsize=64)
def _clock_options(holidays: tuple[tuple[date, date], ...], infant: bool
                   ) -> timeline.ClockOptions:
    return timeline.ClockOptions(school_holidays=holidays, infant_school=infant)


DEFAULT_POLICY = Policy()


# What a transition returns -----------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An outbox row to write: the engine delivers it to every plugin implementing ``hook``."""

    key: str
    hook: str
    action: str
    meeting_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewTimer:
    """A timer to set: at ``due_at`` the engine asks :func:`timer_fired` what it means."""

    kind: str
    due_at: datetime
    meeting_id: int


@dataclass(frozen=True)
class NextReview:
    """The review opened by a decision: its kind, due date, duties and the invitees it starts
    with (see :func:`carried_invitees`)."""

    kind: ReviewKind
    due_by: date
    duties: tuple[Duty, ...] = ()
    invitees: tuple[Invitee, ...] = ()
    preparing_for_adulthood: bool = False


@dataclass(frozen=True)
class Change:
    """Everything a transition wants written, in one transaction. ``timers`` None leaves the
    review's timers alone; a tuple replaces the ones not fired yet."""

    action: str = ""
    review_status: ReviewStatus | None = None
    kind: ReviewKind | None = None
    due_by: date | None = None
    plan: Plan | None = None  # the plan as changed (its post-16 move, whether at no setting)
    meeting: Meeting | None = None
    new_meeting: bool = False
    held_at: datetime | None = None
    report_sent_on: date | None = None
    decision: Decision | None = None
    next_review: NextReview | None = None
    timers: tuple[NewTimer, ...] | None = None
    events: tuple[NewEvent, ...] = ()
    duties: tuple[Duty, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    clear_flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewState:
    """What the lifecycle needs to know about one review."""

    review: Review
    plan: Plan
    pupil: Pupil
    meeting: Meeting | None = None
    decision: Decision | None = None
    duties: tuple[Duty, ...] = ()
    fired_timers: frozenset[str] = frozenset()
    # Who is invited, as :func:`invitees_key` gives it: an invitation update is keyed by it,
    # so adding someone after someone else was removed (the same count) still updates.
    invitees_key: str = ""

    @property
    def case_id(self) -> str:
        """The case reference."""
        return self.review.case_id

    @property
    def review_id(self) -> int:
        """The review's id (0 before it is stored)."""
        return self.review.id or 0

    def duty(self, name: str) -> Duty | None:
        """The stored duty called ``name``."""
        return next((d for d in self.duties if d.name == name), None)

    @property
    def scheduled_meeting(self) -> Meeting | None:
        """The meeting when it is still to take place."""
        m = self.meeting
        return m if m is not None and m.status == MeetingStatus.SCHEDULED else None


# Event keys (identical across retries and restarts; docs/hooks.md#idempotency-keys) ----------


def meeting_key(case_id: str, review_id: int, meeting_id: int, action: str, sequence: int,
                invitees: str | None = None) -> str:
    """Key of an on_review_scheduled event (``updated``: with the digest of who is invited, or
    the reason an update was requested)."""
    key = f"{case_id}/r{review_id}/m{meeting_id}/{action}/{sequence}"
    return key if invitees is None else f"{key}/{invitees}"


def views_key(case_id: str, review_id: int, action: str) -> str:
    """Key of an on_views_due event: once per stage per review, whatever the meeting."""
    return f"{case_id}/r{review_id}/views/{action}"


def held_key(case_id: str, review_id: int, meeting_id: int) -> str:
    """Key of on_meeting_held: one key whether recorded or noticed by the clock."""
    return f"{case_id}/r{review_id}/m{meeting_id}/held"


def decision_key(case_id: str, review_id: int) -> str:
    """Key of on_decision."""
    return f"{case_id}/r{review_id}/decision"


def deadline_key(case_id: str, review_id: int, duty: str, action: str) -> str:
    """Key of on_deadline: once per duty and action per review."""
    return f"{case_id}/r{review_id}/deadline/{duty}/{action}"


# The clock for a review ----------------------------------------------------------------------


def clock_due(review: Review) -> date | None:
    """The due date the clock should use: the review's own, except an under-five's, whose
    6-month target leaves the 12-month statutory date standing."""
    return None if review.kind == ReviewKind.UNDER_FIVE else review.due_by


def review_milestones(state: ReviewState, policy: Policy = DEFAULT_POLICY,
                      as_of: date | None = None, meeting: Meeting | None = None
                      ) -> list[Milestone]:
    """The statutory clock of this review (a date is defined once, in ``timeline``)."""
    m = meeting if meeting is not None else state.meeting
    start = m.start if m is not None and m.status != MeetingStatus.CANCELLED else None
    proposed = state.duty(AMENDMENTS_PROPOSED)
    return timeline.milestones(
        state.plan, meeting_start=start, pupil=state.pupil, decision=state.decision,
        options=policy.clock(state.pupil), as_of=as_of, review_due=clock_due(state.review),
        amendments_proposed_on=proposed.met_on if proposed is not None else None)


def _day(value: datetime) -> date:
    return value.astimezone(LONDON).date()


def open_review(plan: Plan, pupil: Pupil, policy: Policy = DEFAULT_POLICY,
                as_of: date | None = None) -> tuple[ReviewKind, date]:
    """Kind and due date of a plan's review as first imported (NC year read as of ``as_of``)."""
    opts = policy.clock(pupil)
    due = timeline.review_due(plan, pupil, opts, as_of=as_of)
    if timeline.is_phase_transfer(plan, pupil, opts, as_of=as_of):
        return ReviewKind.PHASE_TRANSFER, due
    if pupil.dob is not None and timeline.add_months(pupil.dob, 60) > due:
        return ReviewKind.UNDER_FIVE, due
    return ReviewKind.ANNUAL, due


def next_review(state: ReviewState, decided_on: date, policy: Policy = DEFAULT_POLICY,
                as_of: date | None = None) -> tuple[ReviewKind, date]:
    """Kind and due date of the review a decision opens."""
    plan = state.plan.model_copy(update={"last_review_decision": decided_on})
    opts = policy.clock(state.pupil)
    transfer = next((m for m in review_milestones(state, policy, as_of)
                     if m.name == "phase_transfer_deadline"), None)
    if state.review.kind == ReviewKind.PHASE_TRANSFER or (
            transfer is not None and transfer.date == state.review.due_by):
        # The transfer review satisfied its deadline: the next is 12 months after the decision.
        kind, due = ReviewKind.ANNUAL, timeline.annual_review_due(plan)
    else:
        due = timeline.review_due(plan, state.pupil, opts, as_of=as_of)
        kind = (ReviewKind.PHASE_TRANSFER
                if timeline.is_phase_transfer(plan, state.pupil, opts, as_of=as_of)
                else ReviewKind.ANNUAL)
    dob = state.pupil.dob
    if dob is not None and decided_on < timeline.add_months(dob, 60):
        # SEND Code of Practice 9.178: under-fives are reviewed every 3 to 6 months.
        months = policy.under_five_review_months
        kind = ReviewKind.UNDER_FIVE
        due = min(due, timeline.add_months(decided_on, months) - timedelta(days=1))
    return kind, due


# Duties ------------------------------------------------------------------------------------


def duties(state: ReviewState, policy: Policy = DEFAULT_POLICY, as_of: date | None = None,
           meeting: Meeting | None = None, miles: tuple[Milestone, ...] | None = None
           ) -> tuple[Duty, ...]:
    """Every duty of the review with its due date now, keeping what was already recorded
    (``miles``: the review's milestones, when the caller has them already)."""
    if miles is None:
        miles = tuple(review_milestones(state, policy, as_of, meeting))
    m = meeting if meeting is not None else state.meeting
    has_meeting = m is not None and m.status != MeetingStatus.CANCELLED
    outcome = state.decision.outcome if state.decision is not None else None
    fresh = _fresh_duties(miles, state.review.kind, state.review.due_by, outcome,
                          state.plan.no_setting)
    out: list[Duty] = []
    for duty in fresh:
        old = state.duty(duty.name)
        if SPEC[duty.name].meeting_linked and not has_meeting:
            old = None  # no meeting (or it was cancelled): its notices start again
        out.append(_carry(duty, old))
    if outcome == Outcome.CEASE:
        out = [d.model_copy(update={"status": DutyStatus.NOT_APPLICABLE, "evidence": "plan ceases"})
               if d.name == PHASE_TRANSFER_FINAL_PLAN and d.met_on is None else d for d in out]
    return tuple(out)


@lru_cache(maxsize=4096)
def _fresh_duties(miles: tuple[Milestone, ...], kind: ReviewKind, due_by: date,
                  outcome: Outcome | None, no_setting: bool = False) -> tuple[Duty, ...]:
    """The duties as the clock dates them, nothing recorded yet (``no_setting``: as reg 21
    has them). A caseload shares a few hundred clocks, so each set is built once (duties are
    immutable)."""
    by_name = {m.name: m for m in miles}
    transfer = by_name.get("phase_transfer_deadline")
    transferring = kind == ReviewKind.PHASE_TRANSFER or (
        transfer is not None and transfer.date == by_name["review_due"].date)
    out: list[Duty] = []
    for spec in SPECS:
        if spec.stage == AMEND and outcome != Outcome.AMEND:
            continue
        if spec.stage == TRANSFER and not transferring:
            continue
        due = _due_of(spec, by_name, due_by, transferring)
        rule = transfer.rule if spec.stage == TRANSFER and transfer is not None else spec.rule
        owed_by, owed_to = spec.owed_by, spec.owed_to
        if no_setting:
            rule, owed_by = REG21_RULES.get(rule, rule), LA
            owed_to = tuple(r for r in owed_to if r != Role.SETTING.value)
        # Built from the specs above (already valid): skip validation, a caseload builds many.
        out.append(Duty.model_construct(name=spec.name, rule=rule, kind=spec.kind, due=due,
                                        owed_by=owed_by, owed_to=owed_to,
                                        status=DutyStatus.PENDING, met_on=None, evidence=None))
    return tuple(out)


def _due_of(spec: DutySpec, miles: dict[str, Milestone], due_by: date,
            transferring: bool) -> date | None:
    if spec.stage == TRANSFER:
        found = miles.get(spec.milestone)
        return found.date if found is not None else due_by
    found = miles.get(spec.milestone)
    if found is not None:
        return found.date
    if spec.milestone == "decision_due":  # no meeting yet: the latest the decision can be
        return timeline.decision_latest(miles["review_due"].date, transferring)
    return None


def _carry(fresh: Duty, old: Duty | None) -> Duty:
    """The fresh duty (new due date) with what was recorded on the old one."""
    if old is None:
        return fresh
    if old.rule == timeline.RULE_NOT_AMENDED:  # reg 22(4) ended it, not a final plan
        fresh = fresh.model_copy(update={"rule": old.rule})
    if old.status == DutyStatus.NOT_APPLICABLE:
        return fresh.model_copy(update={"status": old.status, "evidence": old.evidence})
    if old.met_on is not None:
        if old.status in (DutyStatus.MET, DutyStatus.LATE) and fresh.name != REPRESENTATIONS_WINDOW:
            return meet(fresh, old.met_on, old.evidence or "")
        return fresh.model_copy(update={"status": old.status, "met_on": old.met_on,
                                        "evidence": old.evidence})
    if old.status == DutyStatus.LATE or (old.status in (DutyStatus.AT_RISK, DutyStatus.MISSED)
                                         and old.due == fresh.due):
        return fresh.model_copy(update={"status": old.status, "evidence": old.evidence})
    return fresh  # its date moved: the engine looks at it again


def open_duties(state: ReviewState, policy: Policy = DEFAULT_POLICY,
                today: date | None = None) -> tuple[tuple[Duty, ...], tuple[tuple[str, str], ...]]:
    """Duties of a review as imported, with those already past due recorded missed, and the
    ``overdue`` flag when the review itself is past due (no on_deadline for history)."""
    found = duties(state, policy, today)
    if today is None:
        return found, ()
    return imported(found, state.review.due_by, today)


def imported(found: tuple[Duty, ...], due_by: date, today: date
             ) -> tuple[tuple[Duty, ...], tuple[tuple[str, str], ...]]:
    """Duties of a review imported on ``today``: those already past due are recorded missed
    (history is reported by the import, not fired as on_deadline) and the review is flagged
    ``overdue`` when it is past due itself."""
    out = []
    for d in found:
        if d.status == DutyStatus.PENDING and d.due is not None and d.due < today \
                and not SPEC[d.name].window:
            d = d.model_copy(update={"status": DutyStatus.MISSED,
                                     "evidence": f"already past due when imported on {today}"})
        out.append(d)
    flags: tuple[tuple[str, str], ...] = ()
    if due_by < today:
        flags = ((FLAG_OVERDUE, f"the review was due by {due_by.isoformat()} and was not "
                                f"decided when imported on {today.isoformat()}"),)
    return tuple(out), flags


def dated(found: tuple[Duty, ...]) -> tuple[Duty, ...]:
    """The duties worth storing for a new review: those with a date or a status (the others
    are worked out again from the clock when shown)."""
    return tuple(d for d in found if d.due is not None or d.status != DutyStatus.PENDING)


def _late(duty: Duty, what: str, flag: str = FLAG_LATE) -> tuple[str, tuple[str, str]]:
    """Warning text and flag for a duty met (or set: ``meeting_late``) after its due date."""
    due = duty.due.isoformat() if duty.due else "-"
    text = f"{duty.name} ({duty.rule}) was due by {due}; {what}"
    return text, (flag, text)


def _unplanned(duty: Duty) -> Duty:
    """The duty without a lateness that came from a meeting as set, not from anything done."""
    if duty.status == DutyStatus.LATE and duty.met_on is None:
        return duty.model_copy(update={"status": DutyStatus.PENDING, "evidence": None})
    return duty


def _replace(items: tuple[Duty, ...], *changed: Duty) -> tuple[Duty, ...]:
    by_name = {d.name: d for d in changed}
    return tuple(by_name.get(d.name, d) for d in items)


def _find(items: tuple[Duty, ...], name: str) -> Duty | None:
    return next((d for d in items if d.name == name), None)


# Transitions -------------------------------------------------------------------------------


def schedule(state: ReviewState, *, start: datetime, end: datetime, location: str | None,
             online: bool, organiser: str | None, now: datetime, new_meeting_id: int | None,
             policy: Policy = DEFAULT_POLICY) -> Change:
    """Set or move the meeting (schedule / reschedule): the event, timers and notice duties."""
    case = state.case_id
    if end <= start:
        raise LifecycleError(f"{case}: meeting end {end:%Y-%m-%d %H:%M} is not after its start",
                             case_id=case, field="meeting_end", value=end.isoformat())
    if state.review.status in (ReviewStatus.DECIDED, ReviewStatus.CANCELLED):
        raise LifecycleError(f"{case}: the review is {state.review.status.value}; nothing to "
                             "schedule", case_id=case, field="meeting_start",
                             value=start.isoformat())
    current = state.scheduled_meeting
    if current is not None:
        if (current.start == start and current.end == end and current.location == location
                and current.online == online):
            return Change(action="unchanged")
        action, seq = "rescheduled", current.sequence + 1
        meeting = current.model_copy(update={"start": start, "end": end, "location": location,
                                             "online": online, "sequence": seq,
                                             "organiser": organiser or current.organiser})
        payload: dict[str, Any] = {"previous": {"start": current.start.isoformat(),
                                                "end": current.end.isoformat(),
                                                "location": current.location}}
        new = False
    else:
        if new_meeting_id is None:
            raise ValueError("a new meeting needs an id")
        action, seq, payload, new = "scheduled", 0, {}, True
        meeting = Meeting(id=new_meeting_id, start=start, end=end, location=location,
                          online=online, organiser=organiser, status=MeetingStatus.SCHEDULED)
    assert meeting.id is not None
    today = _day(now)
    scheduled = replace(state, meeting=meeting)
    clock = tuple(review_milestones(scheduled, policy, today))
    miles = {m.name: m for m in clock}
    found = duties(scheduled, policy, today, miles=clock)
    evidence = f"invitations for the meeting {action} on {today.isoformat()}"
    changed = [meet(d, today, evidence) for d in found
               if d.name in (INVITATIONS_SENT, INVITATIONS_GOOD_PRACTICE)]
    warnings: list[str] = []
    flags: list[tuple[str, str]] = []
    day = meeting.start.astimezone(LONDON).date()
    held = _find(found, MEETING_HELD)
    if held is not None and _unplanned(held) is not held:
        held = _unplanned(held)
        changed.append(held)  # late only for the meeting as set before: judged afresh below
    if held is not None and held.due is not None and day > held.due and held.met_on is None:
        due_by = miles["review_due"].date
        what = (f"the meeting on {day.isoformat()} is after the review is due "
                f"({due_by.isoformat()})" if day > due_by else
                f"the meeting on {day.isoformat()} is after the latest meeting date")
        text, flag = _late(held, what, FLAG_MEETING_LATE)
        warnings.append(text)
        flags.append(flag)
        changed.append(held.model_copy(update={"status": DutyStatus.LATE,
                                               "evidence": f"meeting set for {day.isoformat()}"}))
    for d in changed:
        if d.name == INVITATIONS_SENT and d.status == DutyStatus.LATE:
            text, flag = _late(d, f"the meeting on {day.isoformat()} gives less notice",
                               FLAG_MEETING_LATE)
            warnings.append(text)
            flags.append(flag)
    timers = [NewTimer(kind, datetime.combine(miles[kind].date, time(TIMER_HOUR), tzinfo=LONDON),
                       meeting.id)
              for kind in VIEWS_TIMERS if kind in miles and kind not in state.fired_timers]
    timers.append(NewTimer(MEETING_END, end, meeting.id))
    return Change(
        action=action, review_status=ReviewStatus.SCHEDULED, meeting=meeting, new_meeting=new,
        timers=tuple(timers), duties=_replace(found, *changed), flags=tuple(flags),
        warnings=tuple(warnings), clear_flags=() if flags else (FLAG_MEETING_LATE,),
        events=(NewEvent(meeting_key(case, state.review_id, meeting.id, action, seq),
                         HOOK_REVIEW_SCHEDULED, action, meeting.id, payload),))


def reschedule(state: ReviewState, **kwargs: Any) -> Change:
    """Move the meeting; refused when there is none."""
    if state.scheduled_meeting is None:
        raise LifecycleError(f"{state.case_id}: no meeting to reschedule; use 'review schedule'",
                             case_id=state.case_id, field="meeting_start")
    return schedule(state, **kwargs)


def cancel(state: ReviewState, *, reason: str, now: datetime,
           policy: Policy = DEFAULT_POLICY) -> Change:
    """Cancel the meeting: the review is due again; its notices start again with a new one."""
    current = state.scheduled_meeting
    if current is None or current.id is None:
        raise LifecycleError(f"{state.case_id}: no scheduled meeting to cancel",
                             case_id=state.case_id, field="meeting_start")
    seq = current.sequence + 1
    meeting = current.model_copy(update={"status": MeetingStatus.CANCELLED, "sequence": seq})
    found = tuple(_unplanned(d) if d.name == MEETING_HELD else d
                  for d in duties(replace(state, meeting=meeting), policy, _day(now)))
    return Change(action="cancelled", review_status=ReviewStatus.DUE, meeting=meeting, timers=(),
                  duties=found, clear_flags=(FLAG_MEETING_LATE,), events=(NewEvent(
                      meeting_key(state.case_id, state.review_id, current.id, "cancelled", seq),
                      HOOK_REVIEW_SCHEDULED, "cancelled", current.id, {"reason": reason}),))


def invite(state: ReviewState) -> Change | None:
    """Someone was added to the invitees: calendar plugins invite them to the meeting already
    set (``updated``); None when there is no meeting yet."""
    current = state.scheduled_meeting
    if current is None or current.id is None:
        return None
    key = meeting_key(state.case_id, state.review_id, current.id, "updated", current.sequence,
                      state.invitees_key)
    return Change(action="updated", events=(NewEvent(key, HOOK_REVIEW_SCHEDULED, "updated",
                                                     current.id),))


def invitees_key(invitees: Iterable[Invitee]) -> str:
    """A short digest of who is invited (role and address), the same whatever their order."""
    names = sorted(f"{i.role.value}|{(i.email or '').strip().lower()}|{i.address or ''}"
                   for i in invitees)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]


def email_key(email: str | None) -> str:
    """An email address as invitees are matched by it: trimmed, lower case ('' for none)."""
    return (email or "").strip().lower()


def replaced_by_list(current: Iterable[Invitee], listed: Iterable[Invitee],
                     no_setting: bool = False) -> list[Invitee]:
    """The invitees a council's list no longer names: those an earlier list added (source
    ``import``) for a role this list names someone else for. A list names one person per
    role, so a new address there (the child changed school, the family moved mailbox) means
    the old one is no longer invited; invitees from anywhere else are left alone. A list
    saying the child attends no setting (reg 21) names nobody for the setting."""
    named: dict[Role, set[str]] = {Role.SETTING: set()} if no_setting else {}
    for invitee in listed:
        if invitee.email:
            named.setdefault(invitee.role, set()).add(email_key(invitee.email))
    return [i for i in current
            if i.source == "import" and i.email and i.role in named
            and email_key(i.email) not in named[i.role]]


def kept_out(removed: Iterable[tuple[Invitee, str | None]]) -> dict[str, dict[str, Any]]:
    """What a caseworker's removal keeps out of the plan's later reviews: each address removed
    and the one it was routed from (a professional routed to a team mailbox is known by
    both), each naming the other, so an explicit invitation of either lifts both. Someone
    reached by letter only has no address to keep. Nothing automatic (a list still naming
    them, the MIS, routing, a rule, next year's review) invites them again."""
    marks: dict[str, dict[str, Any]] = {}
    for invitee, routed_from in removed:
        for one, other in ((invitee.email, routed_from), (routed_from, invitee.email)):
            if one:
                marks[email_key(one)] = {"role": invitee.role.value,
                                          "with": email_key(other) or None}
    return marks


def still_welcome(invitee: Invitee, removed: set[str] | dict[str, Any]) -> bool:
    """False for an invitee whose address a caseworker removed from the plan (``removed``:
    those addresses, see :func:`kept_out`)."""
    return not invitee.email or email_key(invitee.email) not in removed


def lifted(email: str, marks: dict[str, dict[str, Any]]) -> list[str]:
    """The removals an explicit invitation of ``email`` lifts: its own and that of the address
    it was routed with (``marks``: the plan's removals by address)."""
    address = email_key(email)
    mark = marks.get(address)
    if mark is None:
        return []
    return [address] + ([mark["with"]] if mark.get("with") else [])


def request_update(state: ReviewState, reason: str) -> Change | None:
    """Ask calendar plugins to update the meeting already set (e.g. its online link arrived
    late): once per reason and meeting revision; None when there is no scheduled meeting."""
    current = state.scheduled_meeting
    if current is None or current.id is None:
        return None
    key = meeting_key(state.case_id, state.review_id, current.id, "updated", current.sequence,
                      reason)
    return Change(action="updated", events=(NewEvent(key, HOOK_REVIEW_SCHEDULED, "updated",
                                                     current.id),))


def views_received(state: ReviewState, *, on: date, policy: Policy = DEFAULT_POLICY) -> Change:
    """The advice and views were gathered and circulated to everyone invited (reg 20(4))."""
    if state.meeting is None or state.meeting.status == MeetingStatus.CANCELLED:
        raise LifecycleError(f"{state.case_id}: no meeting is set; advice is circulated before "
                             "a meeting", case_id=state.case_id, field="on")
    return _met(state, ADVICE_CIRCULATED, on, f"review advice --on {on.isoformat()}", policy)


def _met(state: ReviewState, name: str, on: date, evidence: str, policy: Policy,
         **change: Any) -> Change:
    found = duties(state, policy, on)
    duty = _find(found, name)
    assert duty is not None
    done = meet(duty, on, evidence)
    warnings: tuple[str, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    if done.status == DutyStatus.LATE:
        text, flag = _late(done, f"recorded as done on {on.isoformat()}, "
                                 f"{(on - (duty.due or on)).days} days late")
        warnings, flags = (text,), (flag,)
    return Change(action=name, duties=_replace(found, done), warnings=warnings, flags=flags,
                  **change)


def held(state: ReviewState, *, action: str, now: datetime,
         policy: Policy = DEFAULT_POLICY) -> Change:
    """The meeting took place (``recorded`` by hand or ``ended`` by the clock)."""
    m = state.meeting
    if m is None or m.id is None or m.status == MeetingStatus.CANCELLED:
        raise LifecycleError(f"{state.case_id}: no meeting to record as held",
                             case_id=state.case_id, field="meeting_start")
    meeting = m.model_copy(update={"status": MeetingStatus.HELD})
    status = ReviewStatus.HELD if state.review.status == ReviewStatus.SCHEDULED else None
    after = replace(state, meeting=meeting)
    found = duties(after, policy, _day(now))
    day = m.start.astimezone(LONDON).date()
    duty = _find(found, MEETING_HELD)
    changed: list[Duty] = []
    warnings: tuple[str, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    if duty is not None and duty.met_on is None:
        done = meet(duty, day, "review held" + (" (recorded)" if action == "recorded"
                                                 else " (the meeting's end time passed)"))
        changed.append(done)
        if done.status == DutyStatus.LATE:
            text, flag = _late(done, f"the meeting was held on {day.isoformat()}")
            warnings, flags = (text,), (flag,)
    notice = _find(found, INVITATIONS_SENT)
    if notice is not None and notice.status == DutyStatus.LATE:
        # The short notice warned of when the meeting was set is now a fact (reg 20(3)).
        text, flag = _late(notice, f"the meeting was held on {day.isoformat()} with less notice")
        warnings, flags = (*warnings, text), (*flags, flag)
    return Change(action=action, review_status=status, meeting=meeting, held_at=now, timers=(),
                  duties=_replace(found, *changed), warnings=warnings, flags=flags,
                  clear_flags=(FLAG_MEETING_LATE,),
                  events=(NewEvent(held_key(state.case_id, state.review_id, m.id),
                                   HOOK_MEETING_HELD, action, m.id),))


def report(state: ReviewState, *, on: date, policy: Policy = DEFAULT_POLICY) -> Change:
    """The review report went to the LA and everyone invited (reg 20(7))."""
    if state.review.status != ReviewStatus.HELD:
        raise LifecycleError(f"{state.case_id}: the report follows the meeting; the review is "
                             f"{state.review.status.value}", case_id=state.case_id, field="on")
    day = state.meeting.start.astimezone(LONDON).date() if state.meeting else None
    if day is not None and on < day:
        raise LifecycleError(f"{state.case_id}: a report sent on {on.isoformat()} is before the "
                             f"meeting on {day.isoformat()}", case_id=state.case_id, field="on",
                             value=on.isoformat())
    return _met(state, REPORT_SENT, on, f"review report --on {on.isoformat()}", policy,
                report_sent_on=on)


# Invitees the engine works out again before each meeting, from that year's data: parents the
# MIS knows, and those an invitation rule adds (``rule:<name>``).
RECOMPUTED_SOURCES = ("mis",)


def carried_invitees(invitees: Iterable[tuple[Invitee, str | None]], *,
                     moving_on: bool = False) -> tuple[Invitee, ...]:
    """The invitees a decided review hands on to the next one, from (invitee, routed_from)
    pairs: the family and the professionals named for the plan, without their responses;
    ``moving_on`` (a phase transfer review): not the setting the child is leaving.

    The plan, not the review, is what the family and professionals are involved in, so next
    year's meeting invites them again without anyone re-entering them. Those found afresh
    before each meeting are left to be found again (MIS parents, rule invitees, and a team
    routed for a role nobody was named for); a professional routed to a team mailbox is
    carried as named, to be routed again by that year's routes."""
    out: list[Invitee] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for invitee, routed_from in invitees:
        source = invitee.source
        if source in RECOMPUTED_SOURCES or source.startswith("rule:"):
            continue
        if moving_on and invitee.role == Role.SETTING:
            continue  # next year's review is held by the new school or college
        if source == "routed":
            if routed_from is None:
                continue  # a team found for the role: routing finds it again
            invitee = invitee.model_copy(update={"email": routed_from or None, "team": None,
                                                 "source": "carried"})
        key = (invitee.role.value, invitee.email, invitee.address)
        if key not in seen:
            seen.add(key)
            out.append(invitee.model_copy(update={"response": None}))
    return tuple(out)


def decide(state: ReviewState, *, outcome: Outcome, reason: str, on: date, now: datetime,
           policy: Policy = DEFAULT_POLICY, next_due: date | None = None) -> Change:
    """The LA's decision (reg 20(10)); opens the next review unless the plan ceases."""
    case = state.case_id
    status = state.review.status
    if status in (ReviewStatus.DECIDED, ReviewStatus.CANCELLED) or state.decision is not None:
        raise LifecycleError(f"{case}: the review is already {status.value}", case_id=case,
                             field="outcome")
    m = state.meeting
    day = m.start.astimezone(LONDON).date() if m is not None else None
    # Ceasing to maintain the plan (s45) may come at any time once a meeting is set; a review
    # decision to maintain or amend follows the meeting.
    allowed = (ReviewStatus.HELD,) if outcome != Outcome.CEASE else (ReviewStatus.HELD,
                                                                     ReviewStatus.SCHEDULED)
    if status not in allowed:
        where = (f"the meeting is set for {day.isoformat()}" if status == ReviewStatus.SCHEDULED
                 and day else "no meeting has been held")
        raise LifecycleError(
            f"{case}: no review meeting has been held for the current review (due by "
            f"{state.review.due_by:%d %b %Y}; {where}); record it with 'ehcbridge review held "
            f"{case}' before the decision", case_id=case, field="outcome")
    if status == ReviewStatus.HELD and day is not None and on < day:
        raise LifecycleError(f"{case}: a decision dated {on.isoformat()} is before the meeting "
                             f"on {day.isoformat()}", case_id=case, field="on",
                             value=on.isoformat())
    decision = Decision(outcome=outcome, reason=reason, decided_on=on)
    decided = replace(state, decision=decision)
    found = duties(decided, policy, on)
    changed: list[Duty] = []
    warnings: list[str] = []
    flags: list[tuple[str, str]] = []
    for name in (DECISION_MADE, DECISION_NOTIFIED):
        duty = _find(found, name)
        assert duty is not None
        done = meet(duty, on, f"decision '{outcome.value}' recorded for {on.isoformat()}")
        changed.append(done)
        if done.status == DutyStatus.LATE and name == DECISION_MADE:
            text, flag = _late(done, f"the decision is dated {on.isoformat()}")
            warnings.append(text)
            flags.append(flag)
    transfer = _find(found, PHASE_TRANSFER_FINAL_PLAN)
    if outcome == Outcome.MAINTAIN and transfer is not None and transfer.met_on is None \
            and transfer.status != DutyStatus.NOT_APPLICABLE:
        # Reg 18 asks for the plan to be amended to name the next setting; maintaining it is
        # lawful only where no amendment is needed, so the caseworker hears it now, not when
        # the duty is missed in February.
        by = transfer.due.isoformat() if transfer.due else "its deadline"
        warnings.append(f"{PHASE_TRANSFER_FINAL_PLAN} ({transfer.rule}): this is a phase "
                        f"transfer review; the plan is to be amended to name the next setting, "
                        f"with the final plan issued by {by}. A decision to maintain it leaves "
                        "that duty unmet, and it is recorded missed on that date.")
    nxt = None
    if outcome != Outcome.CEASE:
        kind, due = next_review(state, on, policy, _day(now))
        if next_due is not None:
            due = next_due
        plan = state.plan.model_copy(update={"last_review_decision": on})
        fresh = ReviewState(review=Review(case_id=case, kind=kind, due_by=due), plan=plan,
                            pupil=state.pupil)
        # Reg 20(6): the review in Year 9 and every one after it covers preparing for
        # adulthood, so a Year 8 pupil's next review does, without waiting for new data.
        pfa = state.review.preparing_for_adulthood or timeline.preparing_for_adulthood(
            state.pupil, on=due, as_of=_day(now))
        nxt = NextReview(kind, due, duties(fresh, policy, on), preparing_for_adulthood=pfa)
    return Change(action="recorded", review_status=ReviewStatus.DECIDED, decision=decision,
                  next_review=nxt, timers=(), duties=_replace(found, *changed),
                  warnings=tuple(warnings), flags=tuple(flags),
                  events=(NewEvent(decision_key(case, state.review_id), HOOK_DECISION,
                                   "recorded"),))


def cease(state: ReviewState, *, reason: str, on: date, now: datetime,
          policy: Policy = DEFAULT_POLICY) -> Change:
    """The LA decided to cease to maintain the plan: no next review."""
    return decide(state, outcome=Outcome.CEASE, reason=reason, on=on, now=now, policy=policy)


def _amended(state: ReviewState) -> Decision:
    if state.decision is None or state.decision.outcome != Outcome.AMEND:
        raise LifecycleError(f"{state.case_id}: no decision to amend the plan has been recorded",
                             case_id=state.case_id, field="outcome")
    return state.decision


def amendments_proposed(state: ReviewState, *, on: date,
                        policy: Policy = DEFAULT_POLICY) -> Change:
    """The proposed amendments went to the family (reg 22): dates the 15 days and 8 weeks."""
    decision = _amended(state)
    if on < decision.decided_on:
        raise LifecycleError(f"{state.case_id}: proposed amendments sent on {on.isoformat()} "
                             f"are before the decision of {decision.decided_on.isoformat()}",
                             case_id=state.case_id, field="on", value=on.isoformat())
    change = _met(state, AMENDMENTS_PROPOSED, on, f"review amendments --on {on.isoformat()}",
                  policy)
    # The 15 days and 8 weeks now run from the amendments, not the decision.
    proposed = _find(change.duties, AMENDMENTS_PROPOSED)
    assert proposed is not None
    redated = duties(replace(state, duties=_replace(state.duties, proposed)
                             if state.duty(AMENDMENTS_PROPOSED) else (*state.duties, proposed)),
                     policy, on)
    return replace(change, duties=redated)


def final_plan_issued(state: ReviewState, *, on: date, policy: Policy = DEFAULT_POLICY) -> Change:
    """The final amended plan was issued (reg 22(3); reg 18 for a phase transfer)."""
    _concluding(state, on, "a final plan issued", final_plan=True)
    change = _met(state, FINAL_PLAN_ISSUED, on, f"review final-plan --on {on.isoformat()}",
                  policy)
    found = list(change.duties)
    warnings, flags = list(change.warnings), list(change.flags)
    for i, d in enumerate(found):
        if d.name == PHASE_TRANSFER_FINAL_PLAN and d.met_on is None:
            found[i] = meet(d, on, f"review final-plan --on {on.isoformat()}")
            if found[i].status == DutyStatus.LATE:
                text, flag = _late(found[i], f"the final plan was issued on {on.isoformat()}")
                warnings.append(text)
                flags.append(flag)
    _close_representations(found, on, ("the final plan", "was issued", "final plan issued"),
                           warnings, flags)
    return replace(change, duties=tuple(found), warnings=tuple(warnings), flags=tuple(flags))


def _concluding(state: ReviewState, on: date, what: str, *, final_plan: bool) -> date:
    """The checks before an amend decision's amendments are concluded on ``on`` by a final plan
    (``final_plan``) or a decision not to amend (``what``: the step, for messages): the proposed
    amendments recorded on or before ``on``, and nothing concluded already (a final plan may be
    recorded again, to correct its date). Returns the date the amendments were proposed."""
    case = state.case_id
    _amended(state)
    proposed = state.duty(AMENDMENTS_PROPOSED)
    if proposed is None or proposed.met_on is None:
        raise LifecycleError(f"{case}: no proposed amendments are recorded; record them first "
                             f"with 'ehcbridge review amendments {case} --on DATE'",
                             case_id=case, field="on")
    if on < proposed.met_on:
        raise LifecycleError(f"{case}: {what} on {on.isoformat()} is before the proposed "
                             f"amendments of {proposed.met_on.isoformat()}", case_id=case,
                             field="on", value=on.isoformat())
    final = state.duty(FINAL_PLAN_ISSUED)
    if final is not None and final.met_on is not None:
        if final.rule == timeline.RULE_NOT_AMENDED:
            raise LifecycleError(f"{case}: the decision not to amend was recorded on "
                                 f"{final.met_on.isoformat()} already; the plan stays as it is",
                                 case_id=case, field="on")
        if not final_plan:
            raise LifecycleError(f"{case}: the final amended plan was issued on "
                                 f"{final.met_on.isoformat()} already", case_id=case, field="on")
    return proposed.met_on


def _close_representations(found: list[Duty], on: date, what: tuple[str, str, str],
                           warnings: list[str], flags: list[tuple[str, str]]) -> None:
    """The 15 days for representations, once the LA concluded the amendments on ``on`` (``what``:
    the step, its verb, its evidence): allowed when they had ended, missed (warned and flagged)
    when it concluded sooner."""
    step, verb, evidence = what
    for i, d in enumerate(found):
        if d.name != REPRESENTATIONS_WINDOW or d.due is None or d.met_on is not None:
            continue
        if on < d.due:
            text = (f"{d.name} ({d.rule}): {step} {verb} on {on.isoformat()}, before the 15 "
                    f"days for representations ended on {d.due.isoformat()}")
            found[i] = d.model_copy(update={"status": DutyStatus.MISSED,
                                            "evidence": f"{evidence} {on}"})
            warnings.append(text)
            flags.append((FLAG_LATE, text))
        else:
            found[i] = meet(d, d.due, f"15 days allowed before {step}")


def not_amended(state: ReviewState, *, reason: str, on: date,
                policy: Policy = DEFAULT_POLICY) -> Change:
    """After the representations, the LA decided not to make the proposed amendments: it tells
    the parent or young person why within the 8 weeks a final plan would have had (reg 22(4)),
    and the plan stays as it is (``on_decision``, action ``not_amended``)."""
    case = state.case_id
    if not reason.strip():
        raise LifecycleError(f"{case}: give the reason for not amending the plan; the family "
                             "is told it (reg 22(4))", case_id=case, field="reason")
    proposed = _concluding(state, on, "a decision not to amend dated", final_plan=False)
    found = list(duties(state, policy, on))
    warnings: list[str] = []
    flags: list[tuple[str, str]] = []
    for i, d in enumerate(found):
        if d.name == FINAL_PLAN_ISSUED:
            found[i] = meet(d.model_copy(update={"rule": timeline.RULE_NOT_AMENDED}), on,
                            f"review not-amended --on {on.isoformat()}: the family told the "
                            "plan stays as it is")
            if found[i].status == DutyStatus.LATE:
                text, flag = _late(found[i], f"the decision not to amend is dated "
                                             f"{on.isoformat()}")
                warnings.append(text)
                flags.append(flag)
        if d.name == PHASE_TRANSFER_FINAL_PLAN and d.met_on is None \
                and d.status != DutyStatus.NOT_APPLICABLE:
            by = d.due.isoformat() if d.due else "its deadline"
            warnings.append(f"{d.name} ({d.rule}): this is a phase transfer review; without the "
                            f"amendments the plan does not name the next setting by {by}, and "
                            "that duty is recorded missed on that date.")
    _close_representations(found, on, ("the decision not to amend", "was made",
                                       "decided not to amend"), warnings, flags)
    return Change(action="recorded", duties=tuple(found), warnings=tuple(warnings),
                  flags=tuple(flags),
                  events=(NewEvent(f"{decision_key(case, state.review_id)}/not-amended",
                                   HOOK_DECISION, ACTION_NOT_AMENDED,
                                   payload={"reason": reason.strip(), "on": on.isoformat(),
                                            "proposed": proposed.isoformat()}),))


def early(state: ReviewState, *, reason: str, on: date) -> Change:
    """Open an early review (moving area or school, elective home education, risk of exclusion,
    changed needs): the current review becomes ``early``, planned as soon as possible."""
    if state.review.status != ReviewStatus.DUE:
        m = state.scheduled_meeting
        what = (f"a meeting is already set for {m.start:%d %b %Y}; move it with 'ehcbridge "
                "review reschedule'" if m is not None else f"the review is "
                f"{state.review.status.value}")
        raise LifecycleError(f"{state.case_id}: {what}", case_id=state.case_id, field="reason")
    if not reason.strip():
        raise LifecycleError(f"{state.case_id}: give the reason for the early review",
                             case_id=state.case_id, field="reason")
    return Change(action="early", kind=ReviewKind.EARLY,
                  flags=((FLAG_EARLY, f"{on.isoformat()}: {reason.strip()}"),),
                  clear_flags=(FLAG_EARLY_SUGGESTED,))


def post16_move(state: ReviewState, move: date | None, *, today: date,
                policy: Policy = DEFAULT_POLICY) -> Change:
    """Record (or, with None, withdraw) a young person's move to another post-16 institution
    outside the usual transfers: the review becomes due 5 months before it (reg 18(2)) when
    that is sooner, and its duties are re-dated."""
    case = state.case_id
    start = timeline.review_period_start(state.plan)
    problem = timeline.post16_move_problem(move, state.pupil.nc_year, start) if move else None
    if move is not None and problem is not None:
        raise LifecycleError(f"{case}: {problem}", case_id=case, field="on",
                             value=move.isoformat())
    kind, due = state.review.kind, state.review.due_by
    old = state.plan.post16_move
    if old is not None and due == timeline.post16_move_deadline(old):
        # The move set this due date: without it the review is due when the clock says.
        kind, due = open_review(state.plan.model_copy(update={"post16_move": None}),
                                state.pupil, policy, today)
        kind = state.review.kind if state.review.kind == ReviewKind.EARLY else kind
    plan = state.plan.model_copy(update={"post16_move": move})
    deadline = timeline.post16_move_deadline(move) if move is not None else None
    warnings: tuple[str, ...] = ()
    if deadline is not None and start <= deadline < due:
        due = deadline
        kind = kind if kind == ReviewKind.EARLY else ReviewKind.PHASE_TRANSFER
    elif deadline is not None and deadline < start:
        # Too late for reg 18(2) in this period: the clock leaves it to the caseworker.
        warnings += (f"{case}: 5 months before the move ({deadline:%d %b %Y}) was before this "
                     f"review period began ({start:%d %b %Y}), so the review stays due by "
                     f"{due:%d %b %Y}; to review the plan before the move, open an early "
                     "review ('ehcbridge review early')",)
    flags: tuple[tuple[str, str], ...] = ()
    if due == deadline and due < today:
        flags = ((FLAG_OVERDUE, f"the review was due by {due.isoformat()}, 5 months before the "
                                f"post-16 move on {move}, and is not decided"),)
    latest = timeline.meeting_latest(due, kind == ReviewKind.PHASE_TRANSFER)
    m = state.scheduled_meeting
    if m is not None and m.start.astimezone(LONDON).date() > latest:
        warnings += (f"{case}: the meeting on {m.start:%d %b %Y} is after the latest date for "
                     f"this review's meeting ({latest:%d %b %Y}); move it with 'ehcbridge "
                     "review reschedule'",)
    elif m is None and latest < today:
        warnings += (f"{case}: the latest date for this review's meeting ({latest:%d %b %Y}) "
                     "has passed; hold it as soon as possible ('ehcbridge plan' or 'ehcbridge "
                     "review schedule')",)
    after = replace(state, plan=plan, review=state.review.model_copy(
        update={"kind": kind, "due_by": due}))
    return Change(action="post16_move", kind=kind, due_by=due, plan=plan,
                  duties=duties(after, policy, today), flags=flags,
                  clear_flags=(FLAG_OVERDUE,) if due >= today else (), warnings=warnings)


def no_setting(state: ReviewState, value: bool, *, today: date,
               policy: Policy = DEFAULT_POLICY) -> Change:
    """Record that the child or young person attends no school or other institution (True:
    the LA arranges the review and owes its duties, reg 21) or attends one again (False)."""
    plan = state.plan.model_copy(update={"no_setting": value})
    return Change(action="no_setting", plan=plan,
                  duties=duties(replace(state, plan=plan), policy, today))


def timer_fired(state: ReviewState, *, kind: str, meeting_id: int, now: datetime,
                policy: Policy = DEFAULT_POLICY) -> Change:
    """What a timer means when it comes due: a views stage, or the meeting's end."""
    if kind == MEETING_END:
        return held(state, action="ended", now=now, policy=policy)
    action = VIEWS_TIMERS[kind]
    event = NewEvent(views_key(state.case_id, state.review_id, action), HOOK_VIEWS_DUE, action,
                     meeting_id)
    if action != "request":
        return Change(action=action, events=(event,))
    found = duties(state, policy, _day(now))
    duty = _find(found, VIEWS_REQUESTED)
    if duty is None or duty.met_on is not None:
        return Change(action=action, events=(event,))
    done = meet(duty, _day(now), "views requested (on_views_due request)")
    return Change(action=action, events=(event,), duties=_replace(found, done))


# Deadlines ---------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def at_risk_from(due: date, school_days: int,
                 holidays: tuple[tuple[date, date], ...] = ()) -> date:
    """The day a duty becomes at risk: ``school_days`` school days before ``due``."""
    opts = _clock_options(holidays, False)
    day, counted = due, 0
    while counted < school_days:
        day -= timedelta(days=1)
        if timeline.is_school_day(day, opts):
            counted += 1
    return day


def deadline(duty: Duty, today: date, policy: Policy = DEFAULT_POLICY
             ) -> tuple[Duty, str | None] | None:
    """A pending duty's new status on ``today`` and the on_deadline action to fire (``at_risk``
    or ``missed``; None for a window that simply passed); None when nothing changes."""
    if duty.due is None or duty.status not in (DutyStatus.PENDING, DutyStatus.AT_RISK):
        return None
    spec = SPEC.get(duty.name)
    if spec is not None and spec.window:
        if today > duty.due:
            return meet(duty, duty.due, "the period was allowed"), None
        return None
    silent = spec is not None and spec.silent
    if today > duty.due:
        return duty.model_copy(update={"status": DutyStatus.MISSED}), None if silent else "missed"
    if spec is not None and spec.automatic:
        return None
    if duty.status == DutyStatus.PENDING and today >= at_risk_from(
            duty.due, policy.at_risk_school_days, policy.school_holidays):
        return duty.model_copy(update={"status": DutyStatus.AT_RISK}), None if silent else "at_risk"
    return None


def deadline_horizon(today: date, policy: Policy = DEFAULT_POLICY) -> date:
    """The latest due date a duty can have and already be at risk on ``today``: one school day
    past the ``at_risk_school_days``-th after today (school holidays push it further)."""
    opts = _clock_options(policy.school_holidays, False)
    day, counted = today, 0
    while counted <= policy.at_risk_school_days:
        day += timedelta(days=1)
        if timeline.is_school_day(day, opts):
            counted += 1
    return day


def check_deadlines(rows: list[tuple[str, int, Duty]], today: date,
                    policy: Policy = DEFAULT_POLICY) -> dict[int, Change]:
    """For (case, review, duty) rows: per review, the duties whose status moves and the
    on_deadline events (once per duty and action) and flags that go with them."""
    out: dict[int, tuple[list[Duty], list[NewEvent], list[tuple[str, str]]]] = {}
    for case_id, review_id, duty in rows:
        found = deadline(duty, today, policy)
        if found is None:
            continue
        new, action = found
        changed, events, flags = out.setdefault(review_id, ([], [], []))
        changed.append(new)
        if action is not None:
            events.append(NewEvent(deadline_key(case_id, review_id, duty.name, action),
                                   HOOK_DEADLINE, action,
                                   payload={"duty": new.model_dump(mode="json")}))
        if new.status == DutyStatus.MISSED:
            flags.append((FLAG_MISSED, f"{duty.name} ({duty.rule}) was due by "
                                       f"{duty.due.isoformat() if duty.due else '-'}"))
    return {rid: Change(action="deadline", duties=tuple(d), events=tuple(e), flags=tuple(f))
            for rid, (d, e, f) in out.items()}


def transfer_window(pupil: Pupil, transfer_deadline: date, as_of: date,
                    policy: Policy = DEFAULT_POLICY) -> tuple[date, date, str] | None:
    """The good-practice window for a phase transfer review: (first day, last day, in words),
    e.g. the summer term of Year 5 for a move to secondary school. ``pupil.nc_year`` is the
    pupil's year in the academic year containing ``as_of``."""
    if pupil.nc_year is None:
        return None
    transfer_year = pupil.nc_year + (timeline.academic_year_end(transfer_deadline)
                                     - timeline.academic_year_end(as_of))
    for window in policy.transfer_windows:
        if window.transfer_year != transfer_year:
            continue
        year_end = timeline.academic_year_end(transfer_deadline) - (
            window.transfer_year - window.nc_year)
        (fm, fd), (lm, ld), in_second_half = _TERMS[window.term]
        year = year_end if in_second_half else year_end - 1
        return (date(year, fm, fd), date(year, lm, ld),
                f"the {window.term} term of Year {window.nc_year}")
    return None
