"""Import social care review dates from statutory returns, CSV extracts and iCalendar feeds.

Layouts (every one matched to pupils by UPN, never guessed):

* ``ssda903``: the looked-after children return's Reviews table (``CHILD, DOB, REVIEW,
  REVIEW_CODE``); CHILD is the council's child id, so a mapping file (social care id -> UPN) and an
  agreeing date of birth are required.
* ``ssda903_episodes``: the return's Episodes table (``CHILD, DECOM, RNE, ..., DEC``): when the
  child's current period of care began (for the reg 33 projections) and whether it has ended.
* ``ssda903_xml``: the same return as XML (``CHILD`` elements holding ``HEADER``, ``EPISODES``
  and ``REVIEWS``, with the CSV column names as element names).
* ``cin_census``: the children in need census XML (``Children/Child`` with ``ChildIdentifiers``
  and ``CINdetails``): child protection plan dates and review dates, CIN plan dates.
* ``generic``: ``upn`` or ``social_care_id`` (+ ``dob``), ``review_type`` (cla, cp, cin),
  ``review_date``, and optionally ``social_worker_email``, ``social_worker_name``, ``team``,
  ``period_start``, ``period_end``.
* ``ics``: an iCalendar file or URL of a team's review meetings (see :func:`parse_ics`).

CSV tables may also be Excel workbooks (.xlsx). Values are read through the core's shared parsing
(:mod:`ehcbridge.formats`): the same UPN check, date forms, encodings and size limits as every
other importer. A malformed row refuses the whole file (or is skipped with ``skip_invalid``); a
well-formed row that matches no pupil with an open review is reported as unmatched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from ehcbridge import plugin_settings
from ehcbridge.events import HookContext
from ehcbridge.formats import (
    DEFAULT_LIMITS,
    InvalidUPN,
    Limits,
    RowProblem,
    Table,
    TableError,
    TooLarge,
    check_date,
    check_file_size,
    decode_text,
    field_problem,
    parse_date,
    read_table,
    validate_upn,
)
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

LAYOUTS = ("ssda903", "ssda903_episodes", "ssda903_xml", "cin_census", "generic", "ics")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PN_RE = re.compile(r"^PN[0-7]$")
NO_UPN_CODES = frozenset(f"UN{n}" for n in range(1, 8))  # SSDA903: reason a child has no UPN
MAX_FEED_BYTES = DEFAULT_LIMITS.max_calendar_bytes
SOURCE_NAME = "social_care"
XML_LAYOUTS = ("ssda903_xml", "cin_census")
# Other names extracts use for the generic layout's columns (after case, spaces, _ and -).
GENERIC_ALIASES = {"review_kind": "review_type", "type": "review_type",
                   "date_of_review": "review_date", "review": "review_date",
                   "child_id": "social_care_id", "la_child_id": "social_care_id",
                   "date_of_birth": "dob", "worker_email": "social_worker_email",
                   "worker_name": "social_worker_name"}

RowError = RowProblem  # the core's one row-problem type (the name older callers import)


class ImportRefused(Exception):
    """The file (or mapping file) has bad rows; nothing was written."""

    def __init__(self, errors: list[RowProblem]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class FeedError(Exception):
    """The feed or file could not be read; the message never shows a URL's path or token."""


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
    """One review date (or period of care or plan) as read from the source, before matching."""

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
    period_end: date | None = None
    uid: str | None = None
    cancelled: bool = False
    dob_optional: bool = False  # the table has no DOB (903 Episodes): the mapping's is used


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
    skipped_invalid: list[RowProblem] = field(default_factory=list)
    dry_run: bool = False
    encoding: str | None = None


# Reading values ------------------------------------------------------------------------------


def parse_day(value: str) -> date:
    """A date in any form the core accepts (ISO, DD/MM/YYYY, 01-Mar-2025...), 1900 to 2100."""
    return parse_date(value)


def normalise_upn(value: str) -> str:
    """The UPN upper-cased, after the DfE shape and check-letter rule (ValueError otherwise)."""
    try:
        return validate_upn(value)
    except InvalidUPN as exc:
        raise ValueError(f"not a valid UPN: {str(exc).removeprefix('UPN ')}") from None


class _Row:
    """A table row (canonical column names) that collects errors under the spec's column names."""

    def __init__(self, table: Table, number: int, values: dict[str, str],
                 errors: list[RowProblem], upper: bool) -> None:
        self.table, self.number, self.errors, self.values = table, number, errors, values
        self.upper = upper  # SSDA903 names its columns in capitals

    def name(self, column: str) -> str:
        return column.upper() if self.upper else column

    def text(self, column: str) -> str | None:
        return self.values.get(column) or None

    def error(self, column: str, message: str, value: str | None = None) -> None:
        self.errors.append(self.table.problem(self.number, self.name(column),
                                              self.values.get(column, "") if value is None
                                              else value, message))

    def day(self, column: str, *, required: bool = False) -> date | None:
        raw = self.text(column)
        if raw is None:
            if required:
                self.error(column, "is empty")
            return None
        try:
            return parse_date(raw)
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
        if raw is not None and (not EMAIL_RE.match(raw) or len(raw) > 254):
            self.error(column, "is not an e-mail address")
            return None
        return raw.lower() if raw else None


def _rows(table: Table, upper: bool) -> Iterator[tuple[_Row, list[RowProblem]]]:
    for number, values in table.rows:
        row_errors: list[RowProblem] = []
        yield _Row(table, number, values, row_errors, upper), row_errors


def _require_columns(table: Table, needed: Iterable[str], upper: bool = False) -> None:
    missing = [c for c in needed if c not in table.header]
    if missing:
        raise ImportRefused([table.problem(1, c.upper() if upper else c, "",
                                           "column missing from the header") for c in missing])


def _table(path: Path, shown: str, limits: Limits,
           aliases: dict[str, str] | None = None) -> Table:
    try:
        return read_table(path, name=shown, aliases=aliases, limits=limits)
    except TableError as exc:
        raise ImportRefused(exc.problems) from None


# Layouts -------------------------------------------------------------------------------------


def detect_layout(source: str, data: bytes | None) -> str:
    """Tell the layout from a URL, the file extension, the XML root or the table header."""
    if source.startswith(("http://", "https://")) or source.lower().endswith((".ics", ".ical")):
        return "ics"
    if data is not None:
        if data[:4] == b"PK\x03\x04":
            return _layout_from_header(source, _xlsx_header(source))
        try:
            text = decode_text(data[:4096])[0].lstrip("\ufeff \t\r\n")
        except ValueError:
            text = ""
        if text.upper().startswith("BEGIN:VCALENDAR"):
            return "ics"
        if text.startswith("<"):
            if "<CINdetails" in text or "<ChildIdentifiers" in text or "CINcensus" in text:
                return "cin_census"
            if re.search(r"<(CHILDID|EPISODES?|HEADER|SSDA903|EXPSSDA903)\b", text):
                return "ssda903_xml"
            raise ValueError(f"{source}: an XML file that is neither an SSDA903 return nor a "
                             "CIN census; use --layout")
        from ehcbridge.formats import canonical_headers

        first = text.splitlines()[0] if text else ""
        return _layout_from_header(source, canonical_headers(first.split(",")))
    raise ValueError(f"{source}: cannot tell the layout from the header; use --layout "
                     f"{', '.join(LAYOUTS)}")


def _xlsx_header(source: str) -> list[str]:
    try:
        return read_table(Path(source)).header
    except (TableError, OSError):
        return []


def _layout_from_header(source: str, header: list[str]) -> str:
    names = set(header)
    if {"child", "review"} <= names:
        return "ssda903"
    if {"child", "decom"} <= names:
        return "ssda903_episodes"
    if "review_type" in names or "review_kind" in names:
        return "generic"
    raise ValueError(f"{source}: cannot tell the layout from the header; use --layout "
                     f"{', '.join(LAYOUTS)}")


def parse_ssda903(table: Table) -> tuple[list[ParsedRow], list[RowProblem]]:
    """Rows of an SSDA903 Reviews table: every row is a CLA review of the child CHILD."""
    _require_columns(table, ("child", "dob", "review"), upper=True)
    parsed: list[ParsedRow] = []
    errors: list[RowProblem] = []
    for row, row_errors in _rows(table, upper=True):
        child = row.text("child")
        if child is None:
            row.error("child", "is empty")
        dob = row.day("dob", required=True)
        day = row.day("review", required=True)
        code = row.text("review_code")
        if code is not None and not PN_RE.match(code.upper()):
            row.error("review_code", "is not a participation code PN0-PN7")
        if row_errors:
            errors.extend(row_errors)
            continue
        parsed.append(ParsedRow(row=row.number, kind="cla", day=day, child_id=child, dob=dob))
    return parsed, errors


@dataclass(frozen=True)
class Episode:
    """One SSDA903 episode of care: when it began (DECOM), why (RNE) and when it ended (DEC)."""

    row: int
    start: date
    end: date | None
    reason: str | None


def current_period(episodes: list[Episode]) -> tuple[date, date | None]:
    """(start, end) of the latest period of care made of these episodes (end None: still open).

    Episodes follow on from each other within a period; a period starts again with RNE ``S``
    (started to be looked after) or after a gap between one episode's DEC and the next DECOM.
    """
    ordered = sorted(episodes, key=lambda e: (e.start, e.row))
    start = ordered[0].start
    previous = ordered[0]
    for episode in ordered[1:]:
        if (episode.reason or "").upper() == "S" or (
                previous.end is not None and episode.start > previous.end):
            start = episode.start
        previous = episode
    return start, previous.end


def parse_episodes(table: Table) -> tuple[list[ParsedRow], list[RowProblem]]:
    """An SSDA903 Episodes table: one period of care per child (start, and end if it ended)."""
    _require_columns(table, ("child", "decom"), upper=True)
    errors: list[RowProblem] = []
    by_child: dict[str, list[Episode]] = {}
    for row, row_errors in _rows(table, upper=True):
        child = row.text("child")
        if child is None:
            row.error("child", "is empty")
        start = row.day("decom", required=True)
        end = row.day("dec")
        if start is not None and end is not None and end < start:
            row.error("dec", "is before DECOM")
        if row_errors:
            errors.extend(row_errors)
            continue
        assert child is not None and start is not None
        by_child.setdefault(child, []).append(Episode(row.number, start, end, row.text("rne")))
    parsed = []
    for child, episodes in by_child.items():
        start, end = current_period(episodes)
        parsed.append(ParsedRow(row=max(e.row for e in episodes), kind="cla", day=None,
                                child_id=child, period_start=start, period_end=end,
                                dob_optional=True))
    return parsed, errors


def parse_generic(table: Table) -> tuple[list[ParsedRow], list[RowProblem]]:
    """Rows of the generic layout (see the module docstring for its columns)."""
    _require_columns(table, ("review_type", "review_date"))
    if not {"upn", "social_care_id"} & set(table.header):
        raise ImportRefused([table.problem(1, "upn", "", "header needs a upn or "
                                                         "social_care_id column")])
    parsed: list[ParsedRow] = []
    errors: list[RowProblem] = []
    for row, row_errors in _rows(table, upper=False):
        upn = row.upn("upn")
        child = row.text("social_care_id")
        if upn is None and child is None and not row_errors:
            row.error("upn", "is empty and so is social_care_id")
        kind_raw = row.text("review_type")
        kind = (kind_raw or "").lower()
        if kind not in KINDS:
            row.error("review_type", "is not one of cla, cp, cin")
        day = row.day("review_date")
        period_start = row.day("period_start")
        period_end = row.day("period_end")
        if day is None and period_start is None and not row_errors:
            row.error("review_date", "is empty (and no period_start to project from)")
        dob = row.day("dob")
        email = row.email("social_worker_email")
        for column in ("social_worker_name", "team"):
            if len(row.text(column) or "") > 200:
                row.error(column, "is longer than 200 characters")
        if row_errors:
            errors.extend(row_errors)
            continue
        parsed.append(ParsedRow(
            row=row.number, kind=kind, day=day, upn=upn, child_id=None if upn else child,
            dob=dob, email=email, worker_name=row.text("social_worker_name"),
            team=row.text("team"), period_start=period_start, period_end=period_end,
        ))
    return parsed, errors


# XML returns ---------------------------------------------------------------------------------


def _xml_root(data: bytes, file: str) -> Element:
    """Parse hostile-safe (no DTD, no entities); ImportRefused naming the line when malformed."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root: Element = fromstring(data, forbid_dtd=True)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise ImportRefused([RowProblem(file, line, "-", "", f"is not well-formed XML "
                                        f"(line {line}, column {column})", unit="line")]
                            ) from None
    except DefusedXmlException as exc:
        raise ImportRefused([RowProblem(file, 0, "-", "", "declares a DTD or entities "
                                        f"({type(exc).__name__}); refused")]) from None
    return root


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _find_all(elem: Element, name: str) -> list[Element]:
    return [e for e in elem.iter() if _local(e.tag) == name]


def _child_text(elem: Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            text = " ".join((child.text or "").split())
            return text or None
    return None


class _XmlRow:
    """Values of one child of an XML return, collecting errors as ``child N, column TAG``."""

    def __init__(self, file: str, number: int, errors: list[RowProblem],
                 limits: Limits) -> None:
        self.file, self.number, self.errors, self.limits = file, number, errors, limits

    def error(self, column: str, value: str, message: str) -> None:
        self.errors.append(RowProblem(self.file, self.number, column, value, message,
                                      unit="child"))

    def text(self, elem: Element | None, tag: str) -> str | None:
        if elem is None:
            return None
        value = _child_text(elem, tag)
        if value is not None and (problem := field_problem(value, self.limits)):
            self.error(tag, value, problem)
            return None
        return value

    def day(self, elem: Element | None, tag: str, *, required: bool = False) -> date | None:
        raw = self.text(elem, tag)
        if raw is None:
            if required:
                self.error(tag, "", "is empty")
            return None
        try:
            return parse_date(raw)
        except ValueError as exc:
            self.error(tag, raw, str(exc))
            return None

    def upn(self, raw: str | None, tag: str) -> str | None:
        if raw is None or raw.upper() in NO_UPN_CODES:
            return None
        try:
            return normalise_upn(raw)
        except ValueError as exc:
            self.error(tag, raw, str(exc))
            return None


def _children(root: Element, tag: str, file: str, limits: Limits) -> list[Element]:
    found = _find_all(root, tag)
    if len(found) > limits.max_rows:
        raise ImportRefused([RowProblem(file, 0, "-", "", f"has more than {limits.max_rows:,} "
                                        "children (limits.max_rows)")])
    return found


def parse_ssda903_xml(data: bytes, file: str, limits: Limits = DEFAULT_LIMITS
                      ) -> tuple[list[ParsedRow], list[RowProblem]]:
    """The SSDA903 return as XML: per ``CHILD``, its HEADER, EPISODES and REVIEWS.

    Element names are the CSV column names: ``HEADER/{CHILDID or CHILD, DOB, UPN}``,
    ``EPISODES/EPISODE/{DECOM, RNE, DEC}``, ``REVIEWS/REVIEW/{REVIEW, REVIEW_CODE}``. A child with
    a UPN is matched by it; one with a "no UPN" code (UN1 to UN7) by CHILDID and the mapping file.
    """
    root = _xml_root(data, file)
    parsed: list[ParsedRow] = []
    errors: list[RowProblem] = []
    children = _children(root, "CHILD", file, limits)
    if not children:
        raise ImportRefused([RowProblem(file, 0, "CHILD", "", "no CHILD elements: not an "
                                        "SSDA903 return")])
    for number, child in enumerate(children, start=1):
        row_errors: list[RowProblem] = []
        x = _XmlRow(file, number, row_errors, limits)
        headers = [e for e in child if _local(e.tag) == "HEADER"]
        header = headers[0] if headers else child
        child_id = x.text(header, "CHILDID") or x.text(header, "CHILD")
        dob = x.day(header, "DOB")
        upn = x.upn(x.text(header, "UPN"), "UPN")
        if upn is None and child_id is None and not row_errors:
            x.error("CHILDID", "", "is empty and there is no UPN")
        episodes: list[Episode] = []
        for item in _find_all(child, "EPISODE"):
            start = x.day(item, "DECOM", required=True)
            end = x.day(item, "DEC")
            if start is not None:
                episodes.append(Episode(len(episodes), start, end, x.text(item, "RNE")))
        reviews = []
        for item in _find_all(child, "REVIEW"):
            if len(item):
                day = x.day(item, "REVIEW", required=True)
                code = x.text(item, "REVIEW_CODE")
                if code is not None and not PN_RE.match(code.upper()):
                    x.error("REVIEW_CODE", code, "is not a participation code PN0-PN7")
                if day is not None:
                    reviews.append(day)
        if row_errors:
            errors.extend(row_errors)
            continue
        ident = None if upn else child_id
        if episodes:
            start, end = current_period(episodes)
            parsed.append(ParsedRow(row=number, kind="cla", day=None, upn=upn, child_id=ident,
                                    dob=dob, period_start=start, period_end=end,
                                    dob_optional=dob is None))
        parsed += [ParsedRow(row=number, kind="cla", day=day, upn=upn, child_id=ident, dob=dob)
                   for day in reviews]
    return parsed, errors


def parse_cin_census(data: bytes, file: str, limits: Limits = DEFAULT_LIMITS
                     ) -> tuple[list[ParsedRow], list[RowProblem]]:
    """The children in need census XML: child protection and CIN plan dates per ``Child``.

    ``ChildIdentifiers/{LAchildID, UPN, PersonBirthDate}``; from each ``CINdetails``, every
    ``ChildProtectionPlans/{CPPstartDate, CPPendDate, Reviews/CPPreviewDate}`` (known CP review
    dates, and the plan as the period the CP projections start from) and
    ``CINPlanDates/{CINPlanStartDate, CINPlanEndDate}`` (the CIN plan's period).
    """
    root = _xml_root(data, file)
    parsed: list[ParsedRow] = []
    errors: list[RowProblem] = []
    children = _children(root, "Child", file, limits)
    if not children:
        raise ImportRefused([RowProblem(file, 0, "Child", "", "no Child elements: not a CIN "
                                        "census")])
    for number, child in enumerate(children, start=1):
        row_errors: list[RowProblem] = []
        x = _XmlRow(file, number, row_errors, limits)
        ids = next((e for e in child if _local(e.tag) == "ChildIdentifiers"), None)
        child_id = x.text(ids, "LAchildID")
        upn = x.upn(x.text(ids, "UPN"), "UPN")
        dob = x.day(ids, "PersonBirthDate")
        if upn is None and child_id is None and not row_errors:
            x.error("LAchildID", "", "is empty and there is no UPN")
        items: list[dict[str, Any]] = []
        for plan in _find_all(child, "ChildProtectionPlans"):
            start = x.day(plan, "CPPstartDate", required=True)
            end = x.day(plan, "CPPendDate")
            if start is not None:
                items.append({"kind": "cp", "day": None, "period_start": start,
                              "period_end": end})
            for review in _find_all(plan, "CPPreviewDate"):
                text = " ".join((review.text or "").split())
                try:
                    items.append({"kind": "cp", "day": parse_date(text)})
                except ValueError as exc:
                    x.error("CPPreviewDate", text, str(exc))
        for plan in _find_all(child, "CINPlanDates"):
            start = x.day(plan, "CINPlanStartDate", required=True)
            end = x.day(plan, "CINPlanEndDate")
            if start is not None:
                items.append({"kind": "cin", "day": None, "period_start": start,
                              "period_end": end})
        if row_errors:
            errors.extend(row_errors)
            continue
        parsed += [ParsedRow(row=number, upn=upn, child_id=None if upn else child_id, dob=dob,
                             **item) for item in items]
    return parsed, errors


# iCalendar -----------------------------------------------------------------------------------


_DESCRIPTION_RE = re.compile(r"^\s*(upn|child id|dob|review type|team)\s*:\s*(.+?)\s*$",
                             re.IGNORECASE | re.MULTILINE)


def parse_ics(data: bytes, file: str, limits: Limits = DEFAULT_LIMITS
              ) -> tuple[list[ParsedRow], list[RowProblem], int]:
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

    if len(data) > limits.max_calendar_bytes:
        raise ImportRefused([RowProblem(file, 0, "-", "", f"is {len(data):,} bytes, over the "
                                        f"limit of {limits.max_calendar_bytes:,} bytes "
                                        "(limits.max_calendar_bytes)", unit="event")])
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ImportRefused([RowProblem(file, 0, "VCALENDAR", "", "is not an iCalendar file "
                                        f"({type(exc).__name__})", unit="event")]) from None
    calendar_team = _text(cal.get("X-EHCBRIDGE-TEAM"))
    parsed: list[ParsedRow] = []
    errors: list[RowProblem] = []
    ignored = 0
    for number, event in enumerate(cal.walk("VEVENT"), start=1):
        if number > limits.max_rows:
            raise ImportRefused([RowProblem(file, number, "-", "", f"has more than "
                                            f"{limits.max_rows:,} events (limits.max_rows)",
                                            unit="event")])
        row_errors: list[RowProblem] = []

        def error(column: str, message: str, value: str = "", number: int = number,
                  sink: list[RowProblem] = row_errors) -> None:
            sink.append(RowProblem(file, number, column, value, message, unit="event"))

        try:
            row = _ics_event(event, number, error, calendar_team, limits)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            # icalendar decodes lazily: a malformed property surfaces here, not at parse time.
            error("VEVENT", f"cannot be read ({type(exc).__name__})")
            row = None
        if row is None and not row_errors:
            ignored += 1
            continue
        if row_errors or row is None:
            errors.extend(row_errors)
            continue
        parsed.append(row)
    return parsed, errors, ignored


def _ics_event(event: Any, number: int, error: Callable[..., None],
               calendar_team: str | None, limits: Limits) -> ParsedRow | None:
    described = {k.lower(): v for k, v in
                 _DESCRIPTION_RE.findall(_text(event.get("DESCRIPTION")) or "")}
    upn_raw = _text(event.get("X-EHCBRIDGE-UPN")) or described.get("upn")
    child = _text(event.get("X-EHCBRIDGE-CHILD-ID")) or described.get("child id")
    if upn_raw is None and child is None:
        return None
    for column, value in (("X-EHCBRIDGE-CHILD-ID", child),
                          ("X-EHCBRIDGE-TEAM", _text(event.get("X-EHCBRIDGE-TEAM"))),
                          ("UID", _text(event.get("UID")))):
        if value is not None and (problem := field_problem(value, limits)):
            error(column, problem, value)
    upn = None
    if upn_raw is not None:
        try:
            upn = normalise_upn(upn_raw)
        except ValueError as exc:
            error("X-EHCBRIDGE-UPN", str(exc), upn_raw)
    dob = None
    dob_raw = _text(event.get("X-EHCBRIDGE-DOB")) or described.get("dob")
    if dob_raw:
        try:
            dob = parse_day(dob_raw)
        except ValueError as exc:
            error("X-EHCBRIDGE-DOB", str(exc), dob_raw)
    kind = _ics_kind(event, described, error)
    day = None
    if "DTSTART" not in event:
        error("DTSTART", "is missing")
    else:
        start = event.decoded("DTSTART")
        if isinstance(start, date):
            try:
                # Range first: astimezone on year 1 with an offset overflows.
                check_date(start if not isinstance(start, datetime) else start.date())
                if isinstance(start, datetime):
                    day = start.astimezone(LONDON).date() if start.tzinfo else start.date()
                else:
                    day = start
            except ValueError as exc:
                error("DTSTART", str(exc), str(start))
        else:
            error("DTSTART", "is not a date")
    organiser = event.get("ORGANIZER")
    email = name = None
    if organiser is not None:
        address = str(organiser).removeprefix("mailto:").removeprefix("MAILTO:").strip()
        if EMAIL_RE.match(address) and len(address) <= 254:
            email = address.lower()
        else:
            error("ORGANIZER", "is not an e-mail address", address)
        name = organiser.params.get("CN") or None
        if name is not None and len(str(name)) > 200:
            error("ORGANIZER", "has a CN longer than 200 characters")
    if kind is None:
        return ParsedRow(row=number, kind="", day=None)  # the error is already recorded
    return ParsedRow(
        row=number, kind=kind, day=day, upn=upn, child_id=None if upn else child, dob=dob,
        email=email, worker_name=str(name) if name else None,
        team=_text(event.get("X-EHCBRIDGE-TEAM")) or described.get("team") or calendar_team,
        uid=_text(event.get("UID")),
        cancelled=(_text(event.get("STATUS")) or "").upper() == "CANCELLED",
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _ics_kind(event: Any, described: dict[str, str],
              error: Callable[..., None]) -> str | None:
    explicit = _text(event.get("X-EHCBRIDGE-REVIEW-TYPE")) or described.get("review type")
    if explicit is not None:
        if explicit.lower() not in KINDS:
            error("X-EHCBRIDGE-REVIEW-TYPE", "is not one of cla, cp, cin", explicit)
            return None
        return explicit.lower()
    found = {str(c).strip().lower() for c in getattr(event, "categories", [])} & set(KINDS)
    if len(found) != 1:
        error("CATEGORIES", "needs exactly one of cla, cp, cin (or X-EHCBRIDGE-REVIEW-TYPE)"
              if not found else f"has more than one review type: {', '.join(sorted(found))}")
        return None
    return found.pop()


def load_mapping(path: Path, limits: Limits = DEFAULT_LIMITS) -> dict[str, MappingEntry]:
    """Read the social care id -> UPN mapping; any bad row refuses it (a wrong map misroutes).

    Columns ``social_care_id, upn[, dob]``, or the SSDA903 Header table as it is returned
    (``CHILD, DOB, UPN`` and others), whose "no UPN" codes ``UN1``-``UN7`` are skipped.
    """
    table = _table(path, str(path), limits)
    upper = "social_care_id" not in table.header and "child" in table.header
    id_column = "child" if upper else "social_care_id"
    _require_columns(table, (id_column, "upn"), upper=upper)
    mapping: dict[str, MappingEntry] = {}
    errors: list[RowProblem] = list(table.problems)
    for row, row_errors in _rows(table, upper=upper):
        if (row.text("upn") or "").upper() in NO_UPN_CODES:
            continue
        child = row.text(id_column)
        if child is None:
            row.error(id_column, "is empty")
        upn = row.upn("upn")
        if upn is None and row.text("upn") is None:
            row.error("upn", "is empty")
        dob = row.day("dob")
        if row_errors:
            errors.extend(row_errors)
            continue
        assert child is not None and upn is not None
        earlier = mapping.get(child)
        if earlier is not None and (earlier.upn, earlier.dob) != (upn, dob):
            row.error(id_column, f"maps to a different pupil than row {earlier.row}")
            errors.extend(row_errors)
            continue
        mapping[child] = MappingEntry(upn=upn, dob=dob, row=row.number)
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
        pupil_dob = _pupil_dob(lookup, upn)
        if row.dob is None and row.dob_optional:
            # The table has no DOB (903 Episodes): the mapping's and the pupil's must agree.
            if entry.dob is not None and pupil_dob is not None and entry.dob != pupil_dob:
                return "date of birth in the mapping file does not match the pupil's record"
            case_ids = open_case_ids(upn)
            return (upn, case_ids) if case_ids else "no open EHCP review for this UPN"
        if row.dob is None:
            return "no date of birth on the row to confirm the social care id"
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


def limits_of(ctx: HookContext) -> Limits:
    """The core's [limits] settings (the defaults outside an application)."""
    limits = ctx.extras.get("limits")
    return limits if isinstance(limits, Limits) else DEFAULT_LIMITS


def read_source(ctx: HookContext, source: str, *, transport: Any = None) -> bytes:
    """The bytes of a file path or an http(s) URL, within the size limits.

    An iCalendar file (.ics, .ical) has the same limit as a feed fetched from a URL.
    """
    limits = limits_of(ctx)
    if source.startswith(("http://", "https://")):
        return fetch_feed(source, timeout=settings_of(ctx).feed_timeout_seconds,
                          transport=transport, max_bytes=limits.max_calendar_bytes)
    path = Path(source)
    calendar = path.suffix.lower() in (".ics", ".ical")
    try:
        check_file_size(path, limits.max_calendar_bytes if calendar else limits.max_file_bytes,
                        what="calendar file" if calendar else "file")
        return path.read_bytes()
    except TooLarge as exc:
        raise FeedError(f"{source}: refused, {exc}; nothing was imported") from None
    except OSError as exc:
        raise FeedError(f"{source}: cannot read ({exc.strerror or exc})") from None


def parse_source(source: str, shown: str, data: bytes, layout: str, limits: Limits
                 ) -> tuple[list[ParsedRow], list[RowProblem], int, str | None]:
    """(rows, errors, events ignored, text encoding) of one source in a known layout."""
    if layout == "ics":
        rows, errors, ignored = parse_ics(data, shown, limits)
        return rows, errors, ignored, None
    if len(data) > limits.max_file_bytes:
        raise ImportRefused([RowProblem(shown, 0, "-", "", f"is {len(data):,} bytes, over the "
                                        f"limit of {limits.max_file_bytes:,} bytes "
                                        "(limits.max_file_bytes)")])
    if layout == "ssda903_xml":
        return (*parse_ssda903_xml(data, shown, limits), 0, None)
    if layout == "cin_census":
        return (*parse_cin_census(data, shown, limits), 0, None)
    table = _table_from(source, shown, data, limits,
                        GENERIC_ALIASES if layout == "generic" else None)
    parser = {"ssda903": parse_ssda903, "ssda903_episodes": parse_episodes}.get(
        layout, parse_generic)
    rows, errors = parser(table)
    return rows, [*table.problems, *errors], 0, table.encoding


def _table_from(source: str, shown: str, data: bytes, limits: Limits,
                aliases: dict[str, str] | None) -> Table:
    path = Path(source)
    if source.startswith(("http://", "https://")) or not path.is_file():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("data.xlsx" if data[:4] == b"PK\x03\x04" else "data.csv")
            path.write_bytes(data)
            return _table(path, shown, limits, aliases)
    return _table(path, shown, limits, aliases)


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
    limits = limits_of(ctx)
    shown = describe_source(source)
    if data is None:
        data = read_source(ctx, source, transport=transport)
    layout = layout or detect_layout(source, data)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: use {', '.join(LAYOUTS)}")
    mapping_path = mapping or settings.mapping_file
    mapping_table = load_mapping(mapping_path, limits) if mapping_path else None
    rows, errors, ignored, encoding = parse_source(source, shown, data, layout, limits)
    if errors and not skip_invalid:
        raise ImportRefused(errors)
    report = ImportReport(source=shown, layout=layout,
                          rows=len({r.row for r in rows} | {e.row for e in errors}) + ignored,
                          ignored=ignored, skipped_invalid=errors, dry_run=dry_run,
                          encoding=encoding)
    if errors:
        # A row with an error is skipped whole, even where other values of it were read.
        bad = {e.row for e in errors}
        rows = [r for r in rows if r.row not in bad]

    # lookup_pupil may ask the MIS: once per pupil per import.
    raw_lookup = ctx.extras.get("lookup_pupil")
    lookup = functools.cache(raw_lookup) if callable(raw_lookup) else None
    open_cache: dict[str, list[str]] = {}

    def open_case_ids(upn: str) -> list[str]:
        if upn not in open_cache:
            open_cache[upn] = [r.case_id for r in ctx.store.open_reviews_for_upn(upn)]
        return open_cache[upn]

    unit = {"ics": "event", "ssda903_xml": "child", "cin_census": "child"}.get(layout, "row")
    records: dict[str, ChildRecord] = {}
    reported: set[int] = set()
    matched: set[int] = set()
    for row in rows:
        outcome = match_row(row, mapping_table, lookup, open_case_ids)
        if isinstance(outcome, str):
            if row.row not in reported:  # an XML child gives several rows: report it once
                reported.add(row.row)
                report.unmatched.append(Unmatched(row.row, outcome, unit=unit))
            continue
        upn, _ = outcome
        matched.add(row.row)
        record = records.get(upn)
        if record is None:
            record = ChildRecord.from_json(upn, ctx.store.get_state(f"{STATE_PREFIX}{upn}"))
            records[upn] = record
        _apply(record, row, layout)
    report.matched_rows = len(matched)

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
        if current is None or row.period_start >= current:
            record.period_start[row.kind] = row.period_start
            if row.period_end is not None:
                record.period_end[row.kind] = row.period_end
            else:
                record.period_end.pop(row.kind, None)
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
    "RowProblem",
    "Unmatched",
    "detect_layout",
    "fetch_feed",
    "import_source",
    "load_mapping",
    "load_records",
    "parse_cin_census",
    "parse_episodes",
    "parse_generic",
    "parse_ics",
    "parse_ssda903",
    "parse_ssda903_xml",
    "social_care_invitee",
]
