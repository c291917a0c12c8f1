"""``ehcbridge outlook``: commands of the outlook plugin (thin wrappers over ``service``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context


@click.group(name="outlook")
def outlook() -> None:
    """iCalendar invitations and deadline feeds."""


@outlook.command(name="feed")
@click.option("--coordinator", metavar="EMAIL", help="Only reviews this person coordinates.")
@click.option("--team", metavar="NAME", help="Only meetings and deadlines of reviews this team "
              "is invited to.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the .ics here (default: standard output).")
@pass_plugin_context("outlook")
def feed(ctx: HookContext, coordinator: str | None, team: str | None,
         output: Path | None) -> None:
    """Write a subscribable calendar (METHOD:PUBLISH) of upcoming meetings and deadlines."""
    if coordinator and team:
        raise click.UsageError("give --coordinator or --team, not both")
    from ehcbridge.plugin_settings import settings_of

    from ehcbridge_outlook import service
    from ehcbridge_outlook.settings import OutlookSettings

    settings = settings_of(ctx, OutlookSettings, require=False)
    data = service.build_feed(
        ctx.store.state_items("feed:"), now=ctx.clock.now(), coordinator=coordinator, team=team,
        alarm_days_before=settings.alarm_days_before if settings.reminders else None)
    if output is None:
        sys.stdout.buffer.write(data)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(output)  # a subscriber polling the file never reads half of it
    click.echo(f"wrote {output}", err=True)
