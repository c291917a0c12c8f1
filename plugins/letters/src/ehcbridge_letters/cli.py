"""``ehcbridge letters ...``: rebuild a day's print pack."""

from __future__ import annotations

import click


@click.group("letters")
def letters() -> None:
    """Printed letters for recipients without email."""


@letters.command("pack")
@click.option("--date", "day", help="The day whose pack to rebuild (default today).")
def pack_cmd(day: str | None) -> None:
    """Rebuild a day's print pack (cover sheet plus every letter of the day)."""
    from ehcbridge.cli import get_app
    from ehcbridge.intake import parse_date

    from ehcbridge_letters.pack import build_pack, manifest
    from ehcbridge_letters.settings import LettersSettings

    app = get_app()
    try:
        when = parse_date(day) if day else app.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{day!r} {exc}", param_hint="--date") from None
    settings = app.plugin_settings("letters")
    if not isinstance(settings, LettersSettings):
        settings = LettersSettings()
    entries = manifest(settings, when)
    if not entries:
        raise click.ClickException(f"no letters for {when:%d %b %Y} in {settings.folder}")
    path = build_pack(settings, when)
    click.echo(f"{path}: {len(entries)} letter(s) for {when:%d %b %Y}")
