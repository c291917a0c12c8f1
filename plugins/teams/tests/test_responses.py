"""Attendee responses: read through JSON batches, stored, declines by professionals flagged."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import ehcbridge_teams as plugin
from ehcbridge.models import LONDON
from ehcbridge.testing import make_event
from ehcbridge_teams.meetings import DECLINED_FLAG, state_key
from ehcbridge_teams_fake_graph import ORGANISER

SOON = datetime(2026, 1, 15, 10, 0, tzinfo=LONDON)  # ten days after the test clock


def book(ctx: Any, case_id: str, start: datetime = SOON) -> str:
    result = plugin.provide_online_meeting(make_event(case_id=case_id, start=start), ctx)
    assert result is not None
    return result.external_id


def test_responses_are_stored_and_a_declining_professional_is_flagged(fake: Any,
                                                                      ctx: Any) -> None:
    event_id = book(ctx, "EHC-0001")
    fake.respond(ORGANISER, event_id, "parent@example.net", "accepted")
    fake.respond(ORGANISER, event_id, "salt@nhs.example.net", "declined")
    fake.respond(ORGANISER, event_id, "teacher@school.example.org", "tentativelyAccepted")

    summary = plugin.refresh_responses(ctx)

    assert summary is not None and summary["meetings"] == 1
    responses = ctx.store.responses
    assert responses[("EHC-0001", "parent@example.net")] == "accepted"
    assert responses[("EHC-0001", "salt@nhs.example.net")] == "declined"
    assert responses[("EHC-0001", "teacher@school.example.org")] == "tentativelyAccepted"
    assert ("EHC-0001", "sen@la.example.gov.uk") not in responses  # "none" is not an answer
    assert "salt@nhs.example.net" in ctx.store.flags["EHC-0001"][DECLINED_FLAG]
    [batch] = fake.calls("POST", "/$batch")
    assert batch["body"]["requests"][0]["method"] == "GET"
    assert "attendees" in batch["body"]["requests"][0]["url"]

    # The health team changes its mind: the flag goes.
    fake.respond(ORGANISER, event_id, "salt@nhs.example.net", "accepted")
    plugin.refresh_responses(ctx)
    assert DECLINED_FLAG not in ctx.store.flags.get("EHC-0001", {})
    assert ctx.store.responses[("EHC-0001", "salt@nhs.example.net")] == "accepted"


def test_parent_or_optional_declines_do_not_flag(fake: Any, ctx: Any) -> None:
    event_id = book(ctx, "EHC-0001")
    fake.respond(ORGANISER, event_id, "parent@example.net", "declined")
    fake.respond(ORGANISER, event_id, "teacher@school.example.org", "declined")
    plugin.refresh_responses(ctx)
    assert DECLINED_FLAG not in ctx.store.flags.get("EHC-0001", {})


def test_only_meetings_in_the_next_three_weeks_are_read(fake: Any, ctx: Any) -> None:
    book(ctx, "EHC-NEAR")
    book(ctx, "EHC-FAR", SOON + timedelta(weeks=4))
    book(ctx, "EHC-GONE")
    plugin.provide_online_meeting(make_event(case_id="EHC-GONE", action="cancelled"), ctx)

    plugin.refresh_responses(ctx)

    [batch] = fake.calls("POST", "/$batch")
    urls = [r["url"] for r in batch["body"]["requests"]]
    near = ctx.store.get_state(state_key("EHC-NEAR"))["event_id"]
    assert len(urls) == 1 and near in urls[0]


def test_batches_hold_at_most_twenty_requests(fake: Any, ctx: Any) -> None:
    book(ctx, "EHC-0000")
    template = ctx.store.get_state(state_key("EHC-0000"))
    box = fake.mailboxes[ORGANISER]
    for n in range(1, 25):  # more of the same, without 24 more round trips to create them
        copy = json.loads(json.dumps(box.events[template["event_id"]]))
        copy["id"] = f"AAMkcopy{n}"
        box.events[copy["id"]] = copy
        ctx.store.set_state(state_key(f"EHC-{n:04d}"),
                            {**template, "case_id": f"EHC-{n:04d}", "event_id": copy["id"]})
    summary = plugin.refresh_responses(ctx)
    sizes = sorted(len(b["body"]["requests"]) for b in fake.calls("POST", "/$batch"))
    assert sizes == [5, 20]
    assert summary is not None and summary["meetings"] == 25


def test_throttled_requests_inside_a_batch_are_retried(fake: Any, ctx: Any,
                                                       waits: list[float]) -> None:
    event_id = book(ctx, "EHC-0001")
    fake.respond(ORGANISER, event_id, "salt@nhs.example.net", "declined")
    fake.batch_inner_throttle = 1
    summary = plugin.refresh_responses(ctx)
    assert summary is not None and summary["meetings"] == 1 and summary["failed"] == 0
    assert waits == [2.0]
    assert len(fake.calls("POST", "/$batch")) == 2
    assert ctx.store.responses[("EHC-0001", "salt@nhs.example.net")] == "declined"


def test_event_deleted_in_outlook_is_flagged(fake: Any, ctx: Any) -> None:
    event_id = book(ctx, "EHC-0001")
    del fake.mailboxes[ORGANISER].events[event_id]
    summary = plugin.refresh_responses(ctx)
    assert summary is not None and summary["failed"] == 1
    assert "teams_event_missing" in ctx.store.flags["EHC-0001"]


def test_schedule_is_registered_every_thirty_minutes() -> None:
    jobs: list[tuple[str, str, Any]] = []
    plugin.register_schedules(lambda name, cron, func: jobs.append((name, cron, func)))
    assert jobs == [("teams-responses", "*/30 * * * *", plugin.refresh_responses)]
