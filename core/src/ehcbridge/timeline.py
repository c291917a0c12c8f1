"""The statutory clock: pure functions from a plan (and optionally a meeting) to dated milestones.

Nothing here reads the system clock, a file or a database: "today" is always a parameter
(``as_of``). Statutory periods are calendar periods, so dates are never moved off weekends or
holidays; such dates carry a warning instead. See docs/timeline.md for every rule and its source.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from functools import lru_cache

from pydantic import field_validator

from ehcbridge.models import LONDON, Decision, Frozen, Milestone, Outcome, Plan, Pupil

STATUTORY = "statutory"
GOOD_PRACTICE = "good_practice"

RULE_REVIEW = "CFA 2014 s44(1)"
RULE_DECISION = "SEND Regs 2014 reg 20(10)"
RULE_NOTICE = "SEND Regs 2014 reg 20(3)"
RULE_ADVICE = "SEND Regs 2014 reg 20(4)"
RULE_REPORT = "SEND Regs 2014 reg 20(7)"
RULE_REPRESENTATIONS = "SEND Regs 2014 reg 22(2)"
RULE_FINAL_PLAN = "SEND Regs 2014 reg 22(3)"
# The same 8 weeks when, after representations, the LA decides not to make the amendments.
RULE_NOT_AMENDED = "SEND Regs 2014 reg 22(4)"
RULE_TRANSFER_SCHOOL = "SEND Regs 2014 reg 18(1)(b)"
RULE_TRANSFER_POST16 = "SEND Regs 2014 reg 18(1)(a)"
RULE_TRANSFER_POST16_MOVE = "SEND Regs 2014 reg 18(2)"
RULE_TRANSFER_OVERRIDE = "SEND Regs 2014 reg 18 (date set for this pupil)"
# Reg 21: the same steps when the child or young person attends no school or other institution
# and the LA arranges the review (notice 21(3), advice 21(4), report 21(7)).
REG21 = {
    RULE_NOTICE: "SEND Regs 2014 reg 21(3)",
    RULE_ADVICE: "SEND Regs 2014 reg 21(4)",
    RULE_REPORT: "SEND Regs 2014 reg 21(7)",
    RULE_DECISION: "SEND Regs 2014 reg 21",
}
RULE_UNDER_FIVE = "SEND Code of Practice 9.178"
RULE_GUIDANCE = "Council guidance"

# NC year a pupil is in when they transfer at the end of it -> (month, day, rule) of the deadline.
_SCHOOL_TRANSFER = (2, 15, RULE_TRANSFER_SCHOOL)
_POST16_TRANSFER = (3, 31, RULE_TRANSFER_POST16)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ClockOptions(Frozen):
    """Local settings of the clock: school holidays, infant schools and per-pupil overrides."""

    school_holidays: tuple[tuple[date, date], ...] = ()
    """Inclusive (first day, last day) ranges when the setting is closed."""
    infant_school: bool = False
    """The pupil is at an infant school, so Year 2 -> Year 3 is a phase transfer (15 Feb)."""
    transfer_deadline: date | None = None
    """A phase transfer deadline set for this pupil; replaces the one derived from the NC year."""
    phase_transfer_years: tuple[int, ...] = ()
    """Extra NC years ending in a school phase transfer (three-tier areas: e.g. 4 and 8)."""

    @field_validator("school_holidays")
    @classmethod
    def _ranges_in_order(
        cls, value: tuple[tuple[date, date], ...]
    ) -> tuple[tuple[date, date], ...]:
        for index, (first, last) in enumerate(value):
            if last < first:
                raise ValueError(
                    f"school_holidays[{index}]: last day {last.isoformat()} is before "
                    f"first day {first.isoformat()}"
                )
        return tuple(sorted(value))


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, clamped to the month's last day (29 Feb -> 28 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if day.day <= 28:
        return date(year, month, day.day)
    last = 29 if month == 2 and calendar.isleap(year) else _MONTH_DAYS[month - 1]
    return date(year, month, min(day.day, last))


def review_period_start(plan: Plan) -> date:
    """First day of the current 12-month review period: last review decision, else issue date."""
    return plan.last_review_decision or plan.issued_on


def annual_review_due(plan: Plan) -> date:
    """Last day of the 12-month period of s44(1), ignoring any phase transfer."""
    return add_months(review_period_start(plan), 12) - timedelta(days=1)


def academic_year_end(day: date) -> int:
    """Calendar year in which the academic year (1 Sep - 31 Aug) containing ``day`` ends."""
    return day.year + 1 if day.month >= 9 else day.year


@lru_cache(maxsize=64)
def _transfer_years(
    infant_school: bool, extra_years: tuple[int, ...]
) -> tuple[tuple[int, tuple[int, int, str]], ...]:
    years: dict[int, tuple[int, int, str]] = {6: _SCHOOL_TRANSFER, 11: _POST16_TRANSFER}
    if infant_school:
        years[2] = _SCHOOL_TRANSFER
    for year in extra_years:
        years.setdefault(year, _SCHOOL_TRANSFER)
    return tuple(years.items())


POST16_MOVE_MONTHS = 5


def post16_move_deadline(move: date) -> date:
    """The last day to review and amend the plan of a young person moving between post-16
    institutions on ``move``: at least 5 months before it (reg 18(2))."""
    return add_months(move, -POST16_MOVE_MONTHS)


def post16_move_problem(move: date, nc_year: int | None, period_start: date) -> str | None:
    """Why ``move`` cannot be a reg 18(2) move for this pupil and plan, or None: the rule
    covers moves between post-16 institutions, still to come in the current review period."""
    if nc_year is not None and nc_year < 12:
        return (f"reg 18(2) covers a move between post-16 institutions; the pupil is in Year "
                f"{nc_year} (a move at the end of Year 11 has its 31 March deadline already)")
    if move <= period_start:
        return (f"the move on {move.isoformat()} is not after the plan's current review period "
                "began")
    return None


def _phase_transfer(
    pupil: Pupil | None, options: ClockOptions, as_of: date, start: date, annual_due: date,
    post16_move: date | None = None,
) -> tuple[date, str] | None:
    """The phase transfer deadline relevant to this review period, with its rule."""
    if options.transfer_deadline is not None:
        return options.transfer_deadline, RULE_TRANSFER_OVERRIDE
    if post16_move is not None and post16_move_deadline(post16_move) >= start:
        # A move still to be prepared for in this period; one whose deadline came before the
        # period started was the last review's business.
        return post16_move_deadline(post16_move), RULE_TRANSFER_POST16_MOVE
    if pupil is None or pupil.nc_year is None:
        return None
    # nc_year is the pupil's year in the academic year containing as_of; a year later they are in
    # nc_year + 1, so a transfer at the end of Year Y is (Y - nc_year) academic years away.
    anchor_end = academic_year_end(as_of)
    candidates: list[tuple[date, str]] = []
    for year, (month, day, rule) in _transfer_years(
        options.infant_school, options.phase_transfer_years
    ):
        offset = year - pupil.nc_year
        if -20 <= offset <= 20:
            candidates.append((date(anchor_end + offset, month, day), rule))
    # A deadline before the period started belongs to a transfer that has already happened. One
    # falling before the next review would be due (or in the as_of academic year) must be planned
    # for in this review.
    horizon = max(add_months(annual_due, 12), date(anchor_end, 8, 31))
    upcoming = sorted(c for c in candidates if start <= c[0] <= horizon)
    return upcoming[0] if upcoming else None


def _due(
    plan: Plan, pupil: Pupil | None, options: ClockOptions, as_of: date | None
) -> tuple[date, tuple[date, str] | None]:
    start = review_period_start(plan)
    annual = add_months(start, 12) - timedelta(days=1)
    transfer = _phase_transfer(pupil, options, as_of or start, start, annual, plan.post16_move)
    if transfer is not None and start <= transfer[0] < annual:
        return transfer[0], transfer
    return annual, transfer


_DEFAULT_OPTIONS = ClockOptions()


def review_due(
    plan: Plan,
    pupil: Pupil | None = None,
    options: ClockOptions | None = None,
    as_of: date | None = None,
) -> date:
    """Date the review must be decided by (s44(1)), or an earlier phase transfer deadline."""
    return _due(plan, pupil, options or _DEFAULT_OPTIONS, as_of)[0]


def preparing_for_adulthood(pupil: Pupil, on: date | None = None,
                            as_of: date | None = None) -> bool:
    """True from Year 9: the review must cover preparing for adulthood (reg 20(6)); with
    ``on`` and ``as_of``, for a review on ``on`` of a pupil whose NC year is read as of
    ``as_of`` (a year on for each September between)."""
    if pupil.nc_year is None:
        return False
    ahead = academic_year_end(on) - academic_year_end(as_of) if on and as_of else 0
    return pupil.nc_year + ahead >= 9


@lru_cache(maxsize=256)
def bank_holidays(year: int) -> dict[date, str]:
    """England's bank holidays in ``year`` (name by date), built once per year."""
    import holidays  # slow to import (~0.3 s): only when a date is first checked

    return dict(holidays.country_holidays("GB", subdiv="ENG", years=year).items())


def in_school_holiday(day: date, options: ClockOptions | None = None) -> bool:
    """True when ``day`` is inside one of the configured school holiday ranges."""
    if options is None:
        return False
    return any(first <= day <= last for first, last in options.school_holidays)


def date_warnings(day: date, options: ClockOptions | None = None) -> tuple[str, ...]:
    """Why ``day`` is not a normal school day: weekend, bank holiday, school holiday."""
    found: list[str] = []
    weekday = day.weekday()
    if weekday >= 5:
        found.append(f"falls on a {_DAY_NAMES[weekday]}")
    holiday = bank_holidays(day.year).get(day)
    if holiday:
        found.append(f"falls on a bank holiday: {holiday}")
    if in_school_holiday(day, options):
        found.append("falls in a school holiday")
    return tuple(found)


def is_school_day(day: date, options: ClockOptions | None = None) -> bool:
    """True on a weekday that is neither an England bank holiday nor a configured school holiday."""
    return (
        day.weekday() < 5
        and day not in bank_holidays(day.year)
        and not in_school_holiday(day, options)
    )


def _meeting_day(meeting_start: datetime | date) -> date:
    if isinstance(meeting_start, datetime):
        if meeting_start.tzinfo is not None:
            return meeting_start.astimezone(LONDON).date()
        return meeting_start.date()
    return meeting_start


def _under_five(dob: date, on: date) -> bool:
    # Tuple order makes a 29 Feb birthday's fifth birthday 1 March in a common year.
    return (on.year, on.month, on.day) < (dob.year + 5, dob.month, dob.day)


# A phase transfer review must leave room for the decision (4 weeks) and then the amendment of
# the plan naming the new setting (8 weeks from the proposed amendments, reg 22) before reg 18's
# deadline; an ordinary review only for the decision.
DECISION_WEEKS = 4
AMENDMENT_WEEKS = 8


def decision_latest(due: date, transfer: bool) -> date:
    """The last day the LA's decision can be made: the review due date, or for a phase transfer
    the deadline less the 8 weeks the final amended plan may take."""
    return due - timedelta(weeks=AMENDMENT_WEEKS) if transfer else due


def meeting_latest(due: date, transfer: bool) -> date:
    """The last day the review meeting can be held: 4 weeks before the decision is due."""
    return decision_latest(due, transfer) - timedelta(weeks=DECISION_WEEKS)


def is_phase_transfer(
    plan: Plan, pupil: Pupil | None, options: ClockOptions | None = None,
    as_of: date | None = None,
) -> bool:
    """True when the review of ``plan`` is due by a phase transfer deadline (reg 18)."""
    due, transfer = _due(plan, pupil, options or _DEFAULT_OPTIONS, as_of)
    return transfer is not None and transfer[0] == due


def milestones(
    plan: Plan,
    *,
    meeting_start: datetime | date | None = None,
    pupil: Pupil | None = None,
    decision: Decision | None = None,
    options: ClockOptions | None = None,
    as_of: date | None = None,
    review_due: date | None = None,
    amendments_proposed_on: date | None = None,
) -> list[Milestone]:
    """Every milestone of the current review period, sorted by date then name.

    ``review_due`` is the due date the review was opened with, when it is already known (after a
    phase transfer review the next one is due 12 months after its decision, not by the deadline
    it satisfied). ``amendments_proposed_on`` dates the 15 days and 8 weeks of reg 22 from the
    proposed amendments instead of from the decision.
    """
    opts = options or _DEFAULT_OPTIONS
    start = review_period_start(plan)
    due, transfer = _due(plan, pupil, opts, as_of)
    if review_due is not None:
        due = review_due
        if transfer is not None and transfer[0] < due:
            transfer = None  # already satisfied by the review that opened this one
    transferring = transfer is not None and transfer[0] == due
    rows: list[tuple[str, date, str, str, tuple[str, ...]]] = [
        ("review_due", due, STATUTORY, RULE_REVIEW, ()),
        ("meeting_latest", meeting_latest(due, transferring), STATUTORY, RULE_DECISION, ()),
    ]
    meeting = _meeting_day(meeting_start) if meeting_start is not None else None
    if meeting is not None:
        decision_due = min(meeting + timedelta(weeks=DECISION_WEEKS),
                           decision_latest(due, transferring))
        late = ("the meeting is after the review due date",) if decision_due < meeting else ()
        rows += [
            ("invites_good_practice", meeting - timedelta(weeks=16), GOOD_PRACTICE,
             RULE_GUIDANCE, ()),
            ("views_request", meeting - timedelta(weeks=6), GOOD_PRACTICE, RULE_GUIDANCE, ()),
            ("invites_statutory", meeting - timedelta(weeks=2), STATUTORY, RULE_NOTICE, ()),
            ("views_due", meeting - timedelta(weeks=2), STATUTORY, RULE_ADVICE, ()),
            ("reminder", meeting - timedelta(weeks=2), GOOD_PRACTICE, RULE_GUIDANCE, ()),
            ("report_due", meeting + timedelta(weeks=2), STATUTORY, RULE_REPORT, ()),
            ("decision_due", decision_due, STATUTORY, RULE_DECISION, late),
        ]
    if decision is not None and decision.outcome == Outcome.AMEND:
        decided = amendments_proposed_on or decision.decided_on
        rows += [
            ("representations_due", decided + timedelta(days=15), STATUTORY,
             RULE_REPRESENTATIONS, ()),
            ("final_amended_plan_due", decided + timedelta(weeks=AMENDMENT_WEEKS), STATUTORY,
             RULE_FINAL_PLAN, ()),
        ]
    if transfer is not None:
        rows.append(("phase_transfer_deadline", transfer[0], STATUTORY, transfer[1], ()))
    if pupil is not None and pupil.dob is not None:
        checked_on = meeting or as_of or start
        if _under_five(pupil.dob, checked_on):
            base = meeting or start
            rows += [
                ("under_five_interim_3m", add_months(base, 3), GOOD_PRACTICE, RULE_UNDER_FIVE, ()),
                ("under_five_interim_6m", add_months(base, 6), GOOD_PRACTICE, RULE_UNDER_FIVE, ()),
            ]
    if plan.no_setting:
        rows = [(name, day, kind, REG21.get(rule, rule), extra)
                for name, day, kind, rule, extra in rows]
    rows.sort(key=lambda row: (row[1], row[0]))
    made = _made_for(opts)
    result: list[Milestone] = []
    for name, day, kind, rule, extra in rows:
        key = (name, day, rule, extra)
        milestone = made.get(key)
        if milestone is None:
            milestone = Milestone(name=name, date=day, kind=kind, rule=rule,
                                  warnings=extra + date_warnings(day, opts))
            made[key] = milestone
        result.append(milestone)
    return result


# Milestones are immutable, and a caseload of thousands of plans shares a few hundred dates, so
# identical ones are built (validated, with their warnings) once per set of school holidays.
_MADE: dict[tuple[tuple[date, date], ...], dict[tuple[str, date, str, tuple[str, ...]], Milestone]]
_MADE = {}
_MADE_LIMIT = 100_000


def _made_for(
    options: ClockOptions,
) -> dict[tuple[str, date, str, tuple[str, ...]], Milestone]:
    made = _MADE.get(options.school_holidays)
    if made is None or len(made) > _MADE_LIMIT:
        if len(_MADE) > 64:
            _MADE.clear()
        made = _MADE[options.school_holidays] = {}
    return made


def compulsory_school_age_ends(dob: date) -> date:
    """The last day of compulsory school age: the last Friday in June of the school year in
    which the child turns 16 (Education Act 1996 s8; the Education (Start of Compulsory School
    Age) Order 1998 and the leaving date order)."""
    # A birthday from 1 September falls in the school year ending the following summer.
    year = dob.year + 16 + (1 if dob.month >= 9 else 0)
    day = date(year, 6, 30)
    return day - timedelta(days=(day.weekday() - 4) % 7)


def over_compulsory_school_age(pupil: Pupil, on: date) -> bool:
    """True once the pupil is a young person over compulsory school age (SEND Code 8.13): from
    then on notices go to them rather than their parents. Without a date of birth, Year 12 on."""
    if pupil.dob is not None:
        return on > compulsory_school_age_ends(pupil.dob)
    return pupil.nc_year is not None and pupil.nc_year >= 12

def milestones_json(items: list[Milestone]) -> list[dict[str, object]]:
    """The JSON shape ``ehcbridge timeline --json`` prints: name, ISO date, kind, rule, warnings."""
    return [
        {"name": m.name, "date": m.date.isoformat(), "kind": m.kind, "rule": m.rule,
         "warnings": list(m.warnings)}
        for m in items
    ]


__all__ = [
    "GOOD_PRACTICE",
    "STATUTORY",
    "ClockOptions",
    "academic_year_end",
    "add_months",
    "annual_review_due",
    "bank_holidays",
    "compulsory_school_age_ends",
    "date_warnings",
    "decision_latest",
    "in_school_holiday",
    "is_phase_transfer",
    "is_school_day",
    "meeting_latest",
    "milestones",
    "milestones_json",
    "over_compulsory_school_age",
    "preparing_for_adulthood",
    "review_due",
    "review_period_start",
]
