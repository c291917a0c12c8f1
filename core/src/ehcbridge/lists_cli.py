"""``ehcbridge lists`` and ``ehcbridge report``: termly lists, annual-review figures, SEN2 items."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.lists import TermlyLists
    from ehcbridge.terms import Term


def _app_at(now: str | None) -> App:
    from ehcbridge.cli import _parse_now
    from ehcbridge.invocation import get_app

    app = get_app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    return app


def _date(value: str | None, hint: str) -> date | None:
    from ehcbridge.intake import parse_date

    try:
        return parse_date(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint=hint) from None


def _terms(app: App) -> list[Term]:
    from ehcbridge.terms import TermError, from_settings

    try:
        return from_settings(app.settings.engine)[0]
    except (TermError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def resolve_window(app: App, term: str | None, date_from: str | None, date_to: str | None
                   ) -> tuple[str, date, date, Term | None]:
    """The list's title and due-date window from --term, --from/--to, or the next term."""
    from ehcbridge.lists import due_window
    from ehcbridge.terms import TermError, next_term, term_named

    if date_from or date_to:
        if term:
            raise click.UsageError("give --term or --from/--to, not both")
        start, end = _date(date_from, "--from"), _date(date_to, "--to")
        if start is None or end is None:
            raise click.UsageError("--from and --to go together")
        if end < start:
            raise click.BadParameter("is before --from", param_hint="--to")
        return f"Reviews due {start:%d %b %Y} to {end:%d %b %Y}", start, end, None
    terms = _terms(app)
    try:
        chosen = term_named(terms, term) if term else next_term(terms, app.clock.now().date())
    except TermError as exc:
        raise click.BadParameter(str(exc), param_hint="--term") from None
    if chosen is None:
        raise click.UsageError("no term is configured after today: set [[engine.terms]] or "
                               "engine.term_dates_ics, or give --from and --to")
    start, end = due_window(chosen, terms)
    return f"{chosen.name}: reviews due {start:%d %b %Y} to {end:%d %b %Y}", start, end, chosen


def build_lists(app: App, title: str, start: date, end: date, school: str | None
                ) -> TermlyLists:
    """The lists for a window, with the schools directory from settings when there is one."""
    from ehcbridge.invite_rules import load_directory_setting
    from ehcbridge.lists import build
    from ehcbridge.schools import DirectoryError

    try:
        directory = load_directory_setting(app)
    except DirectoryError as exc:
        raise click.ClickException(str(exc)) from None
    return build(app.store, title=title, due_from=start, due_to=end,
                 as_of=app.clock.now().date(), directory=directory, school_urn=school,
                 infant_schools=frozenset(app.settings.engine.infant_schools))


@click.group("lists")
def lists_group() -> None:
    """Termly lists of reviews due, for heads, health and social care (CoP 9.172)."""


@lists_group.command("termly")
@click.option("--term", help="A term named in settings (default: the next term).")
@click.option("--from", "date_from", help="First due date to list (instead of --term).")
@click.option("--to", "date_to", help="Last due date to list.")
@click.option("--school", help="Only this school's list (URN).")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf", "json"]), default="csv",
              show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Write one file per school and the whole list into this folder.")
@click.option("--send", is_flag=True,
              help="Queue each school's list to its head, the whole list to health and social "
                   "care (sent by the engine, once per term and recipient).")
@click.option("--now", "now", help="As if it were this date and time.")
def lists_termly(term: str | None, date_from: str | None, date_to: str | None,
                 school: str | None, fmt: str, out: Path | None, send: bool,
                 now: str | None) -> None:
    """Every review due in a term, school by school, with transfer and PfA reviews marked."""
    from ehcbridge import lists as L

    app = _app_at(now)
    title, start, end, chosen = resolve_window(app, term, date_from, date_to)
    built = build_lists(app, title, start, end, school)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = chosen.slug if chosen else f"{start.isoformat()}-{end.isoformat()}"
        for urn, entries in [*built.by_school.items(), ("all", built.entries)]:
            path = out / f"{stem}-{urn}.{fmt}"
            if fmt == "pdf":
                path.write_bytes(L.to_pdf(f"{title} ({urn})", entries))
            elif fmt == "json":
                path.write_text(json.dumps([e.row() for e in entries], indent=2))
            else:
                path.write_text(L.to_csv(entries), encoding="utf-8")
        click.echo(f"{len(built.by_school) + 1} file(s) written to {out}", err=True)
    elif fmt == "pdf":
        raise click.UsageError("--format pdf needs --out FOLDER")
    elif fmt == "json":
        click.echo(L.to_json(built))
    else:
        click.echo(L.to_csv(built.entries), nl=False)
    s = L.summary(built)
    click.echo(f"{title}: {s['reviews']} review(s) at {s['schools']} school(s); "
               f"{s['phase_transfer']} phase transfer, {s['preparing_for_adulthood']} preparing "
               "for adulthood", err=True)
    for urn in built.missing_schools:
        click.echo(f"warning: school {urn} is not in the schools directory: its list has no "
                   "recipient", err=True)
    if send:
        from ehcbridge.list_notices import queue_lists

        queued = queue_lists(app, built, chosen, start, end)
        click.echo(f"{queued} list notice(s) queued; `ehcbridge run` sends them", err=True)


@click.group("report")
def report_group() -> None:
    """Figures and returns for the LA: annual-review KPIs and the SEN2 review items."""


@report_group.command("kpis")
@click.option("--from", "date_from", help="First due date counted (default: 12 months ago).")
@click.option("--to", "date_to", help="Last due date counted (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--chart", "chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the figures month by month as an SVG file.")
@click.option("--now", "now", help="As if it were this date and time.")
def report_kpis(date_from: str | None, date_to: str | None, as_json: bool, as_csv: bool,
                chart: Path | None, now: str | None) -> None:
    """Annual-review figures per school and overall, from the lifecycle's duty records."""
    from ehcbridge import kpis
    from ehcbridge.timeline import add_months

    app = _app_at(now)
    today = app.clock.now().date()
    end = _date(date_to, "--to") or today
    start = _date(date_from, "--from") or add_months(end, -12)
    if end < start:
        raise click.BadParameter("is before --from", param_hint="--to")
    result = kpis.compute(app.store, start, end, today)
    rows = result.as_rows()
    if chart is not None:
        from ehcbridge.kpi_chart import monthly_svg

        chart.write_text(monthly_svg(app.store, start, end, today), encoding="utf-8")
    if as_json:
        click.echo(json.dumps({"from": start.isoformat(), "to": end.isoformat(),
                               "as_of": today.isoformat(), "figures": rows}, indent=2))
    elif as_csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        _print_kpis(rows, start, end)
    if chart is not None:
        click.echo(f"chart written to {chart}", err=True)


def _print_kpis(rows: list[dict[str, Any]], start: date, end: date) -> None:
    from rich.table import Table

    from ehcbridge.cli import _console

    table = Table("school", "figure", "count", "of", "%",
                  title=f"Annual-review figures, reviews due {start:%d %b %Y} to {end:%d %b %Y}")
    for r in rows:
        pct = "" if r["percent"] is None else f"{r['percent']:.1f}"
        table.add_row(r["school"], r["label"], str(r["count"]), str(r["total"]), pct)
    _console().print(table)


@report_group.command("sen2")
@click.option("--year", type=int, required=True, help="The census year (census date 3rd Thursday "
              "of January), e.g. 2027.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (default: a table).")
def report_sen2(year: int, as_csv: bool) -> None:
    """The SEN2 person-level annual-review items of each plan (meeting date, decision, date)."""
    from ehcbridge.sen2 import census_date, rows_for

    app = _app_at(None)
    if not 2015 <= year <= 2100:
        raise click.BadParameter("is not a census year", param_hint="--year")
    rows = rows_for(app.store, census_date(year))
    if as_csv:
        buf = io.StringIO()
        from ehcbridge.sen2 import COLUMNS

        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
        return
    from rich.table import Table

    from ehcbridge.cli import _console
    from ehcbridge.sen2 import COLUMNS

    table = Table(*COLUMNS, title=f"SEN2 {year} annual-review items (census {census_date(year)})")
    for r in rows:
        table.add_row(*(r[c] for c in COLUMNS))
    _console().print(table)
    click.echo(f"{len(rows)} plan(s)")


def demo_lines(app: App, work: Path, start: date, end: date) -> list[str]:
    """What the demo shows of the LA's side: lists sent, invitees by rule, the figures (and the
    figures written as CSV and SVG into the workspace)."""
    from ehcbridge import kpis
    from ehcbridge.kpi_chart import monthly_svg
    from ehcbridge.list_notices import KIND
    from ehcbridge.store.reports import event_delivery_counts, rule_invitee_counts

    store = app.store
    terms = sorted(k.removeprefix("lists:") for k, _ in store.state_items("_engine", "lists:"))
    sent = event_delivery_counts(store, KIND)
    rules = rule_invitee_counts(store)
    flagged = store.flag_count("la_attendance_suggested")
    result = kpis.compute(store, start, end, end)
    rows = [r for r in result.as_rows() if r["school"] == kpis.OVERALL]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(result.as_rows())
    (work / "kpis.csv").write_text(buf.getvalue(), encoding="utf-8")
    (work / "kpis.svg").write_text(monthly_svg(store, start, end, end), encoding="utf-8")
    figures = [f"  {r['label']}: {r['count']}" if r["measure"] == "reviews_due" else
               f"  {r['label']}: {r['count']} of {r['total']}"
               + (f" ({r['percent']:.1f}%)" if r["percent"] is not None else "") for r in rows]
    return [
        f"Termly lists: queued for {', '.join(terms) or 'no term'}; deliveries "
        + (", ".join(f"{n} {s}" for s, n in sorted(sent.items())) or "none"),
        "Invited by rule: " + (", ".join(f"{n} {k}" for k, n in sorted(rules.items()))
                               or "none") + f"; {flagged} review(s) suggest LA attendance",
        f"Annual-review figures for reviews due {start:%d %b %Y} to {end:%d %b %Y}:",
        *figures,
        f"Figures: {work / 'kpis.csv'} and chart {work / 'kpis.svg'}",
    ]
