"""Review lists in: a council's termly list or an EHC Hub export, as CSV.

The whole file is validated before anything is written; a bad row is reported with its row
number, column and value, and (without ``skip_invalid``) nothing from the file is stored.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehcbridge.models import LONDON, Invitee, Plan, Pupil, ReviewKind, Role

if TYPE_CHECKING:
    from ehcbridge.app import App

COLUMNS = ("case_id", "upn", "forename", "surname", "dob", "nc_year", "school_urn",
           "plan_issued", "last_review", "meeting_start", "meeting_end", "location", "online",
           "coordinator_email")
# Optional contact columns so a list can name who to invite (documented in docs/intake.md).
INVITEE_COLUMNS = {
    "parent": Role.PARENT, "young_person": Role.YOUNG_PERSON, "setting": Role.SETTING,
    "sen_officer": Role.LA_SEN_OFFICER, "health": Role.HEALTH, "social_care": Role.SOCIAL_CARE,
}
REQUIRED = ("case_id", "forename", "surname", "plan_issued")
TRUE, FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0", ""}


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


@dataclass(frozen=True)
class RowProblem:
    """One bad value: where it is and what is wrong."""

    path: str
    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        shown = f" {self.value!r}" if self.value else ""
        return f"{self.path} row {self.row}, column {self.column}:{shown} {self.message}"


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


def parse_date(value: str) -> date:
    """ISO (2026-03-10) or UK (10/03/2026) date."""
    value = value.strip()
    try:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            return date.fromisoformat(value)
        day, month, year = value.split("/")
        if len(year) == 4 and len(month) <= 2 and len(day) <= 2:
            return date(int(year), int(month), int(day))
    except ValueError:
        pass
    raise ValueError("is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def parse_datetime(value: str) -> datetime:
    """ISO or UK date and time, read as Europe/London unless an offset is given."""
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S"):
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError("is not a date and time (use YYYY-MM-DDTHH:MM or "
                             "DD/MM/YYYY HH:MM)") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=LONDON)
    return parsed.astimezone(LONDON)


def read_reviews(path: Path, *, meeting_minutes: int = 60
                 ) -> tuple[list[IntakeRow], list[RowProblem]]:
    """Parse and validate a review list; returns good rows and every problem found."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError as exc:
        raise IntakeError(path, [RowProblem(str(path), 0, "-", "",
                                            f"is not UTF-8 text ({exc.reason})")]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise IntakeError(path, [RowProblem(str(path), 1, "-", "", "has no header row")])
    header = {name: (name or "").strip().lower() for name in reader.fieldnames}
    missing = [c for c in REQUIRED if c not in header.values()]
    if missing:
        raise IntakeError(path, [RowProblem(str(path), 1, c, "", "column is missing")
                                 for c in missing])
    rows: list[IntakeRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        values = {header[k]: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(values.values()):
            continue
        row_problems: list[RowProblem] = []
        parsed = _parse_row(str(path), number, values, row_problems, meeting_minutes)
        case_id = values.get("case_id", "")
        if case_id and case_id in seen:
            row_problems.append(RowProblem(str(path), number, "case_id", case_id,
                                           f"repeats row {seen[case_id]}"))
        seen.setdefault(case_id, number)
        if row_problems or parsed is None:
            problems.extend(row_problems)
        else:
            rows.append(parsed)
    return rows, problems


def _parse_row(path: str, number: int, v: dict[str, str], problems: list[RowProblem],
               meeting_minutes: int) -> IntakeRow | None:
    def bad(column: str, message: str) -> None:
        problems.append(RowProblem(path, number, column, v.get(column, ""), message))

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
    issued = get_date("plan_issued", required=True)
    last = get_date("last_review")
    dob = get_date("dob")
    nc_year: int | None = None
    if v.get("nc_year"):
        try:
            nc_year = int(v["nc_year"].upper().removeprefix("Y").removeprefix("R") or "0")
            if not -2 <= nc_year <= 14:
                raise ValueError
        except ValueError:
            bad("nc_year", "is not an NC year (R, 1 to 14)")
    upn = v.get("upn", "").upper() or None
    if upn is not None and (len(upn) != 13 or not upn[0].isalpha() or not upn[1:12].isdigit()):
        bad("upn", "is not a UPN (13 characters: a letter, 11 digits, a letter or digit)")
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
    if end is not None and start is None:
        bad("meeting_end", "is given without meeting_start")
    if start is not None and end is None:
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
        if address:
            if "@" not in address:
                bad(f"{prefix}_email", "is not an email address")
                continue
            invitees.append(Invitee(role=role, email=address,
                                    name=v.get(f"{prefix}_name") or None, source="import"))
    if problems or issued is None:
        return None
    return IntakeRow(
        row=number,
        pupil=Pupil(upn=upn, forename=v["forename"], surname=v["surname"], dob=dob,
                    nc_year=nc_year, school_urn=v.get("school_urn") or None),
        plan=Plan(case_id=v["case_id"], issued_on=issued, last_review_decision=last),
        coordinator_email=email, meeting_start=start, meeting_end=end,
        location=v.get("location") or None, online=online_raw in TRUE, invitees=invitees,
    )


def import_reviews(app: App, path: Path, *, dry_run: bool = False, skip_invalid: bool = False,
                   now: datetime | None = None) -> ImportReport:
    """Validate then upsert a review list by case_id, all in one transaction."""

    rows, problems = read_reviews(path, meeting_minutes=app.settings.engine.meeting_minutes)
    if problems and not skip_invalid:
        raise IntakeError(path, problems)
    report = ImportReport(skipped=problems, dry_run=dry_run, path=path)
    with contextlib.suppress(_DryRun):
        _apply(app, rows, report, now)
    return report


class _DryRun(Exception):
    """Raised inside the import transaction so a dry run rolls everything back."""


def _apply(app: App, rows: list[IntakeRow], report: ImportReport, now: datetime | None) -> None:
    from ehcbridge import timeline
    from ehcbridge.operations import reporter
    from ehcbridge.store import CaseInput, StoreError

    items = []
    for row in rows:
        due = app.review_due(row.plan, row.pupil)
        kind = ReviewKind.ANNUAL
        if row.pupil.dob is not None and timeline.add_months(row.pupil.dob, 60) > due:
            kind = ReviewKind.UNDER_FIVE
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
            results = store.import_cases(conn, items, now or app.clock.now(),
                                         progress=reporter(f"importing {report.path.name}"))
        except StoreError as exc:
            bad = by_case.get(str(exc).split(":", 1)[0])
            raise IntakeError(report.path, [RowProblem(
                str(report.path), bad.row if bad else 0, "meeting_start",
                bad.meeting_start.isoformat() if bad and bad.meeting_start else "",
                str(exc).split(": ", 1)[-1])]) from None
        for status, action in results:
            setattr(report, status, getattr(report, status) + 1)
            if action:
                report.meetings[action] = report.meetings.get(action, 0) + 1
        if report.dry_run:
            raise _DryRun


def summary(report: ImportReport) -> dict[str, Any]:
    """The report as JSON-friendly data."""
    return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
            "meetings": dict(report.meetings), "dry_run": report.dry_run,
            "skipped": [str(p) for p in report.skipped]}
