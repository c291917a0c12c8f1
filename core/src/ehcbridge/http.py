"""One HTTP client for every connector: retries, Retry-After, tokens, and errors the engine knows.

A plugin that calls a remote service builds an :class:`HttpClient` and gets, with no vendor
knowledge in the core:

- 429, 503 and the other temporary answers (and timeouts, refused connections) retried a few
  times inline when the wait is short, honouring ``Retry-After`` (seconds or an HTTP date, read
  against the engine's clock so ``--now`` holds), then :class:`ServiceUnavailable`, a
  ``RetryLater`` the engine reschedules, with the wait clamped to a day;
- a refreshable token: a 401 gets one new token and one more try before it counts;
- every other refusal as :class:`HttpError` (a ``PermanentError``) carrying the service's own code
  and message;
- ``recover``: before retrying a request that may have taken effect (a POST answered 503 or cut
  off), ask the caller whether it did, so a retry never makes a second one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from ehcbridge import PermanentError, RetryLater
from ehcbridge.retry import MAX_RETRY_AFTER, read_retry_after

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MESSAGE_LIMIT = 300  # characters of a service's error message kept (no bodies in logs)


class HttpError(PermanentError):
    """The service refused the request: HTTP status, the service's code and message."""

    def __init__(self, message: str, *, status: int, code: str = "", detail: str = "",
                 body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body


class ServiceUnavailable(RetryLater):
    """A temporary failure (throttled, down, no answer); ``retry_after`` in seconds if known."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None, code: str = "", capped: bool = False) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code
        self.capped = capped


class TokenSource(Protocol):
    """Where bearer tokens come from: the current one, and a new one when it was refused."""

    def token(self) -> str:
        """A token to send (a cached one while it is valid)."""

    def renew(self, rejected: str) -> str:
        """A new token after the service refused ``rejected`` (expired or revoked)."""


def service_message(response: httpx.Response) -> tuple[str, str, Any]:
    """The service's error code and message from the common JSON error shapes, and the body."""
    try:
        body = response.json()
    except ValueError:
        return "", (response.reason_phrase or "")[:MESSAGE_LIMIT], None
    code: Any = ""
    message: Any = ""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):  # {"error": {"code", "message"}}
            code, message = inner.get("code", ""), inner.get("message", "")
        else:  # {"code", "message"} or OAuth's {"error", "error_description"}
            code = body.get("code", inner or "")
            message = (body.get("message") or body.get("error_description")
                       or body.get("reason") or "")
    return str(code or "")[:80], str(message or "")[:MESSAGE_LIMIT], body


Classifier = Callable[[httpx.Response, str, str], Exception | None]


class HttpClient:
    """An httpx client that maps a service's answers to what the engine understands."""

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        tokens: TokenSource | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        verify: Any = True,
        transport: httpx.BaseTransport | None = None,
        attempts: int = 4,
        backoff: float = 1.0,
        max_inline_wait: float = 30.0,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        temporary: frozenset[int] = TEMPORARY_STATUSES,
        classify: Classifier | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.tokens = tokens
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_inline_wait = max_inline_wait
        self.temporary = temporary
        self._now = now or (lambda: datetime.now(UTC))
        self._sleep = sleep or time.sleep
        self._classify = classify
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport,
                                  headers=headers or {})

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sleep(self, seconds: float) -> None:
        """Wait between tries (injectable: tests never sleep for real)."""
        self._sleep(seconds)

    def now(self) -> datetime:
        """The clock Retry-After dates are read against (the engine's, when given)."""
        return self._now()

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (absolute URLs, e.g. next-page links, pass through)."""
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def backoff_wait(self, attempt: int) -> float:
        """Exponential backoff for the ``attempt``-th failure (1, 2, 4... times ``backoff``)."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_inline_wait))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
        recover: Callable[[], httpx.Response | None] | None = None,
    ) -> httpx.Response:
        """Send a request and return a 2xx answer; raise ServiceUnavailable or HttpError.

        ``retry=False`` sends once (the engine retries later). ``recover`` is asked, before
        each retry of a temporary failure, for the result of a request that may have taken
        effect after all; an answer it returns is used instead of sending again.
        """
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            token = self.tokens.token() if self.tokens is not None else None
            failure = self._send(method, path, params, json, data, headers, token)
            if isinstance(failure, httpx.Response):
                response = failure
                if 200 <= response.status_code < 300:
                    return response
                if response.status_code == 401 and token is not None and not renewed:
                    # Expired or revoked: one new token and one more try, not counted.
                    assert self.tokens is not None
                    self.tokens.renew(token)
                    renewed = True
                    attempt -= 1
                    continue
                problem = self._problem(method, path, response)
                if not isinstance(problem, ServiceUnavailable):
                    raise problem
                failure = problem
            wait = failure.retry_after
            if wait is None:
                wait = self.backoff_wait(attempt)
            if not retry or attempt >= self.attempts or wait > self.max_inline_wait:
                raise failure
            self._sleep(wait)
            if recover is not None:
                found = recover()
                if found is not None:
                    return found

    def _send(self, method: str, path: str, params: dict[str, Any] | None, json: Any, data: Any,
              headers: dict[str, str] | None, token: str | None
              ) -> httpx.Response | ServiceUnavailable:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._http.request(method, self.url(path), params=params, json=json,
                                          data=data, headers=all_headers)
        except httpx.TimeoutException as exc:
            return ServiceUnavailable(
                f"{self.service} did not answer {method} {_short(path)} in time "
                f"({type(exc).__name__})")
        except httpx.TransportError as exc:
            # Only the exception type: its text may hold a URL with a secret in it.
            return ServiceUnavailable(
                f"cannot reach {self.service} for {method} {_short(path)} ({type(exc).__name__})")
        return response

    def _problem(self, method: str, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        code, detail, body = service_message(response)
        if self._classify is not None:
            special = self._classify(response, code, detail)
            if special is not None:
                return special
        said = f" {code}" if code else ""
        text = f": {detail}" if detail else ""
        if status in self.temporary:
            wait, capped = read_retry_after(response.headers.get("Retry-After"), self.now())
            note = ""
            if capped:
                note = f" (asked to wait longer than {MAX_RETRY_AFTER / 3600:.0f} h)"
            return ServiceUnavailable(
                f"{self.service} answered HTTP {status}{said} to {method} {_short(path)}"
                f"{text}{note}", retry_after=wait, status=status, code=code, capped=capped)
        return HttpError(
            f"{self.service} refused {method} {_short(path)}: HTTP {status}{said}{text}",
            status=status, code=code, detail=detail, body=body)


def _short(path: str) -> str:
    """A path without its query string (queries can hold tokens or personal data)."""
    return path.split("?", 1)[0][:200]
