"""Issue 12: a school year of reviews through the real CLI, every duty and deadline checked.

Eight reviews, each a story a caseworker knows (on time and amended, late report, late decision,
a decision refused before the meeting, a meeting moved past the due date, a phase transfer, an
under-five, an early review), on SQLite and PostgreSQL. Each duty's status is asserted at the
end, and each ``on_deadline`` delivery to the outlook plugin exactly once.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ehcbridge.cli import cli

CSV = """\
case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,last_review,coordinator_email,parent_email,sen_officer_email
EHC-A,Q999000000011,Alex,One,2014-03-02,7,100001,2026-04-01,,senco.a@school.example.org,a.parent@example.net,sen.a@la.example.gov.uk
EHC-B,E999000000012,Bea,Two,2014-03-02,7,100001,2026-04-01,,senco.b@school.example.org,b.parent@example.net,sen.b@la.example.gov.uk
EHC-C,U999000000013,Cal,Three,2014-03-02,7,100001,2026-04-01,,senco.c@school.example.org,c.parent@example.net,sen.c@la.example.gov.uk
EHC-D,H999000000014,Dee,Four,2014-03-02,7,100001,2026-04-01,,senco.d@school.example.org,d.parent@example.net,sen.d@la.example.gov.uk
EHC-E,X999000000015,Eli,Five,2014-03-02,7,100001,2026-04-01,,senco.e@school.example.org,e.parent@example.net,sen.e@la.example.gov.uk
EHC-F,L999000000016,Fay,Six,2015-10-02,6,100006,2024-06-01,2026-06-01,senco.f@school.example.org,f.parent@example.net,sen.f@la.example.gov.uk
EHC-G,A999000000017,Gus,Seven,2023-01-10,,100007,2026-05-01,,senco.g@school.example.org,g.parent@example.net,sen.g@la.example.gov.uk
EHC-H,P999000000018,Hal,Eight,2014-03-02,7,100008,2026-04-01,,senco.h@school.example.org,h.parent@example.net,sen.h@la.example.gov.uk
"""


class Council:
    """Runs ``ehcbridge`` as a caseworker would, against one settings file."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.outbox = tmp_path / "outbox"
        self.config = tmp_path / "ehcbridge.toml"
        self.config.write_text(
            f'[store]\nurl = "{url}"\n\n[engine]\nat_risk_school_days = 5\n\n'
            f'[plugins.outlook]\ntransport = "outbox"\noutbox_dir = "{self.outbox.as_posix()}"\n',
            encoding="utf-8")
        self.env = {"EHCBRIDGE_LOAD_PLUGINS": "outlook"}

    def __call__(self, *args: str, ok: bool = True) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], env=self.env)
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    def review(self, when: str, *args: str, ok: bool = True) -> Any:
        return self("review", "--now", f"{when}T09:00", *args, ok=ok)

    def engine(self, when: str, at: str = "18:00") -> str:
        return str(self("run", "--once", "--now", f"{when}T{at}").output)

    def show(self, case: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.review("2027-08-31", "show", case, "--json").output)
        return data

    def duties(self, case: str, review: str = "decided") -> dict[str, tuple[str, str | None]]:
        """name -> (status, due) of the case's decided review (or its current one)."""
        data = self.show(case)
        current = data["review"]["id"]
        rows = [d for d in data["duties"] if (d["review_id"] == current) == (review == "current")]
        return {d["name"]: (d["status"], d["due"]) for d in rows}


def test_a_school_year_of_reviews(tmp_path: Path, store_url: str) -> None:
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    out = ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00").output
    assert "8 added" in out
    from datetime import date, timedelta

    actions: dict[str, list[tuple[str, ...]]] = {
        "2026-09-14": [("schedule", "EHC-A", "--start", "2027-01-06T10:00"),
                       ("schedule", "EHC-B", "--start", "2027-01-13T10:00"),
                       ("schedule", "EHC-C", "--start", "2027-01-20T10:00"),
                       ("schedule", "EHC-D", "--start", "2027-02-10T10:00"),
                       ("schedule", "EHC-E", "--start", "2027-03-03T10:00"),
                       ("schedule", "EHC-G", "--start", "2027-01-27T10:00"),
                       ("PLAN", "100006")],
        "2026-10-05": [("early", "EHC-H", "--reason", "moving to a new school"),
                       ("PLAN", "100008")],
        "2026-11-04": [("advice", "EHC-F", "--on", "2026-11-04")],
        "2026-11-09": [("report", "EHC-H", "--on", "2026-11-09")],
        "2026-11-20": [("decide", "EHC-H", "maintain", "--reason", "r", "--on", "2026-11-20")],
        "2026-11-30": [("report", "EHC-F", "--on", "2026-11-30")],
        "2026-12-09": [("decide", "EHC-F", "amend", "--reason", "new school",
                        "--on", "2026-12-09")],
        "2026-12-11": [("amendments", "EHC-F", "--on", "2026-12-11")],
        "2026-12-15": [("advice", "EHC-A", "--on", "2026-12-15")],
        "2026-12-30": [("advice", "EHC-C", "--on", "2026-12-30")],
        "2026-12-23": [("advice", "EHC-B", "--on", "2026-12-23")],
        "2027-01-06": [("advice", "EHC-G", "--on", "2027-01-06")],
        "2027-01-13": [("report", "EHC-A", "--on", "2027-01-13")],
        "2027-01-20": [("held", "EHC-C"), ("advice", "EHC-D", "--on", "2027-01-20"),
                       ("final-plan", "EHC-F", "--on", "2027-01-20")],
        "2027-01-27": [("report", "EHC-C", "--on", "2027-01-27"), ("held", "EHC-G"),
                       ("decide", "EHC-A", "amend", "--reason", "r", "--on", "2027-01-27")],
        "2027-01-29": [("amendments", "EHC-A", "--on", "2027-01-29")],
        "2027-02-01": [("REFUSED", "decide", "EHC-D", "maintain", "--reason", "r",
                        "--on", "2027-02-01")],
        "2027-02-03": [("report", "EHC-G", "--on", "2027-02-03")],
        "2027-02-04": [("report", "EHC-B", "--on", "2027-02-04")],
        "2027-02-05": [("decide", "EHC-B", "maintain", "--reason", "r", "--on", "2027-02-05")],
        "2027-02-10": [("held", "EHC-D"), ("advice", "EHC-E", "--on", "2027-02-10"),
                       ("REFUSED", "decide", "EHC-D", "maintain", "--reason", "r",
                        "--on", "2027-02-09")],
        "2027-02-17": [("report", "EHC-D", "--on", "2027-02-17"),
                       ("decide", "EHC-G", "maintain", "--reason", "r", "--on", "2027-02-17")],
        "2027-02-20": [("reschedule", "EHC-E", "--start", "2027-04-14T10:00")],
        "2027-02-24": [("decide", "EHC-D", "maintain", "--reason", "r", "--on", "2027-02-24")],
        "2027-02-26": [("decide", "EHC-C", "maintain", "--reason", "r", "--on", "2027-02-26")],
        "2027-03-01": [("final-plan", "EHC-A", "--on", "2027-03-01")],
        "2027-04-21": [("report", "EHC-E", "--on", "2027-04-21"),
                       ("decide", "EHC-E", "maintain", "--reason", "r", "--on", "2027-04-21")],
    }
    outputs: dict[tuple[str, str], Any] = {}
    day, last = date(2026, 9, 9), date(2027, 7, 28)
    days = sorted({*actions, *(str(day + timedelta(weeks=n))
                                for n in range((last - day).days // 7 + 1))})
    for when in days:
        for step in actions.get(when, []):
            if step[0] == "PLAN":
                outputs[(when, "plan " + step[1])] = ehc(
                    "plan", "--school", step[1], "--apply", "--now", f"{when}T09:00")
            elif step[0] == "REFUSED":
                outputs[(when, " ".join(step[1:3]))] = ehc.review(when, *step[1:], ok=False)
            else:
                outputs[(when, " ".join(step[:2]))] = ehc.review(when, *step)
        if date.fromisoformat(when).weekday() == 2:
            ehc.engine(when)
    for when in ("2027-08-04", "2027-08-11"):  # later passes fire nothing twice
        ehc.engine(when)

    said = {k: v.output for k, v in outputs.items()}
    # Refused, with a clear error: a decision before the meeting is held, or dated before it.
    assert "no review meeting has been held" in said[("2027-02-01", "decide EHC-D")]
    assert "record it with 'ehcbridge review held EHC-D'" in said[("2027-02-01", "decide EHC-D")]
    assert "dated 2027-02-09 is before the meeting on 2027-02-10" in \
        said[("2027-02-10", "decide EHC-D")]
    assert "Traceback" not in "".join(said.values())
    # Accepted, with a warning: late report, late decision, a meeting moved past the due date.
    assert "warning: report_sent (SEND Regs 2014 reg 20(7)) was due by 2027-01-27" in \
        said[("2027-02-04", "report EHC-B")]
    assert "warning: decision_made" in said[("2027-02-26", "decide EHC-C")]
    assert "after the review is due (2027-03-31)" in said[("2027-02-20", "reschedule EHC-E")]
    # Amend: 15 days for representations and 8 weeks for the final plan, from the amendments.
    assert "representations until 13 Feb 2027, final plan due by 26 Mar 2027" in \
        said[("2027-01-29", "amendments EHC-A")]

    met = "met"
    assert ehc.duties("EHC-A") == {
        "invitations_good_practice": (met, "2026-09-16"), "views_requested": (met, "2026-11-25"),
        "advice_circulated": (met, "2026-12-23"), "invitations_sent": (met, "2026-12-23"),
        "report_sent": (met, "2027-01-20"), "amendments_proposed": (met, "2027-02-03"),
        "decision_made": (met, "2027-02-03"), "decision_notified": (met, "2027-02-03"),
        "representations_window": (met, "2027-02-13"), "meeting_held": (met, "2027-03-03"),
        "final_plan_issued": (met, "2027-03-26")}
    b = ehc.duties("EHC-B")
    assert b["report_sent"] == ("late", "2027-01-27")
    assert {s for n, (s, _) in b.items() if n != "report_sent"} == {met}
    c = ehc.duties("EHC-C")
    assert c["decision_made"] == c["decision_notified"] == ("late", "2027-02-17")
    assert {s for n, (s, _) in c.items() if not n.startswith("decision")} == {met}
    assert {s for s, _ in ehc.duties("EHC-D").values()} == {met}
    e = ehc.duties("EHC-E")
    assert e["meeting_held"] == ("late", "2027-03-03")
    assert e["decision_made"] == ("late", "2027-03-31")  # missed, then met late
    assert e["invitations_good_practice"][0] == "late"  # re-sent for 14 Apr on 20 Feb
    # Phase transfer (Year 6, 15 Feb): the meeting leaves 4 weeks for the decision and 8 for the
    # amended plan, so the planner put it by 23 Nov 2026, not in January.
    f_show = ehc.show("EHC-F")
    f = ehc.duties("EHC-F")
    assert f["meeting_held"] == (met, "2026-11-23")
    assert f["phase_transfer_final_plan"] == (met, "2027-02-15")
    assert f["final_plan_issued"] == (met, "2027-02-05")
    assert f["views_requested"] == ("late", "2026-10-12")  # the engine ran two days later
    # ... and the next review is due 12 months after the transfer decision, not overdue.
    assert (f_show["review"]["kind"], f_show["review"]["due_by"]) == ("annual", "2027-12-08")
    # Under-five: next review within 6 months of the decision; the 12-month date still stands.
    g_show = ehc.show("EHC-G")
    assert (g_show["review"]["kind"], g_show["review"]["due_by"]) == ("under_five", "2027-08-16")
    assert ehc.duties("EHC-G", "current")["decision_made"] == ("pending", "2028-02-16")
    assert {s for s, _ in ehc.duties("EHC-G").values()} == {met}
    # Early review: planned as soon as possible, the reason kept on the decided review's flag.
    h_plan = outputs[("2026-10-05", "plan 100008")].output
    assert "EHC-H" in h_plan and "as soon as possible for an early review" in h_plan
    h = ehc.duties("EHC-H")
    # The reminder carrying the advice to everyone (issue 13's notices) went out, late.
    assert h["advice_circulated"] == ("late", "2026-10-19")
    assert h["meeting_held"] == (met, "2027-03-03")

    rows = json.loads(ehc("deliveries", "--json").output)
    deadlines = Counter((r["event"], r["plugin"], r["status"]) for r in rows
                        if r["hook"] == "on_deadline")
    expected = {
        "EHC-A/r1/deadline/amendments_proposed/at_risk",  # due 3 Feb, sent 29 Jan
        "EHC-B/r2/deadline/decision_made/at_risk",
        "EHC-B/r2/deadline/report_sent/at_risk",
        "EHC-B/r2/deadline/report_sent/missed",
        "EHC-C/r3/deadline/decision_made/at_risk",
        "EHC-C/r3/deadline/decision_made/missed",
        "EHC-E/r5/deadline/decision_made/at_risk",
        "EHC-E/r5/deadline/decision_made/missed",
        "EHC-F/r6/deadline/meeting_held/at_risk",  # the meeting is on its last possible day
        "EHC-H/r8/deadline/advice_circulated/at_risk",
        "EHC-H/r8/deadline/advice_circulated/missed",
    }
    assert deadlines == Counter({(key, "outlook", "delivered"): 1 for key in expected})
    # The coordinator hears of each; the LA SEN officer of each missed duty, once each.
    sent: Counter[tuple[str, str]] = Counter()
    for path in sorted(ehc.outbox.glob("*.eml")):
        # Parsed, not grepped: a long subject (a notice's) is folded onto a second line.
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subject = str(message["Subject"])
        if subject.startswith("EHC review"):
            sent[(str(message["To"]), subject)] += 1
    assert set(sent.values()) == {1}
    assert sum(sent.values()) == len(expected) + sum(k.endswith("missed") for k in expected)
    assert {to for to, subject in sent if "EHC-H: advice circulated was missed" in subject} == {
        "senco.h@school.example.org", "sen.h@la.example.gov.uk"}
    assert {to for to, subject in sent if "EHC-H: advice circulated is at risk" in subject} == {
        "senco.h@school.example.org"}

    listed = json.loads(ehc.review("2027-08-31", "list", "--duty", "meeting_held",
                                   "--json").output)
    assert {r["case_id"] for r in listed} == set("EHC-" + c for c in "ABCDEFGH")


def test_import_reports_and_flags_reviews_already_overdue(tmp_path: Path) -> None:
    ehc = Council(tmp_path, f"sqlite:///{tmp_path / 'overdue.sqlite3'}")
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text("case_id,forename,surname,plan_issued,coordinator_email\n"
                           "EHC-1,Ann,Old,2025-01-10,senco@school.example.org\n"
                           "EHC-2,Ben,New,2026-06-10,senco@school.example.org\n",
                           encoding="utf-8")
    out = ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00").output
    assert "1 imported review(s) are already overdue" in out
    flagged = json.loads(ehc.review("2026-09-07", "list", "--flag", "overdue", "--json").output)
    assert [r["case_id"] for r in flagged] == ["EHC-1"]
    overdue = json.loads(ehc.review("2026-09-07", "list", "--overdue", "--json").output)
    assert [(r["case_id"], sorted(d["name"] for d in r["duties"])) for r in overdue] == [
        ("EHC-1", ["decision_made", "decision_notified", "meeting_held"])]
    ehc.engine("2026-09-09")
    # History is reported by the import, not mailed duty by duty.
    rows = json.loads(ehc("deliveries", "--json").output)
    assert [r for r in rows if r["hook"] == "on_deadline"] == []


def test_timeline_and_review_show_read_the_nc_year_the_same_way(tmp_path: Path) -> None:
    ehc = Council(tmp_path, f"sqlite:///{tmp_path / 'nc.sqlite3'}")
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")
    shown = {m["name"]: m["date"] for m in json.loads(ehc.review(
        "2026-09-07", "show", "EHC-F", "--json").output)["milestones"]}
    printed = {m["name"]: m["date"] for m in json.loads(ehc(
        "timeline", "--issued", "2024-06-01", "--last-review", "2026-06-01", "--nc-year", "6",
        "--as-of", "2026-09-07", "--json").output)}
    assert shown["review_due"] == printed["review_due"] == "2027-02-15"
    assert shown["meeting_latest"] == printed["meeting_latest"] == "2026-11-23"


def test_a_meeting_set_late_then_moved_into_time_is_no_longer_flagged(
        tmp_path: Path, store_url: str) -> None:
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")

    def flagged(flag: str) -> list[str]:
        rows = json.loads(ehc.review("2026-09-14", "list", "--flag", flag, "--json").output)
        return [r["case_id"] for r in rows]

    # EHC-A is due by 2027-03-31: a meeting in April is set with a warning and flagged.
    out = ehc.review("2026-09-14", "schedule", "EHC-A", "--start", "2027-04-14T10:00").output
    assert "after the review is due" in out
    assert flagged("meeting_late") == ["EHC-A"] and flagged("deadline_late") == []
    assert ehc.duties("EHC-A", "current")["meeting_held"][0] == "late"
    # The SENCO moves it into time: nothing is late any more.
    out = ehc.review("2026-09-14", "reschedule", "EHC-A", "--start", "2027-03-03T10:00").output
    assert "warning" not in out
    assert flagged("meeting_late") == []
    assert ehc.duties("EHC-A", "current")["meeting_held"][0] == "pending"
    # Set late again, then cancelled: the flag goes with the meeting.
    ehc.review("2026-09-14", "reschedule", "EHC-A", "--start", "2027-04-14T10:00")
    ehc.review("2026-09-14", "cancel", "EHC-A", "--reason", "family unavailable")
    assert flagged("meeting_late") == []
    assert ehc.duties("EHC-A", "current")["meeting_held"][0] == "pending"
    # A meeting held with a week's notice: the warning becomes a recorded lateness.
    ehc.review("2026-09-14", "schedule", "EHC-B", "--start", "2026-09-21T10:00")
    assert flagged("meeting_late") == ["EHC-B"]
    out = ehc.review("2026-09-21", "held", "EHC-B").output
    assert "with less notice" in out
    assert flagged("meeting_late") == [] and flagged("deadline_late") == ["EHC-B"]


def test_next_years_review_invites_the_same_family_and_professionals(
        tmp_path: Path, store_url: str) -> None:
    """A decision opens the next review with the family and the professionals named for the
    plan, so next year's meeting invitations reach them without anyone entering them again."""
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")
    # Added by hand this year: an educational psychologist, and a grandparent by post.
    ehc.review("2026-09-07", "invite", "EHC-A", "--role", "other", "--name", "EP",
               "--email", "ep@la.example.gov.uk")
    ehc.review("2026-09-07", "invite", "EHC-A", "--role", "parent", "--name", "Gran",
               "--address", "1 Old Road, Demoton, DE1 1AA")
    ehc.review("2026-09-07", "schedule", "EHC-A", "--start", "2026-11-10T10:00")
    ehc.engine("2026-09-07")
    ehc.review("2026-11-10", "held", "EHC-A")
    ehc.review("2026-11-20", "decide", "EHC-A", "maintain", "--reason", "Outcomes on track",
               "--on", "2026-11-20")

    data = ehc.show("EHC-A")
    assert data["review"]["status"] == "due"
    carried = {(i["role"], i["email"] or i["name"]): i for i in data["invitees"]}
    assert set(carried) == {("parent", "a.parent@example.net"),
                            ("la_sen_officer", "sen.a@la.example.gov.uk"),
                            ("other", "ep@la.example.gov.uk"), ("parent", "Gran")}
    assert all(i["response"] in (None, "") for i in carried.values())

    # Next year's meeting: everyone with an address gets its calendar invitation.
    ehc.review("2027-09-06", "schedule", "EHC-A", "--start", "2027-10-12T10:00")
    before = {p.name for p in ehc.outbox.glob("*.eml")}
    ehc.engine("2027-09-06")
    invited: set[str] = set()
    for path in ehc.outbox.glob("*.eml"):
        if path.name in before:
            continue
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for part in message.walk():
            if (part.get_content_type() == "text/calendar"
                    and part.get_param("method") == "REQUEST"
                    and "DTSTART;TZID=Europe/London:20271012" in part.get_content()):
                invited.update(a.addr_spec for a in message["To"].addresses)
    assert {"a.parent@example.net", "sen.a@la.example.gov.uk",
            "ep@la.example.gov.uk"} <= invited


def test_the_review_list_shows_last_years_breaches_as_history_not_as_open_duties(
        tmp_path: Path, store_url: str) -> None:
    """After the decision, the list row is the new review: last year's missed report is not
    shown as its duty, while the amendments the decision called for still are."""
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")
    ehc.review("2026-09-07", "schedule", "EHC-A", "--start", "2026-11-10T10:00")
    ehc.engine("2026-09-07")
    ehc.review("2026-11-10", "held", "EHC-A")
    ehc.engine("2026-11-30")  # the report was due on 24 November and never sent
    assert ehc.duties("EHC-A", "current")["report_sent"][0] == "missed"
    ehc.review("2026-12-01", "decide", "EHC-A", "amend", "--reason", "Needs changed",
               "--on", "2026-12-01")

    def listed(*args: str) -> dict[str, list[str]]:
        rows = json.loads(ehc.review("2026-12-02", "list", *args, "--json").output)
        return {r["case_id"]: [d["name"] for d in r["duties"]] for r in rows}

    assert "EHC-A" not in listed("--overdue")
    assert listed()["EHC-A"] == []
    assert listed("--duty", "amendments_proposed")["EHC-A"] == ["amendments_proposed"]
    table = ehc.review("2026-12-02", "list", "--duty", "amendments_proposed").output
    assert "amendments_proposed pending (decided review)" in " ".join(table.split())
    # The dashboard's "needs attention" reads the same way.
    from ehcbridge.app import App
    from ehcbridge.settings import load_settings
    from ehcbridge.web.data import attention

    app = App(load_settings(ehc.config))
    try:
        assert [(r.case_id, r.duty.name) for r in attention(app)
                if r.case_id == "EHC-A"] == []
    finally:
        app.store.close()


def test_an_older_list_imported_after_a_decision_does_not_undo_it(
        tmp_path: Path, store_url: str) -> None:
    """The Hub's export lags: last month's list, without the new last review date, must not
    take the next review back to the deadline the decision has met (it made the review
    overdue, and the planner would book a meeting for it at once)."""
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(CSV, encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")
    ehc.review("2026-09-07", "schedule", "EHC-A", "--start", "2027-02-10T10:00")
    ehc.review("2027-02-10", "held", "EHC-A")
    ehc.review("2027-02-20", "decide", "EHC-A", "maintain", "--reason", "On track",
               "--on", "2027-02-20")
    due = ehc.show("EHC-A")["review"]["due_by"]
    assert due == "2028-02-19"

    out = ehc("import", "reviews", str(reviews_csv), "--now", "2027-04-22T09:00").output
    assert "0 updated, 8 unchanged" in out
    # The import's overdue count is of the reviews really past due, EHC-A not among them.
    rows = json.loads(ehc.review("2027-04-22", "list", "--json").output)
    late = sum(str(r["due_by"]) < "2027-04-22" for r in rows)
    assert late > 0 and f"{late} imported review(s) are already overdue" in out
    data = ehc.show("EHC-A")
    assert data["review"]["due_by"] == due
    assert data["plan"]["last_review_decision"] == "2027-02-20"

    # The Hub row still shows the meeting that was held: it is not set again for next year.
    header, *rows = CSV.splitlines()
    with_meeting = tmp_path / "with-meeting.csv"
    with_meeting.write_text(f"{header},meeting_start\n{rows[0]},2027-02-10T10:00\n",
                            encoding="utf-8")
    out = ehc("import", "reviews", str(with_meeting), "--now", "2027-04-22T09:00").output
    assert "meetings: none" in out
    data = ehc.show("EHC-A")
    assert data["review"]["status"] == "due" and data["review"]["due_by"] == due

    # A later decision the list knows of (made in the Hub) still wins.
    newer = tmp_path / "newer.csv"
    newer.write_text(CSV.replace("2026-04-01,,senco.a@", "2026-04-01,2027-03-01,senco.a@"),
                     encoding="utf-8")
    out = ehc("import", "reviews", str(newer), "--now", "2027-04-22T09:00").output
    assert "1 updated" in out
    assert ehc.show("EHC-A")["plan"]["last_review_decision"] == "2027-03-01"


def test_an_imported_year_8_pupil_reviewed_in_year_9_prepares_for_adulthood(
        tmp_path: Path, store_url: str) -> None:
    """Reg 20(6) is about the year of the review: a Year 8 pupil whose review falls due after
    September is reviewed in Year 9 (the import read only today's NC year)."""
    ehc = Council(tmp_path, store_url)
    reviews_csv = tmp_path / "reviews.csv"
    reviews_csv.write_text(
        "case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued\n"
        "EHC-P,Q999000000011,Pat,One,2013-03-02,8,100001,2026-10-01\n"
        "EHC-Q,E999000000012,Quin,Two,2013-03-02,8,100001,2026-04-01\n", encoding="utf-8")
    ehc("import", "reviews", str(reviews_csv), "--now", "2026-09-07T09:00")
    assert ehc.show("EHC-P")["review"]["due_by"] == "2027-09-30"
    assert ehc.show("EHC-P")["review"]["preparing_for_adulthood"] is True
    assert ehc.show("EHC-Q")["review"]["preparing_for_adulthood"] is False  # due in Year 8
