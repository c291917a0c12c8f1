"""Annual-review figures for the LA: counts and percentages per school and overall.

Each figure that a statutory duty measures is computed from the lifecycle's duty records (so the
figures and ``review show`` can never disagree); the rest from the review's own dates. A duty
counts in the period when its due date falls in it and its outcome is known (met, late or
missed); met is on time. See docs/lists-and-returns.md for every figure and its rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from ehcbridge import lifecycle
from ehcbridge.models import DutyStatus

if TYPE_CHECKING:
    from ehcbridge.store import Store

OVERALL = "all schools"
DONE = (DutyStatus.MET, DutyStatus.LATE, DutyStatus.MISSED)


@dataclass(frozen=True)
class Measure:
    """One figure: what it counts, the rule behind it, and the duty that measures it (if any)."""

    name: str
    label: str
    rule: str
    duty: str | None = None


MEASURES = (
    Measure("reviews_due", "Reviews due in the period", "CFA 2014 s44"),
    Measure("concluded_in_12_months", "Reviews concluded (LA decision) within 12 months",
            "CFA 2014 s44(1)"),
    Measure("decision_in_4_weeks", "Decisions within 4 weeks of the meeting",
            "SEND Regs 2014 reg 20(10)", lifecycle.DECISION_MADE),
    Measure("invitations_2_weeks", "Invitations with at least 2 weeks' notice",
            "SEND Regs 2014 reg 20(3)", lifecycle.INVITATIONS_SENT),
    Measure("advice_circulated", "Advice circulated 2 weeks before the meeting",
            "SEND Regs 2014 reg 20(4)", lifecycle.ADVICE_CIRCULATED),
    Measure("report_in_2_weeks", "Reports sent within 2 weeks of the meeting",
            "SEND Regs 2014 reg 20(7)", lifecycle.REPORT_SENT),
    Measure("amendments_in_8_weeks",
            "Amendments concluded within 8 weeks (final plan, or told they are not made)",
            "SEND Regs 2014 reg 22(3)-(4)", lifecycle.FINAL_PLAN_ISSUED),
    Measure("transfer_by_deadline", "Phase transfers amended by their deadline",
            "SEND Regs 2014 reg 18", lifecycle.PHASE_TRANSFER_FINAL_PLAN),
    Measure("overdue_now", "Reviews overdue now (past due, no decision)", "CFA 2014 s44"),
)


@dataclass
class Figure:
    """A count out of a total; the percentage is None when there is nothing to count."""

    count: int = 0
    total: int = 0

    @property
    def percent(self) -> float | None:
        """The count as a percentage of the total, to one decimal place."""
        return round(100.0 * self.count / self.total, 1) if self.total else None


@dataclass
class Kpis:
    """Figures by school URN (and ``OVERALL``), then by measure name."""

    period: tuple[date, date]
    as_of: date
    schools: dict[str, dict[str, Figure]] = field(default_factory=dict)

    def figure(self, school: str, measure: str) -> Figure:
        """The figure for one school (or OVERALL) and measure, created empty when absent."""
        return self.schools.setdefault(school, {m.name: Figure() for m in MEASURES})[measure]

    def add(self, school: str, measure: str, ok: bool) -> None:
        """Count one case for this school and overall."""
        for key in (school, OVERALL):
            fig = self.figure(key, measure)
            fig.total += 1
            fig.count += int(ok)

    def as_rows(self) -> list[dict[str, Any]]:
        """Flat rows (school, measure, label, count, total, percent): overall first."""
        order = [OVERALL, *sorted(k for k in self.schools if k != OVERALL)]
        rows = []
        for school in order:
            if school not in self.schools:
                continue
            for m in MEASURES:
                fig = self.schools[school][m.name]
                rows.append({"school": school, "measure": m.name, "label": m.label,
                             "rule": m.rule, "count": fig.count, "total": fig.total,
                             "percent": fig.percent})
        return rows


def compute(store: Store, start: date, end: date, as_of: date, *,
            by: str = "school") -> Kpis:
    """The figures for reviews and duties due between ``start`` and ``end`` (inclusive),
    grouped by school URN (``by="school"``) or by the month of the due date (``by="month"``)."""
    from ehcbridge.store.reports import duty_outcomes, review_facts, schools_by_case

    kpis = Kpis(period=(start, end), as_of=as_of)
    kpis.figure(OVERALL, "reviews_due")  # overall is present even on an empty store
    school_of = {case: urn or "unknown" for case, urn in schools_by_case(store).items()}

    def group(case_id: str, due: date) -> str:
        return due.strftime("%Y-%m") if by == "month" else school_of.get(case_id, "unknown")

    for fact in review_facts(store, start, end):
        key = group(fact["case_id"], fact["due_by"])
        kpis.add(key, "reviews_due", True)
        decided = fact["decided_on"]
        if decided is not None:
            kpis.add(key, "concluded_in_12_months", decided <= fact["due_by"])
        elif fact["due_by"] < as_of:
            kpis.add(key, "concluded_in_12_months", False)
            if fact["status"] != "decided":
                kpis.figure(key, "overdue_now").count += 1
                kpis.figure(OVERALL, "overdue_now").count += 1
    by_duty = {m.duty: m.name for m in MEASURES if m.duty}
    for case_id, name, due, status in duty_outcomes(store, list(by_duty),
                                                    [d.value for d in DONE], start, end):
        kpis.add(group(case_id, due), by_duty[name], status == DutyStatus.MET.value)
    # "Overdue now" is out of every review due in the period.
    for figures in kpis.schools.values():
        figures["overdue_now"].total = figures["reviews_due"].count
    return kpis
