"""``ehcbridge notify ...``: read back what Notify did with the notices it was given."""

from __future__ import annotations

import click


@click.group("notify")
def notify() -> None:
    """GOV.UK Notify: email, text messages and posted letters."""


@notify.command("status")
def status_cmd() -> None:
    """Read back the status of every notification not yet final (delivered, failed...)."""
    from ehcbridge import NotConfigured, PermanentError, RetryLater
    from ehcbridge.cli import get_app

    from ehcbridge_notify.service import poll

    app = get_app()
    app.start_plugins()
    try:
        counts = poll(app.plugin_context("notify"))
    except (NotConfigured, PermanentError, RetryLater) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
               or "nothing waiting for a status")
