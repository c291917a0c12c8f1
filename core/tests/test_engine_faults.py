"""A plugin or remote server asking for absurd waits never stops the engine (issue 18), and one
invitation per person per meeting holds across racing plugins (issue 16)."""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

import pytest
from ehcbridge import RetryLater
from ehcbridge.app import PluginStoreFacade
from ehcbridge.engine import Engine
from ehcbridge.store import Store
from ehcbridge.testing import make_app

from .test_engine import T0, Recorder, add_case


class Hostile(Exception):
    """What a careless plugin raises: a retry_after of any type and size."""

    def __init__(self, retry_after: Any) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


@pytest.mark.parametrize("retry_after", [math.inf, 1e12, 10**400, "999999999999",
                                         "99999999999", math.nan, -math.inf])
def test_absurd_retry_after_is_capped_and_the_engine_goes_on(store: Store,
                                                             retry_after: Any) -> None:
    hostile = Recorder(fail=[Hostile(retry_after)] * 3)
    calm = Recorder()
    app = make_app(store, {"hostile": hostile.module("hostile"), "calm": calm.module("calm")})
    add_case(store)
    engine = Engine(app)
    for minute in range(3):  # every pass runs; none raises
        engine.run_once(T0 + timedelta(minutes=minute))
    assert calm.keys() == ["EHC-1/r1/m1/scheduled/0"]  # the other plugin was not held up
    [row] = [d for d in store.deliveries() if d.plugin == "hostile"]
    if isinstance(retry_after, float) and (math.isnan(retry_after) or retry_after < 0):
        return  # no usable wait: the engine's own backoff applies
    assert row.status == "retrying"
    assert row.next_attempt_at == T0 + timedelta(days=1)  # capped: never parked for centuries
    assert "longer than 24 h" in (row.last_error or "")


def test_retry_later_from_the_kit_is_honoured_to_the_second(store: Store) -> None:
    hostile = Recorder(fail=[RetryLater("busy", retry_after=90)])
    app = make_app(store, {"a": hostile.module("a")})
    add_case(store)
    Engine(app).run_once(T0)
    [row] = store.deliveries(status="retrying")
    assert row.next_attempt_at == T0 + timedelta(seconds=90)


def test_one_invitation_per_person_when_two_plugins_race(store: Store) -> None:
    add_case(store)
    people = [f"person{n}@example.net" for n in range(12)]
    facades = {name: PluginStoreFacade(store, name) for name in ("teams", "outlook", "zoom")}
    won: dict[str, list[str]] = {name: [] for name in facades}
    start = threading.Barrier(len(facades))

    def invite(name: str) -> None:
        start.wait()
        for email in people:
            if facades[name].claim_invitation("EHC-1", email):
                won[name].append(email)
                facades[name].record_invitation("EHC-1", email, status="sent")

    threads = [threading.Thread(target=invite, args=(name,)) for name in facades]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [email for emails in won.values() for email in emails]
    assert sorted(winners) == sorted(people)  # each person invited exactly once
    sent = [r for r in store.case("EHC-1").invitations if r["status"] == "sent"]
    assert sorted(r["email"] for r in sent) == sorted(people)
    # A plugin retried later (the loser) still cannot invite them; the holder can re-claim.
    holder = next(name for name, emails in won.items() if people[0] in emails)
    other = next(name for name in facades if name != holder)
    assert not facades[other].claim_invitation("EHC-1", people[0].upper())
    assert facades[holder].claim_invitation("EHC-1", people[0])


def test_a_failed_invitation_frees_the_person_for_another_plugin(store: Store) -> None:
    add_case(store)
    teams, outlook = PluginStoreFacade(store, "teams"), PluginStoreFacade(store, "outlook")
    assert teams.claim_invitation("EHC-1", "parent@example.net")
    assert not outlook.claim_invitation("EHC-1", "parent@example.net")
    teams.release_invitations("EHC-1", ["parent@example.net"], detail="Graph refused")
    assert outlook.claim_invitation("EHC-1", "parent@example.net")


def test_no_provider_flag_comes_and_goes_with_the_online_meeting(store: Store) -> None:
    calm = Recorder()
    app = make_app(store, {"calm": calm.module("calm")})
    add_case(store, online=True)
    engine = Engine(app)
    engine.run_once(T0)
    case = store.case("EHC-1")
    assert "no_online_provider" in case.flags
    assert case.meeting is not None and case.meeting.id is not None
    assert "without an online meeting provider" in (store.meeting_link_error(case.meeting.id)
                                                     or "")
    store.schedule_meeting("EHC-1", start=case.meeting.start, end=case.meeting.end,
                           location="Room 4", online=False, now=T0)
    engine.run_once(T0 + timedelta(minutes=5))
    assert "no_online_provider" not in store.case("EHC-1").flags


def test_a_meeting_moved_in_person_before_the_engine_ran_is_not_flagged(store: Store) -> None:
    """All three events (online meeting, cancelled, a new one in person) reach one dispatch
    batch: the flag the first would raise is dropped."""
    app = make_app(store, {"calm": Recorder().module("calm")})
    add_case(store, online=True)
    meeting = store.case("EHC-1").meeting
    assert meeting is not None
    store.cancel_meeting("EHC-1", now=T0)
    store.schedule_meeting("EHC-1", start=meeting.start + timedelta(hours=1),
                           end=meeting.end + timedelta(hours=1), location="Room 4",
                           online=False, now=T0)
    Engine(app).run_once(T0)
    assert "no_online_provider" not in store.case("EHC-1").flags
