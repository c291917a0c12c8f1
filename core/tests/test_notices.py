"""Notices in the core: who hears what, in which words, on which channel, meeting which duty."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge import PermanentError, RetryLater, hookimpl, lifecycle
from ehcbridge.cli import cli
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Duty, Invitee, Outcome, Plan, Pupil, ReviewKind, Role
from ehcbridge.notices import Attachment, Notice, NoticeReceipt, NoticeRecipient, send
from ehcbridge.notices.build import Composer
from ehcbridge.notices.settings import NoticeSettings
from ehcbridge.store import Store
from ehcbridge.testing import make_app, plugin_module
from ehcbridge.timeline import compulsory_school_age_ends, over_compulsory_school_age

MEETING = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
T0 = datetime(2027, 1, 4, 8, 0, tzinfo=LONDON)


def _case(store: Store, *, nc_year: int = 7, dob: date = date(2014, 5, 2),
          invitees: list[Invitee] | None = None) -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="A123456789012", forename="Sam",
                                            surname="Example", dob=dob, nc_year=nc_year),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          coordinator_email="officer@council.example.gov.uk",
                          review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL,
                          pfa=nc_year >= 9)
    for invitee in invitees if invitees is not None else [
            Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
            Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org")]:
        store.add_invitee("EHC-1", invitee)
    store.schedule_meeting("EHC-1", start=MEETING, end=MEETING + timedelta(hours=1),
                           location="Oakfield School", now=T0)


class Channel:
    """A channel plugin that records what it is given; can be told to fail."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.fail: BaseException | None = None

    def module(self, name: str) -> Any:
        @hookimpl
        def deliver_notice(notice: Any, ctx: Any) -> Any:
            if self.fail is not None:
                raise self.fail
            self.notices.append(notice)
            return NoticeReceipt(channel=notice.channel, reference=f"{name}-{len(self.notices)}")

        return plugin_module(name, deliver_notice=deliver_notice)


def _app(store: Store, channel: Channel, notices: dict[str, Any] | None = None) -> Any:
    return make_app(store, {"mail": channel.module("mail"), "post": channel.module("post")},
                    settings={"notices": {"email_via": "mail", "letter_via": "post",
                                          **(notices or {})}}, now=T0)


def test_views_request_reaches_every_invitee_with_the_questions_for_them(store: Store) -> None:
    _case(store, nc_year=9, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
        Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
        Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example.net"),
    ])
    channel = Channel()
    engine = Engine(_app(store, channel, {"hub_url": "https://hub.example.gov.uk"}))
    engine.run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))
    by_role = {n.recipient.role: n for n in channel.notices}
    assert set(by_role) == {"parent", "setting", "health"}
    parent, senco, salt = by_role["parent"], by_role["setting"], by_role["health"]
    assert "personal budget" in " ".join(parent.questions)
    assert any("after school or college" in q for q in parent.questions)  # Year 9: PfA
    assert "preparing for adulthood" in " ".join(parent.paragraphs)
    # The default SENDIASS wording reads mid-sentence (it once said "help from Your local").
    assert "ask for help from your local SEND Information" in parent.text()
    assert "Sam's EHC plan" in parent.subject and "Sam Example" not in parent.text()
    for pro in (senco, salt):
        text = pro.text() + pro.subject
        assert "Sam" not in text and "SE" in pro.subject
        assert pro.questions[0].startswith("What progress has been made towards each outcome")
        assert any("prepare for adulthood" in q for q in pro.questions)
        assert pro.duty == lifecycle.VIEWS_REQUESTED
    assert "SENCO" in " ".join(senco.paragraphs)
    assert "Please upload it to the council's EHC Hub" in senco.text()
    assert "upload it to the council's EHC Hub (https://hub.example.gov.uk) or reply to this " \
           "message" in salt.text()
    assert [d.date for d in parent.dates] == ["Wednesday 24 February 2027"]
    engine.run_once(datetime(2027, 1, 28, 9, 0, tzinfo=LONDON))
    assert len(channel.notices) == 3  # once


def test_a_professional_sees_names_only_when_the_council_allows_it(store: Store) -> None:
    _case(store)
    case = store.case("EHC-1")
    for allowed, expect in ((False, "SE"), (True, "Sam Example")):
        comp = Composer(settings=NoticeSettings(include_names_for_professionals=allowed),
                        case=case, today=date(2027, 1, 27))
        senco = next(n for n in comp.views_request() if n.recipient.role == "setting")
        assert expect in senco.subject
        assert ("Sam" in senco.text()) is allowed


def test_the_report_tells_professionals_the_setting_hears_only_when_there_is_one(
        store: Store) -> None:
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
        Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example.net")])
    case = store.case("EHC-1")
    for no_setting, told in ((False, "the family and the setting"), (True, "the family")):
        plan = case.plan.model_copy(update={"no_setting": no_setting})
        comp = Composer(settings=NoticeSettings(), case=replace(case, plan=plan),
                        today=date(2027, 3, 4))
        salt = next(n for n in comp.report(None) if n.recipient.role == "health")
        assert f"will write to {told} within four weeks" in salt.text()


def test_a_young_person_over_compulsory_school_age_is_addressed_instead_of_the_parent(
        store: Store) -> None:
    assert compulsory_school_age_ends(date(2010, 8, 31)) == date(2026, 6, 26)
    assert compulsory_school_age_ends(date(2010, 9, 1)) == date(2027, 6, 25)
    assert over_compulsory_school_age(Pupil(forename="A", surname="B", dob=date(2010, 8, 31)),
                                      date(2026, 6, 27))
    _case(store, nc_year=12, dob=date(2010, 8, 31), invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
        Invitee(role=Role.YOUNG_PERSON, name="Sam Example", email="sam@example.net"),
        Invitee(role=Role.SETTING, name="College", email="sen@college.example.org")])
    comp = Composer(settings=NoticeSettings(), case=store.case("EHC-1"), today=date(2027, 1, 27))
    notices = comp.views_request()
    assert {n.recipient.role for n in notices} == {"young_person", "setting"}
    young = next(n for n in notices if n.recipient.role == "young_person")
    assert "your EHC plan" in young.subject and "Sam's" not in young.text()


def test_a_parent_with_only_a_postal_address_gets_a_letter_and_can_also_get_one(
        store: Store) -> None:
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", address="12 Mill Lane\nOK1 2AB"),
        Invitee(role=Role.PARENT, name="Mr T Example", email="t@example.net",
                address="3 Bridge St\nOK2 3CD", mobile="07700900123")])
    case = store.case("EHC-1")
    plain = Composer(settings=NoticeSettings(), case=case, today=date(2027, 1, 27))
    assert sorted((n.recipient.name, n.channel) for n in plain.views_request()) == [
        ("Mr T Example", "email"), ("Ms R Example", "letter")]
    both = Composer(settings=NoticeSettings(letters_for_families=True), case=case,
                    today=date(2027, 1, 27))
    letter = next(n for n in both.views_request()
                  if n.recipient.name == "Mr T Example" and n.channel == "letter")
    assert letter.recipient.address == ("3 Bridge St", "OK2 3CD")
    assert "reply by post to the address above" in letter.text()
    texts = Composer(settings=NoticeSettings(), case=case, today=date(2027, 2, 24),
                     loaded=frozenset({"notify"})).advice_reminder([])
    sms = [n for n in texts if n.channel == "sms"]
    assert [(n.kind, n.recipient.mobile, n.duty) for n in sms] == [
        ("text_reminder", "07700900123", None)]


@pytest.mark.parametrize(("outcome", "expected"), [
    (Outcome.MAINTAIN, "The next review is due by"),
    (Outcome.AMEND, "at least 15 days to comment on them"),
    (Outcome.CEASE, "appeal to the First-tier Tribunal"),
])
def test_decision_notice_tells_the_family_and_the_setting_what_follows(
        store: Store, outcome: Outcome, expected: str) -> None:
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
        Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
        Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example.net")])
    store.mark_held("EHC-1", now=MEETING + timedelta(hours=1))
    store.decide("EHC-1", outcome=outcome, reason="Outcomes reviewed", decided_on=date(2027, 3, 20),
                 next_review_due=date(2028, 3, 19), now=MEETING + timedelta(days=10))
    channel = Channel()
    Engine(_app(store, channel)).run_once(datetime(2027, 3, 20, 9, 0, tzinfo=LONDON))
    decisions = [n for n in channel.notices if n.kind == "decision"]
    assert sorted(n.recipient.role for n in decisions) == ["parent", "setting"]
    parent = next(n for n in decisions if n.recipient.role == "parent")
    assert expected in parent.text() and "The reason: Outcomes reviewed" in parent.text()
    if outcome == Outcome.AMEND:
        assert "Sunday 4 April 2027" in parent.text()  # decision + 15 days
    if outcome == Outcome.MAINTAIN:
        assert "Sunday 19 March 2028" in parent.text()
    if outcome in (Outcome.MAINTAIN, Outcome.CEASE):
        # Not amending the plan can be appealed too (CoP 9.176): rights, time limit, mediation.
        assert "appeal to the First-tier Tribunal" in parent.text()
        assert "within two months of the date of this letter" in parent.text()
        assert "consider mediation" in parent.text()
        assert {c.name for c in parent.contacts} >= {"SENDIASS", "Mediation",
                                                     "Disagreement resolution"}
        setting = next(n for n in decisions if n.recipient.role == "setting")
        assert "The family has been told of their right of appeal" in setting.text()
    else:
        assert "tell you about your right to appeal" in parent.text()


def test_a_council_replaces_one_block_of_the_wording(store: Store, tmp_path: Path) -> None:
    override = tmp_path / "views.j2"
    override.write_text('{% extends "default/views_request.j2" %}\n'
                        '{% block questions %}\n- How is {{ child }} getting on?\n'
                        '{% endblock %}\n', encoding="utf-8")
    _case(store)
    comp = Composer(settings=NoticeSettings(templates={"views_request": override}),
                    case=store.case("EHC-1"), today=date(2027, 1, 27))
    senco = next(n for n in comp.views_request() if n.recipient.role == "setting")
    assert senco.questions == ("How is SE getting on?",)
    assert "Advice requested" in senco.subject  # the rest is the default


def test_a_broken_council_template_flags_the_review_and_names_the_file(
        store: Store, tmp_path: Path) -> None:
    override = tmp_path / "views.j2"
    override.write_text('{% extends "default/views_request.j2" %}\n'
                        '{% block subject %}{{ no_such_field }}{% endblock %}\n')
    _case(store)
    channel = Channel()
    app = _app(store, channel, {"templates": {"views_request": str(override)}})
    Engine(app).run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))
    assert channel.notices == []
    flag = store.case("EHC-1").flags["notice_failed"]
    assert str(override) in flag and "no_such_field" in flag


def test_an_unknown_template_kind_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="unknown notice kind"):
        NoticeSettings(templates={"newsletter": Path("x.j2")})


def test_a_failed_notice_is_flagged_and_meets_no_duty(store: Store) -> None:
    _case(store)
    review_id = store.case("EHC-1").review.id
    assert review_id is not None
    if not store.duties("EHC-1"):  # issue 12 computes them; a stand-in otherwise
        store.save_duties(review_id, [Duty(name=lifecycle.ADVICE_CIRCULATED, rule="reg 20(4)",
                                           kind="statutory", due=date(2027, 2, 24),
                                           owed_by="la", owed_to=("parent",))])
    channel = Channel()
    channel.fail = PermanentError("SMTP refused recipients: parent@example.net (550)")
    Engine(_app(store, channel)).run_once(datetime(2027, 2, 24, 9, 0, tzinfo=LONDON))
    flag = store.case("EHC-1").flags["notice_failed"]
    assert flag.startswith("4 notice(s) failed; latest: ")
    assert "by email (mail): PermanentError: SMTP refused" in flag
    advice = next(d for d in store.duties("EHC-1") if d.name == lifecycle.ADVICE_CIRCULATED)
    assert advice.status != "met" and "notice" not in (advice.evidence or "")
    assert {r["status"] for r in store.notices(case_id="EHC-1")} == {"failed"}


def test_a_notice_whose_channel_has_no_plugin_is_flagged(store: Store) -> None:
    _case(store, invitees=[Invitee(role=Role.PARENT, name="Ms R Example",
                                   address="12 Mill Lane\nOK1 2AB")])
    app = make_app(store, {}, now=T0)
    Engine(app).run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))
    assert "no plugin 'letters' is loaded" in store.case("EHC-1").flags["notice_failed"]


def test_send_queues_any_notice_with_attachments_once(store: Store) -> None:
    _case(store)
    channel = Channel()
    app = _app(store, channel)
    review_id = store.case("EHC-1").review.id
    notice = Notice(key="termly/2027-spring/school-123", kind="termly_list", channel="email",
                    recipient=NoticeRecipient(role="setting", email="office@school.example.org"),
                    subject="Reviews due this term", paragraphs=("The list is attached.",),
                    attachments=(Attachment.inline("list.csv", b"case,due\n", "text/csv"),),
                    review_id=review_id)
    assert send(app, notice) is True
    assert send(app, notice) is False
    Engine(app).run_once(T0)
    assert [n.attachments[0].data for n in channel.notices] == [b"case,due\n"]


def test_cli_records_views_with_files_and_refuses_a_missing_file(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    env = {"EHCBRIDGE_STORE__URL": f"sqlite:///{db}", "EHCBRIDGE_LOAD_PLUGINS": "none"}
    store = Store(f"sqlite:///{db}")
    _case(store)
    advice = tmp_path / "advice.docx"
    advice.write_bytes(b"PK\x03\x04 advice")
    runner = CliRunner()
    result = runner.invoke(cli, ["review", "views", "EHC-1", "--from", "SENCO@school.example.org",
                                 "--on", "2027-02-10", "--file", str(advice)], env=env)
    assert result.exit_code == 0, result.output
    assert "views from setting recorded for 10 Feb 2027 with 1 file(s)" in result.output
    result = runner.invoke(cli, ["review", "views", "EHC-1", "--from", "x@example.net",
                                 "--file", str(tmp_path / "missing.pdf")], env=env)
    assert result.exit_code == 2 and "missing.pdf" in result.output
    assert "Traceback" not in result.output
    views = store.views("EHC-1")
    assert [(v.role, v.received, v.files) for v in views] == [
        ("setting", date(2027, 2, 10), ("advice.docx",))]
    files = store.review_files(store.case("EHC-1").review.id or 0)
    assert store.file_data(files[0]["id"]) == b"PK\x03\x04 advice"
    result = runner.invoke(cli, ["review", "invite", "EHC-1", "--role", "parent", "--name",
                                 "Mr T Example", "--address", "3 Bridge St, OK2 3CD",
                                 "--mobile", "07700900123"], env=env)
    assert result.exit_code == 0, result.output
    parent = next(i for i in store.case("EHC-1").invitees if i.name == "Mr T Example")
    assert (parent.email, parent.address, parent.mobile) == (None, "3 Bridge St\nOK2 3CD",
                                                             "07700900123")
    store.close()


def test_a_plugin_records_views_and_notice_statuses_through_its_store(store: Store) -> None:
    _case(store)
    channel = Channel()
    app = _app(store, channel)
    facade = app.plugin_context("mail").store
    facade.record_views("EHC-1", "SENCO@school.example.org", date(2027, 2, 10),
                        [("advice.pdf", "application/pdf", b"%PDF-1.4")])
    assert [(v.role, v.files) for v in store.views("EHC-1")] == [("setting", ("advice.pdf",))]
    Engine(app).run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))
    reference = channel.notices and store.notices(case_id="EHC-1")[0]["reference"]
    assert facade.set_notice_status(str(reference), "delivered", "read back") == "EHC-1"
    assert store.notices(case_id="EHC-1")[0]["status"] == "delivered"
    assert facade.set_notice_status("no-such-reference", "delivered") is None


def _routed_case(store: Store) -> Any:
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", email="parent@example.net"),
        Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
        Invitee(role=Role.HEALTH, name="SALT", email="SALT.Team@nhs.example.net",
                team="SALT", source="routed"),
        Invitee(role=Role.OTHER, name="Early help", email="salt.team@nhs.example.net",
                source="routed")])  # a second invitee on the same team mailbox
    return store.case("EHC-1")


def test_readers_leave_a_team_a_plugin_asks_itself_out_of_the_views_request(
        store: Store) -> None:
    case = _routed_case(store)
    asked = {"salt.team@nhs.example.net": "health_referrals",
             "parent@example.net": "health_referrals"}  # never for a family
    comp = Composer(settings=NoticeSettings(), case=case, today=date(2027, 1, 27),
                    asked_by=asked)
    assert [i.email for i in comp.readers("views_request")] == [
        "parent@example.net", "senco@school.example.org"]
    assert sorted(n.recipient.email or "" for n in comp.views_request()) == [
        "parent@example.net", "senco@school.example.org"]
    # Everything else still reaches the team (once for its two invitees).
    for kind in ("advice_reminder", "report"):
        assert [i.email for i in comp.readers(kind)] == [
            "parent@example.net", "senco@school.example.org", "SALT.Team@nhs.example.net"]
    plain = Composer(settings=NoticeSettings(), case=case, today=date(2027, 1, 27))
    assert len(plain.readers("views_request")) == 3


def test_a_team_a_plugin_chases_gets_the_advice_circulated_without_a_second_chase(
        store: Store) -> None:
    case = _routed_case(store)
    comp = Composer(settings=NoticeSettings(), case=case, today=date(2027, 2, 24),
                    asked_by={"salt.team@nhs.example.net": "health_referrals"})
    files = [{"id": 7, "views_id": 1, "role": "setting", "received_on": date(2027, 2, 10),
              "filename": "senco.pdf", "content_type": "application/pdf", "size": 100}]
    by_email = {n.recipient.email: n for n in comp.advice_reminder(files)}
    assert set(by_email) == {"parent@example.net", "senco@school.example.org",
                             "SALT.Team@nhs.example.net"}
    team, senco = by_email["SALT.Team@nhs.example.net"], by_email["senco@school.example.org"]
    for notice in (team, senco):  # reg 20(4): the advice goes to everyone invited
        assert [a.filename for a in notice.attachments] == ["senco.pdf"]
        assert "received so far is enclosed" in notice.text()
        assert notice.duty == lifecycle.ADVICE_CIRCULATED
    assert "please send it now" in senco.text() and senco.subject.startswith("Reminder:")
    assert "please send it now" not in team.text() and "Reminder" not in team.subject
    assert team.subject.startswith("Advice received so far for the EHCP annual review")
    assert "advice request, and any reminder about it, come to you separately" in team.text()
    assert "please send them now" in by_email["parent@example.net"].text()


def test_the_route_says_who_asks_for_advice_and_only_a_loaded_plugin_counts(
        store: Store) -> None:
    from ehcbridge.events import Route
    from ehcbridge.routing import advice_asked_by

    @hookimpl
    def route_invite(review: Any, pupil: Any, invitee: Any, ctx: Any) -> Any:
        if invitee.role == Role.HEALTH:
            return Route(team="SALT", email="SALT@nhs.example.net", rule="salt", reason="SALT",
                         advice_by="router")
        if invitee.role == Role.SOCIAL_CARE:  # routed, but the core's notices ask them
            return Route(team="CSC", email="csc@council.example.gov.uk", rule="csc",
                         reason="social care")
        return None

    @hookimpl
    def on_views_due(event: Any, ctx: Any) -> None:
        """The router sends its own advice requests."""

    _case(store)
    router = plugin_module("router", route_invite=route_invite, on_views_due=on_views_due)
    app = make_app(store, {"router": router})
    app.add_invitee("EHC-1", Invitee(role=Role.HEALTH, team="SALT", email="jo@nhs.example.net"))
    app.add_invitee("EHC-1", Invitee(role=Role.SOCIAL_CARE, team="CSC"))
    review_id = store.case("EHC-1").review.id
    assert review_id is not None
    assert advice_asked_by(app, review_id) == {"salt@nhs.example.net": "router"}
    assert advice_asked_by(app, review_id + 1) == {}  # next year's review is routed afresh

    # A router that no longer asks for the mailbox hands it back to the notices.
    @hookimpl
    def route_plain(review: Any, pupil: Any, invitee: Any, ctx: Any) -> Any:
        return Route(team="SALT", email="salt@nhs.example.net", rule="salt", reason="SALT")

    plain = make_app(store, {"router": plugin_module("router", route_invite=route_plain,
                                                     on_views_due=on_views_due)})
    plain.add_invitee("EHC-1", Invitee(role=Role.HEALTH, team="SALT"))
    assert advice_asked_by(plain, review_id) == {}

    # A plugin that is not loaded (or sends no advice requests) asks no one.
    app.add_invitee("EHC-1", Invitee(role=Role.HEALTH, team="SALT", email="jo@nhs.example.net"))
    assert advice_asked_by(app, review_id) == {"salt@nhs.example.net": "router"}
    silent = make_app(store, {"router": plugin_module("router", route_invite=route_invite)})
    assert advice_asked_by(silent, review_id) == {}
    assert advice_asked_by(make_app(store, {}), review_id) == {}


@pytest.mark.parametrize(("transfer", "pfa", "expected"), [
    (0, 0, None),
    (2, 0, "2 must focus on the move to the next school or college (phase transfer); these are "
           "marked in the list."),
    (0, 3, "3 must focus on preparing for adulthood (Year 9 onwards); these are marked in the "
           "list."),
    (1, 3, "1 must focus on the move to the next school or college (phase transfer) and 3 on "
           "preparing for adulthood (Year 9 onwards); both are marked in the list."),
])
def test_the_termly_list_letter_counts_only_what_is_there(
        transfer: int, pfa: int, expected: str | None) -> None:
    """A head reads "3 must focus on preparing for adulthood", not "0 must focus on ...")."""
    from ehcbridge.notices.render import environment, render
    from ehcbridge.notices.settings import NoticeSettings

    _, paragraphs, _ = render(environment(NoticeSettings(), None), "termly_list", {
        "whose": "pupils at Oak School", "school": "Oak School", "count": 7,
        "phase_transfer": transfer, "preparing_for_adulthood": pfa,
        "due_from": "Monday 12 April 2027", "due_to": "Wednesday 21 July 2027"})
    [counts] = [p for p in paragraphs if p.startswith("There are 7 reviews")]
    assert "0 must" not in counts and " 0 on " not in counts
    assert counts.endswith("on the list." if expected is None else expected)


def test_a_family_without_email_gets_the_joining_link_of_an_online_meeting_by_letter(
        store: Store) -> None:
    """No email, so no calendar invitation: the letter is the only way the link reaches them."""
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", address="12 Mill Lane\nOK1 2AB")])
    case = store.case("EHC-1")
    assert case.meeting is not None
    link = "https://teams.example.com/l/meetup-join/abc"
    from dataclasses import replace

    online = replace(case, meeting=case.meeting.model_copy(
        update={"online": True, "join_url": link}))
    composer = Composer(settings=NoticeSettings(), case=online, today=date(2027, 2, 24))
    for notice in (*composer.views_request(), *composer.advice_reminder([])):
        assert notice.channel == "letter"
        assert f"Join the meeting online: {link}" in notice.text()
    # In person, or no link yet: no such line.
    plain = Composer(settings=NoticeSettings(), case=case, today=date(2027, 2, 24))
    assert all("Join the meeting online" not in n.text() for n in plain.views_request())


def test_a_family_without_email_is_told_of_the_meeting_each_time_it_changes(
        store: Store) -> None:
    """The calendar invitation reaches whoever has email; a family with only a postal address
    gets the invitation, a new date and a cancellation by letter, once per revision."""
    _case(store, invitees=[
        Invitee(role=Role.PARENT, name="Ms R Example", address="12 Mill Lane\nOK1 2AB"),
        Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org")])

    def letters() -> list[Notice]:
        return Composer(settings=NoticeSettings(), case=store.case("EHC-1"),
                        today=date(2027, 1, 10)).meeting_letters()

    [invited] = letters()
    assert (invited.channel, invited.recipient.name, invited.duty) == (
        "letter", "Ms R Example", None)
    assert invited.subject.startswith("Invitation: the annual review meeting for Sam's")
    assert "You are invited" in invited.text() and "Oakfield School" in invited.text()
    assert [n.key for n in letters()] == [invited.key]  # the same revision: the same letter
    later = MEETING + timedelta(days=7)
    store.schedule_meeting("EHC-1", start=later, end=later + timedelta(hours=1),
                           location="Oakfield School", now=T0)
    [moved] = letters()
    assert moved.key != invited.key and moved.subject.startswith("New date:")
    assert "replaces the one we gave you before" in moved.text()
    store.cancel_meeting("EHC-1", reason="family asked", now=T0)
    [cancelled] = letters()
    assert cancelled.key not in (invited.key, moved.key)
    assert cancelled.subject.startswith("Cancelled:") and "has been cancelled" in cancelled.text()


def test_a_batch_of_events_composes_its_notices_from_one_set_read(
        store: Store, monkeypatch: Any) -> None:
    """A council's first run: the meetings' letters and the views requests of many reviews
    are composed from the batch's set read of their cases. Reading each case on its own made
    dispatch eight times slower (435 events/s for 20,000 plans)."""
    for n in range(30):
        with store.begin() as conn:
            store.upsert_case(conn, pupil=Pupil(upn=f"A1234567890{n:02d}", forename="Sam",
                                                surname="Example", dob=date(2014, 5, 2),
                                                nc_year=7),
                              plan=Plan(case_id=f"EHC-{n}", issued_on=date(2026, 4, 1)),
                              coordinator_email="officer@council.example.gov.uk",
                              review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
        store.add_invitee(f"EHC-{n}", Invitee(role=Role.PARENT, name="Ms R Example",
                                              address="1 High Street\nDE1 1AA"))
        store.schedule_meeting(f"EHC-{n}", start=MEETING, end=MEETING + timedelta(hours=1),
                               location="Oakfield School", now=T0)
    reads: list[int] = []
    original = Store.case_by_review

    def counted(self: Store, review_id: int) -> Any:
        reads.append(review_id)
        return original(self, review_id)

    monkeypatch.setattr(Store, "case_by_review", counted)
    channel = Channel()
    engine = Engine(_app(store, channel))
    engine.run_once(T0)
    engine.run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))
    kinds = sorted(n.kind for n in channel.notices)
    assert kinds == ["meeting"] * 30 + ["views_request"] * 30
    assert len(reads) < 5, f"{len(reads)} cases read one by one"


@pytest.mark.parametrize("refusal", ["permanent", "retry"])
def test_removing_an_invitee_withdraws_their_unsent_notices_and_meets_the_duty(
        store: Store, refusal: str) -> None:
    """The SENCO's address was wrong: the views request to it failed, the duty stayed unmet
    and the review flagged. Removing them withdraws that notice (and one still waiting for a
    retry), meets the duty from the notices everyone else was sent, and clears the flag."""
    from ehcbridge import transitions
    from ehcbridge.notices.delivery import after_withdrawal

    _case(store)
    channel = Channel()
    app = _app(store, channel)

    @hookimpl
    def deliver_notice(notice: Any, ctx: Any) -> Any:
        if notice.recipient.email == "senco@school.example.org":
            if refusal == "retry":  # the delivery waits for its next attempt
                raise RetryLater("421 try again later", retry_after=3600)
            raise PermanentError("SMTP refused recipients: senco@school.example.org (550)")
        channel.notices.append(notice)
        return NoticeReceipt(channel=notice.channel, reference=f"ok-{len(channel.notices)}")

    app = make_app(store, {"mail": plugin_module("mail", deliver_notice=deliver_notice),
                           "post": channel.module("post")},
                   settings={"notices": {"email_via": "mail", "letter_via": "post"}}, now=T0)
    engine = Engine(app)
    engine.run_once(datetime(2027, 1, 27, 9, 0, tzinfo=LONDON))  # the views request
    requested = next(d for d in store.duties("EHC-1") if d.name == lifecycle.VIEWS_REQUESTED)
    assert "notice(s) by" not in (requested.evidence or "")
    assert ("notice_failed" in store.case("EHC-1").flags) == (refusal == "permanent")

    done = transitions.uninvite(store, "EHC-1", email="SENCO@school.example.org",
                                now=datetime(2027, 1, 28, 9, 0, tzinfo=LONDON))
    assert [i.role for i in done.removed] == [Role.SETTING]
    assert after_withdrawal(app, done.review_id, done.duties).met == 1
    requested = next(d for d in store.duties("EHC-1") if d.name == lifecycle.VIEWS_REQUESTED)
    assert requested.evidence is not None and "1 notice(s) by email" in requested.evidence
    assert "notice_failed" not in store.case("EHC-1").flags
    assert {r["status"] for r in store.notices(case_id="EHC-1")} == {"sent", "withdrawn"}
    # The right address, invited after the views stage: asked for views too, once.
    app.add_invitee("EHC-1", Invitee(role=Role.SETTING, name="SENCO",
                                     email="senco@oakfield.example.org"))
    engine.run_once(datetime(2027, 1, 29, 9, 0, tzinfo=LONDON))
    engine.run_once(datetime(2027, 1, 30, 9, 0, tzinfo=LONDON))
    assert [(n.kind, n.recipient.email) for n in channel.notices] == [
        ("views_request", "parent@example.net"),
        ("views_request", "senco@oakfield.example.org")]
    # Nothing more goes to the address removed.
    engine.run_once(datetime(2027, 2, 24, 9, 0, tzinfo=LONDON))
    assert all(n.recipient.email != "senco@school.example.org" for n in channel.notices)
    assert sorted((n.kind, n.recipient.email) for n in channel.notices[2:]) == [
        ("advice_reminder", "parent@example.net"),
        ("advice_reminder", "senco@oakfield.example.org")]
