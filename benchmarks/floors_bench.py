"""The floors under issue 17's two speed targets: what the same work costs in the libraries the
project builds on, before any of ehcbridge's own bookkeeping.

For 20,000 plans (the targets: import and timelines under 3 s, the first catch-up run under
20 s) and for 640,000 (import and timelines under 60 s), on the 2-core reference machine:
- catch-up: the outlook plugin's own builders serialise each meeting's iCalendar (icalendar)
  and each invitee's iMIP message (the email package), and the core's outbox writer writes
  them, for the meetings and invitees a real import leaves; no store, engine, claim or record;
- import: reading and validating the list alone; writing the rows a real import writes with
  raw ``sqlite3`` ``executemany`` (values already converted, no SQLAlchemy); and the share of a
  real import spent in the lifecycle's pure functions (due dates, duties, meetings).
Each floor is printed beside its target and the real figure; what remains of a target once
its floor is paid is what all the rest would have to fit in.

Usage: uv run python benchmarks/floors_bench.py [--plans N] [--no-catch-up]
"""

from __future__ import annotations

import argparse
import functools
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Stopwatch:
    """Time spent inside wrapped functions, counted once when they call each other."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            began = time.perf_counter() if self._depth == 1 else 0.0
            try:
                return fn(*args, **kwargs)
            finally:
                if self._depth == 1:
                    self.seconds += time.perf_counter() - began
                self._depth -= 1
        return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    parser.add_argument("--no-catch-up", action="store_true",
                        help="stop after the import's floors (for --plans 640000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-floors-"))
    db = work / "bench.sqlite3"
    config = work / "ehcbridge.toml"
    # All of England is a 170 MB list of 640,000 rows, over the default intake limits: raised,
    # as engine_bench does and a council importing one would.
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n\n[limits]\nmax_file_bytes = {1 << 30}\n'
                      'max_rows = 1000000\n', encoding="utf-8")
    os.environ["EHCBRIDGE_LOAD_PLUGINS"] = "outlook"

    from ehcbridge import intake, lifecycle, timeline
    from ehcbridge.app import App
    from ehcbridge.models import LONDON
    from ehcbridge.settings import load_settings
    from ehcbridge.synthetic import write_csv

    csv = write_csv(work / "reviews.csv", args.plans, seed=7)
    now = datetime(2026, 11, 2, 8, tzinfo=LONDON)
    app = App(load_settings(config), now=now)
    app.store  # the schema made before anything is timed  # noqa: B018

    # Reading and validating the list, nothing written.
    limits, minutes = app.settings.limits, app.settings.engine.meeting_minutes
    started = time.perf_counter()
    scan = intake._Scan(intake._open(csv, None, limits), minutes)
    rows = sum(1 for _ in scan.rows())
    parse = time.perf_counter() - started
    assert rows == args.plans and not scan.problems

    # A real import, with the lifecycle's pure functions timed inside it.
    watch = Stopwatch()
    for name in ("open_review", "duties", "schedule", "imported", "dated"):
        setattr(lifecycle, name, watch.wrap(getattr(lifecycle, name)))
    timeline.preparing_for_adulthood = watch.wrap(timeline.preparing_for_adulthood)
    started = time.perf_counter()
    intake.import_reviews(app, csv, now=now)
    imported = time.perf_counter() - started
    store = app.store
    cases = [(c.plan, c.pupil, c.meeting.start if c.meeting else None)
             for c in (store.case(cid) for cid in store.case_ids()[:2000])]
    started = time.perf_counter()
    for plan, pupil, start in (cases * (args.plans // len(cases) + 1))[:args.plans]:
        timeline.milestones(plan, pupil=pupil, meeting_start=start, as_of=now.date())
    timelines = time.perf_counter() - started

    # The rows that import wrote, written again with nothing but sqlite3.
    # Read in slices (not timed), so England's caseload fits in memory.
    source = sqlite3.connect(db)
    schema = [sql for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")]
    names = [name for (name,) in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'alembic_version'")]
    copy = sqlite3.connect(work / "copy.sqlite3", isolation_level=None)
    copy.execute("PRAGMA journal_mode=WAL")
    for sql in schema:
        copy.execute(sql)
    insert, written = 0.0, 0
    copy.execute("BEGIN")
    for name in names:
        cursor = source.execute(f'SELECT * FROM "{name}"')
        while table_rows := cursor.fetchmany(100_000):
            marks = ", ".join("?" * len(table_rows[0]))
            started = time.perf_counter()
            copy.executemany(f'INSERT INTO "{name}" VALUES ({marks})', table_rows)
            insert += time.perf_counter() - started
            written += len(table_rows)
    started = time.perf_counter()
    copy.execute("COMMIT")
    insert += time.perf_counter() - started
    meetings = source.execute(
        "SELECT m.id, m.start, count(i.id) FROM meetings m JOIN invitees i "
        "ON i.review_id = m.review_id AND i.email IS NOT NULL GROUP BY m.id").fetchall()
    source.close()
    import_floor = parse + insert + watch.seconds
    print(f"plans: {args.plans}; machine: {os.cpu_count()} cores")
    print(f"import floor: reading and validating the list {parse:.2f} s + writing its "
          f"{written:,} rows with raw sqlite3 {insert:.2f} s + the lifecycle's pure functions "
          f"{watch.seconds:.2f} s = {import_floor:.2f} s; timelines {timelines:.2f} s "
          f"(target for import and timelines: < 3 s for 20,000 plans, < 60 s for 640,000; "
          f"the real import took {imported:.2f} s)", flush=True)
    if args.no_catch_up:
        return

    # The catch-up's messages, built and written as the outlook plugin does, nothing recorded.
    from ehcbridge import mail
    from ehcbridge.models import Invitee, Role
    from ehcbridge.testing import MemoryPluginStore, make_context, make_event
    from ehcbridge_outlook import service
    from ehcbridge_outlook.settings import OutlookSettings

    settings = OutlookSettings(outbox_dir=work / "outbox", invite="all")
    transport = settings.mail()
    ctx = make_context("outlook", settings, store=MemoryPluginStore(plugin="outlook"), now=now)
    roles = [Role.PARENT, Role.SETTING, Role.LA_SEN_OFFICER, Role.HEALTH, Role.SOCIAL_CARE]
    events = [make_event(case_id=f"EHC-{number:05d}", online=False,
                         start=datetime.fromisoformat(start).replace(tzinfo=UTC)
                         .astimezone(LONDON),  # stored as naive UTC
                         invitees=tuple(Invitee(role=roles[k % len(roles)], name=f"Person {k}",
                                                email=f"p{number}.{k}@example.org")
                                        for k in range(count)))
              for number, start, count in meetings]
    from ehcbridge_outlook import ical, imip

    calendars, flattening = Stopwatch(), Stopwatch()
    ical.meeting_calendar_bytes = calendars.wrap(ical.meeting_calendar_bytes)
    imip._Message.as_bytes = flattening.wrap(imip._Message.as_bytes)  # type: ignore[method-assign]
    messages = 0
    sending = 0.0
    started = time.perf_counter()
    for event in events:
        recipients = tuple(service.recipients_of(event))
        build = service._meeting_builder(ctx, event, settings, recipients, False)
        for recipient in recipients:
            message = build(0, recipient, False)
            began = time.perf_counter()
            mail.send(message, transport)
            sending += time.perf_counter() - began
            messages += 1
    catch_up = time.perf_counter() - started
    building = catch_up - sending - calendars.seconds
    on_disk = len(list((work / "outbox").glob("*.eml")))
    assert on_disk == messages, (on_disk, messages)

    print(f"first catch-up floor: {len(events):,} calendars and {messages:,} messages serialised "
          f"(icalendar, email) and written to the outbox, nothing recorded: {catch_up:.2f} s "
          f"(calendars {calendars.seconds:.2f} s, messages built {building:.2f} s and "
          f"flattened {flattening.seconds:.2f} s, files {sending - flattening.seconds:.2f} s) "
          f"(target for the whole run < 20 s; left for dispatch, claims and records: "
          f"{20 - catch_up:.2f} s)")


if __name__ == "__main__":
    main()
