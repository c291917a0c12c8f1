"""The shared HTTP kit: what each kind of answer becomes for the engine (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from ehcbridge import PermanentError, RetryLater
from ehcbridge.http import HttpClient, HttpError, ServiceUnavailable

ENGINE_NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)  # --now, years from the wall clock


class Tokens:
    """A token source that counts renewals."""

    def __init__(self) -> None:
        self.current, self.renewals = "t1", 0

    def token(self) -> str:
        return self.current

    def renew(self, rejected: str) -> str:
        self.renewals += 1
        self.current = f"t{self.renewals + 1}"
        return self.current


def client(answers: list[Any], sleeps: list[float] | None = None, **kw: Any) -> HttpClient:
    """A kit client whose server gives ``answers`` in turn (an exception is raised instead)."""
    queue = list(answers)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    made = HttpClient("https://svc.test/v1", service="Svc", transport=httpx.MockTransport(handler),
                      now=lambda: ENGINE_NOW, sleep=(sleeps if sleeps is not None else []).append,
                      **kw)
    made.seen = seen  # type: ignore[attr-defined]
    return made


def test_retry_after_seconds_waits_then_succeeds() -> None:
    sleeps: list[float] = []
    c = client([httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={})],
               sleeps)
    assert c.request("GET", "/x").status_code == 200
    assert sleeps == [3.0]


def test_retry_after_date_is_read_against_the_engine_clock() -> None:
    later = format_datetime(ENGINE_NOW + timedelta(hours=2), usegmt=True)
    with pytest.raises(ServiceUnavailable) as caught:
        client([httpx.Response(503, headers={"Retry-After": later})]).request("GET", "/x")
    assert caught.value.retry_after == 7200.0  # not years, as against the wall clock
    assert isinstance(caught.value, RetryLater)


def test_huge_retry_after_is_capped_at_a_day_and_said() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        client([httpx.Response(429, headers={"Retry-After": "999999999999"})]).request("GET", "/x")
    assert caught.value.retry_after == 86400.0 and caught.value.capped
    assert "longer than 24 h" in str(caught.value)


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"),
                                     httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow")])
def test_no_answer_is_retried_then_retry_later(failure: Exception) -> None:
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailable) as caught:
        client([failure] * 3, sleeps, attempts=3).request("GET", "/x?token=SECRET")
    assert caught.value.status is None and len(sleeps) == 2 and sleeps[1] > sleeps[0]
    assert "SECRET" not in str(caught.value)


def test_401_gets_one_new_token_and_one_more_try() -> None:
    tokens = Tokens()
    c = client([httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken",
                                                    "message": "Lifetime validation failed"}}),
                httpx.Response(200, json={"ok": 1})], tokens=tokens)
    assert c.request("GET", "/x").json() == {"ok": 1}
    assert tokens.renewals == 1
    assert [r.headers["Authorization"] for r in c.seen] == ["Bearer t1", "Bearer t2"]  # type: ignore[attr-defined]


def test_401_with_a_fresh_token_is_permanent_with_the_service_message() -> None:
    tokens = Tokens()
    body = {"error": {"code": "InvalidAuthenticationToken", "message": "Access denied"}}
    with pytest.raises(HttpError) as caught:
        client([httpx.Response(401, json=body)] * 2, tokens=tokens).request("GET", "/x")
    assert tokens.renewals == 1 and caught.value.status == 401
    assert caught.value.code == "InvalidAuthenticationToken"
    assert "Access denied" in str(caught.value) and isinstance(caught.value, PermanentError)


@pytest.mark.parametrize("body, code, message", [
    ({"error": {"code": "ErrorInvalidIdMalformed", "message": "Id is malformed."}},
     "ErrorInvalidIdMalformed", "Id is malformed."),
    ({"code": 300, "message": "Validation Failed."}, "300", "Validation Failed."),
    ({"error": "invalid_client", "error_description": "Bad secret"}, "invalid_client",
     "Bad secret"),
])
def test_other_4xx_is_permanent_with_the_service_code_and_message(
        body: Any, code: str, message: str) -> None:
    with pytest.raises(HttpError) as caught:
        client([httpx.Response(400, json=body)]).request("POST", "/x")
    assert caught.value.code == code and message in str(caught.value)


def test_recover_is_asked_before_a_retry_so_nothing_is_made_twice() -> None:
    made = {"id": "E1"}
    asked: list[int] = []

    def recover() -> httpx.Response | None:
        asked.append(1)
        return httpx.Response(201, json=made)

    c = client([httpx.Response(503, headers={"Retry-After": "1"})])
    assert c.request("POST", "/events", json={}, recover=recover).json() == made
    assert asked == [1] and len(c.seen) == 1  # type: ignore[attr-defined]


def test_long_wait_goes_back_to_the_engine_without_sleeping() -> None:
    sleeps: list[float] = []
    with pytest.raises(ServiceUnavailable) as caught:
        client([httpx.Response(503, headers={"Retry-After": "600"})], sleeps,
               max_inline_wait=30).request("GET", "/x")
    assert caught.value.retry_after == 600.0 and sleeps == []
