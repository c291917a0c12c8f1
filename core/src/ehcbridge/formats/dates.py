"""Dates and times as UK councils, schools and spreadsheets write them, checked for range.

Every importer reads dates here, so each accepts the same forms and refuses the same values
with the same message. Years outside 1900 to 2100 are refused: no plan, pupil or meeting falls
outside them, and far dates overflow date arithmetic later (a review due after 9999-12-31).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
MIN_YEAR, MAX_YEAR = 1900, 2100
DATE_FORMS = ("2025-03-01", "01/03/2025", "01-03-2025", "01.03.2025", "01/03/25", "1/3/2025",
              "01-Mar-2025", "1 Mar 2025", "1 March 2025", "2025-03-01 00:00:00")
DATE_MESSAGE = "is not a date (use YYYY-MM-DD or DD/MM/YYYY)"
DATETIME_MESSAGE = "is not a date and time (use YYYY-MM-DDTHH:MM or DD/MM/YYYY HH:MM)"
RANGE_MESSAGE = f"is outside the years {MIN_YEAR} to {MAX_YEAR}"

_MONTHS = {name: number for number, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}
_ISO = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
_DMY = re.compile(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4}|[0-9]{2})$")
_DMONY = re.compile(r"^([0-9]{1,2})[\s/-]*([A-Za-z]{3,9})\.?[\s/-]*([0-9]{4}|[0-9]{2})$")
# Excel and pandas write a date cell saved as text with a midnight time.
_MIDNIGHT = re.compile(r"^(.+?)[T ]00:00(?::00(?:\.0+)?)?$")
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?$")


class DateRangeError(ValueError):
    """A well-formed date outside the years ehcbridge accepts."""


def _year(text: str) -> int:
    # Two-digit years as Python's %y reads them: 69-99 are 1969-1999, 00-68 are 2000-2068.
    value = int(text)
    if len(text) == 2:
        value += 1900 if value >= 69 else 2000
    return value


def check_date(value: date) -> date:
    """``value`` itself, or DateRangeError when its year is outside 1900 to 2100."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise DateRangeError(RANGE_MESSAGE)
    return value


def parse_date(value: str | date | datetime | None) -> date:
    """A date from any documented form (see DATE_FORMS); ValueError with a message otherwise."""
    if isinstance(value, datetime):
        if value.time() != time(0):
            raise ValueError(DATE_MESSAGE)
        return check_date(value.date())
    if isinstance(value, date):
        return check_date(value)
    if value is None:
        raise ValueError(DATE_MESSAGE)
    text = value.strip()
    midnight = _MIDNIGHT.match(text)
    if midnight:
        text = midnight.group(1)
    parts: tuple[int, int, int] | None = None
    if match := _ISO.match(text):
        parts = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    elif match := _DMY.match(text):
        parts = (_year(match.group(3)), int(match.group(2)), int(match.group(1)))
    elif (match := _DMONY.match(text)) and match.group(2).lower() in _MONTHS:
        parts = (_year(match.group(3)), _MONTHS[match.group(2).lower()], int(match.group(1)))
    if parts is None:
        raise ValueError(DATE_MESSAGE)
    if not MIN_YEAR <= parts[0] <= MAX_YEAR:
        raise DateRangeError(RANGE_MESSAGE)
    try:
        return date(*parts)
    except ValueError:
        raise ValueError(DATE_MESSAGE) from None


def parse_datetime(value: str | datetime | None) -> datetime:
    """A date and time, read as Europe/London wall time unless it carries an offset.

    ISO 8601 (``2027-03-10T10:00``, a space for T, seconds, an offset) or a date in any
    documented form followed by ``HH:MM[:SS]``. The year is checked before any time zone
    arithmetic, so ``0001-01-01T00:10+01:00`` is a clear error rather than an overflow.
    """
    if isinstance(value, datetime):
        parsed = value
    elif value is None:
        raise ValueError(DATETIME_MESSAGE)
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            day_text, _, time_text = text.rpartition(" ")
            clock = _TIME.match(time_text)
            if not day_text or clock is None:
                raise ValueError(DATETIME_MESSAGE) from None
            try:
                day = parse_date(day_text)
                at = time(int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0))
            except DateRangeError:
                raise
            except ValueError:
                raise ValueError(DATETIME_MESSAGE) from None
            parsed = datetime.combine(day, at)
    # Checked before any time zone arithmetic: year 1 or 9999 plus an offset overflows.
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise DateRangeError(RANGE_MESSAGE)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=LONDON)
    return parsed.astimezone(LONDON)
