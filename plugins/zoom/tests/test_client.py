"""ZoomClient against the fake Zoom: tokens, throttling, retries, pagination."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ehcbridge import PermanentError, RetryLater
from ehcbridge.retry import parse_retry_after
from ehcbridge_zoom.client import TokenCache, ZoomApiError, ZoomClient
from ehcbridge_zoom.settings import ZoomSettings

NOW = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_client(settings: ZoomSettings, sleeps: list[float], **kwargs: Any) -> ZoomClient:
    return ZoomClient.from_settings(settings, sleep=sleeps.append, tokens=TokenCache(),
                                    utcnow=lambda: NOW, **kwargs)


def test_token_request_shape_and_cache(zoom: Any, settings: ZoomSettings) -> None:
    with make_client(settings, []) as client:
        client.get_user()
        client.get_user()
    assert zoom.token_requests == 1  # cached between calls
    [token_call] = zoom.calls("POST", "/oauth/token")
    assert "grant_type=account_credentials" in token_call
    assert f"account_id={settings.account_id}" in token_call


def test_token_renewed_shortly_before_expiry(zoom: Any, settings: ZoomSettings) -> None:
    clock = Clock()
    with make_client(settings, [], monotonic=clock) as client:
        client.get_user()
        clock.t += 3600 - 301  # still valid for more than the 5-minute margin
        client.get_user()
        assert zoom.token_requests == 1
        clock.t += 2  # inside the margin: renew before Zoom would refuse it
        client.get_user()
    assert zoom.token_requests == 2
    assert len(zoom.calls("GET", "/v2/users/")) == 3  # no call was refused first


def test_401_renews_the_token_once_then_gives_up(zoom: Any, settings: ZoomSettings) -> None:
    zoom.reject_tokens = True
    with make_client(settings, []) as client, pytest.raises(PermanentError, match="scopes"):
        client.get_user()
    assert zoom.token_requests == 2
    assert len(zoom.calls("GET", "/v2/users/")) == 2


def test_bad_credentials_are_permanent_and_do_not_leak(zoom: Any, settings: ZoomSettings) -> None:
    wrong = settings.model_copy(update={"client_id": "someone-else"})
    with make_client(wrong, []) as client, pytest.raises(ZoomApiError) as caught:
        client.get_user()
    assert "invalid_client" in str(caught.value) or "Invalid client_id" in str(caught.value)
    assert zoom.secret not in str(caught.value)
    assert zoom.calls("GET") == []


def test_429_with_retry_after_seconds_is_honoured(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/users/", 429, {"code": 429, "message": "Too many requests"},
              headers={"Retry-After": "2", "X-RateLimit-Type": "QPS"})
    sleeps: list[float] = []
    with make_client(settings, sleeps) as client:
        assert client.get_user()["email"] == zoom.host
    assert sleeps == [2.0]


def test_429_without_retry_after_backs_off(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/users/", 429, {"code": 429, "message": "Too many requests"}, times=3)
    sleeps: list[float] = []
    slow = settings.model_copy(update={"backoff": 1.0})
    with make_client(slow, sleeps) as client:
        client.get_user()
    assert len(sleeps) == 3 and sleeps == sorted(sleeps) and sleeps[0] > 0
    assert sleeps[-1] > sleeps[0]


def test_throttling_that_never_ends_becomes_retry_later(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/users/", 429, {"code": 429, "message": "Too many requests"},
              headers={"Retry-After": "1"}, times=50)
    sleeps: list[float] = []
    with make_client(settings, sleeps) as client, pytest.raises(RetryLater) as caught:
        client.get_user()
    assert caught.value.retry_after == 1.0
    assert len(sleeps) == settings.max_attempts - 1


def test_long_retry_after_goes_back_to_the_engine(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/users/", 429, {"code": 429, "message": "Too many requests"},
              headers={"Retry-After": "120"})
    sleeps: list[float] = []
    with make_client(settings, sleeps) as client, pytest.raises(RetryLater) as caught:
        client.get_user()
    assert caught.value.retry_after == 120.0 and sleeps == []


def test_daily_limit_iso_retry_after(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("POST", r"/meetings$", 429, {"code": 429, "message": "You have exceeded the daily "
              "rate limit (100) of Meeting Create/Update API requests"},
              headers={"Retry-After": "2026-03-03T00:00:00Z", "X-RateLimit-Type": "Daily-limit"})
    with make_client(settings, []) as client, pytest.raises(RetryLater) as caught:
        client.create_meeting({"topic": "x", "type": 2})
    assert caught.value.retry_after == 3 * 3600
    assert settings.host in str(caught.value) and "2026-03-03 00:00 UTC" in str(caught.value)


def test_server_errors_are_retried(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("GET", r"/users/", 500, {"code": 500, "message": "Internal error"}, times=2)
    sleeps: list[float] = []
    with make_client(settings, sleeps) as client:
        assert client.get_user()["email"] == zoom.host
    assert len(sleeps) == 2


def test_create_is_not_blindly_repeated(zoom: Any, settings: ZoomSettings) -> None:
    zoom.fail("POST", r"/meetings$", 500, {"code": 500, "message": "oops"})
    with make_client(settings, []) as client, pytest.raises(Exception) as caught:
        client.create_meeting({"topic": "x", "type": 2, "duration": 30})
    assert not isinstance(caught.value, PermanentError)
    assert len(zoom.calls("POST", "/v2/")) == 1


def test_unreachable_zoom_is_retry_later(settings: ZoomSettings) -> None:
    dead = settings.model_copy(update={"oauth_url": "http://127.0.0.1:9",
                                       "api_url": "http://127.0.0.1:9/v2"})
    sleeps: list[float] = []
    with make_client(dead, sleeps) as client, pytest.raises(RetryLater, match="cannot reach"):
        client.with_retries(client.token)
    assert len(sleeps) == settings.max_attempts - 1


def test_list_follows_next_page_token(zoom: Any, settings: ZoomSettings) -> None:
    for n in range(7):
        zoom.add_meeting(zoom.host, f"m{n}", datetime(2026, 4, 1 + n, 9, 0))
    with make_client(settings, []) as client:
        topics = [m["topic"] for m in client.iter_upcoming(page_size=3)]
    assert topics == [f"m{n}" for n in range(7)]
    assert len(zoom.calls("GET", "/v2/users/")) == 3


def test_validation_error_is_permanent_with_zoom_message(zoom: Any, settings: ZoomSettings
                                                         ) -> None:
    with make_client(settings, []) as client, pytest.raises(ZoomApiError, match="code 300"):
        client.create_meeting({"topic": "x", "type": 2, "start_time": "10/03/2026 10:00"})


@pytest.mark.parametrize(("header", "expected"), [
    ("30", 30.0),
    ("2026-03-03T00:00:00Z", 3 * 3600.0),
    ("Tue, 03 Mar 2026 00:00:00 GMT", 3 * 3600.0),
    ("2026-03-01T00:00:00Z", 0.0),
    ("soon", None),
    (None, None),
])
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_outage_with_long_retry_after_goes_back_to_the_engine(zoom: Any, settings: ZoomSettings
                                                               ) -> None:
    zoom.fail("GET", r"/users/", 503, {"code": 503, "message": "maintenance"},
              headers={"Retry-After": "900"})
    sleeps: list[float] = []
    with make_client(settings, sleeps) as client, pytest.raises(RetryLater) as caught:
        client.get_user()
    assert caught.value.retry_after == 900.0 and sleeps == []
