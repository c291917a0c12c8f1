"""Review actions shared by the ``ehcbridge review`` commands and the ``serve`` webhook.

Each function validates like the CLI, calls the store and raises ``StoreError`` (or
``ValueError`` naming the option) on bad input; callers turn those into messages.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from ehcbridge.models import Outcome

if TYPE_CHECKING:
    from ehcbridge.app import App


class ReviewInputError(ValueError):
    """A value the caller gave is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def schedule(app: App, case: str, begin: datetime, finish: datetime | None,
             location: str | None, online: bool | None, expect: str) -> tuple[str, datetime]:
    """Set or move the meeting; what is not given stays as it was. Returns (action, end)."""
    from ehcbridge.store import StoreError

    current = app.store.case(case)
    meeting = current.meeting if current.meeting and current.meeting.status == "scheduled" \
        else None
    if expect == "reschedule" and meeting is None:
        raise StoreError(f"{case}: no meeting to reschedule; use 'review schedule'")
    if finish is None:
        finish = begin + (meeting.end - meeting.start if meeting is not None
                          else timedelta(minutes=app.settings.engine.meeting_minutes))
    if finish <= begin:
        raise ReviewInputError("end", "is not after start")
    # What is not given stays as it was: moving a meeting does not make it in person.
    if location is None and meeting is not None:
        location = meeting.location
    if online is None:
        online = meeting.online if meeting is not None else False
    action = app.store.schedule_meeting(case, start=begin, end=finish, location=location,
                                        online=online, organiser=current.review.coordinator_email)
    return str(action), finish


def decide(app: App, case: str, outcome: Outcome, reason: str, decided_on: date) -> None:
    """Record the LA's decision and open the next review."""
    current = app.store.case(case)
    next_plan = current.plan.model_copy(update={"last_review_decision": decided_on})
    next_due = app.review_due(next_plan, current.pupil)
    app.store.decide(case, outcome=outcome, reason=reason, decided_on=decided_on,
                     next_review_due=next_due)
