"""``ehcbridge teams ...`` commands: thin wrappers over functions tested directly."""

from __future__ import annotations

import json
import sys

import click
from ehcbridge.events import CheckResult, HookContext
from ehcbridge.invocation import pass_plugin_context

_MARKS = {"ok": "ok", "warning": "warning", "failed": "FAILED", "not configured": "not configured"}


def format_results(results: list[CheckResult]) -> str:
    """One line per check: status, name, detail."""
    return "\n".join(f"[{_MARKS.get(r.status, r.status)}] {r.name}: {r.detail}" for r in results)


def exit_code(results: list[CheckResult]) -> int:
    """1 when any check failed or the plugin is not configured, else 0."""
    return 1 if any(r.status in {"failed", "not configured"} for r in results) else 0


@click.group("teams")
def teams() -> None:
    """Microsoft Teams meetings in Outlook calendars (Microsoft Graph)."""


@teams.command("check")
@click.option("--mailbox", help="Check this mailbox instead of the configured organiser.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@pass_plugin_context("teams")
def check_command(ctx: HookContext, mailbox: str | None, as_json: bool) -> None:
    """Get a token, read the organiser's calendar and confirm Teams meetings are allowed."""
    from ehcbridge_teams import settings_of
    from ehcbridge_teams.meetings import run_check

    results = run_check(settings_of(ctx), mailbox=mailbox)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        click.echo(format_results(results))
    sys.exit(exit_code(results))


@teams.command("refresh-responses")
@pass_plugin_context("teams")
def refresh_command(ctx: HookContext) -> None:
    """Read attendee responses for meetings in the next three weeks now."""
    from ehcbridge_teams import refresh_responses

    summary = refresh_responses(ctx)
    if summary is None:
        raise click.ClickException("teams is not configured; see `ehcbridge teams check`")
    click.echo(
        f"{summary['meetings']} meetings read, {summary['changed']} responses changed, "
        f"{summary['declined']} with a required professional declining, "
        f"{summary['failed']} failed"
    )
