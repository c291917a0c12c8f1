"""ehcbridge plugin: Zoom meetings with joining links for online review meetings.

Selected with ``engine.online_meetings = "zoom"``. The engine asks ``provide_online_meeting``
before ``on_review_scheduled`` so every invitation carries the Zoom link. httpx and tenacity are
imported lazily (in ``client``/``service``) so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

from ehcbridge import NotConfigured, hookimpl

from ehcbridge_zoom.settings import ZoomSettings

__all__ = ["ZoomSettings"]


def _settings(ctx: Any) -> ZoomSettings:
    """The validated settings, or NotConfigured naming what is missing."""
    settings = getattr(ctx, "settings", None)
    if not isinstance(settings, ZoomSettings):
        raise NotConfigured("zoom: no [plugins.zoom] settings")
    if not settings.configured:
        raise NotConfigured(f"zoom: missing [plugins.zoom] {', '.join(settings.missing)}")
    return settings


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(ZoomSettings)


@hookimpl
def provide_online_meeting(event: Any, ctx: Any) -> Any:
    """Create or move the review's Zoom meeting (OnlineMeeting), or delete it when cancelled."""
    settings = _settings(ctx)
    from ehcbridge_zoom import service

    return service.provide(event, ctx, settings)


@hookimpl
def check(ctx: Any) -> Any:
    """Doctor: the app gets a token and the host exists; "not configured" without credentials."""
    from ehcbridge_zoom import service

    settings = getattr(ctx, "settings", None)
    return service.check(settings if isinstance(settings, ZoomSettings) else None)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add the ``ehcbridge zoom`` command group."""
    from ehcbridge_zoom.cli import zoom

    cli.add_command(zoom)
