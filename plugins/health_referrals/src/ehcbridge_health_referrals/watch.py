"""Statutory watch: were the reg 20(2) invitees invited, with at least two weeks' notice?"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.models import LONDON, MeetingStatus, Role

from .routing import review_token

NOTICE = timedelta(days=14)  # reg 20(3)
RISK_FLAG = "statutory_risk"

_ROLE_WORDS = {
    Role.SETTING: "the setting (head teacher or principal)",
    Role.LA_SEN_OFFICER: "an LA SEN officer",
    Role.HEALTH: "a health care professional",
    Role.SOCIAL_CARE: "a social care officer",
}


def missing_roles(event: LifecycleEvent) -> list[str]:
    """The reg 20(2) invitees with nobody invited, in words. A parent or the young person
    satisfies (a); the setting is not required when the pupil has no school (reg 21)."""
    present = {i.role for i in event.invitees}
    missing = []
    if not present & {Role.PARENT, Role.YOUNG_PERSON}:
        missing.append("the parent or young person")
    for role, words in _ROLE_WORDS.items():
        if role is Role.SETTING and not event.pupil.school_urn:
            continue
        if role not in present:
            missing.append(words)
    return missing


def _day(moment: datetime) -> date:
    return moment.astimezone(LONDON).date()


def check(event: LifecycleEvent, ctx: HookContext) -> list[str]:
    """Check one upcoming meeting and raise, update or clear the ``statutory_risk`` flag.
    Returns the problems found (empty when the meeting is on track)."""
    case_id = event.review.case_id
    state_key = f"notice:{case_id}:{review_token(event.review)}"
    risk_key = f"risk:{case_id}:{review_token(event.review)}"
    meeting = event.meeting
    if (meeting is None or event.action == "cancelled"
            or meeting.status is MeetingStatus.CANCELLED):
        _clear(ctx, case_id, risk_key, "meeting cancelled")
        return []
    start = meeting.start.astimezone(LONDON)
    deadline = start.date() - NOTICE
    notice = ctx.store.get_state(state_key) or {}
    if event.hook == "on_review_scheduled" and notice.get("start") != start.isoformat():
        # Notice of this date and time was given when it was scheduled (or moved).
        notice = {"start": start.isoformat(), "notified_on": _day(event.occurred_at).isoformat()}
        ctx.store.set_state(state_key, notice)
    problems: list[str] = []
    when = f"{start.day} {start:%B %Y}"
    if notice.get("start") == start.isoformat():
        notified = date.fromisoformat(notice["notified_on"])
        days = (start.date() - notified).days
        if days < NOTICE.days:
            problems.append(f"only {days} days' notice of the meeting on {when} "
                            f"(notified {notified.isoformat()}; reg 20(3) requires 14)")
    missing = missing_roles(event)
    if missing:
        late = _day(event.occurred_at) > deadline
        tail = ("too late for two weeks' notice" if late
                else f"invite by {deadline.isoformat()} for two weeks' notice")
        problems.append(f"not invited to the meeting on {when}: {', '.join(missing)} "
                        f"(reg 20(2)); {tail}")
    if problems:
        detail = "; ".join(problems)
        if ctx.store.get_state(risk_key) != detail:
            ctx.store.audit(case_id, "statutory_risk", {"problems": problems,
                                                        "meeting": start.isoformat()})
        ctx.store.flag_review(case_id, RISK_FLAG, detail)
        ctx.store.set_state(risk_key, detail)
    else:
        _clear(ctx, case_id, risk_key, "all reg 20(2) invitees invited with two weeks' notice")
    return problems


def _clear(ctx: HookContext, case_id: str, risk_key: str, why: str) -> None:
    # Only clear a flag this plugin raised; another part of the system may have its own reason.
    if ctx.store.get_state(risk_key) is not None:
        ctx.store.clear_flag(case_id, RISK_FLAG)
        ctx.store.delete_state(risk_key)
        ctx.store.audit(case_id, "statutory_risk_cleared", {"reason": why})
