"""What a real Microsoft 365 tenant does, through the real CLI (issue 16).

Each case drives ``ehcbridge run --once --now ...`` against the loopback Graph fake answering as
Microsoft documents: an expired token (401 InvalidAuthenticationToken), a join URL filled in
after the 201, a 503 after Graph created the event, Retry-After as an HTTP date, and the
outlook plugin inviting people while Teams was failing.
"""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from email import policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge.models import LONDON
from ehcbridge.testing import cli_invoker
from ehcbridge_teams_fake_graph import ORGANISER, SECRET

CSV = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,"
       "meeting_start,meeting_end,location,online,coordinator_email,parent_name,"
       "parent_email,setting_email,sen_officer_email\n"
       "EHC-00077,A999268759382,Nico,Dunmore,09/09/2014,7,100004,2025-05-27,2026-06-01,,,,true,"
       "caseworker1@council.example.gov.uk,Parent of N.D.,parent@family.example.net,"
       "senco@school.example.org,sen.team@council.example.gov.uk\n")
INVITEES = ("parent@family.example.net", "senco@school.example.org",
            "sen.team@council.example.gov.uk")
NOW = "2026-11-22T15:00"


@pytest.fixture
def cli(fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli(*args)`` runs ehcbridge with teams (the provider) and outlook (an outbox)."""
    config = (
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
        '[engine]\nonline_meetings = "teams"\nmax_attempts = 3\n'
        "[plugins.teams]\n"
        f'tenant_id = "{fake.tenant}"\nclient_id = "{fake.client_id}"\n'
        f'organiser = "{ORGANISER}"\nauthority_host = "{fake.base}"\n'
        f'graph_url = "{fake.base}/v1.0"\nca_bundle = "{fake.ca_path}"\n'
        "join_url_wait_seconds = 5\n"
        "[plugins.outlook]\n"
        f'outbox_dir = "{tmp_path / "outbox"}"\nfrom_address = "sen@council.example.gov.uk"\n'
        'reminders = false\n'
    )
    invoke = cli_invoker(tmp_path, monkeypatch, config, secret=SECRET)
    monkeypatch.setenv("EHCBRIDGE_PLUGINS__TEAMS__CLIENT_SECRET", SECRET)
    (tmp_path / "reviews.csv").write_text(CSV)

    invoke("import", "reviews", "reviews.csv")
    invoke("review", "schedule", "EHC-00077", "--start", "2026-12-08T10:00", "--online")
    invoke.outbox = tmp_path / "outbox"  # type: ignore[attr-defined]
    return invoke


def deliveries(cli: Any) -> list[dict[str, Any]]:
    """The delivery ledger as ``deliveries --json`` shows it."""
    rows: list[dict[str, Any]] = json.loads(cli("deliveries", "--json"))
    return rows


def provider_row(cli: Any) -> dict[str, Any]:
    """The first provide_online_meeting delivery (of the meeting's scheduled event)."""
    rows = [d for d in deliveries(cli) if d["hook"] == "provide_online_meeting"]
    return min(rows, key=lambda d: int(d["id"]))


def review(cli: Any) -> dict[str, Any]:
    """``review show --json``."""
    shown: dict[str, Any] = json.loads(cli("review", "show", "EHC-00077", "--json"))
    return shown


def invitations_by_email(outbox: Path) -> dict[str, list[str]]:
    """Subjects of the outbox's messages per recipient."""
    found: dict[str, list[str]] = {}
    for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if not any(p.get_content_type() == "text/calendar" for p in message.walk()):
            continue  # notices and deadline alerts are not invitations
        to = str(message["To"]).rpartition("<")[2].rstrip(">").lower()
        found.setdefault(to, []).append(str(message["Subject"]))
    return found


def test_expired_token_gets_one_new_token_and_the_meeting_is_made(fake: Any, cli: Any) -> None:
    cli("teams", "check")  # the process now holds a token msal believes valid for an hour
    fake.expire_tokens()  # ...which Graph refuses: "Lifetime validation failed"
    cli("run", "--once", "--now", NOW)

    assert provider_row(cli)["status"] == "delivered"
    assert len(fake.token_requests) == 2  # one new token, not a storm
    [event] = fake.events(ORGANISER)
    shown = review(cli)
    assert shown["meeting"]["join_url"] == event["onlineMeeting"]["joinUrl"]
    assert "online_meeting_failed" not in json.dumps(shown["review"].get("flags", []))
    # Teams invited all three; outlook sent nobody a second invitation.
    assert {a["emailAddress"]["address"] for a in event["attendees"]} == set(INVITEES)
    assert invitations_by_email(cli.outbox) == {}


def test_join_url_filled_in_late_is_waited_for(fake: Any, cli: Any) -> None:
    fake.late_join_reads = 1  # the 201 and the first read have no onlineMeeting yet
    cli("run", "--once", "--now", NOW)

    assert provider_row(cli)["status"] == "delivered"
    [event] = fake.events(ORGANISER)
    shown = review(cli)
    assert shown["meeting"]["join_url"] == event["onlineMeeting"]["joinUrl"]
    assert not shown["meeting"].get("link_error")


def test_503_after_graph_created_the_event_makes_no_second_event(fake: Any, cli: Any) -> None:
    fake.dedupe_transactions = False  # transactionId alone would not save us
    fake.fail_next(1, 503, retry_after="1", methods=("POST",), after=True)
    cli("run", "--once", "--now", NOW)

    assert provider_row(cli)["status"] == "delivered"
    assert len(fake.events(ORGANISER)) == 1
    assert len([c for c in fake.calls("POST") if c["path"].endswith("/events")]) == 1
    [event] = fake.events(ORGANISER)
    assert review(cli)["meeting"]["join_url"] == event["onlineMeeting"]["joinUrl"]


def test_retry_after_date_is_read_against_the_engine_clock(fake: Any, cli: Any) -> None:
    now = datetime.fromisoformat(NOW).replace(tzinfo=LONDON)
    later = format_datetime((now + timedelta(hours=2)).astimezone(UTC), usegmt=True)
    fake.fail_next(1, 503, retry_after=later, methods=("POST",))
    cli("run", "--once", "--now", NOW)

    row = provider_row(cli)
    assert row["status"] == "retrying"
    due = datetime.fromisoformat(row["next_attempt_at"])
    assert abs((due - now).total_seconds() - 7200) < 2  # two hours after --now, not wall time
    assert fake.events(ORGANISER) == []
    assert invitations_by_email(cli.outbox) == {}  # everyone else waits for the link

    cli("run", "--once", "--now", "2026-11-22T17:01")
    assert provider_row(cli)["status"] == "delivered"
    assert len(fake.events(ORGANISER)) == 1


def test_huge_retry_after_is_capped_at_a_day_and_said(fake: Any, cli: Any) -> None:
    fake.fail_next(1, 429, retry_after="999999999999", methods=("POST",))
    cli("run", "--once", "--now", NOW)
    row = provider_row(cli)
    assert row["status"] == "retrying"
    now = datetime.fromisoformat(NOW).replace(tzinfo=LONDON)
    due = datetime.fromisoformat(row["next_attempt_at"])
    assert (due - now) == timedelta(days=1)
    assert "longer than 24 h" in row["error"]


def test_after_a_delivery_retry_nobody_gets_a_second_invitation(fake: Any, cli: Any) -> None:
    # Teams refuses for good (the old 401 path): outlook invites everyone without a link.
    fake.fail_next(1, 403, methods=("POST",))
    cli("run", "--once", "--now", NOW)
    row = provider_row(cli)
    assert row["status"] == "dead"
    sent = invitations_by_email(cli.outbox)
    assert set(sent) == set(INVITEES)
    assert all(len(subjects) == 1 for subjects in sent.values())

    cli("deliveries", "retry", str(row["id"]), "--now", "2026-11-22T16:00")
    cli("run", "--once", "--now", "2026-11-22T16:00")

    assert not {d["status"] for d in deliveries(cli)} & {"dead", "retrying", "pending"}
    [event] = fake.events(ORGANISER)
    join_url = event["onlineMeeting"]["joinUrl"]
    # Nobody holding outlook's invitation is invited again by Teams...
    assert not {a["emailAddress"]["address"] for a in event["attendees"]} & set(INVITEES)
    # ...and outlook sends each of them the link as an update, not a new invitation.
    after = invitations_by_email(cli.outbox)
    for address in INVITEES:
        subjects = after[address]
        assert sum(s.startswith("Invitation:") for s in subjects) == 1, subjects
        assert sum(s.startswith("Updated invitation:") for s in subjects) == 1, subjects
    assert review(cli)["meeting"]["join_url"] == join_url
    updates = [p for p in sorted(cli.outbox.glob("*.eml"))
               if "Updated invitation" in p.read_text(errors="replace")]
    assert updates and all(join_url in p.read_bytes().decode(errors="replace")
                           .replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
                           .replace("\r\n ", "") for p in updates)


def test_online_meeting_without_a_provider_is_flagged_then_linked_by_an_update(
        fake: Any, cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    with_teams = config.read_text()
    config.write_text(with_teams.replace('online_meetings = "teams"\n', ""))
    cli("run", "--once", "--now", NOW)

    shown = review(cli)
    assert "no_online_provider" in shown["flags"]
    assert "without an online meeting provider" in shown["meeting"]["link_error"]
    assert fake.events(ORGANISER) == []
    sent = invitations_by_email(cli.outbox)
    assert set(sent) == set(INVITEES)
    bodies = [p.read_text(errors="replace").replace("=\n", "").replace("=\r\n", "")
              for p in cli.outbox.glob("*.eml")]
    bodies = [b for b in bodies if "text/calendar" in b]  # the invitations, not notices
    assert all("joining link will follow" in body for body in bodies)
    doctor = CliRunner().invoke(pytest.importorskip("ehcbridge.cli").cli,
                                ["--config", str(config), "doctor"])
    assert "no_online_provider" in doctor.output and "warning" in doctor.output

    config.write_text(with_teams)  # the council sets up Teams
    cli("run", "--once", "--now", "2026-11-23T09:00")

    [event] = fake.events(ORGANISER)
    join_url = event["onlineMeeting"]["joinUrl"]
    shown = review(cli)
    assert shown["meeting"]["join_url"] == join_url
    assert "no_online_provider" not in shown["flags"]
    assert not {a["emailAddress"]["address"] for a in event["attendees"]} & set(INVITEES)
    for address, subjects in invitations_by_email(cli.outbox).items():
        assert sum(s.startswith("Invitation:") for s in subjects) == 1, (address, subjects)
        assert sum(s.startswith("Updated invitation:") for s in subjects) == 1, (address,
                                                                                   subjects)
