"""Review actions shared by the ``ehcbridge review`` commands and the ``serve`` webhook.

Each function fills in what the caller left out as the CLI does, then applies the lifecycle
transition (``ehcbridge.transitions``); it raises ``StoreError`` when the review refuses, or
``ReviewInputError`` naming the option at fault. Callers turn those into messages.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ehcbridge.models import Outcome

if TYPE_CHECKING:
    from ehcbridge.app import App


class ReviewInputError(ValueError):
    """A value the caller gave is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def lifecycle_args(app: App) -> dict[str, Any]:
    """What every transition needs from the app: now and the policy."""
    return {"now": app.clock.now(), "policy": app.lifecycle_policy()}


def schedule(app: App, case: str, begin: datetime, finish: datetime | None,
             location: str | None, online: bool | None, expect: str) -> tuple[Any, datetime]:
    """Set or move the meeting; what is not given stays as it was. Returns (change, end)."""
    from ehcbridge import transitions
    from ehcbridge.store import StoreError

    current = app.store.case(case)
    meeting = current.meeting if current.meeting and current.meeting.status == "scheduled" \
        else None
    if expect == "reschedule" and meeting is None:
        raise StoreError(f"{case}: no meeting to reschedule; use 'review schedule'")
    if finish is None:  # keep the meeting's length, or the default one
        finish = begin + (meeting.end - meeting.start if meeting is not None
                          else timedelta(minutes=app.settings.engine.meeting_minutes))
    if finish <= begin:
        raise ReviewInputError("end", "is not after start")
    # What is not given stays as it was: moving a meeting does not make it in person.
    if location is None and meeting is not None:
        location = meeting.location
    if online is None:
        online = meeting.online if meeting is not None else False
    change = transitions.schedule(app.store, case, start=begin, end=finish, location=location,
                                  online=online, organiser=current.review.coordinator_email,
                                  **lifecycle_args(app))
    return change, finish


def decide(app: App, case: str, outcome: Outcome, reason: str, decided_on: date) -> Any:
    """Record the LA's decision and open the next review."""
    from ehcbridge import transitions

    return transitions.decide(app.store, case, outcome=outcome, reason=reason, on=decided_on,
                              **lifecycle_args(app))
