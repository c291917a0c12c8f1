"""School terms: the council's term dates, from settings or a published term-dates calendar.

Term dates drive two things: the termly lists of reviews due (SEND Code of Practice: sent to
heads, health and social care at least two weeks before each term starts) and the school
holidays the statutory clock and the planner avoid. Both come from this one source, so a council
that publishes a term-dates ``.ics`` file sets it once. Pure functions, except :func:`read_ics`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

# A published term-dates calendar names its events freely; these words sort them.
_HOLIDAY_WORDS = re.compile(r"holiday|half[\s-]*term|break|closed|christmas|easter|summer h",
                            re.IGNORECASE)
_TERM_WORDS = re.compile(r"\bterm\b", re.IGNORECASE)
MAX_ICS_BYTES = 2 * 1024 * 1024


class TermError(ValueError):
    """Term dates that cannot be used (names the file or setting and the entry)."""


@dataclass(frozen=True)
class Term:
    """One school term, both ends inclusive."""

    name: str
    start: date
    end: date

    @property
    def slug(self) -> str:
        """A stable key for the term (used to send its lists once)."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") + \
            f"-{self.start.isoformat()}"


def check_terms(terms: list[Term], where: str) -> list[Term]:
    """Terms sorted by start; raise TermError naming ``where`` when they are reversed or overlap."""
    ordered = sorted(terms, key=lambda t: t.start)
    for index, term in enumerate(ordered):
        if term.end < term.start:
            raise TermError(f"{where}: term {term.name!r} ends ({term.end.isoformat()}) before "
                            f"it starts ({term.start.isoformat()})")
        if index and term.start <= ordered[index - 1].end:
            raise TermError(f"{where}: term {term.name!r} overlaps "
                            f"{ordered[index - 1].name!r}")
    return ordered


def holidays_between(terms: list[Term]) -> list[tuple[date, date]]:
    """The gaps between consecutive terms, as inclusive (first, last) holiday ranges."""
    gaps = []
    for before, after in itertools.pairwise(terms):
        first, last = before.end + timedelta(days=1), after.start - timedelta(days=1)
        if first <= last:
            gaps.append((first, last))
    return gaps


def term_named(terms: list[Term], name: str) -> Term:
    """The term called ``name`` (case-insensitive, or its slug); TermError listing the known."""
    wanted = name.strip().lower()
    for term in terms:
        if wanted in (term.name.lower(), term.slug):
            return term
    known = ", ".join(t.name for t in terms) or "none configured"
    raise TermError(f"no term called {name!r} (known terms: {known})")


def next_term(terms: list[Term], today: date) -> Term | None:
    """The first term starting after ``today``."""
    return next((t for t in terms if t.start > today), None)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def read_ics(path: Path) -> tuple[list[Term], list[tuple[date, date]]]:
    """Terms and holidays from a published term-dates calendar (events spanning the days).

    An event whose summary says holiday, half term or break is a holiday; one that says term is a
    term. All-day events end the day before DTEND (RFC 5545), so the last day is DTEND minus one.
    """
    import icalendar

    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TermError(f"{path}: cannot read the term-dates calendar ({exc.strerror})") from None
    if size > MAX_ICS_BYTES:
        raise TermError(f"{path}: the term-dates calendar is {size:,} bytes; the limit is "
                        f"{MAX_ICS_BYTES:,}")
    try:
        cal = icalendar.Calendar.from_ical(path.read_bytes())
    except Exception as exc:  # icalendar raises ValueError and friends for bad input
        raise TermError(f"{path}: not an iCalendar file ({type(exc).__name__})") from None
    terms: list[Term] = []
    holidays: list[tuple[date, date]] = []
    for number, event in enumerate(cal.walk("VEVENT"), start=1):
        summary = str(event.get("SUMMARY", "")).strip()
        start = event.get("DTSTART")
        if start is None:
            raise TermError(f"{path}: event {number} ({summary!r}) has no DTSTART")
        first = _as_date(start.dt)
        end = event.get("DTEND")
        if end is not None:
            last = _as_date(end.dt)
            if not isinstance(end.dt, datetime):
                last -= timedelta(days=1)  # exclusive end of an all-day event
        else:
            last = first
        if not date(1990, 1, 1) <= first <= date(2100, 12, 31) or last < first:
            raise TermError(f"{path}: event {number} ({summary!r}) has dates out of range")
        if _HOLIDAY_WORDS.search(summary):
            holidays.append((first, last))
        elif _TERM_WORDS.search(summary):
            terms.append(Term(summary, first, last))
    return check_terms(terms, str(path)), sorted(holidays)


_ICS_CACHE: dict[tuple[str, float], tuple[list[Term], list[tuple[date, date]]]] = {}


def from_settings(engine: Any) -> tuple[list[Term], list[tuple[date, date]]]:
    """Terms and extra holidays from ``engine.terms`` and ``engine.term_dates_ics`` (merged)."""
    terms = [Term(t.name, t.start, t.end) for t in engine.terms]
    holidays: list[tuple[date, date]] = []
    path = engine.term_dates_ics
    if path is not None:
        key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
        if key not in _ICS_CACHE:
            _ICS_CACHE[key] = read_ics(path)
        ics_terms, holidays = _ICS_CACHE[key]
        terms += ics_terms
    return check_terms(terms, "engine.terms"), holidays


def school_holidays(engine: Any) -> tuple[tuple[date, date], ...]:
    """Every holiday the clock and the planner avoid: ``engine.school_holidays``, the holidays of
    the term-dates calendar, and the gaps between configured terms."""
    ranges = [(h.start, h.end) for h in engine.school_holidays]
    if engine.terms or engine.term_dates_ics is not None:
        terms, extra = from_settings(engine)
        ranges += extra + holidays_between(terms)
    return tuple(sorted(set(ranges)))
