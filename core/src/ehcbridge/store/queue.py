"""The delivery queue shared by engine workers: claims with a lease, set writes, the leader lock.

The pattern of the established PostgreSQL job queues: a worker claims a batch of due deliveries
with ``SELECT ... FOR UPDATE SKIP LOCKED`` and stamps them with its name and a lease; it renews
the lease while it works and clears the claim when it records the outcome. A worker that dies
keeps its claims only until the lease runs out; then any other worker takes them. Firing timers
and creating deliveries (dispatch) is done by one worker at a time, the holder of an advisory
lock, so each timer fires once. On SQLite one engine runs at a time (a file lock).
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import make_url

from ehcbridge.store import schema as t

if TYPE_CHECKING:
    from ehcbridge.store import DeliveryRow, Store

ENGINE_STATE = "_engine"  # plugin_state namespace of the engine's own keys
LAST_TICK = "last_tick"  # when an engine last finished a pass: {"at": ISO time, "worker": name}


class EngineBusy(Exception):
    """Another engine already runs on this SQLite database."""


def worker_name() -> str:
    """A name for this process that says where it runs: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: str) -> bool:
    """True unless ``pid`` is certainly not a running process (a reused pid counts as alive)."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def wall_clock() -> datetime:
    """Real time in UTC for leases, whatever ``--now`` the engine pretends."""
    from ehcbridge.store import utcnow

    return utcnow()


class DeliveryQueue:
    """Claims, renews and settles deliveries for one worker."""

    def __init__(self, store: Store, worker: str, lease_seconds: float) -> None:
        self.store = store
        self.worker = worker
        self.lease = timedelta(seconds=lease_seconds)

    def _claimable(self, now: datetime, wall: datetime) -> Any:
        d = t.deliveries
        return and_(d.c.status.in_(("pending", "retrying")), d.c.next_attempt_at <= now,
                    or_(d.c.lease_until.is_(None), d.c.lease_until < wall))

    def due_plugins(self, now: datetime) -> list[str]:
        """Plugins with deliveries due now that no live worker holds."""
        d = t.deliveries
        with self.store.engine.connect() as conn:
            return sorted(conn.execute(select(d.c.plugin).distinct()
                                       .where(self._claimable(now, wall_clock()))).scalars())

    def count_due(self, now: datetime) -> int:
        """How many deliveries are due now and not held by a live worker."""
        d = t.deliveries
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(d)
                                    .where(self._claimable(now, wall_clock()))).scalar_one())

    def claim(self, now: datetime, plugin: str, limit: int = 100,
              earlier: dict[str, list[str]] | None = None) -> list[DeliveryRow]:
        """Take up to ``limit`` due deliveries of one plugin for this worker, oldest first.

        ``earlier`` gives, per hook, the plugins that come before this one: a delivery waits
        while one of theirs for the same event has not been attempted yet (so a ``trylast``
        plugin sees what the others did), however long their attempt then takes."""
        from ehcbridge.store import _delivery_row

        d = t.deliveries
        wall = wall_clock()
        cond = and_(d.c.plugin == plugin, self._claimable(now, wall))
        waits = [(hook, names) for hook, names in (earlier or {}).items() if names]
        if waits:
            first = t.deliveries.alias("first")
            cond = and_(cond, ~or_(*[and_(d.c.hook == hook, select(first.c.id).where(and_(
                first.c.event_id == d.c.event_id, first.c.hook == hook,
                first.c.plugin.in_(names), first.c.status == "pending",
                first.c.attempts == 0)).exists()) for hook, names in waits]))
        with self.store.begin() as conn:
            ids = list(conn.execute(
                select(d.c.id).where(cond)
                .order_by(d.c.next_attempt_at, d.c.id).limit(limit)
                .with_for_update(skip_locked=True)).scalars())
            if not ids:
                return []
            conn.execute(update(d).where(d.c.id.in_(ids))
                         .values(claimed_by=self.worker, lease_until=wall + self.lease))
            rows = conn.execute(select(d, t.events.c.key.label("event_key"))
                                .join(t.events, t.events.c.id == d.c.event_id)
                                .where(d.c.id.in_(ids))
                                .order_by(d.c.next_attempt_at, d.c.id)).all()
        return [_delivery_row(r) for r in rows]

    def renew(self) -> int:
        """Extend the lease of every delivery this worker holds; returns how many."""
        d = t.deliveries
        with self.store.begin() as conn:
            result = conn.execute(update(d).where(and_(
                d.c.claimed_by == self.worker, d.c.status.in_(("pending", "retrying"))))
                .values(lease_until=wall_clock() + self.lease))
        return int(result.rowcount or 0)

    def finish(self, delivery_id: int, *, status: str, attempts: int, next_attempt_at: datetime,
               error: str | None, now: datetime) -> bool:
        """Record one attempt's outcome and drop the claim; False when this worker no longer held
        it (its lease ran out and another worker took it over)."""
        with self.store.one_statement() as conn:  # one UPDATE: no transaction around it
            result = conn.execute(_FINISH, dict(
                delivery=delivery_id, worker=self.worker, new_status=status,
                new_attempts=attempts, next_at=next_attempt_at, error=error,
                finished=now if status not in ("pending", "retrying") else None))
        return bool(result.rowcount)

    def release(self, ids: list[int] | None = None) -> None:
        """Give back claims (all of this worker's, or the given ones) without an attempt."""
        d = t.deliveries
        cond = d.c.claimed_by == self.worker
        if ids is not None:
            if not ids:
                return
            cond = and_(cond, d.c.id.in_(ids))
        with self.store.begin() as conn:
            conn.execute(update(d).where(cond).values(claimed_by=None, lease_until=None))

    def release_dead_local_claims(self) -> list[str]:
        """Free at once the claims of workers on this machine whose process is gone (a crash,
        SIGKILL), instead of waiting for their leases; returns their names. Workers elsewhere,
        or named by ``engine.worker_name``, keep their claims until the lease runs out."""
        d = t.deliveries
        host = socket.gethostname()
        with self.store.engine.connect() as conn:
            holders = list(conn.execute(select(d.c.claimed_by).distinct()
                                        .where(d.c.claimed_by.like(f"{host}:%"))).scalars())
        dead = [h for h in holders if h != self.worker and not _alive(h.rsplit(":", 1)[1])]
        if dead:
            with self.store.begin() as conn:
                conn.execute(update(d).where(d.c.claimed_by.in_(dead))
                             .values(claimed_by=None, lease_until=None))
        return dead

    def release_all_claims(self) -> None:
        """Forget every worker's claims (SQLite: the one engine just started, so any claim
        belongs to an engine that died)."""
        d = t.deliveries
        with self.store.begin() as conn:
            conn.execute(update(d).where(d.c.claimed_by.is_not(None))
                         .values(claimed_by=None, lease_until=None))

    # Dispatch (leader only) ----------------------------------------------------------------

    def open_deliveries(self, event_ids: list[int], hook: str) -> dict[int, str]:
        """Status of each given event's delivery for ``hook`` (the online meeting provider's)."""
        d = t.deliveries
        out: dict[int, str] = {}
        with self.store.engine.connect() as conn:
            for i in range(0, len(event_ids), 500):
                for event_id, status in conn.execute(
                        select(d.c.event_id, d.c.status).where(and_(
                            d.c.event_id.in_(event_ids[i:i + 500]), d.c.hook == hook))):
                    out[event_id] = status
        return out

    def dispatch_many(self, items: list[tuple[int, list[str], str]], now: datetime) -> None:
        """For each (event id, plugins, hook): a pending delivery per plugin that has none, and
        the event marked dispatched, all in one transaction."""
        if not items:
            return
        d = t.deliveries
        ids = [event_id for event_id, _, _ in items]
        with self.store.begin() as conn:
            have = {(e, p, h) for e, p, h in conn.execute(
                select(d.c.event_id, d.c.plugin, d.c.hook).where(d.c.event_id.in_(ids)))}
            rows = [dict(event_id=e, plugin=p, hook=h, status="pending", attempts=0,
                         next_attempt_at=now, created_at=now)
                    for e, plugins, h in items for p in plugins if (e, p, h) not in have]
            if rows:
                conn.execute(insert(d), rows)
            conn.execute(update(t.events).where(t.events.c.id.in_(ids)).values(dispatched=True))

    @contextmanager
    def leader(self) -> Iterator[bool]:
        """True inside when this worker may fire timers and dispatch: on PostgreSQL the holder of
        an advisory lock (per schema), released when the block ends or the worker dies."""
        if self.store.backend != "postgresql":
            yield True
            return
        key = select(func.hashtext(func.concat("ehcbridge-engine:", func.current_schema())))
        conn = self.store.engine.connect()
        try:
            got = bool(conn.execute(select(func.pg_try_advisory_lock(key.scalar_subquery())))
                       .scalar_one())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(select(func.pg_advisory_unlock(key.scalar_subquery())))
                    conn.commit()
        finally:
            conn.close()

    # Engine state readable by others (serve's /readyz) -------------------------------------

    def record_tick(self, at: datetime) -> None:
        """Note that this worker finished a pass: ``_engine``/``last_tick`` (any worker) and
        ``_engine``/``worker:<name>`` (this one) in plugin_state."""
        value = {"at": at.isoformat(), "worker": self.worker}
        self.store.set_state_many(ENGINE_STATE, {LAST_TICK: value,
                                                 f"worker:{self.worker}": value})


_d = t.deliveries
# Built once (a finish per delivery): its compiled form is found by a cache key computed once.
# (Bound names differ from the columns': SQLAlchemy keeps those for SET.)
_FINISH = update(_d).where(and_(
    _d.c.id == bindparam("delivery"),
    or_(_d.c.claimed_by == bindparam("worker"), _d.c.claimed_by.is_(None)))).values(
    status=bindparam("new_status"), attempts=bindparam("new_attempts"),
    next_attempt_at=bindparam("next_at"), last_error=bindparam("error"),
    finished_at=bindparam("finished"), claimed_by=None, lease_until=None)


def upsert_state(conn: Connection, plugin: str, items: dict[str, Any], now: datetime) -> None:
    """Insert or replace plugin_state rows (ON CONFLICT DO UPDATE, which SQLite and PostgreSQL
    both have) as one cached statement, executemany: plugins write state on every delivery."""
    rows = [dict(plugin=plugin, key=k, value=v, updated_at=now) for k, v in items.items()]
    conn.execute(_upsert_statement(conn.dialect.name), rows)


def insert_ignoring_conflict(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """Insert one row unless its primary key is taken (ON CONFLICT DO NOTHING, on SQLite and
    PostgreSQL alike: no failed statement to roll back); True when it was inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert: Any = (postgresql.insert if conn.dialect.name == "postgresql"
                           else sqlite.insert)
    # RETURNING, not rowcount: PostgreSQL drivers do not report rowcount for this reliably.
    key = next(iter(table.primary_key.columns))
    return conn.execute(dialect_insert(table).values(**values).on_conflict_do_nothing()
                        .returning(key)).first() is not None


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    # One statement object per dialect, so SQLAlchemy compiles it once, not per delivery.
    from sqlalchemy.dialects import postgresql, sqlite

    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t.plugin_state)
    return stmt.on_conflict_do_update(
        index_elements=[t.plugin_state.c.plugin, t.plugin_state.c.key],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at})


def last_tick(store: Store) -> datetime | None:
    """When an engine last finished a pass (wall clock, UTC), or None if none ever did."""
    value = store.get_state(ENGINE_STATE, LAST_TICK)
    if not isinstance(value, dict) or "at" not in value:
        return None
    return datetime.fromisoformat(value["at"])


def workers_seen(store: Store, since: datetime) -> list[str]:
    """Workers that finished a pass at or after ``since``."""
    return sorted(v["worker"] for _, v in store.state_items(ENGINE_STATE, "worker:")
                  if isinstance(v, dict) and datetime.fromisoformat(v["at"]) >= since)


class EngineLock:
    """One engine per SQLite database: an exclusive ``flock`` on a file beside it, released by
    the kernel when the process ends, however it ends."""

    def __init__(self, store: Store) -> None:
        database = make_url(store.url).database
        self.path = Path(f"{database}.engine-lock") if database and database != ":memory:" \
            else None
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise EngineBusy naming the engine that holds it."""
        if self.path is None:
            return
        import fcntl

        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "{}"
            fh.close()
            try:
                info = json.loads(holder)
            except ValueError:
                info = {}
            raise EngineBusy(
                f"another engine is already running on this database: process "
                f"{info.get('pid', '?')} on {info.get('host', '?')}, started "
                f"{info.get('started', '?')} (lock file {self.path}). SQLite allows one engine; "
                "stop it first, or use PostgreSQL to run several workers.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": wall_clock().isoformat(timespec="seconds")}))
        fh.flush()
        os.chmod(self.path, 0o600)
        self._fh = fh

    def release(self) -> None:
        """Let another engine start."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

