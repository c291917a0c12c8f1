"""``ehcbridge outlook``: commands of the outlook plugin (thin wrappers over ``service``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


def _app() -> Any:
    """The App of this invocation, honouring ``ehcbridge --config``."""
    root = click.get_current_context().find_root()
    if "config" in root.params:
        # Under the ehcbridge CLI: get_app builds the App from --config (and makes it current);
        # current_app() on its own would fall back to the default settings.
        from ehcbridge.cli import get_app

        return get_app()
    from ehcbridge.app import current_app

    return current_app()


@click.group(name="outlook")
def outlook() -> None:
    """iCalendar invitations and deadline feeds."""


@outlook.command(name="feed")
@click.option("--coordinator", metavar="EMAIL", help="Only reviews this person coordinates.")
@click.option("--team", metavar="NAME", help="Only meetings and deadlines of reviews this team "
              "is invited to.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the .ics here (default: standard output).")
def feed(coordinator: str | None, team: str | None, output: Path | None) -> None:
    """Write a subscribable calendar (METHOD:PUBLISH) of upcoming meetings and deadlines."""
    if coordinator and team:
        raise click.UsageError("give --coordinator or --team, not both")
    from ehcbridge_outlook import service
    from ehcbridge_outlook.settings import OutlookSettings

    ctx = _app().plugin_context("outlook")
    settings = ctx.settings if isinstance(ctx.settings, OutlookSettings) else OutlookSettings()
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
