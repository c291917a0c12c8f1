"""What the dashboard shows, as plain data: reads the store, decides nothing, draws nothing.

Kept apart from the pages so the figures can be rewired to ``ehcbridge report kpis`` later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ehcbridge.models import Duty, DutyStatus

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.lifecycle import Named
    from ehcbridge.store import DutyFact

D = TypeVar("D", bound="Named")
ATTENTION = (DutyStatus.AT_RISK, DutyStatus.MISSED)
OPEN = (DutyStatus.PENDING, DutyStatus.AT_RISK)


@dataclass(frozen=True)
class AttentionRow:
    """A duty at risk or missed, with where and whose it is."""

    case_id: str
    initials: str
    school_urn: str
    duty: Duty


def term_bounds(today: date) -> tuple[date, date]:
    """The school term containing ``today``: autumn Sep-Dec, spring Jan-Mar, summer Apr-Aug."""
    if today.month >= 9:
        return date(today.year, 9, 1), date(today.year, 12, 31)
    if today.month <= 3:
        return date(today.year, 1, 1), date(today.year, 3, 31)
    return date(today.year, 4, 1), date(today.year, 8, 31)


def acting(app: App, statuses: tuple[DutyStatus, ...],
           reviews: list[dict[str, Any]] | None = None) -> list[tuple[str, int, Duty]]:
    """(case, review, duty) of these statuses still calling for action (see
    ``lifecycle.to_act_on``): what an earlier review missed is history, not counted again.
    ``reviews``: the current reviews as ``list_reviews`` gives them, when the caller has them."""
    return _still_open(app, app.store.duty_rows(statuses=[s.value for s in statuses]), reviews)


def acting_facts(app: App, statuses: tuple[DutyStatus, ...]) -> list[DutyFact]:
    """:func:`acting`, as the store's light rows (name, status, due): for counting a whole
    caseload's duties without reading each in full."""
    return [f for _c, _r, f in _still_open(app, app.store.duty_facts([s.value
                                                                      for s in statuses]))]


def _still_open(app: App, rows: list[tuple[str, int, D]],
                reviews: list[dict[str, Any]] | None = None) -> list[tuple[str, int, D]]:
    from ehcbridge.lifecycle import to_act_on

    # The current review of only the cases these duties belong to, unless the caller has them.
    current = ({r["case_id"]: r["review_id"] for r in reviews} if reviews is not None
               else app.store.current_review_ids({case_id for case_id, _r, _d in rows}))
    return to_act_on(rows, current)


def after_decision(app: App, case_id: str, current_review: int | None) -> list[Duty]:
    """The duties that follow the decision of the review decided before the current one (the
    amendments, the final plan, a transfer's plan), while any of them is still open: the
    review page shows them beside the current review's and records them."""
    rows = [(c, r, d) for c, r, d in _still_open(app, app.store.duty_rows(case_ids=[case_id]))
            if r != current_review]
    from ehcbridge.lifecycle import SPEC

    duties = [d for _c, _r, d in rows]
    # A period to allow (the 15 days) is nothing to do, even when it was cut short.
    still = any(d.met_on is None and d.status != DutyStatus.NOT_APPLICABLE
                and not SPEC[d.name].window for d in duties)
    return duties if still else []


def attention(app: App) -> list[AttentionRow]:
    """Duties at risk or missed, by school then due date."""
    reviews = app.store.list_reviews(open_only=False)
    rows = acting(app, ATTENTION, reviews)
    from ehcbridge.lists import NO_SETTING_NAME

    schools = {r["case_id"]: NO_SETTING_NAME if r["no_setting"] else r["school_urn"] or ""
               for r in reviews}
    pupils = app.store.pupils_of(case_id for case_id, _r, _d in rows)
    out = [AttentionRow(case_id, pupils[case_id].initials, schools.get(case_id, ""), duty)
           for case_id, _review_id, duty in rows]
    return sorted(out, key=lambda r: (r.school_urn, r.duty.due or date.max, r.case_id))


def due_counts(app: App, today: date) -> dict[str, int]:
    """Open duties due this week (Monday to Sunday) and this term: the current reviews', counted
    in SQL, and those still open after the decision before them (see ``lifecycle.to_act_on``)."""
    from ehcbridge.lifecycle import AFTER_DECISION, to_act_on

    week_start = today - timedelta(days=today.weekday())
    windows = [(week_start, week_start + timedelta(days=6)), term_bounds(today)]
    statuses = [s.value for s in OPEN]
    counts = app.store.current_duties_due(statuses, windows)
    for _c, _r, duty in to_act_on(app.store.duty_facts(statuses, current=False,
                                                       names=AFTER_DECISION), {}):
        for n, (first, last) in enumerate(windows):
            counts[n] += duty.due is not None and first <= duty.due <= last
    return {"week": counts[0], "term": counts[1]}


def figures(app: App) -> dict[str, Any]:
    """Annual-review figures from the duties: counts by duty and status, and totals."""
    by_duty: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for (name, status), n in app.store.duty_counts().items():
        by_duty.setdefault(name, Counter())[status] += n
        totals[status] += n
    done = totals["met"] + totals["late"]
    return {
        "by_duty": {name: dict(c) for name, c in sorted(by_duty.items())},
        "totals": dict(totals),
        "on_time_percent": round(100 * totals["met"] / done) if done else None,
        "reviews": len(app.store.list_reviews(open_only=False)),
    }


def last_tick(app: App, started: dict[str, datetime]) -> datetime | None:
    """When the engine last finished a pass: what it records in the store (``_engine`` /
    ``last_tick``, issue 17), else what this process's ``--with-engine`` thread noted."""
    value: Any = app.store.get_state("_engine", "last_tick")
    if isinstance(value, dict):
        value = value.get("at")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return started.get("last_tick")
