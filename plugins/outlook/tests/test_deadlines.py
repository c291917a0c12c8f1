"""on_deadline over real SMTP: who is told, once each, and what the message says."""

from __future__ import annotations

from datetime import date
from typing import Any

import ehcbridge_outlook
import pytest
from ehcbridge import RetryLater
from ehcbridge.models import Duty
from ehcbridge.testing import make_event

REPORT = Duty(name="report_sent", rule="SEND Regs 2014 reg 20(7)", kind="statutory",
              due=date(2026, 3, 24), owed_by="setting",
              owed_to=("parent", "young_person", "la_sen_officer", "health", "social_care"))


def deadline(action: str) -> Any:
    return make_event("on_deadline", action, duty=REPORT,
                      key=f"EHC-0001/r1/deadline/report_sent/{action}")


def test_at_risk_tells_the_coordinator_once(tools: Any, smtp_server: Any) -> None:
    event = deadline("at_risk")
    ehcbridge_outlook.on_deadline(event, tools.ctx())
    ehcbridge_outlook.on_deadline(event, tools.ctx())  # a retried delivery sends nothing more
    messages = smtp_server.handler.messages
    assert [m.rcpt_tos for m in messages] == [["senco@school.example.org"]]
    msg = messages[0].message
    assert "report sent is at risk" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "SEND Regs 2014 reg 20(7)" in body and "Tuesday 24 March 2026" in body
    assert "EHC-0001 (SE)" in body and "Sam" not in body and "Example" not in body


def test_missed_tells_the_coordinator_and_the_la_sen_officer_once_each(
        tools: Any, smtp_server: Any) -> None:
    smtp_server.handler.scripted["sen@la.example.gov.uk"] = ["451 4.3.0 try later"]
    event = deadline("missed")
    with pytest.raises(RetryLater):  # the engine retries the delivery
        ehcbridge_outlook.on_deadline(event, tools.ctx(tools.settings.model_copy(
            update={"send_attempts": 1})))
    ehcbridge_outlook.on_deadline(event, tools.ctx())  # the coordinator is not mailed twice
    got = sorted(a for m in smtp_server.handler.messages for a in m.rcpt_tos)
    assert got == ["sen@la.example.gov.uk", "senco@school.example.org"]
    for m in smtp_server.handler.messages:
        assert "was missed" in m.message["Subject"]


def test_the_message_names_the_command_that_records_that_duty(
        tools: Any, smtp_server: Any) -> None:
    """A missed decision points the LA officer to 'review decide', not to the report command
    every message once suggested; who owes it is said in words."""
    decision = Duty(name="decision_made", rule="SEND Regs 2014 reg 20(10)", kind="statutory",
                    due=date(2026, 3, 24), owed_by="la", owed_to=("parent", "young_person"))
    ehcbridge_outlook.on_deadline(make_event(
        "on_deadline", "missed", duty=decision, key="EHC-0001/r1/deadline/decision_made/missed"),
        tools.ctx())
    body = smtp_server.handler.messages[0].message.get_body(("plain",)).get_content()
    assert "'ehcbridge review decide EHC-0001 maintain|amend|cease --reason TEXT --on DATE'" \
        in body
    assert "review report" not in body
    assert "Owed by: the local authority" in body
