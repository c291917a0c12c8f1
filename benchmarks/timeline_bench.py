"""Benchmark the statutory clock and the planner on a large county's caseload.

Run: ``uv run python benchmarks/timeline_bench.py [PLANS]`` (default 20,000). Prints seconds for
importing, computing every plan's milestones, and planning one meeting per plan.
Targets: milestones for 20,000 plans well under 5 s including import; planning under 10 s.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc
from datetime import date, datetime, timedelta

started = time.perf_counter()
from ehcbridge.events import DateConstraint  # noqa: E402
from ehcbridge.models import LONDON, Plan, Pupil  # noqa: E402
from ehcbridge.planner import PlannerOptions, PlanningItem, propose  # noqa: E402
from ehcbridge.timeline import ClockOptions, milestones, review_due  # noqa: E402

imported = time.perf_counter() - started


def main() -> None:
    """Build a synthetic caseload, time the clock and the planner, print the figures."""
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "20000"))
    rng = random.Random(42)
    holidays = ((date(2026, 12, 19), date(2027, 1, 4)), (date(2027, 2, 13), date(2027, 2, 21)))
    options = ClockOptions(school_holidays=holidays)
    plans = []
    for index in range(count):
        issued = date(2025, 9, 1) + timedelta(days=rng.randrange(365))
        pupil = Pupil(forename="A", surname="B", nc_year=rng.randrange(0, 14),
                      dob=date(2008, 1, 1) + timedelta(days=rng.randrange(6000)))
        meeting = datetime.combine(issued + timedelta(days=300), datetime.min.time(),
                                   tzinfo=LONDON) if index % 2 else None
        plans.append((Plan(case_id=f"EHC-{index:06d}", issued_on=issued), pupil, meeting))

    t0 = time.perf_counter()
    total = 0
    for plan, pupil, meeting in plans:
        total += len(milestones(plan, meeting_start=meeting, pupil=pupil, options=options))
    clock_s = time.perf_counter() - t0

    today = date(2026, 6, 1)
    items = []
    for plan, pupil, _ in plans:
        due = review_due(plan, pupil, options)
        constraints: tuple[DateConstraint, ...] = ()
        if rng.random() < 0.1:
            constraints = (DateConstraint(day=due - timedelta(days=rng.randrange(40, 90)),
                                          reason="CLA review", weight=2.0),)
        items.append(PlanningItem(plan.case_id, f"co{rng.randrange(150)}@example.org", due,
                                   due - timedelta(weeks=4), constraints))
    tracemalloc.start() if "--mem" in sys.argv else None
    t0 = time.perf_counter()
    result = propose(items, today=today, options=PlannerOptions(school_holidays=holidays))
    plan_s = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print(f"import ehcbridge.timeline/planner: {imported:.3f} s")
    print(f"milestones for {count} plans: {clock_s:.3f} s ({total} milestones)")
    print(f"clock total incl. import: {imported + clock_s:.3f} s (target < 5 s)")
    print(f"planner for {count} items: {plan_s:.3f} s (target < 10 s), peak {peak / 1e6:.1f} MB; "
          f"{len(result.proposals)} proposed, {len(result.overdue)} overdue, "
          f"{len(result.unplanned)} unplanned")


if __name__ == "__main__":
    main()
