"""Retry-After as HTTP sends it: seconds, an HTTP date, or an ISO timestamp."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from ehcbridge.engine import retry_after_of
from ehcbridge.retry import parse_retry_after

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def test_every_form_of_retry_after() -> None:
    assert parse_retry_after("12", NOW) == 12.0
    assert parse_retry_after("Mon, 04 Jan 2027 09:01:30 GMT", NOW) == 90.0
    assert parse_retry_after("2027-01-05T00:00:00Z", NOW) == 15 * 3600.0
    assert parse_retry_after("Mon, 04 Jan 2027 08:00:00 GMT", NOW) == 0.0  # already past
    assert parse_retry_after("-5", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None and parse_retry_after("  ", NOW) is None


def test_engine_reads_retry_after_from_the_exception_or_its_response() -> None:
    class Throttled(Exception):
        retry_after = 7

    assert retry_after_of(Throttled()) == 7.0
    error = Exception("429")
    error.response = SimpleNamespace(headers={"Retry-After": "30"})  # type: ignore[attr-defined]
    assert retry_after_of(error) == 30.0
    assert retry_after_of(Exception("boom")) is None
