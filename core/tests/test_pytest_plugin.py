"""The pytest plugin shipped with the core: its fixtures drive a real store and engine."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any

import pytest
from ehcbridge import hookimpl
from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.mail import MailSettings, send
from ehcbridge.models import LONDON
from ehcbridge.pytest_plugin import DEFAULT_NOW, Harness, Outbox
from ehcbridge.testing import plugin_module

ROWS = [{"case_id": "EHC-1", "forename": "Sam", "surname": "Example",
         "plan_issued": "2026-04-01", "meeting_start": "2027-03-10T10:00"}]


def _mailer(sent: list[str]) -> Any:
    @hookimpl
    def on_review_scheduled(event: LifecycleEvent, ctx: HookContext) -> None:
        message = EmailMessage()
        message["To"] = "senco@school.example.org"
        message["Subject"] = f"Meeting {event.review.case_id} {event.action}"
        send(message, MailSettings(from_address="ehcbridge@la.example.gov.uk"))
        sent.append(event.idempotency_key)

    return plugin_module("mailer", on_review_scheduled=on_review_scheduled)


def test_the_fixtures_load_without_a_conftest(ehc: Harness, ehc_now: datetime) -> None:
    assert ehc_now == DEFAULT_NOW == datetime(2026, 1, 5, 9, 0, tzinfo=LONDON)
    assert ehc.store.backend == "sqlite" and ehc.store.case_ids() == []


def test_run_until_quiet_delivers_once_and_the_outbox_captures_mail(ehc: Harness) -> None:
    sent: list[str] = []
    app = ehc.app({"mailer": _mailer(sent)}, now=datetime(2027, 1, 4, 9, 0, tzinfo=LONDON))
    ehc.import_reviews(app, ROWS)
    report = ehc.run_until_quiet(app)
    assert report.attempts["delivered"] == 1
    assert sent == ["EHC-1/r1/m1/scheduled/0"]
    assert ehc.deliveries("mailer") == [("mailer", "on_review_scheduled", "delivered")]
    [message] = ehc.outbox.to("SENCO@school.example.org")
    assert message["Subject"] == "Meeting EHC-1 scheduled"
    ehc.run_until_quiet(app)
    assert len(ehc.outbox) == 1 and sent == ["EHC-1/r1/m1/scheduled/0"]  # nothing redelivered


def test_smtp_is_captured_too(ehc_outbox: Outbox) -> None:
    message = EmailMessage()
    message["To"] = "a@x.org"
    send(message, MailSettings(transport="smtp", smtp_host="mail.invalid",
                               from_address="x@y.org"))
    assert [m["To"] for m in ehc_outbox.messages] == ["a@x.org"]


def test_context_and_event_for_a_unit_test(ehc: Harness) -> None:
    ctx = ehc.context("mine")
    assert ctx.plugin == "mine" and ctx.clock.now() == ehc.now
    ctx.store.set_state("k", 1)
    assert ehc.store.get_state("mine", "k") == 1
    event = ehc.event("on_views_due", "request")
    assert (event.hook, event.action) == ("on_views_due", "request")


def test_settings_come_from_the_test_not_the_environment(
        ehc: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    app = ehc.app(settings={"engine": {"meeting_minutes": 45}})
    assert app.settings.engine.meeting_minutes == 45
