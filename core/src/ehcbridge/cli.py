"""The ``ehcbridge`` command line. Heavy imports happen inside commands so --help stays fast."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ehcbridge import __version__
from ehcbridge.invocation import get_app
from ehcbridge.invocation import plugin_manager as _plugin_manager
from ehcbridge.lifecycle import DUTY_NAMES
from ehcbridge.scaffold import plugin_group
from ehcbridge.serve_cli import register as register_serve

if TYPE_CHECKING:
    from ehcbridge.app import App


class EhcGroup(click.Group):
    """The root group: adds each loaded plugin's commands the first time commands are listed."""

    _plugins_added = False

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        if EhcGroup._plugins_added:
            return
        EhcGroup._plugins_added = True
        from ehcbridge.plugins import PluginLoadError

        manager = _plugin_manager(ctx)
        try:
            outcomes = manager.call_each("register_commands", cli=self)
        except PluginLoadError:  # strict mode: the command reports it when it builds the App
            return
        for outcome in outcomes:
            if outcome.error is not None:
                click.echo(f"warning: plugin {outcome.plugin} could not add its commands: "
                           f"{outcome.error}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin commands."""
        self._add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Look up a command, loading plugin commands first."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._add_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def _console() -> Any:
    """The console for tables and lines: text is printed as it is, never read as rich markup
    (a name, a place or an error with square brackets in it was eaten, or crashed the command);
    styling is given as ``rich.text.Text``."""
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    if not console.is_terminal:  # piped or captured: don't wrap tables at 80 columns
        console = Console(highlight=False, markup=False, width=200)
    return console


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    from ehcbridge.intake import parse_datetime

    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint="--now") from None


@click.group(cls=EhcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ehcbridge")
@click.option("--config", type=click.Path(dir_okay=False), envvar="EHCBRIDGE_CONFIG",
              help="Settings file (default ./ehcbridge.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(config: str | None, verbose: int) -> None:
    """ehcbridge: runs the EHCP annual review cycle and connects it to your systems."""
    import logging

    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ehcbridge.redact import install

    install()  # secrets, tokens and addresses never reach the log
    from ehcbridge.operations import enable_progress, quiet_alembic

    quiet_alembic(verbose)
    enable_progress()


# Plugins, settings, doctor --------------------------------------------------------------------


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list the core's own hook specifications.")
def plugins_cmd(as_json: bool, show_all: bool) -> None:
    """List installed plugins with their hooks and status."""
    app = get_app()
    app.start_plugins()
    rows = [r.as_json() for r in app.plugins.load().values()]
    if show_all:
        from ehcbridge import hookspecs

        specs = sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n),
                                                            "ehcbridge_spec", None) is not None)
        rows.insert(0, {"name": "ehcbridge", "distribution": "ehcbridge", "version": __version__,
                        "hooks": specs, "status": "core", "reason": "hook specifications"})
    if as_json:
        _json(rows)
        return
    from rich.table import Table

    table = Table("name", "distribution", "version", "status", "hooks", "reason")
    for r in rows:
        table.add_row(r["name"], r["distribution"], r["version"], r["status"],
                      ", ".join(r["hooks"]), r["reason"])
    _console().print(table)


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--now", "now", help="Check as if it were this time (YYYY-MM-DDTHH:MM).")
def doctor_cmd(as_json: bool, now: str | None) -> None:
    """Run the store's and every plugin's checks; exit codes in docs/user-guide.md."""
    from ehcbridge.operations import doctor

    app = get_app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    sys.exit(doctor(app, as_json, click.echo))


@cli.group("config")
def config_group() -> None:
    """Inspect settings."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_show(as_json: bool) -> None:
    """Print the effective settings, secrets masked."""
    from ehcbridge.settings import masked

    app = get_app()
    data: dict[str, Any] = {
        "config_file": str(app.settings.config_path) if app.settings.config_path else None,
        "store": masked(app.settings.store),
        "engine": masked(app.settings.engine),
        "serve": masked(app.settings.serve),
        "plugins": {},
    }
    data["store"]["resolved_url"] = _mask_url(app.settings.store.resolved_url())
    if app.settings.store.url:
        data["store"]["url"] = _mask_url(app.settings.store.url)
    problems = []
    app.plugins.configure()
    for record in app.plugins.records.values():
        if record.settings is not None:
            data["plugins"][record.name] = masked(record.settings)
        else:
            raw = app.settings.plugins.get(record.name, {})
            data["plugins"][record.name] = masked(raw)
            if record.status == "failed":
                problems.append(f"{record.name}: {record.reason}")
    if as_json:
        _json(data)
    else:
        click.echo(_as_toml(data))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(1)


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _as_toml(data: dict[str, Any], prefix: str = "") -> str:
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        elif value is not None:
            lines.append(f"{key} = {json.dumps(value, default=str)}")
    out = "\n".join(lines)
    for name, table in tables:
        body = _as_toml(table, f"{name}.")
        out += f"\n\n[{name}]\n{body}" if body.strip() else ""
    return out.strip()


# Statutory clock ------------------------------------------------------------------------------


@cli.command("timeline")
@click.option("--issued", required=True, help="Date the plan was issued (YYYY-MM-DD).")
@click.option("--last-review", help="Date of the last review decision.")
@click.option("--meeting", help="Meeting date and time (YYYY-MM-DDTHH:MM).")
@click.option("--nc-year", type=int, help="National Curriculum year.")
@click.option("--dob", help="Date of birth.")
@click.option("--decision", type=click.Choice(["maintain", "amend", "cease"]),
              help="Decision outcome, with --decided-on.")
@click.option("--decided-on", help="Date of the decision.")
@click.option("--post16-move", help="Date the young person moves to another post-16 "
              "institution (reg 18(2): reviewed and amended 5 months before).")
@click.option("--as-of", help="Read --nc-year as the pupil's year in the academic year "
              "containing this date (default today).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def timeline_cmd(issued: str, last_review: str | None, meeting: str | None, nc_year: int | None,
                 dob: str | None, decision: str | None, decided_on: str | None,
                 post16_move: str | None, as_of: str | None, as_json: bool) -> None:
    """Print a plan's statutory and good-practice milestones."""
    from ehcbridge import timeline
    from ehcbridge.intake import parse_date, parse_datetime
    from ehcbridge.models import Decision, Outcome, Plan, Pupil

    def d(value: str | None, name: str) -> date | None:
        if value is None:
            return None
        try:
            return parse_date(value)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} {exc}", param_hint=name) from None

    issued_on = d(issued, "--issued")
    assert issued_on is not None
    plan = Plan(case_id="-", issued_on=issued_on,
                last_review_decision=d(last_review, "--last-review"),
                post16_move=d(post16_move, "--post16-move"))
    pupil = Pupil(forename="-", surname="-", dob=d(dob, "--dob"), nc_year=nc_year)
    start = None
    if meeting:
        try:
            start = parse_datetime(meeting)
        except ValueError as exc:
            raise click.BadParameter(f"{meeting!r} {exc}", param_hint="--meeting") from None
    dec = None
    if decision:
        on = d(decided_on, "--decided-on") or (start.date() if start else issued_on)
        dec = Decision(outcome=Outcome(decision), reason="-", decided_on=on)
    # The NC year is the pupil's year in the academic year containing --as-of, as everywhere.
    as_of_day = d(as_of, "--as-of") or date.today()
    items = timeline.milestones(plan, meeting_start=start, pupil=pupil, decision=dec,
                                as_of=as_of_day)
    if as_json:
        _json(timeline.milestones_json(items))
        return
    from rich.table import Table

    table = Table("milestone", "date", "kind", "rule", "warnings")
    for m in items:
        table.add_row(m.name, f"{m.date:%a %d %b %Y}", m.kind, m.rule, "; ".join(m.warnings))
    _console().print(table)


# Intake ------------------------------------------------------------------------------------


@cli.group("import")
def import_group() -> None:
    """Bring data in from files."""


@import_group.command("reviews")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and show what would change.")
@click.option("--skip-invalid", is_flag=True, help="Import the good rows, report the bad ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--sheet", help="The sheet of an .xlsx workbook to read (default: the first).")
@click.option("--now", "now", help="Import as if it were this time (overdue reviews, NC years).")
def import_reviews_cmd(file: Path, dry_run: bool, skip_invalid: bool, as_json: bool,
                       sheet: str | None, now: str | None) -> None:
    """Import a council review list or EHC Hub export (CSV or .xlsx), upserting by case_id."""
    from ehcbridge.intake import IntakeError, import_reviews, summary

    app = get_app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    try:
        report = import_reviews(app, file, dry_run=dry_run, skip_invalid=skip_invalid,
                                sheet=sheet)
    except IntakeError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        rows = len({p.row for p in exc.problems})
        raise click.ClickException(f"{file}: {len(exc.problems)} problem(s) in {rows} row(s); "
                                   "nothing was imported (use --skip-invalid to import the good "
                                   "rows)") from None
    data = summary(report)
    if as_json:
        _json(data)
        return
    verb = "would be" if dry_run else "were"
    click.echo(f"{file}: {report.added} added, {report.updated} updated, {report.unchanged} "
               f"unchanged {verb} imported; meetings: "
               + (", ".join(f"{n} {k}" for k, n in sorted(report.meetings.items())) or "none"))
    if report.overdue:
        click.echo(f"{report.overdue} imported review(s) {'would be' if dry_run else 'are'} "
                   "already overdue (past their due date, flagged 'overdue': ehcbridge review "
                   "list --flag overdue)")
    if report.replaced:
        click.echo(f"{report.replaced} invitee(s) an earlier list named {verb} replaced by the "
                   "one this list names for their role (calendar plugins withdraw their "
                   "invitation)")
    for problem in report.skipped:
        click.echo(f"skipped: {problem}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


# Reviews ------------------------------------------------------------------------------------


@cli.group("review")
@click.option("--now", "now", help="Pretend it is this time (YYYY-MM-DDTHH:MM): the date "
              "recorded for changes and used to check deadlines.")
def review_group(now: str | None) -> None:
    """Schedule, record and inspect reviews."""
    fixed = _parse_now(now)
    if fixed is not None:
        get_app().clock.fixed = fixed


def _warn(change: Any) -> None:
    """Print a transition's warnings (late duties are accepted, said and flagged)."""
    for text in getattr(change, "warnings", ()):
        click.echo(f"warning: {text}", err=True)


def _lifecycle(app: App) -> dict[str, Any]:
    """What every transition needs from the app: the store, now and the policy."""
    return {"now": app.clock.now(), "policy": app.lifecycle_policy()}


def _dt(value: str, hint: str) -> datetime:
    from ehcbridge.intake import parse_datetime

    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint=hint) from None


def _store_call(func: Any, *args: Any, **kwargs: Any) -> Any:
    from ehcbridge.store import StoreError

    try:
        return func(*args, **kwargs)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _schedule(case: str, start: str, end: str | None, location: str | None,
              online: bool | None, expect: str) -> None:
    from ehcbridge.review_ops import ReviewInputError, schedule

    begin = _dt(start, "--start")
    finish = _dt(end, "--end") if end else None
    try:
        change, finish = _store_call(schedule, get_app(), case, begin, finish, location, online,
                                     expect)
    except ReviewInputError as exc:
        raise click.BadParameter(exc.message, param_hint=f"--{exc.field}") from None
    click.echo(f"{case}: meeting {change.action} for {begin:%a %d %b %Y %H:%M}-{finish:%H:%M}")
    _warn(change)


@review_group.command("schedule")
@click.argument("case")
@click.option("--start", required=True, help="Start (YYYY-MM-DDTHH:MM, Europe/London).")
@click.option("--end", help="End (default: start plus engine.meeting_minutes).")
@click.option("--location", help="Where the meeting is.")
@click.option("--online/--in-person", default=None,
              help="An online meeting (the provider adds the link); default in person.")
def review_schedule(case: str, start: str, end: str | None, location: str | None,
                    online: bool | None) -> None:
    """Set the review meeting (fires on_review_scheduled)."""
    _schedule(case, start, end, location, online, "schedule")


@review_group.command("reschedule")
@click.argument("case")
@click.option("--start", required=True, help="New start.")
@click.option("--end", help="New end (default: keeps the meeting's length).")
@click.option("--location", help="New place (default: unchanged).")
@click.option("--online/--in-person", default=None, help="Change the format (default: unchanged).")
def review_reschedule(case: str, start: str, end: str | None, location: str | None,
                      online: bool | None) -> None:
    """Move the review meeting (fires on_review_scheduled with action rescheduled)."""
    _schedule(case, start, end, location, online, "reschedule")


@review_group.command("cancel")
@click.argument("case")
@click.option("--reason", default="", help="Why (on the event plugins receive).")
def review_cancel(case: str, reason: str) -> None:
    """Cancel the meeting (fires on_review_scheduled with action cancelled)."""
    from ehcbridge import transitions

    app = get_app()
    _store_call(transitions.cancel, app.store, case, reason=reason, **_lifecycle(app))
    click.echo(f"{case}: meeting cancelled")


@review_group.command("invite")
@click.argument("case")
@click.option("--role", required=True,
              type=click.Choice(["parent", "young_person", "setting", "la_sen_officer", "health",
                                 "social_care", "other"]))
@click.option("--email", help="Address (a team mailbox for professionals).")
@click.option("--name", help="Name or team.")
@click.option("--team", help="Team or service (e.g. SALT, CAMHS).")
@click.option("--address", help="Postal address, lines separated by commas (letters go there "
              "when there is no email).")
@click.option("--mobile", help="Mobile number for text reminders.")
def review_invite(case: str, role: str, email: str | None, name: str | None,
                  team: str | None, address: str | None, mobile: str | None) -> None:
    """Add someone to invite (professionals are routed to their team when a router is installed)."""
    from ehcbridge import transitions
    from ehcbridge.models import Invitee, Role

    app = get_app()
    app.start_plugins()
    lines = [p.strip() for p in (address or "").replace("\n", ",").split(",") if p.strip()]
    _store_call(transitions.invite_again, app.store, case, email)  # lifts a 'review uninvite'
    _store_call(app.add_invitee, case, Invitee(role=Role(role), email=email, name=name,
                                               team=team, address="\n".join(lines) or None,
                                               mobile=mobile))
    click.echo(f"{case}: {role} invited")


@review_group.command("uninvite")
@click.argument("case")
@click.option("--email", help="The address they were invited at.")
@click.option("--name", help="For someone invited by letter only (no email): their name.")
@click.option("--role", type=click.Choice(["parent", "young_person", "setting", "la_sen_officer",
                                          "health", "social_care", "other"]),
              help="Only the invitee of this role (when one address has two roles).")
def review_uninvite(case: str, email: str | None, name: str | None, role: str | None) -> None:
    """Remove someone from the review's invitees (wrong address, the child left that school):
    they get no more notices, and calendar plugins withdraw their invitation."""
    from ehcbridge import transitions

    if bool(email) == bool(name):
        raise click.UsageError("give --email, or --name for someone invited by letter only")
    from ehcbridge.notices.delivery import after_withdrawal

    app = get_app()
    done = _store_call(transitions.uninvite, app.store, case, email=email, name=name,
                       role=role, now=app.clock.now())
    after = after_withdrawal(app, done.review_id, done.duties, done.removed)
    roles = ", ".join(sorted({i.role.value for i in done.removed}))
    click.echo(f"{case}: {len(done.removed)} invitee(s) removed ({roles}); a meeting already "
               "set is updated and their invitation withdrawn at the next engine run"
               + (f"; {after.letters} letter(s) queued telling those posted the meeting that "
                  "they are no longer invited" if after.letters else ""))


@review_group.command("held")
@click.argument("case")
def review_held(case: str) -> None:
    """Record that the meeting took place (fires on_meeting_held)."""
    from ehcbridge import transitions

    app = get_app()
    change = _store_call(transitions.held, app.store, case, **_lifecycle(app))
    click.echo(f"{case}: meeting recorded as held; report due in 2 weeks (reg 20(7))")
    _warn(change)


@review_group.command("report")
@click.argument("case")
@click.option("--on", "on", help="Date the report was sent (default today).")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="The report: kept with the review and sent to everyone invited.")
def review_report(case: str, on: str | None, file: Path | None) -> None:
    """Record the review report and send it to everyone invited (due 2 weeks after the meeting)."""
    from ehcbridge.intake import parse_date
    from ehcbridge.notices.cli import read_files, send_report

    app = get_app()
    try:
        sent_on = parse_date(on) if on else app.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{on!r} {exc}", param_hint="--on") from None
    from ehcbridge import transitions

    documents = read_files((file,)) if file is not None else []  # before anything is stored
    change = _store_call(transitions.report, app.store, case, on=sent_on, **_lifecycle(app))
    queued = send_report(app, case, documents)
    click.echo(f"{case}: review report recorded as sent on {sent_on:%d %b %Y}"
               + (f"; {queued} notice(s) queued for the engine to deliver" if queued else ""))
    _warn(change)


from ehcbridge.notices.cli import review_views  # noqa: E402

review_group.add_command(review_views)


@review_group.command("decide")
@click.argument("case")
@click.argument("outcome", type=click.Choice(["maintain", "amend", "cease"]))
@click.option("--reason", required=True, help="The reason, as in the decision letter.")
@click.option("--on", "on", help="Date of the decision (default today).")
def review_decide(case: str, outcome: str, reason: str, on: str | None) -> None:
    """Record the LA's decision (fires on_decision) and open the next review."""
    from ehcbridge.intake import parse_date
    from ehcbridge.models import Outcome

    app = get_app()
    try:
        decided_on = parse_date(on) if on else app.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{on!r} {exc}", param_hint="--on") from None
    from ehcbridge import transitions

    change = _store_call(transitions.decide, app.store, case, outcome=Outcome(outcome),
                         reason=reason, on=decided_on, **_lifecycle(app))
    click.echo(f"{case}: decision '{outcome}' recorded for {decided_on:%d %b %Y}"
               + (f"; next review ({change.next_review.kind.value}) due by "
                  f"{change.next_review.due_by:%d %b %Y}" if change.next_review else ""))
    _warn(change)


@review_group.command("list")
@click.option("--due-before", help="Only reviews due on or before this date.")
@click.option("--at-risk", is_flag=True,
              help="Only reviews with a duty at risk or missed, or flagged as a statutory risk.")
@click.option("--overdue", is_flag=True, help="Only reviews with a duty missed.")
@click.option("--duty", "duty", type=click.Choice(DUTY_NAMES),
              help="Only reviews where this duty is not met yet (with --at-risk/--overdue: "
                   "where this duty is at risk or missed).")
@click.option("--flag", help="Only reviews carrying this flag.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def review_list(due_before: str | None, at_risk: bool, overdue: bool, duty: str | None,
                flag: str | None, as_json: bool) -> None:
    """List open reviews, soonest due first (duty statuses as of the engine's last pass)."""
    from ehcbridge.intake import parse_date
    from ehcbridge.lifecycle_cli import filter_by_duties
    from ehcbridge.models import LONDON

    app = get_app()
    before = parse_date(due_before) if due_before else None
    rows = app.store.list_reviews(due_before=before, flag=flag)
    rows = filter_by_duties(app, rows, at_risk=at_risk, overdue=overdue, duty=duty)
    if as_json:
        _json(rows)
        return
    from rich.table import Table

    from ehcbridge.operations import echo_columns

    headers = ("case", "kind", "due by", "status", "meeting", "flags", "duties")
    cells = [(r["case_id"], r["kind"], f"{r['due_by']:%d %b %Y}", r["status"],
              r["meeting_start"].astimezone(LONDON).strftime("%d %b %Y %H:%M")
              if r["meeting_start"] and r["meeting_status"] == "scheduled" else "",
              ", ".join(r["flags"]),
              ", ".join(f"{d['name']} {d['status']}"
                        + (" (decided review)" if d["review_id"] != r["review_id"] else "")
                        for d in r.get("duties", [])))
             for r in rows]
    if not echo_columns(headers, cells, click.echo):  # a short list: a rich table
        table = Table(*headers)
        for row in cells:
            table.add_row(*row)
        _console().print(table)
    click.echo(f"{len(rows)} review(s)")


def case_json(app: App, case_id: str) -> dict[str, Any]:
    """The review, its meeting, invitees, milestones, flags and deliveries as JSON data."""
    from ehcbridge.lifecycle_cli import duties_json
    from ehcbridge.notices.cli import notices_json
    from ehcbridge.timeline import milestones_json

    case = _store_call(app.store.case, case_id)
    meeting = case.meeting.model_dump(mode="json") if case.meeting else None
    if meeting is not None and case.meeting is not None and case.meeting.id is not None:
        meeting["link_error"] = app.store.meeting_link_error(case.meeting.id)
    return {
        "case_id": case.plan.case_id,
        "review": case.review.model_dump(mode="json"),
        "plan": case.plan.model_dump(mode="json"),
        "pupil": {"upn": case.pupil.upn, "initials": case.pupil.initials,
                  "nc_year": case.pupil.nc_year, "school_urn": case.pupil.school_urn},
        "meeting": meeting,
        "invitees": [i.model_dump(mode="json") for i in case.invitees],
        "removed": app.store.removed_from(case.plan.case_id),
        "invitations": case.invitations,
        "decision": case.decision.model_dump(mode="json") if case.decision else None,
        "flags": case.flags,
        "milestones": milestones_json(app.milestones(case)),
        "duties": duties_json(app, case),
        "deliveries": [{"id": d.id, "hook": d.hook, "plugin": d.plugin, "status": d.status,
                        "attempts": d.attempts, "error": d.last_error, "event": d.event_key}
                       for d in app.store.deliveries(case_id=case_id)],
        **notices_json(app, case),
    }


@review_group.command("show")
@click.argument("case")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def review_show(case: str, as_json: bool) -> None:
    """Show a review: meeting, invitees and responses, milestones, duties, flags, deliveries."""
    app = get_app()
    data = case_json(app, case)
    if as_json:
        _json(data)
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    r = data["review"]
    console.print(Text.assemble(
        (data["case_id"], "bold"), f" ({data['pupil']['initials']}), {r['kind']} review due by "
        f"{r['due_by']}, status {r['status']}"
        + (", preparing for adulthood" if r["preparing_for_adulthood"] else "")))
    if data["plan"].get("no_setting"):
        console.print("Attends no school or college: the LA arranges this review and invites no "
                      "setting (reg 21)")
    if data["plan"].get("post16_move"):
        console.print(f"Moves to another post-16 institution on {data['plan']['post16_move']} "
                      "(reg 18(2): plan reviewed and amended 5 months before)")
    m = data["meeting"]
    if m:
        console.print(Text.assemble(
            f"Meeting: {m['start']} to {m['end']} ({m['status']}) {m['location'] or ''}"
            + (f"\nJoin: {m['join_url']}" if m["join_url"] else ""),
            *((("\nOnline link failed:", "red"), f" {m['link_error']}")
              if m.get("link_error") else ())))
    if r.get("report_sent_on"):
        console.print(f"Report sent: {r['report_sent_on']}")
    invitees = Table("role", "name", "email", "team", "source", "response", title="Invitees")
    for i in data["invitees"]:
        invitees.add_row(i["role"], i["name"] or "", i["email"] or "", i["team"] or "",
                         i["source"], i["response"] or "")
    console.print(invitees)
    if data["removed"]:  # kept out until someone invites them again by hand
        console.print("Removed (not invited again unless invited by hand with 'review "
                      "invite'): " + ", ".join(f"{x['email']} ({x['role']})"
                                               for x in data["removed"]))
    miles = Table("milestone", "date", "kind", "rule", "warnings", title="Milestones")
    for ms in data["milestones"]:
        miles.add_row(ms["name"], ms["date"], ms["kind"], ms["rule"], "; ".join(ms["warnings"]))
    console.print(miles)
    from ehcbridge.lifecycle_cli import duties_table

    console.print(duties_table(data["duties"]))
    for flag, detail in data["flags"].items():
        console.print(Text.assemble(("flag", "yellow"), f" {flag}: {detail}"))
    if data["deliveries"]:
        dt = Table("id", "hook", "plugin", "status", "attempts", "error", title="Deliveries")
        for d in data["deliveries"]:
            dt.add_row(str(d["id"]), d["hook"], d["plugin"], d["status"], str(d["attempts"]),
                       d["error"] or "")
        console.print(dt)
    from ehcbridge.notices.cli import print_notices

    print_notices(console, data)


def _add_lifecycle_commands() -> None:
    from ehcbridge.lifecycle_cli import add_review_commands

    add_review_commands(review_group)


_add_lifecycle_commands()


# Engine ----------------------------------------------------------------------------------


@cli.command("run")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@click.option("--now", "now", help="Pretend it is this time (YYYY-MM-DDTHH:MM, for previews).")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the pass as JSON.")
def run_cmd(once: bool, now: str | None, as_json: bool) -> None:
    """Fire due lifecycle events through the plugins (ticks every engine.tick_seconds)."""
    from ehcbridge.engine import Engine
    from ehcbridge.operations import run_engine

    app = get_app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    app.start_plugins()
    for record in app.plugins.load().values():
        if record.status == "failed":
            click.echo(f"warning: plugin {record.name} failed to load: {record.reason}", err=True)
    run_engine(Engine(app), once=once, as_json=as_json, echo=click.echo)


@cli.group("deliveries", invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "retrying", "delivered", "dead",
                                             "skipped"]))
@click.option("--case", "case_id", help="Only this case.")
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="At most this many rows (0: all).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def deliveries_group(ctx: click.Context, status: str | None, case_id: str | None, limit: int,
                     offset: int, as_json: bool) -> None:
    """The delivery ledger: every (event, plugin) pair and its outcome, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from ehcbridge.paging import page_notice

    store = get_app().store
    rows = store.deliveries(status=status, case_id=case_id, limit=limit or None, offset=offset)
    notice = page_notice(len(rows), offset, limit, store.count_deliveries(status=status,
                                                                          case_id=case_id))
    if notice:  # on stderr, so --json stays a plain list
        ctx.call_on_close(lambda: click.echo(notice, err=True))
    if as_json:
        _json([{"id": d.id, "case_id": d.case_id, "event": d.event_key, "hook": d.hook,
                "plugin": d.plugin, "status": d.status, "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at, "error": d.last_error} for d in rows])
        return
    from rich.table import Table

    table = Table("id", "case", "hook", "plugin", "status", "attempts", "next attempt", "error")
    for d in rows:
        table.add_row(str(d.id), d.case_id, d.hook, d.plugin, d.status, str(d.attempts),
                      d.next_attempt_at.isoformat(timespec="minutes")
                      if d.status in ("pending", "retrying") else "", d.last_error or "")
    _console().print(table)


@deliveries_group.command("retry")
@click.argument("delivery_id", type=int)
@click.option("--now", "now", help="Queue it as of this time (YYYY-MM-DDTHH:MM).")
def deliveries_retry(delivery_id: int, now: str | None) -> None:
    """Queue a dead delivery again (the next engine pass attempts it)."""
    app = get_app()
    row = _store_call(app.store.retry_delivery, delivery_id, _parse_now(now) or app.clock.now())
    click.echo(f"delivery {row.id} ({row.hook} -> {row.plugin}) queued again")


@cli.command("plan")
@click.option("--from", "window_from", help="Earliest meeting date to propose.")
@click.option("--to", "window_to", help="Latest meeting date to propose.")
@click.option("--school", help="Only reviews of pupils at this school URN.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--ics", "ics", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the proposals as a calendar file.")
@click.option("--apply", "apply_", is_flag=True,
              help="Schedule the proposed meetings (fires on_review_scheduled).")
@click.option("--online", is_flag=True, help="With --apply: make the meetings online.")
@click.option("--now", "now", help="Plan as if it were this date and time.")
def plan_cmd(window_from: str | None, window_to: str | None, school: str | None, as_json: bool,
             ics: Path | None, apply_: bool, online: bool, now: str | None) -> None:
    """Propose a lawful meeting date for every review without one."""
    from ehcbridge.intake import parse_date
    from ehcbridge.plan_cli import build_plan, plan_json, write_ics

    app = get_app()
    fixed = _parse_now(now)
    if fixed is not None:
        app.clock.fixed = fixed
    app.start_plugins()

    def d(value: str | None, hint: str) -> date | None:
        try:
            return parse_date(value) if value else None
        except ValueError as exc:
            raise click.BadParameter(f"{value!r} {exc}", param_hint=hint) from None

    result = build_plan(app, today=app.clock.now().date(), window_from=d(window_from, "--from"),
                        window_to=d(window_to, "--to"), school_urn=school)
    if ics is not None:
        write_ics(result, ics)
    if apply_:
        from ehcbridge import transitions

        for p in result.proposals:
            transitions.schedule(app.store, p.case_id, start=p.start, end=p.end, location=None,
                                 online=online, organiser=p.coordinator, **_lifecycle(app))
    if as_json:
        _json(plan_json(result))
        return
    from rich.table import Table

    console = _console()
    if result.overdue:
        over = Table("case", "meeting latest", "days overdue", "reason", title="Overdue")
        for o in result.overdue:
            over.add_row(o.case_id, o.meeting_latest.isoformat(), str(o.days_overdue), o.reason)
        console.print(over)
    table = Table("case", "proposed", "coordinator", "why", title="Proposals")
    for p in result.proposals:
        table.add_row(p.case_id, f"{p.start:%a %d %b %Y %H:%M}", p.coordinator or "", p.reason)
    console.print(table)
    from rich.text import Text

    for u in result.unplanned:
        console.print(Text.assemble(("cannot plan", "yellow"), f" {u.case_id}: {u.reason}"))
    click.echo(f"{len(result.proposals)} proposed, {len(result.overdue)} overdue, "
               f"{len(result.unplanned)} cannot be planned"
               + ("; meetings scheduled" if apply_ else "")
               + (f"; calendar written to {ics}" if ics else ""))


@cli.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Workspace for the demo (default: a new temporary folder).")
def demo_cmd(directory: Path | None) -> None:
    """Run a term of reviews on synthetic data through every installed plugin."""
    from ehcbridge.demo import run_demo

    run_demo(directory, echo=click.echo)


cli.add_command(plugin_group)
register_serve(cli)  # serve and users


def _add_la_commands() -> None:
    # Termly lists and figures live in their own module (docs/lists-and-returns.md).
    from ehcbridge.lists_cli import lists_group, report_group

    cli.add_command(lists_group)
    cli.add_command(report_group)
    from ehcbridge.erase_cli import erase, export  # data protection: retention and access

    cli.add_command(erase)
    cli.add_command(export)


_add_la_commands()


def main() -> None:
    """Console script entry point."""
    from ehcbridge.plugins import PluginLoadError

    try:
        cli(prog_name="ehcbridge")
    except PluginLoadError as exc:  # EHCBRIDGE_STRICT_PLUGINS=1 and a plugin failed
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a database error reaches the user as one line, never a traceback
        from ehcbridge.store.errors import database_error_text

        text = database_error_text(exc)
        if text is None:
            raise
        click.echo(f"Error: {text}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
