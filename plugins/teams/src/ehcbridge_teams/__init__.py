"""ehcbridge plugin: review meetings as Outlook calendar events with a Microsoft Teams link.

Hook bodies import msal, httpx and tenacity lazily (through ``ehcbridge_teams.meetings``) so that
loading the plugin, and ``ehcbridge --help``, stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ehcbridge import hookimpl, plugin_settings
from ehcbridge.events import CheckResult, HookContext

from ehcbridge_teams.settings import TeamsSettings

if TYPE_CHECKING:
    from ehcbridge.events import LifecycleEvent, OnlineMeeting

    from ehcbridge_teams.meetings import TeamsCalendar

RESPONSES_JOB = "teams-responses"
RESPONSES_CRON = "*/30 * * * *"

__all__ = ["TeamsSettings", "refresh_responses"]


def settings_of(ctx: HookContext) -> TeamsSettings:
    """The validated settings (defaults when the section is absent)."""
    return plugin_settings.settings_of(ctx, TeamsSettings, require=False)


def _require(ctx: HookContext) -> TeamsSettings:
    return plugin_settings.settings_of(ctx, TeamsSettings)


def _with_calendar(ctx: HookContext, settings: TeamsSettings,
                   func: Callable[[TeamsCalendar], Any]) -> Any:
    from ehcbridge_teams.meetings import TeamsCalendar, engine_errors, make_client

    with engine_errors(), make_client(settings, now=ctx.clock.now) as client:
        return func(TeamsCalendar(settings, ctx.store, ctx.logger, client))


def _ours(event: LifecycleEvent, ctx: HookContext) -> str:
    """``keep`` (our live event, keep it in step), ``drop`` (ours, but the meeting is no longer
    a Teams meeting) or ``none``."""
    from ehcbridge_teams.meetings import PROVIDER, state_key

    state = ctx.store.get_state(state_key(event.review.case_id))
    if not state or not state.get("event_id") or state.get("cancelled"):
        return "none"
    meeting = event.meeting
    if meeting is None:
        return "drop"
    if meeting.provider and meeting.provider != PROVIDER:
        return "drop"  # moved to another provider
    still_linked = meeting.provider == PROVIDER and meeting.external_id == state["event_id"]
    if not meeting.online and not still_linked:
        return "drop"  # now in person
    return "keep"


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(TeamsSettings)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add the ``ehcbridge teams`` command group."""
    from ehcbridge_teams.cli import teams

    cli.add_command(teams)


@hookimpl
def check(ctx: HookContext) -> list[CheckResult]:
    """Doctor: a token, the organiser's calendar and Teams allowed for it; never raises."""
    try:
        settings = settings_of(ctx)
    except ValueError as exc:
        return [CheckResult("teams", "failed", f"[plugins.teams] is invalid: {exc}")]
    if not settings.configured:
        missing = ", ".join(settings.missing()) if settings.enabled else "plugin disabled"
        return [CheckResult("teams", "not configured", f"[plugins.teams] needs: {missing}")]
    from ehcbridge_teams.meetings import run_check

    results: list[CheckResult] = run_check(settings)
    return results


@hookimpl
def provide_online_meeting(event: LifecycleEvent, ctx: HookContext) -> OnlineMeeting | None:
    """Create (scheduled), move (rescheduled) or cancel (cancelled) the review's Outlook event."""
    settings = _require(ctx)
    if event.meeting is None or not event.meeting.online:
        if _ours(event, ctx) == "drop":  # moved to an in-person meeting
            from ehcbridge_teams.meetings import MOVED_COMMENT

            _with_calendar(ctx, settings, lambda cal: cal.cancel(event, MOVED_COMMENT))
        return None
    if event.action == "cancelled":
        _with_calendar(ctx, settings, lambda cal: cal.cancel(event))
        return None
    result: OnlineMeeting = _with_calendar(ctx, settings, lambda cal: cal.upsert(event))
    return result


@hookimpl
def on_review_scheduled(event: LifecycleEvent, ctx: HookContext) -> None:
    """Keep an existing event in step (invitee changes, re-fires); idempotent."""
    settings = _require(ctx)
    ours = _ours(event, ctx)
    if ours == "none":
        return
    if ours == "drop":
        from ehcbridge_teams.meetings import MOVED_COMMENT

        _with_calendar(ctx, settings, lambda cal: cal.cancel(event, MOVED_COMMENT))
    elif event.action == "cancelled":
        _with_calendar(ctx, settings, lambda cal: cal.cancel(event))
    else:
        _with_calendar(ctx, settings, lambda cal: cal.upsert(event))


@hookimpl
def on_decision(event: LifecycleEvent, ctx: HookContext) -> None:
    """A cease decision before the meeting cancels the meeting's event."""
    settings = _require(ctx)
    decision = event.decision
    if decision is None or str(decision.outcome.value) != "cease":
        return
    if event.meeting is not None and event.meeting.start <= ctx.clock.now():
        return
    from ehcbridge_teams.meetings import CEASE_COMMENT, state_key

    state = ctx.store.get_state(state_key(event.review.case_id))
    if not state or state.get("cancelled"):
        return
    if event.meeting is None and state.get("start"):
        from datetime import datetime

        if datetime.fromisoformat(state["start"]) <= ctx.clock.now():
            return
    _with_calendar(ctx, settings, lambda cal: cal.cancel(event, CEASE_COMMENT))


def refresh_responses(ctx: HookContext) -> dict[str, int] | None:
    """Scheduled job: store attendee responses for meetings in the next three weeks."""
    settings = settings_of(ctx)
    if not settings.configured:
        return None
    now = ctx.clock.now()
    summary: dict[str, int] = _with_calendar(
        ctx, settings, lambda cal: cal.refresh_responses(now)
    )
    ctx.logger.info("teams: responses refreshed for %d meetings (%d changed, %d declined)",
                    summary["meetings"], summary["changed"], summary["declined"])
    return summary


@hookimpl
def register_schedules(register: Any) -> None:
    """Refresh attendee responses every 30 minutes."""
    register(RESPONSES_JOB, RESPONSES_CRON, refresh_responses)
