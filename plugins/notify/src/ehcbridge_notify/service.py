"""Notices through GOV.UK Notify: email and text messages from templates, letters as precompiled
PDFs drawn by the letters plugin; each Notify id recorded, its status read back.

State kept (this plugin's own keys):

``notice:<notice key>``
    the Notify id of a notice once Notify accepted it, so a retry never sends it twice.
``sent:<notify id>``
    what to poll: channel, case id and the last status seen, until the status is final.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from ehcbridge import NotConfigured, PermanentError, RetryLater
from ehcbridge.events import HookContext
from ehcbridge.notices import EMAIL, LETTER, SMS, Notice, NoticeReceipt

from ehcbridge_notify.settings import NotifySettings

FAILED_FLAG = "notify_failed"
# Notify's statuses that will not change again.
FINAL = {"delivered", "permanent-failure", "temporary-failure", "technical-failure",
         "received", "validation-failed", "cancelled", "virus-scan-failed"}
FAILED = {"permanent-failure", "temporary-failure", "technical-failure", "validation-failed",
          "virus-scan-failed"}


def settings_of(ctx: HookContext) -> NotifySettings:
    """This plugin's settings, or NotConfigured without an API key."""
    settings = ctx.settings if isinstance(ctx.settings, NotifySettings) else NotifySettings()
    if not settings.configured:
        raise NotConfigured("notify: api_key is not set")
    return settings


def client(settings: NotifySettings) -> Any:
    """The maintained Notify client (imported here: it pulls in requests)."""
    from notifications_python_client.notifications import NotificationsAPIClient

    assert settings.api_key is not None
    return NotificationsAPIClient(  # type: ignore[no-untyped-call]
        settings.api_key.get_secret_value(), base_url=settings.base_url,
        timeout=settings.timeout)


def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the client, turning Notify's errors into the engine's: 429 and 5xx are retried,
    400 and 403 are permanent (named by Notify's own error and message, never the key)."""
    from notifications_python_client.errors import APIError

    try:
        return func(*args, **kwargs)
    except APIError as exc:
        status = exc.status_code
        message = exc.message
        if isinstance(message, list):
            message = "; ".join(f"{e.get('error')}: {e.get('message')}" for e in message
                                if isinstance(e, dict))
        text = f"Notify answered {status}: {message}"
        if status == 429 or status >= 500:
            retry = RetryLater(text)
            response = getattr(exc, "response", None)
            header = response.headers.get("Retry-After") if response is not None else None
            if header is not None:
                from ehcbridge.retry import parse_retry_after

                setattr(retry, "retry_after", parse_retry_after(header))  # noqa: B010
            raise retry from None
        raise PermanentError(text) from None


# GOV.UK Notify's "send a file by email": each file fills a ((placeholder)) of the template with a
# download link; up to 2 MB a file, of the types Notify accepts.
FILE_LIMIT = 2 * 1024 * 1024
FILE_TYPES = frozenset({".csv", ".doc", ".docx", ".jpeg", ".jpg", ".json", ".odt", ".pdf",
                        ".png", ".rtf", ".txt", ".xlsx"})


def file_links(notice: Notice, settings: NotifySettings) -> dict[str, Any] | None:
    """The template's ((file_N)) personalisation carrying the notice's documents, or None
    when they cannot all go that way (too many, too large, a type Notify refuses, no data)."""
    files = notice.attachments
    if not files or len(files) > settings.file_placeholders:
        return None
    for f in files:
        suffix = f".{f.filename.rpartition('.')[2].lower()}" if "." in f.filename else ""
        if f.data_b64 is None or f.size > FILE_LIMIT or suffix not in FILE_TYPES:
            return None
    return {f"file_{n}": {"file": f.data_b64, "filename": f.filename,
                          # Children's data: only someone who knows the reader's address opens it.
                          "confirm_email_before_download": True,
                          "retention_period": f"{settings.file_retention_weeks} weeks"}
            for n, f in enumerate(files, 1)}


def email_body(notice: Notice, linked: bool = False) -> str:
    """The ((body)) of the email template: the notice as text, with its documents listed (or,
    ``linked``, pointed to the download links the template carries)."""
    text = notice.text()
    if notice.attachments and linked:
        text += ("\nThe documents are at the links below. To open one, enter the email address "
                 "this message was sent to.\n")
    elif notice.attachments:
        where = f" on the EHC Hub: {notice.links[0]}" if notice.links else " from us on request"
        text += (f"\nThe documents mentioned are available{where}.\n")
    for link in notice.links:
        text += f"\n{link}\n"
    return text


def email_personalisation(notice: Notice, settings: NotifySettings) -> dict[str, Any]:
    """Everything the email template's placeholders need: subject, body and, when it has them,
    every ((file_N)) (empty where the notice has fewer files or they cannot be sent)."""
    links = file_links(notice, settings)
    values: dict[str, Any] = {f"file_{n}": "" for n in range(1, settings.file_placeholders + 1)}
    values.update(links or {})
    values.update(subject=notice.subject, body=email_body(notice, linked=links is not None))
    return values


def deliver_notice(notice: Notice, ctx: HookContext) -> NoticeReceipt | None:
    """Send one notice through Notify once; returns the Notify id as the reference."""
    settings = settings_of(ctx)
    key = f"notice:{notice.key}"
    done = ctx.store.get_state(key)
    if done is not None:
        return NoticeReceipt(channel=notice.channel, reference=str(done["id"]))
    api = client(settings)
    reference = notice.key  # case, review, kind and a digest of the recipient: no names
    if notice.channel == EMAIL:
        if not settings.email_template_id:
            raise NotConfigured("notify: email_template_id is not set")
        if not notice.recipient.email:
            raise PermanentError(f"{notice.kind}: the recipient has no email address")
        answer = _call(api.send_email_notification, email_address=notice.recipient.email,
                       template_id=settings.email_template_id,
                       personalisation=email_personalisation(notice, settings),
                       reference=reference)
    elif notice.channel == SMS:
        if not settings.sms_template_id:
            raise NotConfigured("notify: sms_template_id is not set")
        if not notice.recipient.mobile:
            raise PermanentError(f"{notice.kind}: the recipient has no mobile number")
        answer = _call(api.send_sms_notification, phone_number=notice.recipient.mobile,
                       template_id=settings.sms_template_id,
                       personalisation={"body": " ".join(notice.paragraphs)},
                       reference=reference)
    elif notice.channel == LETTER:
        if not notice.recipient.address:
            raise PermanentError(f"{notice.kind}: the recipient has no postal address")
        from ehcbridge_letters.pack import letter_bytes
        from ehcbridge_letters.settings import LettersSettings

        pdf = letter_bytes(notice, LettersSettings(), ctx.clock.now().date())
        answer = _call(api.send_precompiled_letter_notification, reference=reference,
                       pdf_file=io.BytesIO(pdf), postage=settings.postage)
    else:
        return None
    notify_id = str(answer["id"])
    ctx.store.set_state_many({
        key: {"id": notify_id},
        f"sent:{notify_id}": {"channel": notice.channel, "case_id": notice.case_id,
                              "kind": notice.kind, "status": "created"}})
    return NoticeReceipt(channel=notice.channel, reference=notify_id)


def held(ctx: HookContext, case_ids: Iterable[str]) -> list[tuple[str, Any]]:
    """The ``sent:<Notify id>`` records of these cases, as (state key, value)."""
    wanted = set(case_ids)
    return [(key, value) for key, value in ctx.store.state_items("sent:")
            if isinstance(value, dict) and value.get("case_id") in wanted]


def forget(ctx: HookContext, case_ids: Iterable[str]) -> int:
    """Delete the ``sent:<Notify id>`` records of these cases; returns how many."""
    doomed = [key for key, _value in held(ctx, case_ids)]
    for key in doomed:
        ctx.store.delete_state(key)
    return len(doomed)


def poll(ctx: HookContext) -> dict[str, int]:
    """Read back the status of every notification not yet final; record it on the notice and
    flag the review when Notify reports a failure. Returns counts by status."""
    settings = settings_of(ctx)
    api = client(settings)
    counts: dict[str, int] = {}
    for state_key, value in ctx.store.state_items("sent:"):
        if value.get("status") in FINAL:
            continue
        notify_id = state_key.split(":", 1)[1]
        answer = _call(api.get_notification_by_id, notify_id)
        status = str(answer.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
        if status == value.get("status"):
            continue
        ctx.store.set_state(state_key, {**value, "status": status})
        ours = "failed" if status in FAILED else "delivered" if status in (
            "delivered", "received") else "sent"
        case_id = ctx.store.set_notice_status(notify_id, ours, f"Notify: {status}")
        if status in FAILED and (case_id or value.get("case_id")):
            ctx.store.flag_review(str(case_id or value.get("case_id")), FAILED_FLAG,
                                  f"{value.get('kind')} by {value.get('channel')}: Notify "
                                  f"reports {status} (notification {notify_id})")
    return counts
