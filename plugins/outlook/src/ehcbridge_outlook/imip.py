"""iMIP (RFC 6047): wrap an iTIP calendar in an email with plain-text and HTML bodies."""

from __future__ import annotations

import functools
import hashlib
import html
import re
from datetime import date, datetime
from email import encoders
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr, parseaddr
from io import BytesIO
from typing import Any

from ehcbridge_outlook.ical import DeadlineEntry, MeetingEntry

# reg 20(2) says who must be *invited*; nobody's attendance is compulsory, a parent's least of all.
ROLE_WORDS = {True: "You are invited as one of the people the SEND Regulations 2014 (reg 20(2)) "
                    "say must be invited to the review; please come if you can.",
              False: "Your attendance is optional."}


# An online meeting whose link is not known yet (no provider, or it is still failing).
LINK_TO_FOLLOW = ("the joining link will follow in an updated invitation before the meeting")


@functools.lru_cache(maxsize=1024)
def address_of(value: str) -> str:
    """The bare address of ``value`` (which may be ``Name <address>``)."""
    return parseaddr(value)[1] or value


def message_id(*parts: object, domain: str) -> str:
    """A Message-ID fixed by ``parts``: a resend after a crash is the same message to receivers."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"<{digest}@{domain or 'ehcbridge.invalid'}>"


def when_text(start: datetime, end: datetime) -> str:
    """``Tuesday 10 March 2026, 10:00 to 11:00 (UK time)``."""
    return (f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M} to {end:%H:%M} (UK time)")


def day_text(day: date) -> str:
    """``Sunday 1 March 2026``."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def meeting_lines(entry: MeetingEntry) -> list[tuple[str, str]]:
    """The facts a reader needs, as (label, value) pairs shared by every body."""
    lines = [("What", entry.summary), ("When", when_text(entry.start, entry.end))]
    if entry.location:
        lines.append(("Where", entry.location))
    if entry.join_url and not entry.cancelled:
        lines.append(("Join online", entry.join_url))
    elif entry.online and not entry.cancelled:
        lines.append(("Join online", LINK_TO_FOLLOW))
    organiser = entry.organiser.name or entry.organiser.email
    lines.append(("Organiser", f"{organiser} <{entry.organiser.email}>"
                  if entry.organiser.name else organiser))
    return lines


def meeting_description(entry: MeetingEntry) -> str:
    """The DESCRIPTION text of a meeting (also the heart of the email body)."""
    lines = ["This is an EHC plan review meeting."]
    if entry.join_url:
        lines.append(f"Join online: {entry.join_url}")
    elif entry.online and not entry.cancelled:
        lines.append(f"Join online: {LINK_TO_FOLLOW}")
    lines.append("Please reply with your calendar (accept or decline) so the organiser knows "
                 "who is coming, and send any advice or views before the meeting.")
    return "\n".join(lines)


def _bodies(intro: str, lines: list[tuple[str, str]], outro: str) -> tuple[str, str]:
    text = "\n".join([intro, "", *(f"{label}: {value}" for label, value in lines), "", outro, ""])
    rows = "".join(
        f"<tr><th align=\"left\">{html.escape(label)}</th><td>"
        + (f"<a href=\"{html.escape(value)}\">{html.escape(value)}</a>"
           if value.startswith(("https://", "http://")) else html.escape(value))
        + "</td></tr>"
        for label, value in lines)
    body = (f"<!DOCTYPE html><html><body><p>{html.escape(intro)}</p><table>{rows}</table>"
            f"<p>{html.escape(outro)}</p></body></html>")
    return text, body


def meeting_bodies(entry: MeetingEntry, recipient_required: bool, *,
                   update: bool, withdrawn: bool = False) -> tuple[str, str]:
    """Plain-text and HTML bodies saying what the calendar part says (``withdrawn``: the
    meeting goes ahead, but this recipient is no longer invited)."""
    if withdrawn:
        intro = ("You are no longer invited to this EHC plan review meeting. "
                 "Please remove it from your calendar.")
        outro = ("The meeting itself goes ahead. If you think you should still be there, "
                 "please reply to the organiser.")
    elif entry.cancelled:
        intro = ("This EHC plan review meeting has been cancelled. "
                 "Please remove it from your calendar.")
        outro = "The organiser will send a new invitation if the review is rearranged."
    else:
        intro = ("The time or place of this EHC plan review meeting has changed."
                 if update else "You are invited to an EHC plan review meeting.")
        outro = (f"{ROLE_WORDS[recipient_required]} Please accept or decline with your calendar "
                 "so the organiser knows who is coming.")
    return _bodies(intro, meeting_lines(entry), outro)


def deadline_bodies(entry: DeadlineEntry) -> tuple[str, str]:
    """Bodies of a deadline reminder."""
    lines = [("What", entry.summary), ("Date", day_text(entry.day))]
    if entry.cancelled:
        return _bodies("This EHC plan review deadline no longer applies.", lines,
                       "It has been removed because the review changed.")
    return _bodies("A deadline in an EHC plan review you coordinate.", lines,
                   "This is an all-day reminder; your calendar will remind you beforehand.")


_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces


class _Policy(Compat32):
    """compat32, with a fast path for a header that is one short line of plain ASCII.

    compat32 folds every header through ``email.header.Header``, about a tenth of a
    millisecond each and a dozen headers a message; a value of printable ASCII words with single
    spaces that fits on one line comes out of it unchanged, so it is written as is (the tests
    compare both ways). Anything else (long, non-ASCII, odd spacing) still takes the full path.
    """

    def _one_line(self, name: str, value: Any) -> str | None:
        if (isinstance(value, str) and _PLAIN.fullmatch(value) is not None
                and len(name) + 2 + len(value) <= (self.max_line_length or 0)):
            return f"{name}: {value}{self.linesep}"
        return None

    def fold(self, name: str, value: str) -> str:
        """``name: value`` as compat32 writes it."""
        line = self._one_line(name, value)
        return line if line is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        """``name: value`` as compat32 writes it, as bytes (what the outbox and SMTP use)."""
        line = self._one_line(name, value)
        if line is not None:
            return line.encode("ascii")
        if isinstance(value, str):  # a long subject, folded once for every recipient
            return _folded(self, name, value)
        return super().fold_binary(name, value)


@functools.lru_cache(maxsize=256)
def _folded(policy: Compat32, name: str, value: str) -> bytes:
    return Compat32.fold_binary(policy, name, value)


POLICY = _Policy()


class _Shared:
    """A part several messages carry: written out once, its bytes reused (see _Generator)."""

    written: dict[str, bytes]


class _SharedMultipart(MIMEMultipart, _Shared):
    pass


class _SharedApplication(MIMEApplication, _Shared):
    pass


class _Generator(BytesGenerator):
    """BytesGenerator that writes a shared part once and then copies its bytes.

    A part is written the same whatever message holds it (same policy, same line ends), so
    the calendar, the bodies and the attachment, most of a message, are not rewritten for every
    recipient."""

    def flatten(self, msg: Message, unixfrom: bool = False, linesep: str | None = None) -> None:
        """Write ``msg``; a shared part from its bytes once written."""
        if not isinstance(msg, _Shared) or unixfrom:
            super().flatten(msg, unixfrom, linesep)
            return
        key = linesep or str(getattr(self.policy, "linesep", "\n"))
        data = msg.written.get(key)
        if data is None:
            buffer = BytesIO()
            BytesGenerator.flatten(self.clone(buffer), msg, False, linesep)  # type: ignore[arg-type]
            data = msg.written[key] = buffer.getvalue()
        self._fp.write(data)  # type: ignore[attr-defined]


class _Message(MIMEMultipart):
    """The top of an iMIP message: written out by _Generator."""

    def as_bytes(self, unixfrom: bool = False, policy: Any = None) -> bytes:
        """The message as bytes, its shared parts copied rather than rewritten."""
        buffer = BytesIO()
        _Generator(buffer, mangle_from_=False, policy=policy or self.policy).flatten(
            self, unixfrom=unixfrom)
        return buffer.getvalue()


class Parts:
    """MIME parts shared by the messages of one delivery, built once instead of per recipient.

    Every recipient of a revision gets the same calendar (a text/calendar part and an
    invite.ics attachment), and the bodies differ only by role and whether it is an update, so
    each distinct part is built once, keyed by its content, and attached to every message that
    carries it (the email package only reads a part when writing a message out).
    """

    def __init__(self) -> None:
        self._calendars: dict[tuple[bytes, str], MIMEApplication] = {}
        self._bodies: dict[tuple[str, str, bytes, str], MIMEMultipart] = {}

    def attachment(self, calendar: bytes, method: str) -> MIMEApplication:
        """The invite.ics attachment of ``calendar``."""
        key = (calendar, method)
        part = self._calendars.get(key)
        if part is None:
            part = self._calendars[key] = _SharedApplication(calendar, "ics", policy=POLICY)
            part.written = {}
            part.add_header("Content-Disposition", "attachment", filename="invite.ics")
        return part

    def body(self, text: str, html_body: str, calendar: bytes, method: str) -> MIMEMultipart:
        """multipart/alternative of the text, the HTML and the text/calendar part."""
        key = (text, html_body, calendar, method)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = _SharedMultipart(
                "alternative", boundary=_boundary(text, html_body, calendar, method),
                policy=POLICY)
            body.written = {}
            body.attach(_text(text, "plain"))
            body.attach(_text(html_body, "html"))
            # Given as bytes in base64 so the CRLF line ends RFC 5545 asks for survive the trip.
            part = MIMEBase("text", "calendar", method=method, charset="UTF-8", policy=POLICY)
            part.set_payload(calendar)
            encoders.encode_base64(part)
            body.attach(part)
        return body


def build_message(*, calendar: bytes, method: str, subject: str, sender: str, to: tuple[str, str],
                  reply_to: str | None, msg_id: str, sent_at: datetime, text: str,
                  html_body: str, parts: Parts | None = None) -> Message:
    """An iMIP message: multipart/mixed of text, HTML and text/calendar parts + invite.ics.

    ``parts`` shares the parts the messages of one delivery have in common (a new set when
    not given)."""
    # Built with the compat32 MIME classes, not EmailMessage: a first run sends tens of
    # thousands of these, and the modern header registry made building one cost ~3.6 ms
    # against ~1.3 ms here. Both parsers read the result the same (see the tests).
    parts = parts or Parts()
    message = _Message("mixed", boundary=_boundary(msg_id), policy=POLICY)
    message.attach(parts.body(text, html_body, calendar, method))
    message.attach(parts.attachment(calendar, method))
    # A line break in a header would be header injection: names and subjects are one line.
    message["Subject"] = _header(" ".join(subject.split()))
    message["From"] = sender
    message["To"] = formataddr((" ".join(to[0].split()), to[1]))
    if reply_to and address_of(reply_to).lower() != address_of(sender).lower():
        message["Reply-To"] = reply_to
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    return message


def _boundary(*content: str | bytes) -> str:
    """A multipart boundary fixed by what the part holds (the same message, the same bytes).

    The email package would search the whole text for a boundary it makes up, compiling a
    regular expression each time; none is needed here. Every part inside is quoted-printable
    or base64, and neither can hold a run of fifteen ``=``; the boundaries of parts differ by
    their digests."""
    digest = hashlib.sha256()
    for item in content:
        digest.update(item if isinstance(item, bytes) else item.encode("utf-8", "replace"))
        digest.update(b"\x1f")
    # The email package's own shape: fifteen "=", nineteen digits, "==".
    return "=" * 15 + f"{int(digest.hexdigest(), 16) % 10 ** 19:019d}" + "=="


def _header(value: str) -> str:
    """``value`` as is when ASCII, else RFC 2047 encoded."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _text(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8", policy=POLICY)
    part.set_payload(body, _UTF8_QP)
    return part


# UTF-8 bodies as quoted-printable: readable in the raw message, unlike base64.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
