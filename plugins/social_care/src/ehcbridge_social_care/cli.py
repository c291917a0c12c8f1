"""``ehcbridge social-care`` commands: thin wrappers over the importers."""

from __future__ import annotations

from pathlib import Path

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context

from .importers import (
    LAYOUTS,
    FeedError,
    ImportRefused,
    ImportReport,
    import_source,
    load_records,
    normalise_upn,
    settings_of,
)
from .records import KIND_LABELS, format_day, occasions


@click.group("social-care")
def social_care() -> None:
    """Social care review dates (CLA, CP, CIN) for aligning EHCP review meetings."""


@social_care.command("import")
@click.argument("source")
@click.option("--layout", type=click.Choice(LAYOUTS),
              help="Default: from the URL, the .ics extension, the XML root or the header.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of social_care_id,upn,dob or the SSDA903 Header table "
                   "(default: the mapping_file setting).")
@click.option("--dry-run", is_flag=True, help="Read and match, write nothing.")
@click.option("--skip-invalid", is_flag=True,
              help="Skip malformed rows instead of refusing the whole file.")
@pass_plugin_context("social_care")
def import_command(ctx: HookContext, source: str, layout: str | None, mapping: Path | None,
                   dry_run: bool, skip_invalid: bool) -> None:
    """Import review dates: SSDA903 (CSV, .xlsx or XML), CIN census XML, CSV, .ics or a URL."""
    try:
        report = import_source(ctx, source, layout=layout, mapping=mapping, dry_run=dry_run,
                               skip_invalid=skip_invalid)
    except ImportRefused as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        click.echo(f"Refused: {len(exc.errors)} problem(s); nothing was imported "
                   "(fix the file, or use --skip-invalid).", err=True)
        raise SystemExit(1) from None
    except (FeedError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_report(report))


def format_report(report: ImportReport) -> str:
    """The summary printed after an import: counts, then every unmatched or skipped row."""
    verb = "would store" if report.dry_run else "stored"
    lines = [
        f"{report.source} ({report.layout}): {report.rows} read, {report.matched_rows} matched, "
        f"{len(report.unmatched)} unmatched, {len(report.skipped_invalid)} skipped as invalid"
        + (f", {report.ignored} events without a child ignored" if report.ignored else ""),
        f"{verb} dates for {report.children} pupil(s); "
        f"{'would add' if report.dry_run else 'added'} {report.invitees} social care invitee(s)",
    ]
    if report.encoding not in (None, "UTF-8", "UTF-8 with BOM"):
        lines.append(f"read as {report.encoding} text")
    lines += [f"unmatched {u}" for u in report.unmatched]
    lines += [f"skipped {e}" for e in report.skipped_invalid]
    if report.dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines)


@social_care.command("list")
@click.option("--upn", help="Only this pupil.")
@pass_plugin_context("social_care")
def list_command(ctx: HookContext, upn: str | None) -> None:
    """List known and projected social care review dates by UPN."""
    if upn is not None:
        try:
            upn = normalise_upn(upn)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--upn") from None
    click.echo(format_listing(ctx, upn))


def format_listing(ctx: HookContext, upn: str | None = None) -> str:
    """One line per review date: UPN, date, kind, known or projected (with why), team."""
    records = load_records(ctx, upn)
    if not records:
        return "No social care review dates" + (f" for {upn}." if upn else ".")
    projected = settings_of(ctx).projected_reviews
    lines = []
    for record in sorted(records, key=lambda r: r.upn):
        team = ""
        if record.worker is not None:
            team = record.worker.team or record.worker.email or ""
        for o in occasions(record, projected_reviews=projected):
            what = f"projected: {o.basis}" if o.projected else "known"
            lines.append(f"{record.upn}  {format_day(o.day):>11}  {KIND_LABELS[o.kind]:<20}  "
                         f"{what}" + (f"  [{team}]" if team else ""))
    return "\n".join(lines)
