"""A small Microsoft Graph client: retries on throttling, Graph error bodies, per-mailbox limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from ehcbridge.retry import parse_retry_after
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

RETRY_STATUSES = frozenset({429, 503, 504})
MAILBOX_CONCURRENCY = 4  # Outlook allows 4 concurrent requests per app per mailbox.
MAX_BATCH = 20  # Graph JSON batching limit.

_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def default_sleep(seconds: float) -> None:
    """How the client waits between retries; tests replace it so no test sleeps for real."""
    time.sleep(seconds)


class GraphError(Exception):
    """Graph answered with an error: HTTP status, Graph's error code and the mailbox concerned."""

    def __init__(
        self, status: int, code: str, message: str, *, mailbox: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f" for mailbox {mailbox}" if mailbox else ""
        super().__init__(f"Graph error {status} {code}{where}: {message}")
        self.status = status
        self.code = code
        self.graph_message = message
        self.mailbox = mailbox
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """True for throttling and temporary server errors."""
        return self.status in RETRY_STATUSES or self.status >= 500


class GraphUnavailable(Exception):
    """Graph could not be reached at all (DNS, connection refused, TLS failure, timeout)."""


def mailbox_slot(mailbox: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore limiting requests in flight for one mailbox."""
    key = mailbox.lower()
    with _SLOTS_LOCK:
        slot = _SLOTS.get(key)
        if slot is None:
            slot = _SLOTS[key] = threading.BoundedSemaphore(MAILBOX_CONCURRENCY)
        return slot


def error_from_body(status: int, body: Any, *, mailbox: str | None, retry_after: float | None
                    ) -> GraphError:
    """A GraphError from Graph's ``{"error": {"code", "message"}}`` body (or whatever came)."""
    code, message = f"HTTP{status}", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or code)
        message = str(body["error"].get("message") or "")
    return GraphError(status, code, message[:300], mailbox=mailbox, retry_after=retry_after)


def _graph_error(response: httpx.Response, mailbox: str | None) -> GraphError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_body(
        response.status_code, body, mailbox=mailbox,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


class GraphClient:
    """Calls Graph with a bearer token; retries 429/503/504 honouring Retry-After."""

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[[], str],
        *,
        verify: Any = True,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token_provider
        self._sleep = sleep or (lambda seconds: default_sleep(seconds))
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._http = httpx.Client(verify=verify, timeout=timeout, transport=transport)

    def sleep(self, seconds: float) -> None:
        """Wait between retry rounds (the injectable sleep)."""
        self._sleep(seconds)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _slot(self, mailbox: str | None) -> Iterator[None]:
        if mailbox is None:
            yield
            return
        slot = mailbox_slot(mailbox)
        with slot:
            yield

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return float(min(2 ** (state.attempt_number - 1), 30))

    def request(
        self,
        method: str,
        path: str,
        *,
        mailbox: str | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request (path relative to graph_url); raise GraphError on a non-2xx answer."""
        def worth_retrying(exc: BaseException) -> bool:
            # A Retry-After longer than we are willing to block for goes back to the engine.
            return isinstance(exc, GraphError) and exc.retryable and (
                exc.retry_after is None or exc.retry_after <= self.max_wait)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._send_once, method, path, mailbox, json, params, headers)

    def _send_once(
        self, method: str, path: str, mailbox: str | None, json: Any,
        params: dict[str, str] | None, headers: dict[str, str] | None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        all_headers.update(headers or {})
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        with self._slot(mailbox):
            try:
                response = self._http.request(
                    method, url, json=json, params=params, headers=all_headers
                )
            except httpx.TransportError as exc:
                raise GraphUnavailable(
                    f"cannot reach {self.base_url}: {type(exc).__name__}"
                ) from None
        if response.status_code >= 400:
            raise _graph_error(response, mailbox)
        return response

    def batch(self, requests: list[dict[str, Any]], *, mailbox: str | None = None
              ) -> dict[str, dict[str, Any]]:
        """POST one JSON batch (at most 20 requests); answers keyed by request id."""
        if len(requests) > MAX_BATCH:
            raise ValueError(f"a Graph batch holds at most {MAX_BATCH} requests")
        response = self.request("POST", "/$batch", mailbox=mailbox, json={"requests": requests})
        answers = response.json().get("responses", [])
        return {str(a.get("id")): a for a in answers}

