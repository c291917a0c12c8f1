"""Create, reschedule, cancel and recover: one Outlook event per review meeting."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import ehcbridge_teams as plugin
import pytest
from ehcbridge import NotConfigured, PermanentError, RetryLater
from ehcbridge.events import OnlineMeeting
from ehcbridge.models import LONDON, Decision, Invitee, Outcome, Role
from ehcbridge.testing import MemoryPluginStore, make_context, make_event
from ehcbridge_teams.meetings import TAG_PROPERTY_ID, state_key
from ehcbridge_teams_fake_graph import ORGANISER, SECRET, settings_for

NEW_START = datetime(2026, 3, 17, 14, 0, tzinfo=LONDON)


def create(ctx: Any, **kw: Any) -> OnlineMeeting:
    result = plugin.provide_online_meeting(make_event(**kw), ctx)
    assert isinstance(result, OnlineMeeting)
    return result


def test_create_posts_one_event_with_the_documented_fields(fake: Any, ctx: Any) -> None:
    result = create(ctx)

    [post] = fake.calls("POST", "/events")
    assert post["path"] == f"/users/{ORGANISER}/events"
    body = post["body"]
    assert body["subject"] == "EHCP annual review: SE (EHC-0001)"
    assert body["start"] == {"dateTime": "2026-03-10T10:00:00", "timeZone": "Europe/London"}
    assert body["end"] == {"dateTime": "2026-03-10T11:00:00", "timeZone": "Europe/London"}
    assert body["isOnlineMeeting"] is True
    assert body["onlineMeetingProvider"] == "teamsForBusiness"
    assert body["allowNewTimeProposals"] is False
    assert body["location"] == {"displayName": "Microsoft Teams Meeting"}
    assert body["body"]["contentType"] == "HTML"
    content = body["body"]["content"]
    assert "two weeks before the meeting" in content
    assert "Tuesday 24 February 2026" in content
    assert "Teams link" in content
    types = {a["emailAddress"]["address"]: a["type"] for a in body["attendees"]}
    assert types == {
        "parent@example.net": "required",
        "senco@school.example.org": "required",
        "sen@la.example.gov.uk": "required",
        "salt@nhs.example.net": "required",
        "csc@la.example.gov.uk": "required",
        "teacher@school.example.org": "optional",
    }
    assert all(a["emailAddress"]["name"] for a in body["attendees"])
    # Privacy: no full name of the child anywhere in the calendar entry.
    assert "Sam" not in body["subject"] + content and "Example" not in body["subject"] + content

    [event] = fake.events(ORGANISER)
    assert result.provider == "teams"
    assert result.join_url == event["onlineMeeting"]["joinUrl"]
    assert result.external_id == event["id"]
    assert body["transactionId"] and event["transactionId"] == body["transactionId"]
    assert ctx.store.get_state(state_key("EHC-0001"))["event_id"] == event["id"]
    invited = {r["email"] for r in ctx.store.invitations("EHC-0001")}
    assert invited == set(types)


def test_summer_time_is_sent_as_london_wall_clock(fake: Any, ctx: Any) -> None:
    create(ctx, start=datetime(2026, 6, 10, 9, 30, tzinfo=LONDON))
    [post] = fake.calls("POST", "/events")
    assert post["body"]["start"] == {"dateTime": "2026-06-10T09:30:00",
                                     "timeZone": "Europe/London"}


def test_subject_template_and_time_proposals_come_from_settings(fake: Any, store: Any) -> None:
    settings = settings_for(fake, subject_template="{kind} review {case_id}",
                            allow_new_time_proposals=True)
    create(make_context("teams", settings, store=store))
    [post] = fake.calls("POST", "/events")
    assert post["body"]["subject"] == "annual review EHC-0001"
    assert post["body"]["allowNewTimeProposals"] is True


def test_reschedule_is_one_patch_that_keeps_the_teams_link(fake: Any, ctx: Any) -> None:
    first = create(ctx)
    moved = make_event(action="rescheduled", sequence=1, start=NEW_START,
                       join_url=first.join_url)

    again = plugin.provide_online_meeting(moved, ctx)
    plugin.on_review_scheduled(moved, ctx)  # the engine fires this after the provider

    assert again == first
    [patch] = fake.calls("PATCH")
    assert patch["body"]["start"] == {"dateTime": "2026-03-17T14:00:00",
                                      "timeZone": "Europe/London"}
    assert "transactionId" not in patch["body"] and "isOnlineMeeting" not in patch["body"]
    [event] = fake.events(ORGANISER)
    assert event["onlineMeeting"]["joinUrl"] == first.join_url
    # The advice date moved with the meeting and the Teams blob is still in the body.
    assert "Tuesday 3 March 2026" in event["body"]["content"]
    assert "Tuesday 24 February 2026" not in event["body"]["content"]
    assert first.join_url in event["body"]["content"]
    assert len(fake.calls("POST", "/events")) == 1


def test_refiring_unchanged_meeting_sends_nothing(fake: Any, ctx: Any) -> None:
    create(ctx)
    plugin.on_review_scheduled(make_event(), ctx)
    plugin.on_review_scheduled(make_event(), ctx)
    assert fake.calls("PATCH") == []
    assert len(fake.calls("POST")) == 1


def test_new_invitee_is_added_by_patch_and_recorded(fake: Any, ctx: Any) -> None:
    create(ctx)
    base = make_event()
    ep = Invitee(role=Role.OTHER, name="Educational psychologist", email="ep@la.example.gov.uk")
    changed = make_event(invitees=(*base.invitees, ep))

    plugin.on_review_scheduled(changed, ctx)

    [patch] = fake.calls("PATCH")
    emails = {a["emailAddress"]["address"] for a in patch["body"]["attendees"]}
    assert "ep@la.example.gov.uk" in emails
    assert [r["email"] for r in ctx.store.invitations("EHC-0001")].count(
        "ep@la.example.gov.uk") == 1


def test_stale_retry_of_an_older_change_is_ignored(fake: Any, ctx: Any) -> None:
    create(ctx)
    plugin.provide_online_meeting(
        make_event(action="rescheduled", sequence=2, start=NEW_START), ctx)
    plugin.on_review_scheduled(make_event(action="rescheduled", sequence=1,
                                          start=NEW_START + timedelta(days=1)), ctx)
    assert len(fake.calls("PATCH")) == 1
    assert fake.events(ORGANISER)[0]["start"]["dateTime"] == "2026-03-17T14:00:00"


def test_cancel_sends_one_cancel_with_a_comment(fake: Any, ctx: Any) -> None:
    create(ctx)
    cancelled = make_event(action="cancelled", sequence=1)

    assert plugin.provide_online_meeting(cancelled, ctx) is None
    plugin.on_review_scheduled(cancelled, ctx)
    plugin.on_review_scheduled(cancelled, ctx)

    [cancel] = fake.calls("POST", "/cancel")
    assert cancel["body"]["comment"]
    assert fake.events(ORGANISER) == []
    assert ctx.store.get_state(state_key("EHC-0001"))["cancelled"] is True


def test_new_meeting_after_cancellation_gets_a_new_event(fake: Any, ctx: Any) -> None:
    create(ctx)
    plugin.provide_online_meeting(make_event(action="cancelled", sequence=1), ctx)
    ev = make_event(key="EHC-0001:on_review_scheduled:scheduled:again", meeting=make_event(
        start=NEW_START).meeting.model_copy(update={"id": 2}))
    second = plugin.provide_online_meeting(ev, ctx)
    assert isinstance(second, OnlineMeeting)
    [live] = fake.events(ORGANISER)
    assert live["id"] == second.external_id
    assert len(fake.events(ORGANISER, include_cancelled=True)) == 2


def test_cease_decision_before_the_meeting_cancels(fake: Any, ctx: Any) -> None:
    create(ctx)
    decision = Decision(outcome=Outcome.CEASE, reason="needs met",
                        decided_on=datetime(2026, 1, 5).date())
    plugin.on_decision(make_event(hook="on_decision", action="recorded", decision=decision), ctx)
    [cancel] = fake.calls("POST", "/cancel")
    assert "no longer needed" in cancel["body"]["comment"]
    assert "needs met" not in cancel["body"]["comment"]


def test_maintain_decision_or_cease_after_the_meeting_leaves_the_event(fake: Any,
                                                                      store: Any) -> None:
    settings = settings_for(fake)
    ctx = make_context("teams", settings, store=store)
    create(ctx)
    maintain = Decision(outcome=Outcome.MAINTAIN, reason="", decided_on=datetime(2026, 1, 5).date())
    plugin.on_decision(make_event(hook="on_decision", action="recorded", decision=maintain), ctx)
    later = make_context("teams", settings, store=store,
                         now=datetime(2026, 3, 20, 9, 0, tzinfo=LONDON))
    cease = Decision(outcome=Outcome.CEASE, reason="", decided_on=datetime(2026, 3, 20).date())
    plugin.on_decision(make_event(hook="on_decision", action="recorded", decision=cease), later)
    assert fake.calls("POST", "/cancel") == []


class CrashingStore(MemoryPluginStore):
    """A store whose first write dies, like a process killed after Graph answered."""

    def set_state(self, key: str, value: Any) -> None:
        raise SystemExit("killed")


def test_crash_between_post_and_store_write_does_not_duplicate(fake: Any, settings: Any) -> None:
    with pytest.raises(SystemExit):
        plugin.provide_online_meeting(
            make_event(), make_context("teams", settings, store=CrashingStore(plugin="teams")))
    assert len(fake.events(ORGANISER)) == 1

    # The restarted process has no record of the event, and retries the same delivery.
    store = MemoryPluginStore(plugin="teams")
    result = plugin.provide_online_meeting(make_event(), make_context("teams", settings,
                                                                      store=store))

    assert isinstance(result, OnlineMeeting)
    [event] = fake.events(ORGANISER)
    assert result.external_id == event["id"]
    assert len(fake.calls("POST", "/events")) == 1
    assert fake.calls("PATCH") == []
    lookup = fake.calls("GET", "/events")[-1]
    assert TAG_PROPERTY_ID in lookup["query"]["$filter"][0]
    assert store.get_state(state_key("EHC-0001"))["event_id"] == event["id"]
    assert len(store.invitations("EHC-0001")) == 6
    assert store.audits[-1]["action"] == "teams.event_adopted"


@pytest.mark.parametrize("mode", ["ignore", "reject"])
def test_crash_recovery_on_a_server_without_the_filter_relies_on_transaction_id(
        fake: Any, settings: Any, mode: str) -> None:
    fake.filter_mode = mode
    # Someone else's event in the same mailbox must never be adopted.
    fake.mailboxes[ORGANISER].events["AAMkother"] = {
        "id": "AAMkother", "subject": "Staff meeting", "isCancelled": False,
        "transactionId": "not-ours", "attendees": [], "_props": {}}
    with pytest.raises(SystemExit):
        plugin.provide_online_meeting(
            make_event(), make_context("teams", settings, store=CrashingStore(plugin="teams")))
    store = MemoryPluginStore(plugin="teams")
    result = plugin.provide_online_meeting(make_event(), make_context("teams", settings,
                                                                      store=store))
    assert isinstance(result, OnlineMeeting) and result.external_id != "AAMkother"
    ours = [e for e in fake.events(ORGANISER) if e["id"] != "AAMkother"]
    assert len(ours) == 1 and ours[0]["id"] == result.external_id


def test_lost_answer_to_post_is_looked_up_not_posted_again(fake: Any, ctx: Any) -> None:
    fake.fail_next(1, 504, retry_after=None, methods=("POST",), after=True)
    result = create(ctx)
    assert len(fake.calls("POST", "/events")) == 1  # found by its tag instead
    assert len(fake.calls("GET", "/events")) >= 2  # before the POST and before any retry
    [event] = fake.events(ORGANISER)
    assert result.external_id == event["id"]


def test_retry_of_a_failed_delivery_keeps_the_transaction_id(fake: Any, settings: Any) -> None:
    fake.fail_next(1, 504, retry_after=None, methods=("POST",), after=True)
    settings = settings.model_copy(update={"max_retry_wait_seconds": 0.0})
    store = MemoryPluginStore(plugin="teams")
    ctx = make_context("teams", settings, store=store)
    fake.fail_next(10, 503, retry_after="30", methods=("POST",))
    with pytest.raises(RetryLater):
        plugin.provide_online_meeting(make_event(), ctx)
    fake.failures.clear()
    plugin.provide_online_meeting(make_event(), ctx)
    txns = {p["body"]["transactionId"] for p in fake.calls("POST", "/events")}
    assert len(txns) == 1
    assert len(fake.events(ORGANISER)) == 1


def test_throttled_calls_wait_for_retry_after_then_succeed(fake: Any, ctx: Any,
                                                          waits: list[float]) -> None:
    fake.fail_next(2, 429, retry_after="3")
    create(ctx)
    assert waits == [3.0, 3.0]
    assert len(fake.events(ORGANISER)) == 1


def test_throttling_exhausted_becomes_retry_later_then_no_duplicate(fake: Any, ctx: Any,
                                                                    waits: list[float]) -> None:
    fake.fail_next(50, 429, retry_after="7", methods=("POST",))
    with pytest.raises(RetryLater) as caught:
        create(ctx)
    assert caught.value.retry_after == 7.0
    assert "ApplicationThrottled" in str(caught.value)
    fake.failures.clear()
    create(ctx)
    create(ctx)  # and the engine re-fires
    assert len(fake.events(ORGANISER)) == 1


def test_long_retry_after_is_handed_to_the_engine_without_blocking(fake: Any, ctx: Any,
                                                                   waits: list[float]) -> None:
    fake.fail_next(1, 503, retry_after="3600")
    with pytest.raises(RetryLater) as caught:
        create(ctx)
    assert caught.value.retry_after == 3600.0
    assert waits == []


def test_bad_credentials_are_permanent_and_never_echo_the_secret(fake: Any, store: Any,
                                                                 caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-value-123"
    ctx = make_context("teams", settings_for(fake, client_secret=wrong), store=store)
    with pytest.raises(PermanentError) as caught:
        create(ctx)
    message = str(caught.value)
    assert "invalid_client" in message and "AADSTS7000215" in message
    assert wrong not in message and wrong not in caplog.text
    assert fake.requests == []
    assert fake.events(ORGANISER) == []


def test_token_endpoint_outage_is_retried_later(fake: Any, ctx: Any) -> None:
    fake.token_failures = 1
    with pytest.raises(RetryLater, match="HTTP 503"):
        create(ctx)
    assert fake.events(ORGANISER) == []


def test_mailbox_without_teams_is_an_error_naming_it(fake: Any, store: Any) -> None:
    fake.add_mailbox("noteams@school.example.org", teams=False)
    ctx = make_context("teams", settings_for(fake, organiser="noteams@school.example.org"),
                       store=store)
    with pytest.raises(PermanentError) as caught:
        create(ctx)
    assert "noteams@school.example.org" in str(caught.value)
    assert "joinUrl" in str(caught.value)
    # The event id is kept, so a retry after fixing the mailbox does not create a second one.
    assert store.get_state(state_key("EHC-0001"))["event_id"]


def test_access_denied_is_permanent_with_graph_code(fake: Any, store: Any) -> None:
    fake.add_mailbox("blocked@school.example.org", access=False)
    ctx = make_context("teams", settings_for(fake, organiser="blocked@school.example.org"),
                       store=store)
    with pytest.raises(PermanentError) as caught:
        create(ctx)
    assert "ErrorAccessDenied" in str(caught.value)
    assert "blocked@school.example.org" in str(caught.value)


def test_coordinator_organiser_uses_the_reviews_coordinator(fake: Any, store: Any) -> None:
    ctx = make_context("teams", settings_for(fake, organiser="coordinator"), store=store)
    create(ctx)
    [post] = fake.calls("POST", "/events")
    assert post["mailbox"] == "senco@school.example.org"
    emails = {a["emailAddress"]["address"] for a in post["body"]["attendees"]}
    assert "senco@school.example.org" not in emails


def test_not_configured_raises_not_configured(store: Any) -> None:
    ctx = make_context("teams", None, store=store)
    with pytest.raises(NotConfigured):
        plugin.provide_online_meeting(make_event(), ctx)
    with pytest.raises(NotConfigured):
        plugin.on_review_scheduled(make_event(), ctx)
    with pytest.raises(NotConfigured):
        plugin.on_decision(make_event(hook="on_decision", action="recorded"), ctx)
    assert plugin.refresh_responses(ctx) is None


def test_meeting_of_another_provider_is_left_alone(fake: Any, ctx: Any) -> None:
    zoom = make_event().meeting.model_copy(update={"provider": "zoom", "join_url": "https://z"})
    plugin.on_review_scheduled(make_event(meeting=zoom), ctx)
    plugin.on_review_scheduled(make_event(online=False), ctx)
    assert fake.requests == []


def test_meeting_moved_in_person_or_to_another_provider_cancels_ours(fake: Any,
                                                                    ctx: Any) -> None:
    create(ctx)
    in_person = make_event(action="rescheduled", sequence=1, online=False)
    plugin.on_review_scheduled(in_person, ctx)
    [cancel] = fake.calls("POST", "/cancel")
    assert "no longer held on Teams" in cancel["body"]["comment"]
    plugin.on_review_scheduled(in_person, ctx)
    assert len(fake.calls("POST", "/cancel")) == 1


def test_meeting_still_carrying_our_link_is_kept_in_step(fake: Any, ctx: Any) -> None:
    first = create(ctx)
    linked = make_event(action="rescheduled", sequence=1, start=NEW_START).meeting.model_copy(
        update={"online": False, "provider": "teams", "external_id": first.external_id,
                "join_url": first.join_url})
    plugin.on_review_scheduled(make_event(action="rescheduled", sequence=1, meeting=linked), ctx)
    assert len(fake.calls("PATCH")) == 1
    assert fake.calls("POST", "/cancel") == []


def test_switch_to_zoom_cancels_the_teams_event(fake: Any, ctx: Any) -> None:
    create(ctx)
    zoom = make_event().meeting.model_copy(update={"provider": "zoom", "join_url": "https://z"})
    plugin.on_review_scheduled(make_event(action="rescheduled", sequence=1, meeting=zoom), ctx)
    assert len(fake.calls("POST", "/cancel")) == 1


def test_secret_and_tokens_never_reach_graph_store_or_logs(fake: Any, ctx: Any,
                                                           caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    create(ctx)
    plugin.provide_online_meeting(make_event(action="rescheduled", sequence=1, start=NEW_START),
                                  ctx)
    plugin.provide_online_meeting(make_event(action="cancelled", sequence=2), ctx)
    text = fake.all_text() + repr(ctx.store) + caplog.text
    assert SECRET not in text
    assert not any(token in text for token in fake.tokens)
    assert SECRET not in repr(ctx.settings)
