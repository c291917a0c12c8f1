"""provide_online_meeting against the fake Zoom: create, move, cancel, restart, limits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import ehcbridge_zoom
import pytest
from ehcbridge import NotConfigured, PermanentError, RetryLater
from ehcbridge.events import OnlineMeeting
from ehcbridge.models import LONDON
from ehcbridge.testing import MemoryPluginStore, make_context, make_event
from ehcbridge_zoom.settings import ZoomSettings

MARCH = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
MAY = datetime(2026, 5, 12, 14, 30, tzinfo=LONDON)  # British Summer Time


def ctx_for(settings: ZoomSettings, store: MemoryPluginStore | None = None) -> Any:
    return make_context("zoom", settings, store=store or MemoryPluginStore(plugin="zoom"))


def moved(event: Any, **changes: Any) -> Any:
    """The same review's event after a reschedule (the engine stored the link on the meeting)."""
    return event.model_copy(update=changes)


def test_scheduled_review_gets_a_zoom_meeting(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    event = make_event(start=MARCH, minutes=90)

    result = ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx)

    assert isinstance(result, OnlineMeeting)
    assert result.provider == "zoom"
    [meeting] = zoom.meetings.values()
    assert result.join_url == meeting["join_url"]
    assert result.external_id == str(meeting["id"]) and meeting["id"] > 2**32
    assert meeting["topic"] == "EHCP annual review: SE (EHC-0001)"
    assert meeting["type"] == 2
    assert meeting["start_time"] == "2026-03-10T10:00:00"
    assert meeting["timezone"] == "Europe/London"
    assert meeting["duration"] == 90
    assert meeting["settings"]["waiting_room"] is True
    assert meeting["settings"]["join_before_host"] is False
    assert meeting["settings"]["mute_upon_entry"] is True
    # Privacy: no full name anywhere in what Zoom (and every participant) sees.
    text = meeting["topic"] + meeting["agenda"]
    assert "Sam" not in text and "Example" not in text
    assert "start_url" not in result.extra and "hostonly" not in str(result)
    state = ctx.store.get_state("meeting:EHC-0001")
    assert state["meeting_id"] == meeting["id"] and state["join_url"] == result.join_url
    assert [a["action"] for a in ctx.store.audits] == ["zoom.meeting_created"]


def test_local_time_in_summer_is_sent_as_london_wall_clock(zoom: Any, settings: ZoomSettings
                                                           ) -> None:
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MAY), ctx=ctx_for(settings))
    [meeting] = zoom.meetings.values()
    assert meeting["start_time"] == "2026-05-12T14:30:00"
    assert zoom._public(meeting)["start_time"] == "2026-05-12T13:30:00Z"


def test_reschedule_patches_the_same_meeting(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    first = ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)

    later = make_event("on_review_scheduled", "rescheduled", start=MAY, minutes=45, sequence=1)
    second = ehcbridge_zoom.provide_online_meeting(event=later, ctx=ctx)

    assert second == first
    assert len(zoom.meetings) == 1 and len(zoom.calls("POST", "/v2/")) == 1
    [meeting] = zoom.meetings.values()
    assert (meeting["start_time"], meeting["duration"]) == ("2026-05-12T14:30:00", 45)
    assert zoom.calls("PATCH") == [f"/v2/meetings/{meeting['id']}"]
    assert ctx.store.audits[-1]["action"] == "zoom.meeting_updated"


def test_retried_delivery_does_not_call_zoom_again(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    event = make_event(start=MARCH)
    first = ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx)
    before = len(zoom.requests)

    again = ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx)

    assert again == first
    assert zoom.requests[before:] == []


def test_reschedule_uses_the_id_on_the_meeting_when_state_is_lost(zoom: Any,
                                                                  settings: ZoomSettings) -> None:
    first = ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH),
                                                  ctx=ctx_for(settings))
    assert first is not None
    stored = make_event(start=MARCH).meeting.model_copy(update={  # type: ignore[union-attr]
        "provider": "zoom", "external_id": first.external_id, "join_url": None})
    later = make_event("on_review_scheduled", "rescheduled", start=MAY, sequence=1)
    later = moved(later, previous_meeting=stored)

    second = ehcbridge_zoom.provide_online_meeting(event=later, ctx=ctx_for(settings))

    assert second == first
    assert len(zoom.meetings) == 1 and len(zoom.calls("POST", "/v2/")) == 1
    assert zoom.calls("GET", f"/v2/meetings/{first.external_id}")  # join URL read back


def test_meeting_deleted_on_zoom_is_recreated_on_reschedule(zoom: Any, settings: ZoomSettings
                                                            ) -> None:
    ctx = ctx_for(settings)
    first = ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    assert first is not None
    zoom.meetings.clear()  # someone deleted it in the Zoom web portal

    later = make_event("on_review_scheduled", "rescheduled", start=MAY, sequence=1)
    second = ehcbridge_zoom.provide_online_meeting(event=later, ctx=ctx)

    assert second is not None and second.external_id != first.external_id
    [meeting] = zoom.meetings.values()
    assert second.join_url == meeting["join_url"]
    actions = [a["action"] for a in ctx.store.audits]
    assert actions == ["zoom.meeting_created", "zoom.meeting_recreated", "zoom.meeting_created"]
    assert ctx.store.audits[1]["detail"]["meeting_id"] == int(first.external_id)


def test_cancellation_deletes_the_meeting(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    [meeting_id] = zoom.meetings

    result = ehcbridge_zoom.provide_online_meeting(
        event=make_event("on_review_scheduled", "cancelled", start=MARCH, sequence=1), ctx=ctx)

    assert result is None
    assert zoom.meetings == {}
    assert zoom.calls("DELETE") == [f"/v2/meetings/{meeting_id}"]
    assert ctx.store.get_state("meeting:EHC-0001") is None
    assert ctx.store.audits[-1] == {"case_id": "EHC-0001", "action": "zoom.meeting_deleted",
                                    "detail": {"meeting_id": meeting_id}}


def test_cancelling_a_meeting_already_gone_is_done(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    zoom.meetings.clear()

    cancel = make_event("on_review_scheduled", "cancelled", start=MARCH, sequence=1)
    assert ehcbridge_zoom.provide_online_meeting(event=cancel, ctx=ctx) is None
    assert ctx.store.audits[-1]["action"] == "zoom.meeting_already_gone"
    assert ctx.store.get_state("meeting:EHC-0001") is None


def test_meeting_no_longer_online_removes_the_zoom_meeting(zoom: Any, settings: ZoomSettings
                                                           ) -> None:
    ctx = ctx_for(settings)
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    in_person = make_event("on_review_scheduled", "rescheduled", start=MARCH, online=False,
                           sequence=1)
    assert ehcbridge_zoom.provide_online_meeting(event=in_person, ctx=ctx) is None
    assert zoom.meetings == {}


class DyingStore(MemoryPluginStore):
    """A store whose process dies before Zoom's answer is written down."""

    def set_state(self, key: str, value: Any) -> None:
        raise SystemExit("process killed")


def test_no_duplicate_after_a_restart(zoom: Any, settings: ZoomSettings) -> None:
    # Enough earlier meetings on the host that the search must follow next_page_token.
    for n in range(650):
        start = MARCH - timedelta(hours=n % 9, days=n + 1)
        zoom.add_meeting(zoom.host, f"Staff meeting {n}", start)
    event = make_event(start=MARCH)
    with pytest.raises(SystemExit):
        ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx_for(settings, DyingStore()))
    assert len(zoom.calls("POST", "/v2/")) == 1

    fresh = ctx_for(settings)  # a new process: empty state, nothing on the meeting
    result = ehcbridge_zoom.provide_online_meeting(event=event, ctx=fresh)

    ours = [m for m in zoom.meetings.values() if "ehcbridge:" in m["agenda"]]
    assert len(ours) == 1 and len(zoom.calls("POST", "/v2/")) == 1
    assert result is not None and result.join_url == ours[0]["join_url"]
    pages = [p for p in zoom.calls("GET", f"/v2/users/{zoom.host}/meetings")]
    assert len(pages) >= 3 and all("page_size=300" in p and "type=upcoming" in p for p in pages)
    assert any("next_page_token=" in p for p in pages)
    assert fresh.store.get_state("meeting:EHC-0001")["meeting_id"] == ours[0]["id"]
    assert fresh.store.audits[0]["action"] == "zoom.meeting_adopted"
    assert zoom.calls("PATCH") == []  # same slot: nothing to move


def test_a_lost_create_answer_is_found_not_repeated(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("POST", r"/meetings$", 502, {"code": 502, "message": "Bad gateway"}, after=True)
    ctx = ctx_for(settings)

    result = ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)

    [meeting] = zoom.meetings.values()
    assert result is not None and result.join_url == meeting["join_url"]
    assert len(zoom.calls("POST", "/v2/")) == 1
    assert [a["action"] for a in ctx.store.audits] == ["zoom.meeting_adopted"]


def test_cancel_after_a_restart_finds_the_meeting(zoom: Any, settings: ZoomSettings) -> None:
    event = make_event(start=MARCH)
    with pytest.raises(SystemExit):
        ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx_for(settings, DyingStore()))
    cancel = make_event("on_review_scheduled", "cancelled", start=MARCH, sequence=1)
    assert ehcbridge_zoom.provide_online_meeting(event=cancel, ctx=ctx_for(settings)) is None
    assert zoom.meetings == {}


def test_other_reviews_get_their_own_meetings(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    a = ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    other = make_event(start=MARCH, case_id="EHC-0002")
    other = moved(other, review=other.review.model_copy(update={"id": 12}))
    b = ehcbridge_zoom.provide_online_meeting(event=other, ctx=ctx_for(settings))
    assert a is not None and b is not None and a.external_id != b.external_id
    assert len(zoom.meetings) == 2


def test_daily_create_limit_names_the_host(zoom: Any, settings: ZoomSettings) -> None:
    zoom.daily_limit = 1
    ctx = ctx_for(settings)
    zoom.now = ctx.clock.now  # the engine's clock, not the wall clock
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)

    with pytest.raises(RetryLater) as caught:
        ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH, case_id="EHC-0002"),
                                              ctx=ctx_for(settings))

    assert zoom.host in str(caught.value) and "daily limit" in str(caught.value)
    now = ctx.clock.now().astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert caught.value.retry_after == pytest.approx((midnight - now).total_seconds(), abs=5)
    assert len(zoom.calls("POST", "/v2/")) == 2  # the daily limit is not hammered


def test_daily_limit_without_retry_after_waits_for_utc_midnight(zoom: Any,
                                                                settings: ZoomSettings) -> None:
    zoom.daily_limit, zoom.daily_retry_after = 0, False
    ctx = ctx_for(settings)
    with pytest.raises(RetryLater) as caught:
        ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    now = ctx.clock.now().astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert caught.value.retry_after == pytest.approx((midnight - now).total_seconds(), abs=5)
    assert zoom.host in str(caught.value)


def test_zoom_outage_becomes_retry_later(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/meetings$", 503, {"code": 503, "message": "down"}, times=100)
    with pytest.raises(RetryLater):
        ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx_for(settings))
    assert len(zoom.calls("GET", "/v2/users/")) == settings.max_attempts
    assert zoom.meetings == {}


def test_unknown_host_is_a_permanent_error(zoom: Any, settings: ZoomSettings) -> None:
    wrong = settings.model_copy(update={"host": "nobody@la.example.gov.uk"})
    with pytest.raises(PermanentError, match=r"nobody@la\.example\.gov\.uk"):
        ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx_for(wrong))


def test_expired_token_is_renewed_once(zoom: Any, settings: ZoomSettings) -> None:
    ctx = ctx_for(settings)
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    assert zoom.token_requests == 1
    zoom.expire_tokens()

    later = make_event("on_review_scheduled", "rescheduled", start=MAY, sequence=1)
    assert ehcbridge_zoom.provide_online_meeting(event=later, ctx=ctx) is not None
    assert zoom.token_requests == 2
    [meeting] = zoom.meetings.values()
    assert meeting["start_time"] == "2026-05-12T14:30:00"


def test_not_configured_raises_not_configured() -> None:
    ctx = make_context("zoom", ZoomSettings())
    with pytest.raises(NotConfigured, match="account_id, client_id, client_secret, host"):
        ehcbridge_zoom.provide_online_meeting(event=make_event(), ctx=ctx)
    with pytest.raises(NotConfigured):
        ehcbridge_zoom.provide_online_meeting(event=make_event(), ctx=make_context("zoom"))


def test_secret_and_tokens_never_logged(zoom: Any, settings: ZoomSettings,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ctx = ctx_for(settings)
    ehcbridge_zoom.provide_online_meeting(event=make_event(start=MARCH), ctx=ctx)
    zoom.expire_tokens()
    ehcbridge_zoom.provide_online_meeting(
        event=make_event("on_review_scheduled", "cancelled", start=MARCH, sequence=1), ctx=ctx)
    assert caplog.records  # something was logged, so the check means something
    for token in zoom.tokens:
        assert token not in caplog.text
        assert token not in str(ctx.store.audits) and token not in str(ctx.store.state)
    assert zoom.secret not in caplog.text and zoom.secret not in repr(settings)


def test_in_person_meeting_without_zoom_meeting_makes_no_calls(zoom: Any,
                                                               settings: ZoomSettings) -> None:
    event = make_event(start=MARCH, online=False)
    assert ehcbridge_zoom.provide_online_meeting(event=event, ctx=ctx_for(settings)) is None
    assert zoom.requests == []


def test_another_provider_selected_is_left_alone(zoom: Any, settings: ZoomSettings) -> None:
    from dataclasses import replace

    class Engine:
        online_meetings = "teams"

    for engine in (Engine(), {"online_meetings": "teams"}):
        ctx = replace(ctx_for(settings), engine_settings=engine)
        assert ehcbridge_zoom.provide_online_meeting(event=make_event(), ctx=ctx) is None
    assert zoom.requests == []
    ctx = replace(ctx_for(settings), engine_settings={"online_meetings": "zoom"})
    assert ehcbridge_zoom.provide_online_meeting(event=make_event(), ctx=ctx) is not None
