"""Each plugin has its own lane: a hanging plugin delays only its own deliveries."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from typing import Any

from ehcbridge import hookimpl
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Plan, Pupil, ReviewKind
from ehcbridge.store import Store
from ehcbridge.store.queue import EngineBusy, EngineLock, last_tick
from ehcbridge.testing import make_app, plugin_module

T0 = datetime(2027, 1, 4, 8, 0, tzinfo=LONDON)
CASES = 12


def add_cases(store: Store, count: int = CASES) -> None:
    for n in range(count):
        case_id = f"EHC-{n:03d}"
        with store.begin() as conn:
            store.upsert_case(conn, pupil=Pupil(forename="Sam", surname="Ex",
                                                dob=date(2014, 5, 2), nc_year=7),
                              plan=Plan(case_id=case_id, issued_on=date(2026, 4, 1)),
                              coordinator_email="senco@school.example.org",
                              review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
        start = datetime(2027, 3, 10, 10, tzinfo=LONDON) + timedelta(days=n)
        store.schedule_meeting(case_id, start=start, end=start + timedelta(hours=1), now=T0)


class Timed:
    """A plugin taking ``seconds`` per call that notes when each call ended."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ended: list[float] = []

    def module(self, name: str) -> Any:
        def on_review_scheduled(event: Any, ctx: Any) -> None:
            time.sleep(self.seconds)
            self.ended.append(time.monotonic())

        return plugin_module(name, on_review_scheduled=hookimpl(on_review_scheduled))


class Hanging:
    """A plugin whose calls never answer (until the test lets them go)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def module(self, name: str) -> Any:
        def on_review_scheduled(event: Any, ctx: Any) -> None:
            self.calls += 1
            self.release.wait(60)

        return plugin_module(name, on_review_scheduled=hookimpl(on_review_scheduled))


def _healthy_finish(store: Store, plugins: dict[str, Any], healthy: Timed) -> float:
    """Seconds from the start of a pass until the healthy plugin's last delivery ended."""
    app = make_app(store, plugins, settings={"engine": {"call_timeout_seconds": 1.5,
                                                        "backoff_base_seconds": 60}})
    add_cases(store)
    engine = Engine(app)
    started = time.monotonic()
    engine.run_once(T0)
    assert len(healthy.ended) == CASES
    return max(healthy.ended) - started


def test_a_hanging_plugin_does_not_delay_the_others(store: Store, tmp_path: Any) -> None:
    alone = Timed(0.05)
    baseline = _healthy_finish(store, {"steady": alone.module("steady")}, alone)

    other = Store(f"sqlite:///{tmp_path / 'second.sqlite3'}")
    hanging, healthy = Hanging(), Timed(0.05)
    started = time.monotonic()
    try:
        with_hang = _healthy_finish(other, {"stuck": hanging.module("stuck"),
                                            "steady": healthy.module("steady")}, healthy)
        took = time.monotonic() - started
        # The healthy plugin finished as fast as alone (a little scheduling noise allowed)...
        assert with_hang < baseline + 0.5, (with_hang, baseline)
        # ...and the pass ended at the time limit, not after twelve hung calls.
        assert took < 1.5 + 3
        assert hanging.calls == 1  # after a time-out the plugin's other deliveries wait
        by_status: dict[str, list[Any]] = {}
        for d in other.deliveries():
            by_status.setdefault(f"{d.plugin}:{d.status}", []).append(d)
        assert len(by_status["steady:delivered"]) == CASES
        [timed_out] = by_status["stuck:retrying"]
        assert timed_out.attempts == 1
        assert timed_out.last_error == "TimeoutError: no answer within 1.5 s"
        assert timed_out.next_attempt_at == T0 + timedelta(seconds=60)
        assert len(by_status["stuck:pending"]) == CASES - 1
        # Nothing stays claimed: the next pass (or another worker) may take them at once.
        assert not [d for d in other.deliveries() if d.status == "pending"
                    and _claimed_by(other, d.id)]
    finally:
        hanging.release.set()
        other.close()


def _claimed_by(store: Store, delivery_id: int) -> str | None:
    from ehcbridge.store import schema as t
    from sqlalchemy import select

    with store.engine.connect() as conn:
        return conn.execute(select(t.deliveries.c.claimed_by)
                            .where(t.deliveries.c.id == delivery_id)).scalar_one()


def test_a_late_answer_after_the_time_limit_is_ignored(store: Store) -> None:
    hanging = Hanging()
    app = make_app(store, {"slow": hanging.module("slow")},
                   settings={"engine": {"call_timeout_seconds": 0.3}})
    add_cases(store, 1)
    Engine(app).run_once(T0)
    hanging.release.set()  # the stuck call returns now, after its attempt was recorded
    time.sleep(0.2)
    [d] = store.deliveries()
    assert d.status == "retrying" and d.attempts == 1


def test_plugins_run_in_parallel_lanes(store: Store) -> None:
    slow_a, slow_b = Timed(0.4), Timed(0.4)
    app = make_app(store, {"a": slow_a.module("a"), "b": slow_b.module("b")})
    add_cases(store, 6)
    Engine(app).run_once(T0)
    assert len(slow_a.ended) == len(slow_b.ended) == 6
    # Side by side, each plugin's first call ends before the other's last one (one after the
    # other, all of one plugin's calls would end before any of the other's).
    assert min(slow_a.ended) < max(slow_b.ended) and min(slow_b.ended) < max(slow_a.ended)


def test_the_pass_time_is_recorded_for_readiness_checks(store: Store) -> None:
    app = make_app(store, {})
    assert last_tick(store) is None
    Engine(app).run_once(T0)
    tick = last_tick(store)
    assert tick is not None and abs((datetime.now(tick.tzinfo) - tick).total_seconds()) < 60


def test_a_second_engine_on_one_sqlite_file_is_refused(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'one.sqlite3'}")
    first, second = EngineLock(store), EngineLock(store)
    first.acquire()
    try:
        try:
            second.acquire()
        except EngineBusy as exc:
            assert "another engine is already running" in str(exc)
            assert "process " in str(exc) and "one.sqlite3.engine-lock" in str(exc)
        else:
            raise AssertionError("the second engine was not refused")
    finally:
        first.release()
    second.acquire()  # free again once the first stopped
    second.release()
    store.close()


def test_a_lane_that_loses_the_database_says_so_in_one_line_and_the_next_pass_delivers(
        store: Store, caplog: Any) -> None:
    # What a restart or failover does to a lane's connection mid-pass (the PostgreSQL test in
    # tests/test_workers.py cuts real connections; which thread meets the cut is chance).
    import logging

    from sqlalchemy.exc import OperationalError

    class AdminShutdown(Exception):
        """Named as psycopg names a connection the server terminated."""

    steady = Timed(0.0)
    app = make_app(store, {"steady": steady.module("steady")})
    add_cases(store)
    engine = Engine(app)
    claim = engine.queue.claim
    cut = [True]  # the first claim meets the cut, the others the database as it comes back

    def claim_once_cut(*args: Any, **kwargs: Any) -> Any:
        if cut:
            cut.pop()
            raise OperationalError("SELECT deliveries for EHC-001", {},
                                   AdminShutdown("terminating connection for EHC-001"))
        return claim(*args, **kwargs)

    engine.queue.claim = claim_once_cut  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="ehcbridge"):
        engine.run_once(T0)
    failed = [r for r in caplog.records if "the database failed" in r.getMessage()]
    assert [r.getMessage() for r in failed] == [
        "the database failed (AdminShutdown); the engine carries on and tries again every "
        f"{app.settings.engine.tick_seconds:g} s"]
    assert not any(r.exc_info for r in caplog.records)  # no traceback, no statement, no case
    assert "EHC-001" not in caplog.text
    engine.run_once(T0)
    assert len(steady.ended) == CASES
