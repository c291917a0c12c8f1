"""Notices by email through a real SMTP server: plain and HTML parts, attachments, sent once."""

from __future__ import annotations

from typing import Any

import ehcbridge_outlook
import pytest
from ehcbridge import PermanentError
from ehcbridge.notices import Attachment, Notice, NoticeContact, NoticeDate, NoticeRecipient


def _notice(**extra: Any) -> Notice:
    values: dict[str, Any] = dict(
        key="EHC-1/r1/notice/advice_reminder/abc/email", kind="advice_reminder", channel="email",
        recipient=NoticeRecipient(role="health", name="SALT\nNorth", email="salt@nhs.example.net"),
        subject="Reminder: EHCP annual review of SE (EHC-1) on 10 Mar 2027",
        paragraphs=("This is a reminder <about> the review.", "Second paragraph."),
        questions=("What is working well?",),
        dates=(NoticeDate(label="Meeting", date="Wednesday 10 March 2027"),),
        contacts=(NoticeContact(name="SEN team", detail="sen@council.example.gov.uk"),),
        attachments=(Attachment.inline("salt-advice.pdf", b"%PDF-1.4 advice",
                                       "application/pdf"),),
        links=("https://ehchub.example.gov.uk",), sender="Oakshire SEN Team",
        reply_to="sen@council.example.gov.uk", case_id="EHC-1")
    values.update(extra)
    return Notice.model_validate(values)


def test_a_notice_goes_once_with_plain_html_and_attachment(smtp_server: Any, tools: Any) -> None:
    receipt = ehcbridge_outlook.deliver_notice(notice=_notice(), ctx=tools.ctx())
    again = ehcbridge_outlook.deliver_notice(notice=_notice(), ctx=tools.ctx())  # retry
    assert again.reference == receipt.reference
    [message] = smtp_server.handler.to("salt@nhs.example.net")
    assert str(message["Message-ID"]) == receipt.reference
    assert message["Subject"] == "Reminder: EHCP annual review of SE (EHC-1) on 10 Mar 2027"
    assert message["To"] == "SALT North <salt@nhs.example.net>"
    assert message["Reply-To"] == "sen@council.example.gov.uk"
    assert message["Date"].datetime == tools.ctx().clock.now()  # dated by the engine's clock
    assert "Oakshire SEN Team" in str(message["From"])
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Dear SALT\nNorth," not in plain and "1. What is working well?" in plain
    assert "Meeting: Wednesday 10 March 2027" in plain
    assert "&lt;about&gt;" in html and "<li>What is working well?</li>" in html
    assert '<a href="https://ehchub.example.gov.uk">' in html
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "salt-advice.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_payload(decode=True) == b"%PDF-1.4 advice"


def test_attachments_over_the_limit_are_listed_with_the_hub_link(smtp_server: Any,
                                                                 tools: Any) -> None:
    settings = tools.settings.model_copy(update={"max_message_mb": 0.000001})
    ehcbridge_outlook.deliver_notice(notice=_notice(), ctx=tools.ctx(settings))
    [message] = smtp_server.handler.to("salt@nhs.example.net")
    assert list(message.iter_attachments()) == []
    assert "too large to attach; they are on the EHC Hub: https://ehchub.example.gov.uk" in \
        message.get_body(("plain",)).get_content()


def test_a_refused_recipient_fails_the_notice_permanently(smtp_server: Any, tools: Any) -> None:
    smtp_server.handler.forever["salt@nhs.example.net"] = "550 5.1.1 No such user"
    with pytest.raises(PermanentError, match="550"):
        ehcbridge_outlook.deliver_notice(notice=_notice(), ctx=tools.ctx())
    assert tools.store.get_state("notice:EHC-1/r1/notice/advice_reminder/abc/email") is None


def test_letters_are_not_this_plugins_business(tools: Any) -> None:
    assert ehcbridge_outlook.deliver_notice(notice=_notice(channel="letter"),
                                            ctx=tools.ctx()) is None
