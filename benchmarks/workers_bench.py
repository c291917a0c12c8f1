"""Several engine workers on PostgreSQL draining a backlog, one of them killed midway.

Target on the 2-core reference machine (issue 17): four `ehcbridge run` workers drain 20,000
deliveries to a plugin that sleeps 50 ms per call (standing in for a remote API) at least 3.5
times faster than one worker, with no duplicate and no lost call; and the same when one of the
four is killed with SIGKILL midway. Killed and left dead, three workers finish the second half,
so at most 1 / (0.5/4 + 0.5/3) = 3.43x is possible for a kill at the midpoint; killed and
restarted the way the user guide's systemd unit does it (`Restart=on-failure`, `RestartSec=30`),
the run is measured too. The plugin honours the idempotency key the way a remote API
does: it applies each key once (a primary key) and logs every call, so repeated calls show.
There was no previous figure: before issue 17 a second worker crashed or delivered twice.

Usage: uv run python benchmarks/workers_bench.py [--deliveries N] [--url POSTGRESQL_URL]
       [--skip-single] [--restart-seconds S]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

PLUGIN = '''\
"""Sleeps like a remote API call, then applies the idempotency key once."""
import os, time
import psycopg
from ehcbridge import hookimpl

_conn = None


def _db():
    global _conn
    if _conn is None:
        _conn = psycopg.connect(os.environ["BENCH_DSN"], autocommit=True)
    return _conn


@hookimpl
def on_review_scheduled(event, ctx):
    db = _db()
    db.execute("INSERT INTO bench_calls (key, pid) VALUES (%s, %s)",
               (event.idempotency_key, os.getpid()))
    time.sleep(float(os.environ.get("BENCH_CALL_SECONDS", "0.05")))
    db.execute("INSERT INTO bench_applied (key, pid) VALUES (%s, %s) ON CONFLICT DO NOTHING",
               (event.idempotency_key, os.getpid()))
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--call-seconds", type=float, default=0.05)
    parser.add_argument("--url", default=os.environ.get(
        "EHCBRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--skip-single", action="store_true",
                        help="only the runs with several workers")
    parser.add_argument("--restart-seconds", type=float, default=30.0,
                        help="how long the supervisor waits before restarting the killed "
                             "worker (the unit's RestartSec; default 30)")
    args = parser.parse_args()

    import sqlalchemy as sa
    from ehcbridge.settings import driver_url

    work = Path(tempfile.mkdtemp(prefix="ehcbridge-workers-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(driver_url(args.url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".bench_applied (key text PRIMARY KEY, '
                             "pid int)"))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".bench_calls (key text, pid int)'))
    url = f"{args.url}?options=-csearch_path%3D{schema}"
    site = work / "site"
    site.mkdir()
    (site / "benchsleeper.py").write_text(PLUGIN)
    info = site / "benchsleeper-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: benchsleeper\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ehcbridge]\nsleeper = benchsleeper\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(PYTHONPATH=str(site), EHCBRIDGE_LOAD_PLUGINS="sleeper", EHCBRIDGE_STORE__URL=url,
               EHCBRIDGE_ENGINE__TICK_SECONDS="1", EHCBRIDGE_ENGINE__LEASE_SECONDS="5",
               BENCH_DSN=f"{args.url}?options=-csearch_path%3D{schema}",
               BENCH_CALL_SECONDS=str(args.call_seconds), XDG_DATA_HOME=str(work / "xdg"))
    try:
        _backlog(work, env, args.deliveries, url)
        db = sa.create_engine(driver_url(url))
        single = None
        if not args.skip_single:
            single = _drain(db, env, 1, args.deliveries, kill=False)
            _report("1 worker", single, args.deliveries)
        several = _drain(db, env, args.workers, args.deliveries, kill=False)
        _report(f"{args.workers} workers", several, args.deliveries)
        killed = _drain(db, env, args.workers, args.deliveries, kill=True)
        _report(f"{args.workers} workers, one SIGKILLed midway", killed, args.deliveries)
        restarted = _drain(db, env, args.workers, args.deliveries, kill=True,
                           restart_after=args.restart_seconds)
        _report(f"{args.workers} workers, one SIGKILLed midway and restarted "
                f"{args.restart_seconds:.0f} s later", restarted, args.deliveries)
        if single is not None:
            print(f"speed-up with {args.workers} workers: {single[0] / several[0]:.2f}x "
                  f"(target >= 3.5x); with one killed and left dead: "
                  f"{single[0] / killed[0]:.2f}x (at most 3.43x for a kill at the midpoint); "
                  f"killed and restarted by the supervisor: {single[0] / restarted[0]:.2f}x")
        db.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _backlog(work: Path, env: dict[str, str], count: int, url: str) -> None:
    """``count`` cases with a meeting each, dispatched: one delivery each for the sleeper."""
    rows = [f"B-{n:06d},Sam,Example,2026-04-01,2027-03-{10 + n % 15:02d}T10:00\n"
            for n in range(count)]
    csv = work / "backlog.csv"
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n" + "".join(rows))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ehcbridge.cli", "import", "reviews", str(csv)],
                   env=env, check=True, capture_output=True)
    # Dispatch only (no delivery): the backlog the workers will drain.
    code = ("from ehcbridge.app import App\nfrom ehcbridge.engine import Engine\n"
            "e = Engine(App())\ne.app.start_plugins()\n"
            "print(e._fire_and_dispatch(e.app.clock.now(), e._report))\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    print(f"backlog: {count} deliveries ready in {time.perf_counter() - started:.1f} s")


def _reset(db: object, due: datetime) -> None:
    import sqlalchemy as sa

    with db.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("UPDATE deliveries SET status = 'pending', attempts = 0, "
                             "claimed_by = NULL, lease_until = NULL, finished_at = NULL, "
                             "last_error = NULL, next_attempt_at = :at"),
                     {"at": due.replace(tzinfo=None)})
        conn.execute(sa.text("TRUNCATE bench_applied, bench_calls"))


def _drain(db: object, env: dict[str, str], workers: int, count: int, *, kill: bool,
           restart_after: float | None = None) -> tuple[float, int, int, int]:
    """Seconds to drain, and (applied, calls, repeated calls); with ``restart_after`` the
    killed worker is started again that many seconds later, as systemd would."""
    import sqlalchemy as sa
    from ehcbridge.settings import driver_url

    # The backlog falls due once every worker has made its first pass (process start-up,
    # which on two busy cores takes seconds each, is not what is measured).
    _reset(db, datetime(2100, 1, 1, tzinfo=UTC))
    launched = datetime.now(UTC)

    def start(n: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "ehcbridge.cli", "run"],
                                env={**env, "EHCBRIDGE_ENGINE__WORKER_NAME": f"bench-{n}"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    procs = [start(n) for n in range(workers)]
    killed: float | None = None  # when the first worker was killed
    restarted = False
    try:
        from ehcbridge.store import Store
        from ehcbridge.store.queue import workers_seen

        store = Store(driver_url(env["EHCBRIDGE_STORE__URL"]), migrate=False)
        while len(workers_seen(store, launched)) < workers:
            time.sleep(0.2)
        store.close()
        with db.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = :at"),
                         {"at": datetime.now(UTC).replace(tzinfo=None)})
        started = time.perf_counter()
        while True:
            time.sleep(0.5)
            with db.begin() as conn:  # type: ignore[attr-defined]
                done = conn.execute(sa.text("SELECT count(*) FROM deliveries "
                                            "WHERE status = 'delivered'")).scalar_one()
            if kill and killed is None and done >= count * 0.3:
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                killed = time.perf_counter()
            if (restart_after is not None and killed is not None and not restarted
                    and time.perf_counter() - killed >= restart_after):
                procs[0] = start(0)
                restarted = True
            if done >= count:
                break
            for p in procs[1:] if killed is not None and not restarted else procs:
                if p.poll() is not None:
                    raise SystemExit(p.stderr.read().decode()[-2000:] if p.stderr else "died")
        seconds = time.perf_counter() - started
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
    with db.begin() as conn:  # type: ignore[attr-defined]
        applied = conn.execute(sa.text("SELECT count(*) FROM bench_applied")).scalar_one()
        calls = conn.execute(sa.text("SELECT count(*) FROM bench_calls")).scalar_one()
        repeated = conn.execute(sa.text(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM bench_calls "
            "GROUP BY key) c")).scalar_one()
    return seconds, int(applied), int(calls), int(repeated)


def _report(label: str, result: tuple[float, int, int, int], count: int) -> None:
    seconds, applied, calls, repeated = result
    print(f"{label}: {count} deliveries in {seconds:.1f} s ({count / seconds:,.0f}/s); "
          f"applied {applied} (lost {count - applied}, applied twice 0: one row per key); "
          f"{calls} calls, {repeated} repeated for a key (a killed worker's calls in flight)")


if __name__ == "__main__":
    main()
