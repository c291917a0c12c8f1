"""The ehcbridge command line, with every first-party plugin installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from ehcbridge.cli import cli

FIRST_PARTY = {"teams", "outlook", "sims", "health_referrals", "social_care", "zoom"}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_plugins_json_lists_the_six_first_party_plugins_loaded() -> None:
    code, out, _ = run("plugins", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) >= FIRST_PARTY
    for name in FIRST_PARTY:
        row = rows[name]
        assert set(row) == {"name", "distribution", "version", "hooks", "status", "reason"}
        assert row["status"] == "loaded", row
        assert row["distribution"] == "ehcbridge-" + name.replace("_", "-")
    assert "provide_online_meeting" in rows["teams"]["hooks"]


def test_disabled_plugin_shows_disabled() -> None:
    _, out, _ = run("plugins", "--json", env={"EHCBRIDGE_DISABLE_PLUGINS": "teams"})
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["teams"]["status"] == "disabled"
    assert rows["outlook"]["status"] == "loaded"


def test_wrong_type_in_plugins_teams_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text('[plugins.teams]\nallow_new_time_proposals = "sometimes"\n')
    code, out, err = run("--config", str(config), "plugins", "--json")
    teams = next(r for r in json.loads(out) if r["name"] == "teams")
    assert teams["status"] == "failed"
    assert f"{config}: [plugins.teams] key 'allow_new_time_proposals'" in teams["reason"]
    code, _, err = run("--config", str(config), "config", "show")
    assert code == 1 and "allow_new_time_proposals" in err


def test_config_show_masks_secrets_and_env_wins(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text('[engine]\nmax_attempts = 3\n[plugins.teams]\nclient_secret = "from-file"\n')
    env = {"EHCBRIDGE_PLUGINS__TEAMS__CLIENT_SECRET": "from-env-s3cr3t",
           "EHCBRIDGE_ENGINE__MAX_ATTEMPTS": "5"}
    code, out, _ = run("--config", str(config), "config", "show", "--json", env=env)
    assert code == 0
    data = json.loads(out)
    assert data["engine"]["max_attempts"] == 5
    assert data["plugins"]["teams"]["client_secret"] == "********"
    assert "s3cr3t" not in out and "from-file" not in out
    code, out, _ = run("--config", str(config), "config", "show", env=env)
    assert "max_attempts = 5" in out and "s3cr3t" not in out


def test_unknown_top_level_setting_is_an_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text("[engine]\ntick_secs = 5\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "show"])
    assert result.exit_code == 1
    assert f"{config}: [engine] key 'tick_secs'" in result.output


def test_doctor_reports_not_configured_plugins_and_store(tmp_path: Path) -> None:
    code, out, _ = run("doctor")
    assert "not configured" in out
    assert re.search(r"sqlite, schema \d{4}", out)
    assert code == 0


def test_timeline_json_shape() -> None:
    code, out, _ = run("timeline", "--issued", "2026-04-01", "--meeting", "2027-03-10T10:00",
                       "--json")
    assert code == 0
    items = {m["name"]: m for m in json.loads(out)}
    assert set(items["views_due"]) == {"name", "date", "kind", "rule", "warnings"}
    assert items["review_due"]["date"] == "2027-03-31"
    assert items["views_due"] == {"name": "views_due", "date": "2027-02-24", "kind": "statutory",
                                  "rule": "SEND Regs 2014 reg 20(4)", "warnings": []}


def test_review_workflow_from_the_command_line(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued,coordinator_email\n"
                   "EHC-7,Sam,Example,2026-04-01,senco@school.example.org\n")
    env = {"EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "EHCBRIDGE_PLUGINS__OUTLOOK__OUTBOX_DIR": str(tmp_path / "outbox")}
    assert run("import", "reviews", str(csv), env=env)[0] == 0
    code, out, _ = run("review", "schedule", "EHC-7", "--start", "2027-03-10T10:00",
                       "--location", "Room 4", env=env)
    assert code == 0 and "meeting scheduled" in out
    assert run("review", "invite", "EHC-7", "--role", "parent", "--email",
               "parent@example.net", env=env)[0] == 0
    code, out, _ = run("run", "--once", "--now", "2027-01-28T09:00", env=env)
    assert code == 0 and "delivered" in out
    code, out, _ = run("review", "show", "EHC-7", "--json", env=env)
    data = json.loads(out)
    assert data["meeting"]["location"] == "Room 4"
    assert "parent@example.net" in {i["email"] for i in data["invitees"]}
    assert {d["hook"] for d in data["deliveries"]} == {"on_review_scheduled", "on_views_due",
                                                       "deliver_notice"}
    assert "Sam" not in out and "Example" not in out.replace("example", "")
    code, out, _ = run("review", "reschedule", "EHC-404", "--start", "2027-03-10T10:00",
                         env=env)
    assert code == 1


def test_bad_csv_exits_non_zero_and_names_the_row(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued\nEHC-1,A,B,2026-13-01\n")
    result = CliRunner().invoke(cli, ["import", "reviews", str(csv)],
                                env={"EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code == 1
    assert f"{csv} row 2, column plan_issued: '2026-13-01' is not a date" in result.output
    assert "nothing was imported" in result.output


def test_help_imports_no_vendor_or_database_library() -> None:
    code = ("import sys; from ehcbridge.cli import cli\n"
            "try:\n    cli(['--help'], prog_name='ehcbridge')\nexcept SystemExit:\n    pass\n"
            "heavy = ['sqlalchemy', 'alembic', 'msal', 'httpx', 'icalendar', 'defusedxml',"
            " 'pydantic_settings', 'holidays', 'psycopg', 'tenacity', 'rich', 'croniter']\n"
            "print(','.join(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert "zoom" in " ".join(out)  # plugin commands are listed
    assert out[-1] == "", f"--help imported: {out[-1]}"


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and "0.1.0" in out


def test_reschedule_keeps_format_and_place_and_invites_fire_an_update(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued\nEHC-8,Sam,Example,2026-04-01\n")
    env = {"EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "EHCBRIDGE_LOAD_PLUGINS": ""}
    run("import", "reviews", str(csv), env=env)
    assert run("review", "decide", "EHC-8", "maintain", "--reason", "x", env=env)[0] == 1
    run("review", "schedule", "EHC-8", "--start", "2027-03-10T10:00", "--end", "2027-03-10T11:30",
        "--location", "Room 4", "--online", env=env)
    run("review", "reschedule", "EHC-8", "--start", "2027-03-17T14:00", env=env)
    meeting = json.loads(run("review", "show", "EHC-8", "--json", env=env)[1])["meeting"]
    assert (meeting["online"], meeting["location"]) == (True, "Room 4")
    assert meeting["start"].startswith("2027-03-17T14:00") and "15:30" in meeting["end"]
    code, _, err = run("review", "invite", "EHC-8", "--role", "health", env=env)
    assert code == 1 and "needs an email address" in err
    assert run("review", "invite", "EHC-8", "--role", "health", "--email",
               "salt@nhs.example.net", env=env)[0] == 0
    from ehcbridge.store import Store

    store = Store(env["EHCBRIDGE_STORE__URL"])
    keys = [e.key for e in store.undispatched_events()]
    store.close()
    assert keys[:2] == ["EHC-8/r1/m1/scheduled/0", "EHC-8/r1/m1/rescheduled/1"]
    # The update is keyed by who is invited now (a digest), not by how many.
    assert len(keys) == 3 and keys[2].startswith("EHC-8/r1/m1/updated/1/")


def test_strict_mode_reports_a_failing_plugin_without_a_traceback(tmp_path: Path) -> None:
    import os

    config = tmp_path / "ehcbridge.toml"
    config.write_text('[plugins.teams]\nallow_new_time_proposals = "sometimes"\n')
    env = {**os.environ, "EHCBRIDGE_STRICT_PLUGINS": "1", "EHCBRIDGE_CONFIG": str(config)}
    result = subprocess.run([sys.executable, "-m", "ehcbridge.cli", "plugins"], env=env,
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Error: plugin teams failed" in result.stderr
    assert "allow_new_time_proposals" in result.stderr
