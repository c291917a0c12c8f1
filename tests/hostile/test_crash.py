"""Kill the engine with SIGKILL mid-run and restart it: nothing lost, nothing done twice.

The fake plugins behave like a remote API that de-duplicates by idempotency key: each call is
logged (``.calls``) and each key applied once (``.jsonl``). Set ``EHCBRIDGE_CRASH_CYCLES`` for
more kill-and-restart cycles than the default 20.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from ehcbridge.store import Store
from ehcbridge.store import schema as t

# Bytecode for the many short-lived processes, kept out of the source tree.
PYCACHE = str(Path(tempfile.gettempdir()) / "ehcbridge-tests-pycache")

PLUGIN = '''\
"""A plugin that honours the idempotency key, like a remote API with de-duplication."""
import fcntl, json, os, time
from ehcbridge import hookimpl

NAME = __name__.split("_", 1)[1]


def _deliver(event):
    path = os.path.join(os.environ["CRASH_DIR"], NAME + ".jsonl")
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        seen = [json.loads(line)["key"] for line in fh if line.strip()]
        calls = os.path.join(os.environ["CRASH_DIR"], NAME + ".calls")
        with open(calls, "a") as c:
            c.write(event.idempotency_key + "\\n")
        if event.idempotency_key not in seen:  # the "remote" applies each key once
            time.sleep(0.02)
            fh.write(json.dumps({"key": event.idempotency_key}) + "\\n")
            fh.flush()
            os.fsync(fh.fileno())


@hookimpl
def on_review_scheduled(event, ctx):
    _deliver(event)


@hookimpl
def on_views_due(event, ctx):
    _deliver(event)


@hookimpl
def on_meeting_held(event, ctx):
    _deliver(event)
'''


def _install_fake_plugins(site: Path) -> None:
    """Two plugins made visible through a .dist-info folder on PYTHONPATH."""
    for name in ("alpha", "beta"):
        (site / f"crashtest_{name}.py").write_text(PLUGIN)
        info = site / f"crashtest_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: crashtest-{name}\n"
                                       "Version: 1.0\n")
        (info / "entry_points.txt").write_text(f"[ehcbridge]\n{name} = crashtest_{name}\n")


def _env(tmp_path: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # each restart would compile every module again
    env.update(PYTHONPATH=str(tmp_path / "site"), CRASH_DIR=str(tmp_path),
               PYTHONPYCACHEPREFIX=PYCACHE, EHCBRIDGE_LOAD_PLUGINS="alpha,beta",
               EHCBRIDGE_STORE__URL=url or f"sqlite:///{tmp_path / 'db.sqlite3'}")
    return env


def _engine(tmp_path: Path, url: str | None = None, now: str = "2027-02-20T09:00"
            ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ehcbridge.cli", "run", "--once", "--now",
                             now], env=_env(tmp_path, url), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _applied(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line]


def _calls(tmp_path: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.calls"))


def _check_no_partial_write(store: Store) -> None:
    """What the store holds after a kill is whole: each fired views timer has its event, each
    dispatched event a delivery per plugin, each finished delivery its outcome."""
    with store.engine.connect() as conn:
        keys = set(conn.execute(sa.select(t.events.c.key)).scalars())
        fired = conn.execute(sa.select(t.timers.c.kind, t.timers.c.review_id, t.plans.c.case_id)
                             .join(t.reviews, t.reviews.c.id == t.timers.c.review_id)
                             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
                             .where(t.timers.c.fired.is_(True))).all()
        actions = {"views_request": "request", "reminder": "reminder", "views_due": "due"}
        for kind, review_id, case_id in fired:
            if kind in actions:
                assert f"{case_id}/r{review_id}/views/{actions[kind]}" in keys
        per_event = {n for _, n in conn.execute(
            sa.select(t.events.c.id, sa.func.count(t.deliveries.c.id))
            .outerjoin(t.deliveries, t.deliveries.c.event_id == t.events.c.id)
            .where(sa.and_(t.events.c.dispatched.is_(True),
                           # the hooks both plugins implement (not on_deadline, nor notices,
                           # which go to their one channel plugin)
                           t.events.c.hook.in_(["on_review_scheduled", "on_views_due",
                                                "on_meeting_held"])))
            .group_by(t.events.c.id))}
        assert per_event <= {2}, "an event was dispatched to only one plugin"
        unfinished = conn.execute(sa.select(sa.func.count()).select_from(t.deliveries).where(
            sa.and_(t.deliveries.c.status == "delivered",
                    t.deliveries.c.finished_at.is_(None)))).scalar_one()
        assert unfinished == 0


@pytest.mark.slow
def test_sigkill_at_random_points_over_many_cycles(tmp_path: Path, database_url: str) -> None:
    """Each cycle starts ``ehcbridge run --once`` three days later than the last and kills it
    at a random moment (start-up, mid-delivery, or not at all when it finished first); after
    every kill the store is whole and no key was applied twice; a final run leaves every
    event delivered exactly once to each plugin, on SQLite and PostgreSQL."""
    from ehcbridge.settings import driver_url

    cycles = int(os.environ.get("EHCBRIDGE_CRASH_CYCLES", "20"))
    rng = random.Random(18)
    (tmp_path / "site").mkdir()
    _install_fake_plugins(tmp_path / "site")
    csv = tmp_path / "list.csv"
    rows = [f"EHC-{n:03d},Sam,Example,2026-04-01,2027-03-{1 + n % 28:02d}T10:00\n"
            for n in range(30)]
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n" + "".join(rows))
    imported = subprocess.run([sys.executable, "-m", "ehcbridge.cli", "import", "reviews",
                               str(csv)], env=_env(tmp_path, database_url), cwd=tmp_path,
                              capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    store = Store(driver_url(database_url))
    day = datetime(2027, 1, 10, 9, 0)
    try:
        killed = 0
        for cycle in range(cycles):
            now = (day + timedelta(days=3 * cycle)).strftime("%Y-%m-%dT%H:%M")
            before = _calls(tmp_path)
            engine = _engine(tmp_path, database_url, now)
            if rng.random() < 0.3:  # a moment in start-up, migration or the first pass
                time.sleep(rng.uniform(0.0, 2.0))
            else:  # mid-delivery: after a random number of plugin calls
                wanted = before + rng.randint(1, 6)
                deadline = time.monotonic() + 60
                while _calls(tmp_path) < wanted and engine.poll() is None:
                    assert time.monotonic() < deadline, "engine made no progress"
                    time.sleep(0.005)
            if engine.poll() is None:
                engine.send_signal(signal.SIGKILL)
                killed += 1
            _, err = engine.communicate(timeout=120)
            assert b"Traceback" not in err, err.decode()[-2000:]
            assert engine.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
            for name in ("alpha", "beta"):
                applied = _applied(tmp_path, name)
                assert len(applied) == len(set(applied)), f"{name} applied a key twice"
            _check_no_partial_write(store)
        assert killed >= cycles // 3, "most runs ended before they were killed"

        final = _engine(tmp_path, database_url, "2027-04-15T09:00")  # every meeting held
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0 and b"Traceback" not in err, err.decode()[-2000:]
        _check_no_partial_write(store)
        with store.engine.connect() as conn:
            keys = set(conn.execute(sa.select(t.events.c.key)).scalars())
        # 30 meetings: scheduled, three views stages and held, each once (besides the duties'
        # deadline events and the notices, which have their own keys).
        keys = {k for k in keys if "/deadline/" not in k and "/notice/" not in k}
        assert len(keys) == 30 * 5
        for name in ("alpha", "beta"):
            applied = _applied(tmp_path, name)
            assert len(applied) == len(set(applied)), f"{name} applied a key twice"
            assert set(applied) == keys, f"{name} lost deliveries"
        statuses = store.delivery_counts()
        assert sum(statuses.values()) == 2 * len(keys)
        assert {status for (_, _, status) in statuses} == {"delivered"}
    finally:
        store.close()
