"""The engine: turns due timers into events and delivers each event to each plugin exactly once.

Every lifecycle change is written to the ``events`` table in the same transaction as the change
(an outbox). The engine creates one delivery row per (event, plugin), calls each plugin on its own
and records the outcome, so a crash at any point leaves a row to retry with the same idempotency
key, and a failing plugin only ever reschedules its own row.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential

from ehcbridge import NotConfigured, PermanentError, Skipped
from ehcbridge.app import App
from ehcbridge.events import LifecycleEvent, OnlineMeeting, Schedule
from ehcbridge.invite_rules import ensure_rule_invitees
from ehcbridge.lifecycle import HOOK_REVIEW_SCHEDULED
from ehcbridge.list_notices import queue_due_lists
from ehcbridge.models import Duty, Meeting, MeetingStatus
from ehcbridge.notices import NOTICE_HOOK
from ehcbridge.notices import delivery as notices
from ehcbridge.online import NO_PROVIDER_FLAG, PROVIDER_HOOK, no_provider_detail
from ehcbridge.redact import redact
from ehcbridge.retry import MAX_RETRY_AFTER, read_retry_after
from ehcbridge.routing import ensure_family_invitees, ensure_team_invitees
from ehcbridge.store import DEAD, DELIVERED, OPEN_STATUSES, RETRYING, SKIPPED, DeliveryRow, EventRow

log = logging.getLogger("ehcbridge.engine")

# tenacity computes the waits; the engine schedules them instead of sleeping, so one failing
# delivery never holds up another.
_RETRYING = Retrying()


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
    """Fires lifecycle hooks for one App."""

    def __init__(self, app: App) -> None:
        self.app = app
        s = app.settings.engine
        self._wait = wait_exponential(multiplier=s.backoff_base_seconds,
                                      max=s.backoff_max_seconds)
        self._events: dict[int, LifecycleEvent] = {}

    # One pass --------------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> TickReport:
        """Fire due timers, dispatch new events and attempt every delivery that is due."""
        now = now or self.app.clock.now()
        self.app.start_plugins()
        self._events.clear()
        report = TickReport()
        store = self.app.store
        from ehcbridge import transitions

        policy = transitions.policy_of(self.app)
        report.timers_fired += transitions.fire_timers(store, now, policy=policy)
        report.deadlines += transitions.check_deadlines(store, now, policy)
        queue_due_lists(self.app, now)  # the termly lists, once per term, before it starts
        self._links_now_possible(now)
        # Provider deliveries unblock their events, so dispatch and deliver until nothing moves.
        for _ in range(3):
            dispatched = self._dispatch(now)
            report.events_dispatched += dispatched
            attempted = self._deliver(now, report)
            if not dispatched and not attempted:
                break
        return report

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

    def _dispatch(self, now: datetime) -> int:
        store = self.app.store
        count = 0
        while True:
            batch = store.undispatched_events()
            progressed = 0
            for ev in batch:
                if self._dispatch_one(ev, now):
                    progressed += 1
            count += progressed
            if len(batch) < 500 or not progressed:
                return count

    def _dispatch_one(self, ev: EventRow, now: datetime) -> bool:
        store = self.app.store
        if ev.hook == NOTICE_HOOK:  # one notice: only its channel's plugin delivers it
            store.dispatch(ev.id, notices.plugins_for(self.app, ev), ev.hook, now)
            return True
        notices.queue_for_event(self.app, ev, now)  # the notices this event calls for, once
        if ev.hook == HOOK_REVIEW_SCHEDULED:
            case = store.case_by_review(ev.review_id)
            if ev.action != "cancelled":
                ensure_family_invitees(self.app, case.plan.case_id)
                ensure_team_invitees(self.app, case.plan.case_id)
                ensure_rule_invitees(self.app, case.plan.case_id)
            provider = self.app.settings.engine.online_meetings
            meeting = self._meeting(ev)
            if not provider:  # not silent: the review says why, and doctor warns
                self._no_provider(ev, "engine.online_meetings is not set")
            # A meeting that went in person still has the provider's meeting to remove.
            if provider and meeting is not None and (meeting.online or meeting.external_id):
                if provider not in self.app.plugins.implementers(PROVIDER_HOOK):
                    if not meeting.online:  # nothing to remove without the provider
                        store.dispatch(ev.id, self.app.plugins.implementers(ev.hook), ev.hook,
                                       now)
                        return True
                    reason = f"online meeting provider {provider!r} is not loaded"
                    store.set_meeting_link(meeting.id or 0, provider=None, join_url=None,
                                           external_id=None, error=reason)
                    store.flag_review(case.plan.case_id, "online_meeting_failed", reason,
                                      raised_by="engine")
                else:
                    d = store.ensure_delivery(ev.id, provider, PROVIDER_HOOK, now)
                    if d.status in OPEN_STATUSES:
                        return False  # every other plugin waits for the link
        store.dispatch(ev.id, self.app.plugins.implementers(ev.hook), ev.hook, now)
        return True

    def _deliver(self, now: datetime, report: TickReport) -> int:
        attempted = 0
        while True:
            due = self.app.store.due_deliveries(now)
            for d in due:
                status = self.attempt(d, now)
                report.attempts[status] += 1
            attempted += len(due)
            if len(due) < 500:
                return attempted

    # One delivery ----------------------------------------------------------------------------

    def attempt(self, d: DeliveryRow, now: datetime) -> str:
        """Call one plugin for one event and record the outcome; returns the new status."""
        store = self.app.store
        ev = store.event(d.event_id)
        try:
            kwargs: dict[str, Any] = ({"notice": notices.notice_for(self.app, ev)}
                                      if d.hook == NOTICE_HOOK
                                      else {"event": self.build_event(ev, now)})
        except Exception as exc:  # the case vanished or the data is inconsistent
            log.exception("cannot build event %s", ev.key)
            return self._finish(d, DEAD, d.attempts + 1, now, f"cannot build event: {exc}")
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
                notices.delivered(self.app, ev, d.plugin, outcome.result, now)
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
        self.app.store.finish_delivery(d.id, status=status, attempts=attempts,
                                       next_attempt_at=next_at or now, error=error, now=now)
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
        self._events.pop(ev.id, None)

    def _no_provider(self, ev: EventRow, why: str) -> None:
        """Flag an online meeting that will go out without a link (not silently)."""
        store = self.app.store
        meeting = self._meeting(ev)
        if meeting is None or not meeting.online or meeting.join_url or ev.action == "cancelled":
            if meeting is None or not meeting.online or ev.action == "cancelled":
                # In person or cancelled now: no link is owed any more.
                store.clear_flag(store.case_by_review(ev.review_id).plan.case_id,
                                 NO_PROVIDER_FLAG)
            return
        detail = no_provider_detail(why)
        store.set_meeting_link(meeting.id or 0, provider=None, join_url=None, external_id=None,
                               error=detail)
        store.flag_review(store.case_by_review(ev.review_id).plan.case_id, NO_PROVIDER_FLAG,
                          detail, raised_by="engine")

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

    # Building the event a plugin sees ----------------------------------------------------------

    def _meeting(self, ev: EventRow) -> Meeting | None:
        if ev.meeting_id is None:
            return None
        return self.app.store.meeting(ev.meeting_id)

    def build_event(self, ev: EventRow, now: datetime) -> LifecycleEvent:
        """The immutable event for an outbox row, as the case stands now."""
        cached = self._events.get(ev.id)
        if cached is not None:
            return cached
        store = self.app.store
        case = store.case_by_review(ev.review_id)
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
        """Tick every ``engine.tick_seconds`` until interrupted (or ``max_ticks``)."""
        jobs = None
        ticks = 0
        while max_ticks is None or ticks < max_ticks:
            started = time.monotonic()
            now = self.app.clock.now()
            self.run_once(now)
            if jobs is None:
                jobs = self.schedules()
            self.run_schedules(now, jobs)
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            time.sleep(max(0.0, self.app.settings.engine.tick_seconds
                           - (time.monotonic() - started)))
