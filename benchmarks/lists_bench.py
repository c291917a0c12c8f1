"""Termly lists, annual-review figures and SEN2 items over a council-sized store.

Imports N synthetic plans (default 20,000), then times: one term's lists for every school (CSV
and the whole list as PDF), `report kpis` for a year, and the SEN2 rows. Targets on the 2-core
reference machine: each under 5 s for 20,000 plans.
Usage: uv run python benchmarks/lists_bench.py [--plans N] [--url SQLALCHEMY_URL]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from ehcbridge import kpis, lists
from ehcbridge.intake import import_reviews
from ehcbridge.models import LONDON
from ehcbridge.sen2 import census_date, rows_for
from ehcbridge.store import Store
from ehcbridge.synthetic import write_csv
from ehcbridge.testing import make_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--url", help="store URL (default: a new SQLite file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-lists-bench-"))
    csv = write_csv(work / "reviews.csv", args.plans, seed=7)
    store = Store(args.url or f"sqlite:///{work / 'bench.sqlite3'}")
    app = make_app(store, now=datetime(2026, 12, 1, 9, tzinfo=LONDON))
    import_reviews(app, csv, now=app.clock.now())

    started = time.perf_counter()
    built = lists.build(store, title="Spring 2027", due_from=date(2027, 1, 5),
                        due_to=date(2027, 4, 11), as_of=date(2026, 12, 1), directory=None)
    texts = {urn: lists.to_csv(entries) for urn, entries in built.by_school.items()}
    listed = time.perf_counter() - started
    started = time.perf_counter()
    pdf = lists.to_pdf("Spring 2027: all schools", built.entries)
    pdf_time = time.perf_counter() - started

    started = time.perf_counter()
    figures = kpis.compute(store, date(2026, 9, 1), date(2027, 8, 31), date(2026, 12, 1))
    kpi_time = time.perf_counter() - started

    started = time.perf_counter()
    sen2 = rows_for(store, census_date(2027))
    sen2_time = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"plans: {args.plans}; store: {store.backend}")
    print(f"termly lists: {len(built.entries)} reviews at {len(texts)} schools, CSV each, in "
          f"{listed:.2f} s; whole list as PDF ({len(pdf) / 1024:,.0f} KiB) in {pdf_time:.2f} s")
    print(f"report kpis for a year: {len(figures.schools)} groups in {kpi_time:.2f} s")
    print(f"SEN2 items: {len(sen2)} plans in {sen2_time:.2f} s")
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
