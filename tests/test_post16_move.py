"""A young person moving between post-16 institutions at another time (SEND Regs 2014 reg 18(2)):
the plan is reviewed and amended at least 5 months before the move, through the real CLI on
SQLite and PostgreSQL: from the review list's column, from 'review move', kept by a re-import
that does not name it, withdrawn, refused for a pupil below Year 12, and marked on the termly
list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HEADER = "case_id,forename,surname,dob,nc_year,school_urn,plan_issued,parent_email,post16_move\n"
LIST = HEADER + (
    # Year 12, moving college on 11 January 2027: due 11 August 2026, not 19 March 2027.
    "EHC-M,Mo,Ray,2009-10-02,12,130001,2026-03-20,m@example.net,2027-01-11\n"
    # Year 13, no move in the list (one is recorded by hand below).
    "EHC-N,Nia,Lee,2008-11-03,13,130001,2026-03-20,n@example.net,\n"
)
NOW = "2026-04-01T09:00"


@pytest.fixture
def ehc(council: Any) -> Any:
    Path("reviews.csv").write_text(LIST, encoding="utf-8")  # in the test's folder
    return council


def show(ehc: Any, case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ehc("review", "--now", NOW, "show", case, "--json"))
    return data


def clock(data: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(kind, due by, the transfer deadline's rule, the transfer duty's due date)."""
    rule = next((m["rule"] for m in data["milestones"]
                 if m["name"] == "phase_transfer_deadline"), None)
    duty = next((d["due"] for d in data["duties"] if d["name"] == "phase_transfer_final_plan"
                 and d["review_id"] == data["review"]["id"]), None)
    return data["review"]["kind"], data["review"]["due_by"], rule, duty


def test_a_move_listed_or_recorded_brings_the_review_forward(ehc: Any) -> None:
    out = ehc("import", "reviews", "reviews.csv", "--now", NOW)
    assert "2 added" in out
    assert clock(show(ehc, "EHC-M")) == ("phase_transfer", "2026-08-11",
                                         "SEND Regs 2014 reg 18(2)", "2026-08-11")
    assert clock(show(ehc, "EHC-N")) == ("annual", "2027-03-19", None, None)

    out = ehc("review", "--now", NOW, "move", "EHC-N", "--on", "2026-12-01")
    assert "EHC-N: post-16 move on 01 Dec 2026 recorded; the phase_transfer review due by " \
           "01 Jul 2026, 5 months before it (reg 18(2))" in out
    assert clock(show(ehc, "EHC-N")) == ("phase_transfer", "2026-07-01",
                                         "SEND Regs 2014 reg 18(2)", "2026-07-01")
    assert show(ehc, "EHC-N")["plan"]["post16_move"] == "2026-12-01"
    assert "Moves to another post-16 institution on 2026-12-01 (reg 18(2)" in ehc(
        "review", "--now", NOW, "show", "EHC-N")

    # Next month's list still has no date for EHC-N: the move recorded here stands.
    out = ehc("import", "reviews", "reviews.csv", "--now", NOW)
    assert "2 unchanged" in out
    assert clock(show(ehc, "EHC-N"))[:2] == ("phase_transfer", "2026-07-01")

    # A move the review is due before anyway leaves its date, and the termly list says the
    # review must look at the transition.
    out = ehc("review", "--now", NOW, "move", "EHC-N", "--on", "2027-09-06")
    assert "the annual review due by 19 Mar 2027 already, sooner than 5 months before it" in out
    assert termly(ehc) == {"EHC-N": "yes"}

    out = ehc("review", "--now", NOW, "move", "EHC-N", "--none")
    assert "EHC-N: post-16 move withdrawn; the annual review due by 19 Mar 2027" in out
    assert clock(show(ehc, "EHC-N")) == ("annual", "2027-03-19", None, None)
    assert termly(ehc) == {"EHC-N": ""}


def termly(ehc: Any) -> dict[str, str]:
    """case id -> the termly list's phase transfer mark, for reviews due in spring 2027."""
    text = ehc("lists", "termly", "--from", "2027-01-01", "--to", "2027-03-31", "--format",
               "json", "--now", NOW)
    lists = json.JSONDecoder().raw_decode(text)[0]  # the summary line follows
    return {e["case_id"]: e["phase_transfer"] for rows in lists["schools"].values() for e in rows}


def test_a_move_recorded_late_is_said_to_be_late(ehc: Any) -> None:
    ehc("import", "reviews", "reviews.csv", "--now", NOW)
    # Told on 1 September of a move on 11 January: 5 months before was 11 August.
    out = ehc("review", "--now", "2026-09-01T09:00", "move", "EHC-N", "--on", "2027-01-11")
    assert "the phase_transfer review due by 11 Aug 2026" in out
    assert "the latest date for this review's meeting (19 May 2026) has passed" in out
    data = show(ehc, "EHC-N")
    assert data["review"]["due_by"] == "2026-08-11"
    assert list(data["flags"]) == ["overdue"]
    assert "5 months before the post-16 move on 2027-01-11" in data["flags"]["overdue"]
    # A move whose 5 months began before this review period: the caseworker is told to open
    # an early review; the clock does not date the review before its own period.
    out = ehc("review", "--now", NOW, "move", "EHC-M", "--on", "2026-08-01")
    assert "5 months before the move (01 Mar 2026) was before this review period began " \
           "(20 Mar 2026), so the review stays due by 19 Mar 2027" in out
    assert "'ehcbridge review early'" in out
    assert clock(show(ehc, "EHC-M"))[:2] == ("annual", "2027-03-19")


def test_a_move_for_a_pupil_below_year_12_is_refused(ehc: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "EHC-Y,Yas,Kay,2011-10-02,10,130001,2026-03-20,y@example.net,"
                   "2027-01-11\n", encoding="utf-8")
    out = ehc("import", "reviews", str(bad), "--now", NOW, code=1)
    assert "row 2" in out and "post16_move" in out and "reg 18(2)" in out
    assert "nothing was imported" in out
    ehc("import", "reviews", "reviews.csv", "--now", NOW)
    ehc("review", "--now", NOW, "move", "EHC-M", code=2)  # neither --on nor --none
