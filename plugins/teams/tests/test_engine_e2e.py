"""Through the real CLI and engine: the join URL lands on the meeting; one PATCH, one cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.testing import cli_invoker
from ehcbridge_teams_fake_graph import ORGANISER, SECRET

CSV_HEADER = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,"
              "meeting_start,meeting_end,location,online,coordinator_email,parent_name,"
              "parent_email,setting_email,sen_officer_email\n")
CSV_ROW = ("EHC-00077,A999268759382,Nico,Dunmore,09/09/2014,7,100004,2025-05-27,2026-06-01,,,,true,"
           "caseworker1@council.example.gov.uk,Parent of N.D.,parent@family.example.net,"
           "senco@school.example.org,sen.team@council.example.gov.uk\n")


@pytest.fixture
def run(fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    config = (
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
        '[engine]\nonline_meetings = "teams"\n'
        "[plugins.teams]\n"
        f'tenant_id = "{fake.tenant}"\nclient_id = "{fake.client_id}"\n'
        f'organiser = "{ORGANISER}"\nauthority_host = "{fake.base}"\n'
        f'graph_url = "{fake.base}/v1.0"\nca_bundle = "{fake.ca_path}"\n'
    )
    invoke = cli_invoker(tmp_path, monkeypatch, config, secret=SECRET)
    monkeypatch.setenv("EHCBRIDGE_PLUGINS__TEAMS__CLIENT_SECRET", SECRET)
    (tmp_path / "reviews.csv").write_text(CSV_HEADER + CSV_ROW)
    return invoke


def test_engine_stores_the_join_url_then_patches_and_cancels_once(fake: Any, run: Any) -> None:
    run("import", "reviews", "reviews.csv")
    run("review", "schedule", "EHC-00077", "--start", "2026-12-08T10:00", "--online")
    fake.fail_next(2, 429, retry_after="1", methods=("POST",))
    run("run", "--once", "--now", "2026-11-22T15:00")

    shown = json.loads(run("review", "show", "EHC-00077", "--json"))
    [event] = fake.events(ORGANISER)
    assert shown["meeting"]["join_url"] == event["onlineMeeting"]["joinUrl"]
    assert shown["meeting"]["external_id"] == event["id"]

    run("review", "reschedule", "EHC-00077", "--start", "2026-12-09T14:00", "--online")
    run("run", "--once", "--now", "2026-11-22T15:10")
    assert len(fake.calls("PATCH")) == 1
    assert fake.events(ORGANISER)[0]["start"]["dateTime"] == "2026-12-09T14:00:00"

    run("review", "cancel", "EHC-00077")
    run("run", "--once", "--now", "2026-11-22T15:20")
    run("run", "--once", "--now", "2026-11-22T15:30")
    assert len(fake.calls("POST", "/cancel")) == 1
    creates = [c for c in fake.calls("POST") if c["path"].endswith("/events")]
    assert len(creates) == 3  # two answered 429, retried with the same transactionId
    assert len({c["body"]["transactionId"] for c in creates}) == 1
    assert len(fake.events(ORGANISER, include_cancelled=True)) == 1
    assert fake.events(ORGANISER) == []


def test_someone_uninvited_is_taken_off_the_event(fake: Any, run: Any) -> None:
    """A caseworker removes the old school's SENCO: the event is PATCHed without them, and
    Exchange sends them the cancellation (as it does when an organiser removes an attendee)."""
    run("import", "reviews", "reviews.csv", "--now", "2026-11-22T14:00")
    run("review", "--now", "2026-11-22T14:00", "schedule", "EHC-00077",
        "--start", "2026-12-08T10:00", "--online")
    run("run", "--once", "--now", "2026-11-22T15:00")
    [event] = fake.events(ORGANISER)
    invited = {a["emailAddress"]["address"] for a in event["attendees"]}
    assert "senco@school.example.org" in invited

    run("review", "--now", "2026-11-22T15:05", "uninvite", "EHC-00077",
        "--email", "senco@school.example.org")
    run("run", "--once", "--now", "2026-11-22T15:10")
    [patch] = fake.calls("PATCH")
    left = {a["emailAddress"]["address"] for a in patch["body"]["attendees"]}
    assert left == invited - {"senco@school.example.org"}
    [event] = fake.events(ORGANISER)
    assert "senco@school.example.org" not in {a["emailAddress"]["address"]
                                              for a in event["attendees"]}
