"""Plugin lanes: each plugin's deliveries attempted on its own thread, under a time limit.

A lane claims its plugin's due deliveries in batches and attempts them one after another, so a
slow plugin only ever delays its own deliveries. The engine's thread supervises the lanes: a
call that runs past the plugin's time limit is recorded as a failed attempt (retried later with
the same idempotency key) and its lane is abandoned; the stuck call's thread is left to finish
on its own (Python cannot stop a thread) and whatever it returns is ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from ehcbridge import mail

if TYPE_CHECKING:
    from ehcbridge.store import DeliveryRow
    from ehcbridge.store.queue import DeliveryQueue

log = logging.getLogger("ehcbridge.engine")

BATCH = 25  # deliveries a lane claims at a time: small, so workers share a backlog
MAX_STUCK = 4  # threads of one plugin still stuck in a call before no new lane is started


@dataclass
class Lane:
    """One plugin's run through its due deliveries."""

    plugin: str
    now: datetime
    limit: float
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    current: DeliveryRow | None = None
    started_at: float | None = None  # when the plugin call (not the event's reading) began
    abandoned: bool = False
    done: bool = False
    held: list[int] = field(default_factory=list)

    def begin(self, d: DeliveryRow) -> bool:
        """Mark ``d`` as the call in progress; False when the lane was abandoned."""
        with self.lock:
            if self.abandoned:
                return False
            self.current, self.started_at = d, None
            return True

    def calling(self) -> None:
        """The plugin is being called now: its time limit starts."""
        self.started_at = time.monotonic()

    def settle(self) -> bool:
        """The call returned: True when its outcome may be recorded (no time-out came first)."""
        with self.lock:
            if self.abandoned:
                return False
            self.current = None
            return True

    def overdue(self) -> DeliveryRow | None:
        """Abandon the lane and return its call when that call is past the time limit."""
        with self.lock:
            if (self.current is None or self.abandoned or self.started_at is None
                    or time.monotonic() - self.started_at < self.limit):
                return None
            self.abandoned = True
            return self.current


class Lanes:
    """The running lanes of one engine, started per plugin and supervised by the engine."""

    def __init__(self, queue: DeliveryQueue, attempt: Callable[[DeliveryRow, datetime], str],
                 prepare: Callable[[list[DeliveryRow]], None],
                 timed_out: Callable[[DeliveryRow, datetime, float], str],
                 limit_for: Callable[[str], float], record: Callable[[str], None],
                 earlier_for: Callable[[str], dict[str, list[str]]] | None = None, *,
                 database_failed: Callable[[DBAPIError], None]) -> None:
        self.queue = queue
        self._database_failed = database_failed  # the engine's: one line per outage
        self._earlier_for = earlier_for or (lambda plugin: {})
        self._attempt = attempt
        self._prepare = prepare
        self._timed_out = timed_out
        self._limit_for = limit_for
        self._record = record
        self.running: dict[str, Lane] = {}
        self.stuck: dict[str, list[threading.Thread]] = {}
        self.halted: set[str] = set()  # timed out during this pass: wait for the next one
        self.local = threading.local()
        self._last_renew = time.monotonic()
        self._last_refill = time.monotonic()
        self._now: datetime | None = None
        self.claims = 0  # batches claimed so far, to tell when a pass has no more to do
        self._claims_lock = threading.Lock()

    def start(self, plugins: list[str], now: datetime) -> None:
        """A lane for each plugin that has none running (and is not halted or stuck)."""
        self._now = now
        for plugin in plugins:
            if plugin in self.running or plugin in self.halted:
                continue
            stuck = [th for th in self.stuck.get(plugin, []) if th.is_alive()]
            self.stuck[plugin] = stuck
            if len(stuck) >= MAX_STUCK:
                log.warning("plugin %s has %d calls stuck past its time limit; its deliveries "
                            "wait", plugin, len(stuck))
                continue
            lane = Lane(plugin, now, self._limit_for(plugin))
            lane.thread = threading.Thread(target=self._run, args=(lane,), daemon=True,
                                           name=f"ehcbridge-lane-{plugin}")
            self.running[plugin] = lane
            lane.thread.start()

    def _run(self, lane: Lane) -> None:
        self.local.lane = lane
        try:
            # The lane's messages share SMTP connections rather than opening one each.
            with mail.session():
                self._drain_lane(lane)
        except DBAPIError as exc:
            # A restart or failover cut the lane's connection: the engine says so once, as for
            # its own steps, without a traceback. The lane's claims run out with their leases
            # and a later pass starts a new lane.
            self._database_failed(exc)
        except Exception:  # a store error: the claims run out and another pass retries
            log.exception("lane of plugin %s stopped", lane.plugin)
        finally:
            lane.done = True

    def _drain_lane(self, lane: Lane) -> None:
        while not lane.abandoned:
            batch = self.queue.claim(lane.now, lane.plugin, BATCH,
                                     self._earlier_for(lane.plugin))
            if not batch:
                return
            with self._claims_lock:
                self.claims += 1
            lane.held = [d.id for d in batch]
            self._prepare(batch)
            for d in batch:
                if not lane.begin(d):
                    return
                status = self._attempt(d, lane.now)
                lane.held.remove(d.id)
                if status != "abandoned":
                    self._record(status)

    def lane_of_thread(self) -> Lane | None:
        """The lane the calling thread works for (None on the engine's own thread)."""
        return getattr(self.local, "lane", None)

    def supervise(self, renew_every: float) -> None:
        """Time out overdue calls, forget finished lanes and renew the leases held."""
        for plugin, lane in list(self.running.items()):
            d = lane.overdue()
            if d is not None:
                log.warning("plugin %s gave no answer within %g s for delivery %s; recorded as "
                            "a failed attempt", plugin, lane.limit, d.id)
                self._record(self._timed_out(d, lane.now, lane.limit))
                held = [i for i in lane.held if i != d.id]
                self.queue.release(held)
                self.halted.add(plugin)
                if lane.thread is not None:
                    self.stuck.setdefault(plugin, []).append(lane.thread)
                del self.running[plugin]
            elif lane.done:
                del self.running[plugin]
        if self.running and time.monotonic() - self._last_renew >= renew_every:
            self.queue.renew()
            self._last_renew = time.monotonic()

    def refill(self, every: float = 0.5) -> None:
        """Now and then, a lane for each plugin with deliveries due again: a lane that ran out
        while it waited for another plugin's attempt on the same event starts over."""
        if self._now is None or time.monotonic() - self._last_refill < every:
            return
        self._last_refill = time.monotonic()
        self.start(self.queue.due_plugins(self._now), self._now)

    def wait(self, renew_every: float, poll: float = 0.02) -> None:
        """Supervise until every lane has finished or been abandoned, and no plugin has a
        delivery left that became due meanwhile (one waiting for another plugin's attempt)."""
        self._drain(renew_every, poll)
        while True:
            before = self.claims
            self.refill(every=0.0)
            if not self.running:
                return
            self._drain(renew_every, poll)
            if self.claims == before:  # nothing more could be claimed: done for this pass
                return

    def _drain(self, renew_every: float, poll: float) -> None:
        while self.running:
            lane = next(iter(self.running.values()))
            if lane.thread is not None:
                lane.thread.join(poll)
            self.supervise(renew_every)
            if self.running:
                self.refill()

    def busy(self) -> bool:
        """True while a lane is still working."""
        return bool(self.running)
