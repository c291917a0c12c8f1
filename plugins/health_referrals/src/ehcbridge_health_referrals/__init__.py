"""ehcbridge plugin: route professional invitations and advice requests to their teams.

Hook bodies import their helpers lazily so ``ehcbridge --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ehcbridge import NotConfigured, hookimpl
from ehcbridge.plugin_settings import settings_of

if TYPE_CHECKING:
    from ehcbridge.events import CheckResult, HookContext

    from .settings import HealthReferralsSettings


def _settings(ctx: HookContext) -> HealthReferralsSettings | None:
    from .settings import HealthReferralsSettings

    try:
        return settings_of(ctx, HealthReferralsSettings)
    except NotConfigured:
        return None


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    from .settings import HealthReferralsSettings

    register(HealthReferralsSettings)


@hookimpl
def startup(ctx: HookContext) -> None:
    """Fail fast on a routing table that cannot be loaded (bad row, ambiguous rules)."""
    from .settings import HealthReferralsSettings

    settings = settings_of(ctx, HealthReferralsSettings, require=False)
    if settings.enabled:
        settings.load_table()


@hookimpl
def check(ctx: HookContext) -> list[CheckResult]:
    """Doctor: is there a routing table and a DCO mailbox, and can mail go out?"""
    from ehcbridge.events import CheckResult

    settings = _settings(ctx)
    if settings is None:
        return [CheckResult("routing", "not configured",
                            "set dco_mailbox (and rules or rules_csv) in "
                            "[plugins.health_referrals]")]
    table = settings.table
    from_csv = sum(1 for o in table.origins if not o.startswith("rules["))
    results = [CheckResult(
        "routing", "ok" if table.rules else "warning",
        f"{len(table.rules)} rule(s) ({from_csv} from CSV); unmatched invitations go to "
        f"{settings.dco_team} <{settings.dco_mailbox}>"
        + ("" if table.rules else "; with no rules every professional goes to the DCO"),
    )]
    if settings.transport == "smtp" and settings.from_address.endswith("@localhost"):
        results.append(CheckResult("mail", "warning",
                                   "from_address is not set: advice requests would come from "
                                   f"{settings.from_address}"))
    else:
        where = (f"outbox folder {settings.outbox_dir}" if settings.transport == "outbox"
                 else f"SMTP {settings.smtp_host}:{settings.smtp_port}")
        results.append(CheckResult("mail", "ok", f"advice requests sent by {where}"))
    return results


@hookimpl
def route_invite(review: Any, pupil: Any, invitee: Any, ctx: HookContext) -> Any:
    """Route a professional invitee to their team's secure mailbox (Route), or the DCO. The
    Route says this plugin asks the team for advice itself (``advice_by``), so the core's notices
    do not ask and chase the same mailbox a second time."""
    settings = _settings(ctx)
    if settings is None:
        return None
    from dataclasses import replace

    from .routing import record_asks, route_for

    route = route_for(invitee, pupil, review, ctx, settings)
    if route is None:
        return None
    record_asks(ctx, review, route)
    return replace(route, advice_by=ctx.plugin)


@hookimpl
def on_review_scheduled(event: Any, ctx: HookContext) -> None:
    """Statutory watch: flag a meeting whose reg 20(2) invitees or notice fall short."""
    from .settings import HealthReferralsSettings

    settings = settings_of(ctx, HealthReferralsSettings, require=False)
    if not settings.enabled:
        raise NotConfigured("health_referrals is disabled")
    from . import watch

    watch.check(event, ctx)


@hookimpl
def on_views_due(event: Any, ctx: HookContext) -> None:
    """Send advice requests (six weeks ahead), one reminder, and flag overdue advice."""
    from . import watch
    from .settings import HealthReferralsSettings

    if settings_of(ctx, HealthReferralsSettings, require=False).enabled:
        watch.check(event, ctx)
    configured = settings_of(ctx, HealthReferralsSettings)
    from .advice import handle_views_due

    handle_views_due(event, ctx, configured)


@hookimpl
def register_schedules(register: Any) -> None:
    """Hourly: bring ``advice_overdue`` up to date with advice recorded since the due stage
    (``review views`` from a team's mailbox, a reply read from a mailbox)."""
    register("health-referrals-overdue", "5 * * * *", _refresh_overdue)


def _refresh_overdue(ctx: HookContext) -> None:
    from .advice import refresh_all_overdue

    if _settings(ctx) is not None:
        refresh_all_overdue(ctx)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add the ``health-referrals`` command group."""
    from .cli import group

    cli.add_command(group)
