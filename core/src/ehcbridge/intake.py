"""Review lists in: a council's termly list or an EHC Hub export, as CSV or an Excel workbook.

The whole file is validated before anything is written; a bad row is reported with its file,
sheet, row number, column and value, and (without ``skip_invalid``) nothing from the file is
stored. Values are read through :mod:`ehcbridge.formats`, shared with every other importer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehcbridge.formats import (
    DEFAULT_LIMITS,
    InvalidUPN,
    Limits,
    RowProblem,
    TableError,
    parse_date,
    parse_datetime,
    parse_nc_year,
    read_table,
    validate_upn,
)
from ehcbridge.invite_rules import PlanDetails, check_receiving_school, parse_services
from ehcbridge.models import Invitee, Plan, Pupil, Role

if TYPE_CHECKING:
    from ehcbridge.app import App

__all__ = ["ALIASES", "COLUMNS", "ImportReport", "IntakeError", "IntakeRow", "RowProblem",
           "import_reviews", "parse_date", "parse_datetime", "read_reviews", "summary"]

COLUMNS = ("case_id", "upn", "forename", "surname", "dob", "nc_year", "school_urn",
           "plan_issued", "last_review", "meeting_start", "meeting_end", "location", "online",
           "coordinator_email")
# Optional contact columns so a list can name who to invite (documented in docs/intake.md).
INVITEE_COLUMNS = {
    "parent": Role.PARENT, "young_person": Role.YOUNG_PERSON, "setting": Role.SETTING,
    "sen_officer": Role.LA_SEN_OFFICER, "health": Role.HEALTH, "social_care": Role.SOCIAL_CARE,
}
# Optional columns the invitation rules read (docs/lists-and-returns.md).
DETAIL_COLUMNS = ("receiving_school", "outcome_services")
REQUIRED = ("case_id", "forename", "surname", "plan_issued")
TRUE, FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}
# Other names councils' lists and Hub exports use (after case, spaces, "_" and "-" are
# normalised); listed in docs/intake.md.
ALIASES = {
    "case_ref": "case_id", "case_reference": "case_id", "ehc_case_id": "case_id",
    "ehcp_id": "case_id", "hub_case_id": "case_id", "case_number": "case_id",
    "unique_pupil_number": "upn", "pupil_upn": "upn",
    "first_name": "forename", "forenames": "forename", "given_name": "forename",
    "legal_forename": "forename",
    "last_name": "surname", "family_name": "surname", "legal_surname": "surname",
    "date_of_birth": "dob", "birth_date": "dob",
    "year_group": "nc_year", "ncyear": "nc_year", "ncyearactual": "nc_year",
    "nc_year_actual": "nc_year", "year": "nc_year",
    "urn": "school_urn", "school": "school_urn",
    "plan_issue_date": "plan_issued", "date_plan_issued": "plan_issued",
    "plan_issued_date": "plan_issued", "ehcp_issued": "plan_issued", "issued": "plan_issued",
    "last_review_date": "last_review", "last_annual_review": "last_review",
    "meeting_date": "meeting_start", "meeting": "meeting_start", "review_meeting": "meeting_start",
    "meeting_finish": "meeting_end", "venue": "location",
    "coordinator": "coordinator_email", "caseworker_email": "coordinator_email",
}
# Longest value each column may hold (what the store keeps); longer is a row error.
COLUMN_CHARS = {"case_id": 64, "forename": 100, "surname": 100, "school_urn": 10,
                "location": 500, "coordinator_email": 254, "receiving_school": 254,
                "outcome_services": 1000}


class IntakeError(Exception):
    """The file cannot be imported; ``problems`` lists every bad row."""

    def __init__(self, path: Path, problems: list[RowProblem]) -> None:
        self.path = path
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        rows = len({p.row for p in problems})
        super().__init__(f"{path}: {len(problems)} problem(s) in {rows} row(s), nothing imported: "
                         f"{shown}{more}")


@dataclass
class IntakeRow:
    """One valid row of a review list."""

    row: int
    pupil: Pupil
    plan: Plan
    coordinator_email: str | None
    meeting_start: datetime | None
    meeting_end: datetime | None
    location: str | None
    online: bool
    invitees: list[Invitee] = field(default_factory=list)
    details: PlanDetails | None = None


@dataclass
class ImportReport:
    """What an import did (or, with --dry-run, would do)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    meetings: dict[str, int] = field(default_factory=dict)
    skipped: list[RowProblem] = field(default_factory=list)
    dry_run: bool = False
    path: Path = Path("-")
    warnings: list[str] = field(default_factory=list)
    encoding: str | None = None
    sheet: str | None = None
    overdue: int = 0  # reviews already past their due date when imported


@dataclass
class ReadResult:
    """A review list read and validated: good rows, problems and what to warn about."""

    rows: list[IntakeRow]
    problems: list[RowProblem]
    warnings: list[str] = field(default_factory=list)
    encoding: str | None = None
    sheet: str | None = None

    def __iter__(self) -> Any:
        """Unpack as ``rows, problems`` (the older two-value form)."""
        return iter((self.rows, self.problems))


def read_reviews(path: Path, *, meeting_minutes: int = 60, sheet: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> ReadResult:
    """Parse and validate a review list (CSV or .xlsx); returns good rows and every problem."""
    try:
        table = read_table(path, sheet=sheet, aliases=ALIASES, limits=limits)
    except TableError as exc:
        raise IntakeError(path, exc.problems) from None
    missing = [c for c in REQUIRED if c not in table.header]
    if missing:
        raise IntakeError(path, [table.problem(1, c, "", "column is missing") for c in missing])
    rows: list[IntakeRow] = []
    problems: list[RowProblem] = list(table.problems)
    bad_rows = {p.row for p in problems}
    seen: dict[str, int] = {}
    upns: dict[str, list[tuple[int, str]]] = {}
    for number, values in table.rows:
        row_problems: list[RowProblem] = []
        parsed = _parse_row(table.problem, number, values, row_problems, meeting_minutes)
        case_id = values.get("case_id", "")
        if case_id and case_id in seen:
            row_problems.append(table.problem(number, "case_id", case_id,
                                              f"repeats row {seen[case_id]}"))
        seen.setdefault(case_id, number)
        if row_problems or parsed is None or number in bad_rows:
            problems.extend(row_problems)
        else:
            rows.append(parsed)
            if parsed.pupil.upn:
                upns.setdefault(parsed.pupil.upn, []).append((number, parsed.plan.case_id))
    problems.sort(key=lambda p: p.row)
    warnings = [
        f"{table.path}: rows {', '.join(str(n) for n, _ in found)} (case ids "
        f"{', '.join(c for _, c in found)}) share one UPN: they will be one pupil with "
        f"{len(found)} plans; check the list if they are different children"
        for found in upns.values() if len(found) > 1
    ]
    if table.encoding not in (None, "UTF-8", "UTF-8 with BOM"):
        warnings.insert(0, f"{table.path}: read as {table.encoding} text; check accented "
                           "names, or save the list as CSV UTF-8")
    return ReadResult(rows, problems, warnings, table.encoding, table.sheet)


def _parse_row(locate: Any, number: int, v: dict[str, str], problems: list[RowProblem],
               meeting_minutes: int) -> IntakeRow | None:
    def bad(column: str, message: str) -> None:
        problems.append(locate(number, column, v.get(column, ""), message))

    def get_date(column: str, required: bool = False) -> date | None:
        if not v.get(column):
            if required:
                bad(column, "is required")
            return None
        try:
            return parse_date(v[column])
        except ValueError as exc:
            bad(column, str(exc))
            return None

    for column in ("case_id", "forename", "surname"):
        if not v.get(column):
            bad(column, "is required")
    for column, chars in COLUMN_CHARS.items():
        if len(v.get(column, "")) > chars:
            bad(column, f"is longer than {chars} characters")
    issued = get_date("plan_issued", required=True)
    last = get_date("last_review")
    dob = get_date("dob")
    nc_year: int | None = None
    try:
        nc_year = parse_nc_year(v.get("nc_year"))
    except ValueError as exc:
        bad("nc_year", str(exc))
    upn: str | None = None
    if v.get("upn"):
        try:
            upn = validate_upn(v["upn"])
        except InvalidUPN as exc:
            bad("upn", "is not a valid UPN: " + str(exc).removeprefix("UPN "))
    urn = v.get("school_urn") or None
    if urn is not None and not (urn.isascii() and urn.isdigit()):
        bad("school_urn", "is not a school URN (digits)")
    start = end = None
    for column in ("meeting_start", "meeting_end"):
        if v.get(column):
            try:
                value = parse_datetime(v[column])
            except ValueError as exc:
                bad(column, str(exc))
                continue
            if column == "meeting_start":
                start = value
            else:
                end = value
    if end is not None and start is None and not v.get("meeting_start"):
        bad("meeting_end", "is given without meeting_start")
    if start is not None and end is None and not v.get("meeting_end"):
        end = start + timedelta(minutes=meeting_minutes)
    if start is not None and end is not None and end <= start:
        bad("meeting_end", "is not after meeting_start")
    online_raw = v.get("online", "").lower()
    if online_raw not in TRUE | FALSE:
        bad("online", "is not true or false")
    if issued is not None and last is not None and last < issued:
        bad("last_review", "is before plan_issued")
    email = v.get("coordinator_email") or None
    if email is not None and "@" not in email:
        bad("coordinator_email", "is not an email address")
    invitees = []
    for prefix, role in INVITEE_COLUMNS.items():
        address = v.get(f"{prefix}_email")
        name = v.get(f"{prefix}_name") or None
        if address:
            if "@" not in address or len(address) > 254:
                bad(f"{prefix}_email", "is not an email address")
                continue
            if name is not None and len(name) > 200:
                bad(f"{prefix}_name", "is longer than 200 characters")
                continue
            invitees.append(Invitee(role=role, email=address, name=name, source="import"))
    receiving = v.get("receiving_school") or None
    if receiving is not None and (why := check_receiving_school(receiving)):
        bad("receiving_school", why)
    services = parse_services(v.get("outcome_services", ""))
    if problems or issued is None:
        return None
    return IntakeRow(
        row=number,
        pupil=Pupil(upn=upn, forename=v["forename"], surname=v["surname"], dob=dob,
                    nc_year=nc_year, school_urn=urn),
        plan=Plan(case_id=v["case_id"], issued_on=issued, last_review_decision=last),
        coordinator_email=email, meeting_start=start, meeting_end=end,
        location=v.get("location") or None, online=online_raw in TRUE, invitees=invitees,
        details=PlanDetails(receiving, services) if "receiving_school" in v
        or "outcome_services" in v else None,
    )


def import_reviews(app: App, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                   now: datetime | None = None, sheet: str | None = None) -> ImportReport:
    """Validate then upsert a review list by case_id, all in one transaction."""

    read = read_reviews(path, meeting_minutes=app.settings.engine.meeting_minutes, sheet=sheet,
                        limits=app.settings.limits)
    if read.problems and not skip_invalid:
        raise IntakeError(path, read.problems)
    report = ImportReport(skipped=read.problems, dry_run=dry_run, path=path,
                          warnings=read.warnings, encoding=read.encoding, sheet=read.sheet)
    with contextlib.suppress(_DryRun):
        _apply(app, read.rows, report, now, skip_invalid)
    return report


def import_row(app: App, values: dict[str, str], *, source: str) -> ImportReport:
    """Validate and upsert one review-list row given as column values (the webhook's path).

    Raises IntakeError (row 1 of ``source``) naming each bad column; nothing is half-applied.
    """
    problems: list[RowProblem] = []

    def locate(number: int, column: str, value: str, message: str) -> RowProblem:
        return RowProblem(source, number, column, value, message)

    row = _parse_row(locate, 1, {k.strip().lower(): (v or "").strip() for k, v in values.items()},
                     problems, app.settings.engine.meeting_minutes)
    if problems or row is None:
        raise IntakeError(Path(source), problems)
    report = ImportReport(path=Path(source))
    _apply(app, [row], report, None)
    return report


class _DryRun(Exception):
    """Raised inside the import transaction so a dry run rolls everything back."""


def _apply(app: App, rows: list[IntakeRow], report: ImportReport, now: datetime | None,
           skip_invalid: bool = False) -> None:
    from ehcbridge import lifecycle, timeline
    from ehcbridge.operations import reporter
    from ehcbridge.store import CaseInput, StoreError, ValueRejected

    items = []
    policy, today = app.lifecycle_policy(), app.clock.now().date()
    for row in rows:
        kind, due = lifecycle.open_review(row.plan, row.pupil, policy, as_of=today)
        report.overdue += due < today  # flagged "overdue" by the lifecycle
        meeting = None
        if row.meeting_start is not None and row.meeting_end is not None:
            meeting = (row.meeting_start, row.meeting_end, row.location, row.online)
        items.append(CaseInput(pupil=row.pupil, plan=row.plan,
                               coordinator_email=row.coordinator_email, review_due=due,
                               kind=kind, pfa=timeline.preparing_for_adulthood(row.pupil),
                               invitees=row.invitees, meeting=meeting))
    by_case = {row.plan.case_id: row for row in rows}
    store = app.store
    with store.begin() as conn:
        try:
            try:
                results = store.import_cases(conn, items, now or app.clock.now(),
                                             progress=reporter(f"importing {report.path.name}"))
            except ValueRejected as exc:  # values the store cannot hold: no value shown
                rejected = [RowProblem(str(report.path), by_case[case_id].row
                                       if case_id in by_case else 0, _csv_column(column), "",
                                       problem, sheet=report.sheet)
                            for case_id, column, problem in exc.problems]
                if not skip_invalid:
                    raise IntakeError(report.path, rejected) from None
                report.skipped += rejected  # checked before any write: import the rest
                refused = {case_id for case_id, _, _ in exc.problems}
                results = store.import_cases(
                    conn, [i for i in items if i.plan.case_id not in refused],
                    now or app.clock.now())
        except StoreError as exc:
            bad = by_case.get(exc.case_id or "")
            raise IntakeError(report.path, [RowProblem(
                str(report.path), bad.row if bad else 0, exc.field or "case_id",
                exc.value or "", str(exc).split(": ", 1)[-1], sheet=report.sheet)]) from None
        from ehcbridge.invite_rules import save_details

        save_details(conn, {r.plan.case_id: r.details for r in rows if r.details is not None})
        for status, action in results:
            setattr(report, status, getattr(report, status) + 1)
            if action:
                report.meetings[action] = report.meetings.get(action, 0) + 1
        if report.dry_run:
            raise _DryRun


def _csv_column(column: str) -> str:
    """The review list column a store column comes from (``sen_officer_email``...)."""
    for prefix, role in INVITEE_COLUMNS.items():
        if column.startswith(f"{role.value}_"):
            return prefix + column.removeprefix(role.value)
    return column


def summary(report: ImportReport) -> dict[str, Any]:
    """The report as JSON-friendly data."""
    return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "meetings": dict(report.meetings), "dry_run": report.dry_run,
            "skipped": [str(p) for p in report.skipped], "warnings": list(report.warnings),
            "encoding": report.encoding, "sheet": report.sheet, "overdue": report.overdue}


def demo_workbook_check(app: App, csv_path: Path, echo: Any) -> ImportReport:
    """Demo step: the bundled list saved as an Excel workbook, read back through the same path.

    A dry run, so it writes nothing: every plan should come back unchanged, showing the workbook
    and the CSV give the same data (dates, years, UPN check letters).
    """
    import openpyxl

    read = read_reviews(csv_path, limits=app.settings.limits)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Reviews"
    table = read_table(csv_path, aliases=ALIASES)
    sheet.append(table.header)
    for _, values in table.rows:
        sheet.append([values.get(column, "") for column in table.header])
    path = csv_path.with_suffix(".xlsx")
    book.save(path)
    report = import_reviews(app, path, dry_run=True, sheet="Reviews")
    upns = sum(1 for row in read.rows if row.pupil.upn)
    echo(f"  the same list as an Excel workbook (sheet {report.sheet!r}): {report.unchanged} "
         f"plans unchanged, {upns} UPNs passed the DfE check letter, "
         f"{len(report.warnings)} warning(s)")
    return report
