"""What the dashboard shows, as plain data: reads the store, decides nothing, draws nothing.

Kept apart from the pages so the figures can be rewired to ``ehcbridge report kpis`` later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ehcbridge.models import Duty, DutyStatus

if TYPE_CHECKING:
    from ehcbridge.app import App

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
    ``lifecycle.to_act_on``): what an earlier review missed is history, not counted again."""
    from ehcbridge.lifecycle import to_act_on

    reviews = app.store.list_reviews(open_only=False) if reviews is None else reviews
    return to_act_on(app.store.duty_rows(statuses=[s.value for s in statuses]),
                     {r["case_id"]: r["review_id"] for r in reviews})


def attention(app: App) -> list[AttentionRow]:
    """Duties at risk or missed, by school then due date."""
    reviews = app.store.list_reviews(open_only=False)
    rows = acting(app, ATTENTION, reviews)
    schools = {r["case_id"]: r["school_urn"] or "" for r in reviews}
    initials: dict[str, str] = {}
    out = []
    for case_id, _review_id, duty in rows:
        if case_id not in initials:
            initials[case_id] = app.store.case(case_id).pupil.initials
        out.append(AttentionRow(case_id, initials[case_id], schools.get(case_id, ""), duty))
    return sorted(out, key=lambda r: (r.school_urn, r.duty.due or date.max, r.case_id))


def due_counts(app: App, today: date) -> dict[str, int]:
    """Open duties due this week (Monday to Sunday) and this term."""
    week_start = today - timedelta(days=today.weekday())
    week_end = week_start + timedelta(days=6)
    term_start, term_end = term_bounds(today)
    week = term = 0
    for _case, _rid, duty in acting(app, OPEN):
        if duty.due is None:
            continue
        week += week_start <= duty.due <= week_end
        term += term_start <= duty.due <= term_end
    return {"week": week, "term": term}


def figures(app: App) -> dict[str, Any]:
    """Annual-review figures from the duties: counts by duty and status, and totals."""
    by_duty: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for _case, _rid, duty in app.store.duty_rows():
        by_duty.setdefault(duty.name, Counter())[duty.status.value] += 1
        totals[duty.status.value] += 1
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
