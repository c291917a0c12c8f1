"""A routed team is asked for advice once and reminded once, and still gets the advice circulated
(reg 20(4)): one review run through the real CLI and engine with outlook (outbox) delivering the
core's notices and health_referrals routing teams and asking them itself."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from datetime import date
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from ehcbridge import lifecycle
from ehcbridge.models import DutyStatus
from ehcbridge.store import Store

CASE = "EHC-5120"
PARENT = "parent@family.example.org"
SENCO = "senco@oakfield.sch.example.org"
OFFICER = "sen.officer@council.example.gov.uk"
SALT = "salt.team@nhs.example.net"
CSC = "csc.ehcp@council.example.gov.uk"  # social care, and early help (two invitees)
DCO = "dco@nhs.example.net"  # health with no rule: the DCO service
TEAMS = (SALT, CSC, DCO)
UNROUTED = (PARENT, SENCO, OFFICER)

# What each message is, by who wrote it and its subject.
PLUGIN_REQUEST, PLUGIN_REMINDER = "plugin request", "plugin reminder"
CORE_REQUEST, CORE_REMINDER, CORE_CIRCULATION = "core request", "core reminder", "circulation"


def _kind(message: EmailMessage) -> str:
    msgid, subject = str(message["Message-ID"]), str(message["Subject"]).strip()
    if ".advice@" in msgid:
        return PLUGIN_REMINDER if subject.startswith("Reminder:") else PLUGIN_REQUEST
    if ".notice@" not in msgid:
        return "calendar"  # invitations, and deadline alerts to the coordinator
    if subject.startswith("Advice requested") or subject.startswith("Your views"):
        return CORE_REQUEST
    if subject.startswith("Reminder:"):
        return CORE_REMINDER
    if subject.startswith("Advice received so far"):
        return CORE_CIRCULATION
    return "other notice"


def _read(outbox: Path) -> dict[Path, EmailMessage]:
    found = {}
    for path in outbox.glob("*.eml"):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found[path] = parsed
    return found


def _text(message: EmailMessage) -> str:
    return "\n".join(str(p.get_content()) for p in message.walk()
                     if p.get_content_type() == "text/plain")


class _NewMessages:
    """Each call: the messages written to the outbox since the last, by kind per mailbox
    (calendar messages left out)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox, self.seen = outbox, set[Path]()

    def __call__(self) -> dict[str, Counter[str]]:
        by_mailbox: dict[str, Counter[str]] = {}
        for path, message in _read(self.outbox).items():
            if path in self.seen:
                continue
            self.seen.add(path)
            kind = _kind(message)
            if kind != "calendar":
                to = parseaddr(str(message["To"]))[1].lower()
                by_mailbox.setdefault(to, Counter())[kind] += 1
        return by_mailbox


def _settings(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The council's settings: outlook and health_referrals writing to one outbox folder."""
    db = tmp_path / "ehcbridge.sqlite3"
    outbox = tmp_path / "outbox"
    config = tmp_path / "ehcbridge.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{db.as_posix()}"

[notices]
council_name = "Oakshire County Council SEN Team"
council_email = "sen@oakshire.example.gov.uk"

[plugins.outlook]
transport = "outbox"
outbox_dir = "{outbox.as_posix()}"
from_address = "reviews@oakshire.example.gov.uk"

[plugins.health_referrals]
transport = "outbox"
outbox_dir = "{outbox.as_posix()}"
from_address = "ehcp-advice@oakshire.example.gov.uk"
dco_mailbox = "{DCO}"

[[plugins.health_referrals.rules]]
name = "salt"
role = "health"
service = "SALT"
team = "Oakshire SALT"
mailbox = "{SALT}"

[[plugins.health_referrals.rules]]
name = "social-care"
role = "social_care"
team = "Children's social care"
mailbox = "{CSC}"

[[plugins.health_referrals.rules]]
name = "early-help"
role = "other"
service = "early help"
team = "Children's social care"
mailbox = "{CSC}"
""", encoding="utf-8")
    return config, outbox, db


def test_a_routed_team_is_asked_and_reminded_once_and_still_gets_the_advice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, add_case: Any, cli_runner: Any
) -> None:
    config, outbox, db = _settings(tmp_path)
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook,health_referrals")
    run = cli_runner(config)
    store = Store(f"sqlite:///{db}")
    add_case(store, CASE, upn="A123456789013", forename="Alex", coordinator=OFFICER)
    run("review", "invite", CASE, "--role", "parent", "--email", PARENT)
    run("review", "invite", CASE, "--role", "setting", "--email", SENCO)
    run("review", "invite", CASE, "--role", "la_sen_officer", "--email", OFFICER)
    run("review", "invite", CASE, "--role", "health", "--team", "SALT",
        "--email", "a.therapist@nhs.example.net")
    run("review", "invite", CASE, "--role", "health", "--team", "physiotherapy")
    run("review", "invite", CASE, "--role", "social_care", "--team", "Children's social care")
    run("review", "invite", CASE, "--role", "other", "--team", "early help")
    run("review", "schedule", CASE, "--start", "2027-03-10T10:00", "--location",
        "Oakfield School")
    invited = {i.email for i in store.case(CASE).invitees}
    assert invited == {*UNROUTED, *TEAMS}  # the therapist's own address was replaced
    new_messages = _NewMessages(outbox)

    run("run", "--once", "--now", "2027-01-01T09:00")  # invitations (calendar) go out
    new_messages()

    # Six weeks ahead: each team is asked once (by health_referrals); everyone else by a notice.
    run("run", "--once", "--now", "2027-01-27T09:00")
    got = new_messages()
    for team in TEAMS:
        assert got[team] == Counter({PLUGIN_REQUEST: 1}), team
    for who in UNROUTED:
        assert got[who] == Counter({CORE_REQUEST: 1}), who

    # The meeting moves to the afternoon: calendars are updated, nobody is asked again.
    run("review", "reschedule", CASE, "--start", "2027-03-10T14:00")
    run("run", "--once", "--now", "2027-02-01T09:00")
    assert not new_messages()

    # Advice from the setting arrives, with its file kept with the review.
    advice = tmp_path / "setting-advice.txt"
    advice.write_text("Advice from the setting for the annual review.\n", encoding="utf-8")
    run("review", "views", CASE, "--from", SENCO, "--on", "2027-02-10", "--file", str(advice))

    # Two weeks ahead: each team is reminded once (by health_referrals) and gets the advice
    # received so far from the core, without a second chase; everyone else gets the reminder.
    run("run", "--once", "--now", "2027-02-24T09:00")
    found = _read(outbox)
    got = new_messages()
    for team in TEAMS:
        assert got[team] == Counter({PLUGIN_REMINDER: 1, CORE_CIRCULATION: 1}), team
    for who in UNROUTED:
        assert got[who] == Counter({CORE_REMINDER: 1}), who
    for message in found.values():
        kind = _kind(message)
        if kind in (CORE_CIRCULATION, CORE_REMINDER):
            files = [p.get_filename() for p in message.iter_attachments()]
            assert files == ["setting-advice.txt"], kind
            body = _text(message)
            assert "received so far is enclosed" in body
            chases = "please send it now" in body or "please send them now" in body
            assert chases == (kind == CORE_REMINDER), kind

    # Nothing goes twice, however often the engine runs.
    for day in ("2027-02-25T09:00", "2027-03-01T09:00"):
        run("run", "--once", "--now", day)
    assert not new_messages()

    review_id = store.case(CASE).review.id
    duties = {d.name: d for _c, rid, d in store.duty_rows(case_ids=[CASE]) if rid == review_id}
    requested = duties[lifecycle.VIEWS_REQUESTED]
    assert requested.status == DutyStatus.MET and requested.met_on == date(2027, 1, 27)
    assert "3 team mailbox(es) asked by health_referrals" in (requested.evidence or "")
    circulated = duties[lifecycle.ADVICE_CIRCULATED]
    assert circulated.status == DutyStatus.MET and circulated.met_on == date(2027, 2, 24)
    store.close()


def test_a_routing_plugin_enabled_after_the_invitations_still_asks_each_team_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, add_case: Any, cli_runner: Any
) -> None:
    config, outbox, db = _settings(tmp_path)
    run = cli_runner(config)
    store = Store(f"sqlite:///{db}")
    add_case(store, CASE, upn="A123456789013", forename="Alex", coordinator=OFFICER)
    # The meeting is set and everyone invited before the council turns health_referrals on:
    # the therapist keeps her own address.
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook")
    therapist = "a.therapist@nhs.example.net"
    run("review", "invite", CASE, "--role", "parent", "--email", PARENT)
    run("review", "invite", CASE, "--role", "setting", "--email", SENCO)
    run("review", "invite", CASE, "--role", "health", "--team", "SALT", "--email", therapist)
    run("review", "schedule", CASE, "--start", "2027-03-10T10:00", "--location",
        "Oakfield School")
    run("run", "--once", "--now", "2027-01-01T09:00")
    new_messages = _NewMessages(outbox)
    new_messages()

    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "outlook,health_referrals")
    run("run", "--once", "--now", "2027-01-27T09:00")
    got = new_messages()
    # SALT is asked once, by health_referrals at its team mailbox; the core does not ask the
    # therapist's own address as well. The family and the school are asked by the notices.
    assert got[SALT] == Counter({PLUGIN_REQUEST: 1})
    assert therapist not in got
    assert got[PARENT] == Counter({CORE_REQUEST: 1}) and got[SENCO] == Counter({CORE_REQUEST: 1})

    # Two weeks ahead: SALT reminded once by the plugin; the therapist, still invited, gets
    # the advice received so far without a chase.
    run("run", "--once", "--now", "2027-02-24T09:00")
    got = new_messages()
    assert got[SALT] == Counter({PLUGIN_REMINDER: 1})
    assert got[therapist] == Counter({CORE_CIRCULATION: 1})
    assert got[PARENT] == Counter({CORE_REMINDER: 1})
    store.close()
