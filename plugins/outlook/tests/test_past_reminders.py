"""Reminders whose date has passed when the engine first sees them are not mailed (issue 16).

On 1 Dec 2026 ``run --once`` used to email a coordinator an all-day reminder for 29 Oct 2026.
"""

from __future__ import annotations

import email
import json
import os
from email import policy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

CSV = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,"
       "meeting_start,meeting_end,location,online,coordinator_email,parent_name,"
       "parent_email,setting_email,sen_officer_email\n"
       "EHC-00077,A999268759382,Nico,Dunmore,09/09/2014,7,100004,2025-05-27,2026-06-01,,,,false,"
       "caseworker1@council.example.gov.uk,Parent of N.D.,parent@family.example.net,"
       "senco@school.example.org,sen.team@council.example.gov.uk\n")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli(*args)`` runs ehcbridge with the outlook plugin writing to an outbox."""
    cli_module = pytest.importorskip("ehcbridge.cli")
    for key in list(os.environ):
        if key.startswith("EHCBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
                      "[plugins.outlook]\n"
                      f'outbox_dir = "{tmp_path / "outbox"}"\n'
                      'from_address = "sen@council.example.gov.uk"\n')
    (tmp_path / "reviews.csv").write_text(CSV)

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(cli_module.cli, ["--config", str(config), *args],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return str(result.output)

    invoke("import", "reviews", "reviews.csv")
    invoke.outbox = tmp_path / "outbox"  # type: ignore[attr-defined]
    return invoke


def reminder_subjects(outbox: Path) -> list[str]:
    """Subjects of the deadline reminders in the outbox."""
    found = []
    for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        subject = str(message["Subject"])
        if "eminder" in subject and ".notice@" not in str(message["Message-ID"]):  # not notices
            found.append(subject)
    return found


def outlook_views_rows(cli: Any) -> list[dict[str, Any]]:
    """The outlook plugin's on_views_due deliveries."""
    rows: list[dict[str, Any]] = json.loads(cli("deliveries", "--json"))
    return [r for r in rows if r["hook"] == "on_views_due" and r["plugin"] == "outlook"]


def test_catch_up_never_mails_a_reminder_for_a_day_gone(cli: Any) -> None:
    cli("review", "schedule", "EHC-00077", "--start", "2026-12-10T10:00")
    cli("run", "--once", "--now", "2026-12-01T09:00")

    assert reminder_subjects(cli.outbox) == []  # not 29 Oct, not 26 Nov
    rows = outlook_views_rows(cli)
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert all(r["error"].startswith("skipped (past)") for r in rows)
    assert "29 October 2026" in rows[0]["error"]


def test_only_the_reminders_still_ahead_are_sent(cli: Any) -> None:
    cli("review", "schedule", "EHC-00077", "--start", "2026-12-21T10:00")
    cli("run", "--once", "--now", "2026-12-01T09:00")

    subjects = reminder_subjects(cli.outbox)
    assert len(subjects) == 1 and "7 December 2026" in subjects[0], subjects  # views due
    assert not any("November" in s for s in subjects)  # the request date had passed
    assert {r["status"] for r in outlook_views_rows(cli)} == {"delivered"}
