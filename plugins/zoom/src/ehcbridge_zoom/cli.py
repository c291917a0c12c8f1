"""``ehcbridge zoom ...`` commands: thin wrappers over ``service`` functions."""

from __future__ import annotations

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context
from ehcbridge.plugin_settings import settings_of

from ehcbridge_zoom.settings import ZoomSettings


@click.group()
def zoom() -> None:
    """Zoom meetings for online review meetings."""


@zoom.command("check")
@pass_plugin_context("zoom")
def check_command(ctx: HookContext) -> None:
    """Check the app credentials give a token and the host user exists."""
    from ehcbridge_zoom import service

    settings = settings_of(ctx, ZoomSettings, require=False)
    results = service.check(settings)
    for result in results:
        line = f"{result.name}: {result.status}"
        click.echo(f"{line} - {result.detail}" if result.detail else line)
    if any(r.status == "failed" for r in results):
        raise SystemExit(1)


@zoom.command("meetings")
@pass_plugin_context("zoom")
def meetings_command(ctx: HookContext) -> None:
    """List the host's upcoming meetings that ehcbridge made (id, start, reference)."""
    from ehcbridge_zoom import service
    from ehcbridge_zoom.client import ZoomClient

    settings = settings_of(ctx, ZoomSettings)
    with ZoomClient.from_settings(settings) as client:
        rows = service.ehcbridge_meetings(client)
    if not rows:
        click.echo("no upcoming ehcbridge meetings")
    for row in rows:
        click.echo(f"{row['id']}  {row['start_time']}  {row['ref']}")
