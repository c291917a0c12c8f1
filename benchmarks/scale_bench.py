"""A council at scale: import, re-import, listing, the first catch-up run and an idle tick.

Targets on the 2-core reference machine (issue 17), for 20,000 plans: import and timelines
under 3 s; re-importing an unchanged list no slower than the first import; `review list` under
1 s (the dashboard's home and figures pages are timed beside it); the first catch-up run
(every due event, outlook writing to its outbox) under 20 s, with dispatch at 1,000 events/s
or more; an idle tick under 1 s. Each figure is printed beside the previous implementation's,
measured on the same machine and quoted in issue 17.

Usage: uv run python benchmarks/scale_bench.py [--plans N] [--url SQLALCHEMY_URL] [--no-catch-up]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

# The previous implementation's figures for 20,000 plans (issue 17), by backend where known.
PREVIOUS = {
    "import": {"sqlite": 4.0, "postgresql": 7.1},
    "reimport": {"sqlite": 13.8, "postgresql": 40.1},
    "import+timelines": {"sqlite": 5.5},
    "review list": {"sqlite": 11.9},
    "catch-up": {"sqlite": 184.0},
}


def was(name: str, backend: str) -> str:
    value = PREVIOUS.get(name, {}).get(backend)
    return f" (previously {value:.1f} s)" if value is not None else ""


def _own_schema(url: str) -> str:
    """On PostgreSQL, a schema of the run's own (dropped when the run ends), so the figures
    start from an empty store and nothing is left in the database's public schema."""
    if not url.startswith("postgresql"):
        return url
    import atexit
    import uuid

    import sqlalchemy as sa
    from ehcbridge.settings import driver_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(driver_url(url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    atexit.register(drop)
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--url", help="store URL (default: a new SQLite file)")
    parser.add_argument("--no-catch-up", action="store_true",
                        help="stop after import, re-import and the review list")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-scale-"))
    url = _own_schema(args.url) if args.url else f"sqlite:///{work / 'bench.sqlite3'}"
    outbox = work / "outbox"
    config = work / "ehcbridge.toml"
    config.write_text(f'[store]\nurl = "{url}"\n\n[plugins.outlook]\ntransport = "outbox"\n'
                      f'outbox_dir = "{outbox}"\n', encoding="utf-8")
    os.environ["EHCBRIDGE_LOAD_PLUGINS"] = "outlook"

    from ehcbridge import timeline
    from ehcbridge.app import App
    from ehcbridge.cli import cli
    from ehcbridge.engine import Engine
    from ehcbridge.intake import import_reviews
    from ehcbridge.models import LONDON
    from ehcbridge.settings import load_settings
    from ehcbridge.synthetic import write_csv

    csv = write_csv(work / "reviews.csv", args.plans, seed=7)
    now = datetime(2026, 11, 2, 8, tzinfo=LONDON)
    app = App(load_settings(config), now=now)
    store = app.store
    backend = store.backend

    started = time.perf_counter()
    report = import_reviews(app, csv, now=now)
    imported = time.perf_counter() - started
    cases = [(c.plan, c.pupil, c.meeting.start if c.meeting else None)
             for c in (store.case(cid) for cid in store.case_ids()[:2000])]
    inputs = (cases * (args.plans // len(cases) + 1))[:args.plans]
    started = time.perf_counter()
    for plan, pupil, start in inputs:
        timeline.milestones(plan, pupil=pupil, meeting_start=start, as_of=now.date())
    timelines = time.perf_counter() - started

    started = time.perf_counter()
    again = import_reviews(app, csv, now=now)
    reimported = time.perf_counter() - started
    assert again.unchanged == args.plans, (again.added, again.updated, again.unchanged)

    runner = CliRunner()
    started = time.perf_counter()
    listed = runner.invoke(cli, ["--config", str(config), "review", "list"])
    listing = time.perf_counter() - started
    assert listed.exit_code == 0, listed.output[-500:]

    from ehcbridge.web import data

    started = time.perf_counter()
    attention = data.attention(app)
    data.due_counts(app, now.date())
    home = time.perf_counter() - started
    started = time.perf_counter()
    data.figures(app)
    figures = time.perf_counter() - started

    print(f"backend: {backend}; plans: {args.plans} ({report.added} added, "
          f"{sum(report.meetings.values())} meetings)")
    print(f"import: {imported:.2f} s{was('import', backend)}")
    print(f"import + timelines: {imported + timelines:.2f} s (target < 3 s)"
          f"{was('import+timelines', backend)}")
    print(f"re-import unchanged: {reimported:.2f} s (target <= first import, {imported:.2f} s)"
          f"{was('reimport', backend)}")
    print(f"review list ({len(listed.output.splitlines())} lines): {listing:.2f} s "
          f"(target < 1 s){was('review list', backend)}")
    print(f"dashboard home ({len(attention)} duties for action, due counts): {home:.2f} s; "
          f"figures page: {figures:.2f} s", flush=True)
    if args.no_catch_up:
        return

    engine = Engine(app)
    dispatch_seconds = [0.0]
    original = engine._dispatch

    def timed_dispatch(at: datetime) -> int:
        began = time.perf_counter()
        try:
            return original(at)
        finally:
            dispatch_seconds[0] += time.perf_counter() - began

    engine._dispatch = timed_dispatch  # type: ignore[method-assign]
    started = time.perf_counter()
    first = engine.run_once(now)
    catch_up = time.perf_counter() - started
    messages = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0

    started = time.perf_counter()
    engine.run_once(now.replace(hour=9))
    idle = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"first catch-up run: {catch_up:.2f} s (target < 20 s){was('catch-up', backend)}; "
          f"{first.timers_fired} timers, {first.events_dispatched} events, "
          f"{sum(first.attempts.values())} deliveries "
          f"({', '.join(f'{n} {s}' for s, n in sorted(first.attempts.items()))}), "
          f"{messages} outbox messages")
    rate = first.events_dispatched / dispatch_seconds[0] if dispatch_seconds[0] else 0.0
    print(f"dispatch: {first.events_dispatched} events in {dispatch_seconds[0]:.2f} s = "
          f"{rate:,.0f} events/s (target >= 1,000)")
    print(f"idle tick: {idle * 1000:.0f} ms (target < 1 s)")
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
