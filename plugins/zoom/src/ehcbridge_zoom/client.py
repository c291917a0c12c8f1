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
from ehcbridge import PermanentError, RetryLater
from ehcbridge.http import HttpClient, HttpError
from ehcbridge.retry import next_utc_day, parse_retry_after

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


def is_daily_limit(status: int, code: str, message: str) -> bool:
    """Zoom's create/update limit per host and day: HTTP 300 with code 300 ("A maximum of 100
    meetings can be created/updated for a single user in one day"), not the code-300
    validation errors that come with HTTP 400."""
    if status == 300:
        return True
    text = message.lower()
    return code == "300" and ("maximum" in text or "daily" in text) and "meeting" in text


class ZoomClient:
    """Zoom REST API v2 client for one app (account id, client id, secret) and one host user.

    Requests go through the core HTTP kit; this class adds Zoom's token endpoint, its daily
    limit and its error codes.
    """

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
        self.max_inline_wait = max_inline_wait
        self.token_margin = token_margin
        self._tokens = tokens if tokens is not None else TOKENS
        self._monotonic = monotonic
        self._utcnow = utcnow
        common: dict[str, Any] = dict(
            headers={"User-Agent": "ehcbridge-zoom"}, timeout=timeout, transport=transport,
            attempts=self.max_attempts, backoff=backoff, max_inline_wait=max_inline_wait,
            now=utcnow, sleep=sleep, classify=self._classify)
        self.api = HttpClient(self.api_url, service="Zoom", tokens=self, **common)
        self.oauth = HttpClient(self.oauth_url, service="the Zoom OAuth endpoint", **common)

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
        """Close the HTTP connection pools."""
        self.api.close()
        self.oauth.close()

    def with_retries(self, func: Callable[[], Any]) -> Any:
        """Run ``func``; the kit already retried what was worth retrying in-process."""
        return func()

    # Auth (the kit's TokenSource) ----------------------------------------------------------

    @property
    def _token_key(self) -> tuple[str, str, str]:
        return (self.oauth_url, self.account_id, self.client_id)

    def _fetch_token(self) -> str:
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        try:
            response = self.oauth.request(
                "POST", "/oauth/token",
                params={"grant_type": "account_credentials", "account_id": self.account_id},
                headers={"Authorization": f"Basic {basic}"},
            )
        except HttpError as exc:
            said = " ".join(p for p in (exc.code, exc.detail) if p)
            raise ZoomApiError(
                f"Zoom refused the app credentials (HTTP {exc.status}: {said}); "
                "check account_id, client_id and client_secret and that the app is activated",
                status=exc.status,
            ) from None
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

    def renew(self, rejected: str) -> str:
        """A new token after Zoom refused ``rejected`` (expired, or invalidated because another
        process of this app took a new one)."""
        self._tokens.drop(self._token_key, rejected)
        return self._fetch_token()

    # Requests ----------------------------------------------------------------------------

    def _classify(self, response: httpx.Response, code: str, message: str) -> Exception | None:
        """Zoom's daily create/update limit: RetryLater until Zoom accepts more."""
        status = response.status_code
        now = self._utcnow()
        header = response.headers.get("Retry-After")
        wait = parse_retry_after(header, now)
        daily = is_daily_limit(status, code, message)
        if status == 429 and not daily:
            daily = ("daily" in response.headers.get("X-RateLimit-Type", "").lower()
                     or "daily" in message.lower()
                     or (header is not None and wait is not None
                         and not header.strip().isdigit() and wait > self.max_inline_wait))
        if not daily:
            return None
        if wait is None or wait <= 0:
            wait = next_utc_day(now)
        reset = (now + timedelta(seconds=wait)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        what = f"{response.request.method} {response.request.url.path}"
        return RetryLater(
            f"Zoom daily limit of meeting create/update requests reached for host {self.host} "
            f"({what}); Zoom accepts more after {reset}. Spread bookings over several hosts or "
            "wait for the reset.",
            retry_after=wait,
        )

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, retry: bool = True,
                recover: Callable[[], httpx.Response | None] | None = None) -> httpx.Response:
        """Send a request; temporary failures are retried (``retry``) then raised as RetryLater;
        refusals as ZoomApiError or ZoomNotFound with Zoom's code and message."""
        try:
            return self.api.request(method, path, params=params, json=json, retry=retry,
                                    recover=recover)
        except HttpError as exc:
            raise self._refused(method, path, exc) from None

    def _refused(self, method: str, path: str, exc: HttpError) -> ZoomApiError:
        code = int(exc.code) if exc.code.isdigit() else None
        status = exc.status
        if status == 401:
            return ZoomApiError(
                f"Zoom rejected a fresh access token on {method} {path} (code {code}: "
                f"{exc.detail}); check the app's scopes (meeting:write:admin, "
                "meeting:read:admin, user:read:admin)", status=status, code=code)
        if status == 404 or code in (MEETING_NOT_FOUND, USER_NOT_FOUND):
            return ZoomNotFound(f"Zoom: {exc.detail or 'not found'} ({method} {path})",
                                status=status, code=code)
        return ZoomApiError(
            f"Zoom refused {method} {path}: HTTP {status} code {code}: {exc.detail}",
            status=status, code=code)

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

    def create_meeting(self, body: dict[str, Any],
                       recover: Callable[[], dict[str, Any] | None] | None = None
                       ) -> dict[str, Any]:
        """POST /users/{host}/meetings. Retried in-process only with ``recover``, which is asked
        before each retry for the meeting a failed attempt may have created after all."""
        def look() -> httpx.Response | None:
            assert recover is not None
            found = recover()
            return httpx.Response(201, json=found) if found is not None else None

        data: dict[str, Any] = self.request(
            "POST", f"/users/{quote(self.host)}/meetings", json=body, retry=recover is not None,
            recover=look if recover is not None else None).json()
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
