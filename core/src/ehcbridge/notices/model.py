"""Channel-neutral notices: who a message is for, what it says and which duty it meets.

A notice carries no format: email, letter and text-message plugins each lay it out their way.
"""

from __future__ import annotations

import base64

from pydantic import Field

from ehcbridge.models import Frozen

EMAIL, LETTER, SMS = "email", "letter", "sms"
CHANNELS = (EMAIL, LETTER, SMS)


class NoticeRecipient(Frozen):
    """Who a notice is addressed to and how they can be reached."""

    role: str  # a models.Role value, or any word for recipients outside a review
    name: str | None = None
    email: str | None = None
    address: tuple[str, ...] = ()  # postal address lines
    mobile: str | None = None
    professional: bool = True  # False for a parent or the young person: they may see names

    @property
    def label(self) -> str:
        """How a listing names this recipient (never the child)."""
        return self.name or self.role.replace("_", " ")


class Attachment(Frozen):
    """A file sent with a notice: kept with the review (``file_id``) or carried inline."""

    filename: str
    content_type: str = "application/octet-stream"
    size: int = 0
    file_id: int | None = None
    data_b64: str | None = None  # filled in for delivery; base64 so the notice stays JSON

    @classmethod
    def inline(cls, filename: str, data: bytes,
               content_type: str = "application/octet-stream") -> Attachment:
        """An attachment carrying its own bytes (for notices not built from a review)."""
        return cls(filename=filename, content_type=content_type, size=len(data),
                   data_b64=base64.b64encode(data).decode("ascii"))

    @property
    def data(self) -> bytes:
        """The file's bytes (present on notices handed to ``deliver_notice``)."""
        if self.data_b64 is None:
            raise ValueError(f"attachment {self.filename} carries no data")
        return base64.b64decode(self.data_b64)


class NoticeContact(Frozen):
    """A service the reader may contact (SENDIASS, mediation, the SEN team...)."""

    name: str
    detail: str


class NoticeDate(Frozen):
    """A date the reader needs, with what it is."""

    label: str
    date: str  # already written out for reading, e.g. "Tuesday 12 January 2027"


class Notice(Frozen):
    """One message to one recipient on one channel, ready for a channel plugin to deliver."""

    key: str  # stable across retries; the same notice is never queued twice
    kind: str  # views_request, advice_reminder, report, decision, meeting, or a plugin's own kind
    channel: str  # email, letter or sms
    recipient: NoticeRecipient
    subject: str
    paragraphs: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    dates: tuple[NoticeDate, ...] = ()
    contacts: tuple[NoticeContact, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    links: tuple[str, ...] = ()
    sender: str = ""  # the council (or setting) the notice comes from
    sender_address: tuple[str, ...] = ()  # for letters: where replies go by post
    reply_to: str | None = None
    case_id: str | None = None
    review_id: int | None = None
    duty: str | None = None  # the lifecycle duty a delivery of this notice meets
    large_print: bool = False
    extra: dict[str, str] = Field(default_factory=dict)

    def text(self) -> str:
        """The notice as plain text (the body of an email, the text of a letter)."""
        lines: list[str] = []
        name = self.recipient.name
        lines.append(f"Dear {name}," if name else "Hello,")
        lines.append("")
        for paragraph in self.paragraphs:
            lines += [paragraph, ""]
        if self.questions:
            for number, question in enumerate(self.questions, 1):
                lines.append(f"{number}. {question}")
            lines.append("")
        if self.dates:
            lines += [f"{d.label}: {d.date}" for d in self.dates]
            lines.append("")
        if self.attachments:
            lines.append("Enclosed:")
            lines += [f"- {a.filename}" for a in self.attachments]
            lines.append("")
        if self.contacts:
            lines.append("Contacts:")
            lines += [f"- {c.name}: {c.detail}" for c in self.contacts]
            lines.append("")
        if self.sender:
            lines += ["Yours sincerely,", self.sender]
        return "\n".join(lines).rstrip() + "\n"


class NoticeReceipt(Frozen):
    """What a channel plugin may return from ``deliver_notice``: its own reference."""

    channel: str
    reference: str | None = None
    detail: str | None = None
    status: str = "sent"  # "sent", or "delivered" when the channel already knows
