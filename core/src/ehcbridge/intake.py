"""Review lists in: a council's termly list or an EHC Hub export, as CSV or an Excel workbook.

The file is read once, row by row, and written in chunks inside one transaction; a bad row is
reported with its file, sheet, row number, column and value, and (without ``skip_invalid``)
the transaction is rolled back, so nothing from the file is stored. Values are read through
:mod:`ehcbridge.formats`, shared with every other importer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    TableStream,
    parse_date,
    parse_datetime,
    parse_nc_year,
    read_table,
    stream_table,
    validate_upn,
)
from ehcbridge.invite_rules import PlanDetails, check_receiving_school, parse_services
from ehcbridge.models import Invitee, Plan, Pupil, Role
from ehcbridge.timeline import post16_move_problem

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
# Optional: a young person's move to another post-16 institution (reg 18(2), docs/intake.md).
MOVE_COLUMN = "post16_move"
# Optional: true when the child attends no school or college (reg 21, docs/intake.md).
NO_SETTING_COLUMN = "no_setting"
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
    "post16_move_date": MOVE_COLUMN, "post16_transfer_date": MOVE_COLUMN,
    "post_16_move": MOVE_COLUMN, "post_16_move_date": MOVE_COLUMN,
    "post_16_transfer_date": MOVE_COLUMN, "college_move_date": MOVE_COLUMN,
    "not_in_school": NO_SETTING_COLUMN, "not_at_school": NO_SETTING_COLUMN,
    "elective_home_education": NO_SETTING_COLUMN, "home_educated": NO_SETTING_COLUMN,
    "ehe": NO_SETTING_COLUMN, "la_arranged": NO_SETTING_COLUMN,
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
    no_setting_listed: bool = True  # False: the list has no no_setting column


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
    replaced: int = 0  # invitees of an earlier list this one names someone else instead of


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
    scan = _Scan(_open(path, sheet, limits), meeting_minutes)
    rows = list(scan.rows())
    return ReadResult(rows, scan.problems, scan.warnings(), scan.stream.encoding,
                      scan.stream.sheet)


def _open(path: Path, sheet: str | None, limits: Limits) -> TableStream:
    """The list opened for reading row by row, its required columns checked."""
    try:
        stream = stream_table(path, sheet=sheet, aliases=ALIASES, limits=limits)
    except TableError as exc:
        raise IntakeError(path, exc.problems) from None
    missing = [c for c in REQUIRED if c not in stream.header]
    if missing:
        raise IntakeError(path, [stream.problem(1, c, "", "column is missing")
                                 for c in missing])
    return stream


class _Scan:
    """One pass over a list: good rows as they are read, while collecting every problem and
    what to warn about. Holds a case id and a UPN per row, never the rows themselves, so a
    list of any length is read at constant memory."""

    def __init__(self, stream: TableStream, meeting_minutes: int) -> None:
        self.stream = stream
        self.meeting_minutes = meeting_minutes
        self.problems: list[RowProblem] = []
        self.read = 0  # data rows read, good or bad
        self._seen: dict[str, int] = {}
        self._upn_first: dict[str, str] = {}
        self._shared: dict[str, list[tuple[int, str]]] = {}

    def rows(self) -> Iterator[IntakeRow]:
        """Each good row in file order; problems (and a repeated case id) are collected."""
        stream, seen = self.stream, self._seen
        try:
            for number, values, row_problems in stream.rows():
                self.read += 1
                parsed = _parse_row(stream.problem, number, values, row_problems,
                                    self.meeting_minutes)
                case_id = values.get("case_id", "")
                if case_id and case_id in seen:
                    row_problems.append(stream.problem(number, "case_id", case_id,
                                                       f"repeats row {seen[case_id]}"))
                else:
                    seen[case_id] = number
                if row_problems or parsed is None:
                    self.problems += row_problems
                    continue
                upn = parsed.pupil.upn
                if upn:
                    first = self._upn_first.setdefault(upn, case_id)
                    if first != case_id:
                        self._shared.setdefault(upn, [(seen[first], first)]).append(
                            (number, case_id))
                yield parsed
        except TableError as exc:
            raise IntakeError(Path(stream.path), exc.problems) from None
        self.problems.sort(key=lambda p: p.row)

    def warnings(self) -> list[str]:
        """Rows sharing a UPN, and a list read in an encoding that may garble names."""
        shown = self.stream.path
        warnings = [
            f"{shown}: rows {', '.join(str(n) for n, _ in found)} (case ids "
            f"{', '.join(c for _, c in found)}) share one UPN: they will be one pupil with "
            f"{len(found)} plans; check the list if they are different children"
            for found in self._shared.values()]
        if self.stream.encoding not in (None, "UTF-8", "UTF-8 with BOM"):
            warnings.insert(0, f"{shown}: read as {self.stream.encoding} text; check accented "
                               "names, or save the list as CSV UTF-8")
        return warnings


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
    move = get_date(MOVE_COLUMN)
    nc_year: int | None = None
    try:
        nc_year = parse_nc_year(v.get("nc_year"))
    except ValueError as exc:
        bad("nc_year", str(exc))
    if move is not None and issued is not None and (
            why := post16_move_problem(move, nc_year, last or issued)):
        bad(MOVE_COLUMN, f"is refused: {why}")
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
    no_setting_raw = v.get(NO_SETTING_COLUMN, "").lower()
    if no_setting_raw not in TRUE | FALSE:
        bad(NO_SETTING_COLUMN, "is not true or false")
    no_setting = no_setting_raw in TRUE
    if no_setting and v.get("setting_email"):
        bad("setting_email", f"is given, but {NO_SETTING_COLUMN} says the child attends no "
                             "school or college (reg 21: the LA arranges the review)")
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
        plan=Plan(case_id=v["case_id"], issued_on=issued, last_review_decision=last,
                  post16_move=move, no_setting=no_setting),
        coordinator_email=email, meeting_start=start, meeting_end=end,
        location=v.get("location") or None, online=online_raw in TRUE, invitees=invitees,
        no_setting_listed=NO_SETTING_COLUMN in v,
        details=PlanDetails(receiving, services) if "receiving_school" in v
        or "outcome_services" in v else None,
    )


def import_reviews(app: App, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                   now: datetime | None = None, sheet: str | None = None) -> ImportReport:
    """Validate and upsert a review list by case_id, all in one transaction.

    The list is read once, row by row, and written in chunks as it is read; a problem anywhere
    (without ``skip_invalid``) rolls the whole transaction back, so nothing is half-applied,
    and the rest of the file is still checked so every problem is reported at once.
    """
    from ehcbridge.operations import reporter

    scan = _Scan(_open(path, sheet, app.settings.limits), app.settings.engine.meeting_minutes)
    report = ImportReport(dry_run=dry_run, path=path, encoding=scan.stream.encoding,
                          sheet=scan.stream.sheet)
    show = reporter(f"importing {path.name}")
    size = path.stat().st_size
    store = app.store
    with contextlib.suppress(_DryRun), store.begin() as conn:
        writer = _Writer(app, conn, report, now, skip_invalid)
        chunk: list[IntakeRow] = []
        for row in scan.rows():
            if scan.problems and not skip_invalid:
                continue  # the import fails: read on only to report every problem
            chunk.append(row)
            if len(chunk) >= _CHUNK:
                writer.write(chunk)
                chunk = []
                # Rows so far, and the total the bytes read so far suggest (exact at the end).
                done = scan.stream.position()
                show(writer.rows, max(writer.rows, writer.rows * size // done) if done else 0)
        if not (scan.problems and not skip_invalid):
            writer.write(chunk)
        problems = scan.problems + writer.rejected
        if problems and not skip_invalid:
            problems.sort(key=lambda p: p.row)
            raise IntakeError(path, problems)
        if writer.rows:
            show(writer.rows, writer.rows)
        report.skipped = sorted(problems, key=lambda p: p.row)
        report.warnings = scan.warnings()
        if report.dry_run:
            raise _DryRun
    if not report.dry_run:
        _after_replacing(app, writer.replaced_in)
    return report


def _after_replacing(app: App, case_ids: list[str]) -> None:
    """Duties whose only notices not sent were to invitees the list replaced: met now."""
    from ehcbridge.notices.delivery import after_withdrawal

    for case_id in case_ids:
        review_id = app.store.case(case_id).review.id or 0
        duties = frozenset(r["duty"] for r in app.store.notices(review_id=review_id)
                           if r["status"] == "withdrawn" and r["duty"])
        if duties:
            after_withdrawal(app, review_id, duties)


_CHUNK = 2000  # rows written at a time: large enough for bulk writes, small enough to stream


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
    """Write already-validated rows in one transaction (a single row from the webhook)."""
    with app.store.begin() as conn:
        writer = _Writer(app, conn, report, now, skip_invalid)
        writer.write(rows)
        if writer.rejected:
            raise IntakeError(report.path, writer.rejected)
    _after_replacing(app, writer.replaced_in)


class _Writer:
    """Writes chunks of good rows into the import's transaction and counts what happened."""

    def __init__(self, app: App, conn: Any, report: ImportReport, now: datetime | None,
                 skip_invalid: bool) -> None:
        from ehcbridge import lifecycle, timeline
        from ehcbridge.invite_rules import save_details
        from ehcbridge.store import CaseInput

        self.app, self.conn, self.report, self.skip_invalid = app, conn, report, skip_invalid
        self.now = now or app.clock.now()
        self.policy, self.today = app.lifecycle_policy(), app.clock.now().date()
        self.rejected: list[RowProblem] = []  # values the store cannot hold
        self.rows = 0
        self.replaced_in: list[str] = []  # cases whose list named someone new for a role
        self._open_review, self._pfa = lifecycle.open_review, timeline.preparing_for_adulthood
        self._case_input, self._save_details = CaseInput, save_details

    def write(self, rows: list[IntakeRow]) -> None:
        """Write one chunk; values the store refuses become row problems (no value shown)."""
        from ehcbridge.store import StoreError, ValueRejected
        from ehcbridge.store.errors import check_cases

        if not rows:
            return
        report, policy, today = self.report, self.policy, self.today
        items = []
        for row in rows:
            kind, due = self._open_review(row.plan, row.pupil, policy, as_of=today)
            meeting = None
            if row.meeting_start is not None and row.meeting_end is not None:
                meeting = (row.meeting_start, row.meeting_end, row.location, row.online)
            items.append(self._case_input(
                pupil=row.pupil, plan=row.plan, coordinator_email=row.coordinator_email,
                # Reg 20(6): the review in Year 9, read at its due date, as the decision does.
                review_due=due, kind=kind, pfa=self._pfa(row.pupil, on=due, as_of=today),
                invitees=row.invitees,
                meeting=meeting, no_setting_listed=row.no_setting_listed))
        by_case = {row.plan.case_id: row for row in rows}
        try:
            if self.rejected and not self.skip_invalid:
                check_cases(items)  # the import fails: only look for more to report
                return
            try:
                results = self.app.store.import_cases(self.conn, items, self.now)
            except ValueRejected as exc:  # checked before any write of this chunk
                self.rejected += [RowProblem(str(report.path), by_case[case_id].row
                                             if case_id in by_case else 0, _csv_column(column),
                                             "", problem, sheet=report.sheet)
                                  for case_id, column, problem in exc.problems]
                if not self.skip_invalid:
                    return  # the import fails; the rest of the file is still checked
                refused = {case_id for case_id, _, _ in exc.problems}
                rows = [r for r in rows if r.plan.case_id not in refused]
                results = self.app.store.import_cases(
                    self.conn, [i for i in items if i.plan.case_id not in refused], self.now)
        except StoreError as exc:
            bad = by_case.get(exc.case_id or "")
            raise IntakeError(report.path, [RowProblem(
                str(report.path), bad.row if bad else 0, exc.field or "case_id",
                exc.value or "", str(exc).split(": ", 1)[-1], sheet=report.sheet)]) from None
        self._save_details(self.conn, {r.plan.case_id: r.details for r in rows
                                       if r.details is not None})
        # Counted after the store has read the list against what it knows (a later decision
        # keeps the due date it gave): flagged "overdue" by the lifecycle.
        kept = {r.plan.case_id for r in rows}
        report.overdue += sum(i.review_due < today for i in items if i.plan.case_id in kept)
        report.replaced += sum(i.replaced for i in items if i.plan.case_id in kept)
        self.replaced_in += [i.plan.case_id for i in items
                             if i.replaced and i.plan.case_id in kept]
        for status, action in results:
            setattr(report, status, getattr(report, status) + 1)
            if action:
                report.meetings[action] = report.meetings.get(action, 0) + 1
        self.rows += len(rows)


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
            "encoding": report.encoding, "sheet": report.sheet, "overdue": report.overdue,
            "invitees_replaced": report.replaced}


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
