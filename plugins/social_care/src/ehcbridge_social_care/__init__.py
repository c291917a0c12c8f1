"""ehcbridge plugin: social care review dates (CLA, CP, CIN) to align EHCP review meetings.

Vendor libraries (icalendar, httpx, holidays) are imported by the submodules when needed, so
loading the plugin stays cheap.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ehcbridge import hookimpl

if TYPE_CHECKING:
    from ehcbridge.events import CheckResult, DateConstraint, HookContext

STALE_AFTER = timedelta(days=45)
FEED_CRON = "30 6 * * *"


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    from .settings import SocialCareSettings

    register(SocialCareSettings)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add the ``social-care`` command group."""
    from .cli import social_care

    cli.add_command(social_care)


@hookimpl
def meeting_constraints(review: Any, pupil: Any, ctx: HookContext) -> list[DateConstraint]:
    """Preferred meeting dates: the pupil's known and projected social care review dates."""
    from .alignment import constraints_for

    return constraints_for(review, pupil, ctx)


@hookimpl
def register_schedules(register: Any) -> None:
    """Poll the iCalendar feed daily at 06:30 (does nothing when ``feed_url`` is unset)."""
    register("social_care_feed", FEED_CRON, poll_feed)


def poll_feed(ctx: HookContext) -> None:
    """Import the configured feed, skipping malformed events (an unattended job can't fix them)."""
    from .importers import import_source, settings_of

    settings = settings_of(ctx)
    if not settings.enabled or settings.feed_url is None:
        return
    report = import_source(ctx, settings.feed_url.get_secret_value(), layout="ics",
                           skip_invalid=True)
    # Counts only: rows carry children's identifiers.
    ctx.logger.info("social care feed: %d events, %d matched, %d unmatched, %d invalid",
                    report.rows, report.matched_rows, len(report.unmatched),
                    len(report.skipped_invalid))


@hookimpl
def check(ctx: HookContext) -> list[CheckResult]:
    """Doctor lines: mapping file readable, feed reachable, imports recent."""
    from ehcbridge.events import CheckResult

    from .importers import (
        FeedError,
        ImportRefused,
        describe_source,
        fetch_feed,
        load_mapping,
        parse_ics,
        settings_of,
    )
    from .records import META_KEY, STATE_PREFIX

    settings = settings_of(ctx)
    if not settings.enabled:
        return [CheckResult("social_care", "not configured", "disabled in settings")]
    results: list[CheckResult] = []
    if settings.mapping_file is not None:
        try:
            size = len(load_mapping(settings.mapping_file))
            results.append(CheckResult("social_care mapping", "ok",
                                       f"{settings.mapping_file}: {size} social care ids"))
        except ImportRefused as exc:
            results.append(CheckResult("social_care mapping", "failed",
                                       f"{len(exc.errors)} problem(s), first: {exc.errors[0]}"))
    if settings.feed_url is not None:
        url = settings.feed_url.get_secret_value()
        try:
            rows, errors, _ = parse_ics(fetch_feed(url, timeout=settings.feed_timeout_seconds),
                                        describe_source(url))
            results.append(CheckResult(
                "social_care feed", "warning" if errors else "ok",
                f"{describe_source(url)}: {len(rows)} review events"
                + (f", {len(errors)} malformed" if errors else "")))
        except (FeedError, ImportRefused) as exc:
            results.append(CheckResult("social_care feed", "failed", str(exc).splitlines()[0]))
    meta = ctx.store.get_state(META_KEY)
    children = len(ctx.store.state_items(STATE_PREFIX))
    if meta is None:
        results.append(CheckResult("social_care dates", "not configured",
                                   "nothing imported yet: ehcbridge social-care import FILE"))
    else:
        from datetime import datetime

        last = datetime.fromisoformat(meta["at"])
        status = "warning" if ctx.clock.now() - last > STALE_AFTER else "ok"
        results.append(CheckResult(
            "social_care dates", status,
            f"{children} pupil(s) with social care review dates; last import "
            f"{last:%Y-%m-%d} ({meta.get('layout')})"
            + (" is over 45 days old" if status == "warning" else "")))
    return results
