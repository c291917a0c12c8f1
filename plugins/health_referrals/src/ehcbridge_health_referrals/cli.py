"""``ehcbridge health-referrals ...``: explain routing, record returned advice, list the rules."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import click
from ehcbridge.invocation import pass_plugin_context

if TYPE_CHECKING:  # imported in the commands, so building the CLI stays cheap
    from ehcbridge.events import HookContext

    from .settings import HealthReferralsSettings

PLUGIN = "health_referrals"


def _settings(ctx: HookContext) -> HealthReferralsSettings:
    from ehcbridge.plugin_settings import settings_of

    from .settings import HealthReferralsSettings

    return settings_of(ctx, HealthReferralsSettings, require=False)


def explain_lines(ctx: HookContext, case_id: str) -> list[str]:
    """Each team a review's invitees were routed to, the rule that matched and why."""
    from .advice import status_of
    from .routing import review_token, routes_of

    review = ctx.store.review(case_id)
    records = routes_of(ctx, case_id, review_token(review)) if review is not None else []
    note = ""
    if not records:
        # Nothing routed for the current review yet: show the latest earlier one, if any.
        earlier = routes_of(ctx, case_id)
        if not earlier:
            return [f"{case_id}: no invitee has been routed yet"]
        latest = max(earlier, key=lambda r: (str(r.get("routed_at", "")),
                                             len(str(r.get("review", ""))),
                                             str(r.get("review", "")))).get("review")
        records = [r for r in earlier if r.get("review") == latest]
        note = " (an earlier review)"
    teams = {r["mailbox"].casefold() for r in records}
    lines = [f"{case_id}{note}: {len(records)} invitee(s) routed to {len(teams)} team(s)"]
    for record in sorted(records, key=lambda r: (r["team"].casefold(), r["role"])):
        flag = "  [FLAGGED: no rule matched, sent to the DCO]" if record.get("flagged") else ""
        lines.append(f"- {record['team']} <{record['mailbox']}>{flag}")
        who = record.get("invitee") or "(required role with no invitee)"
        service = f", service {record['service']}" if record.get("service") else ""
        lines.append(f"    for: {record['role']} invitee {who!r}{service}")
        lines.append(f"    rule: {record['rule']}")
        lines.append(f"    why: {record['reason']}")
        extras = f"data level {record.get('data_level', 'minimal')}"
        if record.get("portal_url"):
            extras += f"; portal {record['portal_url']}"
        lines.append(f"    {extras}; routed {str(record.get('routed_at', ''))[:16]}")
        lines.append(f"    advice: {status_of(ctx, case_id, record)}")
    if review is not None and not note:
        # Mailboxes this plugin told the core it asks that a later route replaced: still asked
        # (once) while the review invites them.
        token = review_token(review)
        for _key, kept in sorted(ctx.store.state_items(f"asks:{case_id}:{token}:"),
                                 key=lambda item: str(item[1]["team"]).casefold()):
            if kept["mailbox"].casefold() in teams:
                continue
            lines.append(f"- {kept['team']} <{kept['mailbox']}>  [routed elsewhere since; "
                         "still asked for advice while the review invites it]")
            lines.append(f"    advice: {status_of(ctx, case_id, kept)}")
    return lines


def rule_lines(settings: HealthReferralsSettings) -> list[str]:
    """The routing table, most specific first, with where each rule was defined."""
    table = settings.table
    lines = []
    for rule in sorted(table.rules, key=lambda r: -r.specificity):
        when = ", ".join(f"{k}={v}" for k, v in rule.conditions().items()) or "(catch-all)"
        lines.append(f"{rule.name} [{table.origin(rule)}] specificity {rule.specificity}: "
                     f"{when} -> {rule.team} <{rule.mailbox}> ({rule.data_level})")
    lines.append(f"unmatched health/social care -> {settings.dco_team} <{settings.dco_mailbox}> "
                 "(flagged)")
    return lines


@click.group(name="health-referrals")
def group() -> None:
    """Route professional invitations and advice requests to health and social care teams."""


@group.command()
@click.argument("case_id", metavar="CASE")
@pass_plugin_context(PLUGIN)
def explain(ctx: HookContext, case_id: str) -> None:
    """Show each team invited to CASE, the rule that matched and why."""
    for line in explain_lines(ctx, case_id):
        click.echo(line)


@group.command()
@click.argument("case_id", metavar="CASE")
@click.option("--team", "team", required=True, help="Team name (or mailbox) as routed.")
@click.option("--on", "on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date the advice arrived (default: today).")
@pass_plugin_context(PLUGIN)
def received(ctx: HookContext, case_id: str, team: str, on: Any) -> None:
    """Record that TEAM has returned its advice for CASE."""
    from .advice import UnknownTeam, record_received

    review = ctx.store.review(case_id)
    if review is None:
        raise click.ClickException(f"no review for case {case_id}")
    day: date | None = on.date() if on is not None else None
    try:
        record = record_received(ctx, review, team, day)
    except UnknownTeam as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{case_id}: advice from {record['team']} recorded as received {record['on']}")


@group.command()
@pass_plugin_context(PLUGIN)
def rules(ctx: HookContext) -> None:
    """List the routing table (validating it) and the DCO fallback."""
    for line in rule_lines(_settings(ctx)):
        click.echo(line)


@group.command(name="set-area")
@click.argument("case_id", metavar="CASE")
@click.option("--postcode-district", default=None, help="Outward code of the home, e.g. BS5.")
@click.option("--la-code", default=None, help="Three-digit DfE LA number, if not the default.")
@pass_plugin_context(PLUGIN)
def set_area(ctx: HookContext, case_id: str, postcode_district: str | None,
             la_code: str | None) -> None:
    """Record the area facts used by postcode_district / la_code rules for CASE."""
    from pydantic import ValidationError

    from .routing import area_key
    from .rules import RoutingRule

    try:  # reuse the rule validators so the same spellings are accepted
        checked = RoutingRule(name="area", team="-", mailbox="x@example.org",
                              postcode_district=postcode_district, la_code=la_code)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise click.ClickException(
            f"{problem['loc'][0]}: {problem['msg'].removeprefix('Value error, ')}") from None
    area = {"postcode_district": (checked.postcode_district or (None,))[0],
            "la_code": (checked.la_code or (None,))[0]}
    ctx.store.set_state(area_key(case_id), area)
    ctx.store.audit(case_id, "area", area)
    click.echo(f"{case_id}: area recorded; invitees are routed with it from now on")
