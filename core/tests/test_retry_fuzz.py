"""Retry-After from hostile servers and plugins, fuzzed (issue 18).

A fixed seed and a bounded number of examples by default; set EHCBRIDGE_FUZZ_EXAMPLES for more.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from ehcbridge.engine import requested_wait
from ehcbridge.retry import MAX_RETRY_AFTER, parse_retry_after, read_retry_after
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("EHCBRIDGE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow], database=None)
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)

header_values = st.one_of(
    st.text(max_size=200),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.just(UTC)).map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.isoformat()),
    st.sampled_from(["999999999999", "99999999999", "inf", "-inf", "nan", "1e400", "0x10",
                     "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
                     "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00", "\x00", "٣"]),
)
exception_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**400,
                                                                max_value=10**400),
    st.none(), st.booleans(), header_values)


def _sane(value: float | None) -> None:
    assert value is None or (math.isfinite(value) and 0.0 <= value <= MAX_RETRY_AFTER)


@seed(1618)
@FUZZ
@given(value=header_values)
def test_any_header_gives_a_wait_within_a_day_or_none(value: str) -> None:
    wait, capped = read_retry_after(value, NOW)
    _sane(wait)
    assert not capped or wait == MAX_RETRY_AFTER
    # The schedule the engine would write is always a representable date.
    if wait is not None:
        assert NOW + timedelta(seconds=wait) <= NOW + timedelta(days=1)


@seed(2718)
@FUZZ
@given(value=exception_values)
def test_any_plugin_retry_after_gives_a_wait_within_a_day_or_none(value: object) -> None:
    wait, _capped = requested_wait(SimpleNamespace(retry_after=value), NOW)  # type: ignore[arg-type]
    _sane(wait)


@seed(3141)
@FUZZ
@given(value=header_values)
def test_any_header_on_a_response_is_read_safely(value: str) -> None:
    error = SimpleNamespace(retry_after=None,
                            response=SimpleNamespace(headers={"Retry-After": value}))
    _sane(requested_wait(error, NOW)[0])  # type: ignore[arg-type]


def test_the_reported_values() -> None:
    for value in ("999999999999", "99999999999", "1e12", "inf"):
        assert read_retry_after(value, NOW) == (MAX_RETRY_AFTER, True)
    for value in (math.inf, 1e12, 10**400):
        assert read_retry_after(value, NOW) == (MAX_RETRY_AFTER, True)
    assert parse_retry_after(math.nan, NOW) is None
    assert parse_retry_after("Mon, 04 Jan 2027 11:00:00 GMT", NOW) == 7200.0
