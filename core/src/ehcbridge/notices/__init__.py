"""Notices: what must reach families and professionals, as channel-neutral content.

The core builds each notice (recipient, subject, paragraphs, questions, dates, contacts,
attachments, the duty it meets) from lifecycle events, with wording from Jinja2 templates a
council can replace. Channel plugins deliver them through the ``deliver_notice`` hook; the core
knows no mail server, printer or messaging service. See docs/notices.md.
"""

from __future__ import annotations

from typing import Any

from ehcbridge.notices.model import (
    CHANNELS,
    EMAIL,
    LETTER,
    SMS,
    Attachment,
    Notice,
    NoticeContact,
    NoticeDate,
    NoticeReceipt,
    NoticeRecipient,
)
from ehcbridge.notices.settings import NoticeSettings

NOTICE_HOOK = "deliver_notice"


def __getattr__(name: str) -> Any:
    # The delivery functions pull in Jinja2: loaded on first use so `ehcbridge --help` stays fast.
    if name in ("deliver_now", "queue", "send"):
        from ehcbridge.notices import delivery

        return getattr(delivery, name)
    raise AttributeError(name)

__all__ = ["CHANNELS", "EMAIL", "LETTER", "NOTICE_HOOK", "SMS", "Attachment", "Notice",
           "NoticeContact", "NoticeDate", "NoticeReceipt", "NoticeRecipient", "NoticeSettings",
           "deliver_now", "queue", "send"]
