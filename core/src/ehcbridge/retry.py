"""Reading HTTP's Retry-After (RFC 9110 10.2.3), shared by the engine and connector plugins.

Every wait a remote service (or a plugin) asks for is clamped to :data:`MAX_RETRY_AFTER`: a
server answering ``Retry-After: 999999999999`` (or a plugin raising ``retry_after=inf``) must
neither crash the engine nor park a delivery for centuries. Dates are compared with the engine's
clock (``--now``), never the wall clock, when the caller passes ``now``.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime, timedelta

# The longest wait ehcbridge honours: a day covers every documented daily limit, whose reset is
# at most one UTC day away.
MAX_RETRY_AFTER = 24 * 3600.0


def clamp_retry_after(seconds: float) -> float:
    """``seconds`` within 0 and :data:`MAX_RETRY_AFTER` (NaN counts as 0)."""
    if math.isnan(seconds):
        return 0.0
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def parse_retry_after(value: object, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds, an HTTP date, or the ISO
    timestamp some APIs send; None when absent or unreadable; never more than a day."""
    return read_retry_after(value, now)[0]


def read_retry_after(value: object, now: datetime | None = None) -> tuple[float | None, bool]:
    """Like :func:`parse_retry_after`, also saying whether the wait asked for was longer than
    :data:`MAX_RETRY_AFTER` (so the caller can flag it)."""
    seconds = _raw_seconds(value, now)
    if seconds is None or math.isnan(seconds):
        return None, False
    return clamp_retry_after(seconds), seconds > MAX_RETRY_AFTER


def _raw_seconds(value: object, now: datetime | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an int too big for a float
            return math.inf if value > 0 else 0.0
    text = str(value).strip()[:100]  # no header value worth reading is longer
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    when: datetime | None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    try:
        return (when - reference).total_seconds()
    except OverflowError:  # a date near year 1 or 9999 against an aware clock
        return math.inf if when > reference else 0.0


def next_utc_day(now: datetime) -> float:
    """Seconds from ``now`` until the next UTC midnight, when daily limits reset."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return clamp_retry_after((midnight - now).total_seconds())
