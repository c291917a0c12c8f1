"""``ehcbridge erase`` and ``ehcbridge export``: a case's data for the council's data protection
duties: erased once no longer kept, given in full to someone who asks (docs/user-guide.md)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("erase")
@click.argument("cases", nargs=-1)
@click.option("--ceased-before", "ceased", metavar="DATE",
              help="Every case whose plan ceased (the last decision was cease) before DATE.")
@click.option("--due", is_flag=True,
              help="Every case whose plan ceased more than store.keep_ceased_months ago.")
@click.option("--now", "now", help="As if it were this time (YYYY-MM-DDTHH:MM), for --due.")
@click.option("--yes", is_flag=True,
              help="Erase them; without it, only say which cases would be erased.")
@click.option("--wait", "wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS",
              help="How long to wait for a delivery an engine is making for one of the cases.")
def erase(cases: tuple[str, ...], ceased: str | None, due: bool, now: str | None,
          yes: bool, wait: float) -> None:
    """Erase cases from the store: the pupil, the plan, every review with its meetings,
    invitees, duties, notices, files and deliveries, their audit records, and what plugins keep
    about them. Nothing can bring them back; without --yes, only lists them."""
    from ehcbridge.cli import _store_call
    from ehcbridge.intake import parse_date
    from ehcbridge.invocation import get_app
    from ehcbridge.store.erase import ceased_before

    if not cases and ceased is None and not due:
        raise click.UsageError("name the cases to erase, or give --ceased-before DATE or --due")
    if due and ceased is not None:
        raise click.UsageError("give --ceased-before DATE or --due, not both")
    app = get_app()
    if due:
        from ehcbridge.cli import _parse_now
        from ehcbridge.timeline import add_months

        months = app.settings.store.keep_ceased_months
        if months is None:
            raise click.UsageError("--due needs store.keep_ceased_months "
                                   "(EHCBRIDGE_STORE__KEEP_CEASED_MONTHS) to be set")
        today = (_parse_now(now) or app.clock.now()).date()
        ceased = add_months(today, -months).isoformat()
    chosen = set(cases)
    if ceased is not None:
        try:
            day = parse_date(ceased)
        except ValueError as exc:
            raise click.BadParameter(f"{ceased!r} {exc}", param_hint="--ceased-before") from None
        chosen |= set(ceased_before(app.store, day))
    names = sorted(chosen)
    listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    if not names:
        click.echo("No case to erase.")
        return
    if not yes:
        click.echo(f"Would erase {len(names)} case(s): {listed}. Nothing can bring them back: "
                   "run again with --yes to erase them.")
        return
    from ehcbridge.operations import erase_and_forget

    rows, failed = _store_call(erase_and_forget, app, names, ceased, wait=wait)
    for plugin, error in failed:  # the type only: a plugin's message may name a child
        click.echo(f"warning: plugin {plugin} could not forget the cases ({error}); its own "
                   "records may still hold them", err=True)
    click.echo(f"Erased {len(names)} case(s): {listed} ({rows} rows).")


@click.command("export")
@click.argument("case")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON to this file (created 0600) instead of printing it.")
def export(case: str, out: Path | None) -> None:
    """Everything kept about one case, as JSON (for a subject access request): the store's rows
    by table, exactly those 'ehcbridge erase' would delete, files included, and what each
    plugin keeps about it."""
    import json

    from ehcbridge.cli import _store_call
    from ehcbridge.invocation import get_app
    from ehcbridge.operations import create_private_file, export_everything

    app = get_app()
    document, failed = _store_call(export_everything, app, case)
    for plugin, error in failed:  # the type only: a plugin's message may name a child
        click.echo(f"warning: plugin {plugin} could not give what it keeps ({error}); the "
                   "export lacks its records", err=True)
    text = json.dumps(document, indent=2, default=str)
    if out is None:
        click.echo(text)
        return
    create_private_file(out)
    out.write_text(text + "\n", encoding="utf-8")
    tables, held = document["tables"], document["plugins"]
    rows = sum(len(r) for r in tables.values())
    kept = "".join(f", {len(records)} records of the {plugin} plugin"
                   for plugin, records in held.items())
    click.echo(f"{case}: {rows} rows from {len(tables)} tables{kept} written to {out}")
