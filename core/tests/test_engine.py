"""The engine fires each lifecycle event once per plugin, retries on its own and never blocks."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from ehcbridge import NotConfigured, PermanentError, RetryLater, hookimpl
from ehcbridge.engine import Engine
from ehcbridge.events import LifecycleEvent, OnlineMeeting
from ehcbridge.models import LONDON, Invitee, Outcome, Plan, Pupil, ReviewKind, Role
from ehcbridge.store import Store
from ehcbridge.testing import make_app, plugin_module

T0 = datetime(2027, 1, 4, 8, 0, tzinfo=LONDON)
MEETING = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)


class Recorder:
    """A plugin that records every event it sees and can be told to fail."""

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        self.seen: list[LifecycleEvent] = []
        self.fail = list(fail or [])

    def _record(self, event: LifecycleEvent) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.seen.append(event)

    def module(self, name: str) -> Any:
        record = self._record

        @hookimpl
        def on_review_scheduled(event: Any, ctx: Any) -> None:
            record(event)

        @hookimpl
        def on_views_due(event: Any, ctx: Any) -> None:
            record(event)

        @hookimpl
        def on_meeting_held(event: Any, ctx: Any) -> None:
            record(event)

        @hookimpl
        def on_decision(event: Any, ctx: Any) -> None:
            record(event)

        return plugin_module(name, on_review_scheduled=on_review_scheduled,
                             on_views_due=on_views_due, on_meeting_held=on_meeting_held,
                             on_decision=on_decision)

    def keys(self, hook: str | None = None) -> list[str]:
        return [e.idempotency_key for e in self.seen if hook is None or e.hook == hook]


def add_case(store: Store, case_id: str = "EHC-1", online: bool = False,
             meeting: datetime | None = MEETING) -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000001", forename="Sam", surname="Ex",
                                            dob=date(2014, 5, 2), nc_year=7),
                          plan=Plan(case_id=case_id, issued_on=date(2026, 4, 1)),
                          coordinator_email="senco@school.example.org",
                          review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
    store.add_invitee(case_id, Invitee(role=Role.PARENT, email="parent@example.net"))
    if meeting is not None:
        store.schedule_meeting(case_id, start=meeting, end=meeting + timedelta(hours=1),
                               location="Room 4", online=online, now=T0)


def test_each_event_reaches_each_plugin_once(store: Store) -> None:
    a, b = Recorder(), Recorder()
    app = make_app(store, {"a": a.module("a"), "b": b.module("b")})
    add_case(store)
    engine = Engine(app)
    engine.run_once(T0)
    engine.run_once(T0 + timedelta(hours=1))
    assert a.keys() == b.keys() == ["EHC-1/r1/m1/scheduled/0"]
    event = a.seen[0]
    assert event.action == "scheduled" and event.meeting is not None
    assert event.meeting.start == MEETING
    assert event.milestone("views_due") is not None
    assert event.milestone("views_due").date == date(2027, 2, 24)  # type: ignore[union-attr]
    assert [i.email for i in event.invitees] == ["parent@example.net"]


def test_whole_cycle_fires_all_four_hooks_in_order(store: Store) -> None:
    a = Recorder()
    app = make_app(store, {"a": a.module("a")})
    add_case(store)
    engine = Engine(app)
    for day in range(0, 70):
        engine.run_once(T0 + timedelta(days=day))
    store.decide("EHC-1", outcome=Outcome.AMEND, reason="new outcomes",
                 decided_on=date(2027, 3, 20), next_review_due=date(2028, 3, 19))
    engine.run_once(T0 + timedelta(days=71))
    assert [(e.hook, e.action) for e in a.seen] == [
        ("on_review_scheduled", "scheduled"),
        ("on_views_due", "request"),      # 27 Jan: six weeks before
        ("on_views_due", "reminder"),     # 24 Feb: two weeks before
        ("on_views_due", "due"),
        ("on_meeting_held", "ended"),     # after the meeting's end passed
        ("on_decision", "recorded"),
    ]
    assert a.seen[1].occurred_at.astimezone(LONDON).date() == date(2027, 1, 27)
    decision = a.seen[-1]
    assert decision.decision is not None and decision.decision.outcome == Outcome.AMEND
    assert decision.milestone("representations_due") is not None


def test_recording_held_and_the_clock_noticing_it_fire_once(store: Store) -> None:
    a = Recorder()
    app = make_app(store, {"a": a.module("a")})
    add_case(store)
    engine = Engine(app)
    store.mark_held("EHC-1", now=MEETING + timedelta(hours=1))
    engine.run_once(MEETING + timedelta(days=1))
    engine.run_once(MEETING + timedelta(days=2))
    assert [e.action for e in a.seen if e.hook == "on_meeting_held"] == ["recorded"]


def test_reschedule_and_cancel_are_distinct_events(store: Store) -> None:
    a = Recorder()
    app = make_app(store, {"a": a.module("a")})
    add_case(store)
    engine = Engine(app)
    engine.run_once(T0)
    moved = MEETING + timedelta(days=7)
    assert store.schedule_meeting("EHC-1", start=moved, end=moved + timedelta(hours=1),
                                  location="Room 4", now=T0) == "rescheduled"
    assert store.schedule_meeting("EHC-1", start=moved, end=moved + timedelta(hours=1),
                                  location="Room 4", now=T0) == "unchanged"
    engine.run_once(T0)
    store.cancel_meeting("EHC-1", reason="family unwell", now=T0)
    engine.run_once(T0)
    assert [(e.action, e.meeting.sequence if e.meeting else None) for e in a.seen] == [
        ("scheduled", 0), ("rescheduled", 1), ("cancelled", 2)]
    resched = a.seen[1]
    assert resched.previous_meeting is not None
    assert resched.previous_meeting.start == MEETING
    # Views timers follow the new date: the request comes six weeks before 17 March.
    engine.run_once(datetime(2027, 2, 3, 9, tzinfo=LONDON))
    assert "on_views_due" not in {e.hook for e in a.seen}  # cancelled: no views stages


def test_failing_plugin_is_retried_with_backoff_and_never_blocks_another(store: Store) -> None:
    flaky = Recorder(fail=[RuntimeError("graph 503"), RuntimeError("graph 503")])
    steady = Recorder()
    app = make_app(store, {"flaky": flaky.module("flaky"), "steady": steady.module("steady")},
                   settings={"engine": {"backoff_base_seconds": 60, "max_attempts": 5}})
    add_case(store)
    engine = Engine(app)
    engine.run_once(T0)
    assert steady.keys() == ["EHC-1/r1/m1/scheduled/0"] and flaky.seen == []
    [d] = store.deliveries(status="retrying")
    assert d.plugin == "flaky" and d.attempts == 1 and d.last_error == "RuntimeError: graph 503"
    assert d.next_attempt_at == T0 + timedelta(seconds=60)
    engine.run_once(T0 + timedelta(seconds=59))
    assert store.deliveries(status="retrying")[0].attempts == 1  # not due yet
    engine.run_once(T0 + timedelta(seconds=60))
    [d] = store.deliveries(status="retrying")
    assert d.attempts == 2 and d.next_attempt_at == T0 + timedelta(seconds=60 + 120)
    engine.run_once(T0 + timedelta(seconds=180))
    assert flaky.keys() == steady.keys()
    assert {d.status for d in store.deliveries()} == {"delivered"}


def test_retry_after_is_honoured(store: Store) -> None:
    flaky = Recorder(fail=[RetryLater("throttled", retry_after=7)])
    app = make_app(store, {"flaky": flaky.module("flaky")})
    add_case(store)
    Engine(app).run_once(T0)
    [d] = store.deliveries(status="retrying")
    assert d.next_attempt_at == T0 + timedelta(seconds=7)


def test_dead_after_max_attempts_and_retry_by_hand(store: Store) -> None:
    broken = Recorder(fail=[RuntimeError("no")] * 3)
    app = make_app(store, {"broken": broken.module("broken")},
                   settings={"engine": {"backoff_base_seconds": 0, "max_attempts": 3}})
    add_case(store)
    engine = Engine(app)
    for _ in range(4):
        engine.run_once(T0)
    [d] = store.deliveries(status="dead")
    assert d.attempts == 3 and d.last_error == "RuntimeError: no"
    store.retry_delivery(d.id, T0)
    engine.run_once(T0)
    assert store.deliveries(status="delivered")[0].id == d.id
    assert broken.keys() == ["EHC-1/r1/m1/scheduled/0"]


def test_permanent_error_is_dead_at_once_and_not_configured_is_skipped(store: Store) -> None:
    perm = Recorder(fail=[PermanentError("mailbox not found")])
    unconf = Recorder(fail=[NotConfigured("needs tenant_id")])
    app = make_app(store, {"perm": perm.module("perm"), "unconf": unconf.module("unconf")})
    add_case(store)
    Engine(app).run_once(T0)
    by_plugin = {d.plugin: d for d in store.deliveries()}
    assert by_plugin["perm"].status == "dead" and by_plugin["perm"].attempts == 1
    assert by_plugin["unconf"].status == "skipped"
    assert by_plugin["unconf"].last_error == "not configured: needs tenant_id"


def provider_module(answers: list[Any], seen_by_provider: list[str]) -> Any:
    @hookimpl
    def provide_online_meeting(event: Any, ctx: Any) -> Any:
        seen_by_provider.append(event.action)
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return plugin_module("prov", provide_online_meeting=provide_online_meeting)


def test_online_link_is_stored_before_anyone_else_hears(store: Store) -> None:
    calls: list[str] = []
    link = OnlineMeeting(provider="prov", join_url="https://meet.example/j/123",
                         external_id="evt-1")
    other = Recorder()
    app = make_app(store, {"prov": provider_module([RetryLater("429", retry_after=30), link],
                                                   calls),
                           "other": other.module("other")},
                   settings={"engine": {"online_meetings": "prov"}})
    add_case(store, online=True)
    engine = Engine(app)
    engine.run_once(T0)
    assert other.seen == []  # waits for the link
    engine.run_once(T0 + timedelta(seconds=30))
    assert calls == ["scheduled", "scheduled"]
    [event] = other.seen
    assert event.meeting is not None and event.meeting.join_url == "https://meet.example/j/123"
    assert store.case("EHC-1").meeting.external_id == "evt-1"  # type: ignore[union-attr]


def test_provider_failure_lets_the_event_go_without_a_link_and_flags_it(store: Store) -> None:
    other = Recorder()
    app = make_app(store, {"prov": provider_module([RuntimeError("down")] * 2, []),
                           "other": other.module("other")},
                   settings={"engine": {"online_meetings": "prov", "max_attempts": 2,
                                        "backoff_base_seconds": 0}})
    add_case(store, online=True)
    engine = Engine(app)
    engine.run_once(T0)
    engine.run_once(T0)
    [event] = other.seen
    assert event.meeting is not None and event.meeting.join_url is None
    case = store.case("EHC-1")
    assert "online_meeting_failed" in case.flags
    assert "prov: RuntimeError: down" in case.flags["online_meeting_failed"]


def test_required_team_invitees_are_routed_before_delivery(store: Store) -> None:
    from ehcbridge.events import Route

    @hookimpl
    def route_invite(review: Any, pupil: Any, invitee: Any, ctx: Any) -> Any:
        if invitee.role == Role.HEALTH:
            return Route(team="SALT", email="salt@nhs.example.net", rule="salt", reason="SLCN")
        return None

    seen = Recorder()
    app = make_app(store, {"router": plugin_module("router", route_invite=route_invite),
                           "seen": seen.module("seen")})
    add_case(store)
    Engine(app).run_once(T0)
    roles = {(i.role, i.email) for i in seen.seen[0].invitees}
    assert (Role.HEALTH, "salt@nhs.example.net") in roles


def test_late_scheduling_fires_past_stages_at_the_next_tick(store: Store) -> None:
    hook = "on_views_due"
    a = Recorder()
    app = make_app(store, {"a": a.module("a")})
    soon = T0 + timedelta(days=20)
    add_case(store, meeting=soon)
    Engine(app).run_once(T0)
    assert [e.action for e in a.seen if e.hook == hook] == ["request"]


def test_parents_from_the_mis_are_invited_when_the_list_named_none(store: Store) -> None:
    from ehcbridge.events import PupilRecord
    from ehcbridge.models import Contact

    @hookimpl
    def lookup_pupil(upn: str, ctx: Any) -> Any:
        return PupilRecord(pupil=Pupil(upn=upn, forename="Sam", surname="Ex"), contacts=(
            Contact(forename="Jo", surname="Ex", relationship="Mother",
                    parental_responsibility=True, email="jo@family.example.net"),
            Contact(forename="Al", surname="Ex", relationship="Grandparent",
                    parental_responsibility=False, email="al@family.example.net"),
        ), source="sims")

    seen = Recorder()
    app = make_app(store, {"mis": plugin_module("mis", lookup_pupil=lookup_pupil),
                           "seen": seen.module("seen")})
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000001", forename="Sam", surname="Ex"),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          coordinator_email=None, review_due=date(2027, 3, 31),
                          kind=ReviewKind.ANNUAL, pfa=False)
    store.schedule_meeting("EHC-1", start=MEETING, end=MEETING + timedelta(hours=1), now=T0)
    Engine(app).run_once(T0)
    parents = [i for i in seen.seen[0].invitees if i.role == Role.PARENT]
    assert [(p.email, p.source) for p in parents] == [("jo@family.example.net", "mis")]


def test_plugin_schedules_run_when_their_cron_time_comes(store: Store) -> None:
    runs: list[str] = []

    @hookimpl
    def register_schedules(register: Any) -> None:
        register("sync", "*/30 * * * *", lambda ctx: runs.append(ctx.plugin))

    app = make_app(store, {"mis": plugin_module("mis", register_schedules=register_schedules)})
    engine = Engine(app)
    jobs = engine.schedules()
    assert [(p, j.name, j.cron) for p, j in jobs] == [("mis", "sync", "*/30 * * * *")]
    assert engine.run_schedules(T0, jobs) == []          # first sight: remember the time
    assert engine.run_schedules(T0 + timedelta(minutes=29), jobs) == []
    assert engine.run_schedules(T0 + timedelta(minutes=30), jobs) == ["mis:sync"]
    assert engine.run_schedules(T0 + timedelta(minutes=31), jobs) == []
    assert runs == ["mis"]
    # The time of the last run is in the store, so a restarted engine keeps the rhythm.
    assert Engine(app).run_schedules(T0 + timedelta(minutes=45), jobs) == []


def test_a_plugins_store_calls_find_the_current_review_without_a_query_each(
        store: Store, monkeypatch: Any) -> None:
    """A first run makes tens of thousands of plugin calls that write against a case: each
    delivery knows the case's current review from the lane's batch read. An event of a review
    concluded since still writes to the current one."""
    import threading

    for n in range(1, 6):
        add_case(store, f"EHC-{n}")
    lookups: list[str] = []
    original = Store.review_id_for

    def counted(self: Store, conn: Any, case_id: str) -> int:
        if threading.current_thread().name.startswith("ehcbridge-lane-"):
            lookups.append(case_id)
        return original(self, conn, case_id)

    monkeypatch.setattr(Store, "review_id_for", counted)

    @hookimpl
    def on_review_scheduled(event: Any, ctx: Any) -> None:
        ctx.store.record_invitation(event.plan.case_id, "senco@school.example.org",
                                    status="sent")
        ctx.store.flag_review(event.plan.case_id, "seen", "by the plugin")

    app = make_app(store, {"cal": plugin_module("cal", on_review_scheduled=on_review_scheduled)},
                   now=T0)
    Engine(app).run_once(T0)
    assert lookups == []
    assert all("seen" in store.case(f"EHC-{n}").flags for n in range(1, 6))
    assert all(len(store.case(f"EHC-{n}").invitations) == 1 for n in range(1, 6))

    # EHC-9's review is decided (the next one opened) before its event is delivered: the
    # plugin's writes go to the review that is current now, not the event's.
    from ehcbridge import transitions

    add_case(store, "EHC-9", meeting=datetime(2027, 1, 2, 10, 0, tzinfo=LONDON))
    first = store.case("EHC-9").review.id
    transitions.held(store, "EHC-9", now=T0)
    store.decide("EHC-9", outcome=Outcome.MAINTAIN, reason="", decided_on=date(2027, 1, 4),
                 next_review_due=date(2028, 1, 4), now=T0)
    assert store.case_by_review(first or 0).current is False
    Engine(app).run_once(T0)
    assert "seen" in store.case("EHC-9").flags
    assert "seen" not in store.case_by_review(first or 0).flags
