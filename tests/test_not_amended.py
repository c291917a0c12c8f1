"""After an amend decision and the family's representations, the local authority may decide not
to make the proposed amendments after all: it must tell the parent or young person why within 8
weeks of sending them (SEND Regs 2014 reg 22(4)), and the plan stays as it is. Through the real
CLI and engine on SQLite and PostgreSQL: the duty it meets, the warnings, the notice the family
and the school receive, and the refusals."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest

LIST = ("case_id,forename,surname,dob,nc_year,school_urn,plan_issued,parent_email,"
        "setting_email\n"
        "EHC-K,Kit,Lowe,2014-10-02,7,130001,2026-02-20,kit.family@example.net,"
        "senco@school.example.org\n"
        "EHC-L,Lou,Marsh,2014-11-03,7,130001,2026-02-20,lou.family@example.net,"
        "senco@school.example.org\n")
REASON = "The current provision meets the needs the advice describes"


@pytest.fixture
def ehc(mailing_council: Any) -> Any:
    """Both cases decided 'amend' after their meetings on 5 January 2027."""
    invoke = mailing_council(LIST, "2027-01-05T10:00")
    for case in ("EHC-K", "EHC-L"):
        invoke("review", "--now", "2027-01-05T12:00", "held", case)
        invoke("review", "--now", "2027-01-12T09:00", "decide", case, "amend", "--reason",
               "Outcomes updated", "--on", "2027-01-12")
    return invoke


def duties(ehc: Any, case: str) -> dict[str, tuple[str, str, str | None]]:
    """duty -> (status, rule, met on) of the review the decision concluded."""
    data = json.loads(ehc("review", "--now", "2027-06-01T09:00", "show", case, "--json"))
    found = {d["name"]: d for d in data["duties"] if d["review_id"] != data["review"]["id"]}
    return {n: (d["status"], d["rule"], d["met_on"]) for n, d in found.items()}


def notices(outbox: Path, subject: str) -> dict[str, email.message.EmailMessage]:
    """recipient -> the message whose subject has ``subject``."""
    found = {}
    for path in outbox.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if subject in str(msg["Subject"]):
            found[str(msg["To"])] = msg
    return found


def text_of(msg: Any) -> str:
    return " ".join(msg.get_body(preferencelist=("plain",)).get_content().split())


def test_the_family_is_told_the_amendments_are_not_made_and_why(
        ehc: Any, tmp_path: Path) -> None:
    ehc("review", "--now", "2027-01-15T09:00", "amendments", "EHC-K", "--on", "2027-01-15")
    out = ehc("review", "--now", "2027-02-10T09:00", "not-amended", "EHC-K", "--reason", REASON)
    assert "EHC-K: decision not to amend recorded" in out and "warning" not in out
    ehc("run", "--once", "--now", "2027-02-10T18:00")

    sent = notices(tmp_path / "outbox", "proposed amendments not made")
    assert set(sent) == {"kit.family@example.net", "senco@school.example.org"}, sorted(sent)
    family = text_of(sent["kit.family@example.net"])
    assert "proposed amendments to Kit's Education, Health and Care plan on Friday 15 " \
           "January 2027" in family
    assert "decided on Wednesday 10 February 2027 not to make those amendments" in family
    assert f"The reason: {REASON}" in family and "The plan stays as it is" in family
    assert "right to appeal to the First-tier Tribunal" in family and "mediation" in family
    school = text_of(sent["senco@school.example.org"])
    assert "The family has been told of their right of appeal" in school
    assert "Lowe" not in school  # the school reads initials

    # The 8 weeks a final plan would have had are met by the notice; the 15 days were allowed.
    found = duties(ehc, "EHC-K")
    assert found["final_plan_issued"][:2] == ("met", "SEND Regs 2014 reg 22(4)")
    assert found["representations_window"][0] == "met"
    # Nothing is left to do: no final plan is asked for, and the decision stands once.
    out = ehc("review", "--now", "2027-02-11T09:00", "final-plan", "EHC-K", code=1)
    assert "the decision not to amend was recorded on 2027-02-10 already" in out
    out = ehc("review", "--now", "2027-02-11T09:00", "not-amended", "EHC-K", "--reason",
              REASON, code=1)
    assert "already" in out
    listed = ehc("review", "--now", "2027-04-01T09:00", "list", "--duty", "final_plan_issued")
    assert "EHC-K" not in listed
    assert amended_in_time(ehc, "2027-04-01T09:00") == (1, 1)  # EHC-L's is not known yet


def amended_in_time(ehc: Any, now: str) -> tuple[int, int]:
    """The figure 'amendments concluded within 8 weeks', over the spring of 2027."""
    figures = json.JSONDecoder().raw_decode(ehc(
        "report", "kpis", "--from", "2027-01-01", "--to", "2027-06-30", "--json", "--now",
        now))[0]["figures"]
    found = next(r for r in figures if r["school"] == "all schools"
                 and r["measure"] == "amendments_in_8_weeks")
    return found["count"], found["total"]


def test_too_soon_too_late_and_without_amendments(ehc: Any) -> None:
    out = ehc("review", "--now", "2027-01-20T09:00", "not-amended", "EHC-L", "--reason", REASON,
              code=1)
    assert "no proposed amendments are recorded" in out
    assert "ehcbridge review amendments EHC-L --on DATE" in out
    ehc("review", "--now", "2027-01-15T09:00", "amendments", "EHC-L", "--on", "2027-01-15")
    out = ehc("review", "--now", "2027-01-20T09:00", "not-amended", "EHC-L", "--reason", " ",
              code=1)
    assert "give the reason" in out
    out = ehc("review", "--now", "2027-01-20T09:00", "not-amended", "EHC-L", "--reason", REASON,
              "--on", "2027-01-14", code=1)
    assert "before the proposed amendments of 2027-01-15" in out

    # Decided nine weeks after the amendments went: late, and before that nothing was lost.
    out = ehc("review", "--now", "2027-03-19T09:00", "not-amended", "EHC-L", "--reason", REASON)
    assert "final_plan_issued (SEND Regs 2014 reg 22(4)) was due by 2027-03-12" in out
    found = duties(ehc, "EHC-L")
    assert found["final_plan_issued"] == ("late", "SEND Regs 2014 reg 22(4)", "2027-03-19")
    # EHC-K's final plan is still owed (pending): only EHC-L's outcome is known, and it was late.
    assert amended_in_time(ehc, "2027-03-19T09:00") == (0, 1)


def test_deciding_before_the_15_days_end_is_flagged(ehc: Any) -> None:
    ehc("review", "--now", "2027-01-15T09:00", "amendments", "EHC-L", "--on", "2027-01-15")
    out = ehc("review", "--now", "2027-01-22T09:00", "not-amended", "EHC-L", "--reason", REASON)
    assert ("representations_window (SEND Regs 2014 reg 22(2)): the decision not to amend was "
            "made on 2027-01-22, before the 15 days for representations ended on 2027-01-30"
            in " ".join(out.split()))
    assert duties(ehc, "EHC-L")["representations_window"][0] == "missed"
