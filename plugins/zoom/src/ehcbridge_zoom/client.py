"""A small Zoom REST client: server-to-server OAuth with a shared token cache, retries and limits.

Errors leave this module as ehcbridge exceptions so hook bodies need no mapping:
``RetryLater`` for throttling and outages (with ``retry_after`` when Zoom says when),
``ZoomNotFound``/``ZoomApiError`` (both ``PermanentError``) for what retrying cannot fix.
Secrets and tokens are never logged or put in an exception message.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import tenacity
from ehcbridge import PermanentError, RetryLater
from ehcbridge.retry import parse_retry_after

log = logging.getLogger("ehcbridge.plugins.zoom")

# Zoom's error code for an invalid or expired access token.
INVALID_TOKEN = 124
# Zoom's error codes for "meeting does not exist" and "user does not exist".
MEETING_NOT_FOUND = 3001
USER_NOT_FOUND = 1001


class ZoomApiError(PermanentError):
    """Zoom refused a request in a way retrying cannot fix (4xx), with Zoom's code and message."""

    def __init__(self, message: str, *, status: int, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ZoomNotFound(ZoomApiError):
    """The meeting or user does not exist on Zoom (HTTP 404, code 3001 or 1001)."""


class _Retryable(Exception):
    """A temporary failure worth another try; ``retry_after`` is Zoom's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Token:
    value: str
    expires_at: float  # in the cache's clock (monotonic seconds)


class TokenCache:
    """Access tokens shared by every client of one process, keyed by account and app.

    Zoom invalidates older tokens when an app asks for many, so one token per app is reused
    until shortly before it expires rather than fetched per call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], _Token] = {}

    def get(self, key: tuple[str, str, str], now: float) -> str | None:
        """The cached token for ``key`` if it is still valid at ``now``."""
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at <= now:
                return None
            return token.value

    def put(self, key: tuple[str, str, str], value: str, expires_at: float) -> None:
        """Cache a token until ``expires_at`` (already reduced by the safety margin)."""
        with self._lock:
            self._tokens[key] = _Token(value, expires_at)

    def drop(self, key: tuple[str, str, str], value: str | None = None) -> None:
        """Forget the token for ``key`` (only if it is still ``value``, when given)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and (value is None or token.value == value):
                del self._tokens[key]

    def clear(self) -> None:
        """Forget every token (tests, credential rotation)."""
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


def _next_utc_midnight(now: datetime) -> datetime:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    """Zoom's ``{"code", "message"}`` (or OAuth's ``{"error", "reason"}``) from an error."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return None, f"HTTP {response.status_code}"
    code = body.get("code")
    message = body.get("message") or body.get("reason") or body.get("error") or ""
    return (code if isinstance(code, int) else None), str(message)


class ZoomClient:
    """Zoom REST API v2 client for one app (account id, client id, secret) and one host user."""

    def __init__(
        self,
        *,
        account_id: str,
        client_id: str,
        client_secret: str,
        host: str,
        oauth_url: str = "https://zoom.us",
        api_url: str = "https://api.zoom.us/v2",
        timeout: float = 20.0,
        max_attempts: int = 4,
        backoff: float = 1.0,
        max_inline_wait: float = 30.0,
        token_margin: float = 300.0,
        tokens: TokenCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.account_id = account_id
        self.client_id = client_id
        self._secret = client_secret
        self.host = host
        self.oauth_url = oauth_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_inline_wait = max_inline_wait
        self.token_margin = token_margin
        self._tokens = tokens if tokens is not None else TOKENS
        self._sleep = sleep
        self._monotonic = monotonic
        self._utcnow = utcnow
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"User-Agent": "ehcbridge-zoom"})
        self._exp_wait = tenacity.wait_exponential(multiplier=backoff, max=max(backoff, 60.0))

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> ZoomClient:
        """A client configured from a ``ZoomSettings`` instance."""
        return cls(
            account_id=settings.account_id,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            host=settings.host,
            oauth_url=settings.oauth_url,
            api_url=settings.api_url,
            timeout=settings.timeout,
            max_attempts=settings.max_attempts,
            backoff=settings.backoff,
            max_inline_wait=settings.max_inline_wait,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"ZoomClient(account_id={self.account_id!r}, host={self.host!r})"

    def __enter__(self) -> ZoomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    # Retrying ----------------------------------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._exp_wait(state))

    def retrying(self) -> tenacity.Retrying:
        """A tenacity policy for temporary failures: Retry-After honoured, else exponential."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )

    def with_retries(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` under the retry policy; a failure still temporary raises RetryLater."""
        try:
            return self.retrying()(func)
        except _Retryable as exc:
            raise RetryLater(f"Zoom: {exc}", retry_after=exc.retry_after) from None

    # Auth --------------------------------------------------------------------------------

    @property
    def _token_key(self) -> tuple[str, str, str]:
        return (self.oauth_url, self.account_id, self.client_id)

    def _fetch_token(self) -> str:
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        try:
            response = self._http.post(
                f"{self.oauth_url}/oauth/token",
                params={"grant_type": "account_credentials", "account_id": self.account_id},
                headers={"Authorization": f"Basic {basic}"},
            )
        except httpx.TransportError as exc:
            raise _Retryable(
                f"cannot reach the Zoom OAuth endpoint ({type(exc).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise self._temporary(
                f"Zoom OAuth endpoint answered HTTP {response.status_code}",
                parse_retry_after(response.headers.get("Retry-After"), self._utcnow()),
            )
        if response.status_code != 200:
            _code, message = _error_body(response)
            raise ZoomApiError(
                f"Zoom refused the app credentials (HTTP {response.status_code}: {message}); "
                "check account_id, client_id and client_secret and that the app is activated",
                status=response.status_code,
            )
        body = response.json()
        token = body.get("access_token")
        if not token:
            raise ZoomApiError("Zoom's token response has no access_token", status=200)
        expires_in = float(body.get("expires_in") or 3600)
        margin = min(self.token_margin, expires_in / 2)
        self._tokens.put(self._token_key, token, self._monotonic() + expires_in - margin)
        log.debug("zoom: new access token for account %s (valid %ss)", self.account_id, expires_in)
        return str(token)

    def token(self) -> str:
        """A valid access token: the cached one, or a new one when missing or about to expire."""
        cached = self._tokens.get(self._token_key, self._monotonic())
        return cached if cached is not None else self._fetch_token()

    # Requests ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None) -> httpx.Response:
        """One request with a token; renews the token once on 401. Raises on any error status."""
        renewed = False
        while True:
            token = self.token()
            try:
                response = self._http.request(
                    method, f"{self.api_url}{path}", params=params, json=json,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError as exc:
                raise _Retryable(f"cannot reach Zoom ({type(exc).__name__}) on {method} {path}"
                                 ) from None
            if response.status_code == 401 and not renewed:
                # Expired, or invalidated because another process of this app took a new one.
                self._tokens.drop(self._token_key, token)
                renewed = True
                continue
            break
        if response.status_code < 400:
            return response
        code, message = _error_body(response)
        status = response.status_code
        if status == 401:
            raise ZoomApiError(
                f"Zoom rejected a fresh access token on {method} {path} (code {code}: {message}); "
                "check the app's scopes (meeting:write:admin, meeting:read:admin, user:read:admin)",
                status=status, code=code)
        if status == 429:
            self._throttled(response, method, path, message)
        if status >= 500:
            raise self._temporary(
                f"Zoom answered HTTP {status} on {method} {path}",
                parse_retry_after(response.headers.get("Retry-After"), self._utcnow()))
        if status == 404 or code in (MEETING_NOT_FOUND, USER_NOT_FOUND):
            raise ZoomNotFound(f"Zoom: {message or 'not found'} ({method} {path})",
                               status=status, code=code)
        raise ZoomApiError(f"Zoom refused {method} {path}: HTTP {status} code {code}: {message}",
                           status=status, code=code)

    def _throttled(self, response: httpx.Response, method: str, path: str, message: str) -> None:
        """Turn a 429 into a short retry or, for the daily limit, RetryLater until the reset."""
        now = self._utcnow()
        header = response.headers.get("Retry-After")
        wait = parse_retry_after(header, now)
        daily = ("daily" in response.headers.get("X-RateLimit-Type", "").lower()
                 or "daily" in message.lower()
                 or (header is not None and wait is not None and not header.strip().isdigit()
                     and wait > self.max_inline_wait))
        if daily:
            if wait is None:
                wait = (_next_utc_midnight(now) - now).total_seconds()
            reset = (now + timedelta(seconds=wait)).strftime("%Y-%m-%d %H:%M UTC")
            raise RetryLater(
                f"Zoom daily limit of meeting create/update requests reached for host {self.host} "
                f"({method} {path}); Zoom accepts more after {reset}. Spread bookings over "
                "several hosts or wait for the reset.",
                retry_after=wait,
            )
        raise self._temporary(f"Zoom is throttling requests ({method} {path})", wait)

    def _temporary(self, message: str, retry_after: float | None) -> Exception:
        """A retry here, or RetryLater to the engine when Zoom asks for a long wait."""
        if retry_after is not None and retry_after > self.max_inline_wait:
            # Blocking a worker for minutes helps no one: the engine reschedules the delivery.
            return RetryLater(f"Zoom: {message}; retry in {retry_after:.0f}s",
                              retry_after=retry_after)
        return _Retryable(message, retry_after)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, retry: bool = True) -> httpx.Response:
        """Send a request; temporary failures are retried (``retry``) or raised as RetryLater."""
        if retry:
            response: httpx.Response = self.with_retries(
                lambda: self._send(method, path, params=params, json=json))
            return response
        return self._send(method, path, params=params, json=json)

    # API ---------------------------------------------------------------------------------

    def get_user(self, user: str | None = None) -> dict[str, Any]:
        """GET /users/{user} (the configured host by default)."""
        data: dict[str, Any] = self.request("GET", f"/users/{quote(user or self.host)}").json()
        return data

    def get_meeting(self, meeting_id: int | str) -> dict[str, Any]:
        """GET /meetings/{id}; ZoomNotFound when it was deleted."""
        data: dict[str, Any] = self.request("GET", f"/meetings/{meeting_id}").json()
        return data

    def iter_upcoming(self, page_size: int = 300) -> Iterator[dict[str, Any]]:
        """Every upcoming meeting of the host, following ``next_page_token``."""
        token = ""
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"type": "upcoming", "page_size": page_size}
            if token:
                params["next_page_token"] = token
            body = self.request("GET", f"/users/{quote(self.host)}/meetings", params=params).json()
            yield from body.get("meetings") or []
            token = body.get("next_page_token") or ""
            if not token or token in seen:  # a repeated token would loop for ever
                return
            seen.add(token)

    def create_meeting(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /users/{host}/meetings, once: the caller decides whether a retry may duplicate."""
        data: dict[str, Any] = self.request(
            "POST", f"/users/{quote(self.host)}/meetings", json=body, retry=False).json()
        return data

    def update_meeting(self, meeting_id: int | str, body: dict[str, Any]) -> None:
        """PATCH /meetings/{id} (204, no body); ZoomNotFound when it was deleted on Zoom."""
        self.request("PATCH", f"/meetings/{meeting_id}", json=body)

    def delete_meeting(self, meeting_id: int | str) -> bool:
        """DELETE /meetings/{id}; False when it was already gone (treated as done)."""
        try:
            self.request("DELETE", f"/meetings/{meeting_id}")
        except ZoomNotFound:
            return False
        return True
