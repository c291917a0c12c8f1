"""The engine: turns due timers into events and delivers each event to each plugin exactly once.

Every lifecycle change is written to the ``events`` table in the same transaction as the change
(an outbox). The engine creates one delivery row per (event, plugin), calls each plugin on its own
and records the outcome, so a crash at any point leaves a row to retry with the same idempotency
key, and a failing plugin only ever reschedules its own row.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState, Retrying, wait_exponential

from ehcbridge import NotConfigured, PermanentError, Skipped
from ehcbridge.app import App
from ehcbridge.events import LifecycleEvent, OnlineMeeting, Schedule
from ehcbridge.invite_rules import PlanDetails, details_by_case, ensure_rule_invitees
from ehcbridge.lanes import Lanes
from ehcbridge.lifecycle import HOOK_REVIEW_SCHEDULED
from ehcbridge.list_notices import queue_due_lists
from ehcbridge.models import Duty, Meeting, MeetingStatus
from ehcbridge.notices import NOTICE_HOOK
from ehcbridge.notices import delivery as notices
from ehcbridge.online import NO_PROVIDER_FLAG, PROVIDER_HOOK, no_provider_detail
from ehcbridge.redact import redact
from ehcbridge.retry import MAX_RETRY_AFTER, read_retry_after
from ehcbridge.routing import ensure_family_invitees, ensure_team_invitees
from ehcbridge.store import (
    DEAD,
    DELIVERED,
    OPEN_STATUSES,
    RETRYING,
    SKIPPED,
    CaseView,
    DeliveryRow,
    EventRow,
    reads,
)
from ehcbridge.store.queue import DeliveryQueue, wall_clock, worker_name

log = logging.getLogger("ehcbridge.engine")

# tenacity computes the waits; the engine schedules them instead of sleeping, so one failing
# delivery never holds up another.
_RETRYING = Retrying()
LIFECYCLE_HOOKS = ("on_review_scheduled", "on_views_due", "on_meeting_held", "on_decision")


@dataclass
class TickReport:
    """What one pass of the engine did."""

    timers_fired: int = 0
    events_dispatched: int = 0
    deadlines: int = 0  # duties that became at risk or missed
    attempts: Counter[str] = field(default_factory=Counter)  # by resulting status

    def merge(self, other: TickReport) -> None:
        """Add another pass's figures to this one."""
        self.timers_fired += other.timers_fired
        self.deadlines += other.deadlines
        self.events_dispatched += other.events_dispatched
        self.attempts.update(other.attempts)


def retry_after_of(exc: BaseException, now: datetime | None = None) -> float | None:
    """A Retry-After carried by an exception: ``retry_after`` or an HTTP response header."""
    return requested_wait(exc, now)[0]


def requested_wait(exc: BaseException, now: datetime | None = None) -> tuple[float | None, bool]:
    """The wait an exception asks for, clamped to a day, and whether it asked for longer."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            try:
                value = headers.get("Retry-After")
            except Exception:  # a plugin's odd header object must not stop the engine
                value = None
    return read_retry_after(value, now)


class Engine:
    """Fires lifecycle hooks for one App; one worker among possibly several (PostgreSQL)."""

    def __init__(self, app: App, *, worker: str | None = None) -> None:
        self.app = app
        s = app.settings.engine
        self._wait = wait_exponential(multiplier=s.backoff_base_seconds,
                                      max=s.backoff_max_seconds)
        self.worker = worker or s.worker_name or worker_name()
        self.queue = DeliveryQueue(app.store, self.worker, s.lease_seconds)
        self.lanes = Lanes(self.queue, self.attempt, self._prepare, self._timed_out,
                           self._call_limit, self._count, self._earlier,
                           database_failed=self._database_failed)
        # Per pass: rows and events already read, shared by the lanes.
        self._events: dict[int, LifecycleEvent] = {}
        self._rows: dict[int, EventRow] = {}
        self._cases: dict[int, CaseView] = {}
        self._meetings: dict[int, Meeting] = {}
        self._report = TickReport()
        self._report_lock = threading.Lock()
        self._wake = threading.Event()  # a provider answered: its events can go out now
        self._outage = False  # the database failed at the last step of run_forever
        # Called with (deliveries attempted so far, 0) from the lanes while a pass delivers.
        self.progress: Callable[[int, int], None] | None = None

    # One pass --------------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> TickReport:
        """Fire due timers, dispatch new events and attempt every delivery that is due,
        returning when every plugin's lane has finished (or timed out)."""
        now = now or self.app.clock.now()
        report = self._pass(now, wait=True)
        self.queue.record_tick(wall_clock())
        return report

    def _pass(self, now: datetime, *, wait: bool) -> TickReport:
        self.app.start_plugins()
        if not self.lanes.busy():  # lanes still working keep what they read
            self._clear_caches()
        with self._report_lock:
            self._report = report = TickReport()
        self.lanes.halted.clear()
        # Provider deliveries unblock their events, so dispatch and deliver until nothing moves.
        for _ in range(3):
            with self.queue.leader() as leading:
                dispatched = self._fire_and_dispatch(now, report) if leading else 0
            before = sum(report.attempts.values())
            started = self._deliver(now, wait)
            if not wait or (not dispatched and not started
                            and sum(report.attempts.values()) == before):
                break
        return report

    def _fire_and_dispatch(self, now: datetime, report: TickReport) -> int:
        store = self.app.store
        from ehcbridge import transitions

        policy = transitions.policy_of(self.app)
        report.timers_fired += transitions.fire_timers(store, now, policy=policy)
        report.deadlines += transitions.check_deadlines(store, now, policy)
        queue_due_lists(self.app, now)  # the termly lists, once per term, before it starts
        self._links_now_possible(now)
        dispatched = self._dispatch(now)
        report.events_dispatched += dispatched
        return dispatched

    def _links_now_possible(self, now: datetime) -> None:
        """Meetings that went out without a link for want of a provider get one once a
        provider is configured: an update event asks it, and the others send the link."""
        provider = self.app.settings.engine.online_meetings
        if not provider or provider not in self.app.plugins.implementers(PROVIDER_HOOK):
            return
        if not self.app.store.flag_count(NO_PROVIDER_FLAG, current_only=True):  # one count
            return
        for row in self.app.store.list_reviews(flag=NO_PROVIDER_FLAG):
            self.app.store.request_meeting_update(row["case_id"], f"link-{provider}", now=now)

    def _clear_caches(self) -> None:
        self._events.clear()
        self._rows.clear()
        self._cases.clear()
        self._meetings.clear()

    def _count(self, status: str) -> None:
        with self._report_lock:
            self._report.attempts[status] += 1
            done = sum(self._report.attempts.values())
        if self.progress is not None:
            self.progress(done, 0)

    def _dispatch(self, now: datetime) -> int:
        count = 0
        after = 0
        while True:
            batch = reads.undispatched_after(self.app.store, after)
            if not batch:
                return count
            after = batch[-1].id
            count += self._dispatch_batch(batch, now)
            if len(batch) < 500:
                return count

    def _dispatch_batch(self, batch: list[EventRow], now: datetime) -> int:
        """Route invitees and create the deliveries of a batch of events, with set reads."""
        store = self.app.store
        plugins = self.app.plugins
        provider = self.app.settings.engine.online_meetings
        scheduled = [ev for ev in batch if ev.hook == HOOK_REVIEW_SCHEDULED]
        waiting: dict[int, str] = {}
        if provider and scheduled:
            waiting = self.queue.open_deliveries([ev.id for ev in scheduled], PROVIDER_HOOK)
        # Routing happens once per change: not again while the event waits for its link.
        fresh = [ev for ev in scheduled if ev.id not in waiting]
        # The cases of the batch's notices too: composing them read each case on its own.
        cases = reads.cases_by_review(store, {ev.review_id for ev in fresh} | {
            ev.review_id for ev in batch if (ev.hook, ev.action) in notices.TRIGGERS})
        details = details_by_case(store, [c.plan.case_id for c in cases.values()])
        meetings = reads.meetings_by_id(store, {ev.meeting_id for ev in fresh
                                                if ev.meeting_id is not None})
        ready: list[EventRow] = []
        linkless: list[tuple[int, int, str]] = []
        notice_plugins: dict[int, list[str]] = {}
        for ev in batch:
            if ev.hook == NOTICE_HOOK:  # one notice: only its channel's plugin delivers it
                notice_plugins[ev.id] = notices.plugins_for(self.app, ev)
                ready.append(ev)
                continue
            # The notices this event calls for, once, from the case as this batch last saw it.
            notices.queue_for_event(self.app, ev, now, cases.get(ev.review_id))
            if ev.hook != HOOK_REVIEW_SCHEDULED:
                ready.append(ev)
                continue
            if ev.id in waiting:
                if waiting[ev.id] not in OPEN_STATUSES:
                    ready.append(ev)  # the provider answered (or gave up): everyone else now
                continue
            case = cases[ev.review_id]
            if ev.action != "cancelled":
                changed = ensure_family_invitees(self.app, case.plan.case_id, case)
                changed |= ensure_team_invitees(self.app, case.plan.case_id, case)
                changed |= bool(ensure_rule_invitees(
                    self.app, case.plan.case_id, case,
                    details.get(case.plan.case_id, PlanDetails())))
                if changed:  # a later event of this review sees the new invitees
                    cases[ev.review_id] = store.case_by_review(ev.review_id)
                # Once routed: anyone new since the views stage is asked for views too.
                notices.queue_late_requests(self.app, cases[ev.review_id], now)
            meeting = meetings.get(ev.meeting_id or 0)
            if not provider:  # not silent: the review says why, and doctor warns
                self._no_provider(ev, "engine.online_meetings is not set", cases[ev.review_id],
                                  meeting, linkless)
            # A meeting that went in person still has the provider's meeting to remove.
            if provider and meeting is not None and (meeting.online or meeting.external_id):
                if provider not in plugins.implementers(PROVIDER_HOOK):
                    if meeting.online:
                        reason = f"online meeting provider {provider!r} is not loaded"
                        store.set_meeting_link(meeting.id or 0, provider=None, join_url=None,
                                               external_id=None, error=reason)
                        store.flag_review(case.plan.case_id, "online_meeting_failed", reason,
                                          raised_by="engine")
                else:
                    d = store.ensure_delivery(ev.id, provider, PROVIDER_HOOK, now)
                    if d.status in OPEN_STATUSES:
                        continue  # every other plugin waits for the link
            ready.append(ev)
        if linkless:
            store.mark_linkless(linkless, NO_PROVIDER_FLAG)
        self.queue.dispatch_many([(ev.id, notice_plugins[ev.id] if ev.id in notice_plugins
                                   else plugins.implementers(ev.hook), ev.hook)
                                  for ev in ready], now)
        for ev in scheduled:  # routing may have changed these cases since the lanes read them
            self._cases.pop(ev.review_id, None)
            self._meetings.pop(ev.meeting_id or 0, None)
        return len(ready)

    def _deliver(self, now: datetime, wait: bool) -> int:
        """Start a lane for each plugin with due deliveries; with ``wait``, supervise them until
        all are done. Returns how many lanes were started."""
        due = self.queue.due_plugins(now)
        before = len(self.lanes.running)
        self.lanes.start(due, now)
        started = len(self.lanes.running) - before
        if wait:
            self.lanes.wait(self._renew_every())
        else:
            self.lanes.supervise(self._renew_every())
        return started

    def _renew_every(self) -> float:
        return self.app.settings.engine.lease_seconds / 3

    def _earlier(self, plugin: str) -> dict[str, list[str]]:
        """Per lifecycle hook, the plugins called before ``plugin`` for one event (by name,
        ``tryfirst`` first and ``trylast`` last), whose first attempt it waits for."""
        out = {}
        for hook in LIFECYCLE_HOOKS:
            order = self.app.plugins.implementers(hook)
            if plugin in order:
                out[hook] = order[:order.index(plugin)]
        return out

    def _call_limit(self, plugin: str) -> float:
        s = self.app.settings.engine
        return float(s.call_timeouts.get(plugin, s.call_timeout_seconds))

    def _prepare(self, batch: list[DeliveryRow]) -> None:
        """Read the events, cases and meetings of a lane's batch in a few queries."""
        store = self.app.store
        missing = [d.event_id for d in batch if d.event_id not in self._rows]
        rows = reads.events_by_id(store, missing)
        self._rows.update(rows)
        review_ids = {r.review_id for r in rows.values() if r.review_id not in self._cases}
        self._cases.update(reads.cases_by_review(store, review_ids))
        self._meetings.update(reads.meetings_by_id(store, {
            r.meeting_id for r in rows.values()
            if r.meeting_id is not None and r.meeting_id not in self._meetings}))

    def _timed_out(self, d: DeliveryRow, now: datetime, limit: float) -> str:
        """Record a call that ran past its time limit as a failed attempt."""
        attempts = d.attempts + 1
        message = f"TimeoutError: no answer within {limit:g} s"
        if attempts >= self.app.settings.engine.max_attempts:
            if d.hook == PROVIDER_HOOK:
                self._provider_failed(self._event_row(d.event_id), d.plugin, message)
            return self._finish(d, DEAD, attempts, now, message)
        state = RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        return self._finish(d, RETRYING, attempts, now, message,
                            next_at=now + timedelta(seconds=self._wait(state)))

    def _event_row(self, event_id: int) -> EventRow:
        row = self._rows.get(event_id)
        if row is None:
            row = self._rows[event_id] = self.app.store.event(event_id)
        return row

    # One delivery ----------------------------------------------------------------------------

    def attempt(self, d: DeliveryRow, now: datetime) -> str:
        """Call one plugin for one event and record the outcome; returns the new status."""
        # The plugin's calls find the case's current review as the lane's batch read it,
        # without a query each (a first run makes tens of thousands).
        ev = self._rows.get(d.event_id)
        case = self._cases.get(ev.review_id) if ev is not None and ev.review_id else None
        known = ({case.plan.case_id: case.review.id}
                 if case is not None and case.current and case.review.id else None)
        with self.app.store.one_delivery(known):
            return self._attempt(d, now)

    def _attempt(self, d: DeliveryRow, now: datetime) -> str:
        store = self.app.store
        ev = self._event_row(d.event_id)
        try:
            kwargs: dict[str, Any] = ({"notice": notices.notice_for(self.app, ev)}
                                      if d.hook == NOTICE_HOOK
                                      else {"event": self.build_event(ev, now)})
        except Exception as exc:  # the case vanished or the data is inconsistent
            log.exception("cannot build event %s", ev.key)
            return self._finish(d, DEAD, d.attempts + 1, now, f"cannot build event: {exc}")
        lane = self.lanes.lane_of_thread()
        if lane is not None:
            lane.calling()  # the time limit covers the plugin's call only
        outcomes = self.app.plugins.call_each(d.hook, plugins=[d.plugin],
                                              ctx=self.app.plugin_context, **kwargs)
        if not outcomes:
            return self._finish(d, SKIPPED, d.attempts, now, "plugin not loaded")
        outcome = outcomes[0]
        attempts = d.attempts + 1
        if outcome.error is None:
            if d.hook == PROVIDER_HOOK:
                self._store_link(ev, outcome.result, d.plugin)
            if d.hook == NOTICE_HOOK:
                # The case as the lane's batch read it, when it did (a termly list belongs
                # to no review).
                notices.delivered(self.app, ev, d.plugin, outcome.result, now,
                                  self._cases.get(ev.review_id) if ev.review_id else None)
            return self._finish(d, DELIVERED, attempts, now, None)
        error = outcome.error
        message = redact(f"{type(error).__name__}: {error}")  # stored and shown: no secrets
        if isinstance(error, NotConfigured):
            if d.hook == PROVIDER_HOOK:
                self._no_provider(ev, f"{d.plugin} is not configured: {error}")
            return self._finish(d, SKIPPED, attempts, now, f"not configured: {redact(str(error))}")
        if isinstance(error, Skipped):
            return self._finish(d, SKIPPED, attempts, now, redact(str(error)))
        max_attempts = self.app.settings.engine.max_attempts
        if isinstance(error, PermanentError) or attempts >= max_attempts:
            if d.hook == PROVIDER_HOOK:
                self._provider_failed(ev, d.plugin, message)
            elif d.hook == "on_review_scheduled":  # its unsent invitations are free again
                store.release_invitations(store.case_by_review(ev.review_id).plan.case_id,
                                          plugin=d.plugin, detail=message[:200],
                                          unsent_only=True)
            elif d.hook == NOTICE_HOOK:
                notices.failed(self.app, ev, d.plugin, message)
            log.warning("delivery %s of %s to %s is dead after %d attempts", d.id, ev.key,
                        d.plugin, attempts)
            return self._finish(d, DEAD, attempts, now, message)
        delay, capped = requested_wait(error, now)
        if capped:
            # A remote server or plugin asked for longer than a day: wait a day and say so.
            message += f" (asked to wait longer than {MAX_RETRY_AFTER / 3600:.0f} h; retrying then)"
            log.warning("delivery %s of %s to %s asked to wait too long; waiting %d s", d.id,
                        ev.key, d.plugin, MAX_RETRY_AFTER)
        if delay is None:
            state = RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
            state.attempt_number = attempts
            delay = self._wait(state)
        return self._finish(d, RETRYING, attempts, now, message,
                            next_at=now + timedelta(seconds=delay))

    def _finish(self, d: DeliveryRow, status: str, attempts: int, now: datetime,
                error: str | None, next_at: datetime | None = None) -> str:
        lane = self.lanes.lane_of_thread()
        if lane is not None and lane.current is d and not lane.settle():
            return "abandoned"  # the time limit came first and was recorded as the attempt
        if not self.queue.finish(d.id, status=status, attempts=attempts,
                                 next_attempt_at=next_at or now, error=error, now=now):
            log.warning("delivery %s: another worker took it over after this one's lease ran "
                        "out; outcome %s not recorded", d.id, status)
        return status

    def _store_link(self, ev: EventRow, result: Any, plugin: str) -> None:
        if ev.meeting_id is None:
            return
        store = self.app.store
        if isinstance(result, OnlineMeeting):
            before = store.meeting(ev.meeting_id).join_url
            store.set_meeting_link(ev.meeting_id, provider=result.provider,
                                   join_url=result.join_url, external_id=result.external_id)
            case = store.case_by_review(ev.review_id)
            store.clear_flag(case.plan.case_id, "online_meeting_failed")
            store.clear_flag(case.plan.case_id, NO_PROVIDER_FLAG)
            if result.join_url != before and self._already_sent(ev, plugin):
                # The link came after the invitations went out (a retried provider): the
                # other plugins send it as an update.
                digest = hashlib.sha256(result.join_url.encode()).hexdigest()[:12]
                store.request_meeting_update(case.plan.case_id, f"link-{digest}",
                                             now=self.app.clock.now())
        elif result is None and not store.meeting(ev.meeting_id).online:
            # The provider removed its meeting: nobody should be shown a stale link.
            store.clear_meeting_link(ev.meeting_id)
            store.clear_flag(store.case_by_review(ev.review_id).plan.case_id, NO_PROVIDER_FLAG)
        self._forget(ev)
        self._wake.set()

    def _forget(self, ev: EventRow) -> None:
        """Drop what was read about this event's case: its link changed."""
        self._events.pop(ev.id, None)
        self._cases.pop(ev.review_id, None)
        self._meetings.pop(ev.meeting_id or 0, None)

    def _no_provider(self, ev: EventRow, why: str, case: CaseView | None = None,
                     meeting: Meeting | None = None,
                     pending: list[tuple[int, int, str]] | None = None) -> None:
        """Flag an online meeting that will go out without a link (not silently); ``case``
        and ``meeting`` as already read, when the caller has them."""
        store = self.app.store
        if meeting is None:
            meeting = self._meeting(ev)
        if case is None:
            case = self._case(ev.review_id)
        if meeting is None or not meeting.online or meeting.join_url or ev.action == "cancelled":
            if meeting is None or not meeting.online or ev.action == "cancelled":
                # In person or cancelled now: no link is owed any more.
                if pending is not None:  # nor by an earlier event of this batch
                    pending[:] = [m for m in pending if m[1] != ev.review_id]
                if NO_PROVIDER_FLAG in case.flags:
                    store.clear_flag(case.plan.case_id, NO_PROVIDER_FLAG)
            return
        mark = (meeting.id or 0, ev.review_id, no_provider_detail(why))
        if pending is None:
            store.mark_linkless([mark], NO_PROVIDER_FLAG)
        else:
            pending.append(mark)  # the caller writes a batch's marks in one transaction
        self._forget(ev)

    def _already_sent(self, ev: EventRow, provider: str) -> bool:
        """True when another plugin already handled this event (so it went out linkless)."""
        return any(d.event_id == ev.id and d.plugin != provider and d.status == DELIVERED
                   for d in self.app.store.deliveries(case_id=self.app.store.case_by_review(
                       ev.review_id).plan.case_id))

    def _provider_failed(self, ev: EventRow, plugin: str, message: str) -> None:
        store = self.app.store
        if ev.meeting_id is not None:
            store.set_meeting_link(ev.meeting_id, provider=None, join_url=None, external_id=None,
                                   error=f"{plugin}: {message}")
        case = store.case_by_review(ev.review_id)
        store.flag_review(case.plan.case_id, "online_meeting_failed", f"{plugin}: {message}",
                          raised_by="engine")
        # Whoever the provider meant to invite may now be invited by another plugin.
        store.release_invitations(case.plan.case_id, plugin=plugin, detail=message[:200],
                                  unsent_only=True)
        self._forget(ev)
        self._wake.set()

    # Building the event a plugin sees ----------------------------------------------------------

    def _meeting(self, ev: EventRow) -> Meeting | None:
        if ev.meeting_id is None:
            return None
        meeting = self._meetings.get(ev.meeting_id)
        if meeting is None:
            meeting = self._meetings[ev.meeting_id] = self.app.store.meeting(ev.meeting_id)
        return meeting

    def _case(self, review_id: int) -> CaseView:
        case = self._cases.get(review_id)
        if case is None:
            case = self._cases[review_id] = self.app.store.case_by_review(review_id)
        return case

    def build_event(self, ev: EventRow, now: datetime) -> LifecycleEvent:
        """The immutable event for an outbox row, as the case stands now."""
        cached = self._events.get(ev.id)
        if cached is not None:
            return cached
        case = self._case(ev.review_id)
        meeting = self._meeting(ev) or case.meeting
        previous = None
        prev = ev.payload.get("previous")
        if prev and meeting is not None:
            previous = meeting.model_copy(update={
                "start": datetime.fromisoformat(prev["start"]),
                "end": datetime.fromisoformat(prev["end"]),
                "location": prev.get("location"), "sequence": max(meeting.sequence - 1, 0),
                "status": MeetingStatus.SCHEDULED})
        milestones = self.app.milestones(case, meeting)
        event = LifecycleEvent(
            hook=ev.hook, action=ev.action, idempotency_key=ev.key, occurred_at=ev.occurred_at,
            review=case.review, plan=case.plan, pupil=case.pupil, meeting=meeting,
            previous_meeting=previous, invitees=tuple(case.invitees),
            milestones=tuple(milestones), decision=case.decision,
            reason=ev.payload.get("reason") or None,
            duty=Duty.model_validate(ev.payload["duty"]) if ev.payload.get("duty") else None,
        )
        self._events[ev.id] = event
        return event

    # The loop --------------------------------------------------------------------------------

    def schedules(self) -> list[tuple[str, Schedule]]:
        """Periodic jobs registered by plugins, as (plugin, schedule)."""
        found: list[tuple[str, Schedule]] = []
        for record in self.app.plugins.loaded():
            jobs: list[Schedule] = []

            def register(name: str, cron: str, func: Any, _jobs: list[Schedule] = jobs) -> None:
                _jobs.append(Schedule(name, cron, func))

            outcomes = self.app.plugins.call_each("register_schedules", plugins=[record.name],
                                                  register=register, ctx=self.app.plugin_context)
            for outcome in outcomes:
                if outcome.error is not None:
                    log.error("plugin %s could not register schedules: %s", record.name,
                              outcome.error)
            found.extend((record.name, job) for job in jobs)
        return found

    def run_schedules(self, now: datetime, jobs: list[tuple[str, Schedule]]) -> list[str]:
        """Run each job whose cron time has come since its last run; returns the names run."""
        from croniter import croniter

        ran = []
        store = self.app.store
        for plugin, job in jobs:
            key = f"schedule:{plugin}:{job.name}"
            last = store.get_state("_engine", key)
            if last is None:
                store.set_state_many("_engine", {key: now.isoformat()})
                continue
            due = croniter(job.cron, datetime.fromisoformat(last)).get_next(datetime)
            if due > now:
                continue
            store.set_state_many("_engine", {key: now.isoformat()})
            try:
                job.func(self.app.plugin_context(plugin))
                ran.append(f"{plugin}:{job.name}")
            except Exception:
                log.exception("scheduled job %s of plugin %s failed", job.name, plugin)
        return ran

    def run_forever(self, *, max_ticks: int | None = None) -> None:
        """Tick every ``engine.tick_seconds`` until interrupted (or ``max_ticks``). The lanes
        keep working between ticks, so a slow plugin never holds back the next tick."""
        jobs: list[tuple[str, Schedule]] | None = None
        ticks = 0
        tick = self.app.settings.engine.tick_seconds
        try:
            while max_ticks is None or ticks < max_ticks:
                started = time.monotonic()
                with self._database_outage(tick):
                    now = self.app.clock.now()
                    self._pass(now, wait=False)
                    if jobs is None:
                        jobs = self.schedules()
                    with self.queue.leader() as leading:
                        if leading:  # each schedule fires once however many workers run
                            self.run_schedules(now, jobs)
                    self.queue.record_tick(wall_clock())
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    self.lanes.wait(self._renew_every())
                    break
                while (left := tick - (time.monotonic() - started)) > 0:
                    with self._database_outage(tick):
                        if self._wake.wait(min(left, 0.2)):
                            self._wake.clear()  # a link arrived: send its event on at once
                            self._pass(self.app.clock.now(), wait=False)
                        self.lanes.supervise(self._renew_every())
                        self.lanes.refill()
        finally:
            # Claims of calls not made go back at once; with the database down, they run out
            # with their leases.
            with suppress(DBAPIError):
                self.queue.release()

    def _database_failed(self, exc: DBAPIError) -> None:
        """Say once per outage that the database failed, whether the engine's own step or a
        lane's met it; the engine's next step that succeeds says it answers again."""
        if not self._outage:
            # The error's type only: a database message can quote a row's values.
            log.warning("the database failed (%s); the engine carries on and tries again "
                        "every %g s", type(exc.orig or exc).__name__,
                        self.app.settings.engine.tick_seconds)
        self._outage = True

    @contextmanager
    def _database_outage(self, tick: float) -> Iterator[None]:
        """Outlive a database that goes away for a while (a restart, a failover, the network):
        the failed step is logged and made again at the next tick, on fresh connections,
        instead of the engine exiting. Its claims stay leased until then or run out."""
        try:
            yield
        except DBAPIError as exc:
            self._database_failed(exc)
            time.sleep(min(tick, 5.0))  # not a busy loop while it is down
        else:
            if self._outage:
                log.warning("the database answers again; the engine is back at work")
            self._outage = False

    def acquire(self) -> None:
        """Before running: on SQLite take the one-engine lock (EngineBusy names the holder) and
        free the claims a dead engine left; on PostgreSQL free the claims of workers that died
        on this machine (the others' claims run out with their leases)."""
        from ehcbridge.store.queue import EngineLock

        if self.app.store.backend == "sqlite":
            self._lock = EngineLock(self.app.store)
            self._lock.acquire()
            self.queue.release_all_claims()
        else:  # a worker that died on this machine: no need to wait for its leases
            for name in self.queue.release_dead_local_claims():
                log.warning("worker %s is gone; its deliveries are taken over", name)

    def release(self) -> None:
        """Let another engine take over (the lock also goes when the process ends)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
