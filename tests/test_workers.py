"""Several engine workers: PostgreSQL shares the work (one SIGKILLed midway), SQLite refuses a
second engine. Real `ehcbridge run` processes and a plugin that honours the idempotency key."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

PG_URL = os.environ.get("EHCBRIDGE_TEST_DATABASE_URL")

PLUGIN = '''\
"""Like a remote API with de-duplication: each idempotency key is applied once."""
import fcntl, json, os, time
from ehcbridge import hookimpl

NAME = __name__.split("_", 1)[1]


@hookimpl
def on_review_scheduled(event, ctx):
    folder = os.environ["WORK_DIR"]
    with open(os.path.join(folder, NAME + ".calls"), "a") as c:
        c.write(json.dumps({"key": event.idempotency_key, "pid": os.getpid()}) + "\\n")
    time.sleep(float(os.environ.get("CALL_SECONDS", "0.01")))
    with open(os.path.join(folder, NAME + ".jsonl"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        seen = {json.loads(line)["key"] for line in fh if line.strip()}
        if event.idempotency_key not in seen:
            fh.write(json.dumps({"key": event.idempotency_key, "pid": os.getpid()}) + "\\n")
            fh.flush()
'''


def _install(site: Path, names: tuple[str, ...]) -> None:
    site.mkdir()
    for name in names:
        (site / f"workertest_{name}.py").write_text(PLUGIN)
        info = site / f"workertest_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: workertest-{name}\n"
                                       "Version: 1.0\n")
        (info / "entry_points.txt").write_text(f"[ehcbridge]\n{name} = workertest_{name}\n")


def _env(work: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(PYTHONPATH=str(work / "site"), WORK_DIR=str(work),
               EHCBRIDGE_LOAD_PLUGINS="alpha,beta", EHCBRIDGE_STORE__URL=url,
               EHCBRIDGE_ENGINE__TICK_SECONDS="0.3", EHCBRIDGE_ENGINE__LEASE_SECONDS="2",
               XDG_DATA_HOME=str(work / "xdg"), **extra)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ehcbridge.cli", *args]


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _import(work: Path, env: dict[str, str], cases: int) -> set[str]:
    rows = [f"EHC-{n:04d},Sam,Example,2026-04-01,2027-03-{10 + n % 15:02d}T10:00\n"
            for n in range(cases)]
    csv = work / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n" + "".join(rows))
    subprocess.run(_cli("import", "reviews", str(csv)), env=env, cwd=work, check=True,
                   capture_output=True)
    return {f"EHC-{n:04d}/r{n + 1}/m{n + 1}/scheduled/0" for n in range(cases)}


@pytest.fixture
def pg_url(fresh_pg_url: str) -> str:
    """A fresh schema on the test PostgreSQL (tests/conftest.py)."""
    return fresh_pg_url


def test_three_workers_share_a_backlog_and_survive_one_killed(tmp_path: Path,
                                                              pg_url: str) -> None:
    _install(tmp_path / "site", ("alpha", "beta"))
    env = _env(tmp_path, pg_url, CALL_SECONDS="0.02")
    expected = _import(tmp_path, env, 150)  # 300 deliveries, about 6 s of calls in all

    workers = [subprocess.Popen(_cli("run"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        # Kill a worker once it is busy delivering (it holds claims when it dies).
        while not (calls := _lines(tmp_path / "alpha.calls")):
            for w in workers:
                assert w.poll() is None, w.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no worker made a call"
            time.sleep(0.01)
        victim = next(w for w in workers if w.pid == calls[0]["pid"])
        workers.remove(victim)
        workers.insert(0, victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        applied_then = len(_lines(tmp_path / "alpha.jsonl")) + len(_lines(tmp_path / "beta.jsonl"))
        assert applied_then < 300, "the backlog was done before the kill; nothing was tested"
        while True:
            applied = {n: [str(r["key"]) for r in _lines(tmp_path / f"{n}.jsonl")]
                       for n in ("alpha", "beta")}
            if all(set(keys) == expected for keys in applied.values()):
                break
            for w in workers[1:]:
                assert w.poll() is None, w.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the survivors did not finish the backlog"
            time.sleep(0.1)
    finally:
        for w in workers[1:]:
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            _, err = w.communicate(timeout=30)
            assert w.returncode == 0, err.decode()[-2000:]

    for name in ("alpha", "beta"):
        keys = applied[name]
        assert len(keys) == len(set(keys)) == 150, f"{name}: a key applied twice or lost"
        by_pid = Counter(str(r["pid"]) for r in _lines(tmp_path / f"{name}.jsonl"))
        assert len(by_pid) >= 2, f"{name}: one worker did all the work ({by_pid})"
        # Calls twice for one key only where the killed worker's call was cut short.
        calls = Counter(str(c["key"]) for c in _lines(tmp_path / f"{name}.calls"))
        assert sum(n - 1 for n in calls.values()) <= 2
    ledger = subprocess.run(_cli("deliveries", "--json"), env=env, cwd=tmp_path,
                            capture_output=True, check=True)
    rows = json.loads(ledger.stdout)
    assert len(rows) == 300 and {r["status"] for r in rows} == {"delivered"}


def test_a_second_engine_on_sqlite_is_refused_naming_the_first(tmp_path: Path) -> None:
    _install(tmp_path / "site", ("alpha", "beta"))
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    _import(tmp_path, env, 3)
    first = subprocess.Popen(_cli("run"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(_lines(tmp_path / "alpha.jsonl")) < 3:  # running and holding the lock
            assert first.poll() is None, first.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(_cli("run", "--once"), env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "another engine is already running on this database" in second.stderr
        assert f"process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=30)
    assert first.returncode == 0 and b"stopped" in out
    # Once the first engine stopped, another may run.
    third = subprocess.run(_cli("run", "--once", "--json"), env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["deliveries"] == {}


def test_a_running_engine_outlives_its_database_connections_being_cut(
        tmp_path: Path, pg_url: str) -> None:
    import uuid

    import sqlalchemy as sa
    from ehcbridge.settings import driver_url

    _install(tmp_path / "site", ("alpha", "beta"))
    name = f"ehcbridge-outage-{uuid.uuid4().hex[:8]}"
    env = _env(tmp_path, f"{pg_url}&application_name={name}")
    first = _import(tmp_path, env, 4)
    engine = subprocess.Popen(_cli("run"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    admin = sa.create_engine(driver_url(pg_url))
    try:
        deadline = time.monotonic() + 60

        def applied() -> set[str]:
            return {str(r["key"]) for r in _lines(tmp_path / "alpha.jsonl")}

        while applied() != first:
            assert engine.poll() is None, engine.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the engine made no call"
            time.sleep(0.05)
        # What a database restart or failover does to a running engine: every connection
        # it holds is cut by the server.
        with admin.begin() as conn:
            cut = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"), {"name": name}).scalar_one()
        assert cut >= 1
        time.sleep(1.0)  # a few of the engine's steps meet the cut connections
        assert engine.poll() is None, engine.communicate()[1].decode()[-2000:]
        # Work that arrives afterwards is done, on fresh connections.
        second = _import(tmp_path, env, 8)
        while applied() != second:
            assert engine.poll() is None, engine.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the engine did not take up the new work"
            time.sleep(0.05)
    finally:
        admin.dispose()
        engine.send_signal(signal.SIGTERM)
        _out, err = engine.communicate(timeout=30)
    assert engine.returncode == 0, err.decode()[-2000:]
    log = err.decode()
    # Named by the driver's error type (here AdminShutdown), never its message.
    assert re.search(r"the database failed \(\w+\); the engine carries on", log), log[-2000:]
    assert "the database answers again; the engine is back at work" in log
    assert "Traceback" not in log
