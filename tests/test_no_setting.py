"""A child at no school or college (educated at home, a young person not in education): the
local authority arranges the review itself (SEND Regs 2014 reg 21), through the real CLI on
SQLite and PostgreSQL: the review list's no_setting column, the duties the LA owes, no setting
invited or told, and no head's termly list naming the child even where a former school's URN
lingers in the list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.testing import cli_invoker

HEADER = ("case_id,forename,surname,dob,nc_year,school_urn,plan_issued,parent_email,"
          "setting_email,elective_home_education\n")
LIST = HEADER + (
    # Educated at home since leaving school 130001, whose URN the Hub still shows.
    "EHC-H,Hal,Moor,2014-10-02,7,130001,2026-02-20,h@example.net,,yes\n"
    "EHC-S,Sol,Reed,2014-11-03,7,130001,2026-02-20,s@example.net,senco@school.example.org,\n"
)
NOW = "2026-04-01T09:00"


@pytest.fixture
def ehc(council: Any) -> Any:
    Path("reviews.csv").write_text(LIST, encoding="utf-8")  # in the test's folder
    return council


def duties(ehc: Any, case: str) -> dict[str, tuple[str, str, list[str]]]:
    """duty -> (owed by, rule, owed to) of the case's current review, meeting set."""
    ehc("review", "--now", NOW, "schedule", case, "--start", "2026-12-02T10:00")
    data = json.loads(ehc("review", "--now", NOW, "show", case, "--json"))
    return {d["name"]: (d["owed_by"], d["rule"], d["owed_to"]) for d in data["duties"]}


def termly(ehc: Any, *school: str) -> dict[str, list[str]]:
    """school group -> case ids on the termly list of reviews due in the winter of 2027."""
    text = ehc("lists", "termly", "--from", "2027-01-01", "--to", "2027-03-31", "--format",
               "json", "--now", NOW, *school)
    lists = json.JSONDecoder().raw_decode(text)[0]  # the summary line follows
    return {urn: [e["case_id"] for e in rows] for urn, rows in lists["schools"].items()}


def test_the_la_arranges_the_review_of_a_child_at_no_school(ehc: Any) -> None:
    assert "2 added" in ehc("import", "reviews", "reviews.csv", "--now", NOW)
    # Planning school 130001's meetings leaves out the child who left it.
    planned = ehc("plan", "--school", "130001", "--json", "--now", NOW)
    proposed = json.JSONDecoder().raw_decode(planned)[0]
    assert "EHC-S" in planned and "EHC-H" not in planned, proposed
    home, school = duties(ehc, "EHC-H"), duties(ehc, "EHC-S")
    assert home["invitations_sent"][:2] == ("la", "SEND Regs 2014 reg 21(3)")
    assert home["report_sent"][:2] == ("la", "SEND Regs 2014 reg 21(7)")
    assert home["decision_notified"] == ("la", "SEND Regs 2014 reg 21", ["parent",
                                                                          "young_person"])
    assert school["invitations_sent"][:2] == ("setting", "SEND Regs 2014 reg 20(3)")
    assert "setting" in school["decision_notified"][2]
    shown = ehc("review", "--now", NOW, "show", "EHC-H")
    assert "Attends no school or college: the LA arranges this review" in shown

    # School 130001's head is not sent a list naming a child who has left it, and the SEN2
    # return does not report the child there.
    assert termly(ehc) == {"130001": ["EHC-S"], "none": ["EHC-H"]}
    assert termly(ehc, "--school", "130001") == {"130001": ["EHC-S"]}
    sen2 = ehc("report", "sen2", "--year", "2027", "--csv").splitlines()
    assert ",EHC-H,," in sen2[1] and ",EHC-S,130001," in sen2[2]

    # Next month's list: Sol now learns at home. The school is no longer invited (the calendar
    # plugins send it the cancellation) and the LA owes what the school did.
    later = LIST.replace("s@example.net,senco@school.example.org,", "s@example.net,,yes")
    Path("later.csv").write_text(later, encoding="utf-8")
    assert "1 updated" in ehc("import", "reviews", "later.csv", "--now", NOW)
    data = json.loads(ehc("review", "--now", NOW, "show", "EHC-S", "--json"))
    assert {i["role"] for i in data["invitees"]} == {"parent"}
    owed = {d["name"]: d["owed_by"] for d in data["duties"]}
    assert owed["invitations_sent"] == owed["report_sent"] == "la"
    assert termly(ehc) == {"none": ["EHC-H", "EHC-S"]}


def test_a_setting_for_a_child_at_no_setting_is_a_row_error(ehc: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "EHC-B,Bo,Lake,2014-10-02,7,,2026-02-20,b@example.net,"
                   "senco@school.example.org,true\n"
                   "EHC-C,Cy,Lake,2014-10-02,7,,2026-02-20,c@example.net,,perhaps\n",
                   encoding="utf-8")
    out = ehc("import", "reviews", str(bad), "--now", NOW, code=1)
    assert "row 2, column setting_email" in out and "reg 21" in out
    assert "row 3, column no_setting" in out and "is not true or false" in out
    assert "nothing was imported" in out


def test_a_caseworker_records_it_and_a_list_that_does_not_say_keeps_it(ehc: Any) -> None:
    plain = "case_id,forename,surname,dob,nc_year,school_urn,plan_issued,setting_email\n" \
            "EHC-T,Tam,Ives,2014-10-02,7,130001,2026-02-20,senco@school.example.org\n"
    Path("plain.csv").write_text(plain, encoding="utf-8")
    ehc("import", "reviews", "plain.csv", "--now", NOW)
    out = ehc("review", "--now", NOW, "no-setting", "EHC-T")
    assert "EHC-T: attends no school or college; the local authority arranges the review" in out
    assert "senco@school.example.org is still invited as the setting" in out
    assert duties(ehc, "EHC-T")["report_sent"][:2] == ("la", "SEND Regs 2014 reg 21(7)")

    # The Hub's next export has no such column and still names the school's SENCO: the child
    # stays at no setting, and the SENCO that list named is no longer invited.
    ehc("import", "reviews", "plain.csv", "--now", NOW)
    data = json.loads(ehc("review", "--now", NOW, "show", "EHC-T", "--json"))
    assert data["plan"]["no_setting"] is True
    assert "setting" not in {i["role"] for i in data["invitees"]}

    out = ehc("review", "--now", NOW, "no-setting", "EHC-T", "--undo")
    assert "EHC-T: attends a school or college again" in out
    assert duties(ehc, "EHC-T")["report_sent"][:2] == ("setting", "SEND Regs 2014 reg 20(7)")


def test_a_council_rule_invites_its_home_education_team(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    ehc = cli_invoker(tmp_path, monkeypatch, f'[store]\nurl = "{store_url}"\n\n'
                      '[[engine.invitation_rules]]\nname = "ehe-team"\n'
                      'team = "Elective home education team"\nemail = "ehe@council.example"\n'
                      'no_setting_only = true\n')
    Path("reviews.csv").write_text(LIST, encoding="utf-8")
    ehc("import", "reviews", "reviews.csv", "--now", NOW)
    for case in ("EHC-H", "EHC-S"):
        ehc("review", "--now", NOW, "schedule", case, "--start", "2026-12-02T10:00")
    ehc("run", "--once", "--now", "2026-04-01T18:00")  # rules apply before invitations go
    sources = {case: {i["source"] for i in json.loads(ehc(
        "review", "--now", NOW, "show", case, "--json"))["invitees"]}
        for case in ("EHC-H", "EHC-S")}
    assert "rule:ehe-team" in sources["EHC-H"] and "rule:ehe-team" not in sources["EHC-S"]
