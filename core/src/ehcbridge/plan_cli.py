"""``ehcbridge plan``: propose a meeting date for every review that has none."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehcbridge.events import DateConstraint

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.planner import PlanResult


def build_plan(app: App, *, today: date, window_from: date | None = None,
               window_to: date | None = None, school_urn: str | None = None) -> PlanResult:
    """Collect reviews without a meeting and the plugins' date constraints, then propose."""
    from ehcbridge import lifecycle, timeline
    from ehcbridge.models import ReviewKind
    from ehcbridge.planner import PlannerOptions, PlanningItem, propose
    from ehcbridge.terms import school_holidays

    engine = app.settings.engine
    policy = app.lifecycle_policy()
    items = []
    for review, pupil in app.store.planning_rows(school_urn):
        transfer = review.kind == ReviewKind.PHASE_TRANSFER
        aim = lifecycle.transfer_window(pupil, review.due_by, today, policy) if transfer else None
        if review.kind == ReviewKind.EARLY:
            aim = (today, today + timedelta(weeks=4), "as soon as possible for an early review")
        constraints: list[DateConstraint] = []
        for outcome in app.plugins.call_each("meeting_constraints", review=review, pupil=pupil,
                                             ctx=app.plugin_context):
            if outcome.error is None and outcome.result:
                constraints.extend(c for c in outcome.result if isinstance(c, DateConstraint))
        items.append(PlanningItem(case_id=review.case_id, coordinator=review.coordinator_email,
                                  review_due=review.due_by,
                                  meeting_latest=timeline.meeting_latest(review.due_by,
                                                                         transfer),
                                  constraints=tuple(constraints), aim=aim))
    hour, minute = (int(p) for p in engine.meeting_start_time.split(":"))
    options = PlannerOptions(
        max_meetings_per_day=engine.max_meetings_per_day,
        school_holidays=school_holidays(engine),
        start_time=time(hour, minute), meeting_minutes=engine.meeting_minutes)
    latest = max((i.meeting_latest for i in items), default=today)
    booked = app.store.booked_meetings(today, max(latest, window_to or latest))
    return propose(items, today=today, options=options, booked=booked, window_from=window_from,
                   window_to=window_to)


def plan_json(result: PlanResult) -> dict[str, Any]:
    """The plan as JSON-friendly data: overdue first, then proposals, then unplannable."""
    return {
        "overdue": [{"case_id": o.case_id, "meeting_latest": o.meeting_latest.isoformat(),
                     "days_overdue": o.days_overdue, "reason": o.reason}
                    for o in result.overdue],
        "proposals": [{"case_id": p.case_id, "start": p.start.isoformat(),
                       "end": p.end.isoformat(), "coordinator": p.coordinator,
                       "reason": p.reason, "aligned_with": p.aligned_with}
                      for p in result.proposals],
        "unplanned": [{"case_id": u.case_id, "meeting_latest": u.meeting_latest.isoformat(),
                       "reason": u.reason} for u in result.unplanned],
    }


def _ics_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _fold(line: str) -> str:
    # RFC 5545 3.1: lines longer than 75 octets are folded with CRLF and a space.
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return line
    parts: list[str] = []
    current = b""
    for ch in line:
        b = ch.encode("utf-8")
        if len(current) + len(b) > (75 if not parts else 74):
            parts.append(current.decode("utf-8"))
            current = b""
        current += b
    parts.append(current.decode("utf-8"))
    return "\r\n ".join(parts)


def write_ics(result: PlanResult, path: Path, now: datetime | None = None) -> None:
    """Write the proposals as a calendar of tentative events (METHOD:PUBLISH, UTC times)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ehcbridge//planner//EN",
             "METHOD:PUBLISH", "CALSCALE:GREGORIAN", "X-WR-CALNAME:Proposed EHCP reviews"]
    for p in result.proposals:
        lines += [
            "BEGIN:VEVENT",
            f"UID:plan-{_ics_text(p.case_id)}@ehcbridge",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{p.start.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{p.end.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"SUMMARY:{_ics_text(f'Proposed EHCP review: {p.case_id}')}",
            f"DESCRIPTION:{_ics_text(p.reason)}",
            "STATUS:TENTATIVE",
            "TRANSP:TRANSPARENT",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    path.write_bytes(("\r\n".join(_fold(line) for line in lines) + "\r\n").encode("utf-8"))
