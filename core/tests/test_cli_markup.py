"""Text from a council's files is printed as it is: square brackets are not rich markup.

A name like ``Sam [/b] Ng`` once crashed ``review show`` with rich's MarkupError, and a
delivery error naming ``[plugins.teams]`` lost those words.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from ehcbridge.cli import cli

CSV = (
    "case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,coordinator_email,"
    "meeting_start,location,parent_email,parent_name\n"
    "EHC-M1,Q999000000011,Sam,Ng,2014-03-02,7,100001,2026-04-01,senco@school.example.org,"
    "2026-11-10T10:00,Room [/b] 4 [plugins.teams],p@example.net,Pat [/b] Ng [red]\n")


def test_review_show_list_and_doctor_print_brackets_as_written(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{(tmp_path / "m.sqlite3").as_posix()}"\n\n'
                      "[plugins.teams]\ntenant_id = \"\"\n", encoding="utf-8")
    reviews = tmp_path / "reviews.csv"
    reviews.write_text(CSV, encoding="utf-8")
    env = {"EHCBRIDGE_LOAD_PLUGINS": "teams"}

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception
        assert "Traceback" not in result.output and "MarkupError" not in result.output
        return " ".join(result.output.split())

    run("import", "reviews", str(reviews), "--now", "2026-09-07T09:00")
    run("review", "--now", "2026-09-07T09:00", "cancel", "EHC-M1", "--reason",
        "family asked [/i] for [another] date")
    run("run", "--once", "--now", "2026-09-07T18:00")
    shown = run("review", "--now", "2026-09-08T09:00", "show", "EHC-M1")
    assert "Pat [/b] Ng [red]" in shown
    assert "Room [/b] 4 [plugins.teams]" in shown
    # The teams plugin is not configured: its skipped deliveries say which section to fill in.
    assert "[plugins.teams] needs:" in shown
    listed = run("review", "list")
    assert "EHC-M1" in listed
    doctor = run("doctor")
    assert "[plugins.teams] needs:" in doctor
