"""``POST /api/v1/events``: signed review events from a council's other systems.

Signed like the common webhook schemes: ``X-Ehcbridge-Timestamp`` (unix seconds) and
``X-Ehcbridge-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``. Each event
calls the same functions as the ``ehcbridge review`` commands and ``import reviews``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ehcbridge.intake import (
    COLUMNS,
    INVITEE_COLUMNS,
    MOVE_COLUMN,
    NO_SETTING_COLUMN,
    IntakeError,
    parse_date,
    parse_datetime,
)
from ehcbridge.models import Invitee, Outcome, Role

if TYPE_CHECKING:
    from ehcbridge.app import App

TOLERANCE_SECONDS = 300
TIMESTAMP_HEADER = "x-ehcbridge-timestamp"
SIGNATURE_HEADER = "x-ehcbridge-signature"
REVIEW_FIELDS = (*COLUMNS, MOVE_COLUMN, NO_SETTING_COLUMN,
                 *(f"{p}_{k}" for p in INVITEE_COLUMNS for k in ("email", "name")))
MEETING_FIELDS = ("case_id", "start", "end", "location", "online")
# Which data fields each type takes, and which of them are required.
TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "review.created": (REVIEW_FIELDS, ("case_id", "forename", "surname", "plan_issued")),
    "review.updated": (REVIEW_FIELDS, ("case_id", "forename", "surname", "plan_issued")),
    "meeting.scheduled": (MEETING_FIELDS, ("case_id", "start")),
    "meeting.rescheduled": (MEETING_FIELDS, ("case_id", "start")),
    "meeting.cancelled": (("case_id", "reason"), ("case_id",)),
    "invitee.added": (("case_id", "role", "email", "name", "team"), ("case_id", "role")),
    "invitee.removed": (("case_id", "email", "name", "role"), ("case_id",)),
    "meeting.held": (("case_id",), ("case_id",)),
    "report.sent": (("case_id", "on"), ("case_id",)),
    "decision.recorded": (("case_id", "outcome", "reason", "on"),
                          ("case_id", "outcome", "reason")),
    # The rest of a review's steps, as the ``ehcbridge review`` commands record them.
    "advice.circulated": (("case_id", "on"), ("case_id",)),
    "review.early": (("case_id", "reason"), ("case_id", "reason")),
    "amendments.proposed": (("case_id", "on"), ("case_id",)),
    "final_plan.issued": (("case_id", "on"), ("case_id",)),
    "amendments.not_made": (("case_id", "reason", "on"), ("case_id", "reason")),
}


class WebhookError(Exception):
    """The request is refused: HTTP ``status``, and the ``field`` at fault when there is one."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        out: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for a body (what a sender computes)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> None:
    """Raise WebhookError(401) unless the body is signed with ``secret`` within 5 minutes."""
    if not secret:
        raise WebhookError(401, "webhook is not configured (serve.webhook_secret is empty)")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise WebhookError(401, "missing X-Ehcbridge-Timestamp or X-Ehcbridge-Signature")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise WebhookError(401, "X-Ehcbridge-Timestamp is not unix seconds") from None
    if abs(now - stamp) > TOLERANCE_SECONDS:
        raise WebhookError(401, "X-Ehcbridge-Timestamp is more than 5 minutes from now")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        raise WebhookError(401, "X-Ehcbridge-Signature does not match")


@dataclass(frozen=True)
class Event:
    """A validated event."""

    id: str
    type: str
    data: dict[str, Any]


def parse(body: bytes) -> Event:
    """Parse and check the envelope and the data fields' names; raise WebhookError(422)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise WebhookError(422, "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise WebhookError(422, "the body is not a JSON object")
    extra = sorted(set(doc) - {"id", "type", "data"})
    if extra:
        raise WebhookError(422, "is not a known field", extra[0])
    event_id = doc.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        raise WebhookError(422, "is required: a string of 1 to 200 characters", "id")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        raise WebhookError(422, "is not one of " + ", ".join(TYPES), "type")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise WebhookError(422, "is required: a JSON object", "data")
    allowed, required = TYPES[kind]
    for key, value in data.items():
        if key not in allowed:
            raise WebhookError(422, f"is not a field of {kind}", f"data.{key}")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise WebhookError(422, "is not a string, number or boolean", f"data.{key}")
    for key in required:
        if data.get(key) in (None, ""):
            raise WebhookError(422, "is required", f"data.{key}")
    return Event(event_id, kind, data)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _get(data: dict[str, Any], key: str) -> str | None:
    return _text(data.get(key)).strip() or None


def _date(data: dict[str, Any], key: str, today: date) -> date:
    value = _get(data, key)
    if value is None:
        return today
    try:
        return parse_date(value)
    except ValueError as exc:
        raise WebhookError(422, str(exc), f"data.{key}") from None


def _datetime(data: dict[str, Any], key: str) -> datetime | None:
    value = _get(data, key)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise WebhookError(422, str(exc), f"data.{key}") from None


def _bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in {"true", "yes", "y", "1"}:
        return True
    if text in {"false", "no", "n", "0"}:
        return False
    raise WebhookError(422, "is not true or false", f"data.{key}")


def _reason(data: dict[str, Any]) -> str:
    value = _text(data.get("reason")).strip()
    if not value:
        raise WebhookError(422, "is required", "data.reason")
    return value


def _choice(data: dict[str, Any], key: str, choices: list[str]) -> str:
    value = _text(data.get(key)).strip()
    if value not in choices:
        raise WebhookError(422, "is not one of " + ", ".join(choices), f"data.{key}")
    return value


def apply(app: App, event: Event) -> None:
    """Carry out the event through the review functions; raise WebhookError on bad input."""
    from ehcbridge import transitions
    from ehcbridge.review_ops import ReviewInputError, decide, lifecycle_args, schedule
    from ehcbridge.store import StoreError

    data, kind = event.data, event.type
    case = _text(data.get("case_id")).strip()
    today = app.clock.now().date()
    try:
        if kind in ("review.created", "review.updated"):
            _review(app, kind, case, data)
        elif kind in ("meeting.scheduled", "meeting.rescheduled"):
            begin = _datetime(data, "start")
            assert begin is not None  # required
            schedule(app, case, begin, _datetime(data, "end"), _get(data, "location"),
                     _bool(data, "online"), kind.split(".")[1].removesuffix("d"))
        elif kind == "meeting.cancelled":
            transitions.cancel(app.store, case, reason=_get(data, "reason") or "",
                               **lifecycle_args(app))
        elif kind == "invitee.added":
            role = _choice(data, "role", [r.value for r in Role])
            email = _get(data, "email")
            if email is not None and "@" not in email:
                raise WebhookError(422, "is not an email address", "data.email")
            app.start_plugins()
            transitions.invite_again(app.store, case, email)  # explicit: lifts a removal
            app.add_invitee(case, Invitee(role=Role(role), email=email, name=_get(data, "name"),
                                          team=_get(data, "team")))
        elif kind == "invitee.removed":
            email, name = _get(data, "email"), _get(data, "name")
            if bool(email) == bool(name):
                raise WebhookError(422, "give email, or name for someone invited by letter only",
                                   "data.email")
            only = _choice(data, "role", [r.value for r in Role]) if _get(data, "role") else None
            try:
                done = transitions.uninvite(app.store, case, email=email, name=name, role=only,
                                            now=app.clock.now())
            except StoreError as exc:
                if str(exc).startswith("unknown case"):
                    raise
                raise WebhookError(422, "is not invited to the current review",
                                   f"data.{exc.field or 'email'}") from None
            from ehcbridge.notices.delivery import after_withdrawal

            after_withdrawal(app, done.review_id, done.duties, done.removed)
        elif kind == "meeting.held":
            transitions.held(app.store, case, **lifecycle_args(app))
        elif kind == "report.sent":
            transitions.report(app.store, case, on=_date(data, "on", today),
                               **lifecycle_args(app))
        elif kind == "decision.recorded":
            outcome = _choice(data, "outcome", [o.value for o in Outcome])
            decide(app, case, Outcome(outcome), _text(data["reason"]), _date(data, "on", today))
        elif kind == "advice.circulated":
            transitions.advice(app.store, case, on=_date(data, "on", today),
                               **lifecycle_args(app))
        elif kind == "review.early":
            transitions.early(app.store, case, reason=_reason(data), now=app.clock.now())
        elif kind == "amendments.proposed":
            transitions.amendments(app.store, case, on=_date(data, "on", today),
                                   **lifecycle_args(app))
        elif kind == "final_plan.issued":
            transitions.final_plan(app.store, case, on=_date(data, "on", today),
                                   **lifecycle_args(app))
        elif kind == "amendments.not_made":
            transitions.not_amended(app.store, case, reason=_reason(data),
                                    on=_date(data, "on", today), **lifecycle_args(app))
    except ReviewInputError as exc:
        raise WebhookError(422, exc.message, f"data.{exc.field}") from None
    except StoreError as exc:
        message = str(exc)
        if message.startswith("unknown case"):
            raise WebhookError(422, "is not a known case", "data.case_id") from None
        raise WebhookError(409, message) from None


def _review(app: App, kind: str, case: str, data: dict[str, Any]) -> None:
    from ehcbridge.store import StoreError

    try:
        app.store.case(case)
        exists = True
    except StoreError:
        exists = False
    if kind == "review.created" and exists:
        raise WebhookError(409, f"{case}: the case exists already; send review.updated")
    if kind == "review.updated" and not exists:
        raise WebhookError(422, "is not a known case", "data.case_id")
    try:
        from ehcbridge.intake import import_row

        import_row(app, {k: _text(v) for k, v in data.items()}, source="event")
    except IntakeError as exc:
        first = exc.problems[0]
        raise WebhookError(422, first.message, f"data.{first.column}") from None
