"""``ehcbridge demo``: a term of synthetic reviews through the real engine and installed plugins."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ehcbridge.models import LONDON, Outcome, ReviewKind
from ehcbridge.notices.demo import demo_notices
from ehcbridge.online import demo_line as online_demo_line
from ehcbridge.online import online_wanted

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.engine import TickReport
    from ehcbridge.store import Store

DEMO_CONFIG = """\
# Written by `ehcbridge demo`: embedded defaults, no cloud credentials.
[store]
url = "sqlite:///{db}"

[engine]
online_meetings = "teams"      # not configured here: online meetings go out without a link
max_attempts = 4
backoff_base_seconds = 60
# The schools directory and who gets the termly lists (docs/lists-and-returns.md).
schools_directory = "{schools}"
lists_health_email = "dco.send@nhs.example.net"
lists_social_care_email = "dct.reviews@council.example.gov.uk"

[[engine.school_holidays]]
name = "February half term"
start = 2027-02-15
end = 2027-02-19

# Terms (their gaps are holidays too) and who is invited beyond the statutory five.
[[engine.terms]]
name = "Autumn 2026"
start = 2026-09-02
end = 2026-12-18

[[engine.terms]]
name = "Spring 2027"
start = 2027-01-05
end = 2027-03-26

[[engine.terms]]
name = "Summer 2027"
start = 2027-04-12
end = 2027-07-21

[[engine.invitation_rules]]
name = "pfa-team"
team = "Preparing for Adulthood team"
email = "pfa@council.example.gov.uk"
from_nc_year = 9

[[engine.invitation_rules]]
name = "csw-group"
team = "CSW group"
email = "csw@council.example.gov.uk"
from_nc_year = 9

[[engine.invitation_rules]]
name = "ehe-team"               # a child at no school or college (reg 21)
team = "Elective home education team"
email = "ehe@council.example.gov.uk"
no_setting_only = true

[[engine.invitation_rules]]
name = "la-sen-team"
role = "la_sen_officer"
team = "SEN team"
email = "sen.team@council.example.gov.uk"

[notices]
council_name = "Demo County Council SEN Team"
council_email = "sen.team@council.example.gov.uk"
council_address = ["County Hall", "Demoton", "DE1 0AA"]
hub_url = "https://ehchub.demo.example.gov.uk"

[plugins.outlook]
transport = "outbox"
outbox_dir = "{outbox}"

[plugins.health_referrals]
transport = "outbox"
outbox_dir = "{outbox}"
dco_team = "ICB Designated Clinical Officer service"
dco_mailbox = "dco.send@nhs.example.net"

[[plugins.health_referrals.rules]]
name = "community-paediatrics"
role = "health"
team = "Community Paediatrics"
mailbox = "paediatrics.ehcp@nhs.example.net"

[[plugins.health_referrals.rules]]
name = "children-social-care"
role = "social_care"
team = "Children's Social Care - Disabled Children's Team"
mailbox = "dct.reviews@council.example.gov.uk"
"""

START = date(2026, 11, 2)  # first Monday of the demo: invitations for the spring term go out
END = date(2027, 5, 28)


def _workspace(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="ehcbridge-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def run_demo(directory: Path | None = None, *, echo: Callable[[str], None] = print,
             step_days: int = 1) -> dict[str, object]:
    """Import the bundled list, run the engine day by day through a term and print a summary."""
    from ehcbridge.app import App
    from ehcbridge.engine import Engine, TickReport
    from ehcbridge.intake import demo_workbook_check, import_reviews
    from ehcbridge.invocation import set_current_app
    from ehcbridge.settings import load_settings

    work = _workspace(directory)
    db, outbox = work / "ehcbridge.sqlite3", work / "outbox"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    config = work / "ehcbridge.toml"
    schools = work / "schools.csv"
    schools.write_bytes(resources.files("ehcbridge").joinpath("data/demo_schools.csv")
                        .read_bytes())
    config.write_text(DEMO_CONFIG.format(db=db.as_posix(), outbox=outbox.as_posix(),
                                         schools=schools.as_posix()), encoding="utf-8")
    reviews_csv = work / "reviews.csv"
    reviews_csv.write_bytes(resources.files("ehcbridge").joinpath("data/demo_reviews.csv")
                            .read_bytes())

    app = App(load_settings(config), now=datetime.combine(START, time(8), tzinfo=LONDON))
    set_current_app(app)
    engine = Engine(app)
    echo(f"ehcbridge demo in {work}")
    app.start_plugins()
    for record in app.plugins.records.values():
        if record.status != "loaded":
            echo(f"  plugin {record.name}: {record.status} ({record.reason})")
    report = import_reviews(app, reviews_csv, now=app.clock.now())
    echo(f"  imported {report.added} plans, {sum(report.meetings.values())} meetings scheduled")
    demo_workbook_check(app, reviews_csv, echo)
    from ehcbridge.plan_cli import build_plan

    plan = build_plan(app, today=START)
    wanted_online = online_wanted(reviews_csv)
    for proposal in plan.proposals:  # what `ehcbridge plan --apply [--online]` does
        app.store.schedule_meeting(proposal.case_id, start=proposal.start, end=proposal.end,
                                   organiser=proposal.coordinator, now=app.clock.now(),
                                   online=proposal.case_id in wanted_online)
    echo(f"  planner: {len(plan.proposals)} more meetings proposed and scheduled, "
         f"{len(plan.overdue)} overdue, {len(plan.unplanned)} left to plan by hand")
    demo_notices(app, work, START)  # one family without email: their notices go by letter

    total = TickReport()
    day = START
    decided: set[str] = set()
    actions: Counter[str] = Counter()
    while day <= END:
        now = datetime.combine(day, time(8), tzinfo=LONDON)
        app.clock.fixed = now
        _caseworker_actions(app, day, decided, actions)
        total.merge(engine.run_once(now))
        day += timedelta(days=step_days)

    summary = _summary(app, total, actions, work, outbox)
    from ehcbridge.lists_cli import demo_lines

    lines: list[str] = summary["lines"]  # type: ignore[assignment]
    at = next(n for n, line in enumerate(lines) if line.startswith("Database:")) - 1
    lines[at:at] = demo_lines(app, work, START, END)
    for line in summary["lines"]:  # type: ignore[attr-defined]
        echo(line)
    from ehcbridge.serve_cli import demo_step as dashboard_step

    dashboard_step(app, work / "ehcbridge.toml", echo)
    echo(online_demo_line(app))
    from ehcbridge.scaffold import demo_step

    summary["plugin_package"] = str(demo_step(work, echo))
    app.close()
    return summary


def _caseworker_actions(app: App, day: date, decided: set[str],
                        actions: Counter[str]) -> None:
    """What people do during the term: move one meeting, cancel one, decide after meetings."""
    from ehcbridge import lifecycle, transitions
    from ehcbridge.lifecycle_cli import demo_day

    # Schools circulate advice and send reports (issue 12); the LA follows its amend decisions.
    for case_id in demo_day(app, day):
        actions[f"decided not to amend after the representations ({case_id}, reg 22(4): the "
                "family is told why, with the right to appeal)"] += 1
    store = app.store
    if day == date(2026, 12, 1):
        for row in store.list_reviews():
            if row["status"] == "scheduled":
                case = store.case(row["case_id"])
                assert case.meeting is not None
                store.schedule_meeting(row["case_id"], start=case.meeting.start + timedelta(days=7),
                                       end=case.meeting.end + timedelta(days=7),
                                       location=case.meeting.location, online=case.meeting.online,
                                       now=app.clock.now())
                actions["rescheduled"] += 1
                break
        late = [r for r in store.list_reviews() if r["status"] == "scheduled"][-1]
        case = store.case(late["case_id"])
        assert case.meeting is not None and case.review is not None
        # A date typed after the review is due: warned and flagged meeting_late, then moved
        # back into time, which clears the flag.
        start, end = case.meeting.start, case.meeting.end
        for days in ((case.review.due_by - start.date()).days + 7, 0):
            store.schedule_meeting(late["case_id"], start=start + timedelta(days=days),
                                   end=end + timedelta(days=days),
                                   location=case.meeting.location, online=case.meeting.online,
                                   now=app.clock.now())
        if lifecycle.FLAG_MEETING_LATE not in store.case(late["case_id"]).flags:
            actions["set late and moved back into time (meeting_late cleared)"] += 1
    if day == date(2026, 12, 3):
        actions["invitee(s) replaced by a later list (a new SENCO: the old one is sent a "
                "cancellation, the new one the invitation)"] += _new_senco(app)
    if day == date(2026, 12, 4):
        from ehcbridge.notices.demo import remove_relative

        actions["removed by hand (a relative invited by mistake, reached by letter: posted a "
                "letter saying he is no longer invited)"] += remove_relative(app)
    if day == date(2026, 12, 8):
        actions["now educated at home (a later list says so: the LA arranges the review, "
                "reg 21; the school is sent a cancellation)"] += _home_educated(app)
    if day == date(2026, 12, 7):
        moved = _post16_move(app, day)
        if moved:
            actions[f"post-16 move recorded by hand ({moved})"] += 1
    if day == date(2026, 12, 2):
        rows = [r for r in store.list_reviews() if r["status"] == "scheduled"]
        if rows:
            store.cancel_meeting(rows[-1]["case_id"], reason="Family asked for a new date",
                                 now=app.clock.now())
            actions["cancelled"] += 1
    if day.weekday() == 4:  # Fridays: the LA decides reviews held two or more weeks ago
        for row in store.list_reviews():
            if row["status"] != "held" or row["case_id"] in decided:
                continue
            case = store.case(row["case_id"])
            if case.meeting is None or case.meeting.start.date() > day - timedelta(days=14):
                continue
            # A phase transfer is amended to name the next setting (reg 18); others alternate,
            # but for one family who moved away: the plan ceases here (the new LA takes it on).
            outcome = Outcome.AMEND if case.review.kind == ReviewKind.PHASE_TRANSFER else (
                Outcome.AMEND, Outcome.MAINTAIN)[len(decided) % 2]
            reason = "Outcomes reviewed at the annual review meeting"
            if len(decided) >= 5 and outcome == Outcome.MAINTAIN and not actions["decided (cease)"]:
                outcome, reason = Outcome.CEASE, "The family moved to another local authority"
            transitions.decide(store, row["case_id"], outcome=outcome, reason=reason,
                               on=day, now=app.clock.now(), policy=app.lifecycle_policy())
            decided.add(row["case_id"])
            actions[f"decided ({outcome.value})"] += 1


def _post16_move(app: App, day: date) -> str | None:
    """A college tells the caseworker a young person moves to another college next autumn, as
    `ehcbridge review move CASE --on DATE` records it: reg 18(2) brings the review forward to 5
    months before the move, and the meeting set for after its new latest date is moved back
    into time, as `ehcbridge review reschedule` would. Returns what happened in words, or None
    when the demo's list has no such review."""
    from ehcbridge import timeline, transitions

    store, policy = app.store, app.lifecycle_policy()
    deadline = day + timedelta(weeks=20)  # room for a meeting 12 weeks before, with notice
    for row in store.list_reviews():
        case = store.case(row["case_id"])
        if (row["status"] != "scheduled" or case.review is None or case.meeting is None
                or case.review.due_by <= deadline or (case.pupil.nc_year or 0) < 12):
            continue
        move = timeline.add_months(deadline, timeline.POST16_MOVE_MONTHS)
        change = transitions.post16_move(store, row["case_id"], move=move, now=app.clock.now(),
                                         policy=policy)
        assert change.due_by is not None
        said = (f"{row['case_id']} moves college on {move:%d %b %Y}: reg 18(2) brings its "
                f"review forward to {change.due_by:%d %b %Y}, 5 months before")
        latest = timeline.meeting_latest(change.due_by, transfer=True)
        m = case.meeting
        if m.start.date() > latest:
            on = latest
            while not timeline.is_school_day(on, policy.clock(case.pupil)):
                on -= timedelta(days=1)
            shift = timedelta(days=(on - m.start.date()).days)
            store.schedule_meeting(row["case_id"], start=m.start + shift, end=m.end + shift,
                                   location=m.location, online=m.online, now=app.clock.now())
            said += f"; its meeting moved to {on:%d %b %Y}"
        return said
    return None


def _new_senco(app: App) -> int:
    """A later Hub list names a school's new SENCO for one review already invited: imported as
    `ehcbridge import reviews` would, it replaces the one the first list named. Returns how
    many invitees were replaced."""
    return _later_list(app, lambda row: {**row, "setting_email": "new.senco@"
                                         + row["setting_email"].rpartition("@")[2]})


def _home_educated(app: App) -> int:
    """A later list says a child now learns at home (no_setting): the LA arranges the review
    (reg 21), the school the first list named is no longer invited (the calendar sends it a
    cancellation) and the LA owes what the school did. Returns how many were told so."""
    return _later_list(app, lambda row: {**row, "setting_email": "", "no_setting": "yes"},
                       last=True)


def _later_list(app: App, edit: Callable[[dict[str, str]], dict[str, str]], *,
                last: bool = False) -> int:
    """Import, as `ehcbridge import reviews` would, a later list of one row of the demo's list
    changed by ``edit``: the first (or ``last``) review invited for a meeting the caseworkers
    left alone. Returns how many invitees the later list replaced."""
    import csv

    from ehcbridge.intake import import_reviews, parse_datetime

    config = app.settings.config_path
    assert config is not None
    source = config.parent / "reviews.csv"
    with source.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    now = app.clock.now()
    for row in reversed(rows) if last else rows:
        if not row.get("meeting_start") or not row.get("setting_email"):
            continue
        case = app.store.case(row["case_id"])
        # One the caseworkers left alone (not moved): the list's meeting is the one stored.
        if (case.meeting is None or case.meeting.start <= now
                or case.meeting.start != parse_datetime(row["meeting_start"])):
            continue
        changed = edit(row)
        later = config.parent / "reviews-later.csv"
        with later.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*header, *(k for k in changed
                                                               if k not in header)])
            writer.writeheader()
            writer.writerow(changed)
        return import_reviews(app, later, now=now).replaced
    return 0


def engine_line(app: App) -> str:
    """How the engine ran: its worker, lanes and time limit (issue 17)."""
    from ehcbridge.store.queue import ENGINE_STATE, LAST_TICK

    tick = app.store.get_state(ENGINE_STATE, LAST_TICK) or {}
    return (f"Engine: worker {tick.get('worker', '?')}, each plugin in its own lane, calls "
            f"limited to {app.settings.engine.call_timeout_seconds:g} s")


def flags_line(store: Store) -> str:
    """How many reviews, past and current, carry each deadline flag: what happened late, and
    what is only planned late and can still be put right."""
    from ehcbridge import lifecycle as lc

    flags = (lc.FLAG_OVERDUE, lc.FLAG_MISSED, lc.FLAG_LATE, lc.FLAG_MEETING_LATE)
    return "Deadline flags raised on reviews: " + ", ".join(
        f"{store.flag_count(f)} {f}" for f in flags)


def next_reviews_line(store: Store) -> str:
    """How many reviews the decisions opened, and the invitees they start with."""
    from ehcbridge.store.reports import next_review_invitees

    reviews, invitees = next_review_invitees(store)
    return (f"Next reviews opened by a decision: {reviews}, starting with {invitees} invitees "
            "handed on (the family and named professionals; MIS parents, rule invitees and "
            "routed teams are found again before each meeting)")


def retention_line(app: App, work: Path) -> str:
    """The plans that ceased, which ``ehcbridge erase`` lists for erasure (not erased here)."""
    from ehcbridge.store.erase import ceased_before

    ceased = ceased_before(app.store, END + timedelta(days=1))
    if not ceased:
        return "Retention: no plan ceased"
    return (f"Retention: {len(ceased)} plan(s) ceased ({', '.join(ceased)}); once your retention "
            "period has passed, " + command_line(
                "--config", str((work / "ehcbridge.toml").resolve()), "erase",
                "--ceased-before", (END + timedelta(days=1)).isoformat())
            + " lists them, and with --yes erases them")


def access_line(app: App, work: Path, case_id: str) -> str:
    """What a subject access request for one case is given (``ehcbridge export``)."""
    from ehcbridge.operations import export_everything

    document, _failed = export_everything(app, case_id)
    tables, held = document["tables"], document["plugins"]
    rows = sum(len(r) for r in tables.values())
    kept = "".join(f" and {len(records)} records of the {plugin} plugin"
                   for plugin, records in held.items())
    return (f"Subject access: {rows} rows in {len(tables)} tables{kept} are held about "
            f"{case_id}; "
            + command_line("--config", str((work / "ehcbridge.toml").resolve()), "export",
                           case_id) + " gives them all as JSON")


def command_line(*args: str) -> str:
    """A command to paste into any shell: this installation's ``ehcbridge`` by its full path
    (under ``uv run`` it is not on the shell's PATH), its arguments quoted."""
    import shlex
    import sys

    script = Path(sys.executable).parent / "ehcbridge"
    return shlex.join([str(script) if script.exists() else "ehcbridge", *args])


def _summary(app: App, total: TickReport, actions: Counter[str], work: Path,
             outbox: Path) -> dict[str, object]:
    from ehcbridge.lifecycle_cli import duties_line

    store = app.store
    counts = store.delivery_counts()
    by_hook: Counter[str] = Counter()
    by_plugin: dict[str, Counter[str]] = {}
    by_status: Counter[str] = Counter()
    for (hook, plugin, status), n in counts.items():
        by_status[status] += n
        by_plugin.setdefault(plugin, Counter())[status] += n
        by_hook[hook] += n
    events = store.count("events")
    milestones = sum(len(app.milestones(store.case(cid))) for cid in store.case_ids())
    emails = sorted(outbox.glob("*.eml")) if outbox.exists() else []
    lines = [
        "",
        f"Reviews: {len(store.case_ids())} plans; {milestones} milestones on the statutory clock",
        "Caseworker actions: " + (", ".join(f"{n} {k}" for k, n in sorted(actions.items()))
                                  or "none"),
        f"Events: {events} lifecycle events, {total.timers_fired} from the clock",
        "Deliveries per hook: " + ", ".join(f"{h} {n}" for h, n in sorted(by_hook.items())),
        "Deliveries per plugin:",
        *[f"  {p}: " + ", ".join(f"{n} {s}" for s, n in sorted(c.items()))
          for p, c in sorted(by_plugin.items())],
        "Deliveries by status: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())),
        duties_line(store),
        flags_line(store),
        next_reviews_line(store),
        retention_line(app, work),
        access_line(app, work, store.case_ids()[-1]),
        engine_line(app),
        "",
        f"Database: {work / 'ehcbridge.sqlite3'}",
        f"Settings: {work / 'ehcbridge.toml'}",
        f"Outbox: {outbox} ({len(emails)} messages)",
        *demo_notices(app, work, END),
        "Try: " + command_line("--config", str((work / "ehcbridge.toml").resolve()),
                               "review", "show", store.case_ids()[0]),
    ]
    return {"lines": lines, "deliveries": dict(by_status), "hooks": dict(by_hook),
            "plugins": {p: dict(c) for p, c in by_plugin.items()}, "events": events,
            "outbox": [str(p) for p in emails], "workspace": str(work)}
