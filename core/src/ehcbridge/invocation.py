"""The App of one command-line invocation, and the decorator giving a plugin command its context.

``cli.py`` and plugin commands both come here; this module imports ``ehcbridge.app`` only inside
functions, and ``app.py`` never imports the CLI, so there is no import cycle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from ehcbridge import NotConfigured

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.events import HookContext
    from ehcbridge.plugins import PluginManager

P = ParamSpec("P")
R = TypeVar("R")

_CURRENT: dict[str, Any] = {}


def plugin_manager(ctx: click.Context) -> PluginManager:
    """One PluginManager per invocation, made without reading settings through pydantic."""
    from ehcbridge.configfile import config_path_from
    from ehcbridge.plugins import PluginManager, quick_plugin_sections

    root = ctx.find_root()
    manager: PluginManager | None = root.meta.get("ehcbridge.plugins")
    if manager is None:
        try:
            path = config_path_from(root.params.get("config"))
        except Exception:  # reported properly when a command builds the App
            path = None
        manager = PluginManager(quick_plugin_sections(path), path)
        root.meta["ehcbridge.plugins"] = manager
    return manager


def get_app(ctx: click.Context | None = None) -> App:
    """The App for this invocation, built once from --config and the environment.

    An App (or any object with ``plugin_context``) given as click's ``obj`` is used as it is:
    ``CliRunner().invoke(command, args, obj=app)`` runs a plugin command against a test's App.
    """
    from ehcbridge.app import App
    from ehcbridge.configfile import SettingsError

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is not None and hasattr(root.obj, "plugin_context"):
        given: App = root.obj
        return given
    app: App | None = root.meta.get("ehcbridge.app")
    if app is None:
        from ehcbridge.plugins import PluginLoadError

        try:
            manager = plugin_manager(root)
            app = App(config=root.params.get("config"), plugins=manager)
            manager.plugin_settings = app.settings.plugins
            manager.config_path = app.settings.config_path
            manager.load()
        except (SettingsError, PluginLoadError) as exc:
            raise click.ClickException(str(exc)) from None
        root.meta["ehcbridge.app"] = app
        from ehcbridge.operations import unknown_plugin_sections

        for warning in unknown_plugin_sections(app):
            click.echo(warning, err=True)
        set_current_app(app)
        root.call_on_close(app.close)
    return app


def set_current_app(app: App) -> None:
    """Make ``app`` what :func:`current_app` returns outside a command (done by the demo)."""
    _CURRENT["app"] = app


def current_app() -> App:
    """The App of this process: the command's (honouring --config) or one from the defaults."""
    if click.get_current_context(silent=True) is not None:
        return get_app()
    if "app" not in _CURRENT:
        from ehcbridge.app import App

        _CURRENT["app"] = App()
    app: App = _CURRENT["app"]
    return app


def pass_plugin_context(
    plugin: str,
) -> Callable[[Callable[Concatenate[HookContext, P], R]], Callable[P, R]]:
    """Click decorator: call the command with the plugin's ``HookContext`` as first argument.

    ``NotConfigured`` raised by the command becomes a one-line error (exit status 1).
    """

    def decorate(func: Callable[Concatenate[HookContext, P], R]) -> Callable[P, R]:
        @functools.wraps(func)
        def command(*args: P.args, **kwargs: P.kwargs) -> R:
            context = current_app().plugin_context(plugin)
            try:
                return func(context, *args, **kwargs)
            except NotConfigured as exc:
                raise click.ClickException(str(exc)) from None

        return command

    return decorate
