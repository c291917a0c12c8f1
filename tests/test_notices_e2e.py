"""Issue 13's acceptance: a review driven through its cycle through the real CLI and engine, with
aiosmtpd as the mail server and a parent who has only a postal address. Everyone hears what they
must, exactly once: views requests, the reminder with the advice pack, the report and the
decision; the parent's letters are in each day's print pack, read back with pypdf; each message
is recorded against its lifecycle duty."""

from __future__ import annotations

import email
import email.policy
import io
import json
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from ehcbridge import lifecycle
from ehcbridge.models import Duty
from ehcbridge.store import Store
from pypdf import PdfReader

CASE = "EHC-4417"
FULL_NAME = "Sam Example"
PARENT_ADDRESS = "Ms R Example, 12 Mill Lane, Oakfield, OK1 2AB"
PROFESSIONALS = {
    "senco@oakfield.sch.example.org": "setting",
    "sen.officer@council.example.gov.uk": "la_sen_officer",
    "salt@nhs.example.net": "health",
    "dct@council.example.gov.uk": "social_care",
    "ep@council.example.gov.uk": "other",
}
SENDIASS = "Oakshire SENDIASS, 01234 567890, sendiass@oakshire.example.org"
MEDIATION = "Oakshire Mediation, 01234 111222"
DISAGREEMENT = "Oakshire Disagreement Resolution Service, 01234 333444"


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

    def notices(self) -> list[tuple[str, EmailMessage]]:
        """Notice emails (not calendar invitations or deadline alerts), as (recipient,
        message)."""
        return [(rcpts[0].lower(), m) for rcpts, m in self.messages
                if ".notice@" in str(m["Message-ID"])]


@pytest.fixture
def inbox(loopback_smtp: Any) -> tuple[Inbox, int]:
    """aiosmtpd on a free loopback port."""
    handler = Inbox()
    return handler, loopback_smtp(handler)


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def _text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes()))
                     .pages)


def _body(message: EmailMessage) -> str:
    parts = [p.get_content() for p in message.walk()
             if p.get_content_type() in ("text/plain", "text/html")]
    return str(message["Subject"]) + "\n" + "\n".join(parts)


def test_a_review_cycle_reaches_everyone_once_by_email_and_letter(
        inbox: tuple[Inbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        add_case: Any, cli_runner: Any) -> None:
    handler, port = inbox
    db = tmp_path / "ehcbridge.sqlite3"
    letters = tmp_path / "letters"
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{db.as_posix()}"

[notices]
council_name = "Oakshire County Council SEN Team"
council_address = ["County Hall", "Oakfield", "OK1 1AA"]
council_email = "sen@oakshire.example.gov.uk"
hub_url = "https://ehchub.oakshire.example.gov.uk"
sendiass = "{SENDIASS}"
mediation = "{MEDIATION}"
disagreement_resolution = "{DISAGREEMENT}"

[plugins.outlook]
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
from_address = "reviews@oakshire.example.gov.uk"
retry_wait = 0

[plugins.letters]
folder = "{letters.as_posix()}"
""", encoding="utf-8")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook,letters")
    run = cli_runner(config)
    store = Store(f"sqlite:///{db}")
    add_case(store, CASE, upn="A123456789012", coordinator="sen.officer@council.example.gov.uk")
    run("review", "invite", CASE, "--role", "parent", "--name", "Ms R Example",
        "--address", "12 Mill Lane, Oakfield, OK1 2AB")
    for address, role in PROFESSIONALS.items():
        run("review", "invite", CASE, "--role", role, "--email", address)
    run("review", "schedule", CASE, "--start", "2027-03-10T10:00", "--location",
        "Oakfield School")
    review_id = store.case(CASE).review.id
    assert review_id is not None
    # Issue 12 computes a review's duties; until it does, the four this issue meets are put in.
    if not store.duties(CASE):
        store.save_duties(review_id, [
            Duty(name=name, rule="SEND Regs 2014 reg 20", kind="statutory", due=due, owed_by="la",
                 owed_to=("parent", "setting"))
            for name, due in ((lifecycle.VIEWS_REQUESTED, date(2027, 1, 27)),
                              (lifecycle.ADVICE_CIRCULATED, date(2027, 2, 24)),
                              (lifecycle.REPORT_SENT, date(2027, 3, 24)),
                              (lifecycle.DECISION_NOTIFIED, date(2027, 4, 7)))])

    # Six weeks ahead: views requests to every invitee.
    run("run", "--once", "--now", "2027-01-27T09:00")
    requests = handler.notices()
    assert sorted(to for to, _m in requests) == sorted(PROFESSIONALS)
    for _to, message in requests:
        body = _body(message)
        assert "What progress has been made towards each outcome" in body
        assert "short-term targets" in body and "Advice requested" in body
        assert "Wednesday 24 February 2027" in body  # views due: two weeks before
        assert "https://ehchub.oakshire.example.gov.uk" in body
        assert FULL_NAME not in body and "Sam" not in body  # initials only: SE
        assert message.get_body(("html",)) is not None
    senco = dict(requests)["senco@oakfield.sch.example.org"]
    assert "SENCO" in _body(senco)
    pack = letters / "print-pack-2027-01-27.pdf"
    text = _text(pack)
    assert "Print pack for 27 January 2027" in text and "2 letter(s)" in text
    # Without email there is no calendar invitation: the meeting itself comes by letter too.
    assert "You are invited to the annual review meeting for Sam's" in " ".join(text.split())
    assert "Ms R Example" in text and "12 Mill Lane" in text and "OK1 2AB" in text
    assert "Dear Ms R Example" in text and "annual review of Sam's EHC plan" in text
    assert "personal budget" in text and "What is not working" in text
    assert "What progress has been made towards each outcome" not in text

    # Advice arrives through the CLI, with its file kept with the review.
    advice = tmp_path / "salt-advice.pdf"
    advice.write_bytes(_pdf("Speech and language therapy advice for the annual review."))
    out = run("review", "views", CASE, "--from", "salt@nhs.example.net", "--on", "2027-02-10",
              "--file", str(advice))
    assert "views from health recorded for 10 Feb 2027 with 1 file(s)" in out

    # Two weeks ahead: one reminder to everyone, with the advice attached.
    run("run", "--once", "--now", "2027-02-24T09:00")
    reminders = handler.notices()[len(requests):]
    assert sorted(to for to, _m in reminders) == sorted(PROFESSIONALS)
    for _to, message in reminders:
        assert "Reminder" in str(message["Subject"])
        files = [p.get_filename() for p in message.iter_attachments()]
        assert files == ["salt-advice.pdf"]
        assert FULL_NAME not in _body(message)
    text = _text(letters / "print-pack-2027-02-24.pdf")
    assert "advice and information received so far is enclosed" in text
    assert "Speech and language therapy advice" in text  # the enclosure is printed with it

    # The meeting ends; the report goes to everyone invited.
    run("run", "--once", "--now", "2027-03-11T09:00")
    report = tmp_path / "report.pdf"
    report.write_bytes(_pdf("Annual review report: recommendations of the meeting."))
    out = run("review", "report", CASE, "--on", "2027-03-15", "--file", str(report))
    assert "6 notice(s) queued" in out
    run("run", "--once", "--now", "2027-03-15T09:00")
    reports = handler.notices()[len(requests) + len(reminders):]
    assert sorted(to for to, _m in reports) == sorted(PROFESSIONALS)
    assert all([p.get_filename() for p in m.iter_attachments()] == ["report.pdf"]
               for _to, m in reports)
    text = _text(letters / "print-pack-2027-03-15.pdf")
    assert "The report of the annual review meeting" in text
    assert "recommendations of the meeting" in text

    # The LA decides to cease: the parent and the setting are told, with appeal rights.
    run("review", "decide", CASE, "cease", "--reason", "The outcomes of the plan have been met",
        "--on", "2027-03-20")
    run("run", "--once", "--now", "2027-03-20T09:00")
    decisions = handler.notices()[len(requests) + len(reminders) + len(reports):]
    assert [to for to, _m in decisions] == ["senco@oakfield.sch.example.org"]
    setting_copy = _body(decisions[0][1])
    assert "cease to maintain" in setting_copy and FULL_NAME not in setting_copy
    text = " ".join(_text(letters / "print-pack-2027-03-20.pdf").split())
    assert "The reason: The outcomes of the plan have been met" in text
    assert "First-tier Tribunal (Special Educational Needs and Disability)" in text
    assert "within two months" in text and "mediation certificate" in text
    assert "consider mediation" in text and MEDIATION in text
    assert SENDIASS in text and DISAGREEMENT in text

    # Nothing goes twice, however often the engine runs.
    total = len(handler.messages)
    for day in ("2027-03-21T09:00", "2027-03-28T09:00"):
        run("run", "--once", "--now", day)
    assert len(handler.messages) == total
    assert sorted(p.name for p in letters.glob("print-pack-*.pdf")) == [
        "print-pack-2027-01-27.pdf", "print-pack-2027-02-24.pdf", "print-pack-2027-03-15.pdf",
        "print-pack-2027-03-20.pdf"]

    # Each message is recorded against its duty.
    duties = {d.name: d for _c, rid, d in store.duty_rows(case_ids=[CASE]) if rid == review_id}
    for name, on in ((lifecycle.VIEWS_REQUESTED, date(2027, 1, 27)),
                     (lifecycle.ADVICE_CIRCULATED, date(2027, 2, 24)),
                     (lifecycle.REPORT_SENT, date(2027, 3, 15)),
                     (lifecycle.DECISION_NOTIFIED, date(2027, 3, 20))):
        assert duties[name].status == "met", name
        assert duties[name].met_on == on, name
        assert "notice(s) by" in (duties[name].evidence or ""), name
    ledger = store.notices(case_id=CASE)
    assert {(r["kind"], r["channel"]) for r in ledger if r["role"] == "parent"} == {
        ("meeting", "letter"), ("views_request", "letter"), ("advice_reminder", "letter"),
        ("report", "letter"), ("decision", "letter")}
    assert all(r["status"] == "sent" for r in ledger)
    assert len(ledger) == 1 + 6 + 6 + 6 + 2
    shown = json.loads(run("review", "show", CASE, "--json"))
    assert shown["views"] == [{"contributor": "salt@nhs.example.net", "role": "health",
                               "received": "2027-02-10", "files": ["salt-advice.pdf"]}]
    assert len(shown["notices"]) == 21 and "Notices" in run("review", "show", CASE)
    store.close()


def test_a_family_reached_by_letter_is_told_by_letter_when_taken_off_the_review(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, add_case: Any,
        cli_runner: Any) -> None:
    """Email invitees removed get the calendar's cancellation; a family posted the meeting
    gets a letter saying it is no longer invited (the meeting goes ahead). Someone removed
    before any meeting letter went is sent nothing: there is nothing to take back."""
    letters = tmp_path / "letters"
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{(tmp_path / 'e.sqlite3').as_posix()}"

[notices]
council_name = "Oakshire County Council SEN Team"
council_address = ["County Hall", "Oakfield", "OK1 1AA"]

[plugins.outlook]
transport = "outbox"
outbox_dir = "{(tmp_path / 'outbox').as_posix()}"

[plugins.letters]
folder = "{letters.as_posix()}"
""", encoding="utf-8")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook,letters")
    run = cli_runner(config)
    add_case(Store(f"sqlite:///{tmp_path / 'e.sqlite3'}"), CASE, upn="A123456789012",
             coordinator="sen.officer@council.example.gov.uk")
    when = ("review", "--now", "2027-01-04T09:00")
    run(*when, "invite", CASE, "--role", "parent", "--name", "Ms R Example",
        "--address", "12 Mill Lane, Oakfield, OK1 2AB")
    run(*when, "invite", CASE, "--role", "setting", "--email", "senco@oakfield.sch.example.org")
    run(*when, "schedule", CASE, "--start", "2027-03-10T10:00", "--location", "Oakfield School")
    run("run", "--once", "--now", "2027-01-04T18:00")
    text = " ".join(_text(letters / "print-pack-2027-01-04.pdf").split())
    assert "You are invited to the annual review meeting for Sam's" in text

    out = run("review", "--now", "2027-01-05T09:00", "uninvite", CASE, "--name", "Ms R Example")
    assert "1 letter(s) queued telling those posted the meeting that they are no longer " \
           "invited" in " ".join(out.split())
    run("run", "--once", "--now", "2027-01-05T18:00")
    text = " ".join(_text(letters / "print-pack-2027-01-05.pdf").split())
    assert "No longer invited: the annual review meeting for Sam's EHC plan" in text
    assert "You are no longer invited to this meeting" in text
    assert "The meeting itself goes ahead" in text and "12 Mill Lane" in text
    assert "You are invited to" not in text

    # Invited by letter again and removed before the engine posted the meeting: nothing goes.
    run("review", "--now", "2027-01-06T09:00", "invite", CASE, "--role", "parent", "--name",
        "Mr T Example", "--address", "3 Brook Road, Oakfield, OK1 3CD")
    out = run("review", "--now", "2027-01-06T10:00", "uninvite", CASE, "--name", "Mr T Example")
    assert "letter(s) queued" not in out
    run("run", "--once", "--now", "2027-01-06T18:00")
    assert not (letters / "print-pack-2027-01-06.pdf").exists()
