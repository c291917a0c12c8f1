"""Import 20,000 synthetic plans and compute every timeline; time an engine tick with nothing due.

Targets on the 2-core reference machine (issue 17): for 20,000 plans import and timelines under
3 s; for 640,000 (all of England, --plans 640000) under 60 s with peak memory under 1 GB; an idle
tick under 1 s. The previous implementation's figures (issue 17) are printed beside them.
Usage: uv run python benchmarks/engine_bench.py [--plans N] [--url SQLALCHEMY_URL]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ehcbridge.engine import Engine
from ehcbridge.intake import import_reviews
from ehcbridge.models import LONDON
from ehcbridge.store import Store
from ehcbridge.synthetic import write_csv
from ehcbridge.testing import make_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--url", help="store URL (default: a new SQLite file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-bench-"))
    csv = write_csv(work / "reviews.csv", args.plans, seed=7)
    store = Store(args.url or f"sqlite:///{work / 'bench.sqlite3'}")
    # All of England is a 170 MB list of 640,000 rows, over the default intake limits (100 MB,
    # 250,000 rows): a council importing one raises limits.max_file_bytes and max_rows too.
    app = make_app(store, settings={"limits": {"max_file_bytes": 1 << 30, "max_rows": 1_000_000}},
                   now=datetime(2026, 11, 2, 8, tzinfo=LONDON))

    started = time.perf_counter()
    report = import_reviews(app, csv, now=app.clock.now())
    imported = time.perf_counter() - started
    from ehcbridge import timeline

    cases = [store.case(cid) for cid in store.case_ids()[:2000]]
    inputs = [(c.plan, c.pupil, c.meeting.start if c.meeting else None) for c in cases]
    inputs = (inputs * (args.plans // len(inputs) + 1))[:args.plans]
    started = time.perf_counter()
    count = sum(len(timeline.milestones(plan, pupil=pupil, meeting_start=start,
                                        as_of=app.clock.now().date()))
                for plan, pupil, start in inputs)
    timelines = time.perf_counter() - started
    # Import and timelines are measured apart from the catch-up run below, which holds a
    # tick's worth of due events at once.
    import_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    engine = Engine(app)
    started = time.perf_counter()
    first = engine.run_once(datetime(2026, 11, 2, 8, tzinfo=LONDON))  # what is due today
    catch_up = time.perf_counter() - started
    started = time.perf_counter()
    tick = engine.run_once(datetime(2026, 11, 2, 9, tzinfo=LONDON))
    idle = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"plans: {args.plans} ({report.added} added, {sum(report.meetings.values())} meetings)")
    print(f"import: {imported:.2f} s ({args.plans / imported:,.0f} plans/s)")
    print(f"timelines: {count} milestones for {args.plans} plans in {timelines:.2f} s "
          f"({args.plans / timelines:,.0f} plans/s)")
    target = 3.0 if args.plans <= 20_000 else 60.0
    before = {20_000: " (previously 5.5 s)", 200_000: " (previously 37.8 s, 1.2 GB)"}
    print(f"import + timelines: {imported + timelines:.2f} s (target < {target:g} s)"
          f"{before.get(args.plans, '')}")
    print(f"peak memory after import and timelines: {import_peak:.0f} MiB"
          + (" (target < 1 GB)" if args.plans > 20_000 else ""))
    print(f"first run (no plugins): {first.events_dispatched} events, "
          f"{first.timers_fired} timers in {catch_up:.1f} s")
    print(f"idle engine tick over {args.plans} reviews: {idle * 1000:.0f} ms "
          f"(fired {tick.timers_fired}, target < 1 s)")
    print(f"peak memory at the end: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
