"""``ehcbridge letters ...``: rebuild a day's print pack."""

from __future__ import annotations

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context


@click.group("letters")
def letters() -> None:
    """Printed letters for recipients without email."""


@letters.command("pack")
@click.option("--date", "day", help="The day whose pack to rebuild (default today).")
@pass_plugin_context("letters")
def pack_cmd(ctx: HookContext, day: str | None) -> None:
    """Rebuild a day's print pack (cover sheet plus every letter of the day)."""
    from ehcbridge.formats import parse_date
    from ehcbridge.plugin_settings import settings_of

    from ehcbridge_letters.pack import build_pack, manifest
    from ehcbridge_letters.settings import LettersSettings

    try:
        when = parse_date(day) if day else ctx.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{day!r} {exc}", param_hint="--date") from None
    settings = settings_of(ctx, LettersSettings, require=False)
    entries = manifest(settings, when)
    if not entries:
        raise click.ClickException(f"no letters for {when:%d %b %Y} in {settings.folder}")
    path = build_pack(settings, when)
    click.echo(f"{path}: {len(entries)} letter(s) for {when:%d %b %Y}")
