"""``ehcbridge serve`` and ``ehcbridge users``: the dashboard server and its local accounts.

Registered on the root group by :func:`register`; web libraries are imported inside commands so
``ehcbridge --help`` stays fast.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import click

ROLES = ("viewer", "caseworker")


def _app() -> Any:
    from ehcbridge.invocation import get_app

    return get_app()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--with-engine", is_flag=True,
              help="Also run the engine in this process (instead of beside `ehcbridge run`).")
@click.option("--now", "now", hidden=True, help="Pretend it is this time (previews, tests).")
def serve_cmd(host: str, port: int, with_engine: bool, now: str | None) -> None:
    """Serve the dashboard, the signed webhook, /healthz, /readyz and /metrics."""
    import uvicorn

    from ehcbridge.cli import _parse_now
    from ehcbridge.web.app import create_app

    app = _app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    app.start_plugins()
    web = create_app(app)
    if with_engine:
        start_engine(app, web.state.dashboard.engine_state)
    if not app.settings.serve.webhook_secret.get_secret_value():
        click.echo("note: serve.webhook_secret is empty; POST /api/v1/events refuses every "
                   "event", err=True)
    click.echo(f"ehcbridge serve: http://{host}:{port}/ (sign in with `ehcbridge users add`)",
               err=True)
    uvicorn.run(web, host=host, port=port, log_level="info", proxy_headers=True,
                server_header=False)


def start_engine(app: Any, state: dict[str, Any]) -> threading.Thread:
    """Run the engine in a daemon thread, noting each tick for /readyz and /metrics."""
    import time

    from ehcbridge.engine import Engine
    from ehcbridge.store import utcnow

    engine = Engine(app)

    def loop() -> None:
        while True:
            try:
                engine.run_once()
            except Exception:  # keep serving; the engine logs and the next tick retries
                import logging

                logging.getLogger("ehcbridge.serve").exception("engine tick failed")
            state["last_tick"] = utcnow()
            time.sleep(max(1.0, app.settings.engine.tick_seconds))

    thread = threading.Thread(target=loop, name="ehcbridge-engine", daemon=True)
    thread.start()
    return thread


@click.group("users")
def users_group() -> None:
    """Local accounts of the dashboard (ehcbridge serve)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="viewer: read only; caseworker: may also retry deliveries and record.")
def users_add(name: str, role: str) -> None:
    """Add a user (or change their role and password); the password is read from standard
    input when it is not a terminal, otherwise asked for twice."""
    from ehcbridge.store import utcnow
    from ehcbridge.web.auth import hash_password
    from ehcbridge.web.db import WebStore

    name = name.strip()
    if not name or len(name) > 254:
        raise click.BadParameter("must be 1 to 254 characters", param_hint="NAME")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise click.ClickException("the password must be at least 12 characters")
    WebStore(_app().store).add_user(name, role, hash_password(password), "local", utcnow())
    click.echo(f"user {name} saved with role {role}")


@users_group.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove a user and sign them out everywhere."""
    from ehcbridge.store import StoreError
    from ehcbridge.web.db import WebStore

    try:
        WebStore(_app().store).remove_user(name)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {name} removed")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_list(as_json: bool) -> None:
    """List users with their roles."""
    from ehcbridge.web.db import WebStore

    users = WebStore(_app().store).users()
    if as_json:
        import json

        click.echo(json.dumps([{"name": u.name, "role": u.role, "source": u.source}
                               for u in users], indent=2))
        return
    for u in users:
        click.echo(f"{u.name}\t{u.role}\t{u.source}")
    click.echo(f"{len(users)} user(s)")


def demo_step(app: Any, config: Any, echo: Any) -> None:
    """For ``ehcbridge demo``: a caseworker account and how to open the dashboard (no server)."""
    import secrets

    from ehcbridge.store import utcnow
    from ehcbridge.web.auth import hash_password
    from ehcbridge.web.db import WebStore

    password = secrets.token_urlsafe(12)
    WebStore(app.store).add_user("demo", "caseworker", hash_password(password), "local",
                                 utcnow())
    when = app.clock.now().strftime("%Y-%m-%dT%H:%M")  # the demo's last day
    echo(f"Dashboard: ehcbridge --config {config} serve --now {when}, then open "
         f"http://127.0.0.1:8080/ and sign in as demo with password {password}")


def register(cli: click.Group) -> None:
    """Add ``serve`` and ``users`` to the root command group."""
    cli.add_command(serve_cmd)
    cli.add_command(users_group)
