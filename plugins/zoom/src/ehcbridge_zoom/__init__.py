"""ehcbridge plugin: Zoom meetings with joining links for online review meetings.

Selected with ``engine.online_meetings = "zoom"``. The engine asks ``provide_online_meeting``
before ``on_review_scheduled`` so every invitation carries the Zoom link. httpx and tenacity are
imported lazily (in ``client``/``service``) so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl
from ehcbridge.events import HookContext
from ehcbridge.plugin_settings import settings_of

from ehcbridge_zoom.settings import ZoomSettings

__all__ = ["ZoomSettings"]


def _settings(ctx: HookContext) -> ZoomSettings:
    """The validated settings, or NotConfigured naming what is missing."""
    return settings_of(ctx, ZoomSettings)


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    register(ZoomSettings)


def _selected_provider(ctx: Any) -> str | None:
    """``engine.online_meetings`` when the engine passes its settings, else None (unknown)."""
    engine = getattr(ctx, "engine_settings", None)
    value = engine.get("online_meetings") if isinstance(engine, dict) else getattr(
        engine, "online_meetings", None)
    return value if isinstance(value, str) else None


@hookimpl
def provide_online_meeting(event: Any, ctx: Any) -> Any:
    """Create or move the review's Zoom meeting (OnlineMeeting), or delete it when cancelled."""
    selected = _selected_provider(ctx)
    if selected is not None and selected != "zoom":
        return None  # another provider was chosen; never book a second link
    settings = _settings(ctx)
    from ehcbridge_zoom import service

    return service.provide(event, ctx, settings)


@hookimpl
def check(ctx: Any) -> Any:
    """Doctor: the app gets a token and the host exists; "not configured" without credentials."""
    from ehcbridge_zoom import service

    return service.check(settings_of(ctx, ZoomSettings, require=False))


@hookimpl
def register_commands(cli: Any) -> None:
    """Add the ``ehcbridge zoom`` command group."""
    from ehcbridge_zoom.cli import zoom

    cli.add_command(zoom)
