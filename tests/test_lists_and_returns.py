"""Issue 14's acceptance: a synthetic council of three schools over a school year, through the
real CLI and engine with aiosmtpd as the mail server. Each head receives their own termly list two
weeks before each term, exactly once, with transfer and PfA reviews marked; the ICB and social
care receive the whole list; a school missing from the directory is reported, not skipped. A
Year 9 review invites the PfA team and the CSW group, a Year 6 review the receiving secondary
school, each with its rule shown by `review show`."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge.cli import cli
from ehcbridge.models import LONDON

SCHOOLS = """urn,name,headteacher_email,senco_email
100001,Oak Primary School,head@oak.example.org,senco@oak.example.org
100002,Elm Primary School,head@elm.example.org,
100003,Ash Secondary School,head@ash.example.org,senco@ash.example.org
"""
HEADS = {"head@oak.example.org": "100001", "head@elm.example.org": "100002",
         "head@ash.example.org": "100003"}
WHOLE = ("dco@icb.example.net", "reviews@socialcare.example.gov.uk")
# Due dates fall in each term (as of the first import day, 1 December 2026).
REVIEWS = """case_id,forename,surname,dob,nc_year,school_urn,plan_issued,receiving_school
EHC-1,Alex,Oakley,2015-10-01,6,100001,2026-05-01,100003
EHC-2,Bea,Oakley,2017-03-01,4,100001,2026-06-20,
EHC-3,Cal,Elmore,2018-01-01,3,100002,2026-02-01,
EHC-4,Dee,Ashby,2012-01-01,9,100003,2026-01-19,
EHC-5,Eve,Ashby,2011-02-01,10,100003,2026-09-10,
EHC-6,Fin,Far,2016-01-01,5,100009,2026-03-01,
"""
CONFIG = """
[store]
url = "sqlite:///{db}"

[engine]
schools_directory = "{schools}"
lists_health_email = "dco@icb.example.net"
lists_social_care_email = "reviews@socialcare.example.gov.uk"

[[engine.terms]]
name = "Spring 2027"
start = 2027-01-05
end = 2027-03-26

[[engine.terms]]
name = "Summer 2027"
start = 2027-04-12
end = 2027-07-21

[[engine.terms]]
name = "Autumn 2027"
start = 2027-09-02
end = 2027-12-17

[[engine.invitation_rules]]
name = "pfa-team"
team = "Preparing for Adulthood team"
email = "pfa@council.example.gov.uk"
from_nc_year = 9

[[engine.invitation_rules]]
name = "csw-group"
team = "CSW group"
email = "csw@council.example.gov.uk"
from_nc_year = 9

[[engine.invitation_rules]]
name = "receiving-school"
invite = "receiving_school"
phase_transfer_only = true

[plugins.outlook]
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
from_address = "sen@council.example.gov.uk"
retry_wait = 0
"""


@dataclass
class Inbox:
    """What the loopback SMTP server received."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def lists(self) -> list[tuple[str, EmailMessage]]:
        """The termly list emails, as (recipient, message)."""
        return [(rcpts[0].lower(), m) for rcpts, m in self.messages
                if "reviews due next term" in str(m["Subject"])]


@pytest.fixture
def inbox(loopback_smtp: Any) -> tuple[Inbox, int]:
    """aiosmtpd on a free loopback port."""
    handler = Inbox()
    return handler, loopback_smtp(handler)


def _csv_rows(message: EmailMessage) -> list[dict[str, str]]:
    [part] = [p for p in message.iter_attachments() if p.get_filename().endswith(".csv")]
    data = part.get_content()
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return list(csv.DictReader(io.StringIO(text)))


def test_a_school_year_of_termly_lists_and_invitation_rules(
        inbox: tuple[Inbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler, port = inbox
    (tmp_path / "schools.csv").write_text(SCHOOLS, encoding="utf-8")
    (tmp_path / "reviews.csv").write_text(REVIEWS, encoding="utf-8")
    config = tmp_path / "ehcbridge.toml"
    config.write_text(CONFIG.format(db=(tmp_path / "db.sqlite3").as_posix(), port=port,
                                    schools=(tmp_path / "schools.csv").as_posix()),
                      encoding="utf-8")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook")
    runner = CliRunner()

    def run(*args: str) -> tuple[str, str]:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.stdout, result.stderr

    # The import reads NC years as of its day: 1 December 2026 (the real CLI, a fixed clock).
    from ehcbridge.app import App
    from ehcbridge.intake import import_reviews
    from ehcbridge.settings import load_settings

    first_day = datetime(2026, 12, 1, 9, tzinfo=LONDON)
    app = App(load_settings(config), now=first_day)
    assert import_reviews(app, tmp_path / "reviews.csv", now=first_day).added == 6
    app.close()

    # A preview names the school the directory does not know, and still lists it.
    out, err = run("lists", "termly", "--term", "Spring 2027", "--now", "2026-12-01T09:00")
    assert "warning: school 100009 is not in the schools directory" in err
    assert "100009" in out

    # The engine runs on these days; lists go out once, 14 days before each term.
    for day in ("2026-12-01", "2026-12-21", "2026-12-22", "2026-12-23", "2027-01-04",
                "2027-03-29", "2027-04-02", "2027-08-19", "2027-08-31"):
        run("run", "--once", "--now", f"{day}T08:00")
    sent = handler.lists()
    per_recipient = Counter(to for to, _m in sent)
    assert per_recipient == {**{h: 3 for h in HEADS}, **{w: 3 for w in WHOLE}}, per_recipient

    by_term: dict[str, dict[str, list[dict[str, str]]]] = {}
    for to, message in sent:
        term = next(t for t in ("spring-2027", "summer-2027", "autumn-2027")
                    if any(t in (p.get_filename() or "") for p in message.iter_attachments()))
        by_term.setdefault(term, {})[to] = _csv_rows(message)
        assert {p.get_filename().rsplit(".", 1)[1] for p in message.iter_attachments()} == {
            "csv", "pdf"}
    # Each head gets only their own school's reviews.
    for term, received in by_term.items():
        for head, urn in HEADS.items():
            assert {r["school_urn"] for r in received[head]} <= {urn}, (term, head)
        whole = received["dco@icb.example.net"]
        assert whole == received["reviews@socialcare.example.gov.uk"]
        assert {r["case_id"] for r in whole} >= {r["case_id"] for h in HEADS
                                                  for r in received[h]}
    spring = by_term["spring-2027"]
    assert [r["case_id"] for r in spring["head@oak.example.org"]] == ["EHC-1"]
    [ehc1] = spring["head@oak.example.org"]
    assert ehc1["phase_transfer"] == "yes" and ehc1["initials"] == "AO"
    assert [r["case_id"] for r in spring["head@ash.example.org"]] == ["EHC-4"]
    assert spring["head@ash.example.org"][0]["preparing_for_adulthood"] == "yes"
    # The school missing from the directory is on the whole list, not dropped.
    assert "EHC-6" in {r["case_id"] for r in spring["dco@icb.example.net"]}
    assert "Oakley" not in str(sent[0][1]) and "Alex" not in str(sent[0][1])

    # Who else is invited: rules add the PfA team, the CSW group and the receiving school.
    run("review", "schedule", "EHC-4", "--start", "2027-01-12T10:00")
    run("review", "schedule", "EHC-1", "--start", "2027-01-13T10:00")
    run("run", "--once", "--now", "2027-01-05T08:00")
    year9 = json.loads(run("review", "show", "EHC-4", "--json")[0])
    sources = {(i["email"], i["source"]) for i in year9["invitees"]}
    assert ("pfa@council.example.gov.uk", "rule:pfa-team") in sources
    assert ("csw@council.example.gov.uk", "rule:csw-group") in sources
    year6 = json.loads(run("review", "show", "EHC-1", "--json")[0])
    assert ("senco@ash.example.org", "rule:receiving-school") in {
        (i["email"], i["source"]) for i in year6["invitees"]}
    assert "la_attendance_suggested" in year6["flags"]
    shown = run("review", "show", "EHC-4")[0]
    assert "rule:pfa-team" in shown and "rule:csw-group" in shown


KPI_REVIEWS = """case_id,forename,surname,dob,nc_year,school_urn,plan_issued
K-1,Kit,One,2017-01-01,4,100001,2026-04-01
K-2,Kay,Two,2017-02-01,4,100001,2026-04-20
K-3,Kim,Three,2017-03-01,4,100002,2026-02-01
"""


def test_report_kpis_counts_known_on_time_and_late_reviews(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """K-1 does everything on time, K-2 everything late, K-3 has no meeting and is overdue."""
    (tmp_path / "reviews.csv").write_text(KPI_REVIEWS, encoding="utf-8")
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{(tmp_path / "db.sqlite3").as_posix()}"\n',
                      encoding="utf-8")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "none")  # the figures need no plugin
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    run("import", "reviews", str(tmp_path / "reviews.csv"), "--now", "2027-01-04T09:00")
    reason = ("--reason", "Outcomes reviewed")
    # K-1: invited five weeks ahead, advice out in time, report in a week, decision in 19 days.
    run("review", "--now", "2027-01-04T09:00", "schedule", "K-1", "--start", "2027-02-10T10:00")
    run("review", "--now", "2027-01-25T09:00", "advice", "K-1", "--on", "2027-01-25")
    run("review", "--now", "2027-02-10T12:00", "held", "K-1")
    run("review", "--now", "2027-02-17T09:00", "report", "K-1", "--on", "2027-02-17")
    run("review", "--now", "2027-03-01T09:00", "decide", "K-1", "maintain", *reason,
        "--on", "2027-03-01")
    # K-2: invited ten days ahead, then late advice, report and decision (still within 12 months).
    run("review", "--now", "2027-01-10T09:00", "schedule", "K-2", "--start", "2027-01-20T10:00")
    run("review", "--now", "2027-01-15T09:00", "advice", "K-2", "--on", "2027-01-15")
    run("review", "--now", "2027-01-20T12:00", "held", "K-2")
    run("review", "--now", "2027-02-10T09:00", "report", "K-2", "--on", "2027-02-10")
    run("review", "--now", "2027-02-24T09:00", "decide", "K-2", "maintain", *reason,
        "--on", "2027-02-24")
    run("run", "--once", "--now", "2027-03-01T09:00")

    out = run("report", "kpis", "--from", "2027-01-01", "--to", "2027-06-30", "--json",
              "--now", "2027-03-01T09:00")
    rows = json.loads(out)["figures"]
    overall = {r["measure"]: (r["count"], r["total"], r["percent"]) for r in rows
               if r["school"] == "all schools"}
    assert overall == {
        "reviews_due": (3, 3, 100.0),
        "concluded_in_12_months": (2, 3, 66.7),  # K-3 is past due with no decision
        "decision_in_4_weeks": (1, 3, 33.3),  # K-3's decision, due with the review, is missed
        "invitations_2_weeks": (1, 2, 50.0),
        "advice_circulated": (1, 2, 50.0),
        "report_in_2_weeks": (1, 2, 50.0),
        "amendments_in_8_weeks": (0, 0, None),  # no amend decision
        "transfer_by_deadline": (0, 0, None),
        "overdue_now": (1, 3, 33.3),
    }
    oak = {r["measure"]: (r["count"], r["total"]) for r in rows if r["school"] == "100001"}
    assert oak["decision_in_4_weeks"] == (1, 2) and oak["overdue_now"] == (0, 2)
    elm = {r["measure"]: (r["count"], r["total"]) for r in rows if r["school"] == "100002"}
    assert elm["overdue_now"] == (1, 1) and elm["reviews_due"] == (1, 1)

    table = run("report", "kpis", "--from", "2027-01-01", "--to", "2027-06-30",
                "--now", "2027-03-01T09:00", "--chart", str(tmp_path / "kpis.svg"))
    assert "Decisions within 4 weeks of the meeting" in table and "50.0" in table
    svg = (tmp_path / "kpis.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "Decisions within 4 weeks" in svg and "2027-02" in svg
    csv_out = run("report", "kpis", "--from", "2027-01-01", "--to", "2027-06-30", "--csv",
                  "--now", "2027-03-01T09:00")
    assert csv_out.splitlines()[0] == "school,measure,label,rule,count,total,percent"

    sen2 = list(csv.DictReader(io.StringIO(run("report", "sen2", "--year", "2028", "--csv"))))
    k1 = next(r for r in sen2 if r["case_id"] == "K-1")
    assert (k1["review_meeting_date"], k1["review_decision"], k1["review_decision_date"]) == (
        "2027-02-10", "maintain", "2027-03-01")
