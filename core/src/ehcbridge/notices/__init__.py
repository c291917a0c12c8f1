"""Notices: what must reach families and professionals, as channel-neutral content.

The core builds each notice (recipient, subject, paragraphs, questions, dates, contacts,
attachments, the duty it meets) from lifecycle events, with wording from Jinja2 templates a
council can replace. Channel plugins deliver them through the ``deliver_notice`` hook; the core
knows no mail server, printer or messaging service. See docs/notices.md.

Names load on first use, so importing this package (as the CLI does) costs nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ehcbridge.notices.delivery import deliver_now, queue, send
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

_HOMES = {
    **dict.fromkeys(("deliver_now", "queue", "send"), "delivery"),
    **dict.fromkeys(("CHANNELS", "EMAIL", "LETTER", "SMS", "Attachment", "Notice",
                     "NoticeContact", "NoticeDate", "NoticeReceipt", "NoticeRecipient"), "model"),
    "NoticeSettings": "settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(name)
    return getattr(import_module(f"ehcbridge.notices.{home}"), name)


__all__ = ["CHANNELS", "EMAIL", "LETTER", "NOTICE_HOOK", "SMS", "Attachment", "Notice",
           "NoticeContact", "NoticeDate", "NoticeReceipt", "NoticeRecipient", "NoticeSettings",
           "deliver_now", "queue", "send"]
