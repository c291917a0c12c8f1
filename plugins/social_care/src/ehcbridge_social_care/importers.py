"""Import social care review dates from CSV extracts and iCalendar feeds, matched to pupils by UPN.

Three layouts:

* ``ssda903``: the looked-after children return's Reviews table (``CHILD, DOB, REVIEW,
  REVIEW_CODE``); CHILD is the council's child id, so a mapping file (social care id -> UPN) and an
  agreeing date of birth are required.
* ``generic``: ``upn`` or ``social_care_id`` (+ ``dob``), ``review_type`` (cla, cp, cin),
  ``review_date``, and optionally ``social_worker_email``, ``social_worker_name``, ``team``,
  ``period_start``.
* ``ics``: an iCalendar file or URL of a team's review meetings (see :func:`parse_ics`).

A malformed row refuses the whole file (or is skipped with ``skip_invalid``); a well-formed row that
matches no pupil with an open review is reported as unmatched and never guessed.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ehcbridge import plugin_settings
from ehcbridge.events import HookContext
from ehcbridge.models import LONDON, Invitee, Role

from .records import (
    KINDS,
    META_KEY,
    STATE_PREFIX,
    ChildRecord,
    ReviewDate,
    Worker,
)
from .settings import SocialCareSettings

LAYOUTS = ("ssda903", "generic", "ics")
UPN_RE = re.compile(r"^[A-Z][0-9]{11}[0-9A-Z]$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PN_RE = re.compile(r"^PN[0-7]$")
NO_UPN_CODES = frozenset(f"UN{n}" for n in range(1, 8))  # SSDA903: reason a child has no UPN
MAX_FEED_BYTES = 20 * 1024 * 1024
SOURCE_NAME = "social_care"


class ImportRefused(Exception):
    """The file (or mapping file) has bad rows; nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class FeedError(Exception):
    """The feed or file could not be read; the message never shows a URL's path or token."""


@dataclass(frozen=True)
class RowError:
    """A malformed value: which file, row (or feed event) and column, and what is wrong."""

    file: str
    row: int
    column: str
    message: str
    unit: str = "row"

    def __str__(self) -> str:
        return f"{self.file}: {self.unit} {self.row}, column {self.column}: {self.message}"


@dataclass(frozen=True)
class Unmatched:
    """A well-formed row that was not matched to a pupil, and why."""

    row: int
    reason: str
    unit: str = "row"

    def __str__(self) -> str:
        return f"{self.unit} {self.row}: {self.reason}"


@dataclass(frozen=True)
class ParsedRow:
    """One review date as read from the source, before matching."""

    row: int
    kind: str
    day: date | None
    upn: str | None = None
    child_id: str | None = None
    dob: date | None = None
    email: str | None = None
    worker_name: str | None = None
    team: str | None = None
    period_start: date | None = None
    uid: str | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class MappingEntry:
    """A social care id's UPN and, when the mapping file has it, date of birth."""

    upn: str
    dob: date | None
    row: int


@dataclass
class ImportReport:
    """What an import read, matched, stored and left out."""

    source: str
    layout: str
    rows: int = 0
    matched_rows: int = 0
    children: int = 0
    invitees: int = 0
    ignored: int = 0
    unmatched: list[Unmatched] = field(default_factory=list)
    skipped_invalid: list[RowError] = field(default_factory=list)
    dry_run: bool = False


# Reading values ------------------------------------------------------------------------------


def parse_day(value: str) -> date:
    """``YYYY-MM-DD`` or ``DD/MM/YYYY`` (the SSDA903 form); anything else is an error."""
    value = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def normalise_upn(value: str) -> str:
    """Upper-case a UPN and check its shape (a letter, 11 digits, a digit or letter)."""
    upn = value.strip().upper()
    if not UPN_RE.match(upn):
        raise ValueError("not a UPN (13 characters: a letter, 11 digits, a digit or letter)")
    return upn


class _Row:
    """A CSV row with case-insensitive column access that collects errors."""

    def __init__(self, file: str, number: int, values: dict[str, str],
                 errors: list[RowError]) -> None:
        self.file, self.number, self.errors = file, number, errors
        self.values = {k.strip().lower(): (v or "").strip() for k, v in values.items() if k}

    def text(self, column: str) -> str | None:
        return self.values.get(column.lower()) or None

    def error(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.file, self.number, column, message))

    def day(self, column: str, *, required: bool = False) -> date | None:
        raw = self.text(column)
        if raw is None:
            if required:
                self.error(column, "is empty")
            return None
        try:
            return parse_day(raw)
        except ValueError as exc:
            self.error(column, str(exc))
            return None

    def upn(self, column: str) -> str | None:
        raw = self.text(column)
        if raw is None:
            return None
        try:
            return normalise_upn(raw)
        except ValueError as exc:
            self.error(column, str(exc))
            return None

    def email(self, column: str) -> str | None:
        raw = self.text(column)
        if raw is not None and not EMAIL_RE.match(raw):
            self.error(column, f"{raw!r} is not an e-mail address")
            return None
        return raw.lower() if raw else None


def _decode(data: bytes) -> str:
    # Case systems and spreadsheets export UTF-8 (often with a BOM) or Windows-1252.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def _csv_rows(text: str) -> tuple[list[str], Iterable[tuple[int, dict[str, str]]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    # Row numbers as a spreadsheet shows them: the header is row 1.
    rows = ((n, row) for n, row in enumerate(reader, start=2)
            if any((v or "").strip() for v in row.values() if isinstance(v, str)))
    return header, rows


def _require_columns(file: str, header: list[str], needed: Iterable[str]) -> None:
    have = {h.lower() for h in header}
    missing = [c for c in needed if c.lower() not in have]
    if missing:
        raise ImportRefused([RowError(file, 1, c, "column missing from the header")
                             for c in missing])


# Layouts -------------------------------------------------------------------------------------


def detect_layout(source: str, data: bytes | None) -> str:
    """Tell the layout from a URL, the file extension, or the CSV header."""
    if source.startswith(("http://", "https://")) or source.lower().endswith((".ics", ".ical")):
        return "ics"
    if data is not None:
        text = _decode(data[:4096]).lstrip()
        if text.upper().startswith("BEGIN:VCALENDAR"):
            return "ics"
        header = {h.strip().lower() for h in next(csv.reader(io.StringIO(text)), [])}
        if {"child", "review"} <= header:
            return "ssda903"
        if "review_type" in header:
            return "generic"
    raise ValueError(f"{source}: cannot tell the layout from the header; use --layout "
                     "ssda903, generic or ics")


def parse_ssda903(text: str, file: str) -> tuple[list[ParsedRow], list[RowError]]:
    """Rows of an SSDA903 Reviews table: every row is a CLA review of the child CHILD."""
    header, rows = _csv_rows(text)
    _require_columns(file, header, ("CHILD", "DOB", "REVIEW"))
    parsed: list[ParsedRow] = []
    errors: list[RowError] = []
    for number, values in rows:
        row_errors: list[RowError] = []
        row = _Row(file, number, values, row_errors)
        child = row.text("CHILD")
        if child is None:
            row.error("CHILD", "is empty")
        dob = row.day("DOB", required=True)
        day = row.day("REVIEW", required=True)
        code = row.text("REVIEW_CODE")
        if code is not None and not PN_RE.match(code.upper()):
            row.error("REVIEW_CODE", f"{code!r} is not a participation code PN0-PN7")
        if row_errors:
            errors.extend(row_errors)
            continue
        parsed.append(ParsedRow(row=number, kind="cla", day=day, child_id=child, dob=dob))
    return parsed, errors


def parse_generic(text: str, file: str) -> tuple[list[ParsedRow], list[RowError]]:
    """Rows of the generic layout (see the module docstring for its columns)."""
    header, rows = _csv_rows(text)
    _require_columns(file, header, ("review_type", "review_date"))
    lower = {h.lower() for h in header}
    if not {"upn", "social_care_id"} & lower:
        raise ImportRefused([RowError(file, 1, "upn", "header needs a upn or social_care_id "
                                                       "column")])
    parsed: list[ParsedRow] = []
    errors: list[RowError] = []
    for number, values in rows:
        row_errors: list[RowError] = []
        row = _Row(file, number, values, row_errors)
        upn = row.upn("upn")
        child = row.text("social_care_id")
        if upn is None and child is None and not row_errors:
            row.error("upn", "is empty and so is social_care_id")
        kind_raw = row.text("review_type")
        kind = (kind_raw or "").lower()
        if kind not in KINDS:
            row.error("review_type", f"{kind_raw or ''!r} is not one of cla, cp, cin")
        day = row.day("review_date")
        period_start = row.day("period_start")
        if day is None and period_start is None and not row_errors:
            row.error("review_date", "is empty (and no period_start to project from)")
        dob = row.day("dob")
        email = row.email("social_worker_email")
        if row_errors:
            errors.extend(row_errors)
            continue
        parsed.append(ParsedRow(
            row=number, kind=kind, day=day, upn=upn, child_id=None if upn else child, dob=dob,
            email=email, worker_name=row.text("social_worker_name"), team=row.text("team"),
            period_start=period_start,
        ))
    return parsed, errors


_DESCRIPTION_RE = re.compile(r"^\s*(upn|child id|dob|review type|team)\s*:\s*(.+?)\s*$",
                             re.IGNORECASE | re.MULTILINE)


def parse_ics(data: bytes, file: str) -> tuple[list[ParsedRow], list[RowError], int]:
    """Review meetings of an iCalendar feed: (rows, errors, events ignored).

    Convention, per VEVENT (properties win over DESCRIPTION lines):

    * child: ``X-EHCBRIDGE-UPN`` or a ``UPN: ...`` line in DESCRIPTION; or ``X-EHCBRIDGE-CHILD-ID``
      / ``Child ID: ...`` with ``X-EHCBRIDGE-DOB`` / ``DOB: ...`` (needs the mapping file);
    * type: ``X-EHCBRIDGE-REVIEW-TYPE``, a ``Review type: ...`` line, or a CATEGORIES value of
      cla, cp or cin;
    * date: DTSTART (a date-time is read in Europe/London); worker: ORGANIZER (address and CN);
      team: ``X-EHCBRIDGE-TEAM`` on the event or the calendar, or a ``Team: ...`` line;
    * ``STATUS:CANCELLED`` removes the date an earlier import took from the same UID.

    SUMMARY is never read (it often names the child). Events with no child identifier at all
    are not reviews: they are counted as ignored.
    """
    import icalendar  # vendor SDK: only when importing a feed

    try:
        cal = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise ImportRefused([RowError(file, 0, "VCALENDAR", f"not an iCalendar file ({exc})",
                                      unit="event")]) from exc
    calendar_team = _text(cal.get("X-EHCBRIDGE-TEAM"))
    parsed: list[ParsedRow] = []
    errors: list[RowError] = []
    ignored = 0
    for number, event in enumerate(cal.walk("VEVENT"), start=1):
        row_errors: list[RowError] = []

        def error(column: str, message: str, number: int = number,
                  sink: list[RowError] = row_errors) -> None:
            sink.append(RowError(file, number, column, message, unit="event"))

        described = {k.lower(): v for k, v in
                     _DESCRIPTION_RE.findall(_text(event.get("DESCRIPTION")) or "")}
        upn_raw = _text(event.get("X-EHCBRIDGE-UPN")) or described.get("upn")
        child = _text(event.get("X-EHCBRIDGE-CHILD-ID")) or described.get("child id")
        if upn_raw is None and child is None:
            ignored += 1
            continue
        upn = None
        if upn_raw is not None:
            try:
                upn = normalise_upn(upn_raw)
            except ValueError as exc:
                error("X-EHCBRIDGE-UPN", str(exc))
        dob = None
        dob_raw = _text(event.get("X-EHCBRIDGE-DOB")) or described.get("dob")
        if dob_raw:
            try:
                dob = parse_day(dob_raw)
            except ValueError as exc:
                error("X-EHCBRIDGE-DOB", str(exc))
        kind = _ics_kind(event, described, error)
        day = None
        if "DTSTART" not in event:
            error("DTSTART", "is missing")
        else:
            start = event.decoded("DTSTART")
            if isinstance(start, datetime):
                day = start.astimezone(LONDON).date() if start.tzinfo else start.date()
            elif isinstance(start, date):
                day = start
            else:
                error("DTSTART", f"{start!r} is not a date")
        organiser = event.get("ORGANIZER")
        email = name = None
        if organiser is not None:
            address = str(organiser).removeprefix("mailto:").removeprefix("MAILTO:").strip()
            if EMAIL_RE.match(address):
                email = address.lower()
            else:
                error("ORGANIZER", f"{address!r} is not an e-mail address")
            name = organiser.params.get("CN") or None
        if row_errors:
            errors.extend(row_errors)
            continue
        assert kind is not None
        parsed.append(ParsedRow(
            row=number, kind=kind, day=day, upn=upn, child_id=None if upn else child, dob=dob,
            email=email, worker_name=name,
            team=_text(event.get("X-EHCBRIDGE-TEAM")) or described.get("team") or calendar_team,
            uid=_text(event.get("UID")),
            cancelled=(_text(event.get("STATUS")) or "").upper() == "CANCELLED",
        ))
    return parsed, errors, ignored


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _ics_kind(event: Any, described: dict[str, str],
              error: Callable[[str, str], None]) -> str | None:
    explicit = _text(event.get("X-EHCBRIDGE-REVIEW-TYPE")) or described.get("review type")
    if explicit is not None:
        if explicit.lower() not in KINDS:
            error("X-EHCBRIDGE-REVIEW-TYPE", f"{explicit!r} is not one of cla, cp, cin")
            return None
        return explicit.lower()
    found = {str(c).strip().lower() for c in getattr(event, "categories", [])} & set(KINDS)
    if len(found) != 1:
        error("CATEGORIES", "needs exactly one of cla, cp, cin (or X-EHCBRIDGE-REVIEW-TYPE)"
              if not found else f"has more than one review type: {', '.join(sorted(found))}")
        return None
    return found.pop()


def load_mapping(path: Path) -> dict[str, MappingEntry]:
    """Read the social care id -> UPN mapping; any bad row refuses it (a wrong map misroutes).

    Columns ``social_care_id, upn[, dob]``, or the SSDA903 Header table as it is returned
    (``CHILD, DOB, UPN`` and others), whose "no UPN" codes ``UN1``-``UN7`` are skipped.
    """
    file = str(path)
    try:
        text = _decode(path.read_bytes())
    except OSError as exc:
        raise ImportRefused([RowError(file, 0, "-", f"cannot read the mapping file ({exc})")]
                            ) from exc
    header, rows = _csv_rows(text)
    lower = {h.lower() for h in header}
    id_column, upn_column, dob_column = "social_care_id", "upn", "dob"
    if "social_care_id" not in lower and "child" in lower:
        id_column, upn_column, dob_column = "CHILD", "UPN", "DOB"
    _require_columns(file, header, (id_column, upn_column))
    mapping: dict[str, MappingEntry] = {}
    errors: list[RowError] = []
    for number, values in rows:
        row_errors: list[RowError] = []
        row = _Row(file, number, values, row_errors)
        if (row.text(upn_column) or "").upper() in NO_UPN_CODES:
            continue
        child = row.text(id_column)
        if child is None:
            row.error(id_column, "is empty")
        upn = row.upn(upn_column)
        if upn is None and row.text(upn_column) is None:
            row.error(upn_column, "is empty")
        dob = row.day(dob_column)
        if row_errors:
            errors.extend(row_errors)
            continue
        assert child is not None and upn is not None
        earlier = mapping.get(child)
        if earlier is not None and (earlier.upn, earlier.dob) != (upn, dob):
            errors.append(RowError(file, number, id_column,
                                   f"maps to a different pupil than row {earlier.row}"))
            continue
        mapping[child] = MappingEntry(upn=upn, dob=dob, row=number)
    if errors:
        raise ImportRefused(errors)
    return mapping


# Fetching ------------------------------------------------------------------------------------


def describe_source(source: str) -> str:
    """A printable name for a file or URL: a URL is shown as scheme and host only (tokens)."""
    if source.startswith(("http://", "https://")):
        parts = urlsplit(source)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
    return source


def fetch_feed(url: str, *, timeout: float = 30.0, transport: Any = None,
               max_bytes: int = MAX_FEED_BYTES) -> bytes:
    """GET an iCalendar feed; FeedError on a network error, an HTTP error or an oversized body."""
    import httpx  # vendor library: only when fetching

    where = describe_source(url)
    chunks: list[bytes] = []
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, transport=transport) as client, \
                client.stream("GET", url, headers={"Accept": "text/calendar"}) as response:
            if response.status_code >= 400:
                raise FeedError(f"{where}: the feed answered HTTP {response.status_code}")
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"{where}: the feed is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FeedError(f"{where}: cannot fetch the feed ({type(exc).__name__})") from None
    return b"".join(chunks)


# Matching and storing ------------------------------------------------------------------------


LookupPupil = Callable[[str], Any]


def match_row(row: ParsedRow, mapping: dict[str, MappingEntry] | None,
              lookup: LookupPupil | None, open_case_ids: Callable[[str], list[str]]
              ) -> tuple[str, list[str]] | str:
    """(UPN, open review case ids) for a row, or the reason it is unmatched. Never guesses.

    ``lookup`` (UPN -> PupilRecord or None) only supplies the pupil's date of birth to compare
    with: None means "no information", since not every installation has an MIS plugin. The pupil
    must have an open EHCP review, which is what makes the UPN known to ehcbridge.
    """
    if row.upn is not None:
        upn = row.upn
        pupil_dob = _pupil_dob(lookup, upn) if row.dob is not None else None
        if row.dob is not None and pupil_dob is not None and row.dob != pupil_dob:
            return "date of birth does not match the pupil's record"
    else:
        if mapping is None:
            return "social care id needs a mapping file (--mapping) to find the UPN"
        entry = mapping.get(row.child_id or "")
        if entry is None:
            return "social care id not in the mapping file"
        upn = entry.upn
        if row.dob is None:
            return "no date of birth on the row to confirm the social care id"
        pupil_dob = _pupil_dob(lookup, upn)
        if entry.dob is None and pupil_dob is None:
            return ("no date of birth to confirm the social care id (add a dob column to the "
                    "mapping file)")
        if entry.dob is not None and entry.dob != row.dob:
            return "date of birth does not match the mapping file"
        if pupil_dob is not None and pupil_dob != row.dob:
            return "date of birth does not match the pupil's record"
    case_ids = open_case_ids(upn)
    if not case_ids:
        return "no open EHCP review for this UPN"
    return upn, case_ids


def _pupil_dob(lookup: LookupPupil | None, upn: str) -> date | None:
    record = lookup(upn) if lookup is not None else None
    dob = getattr(getattr(record, "pupil", None), "dob", None)
    return dob if isinstance(dob, date) else None


def settings_of(ctx: HookContext) -> SocialCareSettings:
    """The validated settings, or the defaults when the section is absent (tests, dry runs)."""
    return plugin_settings.settings_of(ctx, SocialCareSettings, require=False)


def read_source(ctx: HookContext, source: str, *, transport: Any = None) -> bytes:
    """The bytes of a file path or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        return fetch_feed(source, timeout=settings_of(ctx).feed_timeout_seconds,
                          transport=transport)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise FeedError(f"{source}: cannot read ({exc.strerror or exc})") from None


def import_source(
    ctx: HookContext,
    source: str,
    *,
    layout: str | None = None,
    mapping: Path | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    data: bytes | None = None,
    transport: Any = None,
) -> ImportReport:
    """Read, validate, match and store one file or feed in a single state write.

    Raises ImportRefused (bad rows, nothing written unless ``skip_invalid``), FeedError
    (unreadable source) or ValueError (layout unknown).
    """
    settings = settings_of(ctx)
    shown = describe_source(source)
    if data is None:
        data = read_source(ctx, source, transport=transport)
    layout = layout or detect_layout(source, data)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: use ssda903, generic or ics")
    mapping_path = mapping or settings.mapping_file
    mapping_table = load_mapping(mapping_path) if mapping_path else None
    ignored = 0
    if layout == "ics":
        rows, errors, ignored = parse_ics(data, shown)
    elif layout == "ssda903":
        rows, errors = parse_ssda903(_decode(data), shown)
    else:
        rows, errors = parse_generic(_decode(data), shown)
    if errors and not skip_invalid:
        raise ImportRefused(errors)
    report = ImportReport(source=shown, layout=layout, rows=len(rows) + len(errors) + ignored,
                          ignored=ignored, skipped_invalid=errors, dry_run=dry_run)

    # lookup_pupil may ask the MIS: once per pupil per import.
    raw_lookup = ctx.extras.get("lookup_pupil")
    lookup = functools.cache(raw_lookup) if callable(raw_lookup) else None
    open_cache: dict[str, list[str]] = {}

    def open_case_ids(upn: str) -> list[str]:
        if upn not in open_cache:
            open_cache[upn] = [r.case_id for r in ctx.store.open_reviews_for_upn(upn)]
        return open_cache[upn]

    records: dict[str, ChildRecord] = {}
    for row in rows:
        outcome = match_row(row, mapping_table, lookup, open_case_ids)
        if isinstance(outcome, str):
            report.unmatched.append(Unmatched(row.row, outcome,
                                              unit="event" if layout == "ics" else "row"))
            continue
        upn, _ = outcome
        report.matched_rows += 1
        record = records.get(upn)
        if record is None:
            record = ChildRecord.from_json(upn, ctx.store.get_state(f"{STATE_PREFIX}{upn}"))
            records[upn] = record
        _apply(record, row, layout)

    invitees = [(case_id, invitee) for upn, record in records.items()
                if settings.add_invitees and (invitee := social_care_invitee(record)) is not None
                for case_id in open_case_ids(upn)]
    report.children = len(records)
    report.invitees = len(invitees)
    if dry_run:
        return report
    now = ctx.clock.now()
    items: dict[str, Any] = {r.key: r.to_json() for r in records.values()}
    items[META_KEY] = {"at": now.isoformat(), "layout": layout, "rows": report.rows,
                       "matched": report.matched_rows, "unmatched": len(report.unmatched),
                       "children": report.children}
    ctx.store.set_state_many(items)
    for case_id, invitee in invitees:
        ctx.store.add_invitee(case_id, invitee)
    ctx.store.audit(None, "social_care.import", {
        "source": shown, "layout": layout, "rows": report.rows, "matched": report.matched_rows,
        "unmatched": len(report.unmatched), "skipped_invalid": len(errors),
        "children": report.children, "invitees": report.invitees,
    })
    return report


def _apply(record: ChildRecord, row: ParsedRow, layout: str) -> None:
    if row.cancelled:
        if row.uid:
            record.remove_uid(row.uid)
        return
    if row.day is not None:
        record.add_review(ReviewDate(kind=row.kind, day=row.day, source=layout, uid=row.uid))
    if row.period_start is not None:
        current = record.period_start.get(row.kind)
        if current is None or row.period_start > current:
            record.period_start[row.kind] = row.period_start
    if row.email or row.team:
        as_of = row.day or row.period_start
        assert as_of is not None
        record.set_worker(Worker(email=row.email, name=row.worker_name, team=row.team,
                                 as_of=as_of))


def social_care_invitee(record: ChildRecord) -> Invitee | None:
    """The allocated team or worker as the review's social care invitee (None if unknown)."""
    worker = record.worker
    if worker is None or not (worker.email or worker.team):
        return None
    return Invitee(role=Role.SOCIAL_CARE, name=worker.team or worker.name, email=worker.email,
                   team=worker.team, source=SOURCE_NAME)


def load_records(ctx: HookContext, upn: str | None = None) -> list[ChildRecord]:
    """Stored records, all or one pupil's."""
    if upn is not None:
        data = ctx.store.get_state(f"{STATE_PREFIX}{upn}")
        return [ChildRecord.from_json(upn, data)] if data else []
    return [ChildRecord.from_json(key.removeprefix(STATE_PREFIX), value)
            for key, value in ctx.store.state_items(STATE_PREFIX)]


__all__ = [
    "FeedError",
    "ImportRefused",
    "ImportReport",
    "RowError",
    "Unmatched",
    "detect_layout",
    "fetch_feed",
    "import_source",
    "load_mapping",
    "load_records",
    "parse_generic",
    "parse_ics",
    "parse_ssda903",
    "social_care_invitee",
]
