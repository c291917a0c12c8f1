"""``ehcbridge sims ...``: sync from CTF files or the aggregator API, and show the sync state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from ehcbridge import NotConfigured
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context

if TYPE_CHECKING:  # rich is imported when a command runs, keeping `ehcbridge --help` light
    from rich.console import Console


@click.group(name="sims")
def sims() -> None:
    """Sync pupils, parents and SEN status from the school MIS (CTF files or an MIS API)."""


@sims.command("sync")
@click.option("--file", "files", multiple=True, type=click.Path(path_type=Path),
              help="A CTF XML file to import (repeatable). All are checked before any is used.")
@click.option("--api", is_flag=True, help="Read from the MIS aggregator API.")
@click.option("--dry-run", is_flag=True, help="Show the differences and write nothing.")
@click.option("--relink", is_flag=True,
              help="Send every pupil and parent to the core again, not only the changes "
                   "(after importing new plans).")
@pass_plugin_context("sims")
def sync_command(ctx: HookContext, files: tuple[Path, ...], api: bool, dry_run: bool,
                 relink: bool) -> None:
    """Upsert pupils and contacts and print added, updated, unchanged and left."""
    from rich.console import Console

    code = run_sync(ctx, files, api=api, dry_run=dry_run, relink=relink,
                    console=Console(soft_wrap=True))
    if code:
        raise SystemExit(code)


@sims.command("status")
@pass_plugin_context("sims")
def status_command(ctx: HookContext) -> None:
    """Show the schools synced, when, and how many pupils are on roll."""
    from rich.console import Console

    show_status(ctx, Console(soft_wrap=True))


@contextmanager
def _progress(console: Console, label: str) -> Iterator[Any]:
    """The core's progress display: a bar on a terminal, a plain line now and then otherwise,
    nothing in tests."""
    from ehcbridge.operations import progress  # type: ignore[import-not-found,unused-ignore]

    with progress(label) as bar:
        yield (lambda done, total: bar.update(done, total or None)) if bar.shown else None


def run_sync(
    ctx: HookContext,
    files: Sequence[Path],
    *,
    api: bool,
    dry_run: bool,
    console: Console,
    client: Any = None,
    relink: bool = False,
) -> int:
    """Run a sync and print its report; returns the exit code (0 ok, 1 refused, 2 usage)."""
    from rich.markup import escape

    from .api import ApiError
    from .ctf import CtfError
    from .sync import (
        SUFFIXES,
        SyncReport,
        _settings,
        process_drop_folder,
        sync_api,
        sync_files,
    )

    if files and api:
        console.print("[red]Give either --file or --api, not both.[/red]")
        return 2
    settings = _settings(ctx)
    try:
        if files:
            with _progress(console, "Reading CTF") as progress:
                report = sync_files(files, ctx, dry_run=dry_run, progress=progress,
                                    relink=relink)
        elif api or settings.source == "api":
            with _progress(console, "Reading MIS API") as progress:
                report = sync_api(ctx, dry_run=dry_run, client=client, progress=progress,
                                  relink=relink)
        elif settings.drop_dir is not None and dry_run:
            waiting = sorted(p for p in settings.drop_dir.iterdir()
                             if p.is_file() and p.suffix.lower() in SUFFIXES)
            report = sync_files(waiting, ctx, dry_run=True)
        elif settings.drop_dir is not None:
            report = SyncReport(source="drop folder")
            for result in process_drop_folder(ctx, min_age=0):
                if result.error:
                    console.print(f"[red]refused[/red] {escape(result.error)}", highlight=False)
                elif result.report is not None:
                    report.merge(result.report)
        else:
            console.print("Nothing to sync: give --file CTF.xml or --api "
                          "(or set source or drop_dir in the plugins.sims settings).")
            return 2
    except (CtfError, ApiError, NotConfigured) as exc:
        console.print(f"[red]Refused:[/red] {escape(str(exc))}", highlight=False)
        return 1
    print_report(report, console)
    return 0


def print_report(report: Any, console: Console) -> None:
    """The counts, then each change (on a dry run) and each problem."""
    from rich.markup import escape

    if report.dry_run:
        for change in report.changes:
            console.print(change.describe(), highlight=False, markup=False)
    for problem in report.problems:
        console.print(f"[yellow]{escape(str(problem))}[/yellow]", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning: {escape(warning)}[/yellow]", highlight=False)
    console.print(report.summary(), highlight=False)
    if not report.dry_run and (report.flags_raised or report.invitees_added):
        console.print(f"reviews: {report.flags_raised} flag(s) raised, "
                      f"{report.invitees_added} parent invitee(s) added", highlight=False)


def show_status(ctx: HookContext, console: Console) -> None:
    """Print one line per school and the pupil count."""
    from .sync import PUPIL, SCHOOL, WATERMARK

    pupils = [v for _, v in ctx.store.state_items(PUPIL)]
    on_roll = sum(1 for v in pupils if not v.get("left"))
    console.print(f"{on_roll} pupils on roll, {len(pupils) - on_roll} left", highlight=False)
    for key, school in ctx.store.state_items(SCHOOL):
        when = school.get("synced_at") or school.get("exported_at") or "?"
        console.print(f"{key[len(SCHOOL):]}: {school.get('name') or ''} "
                      f"({school.get('source')}, {when})", highlight=False, markup=False)
    for key, mark in ctx.store.state_items(WATERMARK):
        console.print(f"API school {key[len(WATERMARK):]}: changes read up to {mark}",
                      highlight=False, markup=False)
