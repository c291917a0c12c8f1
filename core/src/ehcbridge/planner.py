"""The meeting planner: propose a review meeting date for each plan, explained, with no I/O.

Rules (docs/planner.md): a meeting goes on a school day between today + the statutory two
weeks' notice (reg 20(3)) and the plan's latest meeting date (review due - 4 weeks, reg 20(10)),
never on a blocked date, with at most ``max_meetings_per_day`` per coordinator. A preferred date
(e.g. a looked-after child's review) inside the window wins, or the nearest free school day next
to it; otherwise the latest free school day on or before the deadline. Tightest deadlines are
served first so the late ones are not starved. The result is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import Field, model_validator

from ehcbridge.events import DateConstraint
from ehcbridge.models import LONDON, Frozen
from ehcbridge.timeline import ClockOptions, date_warnings, is_school_day

# Meetings already in diaries per (coordinator: str | None, day). Any, because Mapping keys are
# invariant and callers' dicts are typed dict[tuple[str, date], int] or with None keys.
Booked = Mapping[tuple[Any, date], int]


class PlannerOptions(Frozen):
    """How meetings are packed into coordinators' days."""

    max_meetings_per_day: int = Field(default=3, ge=1)
    """Most review meetings one coordinator holds on a day, counting ones already booked."""
    school_holidays: tuple[tuple[date, date], ...] = ()
    """Inclusive (first day, last day) ranges with no meetings (same shape as ClockOptions)."""
    start_time: time = time(9, 30)
    """Start of a coordinator's first meeting of the day (Europe/London)."""
    meeting_minutes: int = Field(default=60, ge=5)
    """Length of a meeting."""
    slot_gap_minutes: int = Field(default=15, ge=0)
    """Gap between one meeting's end and the next one's start."""
    notice_days: int = Field(default=14, ge=14)
    """Days of notice before the meeting; at least two weeks by reg 20(3)."""
    align_within_days: int = Field(default=3, ge=0)
    """How far from a preferred date a meeting may move and still count as aligned with it."""

    @model_validator(mode="after")
    def _check(self) -> PlannerOptions:
        ClockOptions(school_holidays=self.school_holidays)  # same range checks as the clock
        first = datetime.combine(date(2000, 1, 3), self.start_time)
        step = timedelta(minutes=self.meeting_minutes + self.slot_gap_minutes)
        last_end = first + step * (self.max_meetings_per_day - 1) + timedelta(
            minutes=self.meeting_minutes
        )
        if last_end.date() != first.date():
            raise ValueError(
                f"max_meetings_per_day={self.max_meetings_per_day} meetings of "
                f"{self.meeting_minutes} minutes from {self.start_time:%H:%M} run past midnight"
            )
        return self

    def clock_options(self) -> ClockOptions:
        """The clock options (school holidays) used to decide what a school day is."""
        return ClockOptions(school_holidays=self.school_holidays)


@dataclass(frozen=True)
class PlanningItem:
    """A review that needs a meeting: its deadline and the dates other services prefer or block."""

    case_id: str
    coordinator: str | None
    review_due: date
    meeting_latest: date
    constraints: tuple[DateConstraint, ...] = ()
    aim: tuple[date, date, str] | None = None
    """A good-practice window to aim inside (first day, last day, in words), e.g. the summer
    term of Year 5 for a phase transfer review; the deadline still bounds it."""


@dataclass(frozen=True)
class Proposal:
    """A proposed meeting; ``reason`` explains the choice of day in plain words."""

    case_id: str
    start: datetime
    end: datetime
    reason: str
    aligned_with: str | None = None
    coordinator: str | None = None


@dataclass(frozen=True)
class Overdue:
    """A review whose meeting window has closed: two weeks' notice can no longer be given in time.

    ``days_overdue`` counts days since ``meeting_latest`` (0 when it is today or still ahead).
    """

    case_id: str
    meeting_latest: date
    days_overdue: int
    reason: str = ""


@dataclass(frozen=True)
class Unplanned:
    """A review whose window is open but has no usable day (blocked, full or not a school day)."""

    case_id: str
    meeting_latest: date
    reason: str


@dataclass(frozen=True)
class PlanResult:
    """Proposals (by start time), overdue reviews (most overdue first) and unplannable ones."""

    proposals: list[Proposal] = field(default_factory=list)
    overdue: list[Overdue] = field(default_factory=list)
    unplanned: list[Unplanned] = field(default_factory=list)


def format_day(day: date) -> str:
    """A date as people read it in reasons: ``12 Mar 2027``."""
    return f"{day.day} {day:%b %Y}"


def _as_date(value: object, case_id: str, reason: str) -> date:
    if isinstance(value, datetime):
        return value.astimezone(LONDON).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    raise ValueError(f"case {case_id}: constraint {reason!r} has day {value!r}, not a date")


class _Diary:
    """Meeting counts per (coordinator, day) plus a skip structure over unusable days.

    ``_skip[coordinator][d] = e`` (e < d) records that no day in (e, d] is usable for that
    coordinator; days only ever become unusable, so this union-find stays valid and finding
    the latest usable day is near constant time even with thousands of full days.
    """

    def __init__(self, options: PlannerOptions, booked: Booked):
        self.limit = options.max_meetings_per_day
        self.clock = options.clock_options()
        self.load: dict[tuple[str | None, int], int] = {}
        for (who, day), count in booked.items():
            key = (who, day.toordinal())
            self.load[key] = self.load.get(key, 0) + count
        self._school: dict[int, bool] = {}
        self._skip: dict[str | None, dict[int, int]] = {}

    def school_day(self, ordinal: int) -> bool:
        known = self._school.get(ordinal)
        if known is None:
            known = is_school_day(date.fromordinal(ordinal), self.clock)
            self._school[ordinal] = known
        return known

    def usable(self, who: str | None, ordinal: int) -> bool:
        return self.school_day(ordinal) and self.load.get((who, ordinal), 0) < self.limit

    def latest_usable(self, who: str | None, ordinal: int, lowest: int) -> int | None:
        """The latest usable day at or before ``ordinal`` and not before ``lowest``."""
        skip = self._skip.setdefault(who, {})
        path: list[int] = []
        day = ordinal
        while day >= lowest:
            below = skip.get(day)
            if below is None:
                if self.usable(who, day):
                    break
                below = day - 1
            path.append(day)
            day = below
        for visited in path:
            skip[visited] = day
        return day if day >= lowest else None

    def book(self, who: str | None, ordinal: int) -> int:
        """Add a meeting; returns its slot number that day (0 = first)."""
        key = (who, ordinal)
        slot = self.load.get(key, 0)
        self.load[key] = slot + 1
        if slot + 1 >= self.limit:
            self._skip.setdefault(who, {})[ordinal] = ordinal - 1
        return slot

    def why_not(self, who: str | None, ordinal: int, blocked: Mapping[int, str]) -> str:
        """Why a day cannot take this meeting, for reasons."""
        day = date.fromordinal(ordinal)
        if ordinal in blocked:
            return f"{format_day(day)} is blocked: {blocked[ordinal]}"
        warnings = date_warnings(day, self.clock)
        if warnings:
            return f"{format_day(day)} {warnings[0]}"
        plural = "meeting" if self.limit == 1 else "meetings"
        return f"the coordinator already has {self.limit} {plural} on {format_day(day)}"


def _offsets(reach: int) -> Iterable[int]:
    yield 0
    for distance in range(1, reach + 1):
        yield -distance  # the day before first: it keeps more time before the deadline
        yield distance


def _neighbour_words(offset: int) -> str:
    if offset == -1:
        return "the day before"
    if offset == 1:
        return "the day after"
    return f"{abs(offset)} days {'before' if offset < 0 else 'after'}"


def _preferred_days(item: PlanningItem) -> set[int]:
    return {_as_date(c.day, item.case_id, c.reason).toordinal() for c in item.constraints
            if c.weight > 0 and not c.blocked}


def _latest_free(diary: _Diary, who: str | None, hi: int, lo: int, blocked: dict[int, str],
                 sought: Counter[tuple[str | None, int]]) -> int | None:
    """The latest usable day in [lo, hi], not blocked, leaving enough room on days that
    reviews still to be planned prefer."""
    day = diary.latest_usable(who, hi, lo)
    while day is not None and (day in blocked or (
            sought[(who, day)] > 0
            and diary.limit - diary.load.get((who, day), 0) <= sought[(who, day)])):
        day = diary.latest_usable(who, day - 1, lo)
    return day


def propose(
    items: Iterable[PlanningItem],
    *,
    today: date,
    options: PlannerOptions | None = None,
    booked: Booked | None = None,
    window_from: date | None = None,
    window_to: date | None = None,
) -> PlanResult:
    """Propose one meeting per item; report closed windows as overdue and dead ends as unplanned.

    ``booked`` counts meetings already in each (coordinator, day); items without a coordinator
    share one diary under ``None``. ``window_from``/``window_to`` narrow the days meetings may be
    placed on (e.g. one term). Raises ValueError on duplicate case ids or non-date constraints.
    """
    opts = options or PlannerOptions()
    diary = _Diary(opts, booked or {})
    earliest_lawful = today + timedelta(days=opts.notice_days)
    low = max(earliest_lawful, window_from) if window_from else earliest_lawful
    step = timedelta(minutes=opts.meeting_minutes + opts.slot_gap_minutes)
    length = timedelta(minutes=opts.meeting_minutes)

    ordered = sorted(items, key=lambda item: (item.meeting_latest, item.case_id))
    seen: set[str] = set()
    for item in ordered:
        if item.case_id in seen:
            raise ValueError(f"case {item.case_id} appears more than once in the planning list")
        seen.add(item.case_id)

    # Days other reviews would like (a family's social care review): a review with no
    # preference of its own leaves them free while it has any other day.
    sought: Counter[tuple[str | None, int]] = Counter()
    for item in ordered:
        for ordinal in _preferred_days(item):
            sought[(item.coordinator, ordinal)] += 1

    proposals: list[Proposal] = []
    overdue: list[Overdue] = []
    unplanned: list[Unplanned] = []
    for item in ordered:
        for ordinal in _preferred_days(item):
            sought[(item.coordinator, ordinal)] -= 1
        latest = item.meeting_latest
        if latest < earliest_lawful:
            overdue.append(Overdue(
                case_id=item.case_id, meeting_latest=latest,
                days_overdue=max(0, (today - latest).days),
                reason=(f"the latest meeting date {latest.isoformat()} is before the earliest "
                        f"date with {opts.notice_days} days' notice, "
                        f"{earliest_lawful.isoformat()}"),
            ))
            continue
        high = min(latest, window_to) if window_to else latest
        who = item.coordinator
        if high < low:
            why = f"its latest meeting date {latest.isoformat()} is before the planning window"
            if window_to and window_to < low:
                why = f"the planning window ends {window_to.isoformat()}, before {low.isoformat()}"
            unplanned.append(Unplanned(item.case_id, latest, why))
            continue
        lo, hi = low.toordinal(), high.toordinal()
        blocked: dict[int, str] = {}
        preferred: list[tuple[float, int, str]] = []
        for constraint in item.constraints:
            ordinal = _as_date(constraint.day, item.case_id, constraint.reason).toordinal()
            if constraint.blocked:
                blocked.setdefault(ordinal, constraint.reason)
            elif constraint.weight > 0 and lo <= ordinal <= hi:
                preferred.append((-constraint.weight, ordinal, constraint.reason))
        preferred.sort()

        chosen: int | None = None
        reason = ""
        aligned: str | None = None
        for _, wanted, what in preferred:
            for offset in _offsets(opts.align_within_days):
                day = wanted + offset
                if lo <= day <= hi and day not in blocked and diary.usable(who, day):
                    chosen, aligned = day, what
                    when = format_day(date.fromordinal(wanted))
                    # A constraint's reason may already say when ("CLA review on 12 Mar 2027").
                    on = what if when in what else f"{what} on {when}"
                    reason = (f"aligned with {on}" if offset == 0 else
                              f"{_neighbour_words(offset)} {on} "
                              f"({diary.why_not(who, wanted, blocked)})")
                    break
            if chosen is not None:
                break
        if chosen is None and item.aim is not None:
            aim_lo, aim_hi = max(lo, item.aim[0].toordinal()), min(hi, item.aim[1].toordinal())
            if aim_lo <= aim_hi:
                chosen = _latest_free(diary, who, aim_hi, aim_lo, blocked, sought)
                if chosen is not None:
                    reason = f"inside the good-practice window: {item.aim[2]}"
        if chosen is None:
            day_or_none = _latest_free(diary, who, hi, lo, blocked, sought)
            if day_or_none is None:  # only days others prefer are left: the deadline comes first
                day_or_none = _latest_free(diary, who, hi, lo, blocked, Counter())
            if day_or_none is None:
                unplanned.append(Unplanned(
                    item.case_id, latest,
                    f"no free school day between {low.isoformat()} and {high.isoformat()} "
                    f"for {who or 'the unassigned diary'}"))
                continue
            chosen = day_or_none
            limit_name = "the deadline" if high == latest else "the end of the planning window"
            if chosen == hi:
                reason = f"on {limit_name} {high.isoformat()}, the latest day possible"
            else:
                reason = f"latest free school day before {limit_name} {high.isoformat()}"
            if preferred:
                reason += " (no free school day near the preferred dates)"
        slot = diary.book(who, chosen)
        start = datetime.combine(date.fromordinal(chosen), opts.start_time, tzinfo=LONDON)
        start += step * slot
        proposals.append(Proposal(item.case_id, start, start + length, reason, aligned, who))

    proposals.sort(key=lambda p: (p.start, p.coordinator or "", p.case_id))
    overdue.sort(key=lambda o: (o.meeting_latest, o.case_id))
    unplanned.sort(key=lambda u: (u.meeting_latest, u.case_id))
    return PlanResult(proposals=proposals, overdue=overdue, unplanned=unplanned)


__all__ = [
    "Booked",
    "Overdue",
    "PlanResult",
    "PlannerOptions",
    "PlanningItem",
    "Proposal",
    "Unplanned",
    "format_day",
    "propose",
]
