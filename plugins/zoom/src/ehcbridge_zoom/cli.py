"""``ehcbridge zoom ...`` commands: thin wrappers over ``service`` functions."""

from __future__ import annotations

from typing import Any

import click


def _load_context() -> Any:
    """The zoom plugin's HookContext from the running app."""
    try:
        from ehcbridge.app import current_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:  # the core app is not available in this installation
        raise click.ClickException("the ehcbridge app is not available to load settings") from exc
    return current_app().plugin_context("zoom")


def _configured_settings(ctx: Any) -> Any:
    from ehcbridge_zoom.settings import ZoomSettings

    settings = getattr(ctx, "settings", None)
    if not isinstance(settings, ZoomSettings) or not settings.configured:
        missing = ", ".join(settings.missing) if isinstance(settings, ZoomSettings) else "all"
        raise click.ClickException(f"zoom is not configured (missing [plugins.zoom] {missing})")
    return settings


@click.group()
def zoom() -> None:
    """Zoom meetings for online review meetings."""


@zoom.command("check")
def check_command() -> None:
    """Check the app credentials give a token and the host user exists."""
    from ehcbridge_zoom import service

    settings = getattr(_load_context(), "settings", None)
    results = service.check(settings)
    for result in results:
        line = f"{result.name}: {result.status}"
        click.echo(f"{line} - {result.detail}" if result.detail else line)
    if any(r.status == "failed" for r in results):
        raise SystemExit(1)


@zoom.command("meetings")
def meetings_command() -> None:
    """List the host's upcoming meetings that ehcbridge made (id, start, reference)."""
    from ehcbridge_zoom import service
    from ehcbridge_zoom.client import ZoomClient

    settings = _configured_settings(_load_context())
    with ZoomClient.from_settings(settings) as client:
        rows = service.ehcbridge_meetings(client)
    if not rows:
        click.echo("no upcoming ehcbridge meetings")
    for row in rows:
        click.echo(f"{row['id']}  {row['start_time']}  {row['ref']}")
