"""The lifecycle's commands (``ehcbridge review early/advice/amendments/final-plan/not-amended``),
the duty columns of ``review list`` and ``review show``, and the demo's duty steps."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.store import CaseView, Store


def _on(app: App, value: str | None) -> date:
    from ehcbridge.intake import parse_date

    try:
        return parse_date(value) if value else app.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint="--on") from None


def _run(func: Any, case: str, **kwargs: Any) -> Any:
    from ehcbridge.cli import _store_call, _warn
    from ehcbridge.invocation import get_app

    app = get_app()
    change = _store_call(func, app.store, case, now=app.clock.now(),
                         **{k: (v(app) if callable(v) else v) for k, v in kwargs.items()})
    return change, _warn


def add_review_commands(group: click.Group) -> None:
    """Add the lifecycle's commands to ``ehcbridge review``."""

    @group.command("early")
    @click.argument("case")
    @click.option("--reason", required=True,
                  help="Why (moving area or school, elective home education, risk of exclusion, "
                       "changed needs).")
    def review_early(case: str, reason: str) -> None:
        """Open an early review: the planner proposes its meeting as soon as it can."""
        from ehcbridge import transitions

        change, warn = _run(transitions.early, case, reason=reason)
        click.echo(f"{case}: early review opened ({reason.strip()}); plan its meeting with "
                   "'ehcbridge plan' or 'ehcbridge review schedule'")
        warn(change)

    @group.command("move")
    @click.argument("case")
    @click.option("--on", "on", help="Date the young person moves to the new institution.")
    @click.option("--none", "withdraw", is_flag=True, help="The move is off: withdraw its date.")
    def review_move(case: str, on: str | None, withdraw: bool) -> None:
        """Record a young person's move to another post-16 institution outside the usual
        transfers: the plan must be reviewed and amended 5 months before it (reg 18(2))."""
        from ehcbridge import timeline, transitions

        if withdraw == (on is not None):
            raise click.UsageError("give either --on DATE or --none")
        change, warn = _run(transitions.post16_move, case,
                            move=lambda app: None if withdraw else _on(app, on),
                            policy=lambda app: app.lifecycle_policy())
        move = change.plan.post16_move
        due = f"{change.kind.value} review due by {change.due_by:%d %b %Y}"
        if move is None:
            click.echo(f"{case}: post-16 move withdrawn; the {due}")
        elif change.due_by == timeline.post16_move_deadline(move):
            click.echo(f"{case}: post-16 move on {move:%d %b %Y} recorded; the {due}, 5 months "
                       "before it (reg 18(2))")
        else:
            click.echo(f"{case}: post-16 move on {move:%d %b %Y} recorded; the {due} already, "
                       "sooner than 5 months before it")
        warn(change)

    @group.command("no-setting")
    @click.argument("case")
    @click.option("--undo", is_flag=True, help="The child attends a school or college again.")
    def review_no_setting(case: str, undo: bool) -> None:
        """Record that the child or young person attends no school or other institution
        (educated at home, not in education): the LA arranges the review (reg 21)."""
        from ehcbridge import transitions
        from ehcbridge.invocation import get_app
        from ehcbridge.models import Role

        _run(transitions.no_setting, case, value=not undo,
             policy=lambda app: app.lifecycle_policy())
        if undo:
            click.echo(f"{case}: attends a school or college again; the setting arranges the "
                       "review (reg 20)")
            return
        click.echo(f"{case}: attends no school or college; the local authority arranges the "
                   "review and owes its duties (reg 21)")
        for invitee in get_app().store.case(case).invitees:
            if invitee.role == Role.SETTING:  # the school left: a caseworker decides
                click.echo(f"warning: {invitee.email or invitee.name} is still invited as the "
                           f"setting; remove it with 'ehcbridge review uninvite {case} --email "
                           "ADDRESS'", err=True)

    @group.command("advice")
    @click.argument("case")
    @click.option("--on", "on", help="Date the advice and views were circulated (default today).")
    def review_advice(case: str, on: str | None) -> None:
        """Record that the advice and views went to everyone invited (reg 20(4): at least 2
        weeks before the meeting)."""
        from ehcbridge import transitions

        change, warn = _run(transitions.advice, case, on=lambda app: _on(app, on),
                            policy=lambda app: app.lifecycle_policy())
        click.echo(f"{case}: advice and views recorded as circulated")
        warn(change)

    @group.command("amendments")
    @click.argument("case")
    @click.option("--on", "on", help="Date the proposed amendments were sent (default today).")
    def review_amendments(case: str, on: str | None) -> None:
        """Record that the proposed amendments of an amend decision were sent (reg 22): the 15
        days for representations and the 8 weeks for the final plan run from this date."""
        from ehcbridge import lifecycle, transitions

        change, warn = _run(transitions.amendments, case, on=lambda app: _on(app, on),
                            policy=lambda app: app.lifecycle_policy())
        dates = {d.name: d.due for d in change.duties}
        window, final = (dates.get(lifecycle.REPRESENTATIONS_WINDOW),
                         dates.get(lifecycle.FINAL_PLAN_ISSUED))
        click.echo(f"{case}: proposed amendments recorded; representations until "
                   f"{window:%d %b %Y}, final plan due by {final:%d %b %Y}" if window and final
                   else f"{case}: proposed amendments recorded")
        warn(change)

    @group.command("final-plan")
    @click.argument("case")
    @click.option("--on", "on", help="Date the final amended plan was issued (default today).")
    def review_final_plan(case: str, on: str | None) -> None:
        """Record that the final amended plan was issued (reg 22(3); reg 18 for a transfer)."""
        from ehcbridge import transitions

        change, warn = _run(transitions.final_plan, case, on=lambda app: _on(app, on),
                            policy=lambda app: app.lifecycle_policy())
        click.echo(f"{case}: final amended plan recorded as issued")
        warn(change)

    @group.command("not-amended")
    @click.argument("case")
    @click.option("--reason", required=True,
                  help="Why the amendments are not made; the family is told it.")
    @click.option("--on", "on", help="Date of the decision not to amend (default today).")
    def review_not_amended(case: str, reason: str, on: str | None) -> None:
        """Record that, after the representations, the LA decided not to make the proposed
        amendments: the family is told why, with their right to appeal, within 8 weeks of the
        proposed amendments (reg 22(4)); the plan stays as it is."""
        from ehcbridge import transitions

        change, warn = _run(transitions.not_amended, case, reason=reason,
                            on=lambda app: _on(app, on),
                            policy=lambda app: app.lifecycle_policy())
        click.echo(f"{case}: decision not to amend recorded; the family is told why and of "
                   "their right to appeal (reg 22(4)), and the plan stays as it is")
        warn(change)


# review list / review show ------------------------------------------------------------------


def filter_by_duties(app: App, rows: list[dict[str, Any]], *, at_risk: bool, overdue: bool,
                     duty: str | None) -> list[dict[str, Any]]:
    """Keep the review rows the duty filters ask for, each with its open duties attached."""
    from ehcbridge.models import DutyStatus

    if overdue:
        statuses = [DutyStatus.MISSED.value]
    elif at_risk:
        statuses = [DutyStatus.AT_RISK.value, DutyStatus.MISSED.value]
    else:
        statuses = [DutyStatus.AT_RISK.value, DutyStatus.MISSED.value]
    if duty is not None and not (at_risk or overdue):
        statuses.append(DutyStatus.PENDING.value)
    from ehcbridge.lifecycle import to_act_on

    current = {row["case_id"]: row["review_id"] for row in rows}
    found: dict[str, list[dict[str, Any]]] = {}
    for case_id, review_id, d in to_act_on(app.store.duty_rows(statuses=statuses, name=duty),
                                           current):
        found.setdefault(case_id, []).append(
            {"review_id": review_id, "name": d.name, "status": d.status.value,
             "due": d.due.isoformat() if d.due else None, "rule": d.rule})
    for row in rows:
        row["duties"] = found.get(row["case_id"], [])
    if not (at_risk or overdue or duty):
        return rows
    return [r for r in rows if r["duties"]
            or (at_risk and not overdue and "statutory_risk" in r["flags"])]


def duties_json(app: App, case: CaseView) -> list[dict[str, Any]]:
    """The duties of the review (and of the last decided one, while it still has some open),
    as JSON data."""
    from ehcbridge import lifecycle
    from ehcbridge.transitions import state_of

    current = lifecycle.duties(state_of(case), app.lifecycle_policy(), app.clock.now().date())
    rows = [(case.review.id, d) for d in current]
    for case_id, review_id, d in app.store.duty_rows(case_ids=[case.plan.case_id]):
        if review_id != case.review.id and review_id == _last_decided(app.store, case_id):
            rows.append((review_id, d))
    return [{"review_id": rid, **d.model_dump(mode="json")} for rid, d in rows]


def _last_decided(store: Store, case_id: str) -> int | None:
    with store.begin() as conn:
        return store.decided_review_id(conn, case_id)


def duties_table(duties: list[dict[str, Any]]) -> Any:
    """A rich table of duties for ``review show`` (printed with markup off: see cli._console)."""
    from rich.table import Table
    from rich.text import Text

    colours = {"met": "green", "late": "yellow", "at_risk": "yellow", "missed": "red"}
    table = Table("review", "duty", "due", "status", "met on", "rule", "owed by", "owed to",
                  "evidence", title="Duties")
    for d in duties:
        status = Text(d["status"], style=colours.get(d["status"], ""))
        table.add_row(str(d["review_id"]), d["name"], d["due"] or "-", status, d["met_on"] or "",
                      d["rule"], d["owed_by"], ", ".join(d["owed_to"]), d["evidence"] or "")
    return table


# The demo ------------------------------------------------------------------------------------


def demo_day(app: App, day: date) -> list[str]:
    """What schools do in the demo: circulate the advice on time (one in six late, one in six
    never) and send the report ten days after the meeting (one in five three weeks after); and
    the LA's steps after an amend decision. Returns the cases it decided not to amend."""
    from ehcbridge import lifecycle, timeline, transitions
    from ehcbridge.models import LONDON
    from ehcbridge.store import StoreError

    store, now, policy = app.store, app.clock.now(), app.lifecycle_policy()
    for n, row in enumerate(store.list_reviews()):
        start = row["meeting_start"]
        if start is None:
            continue
        meeting_day = start.astimezone(LONDON).date()
        try:
            if row["status"] == "scheduled" and n % 6 != 5 and day == meeting_day - timedelta(
                    days=16 if n % 6 else 10):
                transitions.advice(store, row["case_id"], on=day, now=now, policy=policy)
            if row["status"] == "held" and day == meeting_day + timedelta(
                    days=21 if n % 5 == 4 else 10):
                transitions.report(store, row["case_id"], on=day, now=now, policy=policy)
        except StoreError:
            continue
    # After an amend decision the LA proposes the amendments 3 days later and issues the final
    # plan 5 weeks after them (one in four 9 weeks after: late). Once, for a review that is no
    # phase transfer, the family's representations persuade it not to amend after all: it says
    # so 4 weeks after the amendments (reg 22(4)).
    decided = {rid: d.met_on for _, rid, d in store.duty_rows(name=lifecycle.DECISION_MADE)}
    finals = {rid: d for _, rid, d in store.duty_rows(name=lifecycle.FINAL_PLAN_ISSUED)}
    transfers = {rid for _, rid, _d in store.duty_rows(name=lifecycle.PHASE_TRANSFER_FINAL_PLAN)}
    kept = any(d.rule == timeline.RULE_NOT_AMENDED for d in finals.values())
    not_amended: list[str] = []
    for case_id, rid, d in store.duty_rows(name=lifecycle.AMENDMENTS_PROPOSED):
        on = decided.get(rid)
        try:
            if d.met_on is None and on is not None and day == on + timedelta(days=3):
                transitions.amendments(store, case_id, on=day, now=now, policy=policy)
            final = finals.get(rid)
            if d.met_on is None or final is None or final.met_on is not None:
                continue
            if not kept and rid not in transfers and day == d.met_on + timedelta(weeks=4):
                transitions.not_amended(store, case_id, reason=DEMO_NOT_AMENDED, on=day, now=now,
                                        policy=policy)
                kept = True
                not_amended.append(case_id)
            elif day == d.met_on + timedelta(weeks=9 if rid % 4 == 3 else 5):
                transitions.final_plan(store, case_id, on=day, now=now, policy=policy)
        except StoreError:
            continue
    return not_amended


DEMO_NOT_AMENDED = ("The family's representations show the current provision meets the needs "
                    "the new advice describes")


def duties_line(store: Store) -> str:
    """One summary line: duties by status, over every review."""
    counts: dict[str, int] = {}
    for (_name, status), n in store.duty_counts().items():
        counts[status] = counts.get(status, 0) + n
    order = ("met", "late", "missed", "at_risk", "pending", "not_applicable")
    return "Duties: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order)
