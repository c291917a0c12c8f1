"""What a real Zoom account does, through the real CLI (issues 16 and 18).

``ehcbridge run --once --now ...`` against the loopback Zoom fake: the per-host daily limit as
the Create/Update meeting reference lists it (HTTP 300, code 300) on create and on update, and a
429 whose Retry-After asks for thirty thousand years.
"""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.models import LONDON
from ehcbridge.testing import cli_invoker

from .conftest import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, HOST

HEADER = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,"
          "meeting_start,meeting_end,location,online,coordinator_email,parent_name,"
          "parent_email,setting_email,sen_officer_email\n")
ONLINE = ("EHC-00077,A999268759382,Nico,Dunmore,09/09/2014,7,100004,2025-05-27,2026-06-01,,,,"
          "true,caseworker1@council.example.gov.uk,Parent of N.D.,parent@family.example.net,"
          "senco@school.example.org,sen.team@council.example.gov.uk\n")
IN_PERSON = ("EHC-00078,A999125581676,Ada,Brook,10/10/2014,7,100004,2025-05-27,2026-06-01,,,,"
             "false,caseworker1@council.example.gov.uk,Parent of A.B.,parent78@family.example.net,"
             "senco@school.example.org,sen.team@council.example.gov.uk\n")
NOW = "2026-11-22T15:00"


@pytest.fixture
def cli(zoom: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli(*args)`` runs ehcbridge with zoom (the provider) and outlook (an outbox)."""
    config = (
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
        '[engine]\nonline_meetings = "zoom"\n'
        "[plugins.zoom]\n"
        f'account_id = "{ACCOUNT_ID}"\nclient_id = "{CLIENT_ID}"\nhost = "{HOST}"\n'
        f'oauth_url = "{zoom.base}"\napi_url = "{zoom.base}/v2"\n'
        "backoff = 0\nmax_inline_wait = 5\ntimeout = 5\n"
        "[plugins.outlook]\n"
        f'outbox_dir = "{tmp_path / "outbox"}"\nfrom_address = "sen@council.example.gov.uk"\n'
        "reminders = false\n"
    )
    invoke = cli_invoker(tmp_path, monkeypatch, config, secret=CLIENT_SECRET)
    monkeypatch.setenv("EHCBRIDGE_PLUGINS__ZOOM__CLIENT_SECRET", CLIENT_SECRET)
    (tmp_path / "reviews.csv").write_text(HEADER + ONLINE + IN_PERSON)

    invoke("import", "reviews", "reviews.csv")
    invoke("review", "schedule", "EHC-00077", "--start", "2026-12-08T10:00", "--online")
    invoke.outbox = tmp_path / "outbox"  # type: ignore[attr-defined]
    return invoke


def rows(cli: Any, hook: str, case: str = "EHC-00077") -> list[dict[str, Any]]:
    """Deliveries of ``hook`` for ``case``, oldest first."""
    found = [d for d in json.loads(cli("deliveries", "--json"))
             if d["hook"] == hook and d["case_id"] == case]
    return sorted(found, key=lambda d: int(d["id"]))


def subjects(outbox: Path) -> list[str]:
    """Subjects of the calendar messages in the outbox (notices and deadline alerts carry no
    joining link, so they do not wait for one)."""
    messages = [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(outbox.glob("*.eml"))] if outbox.exists() else []
    return [str(m["Subject"]) for m in messages
            if any(part.get_content_type() == "text/calendar" for part in m.walk())]


def next_utc_midnight(now: str) -> datetime:
    """When Zoom's daily limit resets after the engine's ``now``."""
    day = datetime.fromisoformat(now).replace(tzinfo=LONDON).astimezone(UTC).date()
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def test_daily_limit_on_create_waits_for_the_next_utc_day(zoom: Any, cli: Any) -> None:
    zoom.daily_style, zoom.daily_limit = "300", 0
    cli("run", "--once", "--now", NOW)

    [provider] = rows(cli, "provide_online_meeting")
    assert provider["status"] == "retrying"
    # The stored error names the host's domain; its local part is redacted like any address.
    assert "daily limit" in provider["error"] and HOST.split("@")[1] in provider["error"]
    assert HOST not in provider["error"]
    assert "KeyError" not in provider["error"]
    assert datetime.fromisoformat(provider["next_attempt_at"]) == next_utc_midnight(NOW)
    assert zoom.meetings == {}
    assert subjects(cli.outbox) == []  # invitations wait for the link

    zoom.daily_counts.clear()  # a new day on Zoom's side too
    zoom.daily_limit = 100
    cli("run", "--once", "--now", "2026-11-23T00:05")
    [meeting] = zoom.meetings.values()
    shown = json.loads(cli("review", "show", "EHC-00077", "--json"))
    assert shown["meeting"]["join_url"] == meeting["join_url"]
    assert len(zoom.calls("POST", "/v2/users/")) == 2


def test_daily_limit_on_update_is_not_recorded_as_an_update(zoom: Any, cli: Any) -> None:
    zoom.daily_style, zoom.daily_limit = "300", 1
    cli("run", "--once", "--now", NOW)
    [meeting] = zoom.meetings.values()
    first_start = meeting["start_time"]
    invitations = len(subjects(cli.outbox))
    assert invitations > 0

    cli("review", "reschedule", "EHC-00077", "--start", "2026-12-09T14:00", "--online")
    cli("run", "--once", "--now", "2026-11-22T16:00")

    moved = rows(cli, "provide_online_meeting")[-1]
    assert moved["status"] == "retrying" and "daily limit" in moved["error"]
    assert datetime.fromisoformat(moved["next_attempt_at"]) == next_utc_midnight(NOW)
    assert meeting["start_time"] == first_start  # Zoom still has the old time...
    assert len(subjects(cli.outbox)) == invitations  # ...so nobody is sent the new one yet
    shown = json.loads(cli("review", "show", "EHC-00077", "--json"))
    assert not any(d["hook"] == "on_review_scheduled" and d["status"] == "delivered"
                   and "rescheduled" in d["event"] for d in shown["deliveries"])

    zoom.daily_counts.clear()
    cli("run", "--once", "--now", "2026-11-23T00:05")
    assert meeting["start_time"] != first_start
    assert rows(cli, "provide_online_meeting")[-1]["status"] == "delivered"
    assert any(s.startswith("Updated invitation") for s in subjects(cli.outbox))


def test_retry_after_of_thirty_thousand_years_neither_stops_the_engine_nor_parks(
        zoom: Any, cli: Any) -> None:
    cli("review", "schedule", "EHC-00078", "--start", "2026-12-10T10:00")
    zoom.fail("GET", r"/meetings", 429, {"code": 429, "message": "Too many requests"},
              headers={"Retry-After": "999999999999"}, times=3)
    for minute in range(3):  # three passes, as in the report
        cli("run", "--once", "--now", f"2026-11-22T15:0{minute}")

    [provider] = rows(cli, "provide_online_meeting")
    assert provider["status"] == "retrying"
    due = datetime.fromisoformat(provider["next_attempt_at"])
    now = datetime.fromisoformat(NOW).replace(tzinfo=LONDON)
    assert due == now + timedelta(days=1)  # capped at a day, not the year 33658
    assert "longer than 24 h" in provider["error"]
    # The unrelated in-person review was invited all the same.
    [other] = [d for d in rows(cli, "on_review_scheduled", "EHC-00078")
               if d["plugin"] == "outlook"]
    assert other["status"] == "delivered"
    assert any("parent78@family.example.net" in p.read_text(errors="replace")
               for p in cli.outbox.glob("*.eml"))
