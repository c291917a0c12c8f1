"""Notices by email: one message per notice, plain text and HTML, attachments, sent once.

State key ``notice:<notice key>`` records the Message-ID once the server accepts a notice, so a
retry of the same delivery never sends it twice; the Message-ID is derived from the notice key,
so a message resent after a crash is recognisably the same one.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from ehcbridge import PermanentError
from ehcbridge.events import HookContext
from ehcbridge.notices import EMAIL, Notice, NoticeReceipt

from ehcbridge_outlook.service import Sender, settings_of
from ehcbridge_outlook.settings import OutlookSettings


def message_id(notice: Notice, settings: OutlookSettings) -> str:
    """The same Message-ID on every attempt to send this notice."""
    digest = hashlib.sha256(notice.key.encode()).hexdigest()[:32]
    domain = settings.from_address.rpartition("@")[2] or "localhost"
    return f"<{digest}.notice@{domain}>"


def html_body(notice: Notice, note: str | None = None) -> str:
    """The notice as a simple, accessible HTML page (no images, no remote content)."""
    e = html.escape
    name = notice.recipient.name
    parts = [f"<p>{'Dear ' + e(name) + ',' if name else 'Hello,'}</p>"]
    parts += [f"<p>{e(p)}</p>" for p in notice.paragraphs]
    if notice.questions:
        parts.append("<ol>" + "".join(f"<li>{e(q)}</li>" for q in notice.questions) + "</ol>")
    if notice.dates:
        parts.append("<table>" + "".join(f"<tr><th scope=\"row\" align=\"left\">{e(d.label)}"
                                         f"</th><td>{e(d.date)}</td></tr>"
                                         for d in notice.dates) + "</table>")
    if note:
        parts.append(f"<p><em>{e(note)}</em></p>")
    if notice.attachments:
        parts.append("<p>Attached:</p><ul>" + "".join(f"<li>{e(a.filename)}</li>"
                                                      for a in notice.attachments) + "</ul>")
    if notice.contacts:
        parts.append("<p>Contacts:</p><ul>" + "".join(
            f"<li><strong>{e(c.name)}</strong>: {e(c.detail)}</li>" for c in notice.contacts)
            + "</ul>")
    for link in notice.links:
        parts.append(f"<p><a href=\"{e(link, quote=True)}\">{e(link)}</a></p>")
    if notice.sender:
        parts.append(f"<p>Yours sincerely,<br>{e(notice.sender)}</p>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(notice.subject)}</title></head><body>" + "\n".join(parts)
            + "</body></html>")


def build_message(notice: Notice, settings: OutlookSettings,
                  sent_at: datetime | None = None) -> EmailMessage:
    """The email for one notice; attachments over ``max_message_mb`` are listed, not sent."""
    if not notice.recipient.email:
        raise PermanentError(f"{notice.kind}: the recipient has no email address")
    limit = int(settings.max_message_mb * 1024 * 1024)
    attach = sum(a.size or len(a.data) for a in notice.attachments) <= limit
    note = None if attach or not notice.attachments else (
        "The documents were too large to attach"
        + (f"; they are on the EHC Hub: {notice.links[0]}" if notice.links else
           "; please ask us for copies") + ".")
    message = EmailMessage()
    message["Subject"] = notice.subject
    message["From"] = formataddr((notice.sender, settings.from_address)) if notice.sender \
        else settings.from_address
    # Names come from imports; a stray line break would break the To header.
    name = " ".join((notice.recipient.name or "").split())
    message["To"] = formataddr((name, notice.recipient.email)) if name \
        else notice.recipient.email
    if notice.reply_to:
        message["Reply-To"] = notice.reply_to
    message["Message-ID"] = message_id(notice, settings)
    if sent_at is not None:  # RFC 5322 asks for a Date; receivers file undated mail oddly
        message["Date"] = format_datetime(sent_at)
    text = notice.text()
    if note:
        text = text.rstrip() + "\n\n" + note + "\n"
    for link in notice.links:
        text += f"\n{link}\n"
    message.set_content(text)
    message.add_alternative(html_body(notice, note), subtype="html")
    if attach:
        for a in notice.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            message.add_attachment(a.data, maintype=maintype or "application",
                                   subtype=subtype or "octet-stream", filename=a.filename)
    return message


def deliver_notice(notice: Notice, ctx: HookContext) -> NoticeReceipt | None:
    """Send one email notice once; returns its Message-ID as the reference."""
    if notice.channel != EMAIL:
        return None
    settings = settings_of(ctx)
    key = f"notice:{notice.key}"
    done: dict[str, Any] | None = ctx.store.get_state(key)
    if done is not None:
        return NoticeReceipt(channel=EMAIL, reference=str(done.get("message_id")))
    message = build_message(notice, settings, ctx.clock.now())
    Sender(settings)(message)
    reference = str(message["Message-ID"])
    ctx.store.set_state(key, {"message_id": reference, "at": ctx.clock.now().isoformat()})
    return NoticeReceipt(channel=EMAIL, reference=reference)
