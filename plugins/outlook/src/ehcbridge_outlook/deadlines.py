"""``on_deadline``: tell people a review duty is at risk or was missed, by plain email.

At risk: the review's coordinator. Missed: the coordinator and the LA SEN officer(s) invited to
the review. Each person gets one message per duty and action: the state key
``deadline:<idempotency key>:<address>`` is written as soon as the server accepts it, so a
retried delivery skips whoever already has it (and a resend after a crash carries the same
Message-ID). The message names the duty, its rule and its date, and the child only by initials.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.lifecycle import OWED_BY_WORDS, record_command
from ehcbridge.models import Role

from ehcbridge_outlook import imip
from ehcbridge_outlook.service import Sender, Sleep, settings_of

WORDS = {"at_risk": "is at risk", "missed": "was missed"}


def recipients(event: LifecycleEvent) -> list[str]:
    """Who hears of it: the coordinator; when missed, the LA SEN officers too (one each)."""
    found: list[str] = []
    if event.review.coordinator_email:
        found.append(event.review.coordinator_email)
    if event.action == "missed":
        found += [i.email for i in event.invitees
                  if i.role == Role.LA_SEN_OFFICER and i.email]
    unique: dict[str, str] = {}
    for address in found:
        unique.setdefault(address.strip().lower(), address.strip())
    return list(unique.values())


def message(event: LifecycleEvent, to: str, sender: str, now: Any) -> EmailMessage:
    """The email: which duty, its rule, its due date, who owes it, and where to look."""
    duty = event.duty
    assert duty is not None
    case = event.plan.case_id
    due = f"{duty.due:%A %d %B %Y}" if duty.due else "no date"
    what = WORDS.get(event.action, event.action)
    lines = [
        ("Review", f"{case} ({event.pupil.initials}), due by {event.review.due_by:%d %B %Y}"),
        ("Duty", duty.name.replace("_", " ")),
        ("Rule", duty.rule),
        ("Due", due),
        ("Owed by", OWED_BY_WORDS.get(duty.owed_by, duty.owed_by)),
        ("Owed to", ", ".join(r.replace("_", " ") for r in duty.owed_to)),
    ]
    intro = (f"A duty of an EHC plan review {what}." if event.action != "at_risk" else
             f"A duty of an EHC plan review {what}: it is due in a few school days and has not "
             "been recorded as done.")
    command = record_command(duty.name, case)
    outro = f"See 'ehcbridge review show {case}'." + (
        f" Record it when done: '{command}'." if command else "")
    text, html_body = imip._bodies(intro, lines, outro)
    msg = EmailMessage()
    subject = f"EHC review {case}: {duty.name.replace('_', ' ')} {what} (due {duty.due})"
    msg["Subject"] = " ".join(subject.split())
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = imip.message_id(event.idempotency_key, to.lower(),
                                        domain=imip.address_of(sender).rpartition("@")[2])
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return msg


def on_deadline(event: LifecycleEvent, ctx: HookContext, sleep: Sleep = time.sleep) -> None:
    """Email the coordinator (at risk) or the coordinator and LA SEN officer (missed), once."""
    if event.duty is None:
        return
    settings = settings_of(ctx)
    send = Sender(settings, sleep)
    people = recipients(event)
    if not people:
        ctx.logger.warning("%s: %s %s but the review has no coordinator to tell",
                           event.plan.case_id, event.duty.name, event.action)
        return
    sent = 0
    for address in people:
        key = f"deadline:{event.idempotency_key}:{address.lower()}"
        if ctx.store.get_state(key) is not None:
            continue
        send(message(event, address, settings.from_address, ctx.clock.now()))
        ctx.store.set_state(key, "sent")
        sent += 1
    ctx.logger.info("%s: %s %s, %d message(s) sent", event.plan.case_id, event.duty.name,
                    event.action, sent)
