"""Advice requests: six weeks ahead, exactly once per team, through a real SMTP server on
127.0.0.1 and through the outbox; one reminder; overdue advice flagged until it is received."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from ehcbridge import NotConfigured, PermanentError, RetryLater
from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.models import LONDON, Invitee, Role
from ehcbridge.testing import ContextApp, MemoryPluginStore, make_event
from ehcbridge_health_referrals import cli, on_views_due, route_invite
from ehcbridge_health_referrals.routing import area_key
from ehcbridge_health_referrals.settings import HealthReferralsSettings

Ctx = Callable[..., HookContext]
START = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc"


def views_event(stage: str, *, key: str | None = None, **overrides: Any) -> LifecycleEvent:
    """The on_views_due event of EHC-0001's 10 March meeting at ``stage``."""
    occurred = {"request": START - timedelta(weeks=6),
                "reminder": START - timedelta(weeks=2, days=3),
                "due": START - timedelta(weeks=2)}[stage]
    return make_event("on_views_due", stage, join_url=JOIN, key=key,
                      occurred_at=occurred, **overrides)


def route_all(ctx: HookContext, event: LifecycleEvent,
              invitees: tuple[Invitee, ...]) -> None:
    """What the engine does before anyone is invited: ask route_invite for each invitee."""
    for invitee in invitees:
        route_invite(review=event.review, pupil=event.pupil, invitee=invitee, ctx=ctx)


TEAMS = (
    Invitee(role=Role.HEALTH, team="SALT"),
    Invitee(role=Role.HEALTH, team="CAMHS"),
    Invitee(role=Role.SOCIAL_CARE, name="Children's social care"),
    Invitee(role=Role.HEALTH, team="Dietetics"),  # unmatched: the DCO
)


def outbox_messages(folder: Path) -> dict[str, EmailMessage]:
    """Messages in the outbox by recipient."""
    found: dict[str, EmailMessage] = {}
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert str(message["To"]) not in found, f"two messages to {message['To']}"
        found[str(message["To"])] = message
    return found


def text_of(message: EmailMessage) -> str:
    """The plain-text body."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    """The HTML body."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


MAILBOXES = {"salt.bristol@nhs.net", "camhs.spa@nhs.net", "csc.ehcp@bristol.gov.uk",
             "dco.bristol@nhs.net"}


def test_requests_go_to_each_routed_team_once_via_outbox(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore) -> None:
    ctx = context(("SEMH", "SLCN"))
    event = views_event("request")
    route_all(ctx, event, TEAMS)
    on_views_due(event=event, ctx=ctx)
    sent = outbox_messages(settings.outbox_dir)
    assert set(sent) == MAILBOXES

    # A retry of the same delivery, and a second delivery of the stage, send nothing more.
    on_views_due(event=event, ctx=ctx)
    on_views_due(event=views_event("request", key="EHC-0001:other-key"), ctx=ctx)
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 4
    # An advice request is not an invitation to the meeting: recording it as one made outlook
    # take a team asked for advice before its invitation went (lanes run side by side) as
    # invited already, and the team never got the meeting in its calendar.
    assert store.invitation_records == []
    requests = [a for a in store.audits if a["action"] == "advice_request"]
    assert sorted(a["detail"]["mailbox"] for a in requests) == sorted(MAILBOXES)


def test_request_content(context: Ctx, settings: HealthReferralsSettings) -> None:
    ctx = context(("SEMH", "SLCN"))
    event = views_event("request")
    route_all(ctx, event, TEAMS)
    on_views_due(event=event, ctx=ctx)
    salt = outbox_messages(settings.outbox_dir)["salt.bristol@nhs.net"]
    assert str(salt["Subject"]) == "Advice request: EHC-0001 annual review, 10 Mar 2026"
    assert str(salt["From"]) == "ehcp-reviews@bristol.gov.uk"
    assert str(salt["Reply-To"]) == "senco@school.example.org"
    body = text_of(salt)
    for line in ("Case reference: EHC-0001", "Initials: SE", "Date of birth: 02/05/2014",
                 "Setting: Example Academy (URN 100001)",
                 "Meeting: Tuesday 10 March 2026, 10:00 to 11:00", f"Join online: {JOIN}",
                 "Advice due by: Tuesday 24 February 2026",
                 "How to return your advice: Reply to this email with your advice attached"):
        assert line in body
    assert "Bristol SALT is invited to contribute advice" in body
    # Minimal data level: no needs, and never the child's names.
    assert "SEMH" not in body and "SLCN" not in body
    for text in (body, html_of(salt), str(salt["Subject"])):
        assert "Sam" not in text and "Example School" not in text
    assert f'<a href="{JOIN}">' in html_of(salt)


def test_data_level_needs_includes_needs_and_the_portal(
        context: Ctx, settings: HealthReferralsSettings) -> None:
    ctx = context(("SEMH", "SLCN"))
    event = views_event("request")
    route_all(ctx, event, TEAMS)
    on_views_due(event=event, ctx=ctx)
    camhs = text_of(outbox_messages(settings.outbox_dir)["camhs.spa@nhs.net"])
    assert "Recorded needs (CTF): SEMH, SLCN" in camhs
    assert "Upload it at: https://camhs.example.nhs.uk/advice" in camhs


def test_message_id_is_stable_per_delivery_and_team(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore) -> None:
    ctx = context()
    event = views_event("request")
    route_all(ctx, event, TEAMS[:1])
    on_views_due(event=event, ctx=ctx)
    first = str(outbox_messages(settings.outbox_dir)["salt.bristol@nhs.net"]["Message-ID"])
    assert first.endswith("@bristol.gov.uk>")
    # Simulate a crash after sending but before recording: the retry reuses the Message-ID.
    for key, _value in store.state_items("sent:"):
        store.delete_state(key)
    on_views_due(event=event, ctx=ctx)
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    assert str(outbox_messages(settings.outbox_dir)["salt.bristol@nhs.net"]["Message-ID"]) == \
        first


def test_reminded_once_then_flagged_overdue_until_received(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[:3])
    on_views_due(event=views_event("request"), ctx=ctx)

    ctx_later = context(now=START - timedelta(weeks=2, days=3))
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx_later))
    result = CliRunner().invoke(cli.group, ["received", "EHC-0001", "--team", "bristol camhs"])
    assert result.exit_code == 0, result.output
    assert "advice from Bristol CAMHS recorded as received 2026-02-21" in result.output

    on_views_due(event=views_event("reminder"), ctx=ctx_later)
    on_views_due(event=views_event("due"), ctx=context(now=START - timedelta(weeks=2)))
    on_views_due(event=views_event("due", key="again"), ctx=context(now=START))
    reminders = [p for p in settings.outbox_dir.glob("*.eml")
                 if "Reminder" in p.read_text(encoding="utf-8")]
    assert len(reminders) == 2  # SALT and social care, once each; CAMHS has replied
    assert store.flags["EHC-0001"]["advice_overdue"] == "Bristol SALT, Children's social care"

    CliRunner().invoke(cli.group, ["received", "EHC-0001", "--team", "salt.bristol@nhs.net"])
    assert store.flags["EHC-0001"]["advice_overdue"] == "Children's social care"
    done = CliRunner().invoke(cli.group, ["received", "EHC-0001", "--team",
                                          "Children's social care", "--on", "2026-02-25"])
    assert done.exit_code == 0
    assert "advice_overdue" not in store.flags["EHC-0001"]
    assert any(a["action"] == "advice_received" and a["detail"]["on"] == "2026-02-25"
               for a in store.audits)


def test_advice_recorded_with_the_review_is_not_chased_and_received_is_recorded_there(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    assert views_event("request").review.id == store.reviews["EHC-0001"].id  # the current one
    route_all(ctx, views_event("request"), TEAMS[:3])
    on_views_due(event=views_event("request"), ctx=ctx)
    # SALT's advice reaches the review the core's way (`review views`, or its reply read from
    # the mailbox), not through `health-referrals received`.
    store.record_views("EHC-0001", "SALT.Bristol@NHS.net", date(2026, 2, 16),
                       [("salt-advice.pdf", "application/pdf", b"%PDF-1.4")])
    later = context(now=START - timedelta(weeks=2, days=3))
    on_views_due(event=views_event("reminder"), ctx=later)
    on_views_due(event=views_event("due"), ctx=context(now=START - timedelta(weeks=2)))
    reminded = [str(m["To"]) for p in settings.outbox_dir.glob("*.eml")
                if str((m := email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                        )["Subject"]).startswith("Reminder")]
    assert sorted(reminded) == sorted(
        t["mailbox"] for t in _teams(ctx) if t["team"] != "Bristol SALT")
    assert store.flags["EHC-0001"]["advice_overdue"] == "Bristol CAMHS, Children's social care"
    # Recorded here, the advice is recorded with the review too (once), so the core's
    # circulation and `review show` know of it.
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(later))
    for team in ("bristol camhs", "Bristol CAMHS", "salt.bristol@nhs.net"):
        assert CliRunner().invoke(cli.group, ["received", "EHC-0001", "--team", team]
                                  ).exit_code == 0
    camhs = next(t["mailbox"] for t in _teams(ctx) if t["team"] == "Bristol CAMHS")
    assert [v.contributor for v in store.views("EHC-0001")] == ["SALT.Bristol@NHS.net", camhs]
    assert store.flags["EHC-0001"]["advice_overdue"] == "Children's social care"


def test_the_hourly_schedule_clears_overdue_teams_whose_advice_reached_the_review(
        context: Ctx, store: MemoryPluginStore) -> None:
    import ehcbridge_health_referrals
    from ehcbridge_health_referrals.advice import refresh_all_overdue

    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[:2])
    on_views_due(event=views_event("request"), ctx=ctx)
    on_views_due(event=views_event("due"), ctx=context(now=START - timedelta(weeks=2)))
    assert store.flags["EHC-0001"]["advice_overdue"] == "Bristol CAMHS, Bristol SALT"
    registered: list[tuple[str, str, Any]] = []
    ehcbridge_health_referrals.register_schedules(
        register=lambda *args: registered.append(args))
    [(name, cron, job)] = registered
    assert (name, cron) == ("health-referrals-overdue", "5 * * * *")
    # SALT's advice is recorded with the review after the due stage (`review views --from`).
    store.record_views("EHC-0001", "salt.bristol@nhs.net", date(2026, 2, 25), [])
    job(ctx)
    assert store.flags["EHC-0001"]["advice_overdue"] == "Bristol CAMHS"
    camhs = next(t["mailbox"] for t in _teams(ctx) if t["team"] == "Bristol CAMHS")
    store.record_views("EHC-0001", camhs.upper(), date(2026, 2, 26), [])
    assert refresh_all_overdue(ctx) == 0
    assert "advice_overdue" not in store.flags["EHC-0001"]
    assert store.state_items("overdue:") == []  # nothing left to look at each hour


def _teams(ctx: HookContext) -> list[dict[str, Any]]:
    from ehcbridge_health_referrals.routing import teams_of

    return teams_of(ctx, views_event("request").review)


def test_reminder_text(context: Ctx, settings: HealthReferralsSettings) -> None:
    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[:1])
    on_views_due(event=views_event("request"), ctx=ctx)
    on_views_due(event=views_event("reminder"), ctx=context(now=START - timedelta(weeks=2)))
    reminder = next(m for p in settings.outbox_dir.glob("*.eml")
                    if "Reminder" in (m := email.message_from_bytes(
                        p.read_bytes(), policy=email.policy.default))["Subject"])
    assert str(reminder["Subject"]) == "Reminder: advice due 24 Feb 2026 for EHC-0001"
    assert isinstance(reminder, EmailMessage)
    assert "we have not yet recorded advice from Bristol SALT" in text_of(reminder)


def test_a_late_booking_gets_the_request_but_no_same_day_reminder(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore) -> None:
    ctx = context(now=START - timedelta(days=8))  # booked late: every stage fires now
    route_all(ctx, views_event("request"), TEAMS[:1])
    for stage in ("request", "reminder", "due"):
        on_views_due(event=views_event(stage), ctx=ctx)
    subjects = [str(m["Subject"]) for m in outbox_messages(settings.outbox_dir).values()]
    assert subjects == ["Advice request: EHC-0001 annual review, 10 Mar 2026"]
    assert store.flags["EHC-0001"]["advice_overdue"] == "Bristol SALT"


def test_received_for_an_unknown_team_lists_the_teams(
        context: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[:1])
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))
    result = CliRunner().invoke(cli.group, ["received", "EHC-0001", "--team", "Podiatry"])
    assert result.exit_code == 1
    assert "no team 'Podiatry' on review EHC-0001 (teams: Bristol SALT)" in result.output
    missing = CliRunner().invoke(cli.group, ["received", "EHC-4040", "--team", "SALT"])
    assert "no review for case EHC-4040" in missing.output


def test_team_routed_late_is_asked_at_the_next_stage(
        context: Ctx, settings: HealthReferralsSettings) -> None:
    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[:1])
    on_views_due(event=views_event("request"), ctx=ctx)
    route_all(ctx, views_event("request"), TEAMS[2:3])
    on_views_due(event=views_event("reminder"), ctx=context(now=START - timedelta(weeks=2)))
    sent = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in settings.outbox_dir.glob("*.eml")]
    subjects = sorted((str(m["To"]), str(m["Subject"]).split(":")[0]) for m in sent)
    assert subjects == [("csc.ehcp@bristol.gov.uk", "Advice request"),
                        ("salt.bristol@nhs.net", "Advice request"),
                        ("salt.bristol@nhs.net", "Reminder")]


def test_invitees_are_routed_from_the_event_when_the_engine_did_not_ask(
        context: Ctx, settings: HealthReferralsSettings) -> None:
    # make_event's invitees: a "SALT team", children's social care, parent, school, LA, teacher.
    on_views_due(event=views_event("request"), ctx=context())
    assert set(outbox_messages(settings.outbox_dir)) == {"salt.bristol@nhs.net",
                                                         "csc.ehcp@bristol.gov.uk"}


def test_invitees_routed_by_another_router_keep_their_team(
        context: Ctx, settings: HealthReferralsSettings) -> None:
    invitees = (Invitee(role=Role.HEALTH, team="Hospital SALT", email="salt@hospital.nhs.net",
                        source="routed"),)
    on_views_due(event=views_event("request", invitees=invitees), ctx=context())
    assert set(outbox_messages(settings.outbox_dir)) == {"salt@hospital.nhs.net"}


def test_next_years_review_does_not_inherit_last_years_teams(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    route_all(ctx, views_event("request"), TEAMS[1:2])  # CAMHS, for review 1
    on_views_due(event=views_event("request"), ctx=ctx)
    next_year = views_event("request", key="next-year")
    next_year = next_year.model_copy(update={
        "review": next_year.review.model_copy(update={"id": 2}),
        "invitees": (Invitee(role=Role.HEALTH, name="SALT team"),)})
    on_views_due(event=next_year, ctx=ctx)
    sent = sorted(str(email.message_from_bytes(p.read_bytes(),
                                               policy=email.policy.default)["To"])
                  for p in settings.outbox_dir.glob("*.eml"))
    assert sent == ["camhs.spa@nhs.net", "salt.bristol@nhs.net"]

    # The store's current review is now review 2; explain shows its routes.
    store.reviews["EHC-0001"] = next_year.review
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))
    out = CliRunner().invoke(cli.group, ["explain", "EHC-0001"]).output
    assert "Bristol SALT" in out and "CAMHS" not in out
    store.reviews["EHC-0001"] = next_year.review.model_copy(update={"id": 3})
    out = CliRunner().invoke(cli.group, ["explain", "EHC-0001"]).output
    assert out.startswith("EHC-0001 (an earlier review): 1 invitee(s) routed to 1 team(s)")
    assert "Bristol SALT" in out  # review 2, the latest


def test_no_meeting_sends_nothing(context: Ctx, settings: HealthReferralsSettings) -> None:
    on_views_due(event=views_event("request", meeting=None), ctx=context())
    assert not settings.outbox_dir.exists()


def test_not_configured_raises_not_configured(context: Ctx) -> None:
    with pytest.raises(NotConfigured):
        on_views_due(event=views_event("request"), ctx=context(settings_=HealthReferralsSettings()))


# A real SMTP server on 127.0.0.1 ------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Handler:
    """aiosmtpd handler: keeps messages; answers RCPT for listed recipients with a reply."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse as scripted, accept the rest."""
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Handler, int]]:
    """A running SMTP server on 127.0.0.1 and its handler."""
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(smtp: tuple[Handler, int],
                  settings_factory: Callable[..., HealthReferralsSettings]
                  ) -> HealthReferralsSettings:
    """Settings sending through the local server, plain SMTP."""
    return settings_factory(transport="smtp", smtp_host="127.0.0.1", smtp_port=smtp[1],
                            smtp_security="none", smtp_timeout=5)


def test_requests_arrive_over_smtp_exactly_once(
        context: Ctx, smtp: tuple[Handler, int], smtp_settings: HealthReferralsSettings,
        store: MemoryPluginStore) -> None:
    handler, _port = smtp
    ctx = context(("SLCN",), settings_=smtp_settings)
    store.set_state(area_key("EHC-0001"), {"postcode_district": "BS5"})
    event = views_event("request")
    route_all(ctx, event, TEAMS)
    on_views_due(event=event, ctx=ctx)
    on_views_due(event=event, ctx=ctx)  # retried delivery
    delivered = sorted(rcpts[0] for rcpts, _m in handler.messages)
    assert delivered == sorted({"salt.north@nhs.net", "camhs.spa@nhs.net",
                                "csc.ehcp@bristol.gov.uk", "dco.bristol@nhs.net"})
    _rcpts, message = next(m for m in handler.messages if m[0] == ["salt.north@nhs.net"])
    assert message.get_content_type() == "multipart/alternative"
    assert "Advice due by: Tuesday 24 February 2026" in text_of(message)
    assert "North Bristol SALT is invited" in text_of(message)


def test_smtp_deferral_retries_only_the_teams_not_yet_sent(
        context: Ctx, smtp: tuple[Handler, int], smtp_settings: HealthReferralsSettings,
        store: MemoryPluginStore) -> None:
    handler, _port = smtp
    handler.refuse["csc.ehcp@bristol.gov.uk"] = "451 4.3.0 Mailbox temporarily unavailable"
    ctx = context(settings_=smtp_settings)
    event = views_event("request")
    route_all(ctx, event, TEAMS[:3])
    with pytest.raises(RetryLater):
        on_views_due(event=event, ctx=ctx)
    first = sorted(r[0] for r, _m in handler.messages)
    assert "csc.ehcp@bristol.gov.uk" not in first

    handler.refuse.clear()
    on_views_due(event=event, ctx=ctx)  # the engine's retry
    after = sorted(r[0] for r, _m in handler.messages)
    assert sorted(set(after)) == after  # nobody got the request twice
    assert set(after) == {"salt.bristol@nhs.net", "camhs.spa@nhs.net",
                          "csc.ehcp@bristol.gov.uk"}


def test_smtp_permanent_refusal_is_permanent(
        context: Ctx, smtp: tuple[Handler, int], smtp_settings: HealthReferralsSettings) -> None:
    handler, _port = smtp
    handler.refuse["salt.bristol@nhs.net"] = "550 5.1.1 No such mailbox"
    ctx = context(settings_=smtp_settings)
    event = views_event("request")
    route_all(ctx, event, TEAMS[:1])
    with pytest.raises(PermanentError, match=r"salt\.bristol@nhs\.net"):
        on_views_due(event=event, ctx=ctx)


def test_advice_due_is_two_weeks_before_the_meeting_across_the_clock_change(
        context: Ctx, settings: HealthReferralsSettings) -> None:
    start = datetime(2026, 4, 7, 9, 30, tzinfo=LONDON)  # BST; two weeks earlier is GMT
    ctx = context()
    event = make_event("on_views_due", "request", start=start, join_url=JOIN,
                       occurred_at=start - timedelta(weeks=6))
    route_all(ctx, event, TEAMS[:1])
    on_views_due(event=event, ctx=ctx)
    body = text_of(outbox_messages(settings.outbox_dir)["salt.bristol@nhs.net"])
    assert "Meeting: Tuesday 7 April 2026, 09:30 to 10:30" in body
    assert f"Advice due by: Tuesday {date(2026, 3, 24).day} March 2026" in body


def test_a_team_routed_away_from_is_still_asked_while_it_is_invited(
        context: Ctx, settings: HealthReferralsSettings, store: MemoryPluginStore,
        settings_factory: Callable[..., HealthReferralsSettings]) -> None:
    # SALT is routed to the Bristol team, then (the area recorded) SALT again to the north
    # team: the review now invites both mailboxes, and the route answers told the core that this
    # plugin asks both, so the notices ask neither. Each is asked once, and reminded once.
    ctx = context()
    event = views_event("request")
    first = route_invite(review=event.review, pupil=event.pupil,
                         invitee=Invitee(role=Role.HEALTH, team="SALT"), ctx=ctx)
    store.set_state(area_key("EHC-0001"), {"postcode_district": "BS5"})
    second = route_invite(review=event.review, pupil=event.pupil,
                          invitee=Invitee(role=Role.HEALTH, team="SALT"), ctx=ctx)
    assert first is not None and second is not None
    assert (first.email, second.email) == ("salt.bristol@nhs.net", "salt.north@nhs.net")
    assert first.advice_by == second.advice_by == "health_referrals"
    invited = (Invitee(role=Role.PARENT, email="parent@example.net"),
               Invitee(role=Role.HEALTH, team=first.team, email=first.email, source="routed"),
               Invitee(role=Role.HEALTH, team=second.team, email=second.email,
                       source="routed"))
    on_views_due(event=views_event("request", invitees=invited), ctx=ctx)
    on_views_due(event=views_event("request", invitees=invited), ctx=ctx)  # a retry
    assert set(outbox_messages(settings.outbox_dir)) == {"salt.bristol@nhs.net",
                                                         "salt.north@nhs.net"}
    later = context(now=START - timedelta(weeks=2))
    for _ in range(2):
        on_views_due(event=views_event("reminder", invitees=invited), ctx=later)
    sent = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in settings.outbox_dir.glob("*.eml")]
    assert sorted((str(m["To"]), str(m["Subject"]).split(":")[0]) for m in sent) == [
        ("salt.bristol@nhs.net", "Advice request"), ("salt.bristol@nhs.net", "Reminder"),
        ("salt.north@nhs.net", "Advice request"), ("salt.north@nhs.net", "Reminder")]
    # `explain` shows the team routed away from too, and where its advice stands.
    from ehcbridge_health_referrals.cli import explain_lines

    shown = "\n".join(explain_lines(later, "EHC-0001"))
    assert "<salt.north@nhs.net>" in shown
    assert ("<salt.bristol@nhs.net>  [routed elsewhere since; still asked for advice while the "
            "review invites it]\n    advice: reminded") in shown

    # Next year the north team is routed away from and the core replaces it with the south
    # team: a mailbox no longer invited is not asked.
    outbox = settings.outbox_dir.parent / "next-year"
    ctx = context(settings_=settings_factory(outbox_dir=outbox))
    next_year = views_event("request", key="next-year")
    review = next_year.review.model_copy(update={"id": 2})
    for district in ("BS5", "BS3"):
        store.set_state(area_key("EHC-0001"), {"postcode_district": district})
        route_invite(review=review, pupil=next_year.pupil,
                     invitee=Invitee(role=Role.HEALTH, team="SALT"), ctx=ctx)
    south = Invitee(role=Role.HEALTH, team="South Bristol SALT", email="salt.south@nhs.net",
                    source="routed")
    on_views_due(event=next_year.model_copy(update={"review": review,
                                                    "invitees": (invited[0], south)}), ctx=ctx)
    assert set(outbox_messages(outbox)) == {"salt.south@nhs.net"}


def test_the_setting_is_named_from_the_councils_schools_directory(
        context: Ctx, settings_factory: Any, tmp_path: Path) -> None:
    """With no setting_names of its own, the request names the school from the directory the
    termly lists use (engine.schools_directory), not by URN alone."""
    import dataclasses

    from ehcbridge.settings import EngineSettings

    directory = tmp_path / "schools.csv"
    directory.write_text("urn,name,headteacher_email\n100001,Directory Academy,"
                         "head@directory.example.org\n", encoding="utf-8")
    own = settings_factory(setting_names={})
    ctx = dataclasses.replace(context(settings_=own),
                              engine_settings=EngineSettings(schools_directory=directory))
    event = views_event("request")
    route_all(ctx, event, TEAMS)
    on_views_due(event=event, ctx=ctx)
    body = text_of(outbox_messages(own.outbox_dir)["salt.bristol@nhs.net"])
    assert "Setting: Directory Academy (URN 100001)" in body, [
        line for line in body.splitlines() if line.startswith("Setting")]
