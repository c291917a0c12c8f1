"""Replies in the council's mailbox (IMAP): iTIP REPLY messages update RSVPs, and mail with
attachments answering one of our notices is recorded as views received for that review.

Only unread messages are read; each is marked read once handled, so a message is handled once.
Messages that are neither are left unread for people to deal with.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import ssl
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import parseaddr

from ehcbridge import NotConfigured, RetryLater
from ehcbridge.events import HookContext

from ehcbridge_outlook.settings import OutlookSettings

PARTSTAT = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentativelyAccepted"}


@dataclass
class MailboxReport:
    """What one pass over the mailbox did (counts only: safe to log)."""

    read: int = 0
    responses: int = 0
    views: int = 0
    left: int = 0


def _connect(settings: OutlookSettings) -> imaplib.IMAP4:
    if not settings.imap_host:
        raise NotConfigured("outlook: imap_host is not set, so no mailbox is read")
    try:
        conn: imaplib.IMAP4
        if settings.imap_security == "tls":
            context = ssl.create_default_context(
                cafile=str(settings.ca_bundle) if settings.ca_bundle else None)
            conn = imaplib.IMAP4_SSL(settings.imap_host, settings.imap_port,
                                     ssl_context=context, timeout=settings.smtp_timeout)
        else:
            conn = imaplib.IMAP4(settings.imap_host, settings.imap_port,
                                 timeout=settings.smtp_timeout)
            if settings.imap_security == "starttls":
                conn.starttls(ssl.create_default_context(
                    cafile=str(settings.ca_bundle) if settings.ca_bundle else None))
        if settings.imap_username and settings.imap_password:
            conn.login(settings.imap_username, settings.imap_password.get_secret_value())
        return conn
    except (OSError, imaplib.IMAP4.error) as exc:
        raise RetryLater(f"IMAP {settings.imap_host}:{settings.imap_port}: "
                         f"{type(exc).__name__}") from None


def _sent_notices(ctx: HookContext) -> dict[str, str]:
    """Message-ID of each notice sent -> its case id (the key starts with the case)."""
    return {str(v.get("message_id", "")).strip(): key.split(":", 1)[1].split("/", 1)[0]
            for key, v in ctx.store.state_items("notice:") if isinstance(v, dict)}


def _reply(ctx: HookContext, message: EmailMessage) -> bool:
    from icalendar import Calendar

    for part in message.walk():
        if part.get_content_type() != "text/calendar":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        cal = Calendar.from_ical(payload)
        if str(cal.get("METHOD", "")).upper() != "REPLY":
            return False
        done = False
        for event in cal.walk("VEVENT"):
            state = ctx.store.get_state(f"rev:{event.get('UID')}") or {}
            case_id = state.get("case_id")
            attendees = event.get("ATTENDEE")
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                if attendee is None or not case_id:
                    continue
                address = str(attendee).split(":", 1)[-1]
                status = PARTSTAT.get(str(attendee.params.get("PARTSTAT", "")).upper())
                if status:
                    ctx.store.set_response(case_id, address, status)
                    done = True
        return done
    return False


def _views(ctx: HookContext, message: EmailMessage, sent: dict[str, str], today: date) -> bool:
    refs = " ".join(str(message.get(h, "")) for h in ("In-Reply-To", "References")).split()
    case_id = next((sent[r] for r in refs if r in sent), None)
    files: list[tuple[str, str, bytes]] = []
    for part in message.iter_attachments():
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            files.append((part.get_filename() or "attachment", part.get_content_type(), data))
    if case_id is None or not files:
        return False
    sender = parseaddr(str(message.get("From", "")))[1]
    ctx.store.record_views(case_id, sender, today, files)
    return True


def read_mailbox(ctx: HookContext, settings: OutlookSettings) -> MailboxReport:
    """Handle every unread message in ``imap_folder`` once."""
    report = MailboxReport()
    conn = _connect(settings)
    try:
        conn.select(settings.imap_folder)
        _typ, data = conn.uid("SEARCH", "UNSEEN")
        uids = data[0].split() if data and data[0] else []
        sent = _sent_notices(ctx)
        today = ctx.clock.now().date()
        for uid in uids:
            _typ, fetched = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if not isinstance(raw, bytes):
                continue
            report.read += 1
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if _reply(ctx, message):
                report.responses += 1
            elif _views(ctx, message, sent, today):
                report.views += 1
            else:
                report.left += 1
                continue  # not ours to handle: stays unread
            conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    except imaplib.IMAP4.error as exc:
        raise RetryLater(f"IMAP: {type(exc).__name__}") from None
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            conn.logout()
    return report
