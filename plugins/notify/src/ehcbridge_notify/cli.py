"""``ehcbridge notify ...``: read back what Notify did with the notices it was given."""

from __future__ import annotations

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context


@click.group("notify")
def notify() -> None:
    """GOV.UK Notify: email, text messages and posted letters."""


@notify.command("status")
@pass_plugin_context("notify")
def status_cmd(ctx: HookContext) -> None:
    """Read back the status of every notification not yet final (delivered, failed...)."""
    from ehcbridge import PermanentError, RetryLater

    from ehcbridge_notify.service import poll

    try:
        counts = poll(ctx)
    except (PermanentError, RetryLater) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
               or "nothing waiting for a status")
