"""Termly lists: for each school, the reviews due that term (SEND Code of Practice 9.172-9.173).

The LA sends every headteacher, at least two weeks before each term, the list of their pupils
whose plans must be reviewed that term, marking the reviews that must focus on transition and on
preparing for adulthood; the ICB's health services and social care get the whole list. A review
belongs to a term when it falls due between the first day of that term and the day before the
next term starts, so a review due in a holiday is on the list of the term before it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ehcbridge.formats.ncyear import nc_year_label
from ehcbridge.models import LONDON, ReviewKind
from ehcbridge.schools import School
from ehcbridge.terms import Term
from ehcbridge.timeline import academic_year_end

if TYPE_CHECKING:
    from ehcbridge.store import Store

# The group of reviews the LA arranges itself, for children at no school or college (reg 21),
# and its name wherever reviews are shown by school.
NO_SETTING = "none"
NO_SETTING_NAME = "No school or college (reg 21)"

COLUMNS = ("school_urn", "school_name", "case_id", "initials", "nc_year", "due_by",
           "meeting", "phase_transfer", "preparing_for_adulthood")
PFA_FROM_YEAR = 9


@dataclass(frozen=True)
class ListEntry:
    """One review on a termly list: case reference and initials only, never a full name."""

    school_urn: str
    school_name: str
    case_id: str
    initials: str
    nc_year: int | None
    due_by: date
    meeting: datetime | None
    phase_transfer: bool
    preparing_for_adulthood: bool

    def row(self) -> dict[str, str]:
        """The entry as CSV cells."""
        return {
            "school_urn": self.school_urn, "school_name": self.school_name,
            "case_id": self.case_id, "initials": self.initials,
            "nc_year": nc_year_label(self.nc_year),
            "due_by": self.due_by.isoformat(),
            "meeting": self.meeting.astimezone(LONDON).strftime("%Y-%m-%d %H:%M")
            if self.meeting else "",
            "phase_transfer": "yes" if self.phase_transfer else "",
            "preparing_for_adulthood": "yes" if self.preparing_for_adulthood else "",
        }


@dataclass
class TermlyLists:
    """A term's lists: entries by school URN, and the URNs the directory does not know."""

    title: str
    due_from: date
    due_to: date
    by_school: dict[str, list[ListEntry]] = field(default_factory=dict)
    missing_schools: list[str] = field(default_factory=list)

    @property
    def entries(self) -> list[ListEntry]:
        """Every entry, school by school (the ICB's and social care's whole list)."""
        return [e for urn in sorted(self.by_school) for e in self.by_school[urn]]


def due_window(term: Term, terms: list[Term]) -> tuple[date, date]:
    """The due dates a term's list covers: its first day to the day before the next term."""
    later = [t.start for t in terms if t.start > term.start]
    return term.start, (min(later) - timedelta(days=1)) if later else term.end


def build(store: Store, *, title: str, due_from: date, due_to: date, as_of: date,
          directory: dict[str, School] | None, school_urn: str | None = None,
          transfer_years: frozenset[int] = frozenset({6, 11}),
          infant_schools: frozenset[str] = frozenset()) -> TermlyLists:
    """Every open review due in the window, grouped by school, with its marks."""
    from ehcbridge.store.reports import termly_rows

    lists = TermlyLists(title=title, due_from=due_from, due_to=due_to)
    # The stored NC year is this academic year's; the list reads it for the year of the term.
    shift = academic_year_end(due_from) - academic_year_end(as_of)
    groups: dict[str, list[ListEntry]] = defaultdict(list)
    for r in termly_rows(store, due_from, due_to, school_urn):
        # Reg 21: at no school, so on no head's list (a former school's URN may linger).
        urn = NO_SETTING if r["no_setting"] else r["school_urn"] or "unknown"
        school = (directory or {}).get(urn)
        nc = r["nc_year"] + shift if r["nc_year"] is not None else None
        years = transfer_years | ({2} if urn in infant_schools else set())
        meeting = r["meeting_start"] if r["meeting_status"] == "scheduled" else None
        groups[urn].append(ListEntry(
            school_urn=urn, school_name=school.name if school else (
                NO_SETTING_NAME if urn == NO_SETTING else ""),
            case_id=r["case_id"],
            initials="".join(p[0].upper() for p in (r["forename"], r["surname"]) if p),
            nc_year=nc, due_by=r["due_by"], meeting=meeting,
            phase_transfer=r["kind"] == ReviewKind.PHASE_TRANSFER.value
            or (r["post16_move"] is not None and r["post16_move"] >= due_from)
            or (nc is not None and nc in years),
            preparing_for_adulthood=bool(r["preparing_for_adulthood"])
            or (nc is not None and nc >= PFA_FROM_YEAR)))
    lists.by_school = dict(sorted(groups.items()))
    if directory is not None:
        lists.missing_schools = [urn for urn in lists.by_school
                                 if urn not in directory and urn != NO_SETTING]
    return lists


def to_csv(entries: list[ListEntry]) -> str:
    """The entries as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.row())
    return out.getvalue()


def to_json(lists: TermlyLists) -> str:
    """The lists as JSON: window, schools with their entries, and schools not in the directory."""
    return json.dumps({
        "title": lists.title, "due_from": lists.due_from.isoformat(),
        "due_to": lists.due_to.isoformat(),
        "schools": {urn: [e.row() for e in entries] for urn, entries in lists.by_school.items()},
        "missing_schools": lists.missing_schools,
    }, indent=2)


def to_pdf(title: str, entries: list[ListEntry]) -> bytes:
    """The entries as a printable A4 landscape table (fpdf2, pure Python)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", format="A4")
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.multi_cell(0, 5, "PT = phase transfer review (focus on transition); PfA = preparing for "
                   "adulthood (Year 9 onwards). Initials and case references only.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    headings = ("School", "Case", "Initials", "NC year", "Due by", "Meeting", "PT", "PfA")
    widths = (70, 40, 20, 18, 28, 40, 14, 14)
    # Plain fixed-width cells: fpdf2's table layout takes seconds for a council's whole list.
    pdf.set_font("Helvetica", "B", 9)
    for heading, width in zip(headings, widths, strict=True):
        pdf.cell(width, 6, heading, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=9)
    for e in entries:
        cells = e.row()
        school = f"{e.school_name or '(not in directory)'} {e.school_urn}"
        values = (school, e.case_id, e.initials, cells["nc_year"], cells["due_by"],
                  cells["meeting"], "PT" if e.phase_transfer else "",
                  "PfA" if e.preparing_for_adulthood else "")
        for value, width in zip(values, widths, strict=True):
            pdf.cell(width, 5, _fit(pdf, _latin1(value), width - 2), border=1)
        pdf.ln()
    if not entries:
        pdf.cell(0, 8, "No reviews fall due this term.")
    return bytes(pdf.output())


def _fit(pdf: Any, text: str, width: float) -> str:
    """The text cut to fit ``width`` mm, with an ellipsis when cut."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1; anything else is shown as '?' rather than failing.
    return text.encode("latin-1", "replace").decode("latin-1")


def summary(lists: TermlyLists) -> dict[str, Any]:
    """Counts for the terminal: schools, reviews, PfA and transfer reviews, unknown schools."""
    entries = lists.entries
    return {"schools": len(lists.by_school), "reviews": len(entries),
            "phase_transfer": sum(e.phase_transfer for e in entries),
            "preparing_for_adulthood": sum(e.preparing_for_adulthood for e in entries),
            "missing_schools": lists.missing_schools}


__all__ = ["COLUMNS", "ListEntry", "TermlyLists", "build", "due_window", "summary",
           "to_csv", "to_json", "to_pdf"]
