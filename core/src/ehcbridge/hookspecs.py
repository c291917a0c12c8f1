"""Hook specifications: the whole contract between the ehcbridge core and its plugins.

Only specifications live here. Every hook is documented in ``docs/hooks.md``; a test fails when one
is missing. Lifecycle hooks are called by the engine once per plugin, each call recorded in the
delivery ledger and retried on its own, so one plugin's failure never stops another's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import pluggy

if TYPE_CHECKING:  # types only: importing events here at run time would load pydantic early
    import click
    from pydantic import BaseModel

    from ehcbridge.events import (
        CheckResult,
        DateConstraint,
        HookContext,
        LifecycleEvent,
        OnlineMeeting,
        PupilRecord,
        Route,
    )
    from ehcbridge.models import Invitee, Pupil, Review
    from ehcbridge.notices import Notice, NoticeReceipt
    from ehcbridge.web.app import RouteRegistry

# What the registering hooks receive, for a plugin's annotations (``from ehcbridge.hookspecs
# import RegisterSettings``); strings, so importing them costs nothing at run time.
RegisterSettings: TypeAlias = "Callable[[type[BaseModel]], None]"
"""``register_settings`` receives this: call it with the settings model class."""
ScheduledJob: TypeAlias = "Callable[[HookContext], object]"
"""A periodic job: called with the plugin's context when its cron time comes."""
RegisterSchedule: TypeAlias = "Callable[[str, str, ScheduledJob], None]"
"""``register_schedules`` receives this: ``register(name, cron, func)``."""

hookspec = pluggy.HookspecMarker("ehcbridge")


# Lifecycle hooks -----------------------------------------------------------------------------


@hookspec
def on_review_scheduled(event: LifecycleEvent, ctx: HookContext) -> None:
    """A review meeting was set, moved or cancelled (``event.action``: scheduled, rescheduled,
    cancelled). Fires after the online meeting provider, so ``event.meeting.join_url`` is set for an
    online meeting. Return value ignored; raise to have the delivery retried."""


@hookspec
def on_views_due(event: LifecycleEvent, ctx: HookContext) -> None:
    """A views stage was reached (``event.action``: ``request`` six weeks before the meeting,
    ``reminder`` and ``due`` two weeks before, reg 20(4)). Return value ignored."""


@hookspec
def on_meeting_held(event: LifecycleEvent, ctx: HookContext) -> None:
    """The meeting was recorded as held, or its end time passed (``event.action``: ``recorded``
    or ``ended``). The report is due two weeks later (reg 20(7)). Return value ignored."""


@hookspec
def on_decision(event: LifecycleEvent, ctx: HookContext) -> None:
    """The LA recorded its decision (``event.decision``: maintain, amend or cease; ``event.action``
    ``recorded``), or after the representations decided not to make the proposed amendments
    (``not_amended``, reg 22(4); ``event.reason`` says why). Return value ignored."""


@hookspec
def on_deadline(event: LifecycleEvent, ctx: HookContext) -> None:
    """A duty of the review is close to its due date or past it (``event.action``: ``at_risk``
    some school days before ``event.duty.due``, ``missed`` after it). Fires once per duty and
    action. Return value ignored."""


@hookspec
def deliver_notice(notice: Notice, ctx: HookContext) -> NoticeReceipt | None:
    """Deliver one ``ehcbridge.notices.Notice`` (one recipient, one channel: ``notice.channel``
    is email, letter or sms). Called only on the plugin named for that channel in ``[notices]``,
    once per notice through the delivery ledger; raise to have it retried. Return a
    ``NoticeReceipt`` with the channel's own reference, or None."""


# Provider hooks ------------------------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called when the CLI is built; add click commands or groups to ``cli``. Import vendor
    libraries inside the commands, not at module level, so ``ehcbridge --help`` stays fast."""


@hookspec
def register_settings(register: RegisterSettings) -> None:
    """Called once at load; call ``register(Model)`` with the pydantic model that validates this
    plugin's ``[plugins.<name>]`` section. The validated instance arrives as ``ctx.settings``."""


@hookspec
def startup(ctx: HookContext) -> None:
    """Called once after settings are validated, before any other hook; raise to fail fast (the
    plugin is marked failed with the reason, the others carry on)."""


@hookspec
def check(ctx: HookContext) -> CheckResult | Sequence[CheckResult] | None:
    """Called by ``ehcbridge doctor``; return a ``CheckResult`` or a list of them (status ``ok``,
    ``warning``, ``failed`` or ``not configured``). Raising counts as failed."""


@hookspec
def forget_cases(case_ids: Sequence[str], ctx: HookContext) -> None:
    """These cases were erased from the store (``ehcbridge erase``): delete what the plugin keeps
    about them that the core cannot find by name (state entries keyed otherwise, its files).
    Return value ignored; raising is reported and the erasure stands."""


@hookspec
def export_case(case_id: str, ctx: HookContext) -> list[dict[str, Any]] | None:
    """For ``ehcbridge export`` (a subject access request): return, as JSON-ready dicts, what
    the plugin keeps about this case that the core cannot find by name (what ``forget_cases``
    would delete), or None when it keeps nothing."""


@hookspec
def register_routes(routes: RouteRegistry, ctx: HookContext) -> None:
    """Called when ``ehcbridge serve`` builds its app; call ``routes.add(path, endpoint,
    methods=("GET",), role="viewer")`` to serve an async Starlette endpoint at
    ``/plugins/<name><path>``, for signed-in users of that role (or caseworkers) only."""


@hookspec
def register_schedules(register: RegisterSchedule, ctx: HookContext) -> None:
    """Called when the engine starts its loop; call ``register(name, cron, func)`` for each periodic
    job (``ctx.settings`` says which). ``func(ctx)`` runs in the engine process when the cron
    expression comes due."""


# Lookups (first non-None answer wins) --------------------------------------------------------


@hookspec(firstresult=True)
def provide_online_meeting(event: LifecycleEvent, ctx: HookContext) -> OnlineMeeting | None:
    """Asked before ``on_review_scheduled`` for an online meeting, only of the provider named in
    ``engine.online_meetings``. Create, move or (for ``cancelled``) remove the online meeting and
    return an ``OnlineMeeting`` (provider, join_url, external_id), or None when cancelled."""


@hookspec(firstresult=True)
def route_invite(review: Review, pupil: Pupil, invitee: Invitee, ctx: HookContext
                 ) -> Route | None:
    """Asked for each professional invitee before any plugin sees it; return a ``Route`` (team,
    mailbox, the rule that matched and why) or None to leave the invitee as it is."""


@hookspec(firstresult=True)
def lookup_pupil(upn: str, ctx: HookContext) -> PupilRecord | None:
    """Return a ``PupilRecord`` for the UPN (pupil, contacts, SEN provision, needs) or None."""


@hookspec
def meeting_constraints(review: Review, pupil: Pupil, ctx: HookContext
                        ) -> Sequence[DateConstraint] | None:
    """Asked by the planner for a review without a meeting; return a list of ``DateConstraint``
    (preferred dates with a weight and a reason, or blocked dates)."""
