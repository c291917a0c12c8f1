"""Microsoft Graph on the core's HTTP kit: Graph error bodies, per-mailbox limits, JSON batches.

Retries, Retry-After, token renewal after a 401 and the mapping to ``RetryLater`` and
``PermanentError`` are the kit's (``ehcbridge.http``); this module adds only what is Graph's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from ehcbridge.http import HttpClient, HttpError, ServiceUnavailable, TokenSource

MAILBOX_CONCURRENCY = 4  # Outlook allows 4 concurrent requests per app per mailbox.
MAX_BATCH = 20  # Graph JSON batching limit.
# Sent on every call so Graph answers start/end in London wall-clock time, as we send them.
PREFER_LONDON = 'outlook.timezone="Europe/London"'

_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()

# Graph's errors are the kit's: HttpError (refused, with Graph's code) and ServiceUnavailable
# (throttled, down or unreachable; a RetryLater).
GraphError = HttpError
GraphUnavailable = ServiceUnavailable


def default_sleep(seconds: float) -> None:
    """How the client waits between retries; tests replace it so no test sleeps for real."""
    time.sleep(seconds)


def mailbox_slot(mailbox: str) -> threading.BoundedSemaphore:
    """The process-wide semaphore limiting requests in flight for one mailbox."""
    key = mailbox.lower()
    with _SLOTS_LOCK:
        slot = _SLOTS.get(key)
        if slot is None:
            slot = _SLOTS[key] = threading.BoundedSemaphore(MAILBOX_CONCURRENCY)
        return slot


class _StaticTokens:
    """A token provider without renewal (a plain callable), for tests and simple callers."""

    def __init__(self, provider: Callable[[], str]) -> None:
        self._provider = provider

    def token(self) -> str:
        return self._provider()

    def renew(self, rejected: str) -> str:
        return self._provider()


class GraphClient:
    """Calls Graph with a bearer token through the core HTTP kit."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource | Callable[[], str],
        *,
        verify: Any = True,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        source: TokenSource = _StaticTokens(tokens) if callable(tokens) else tokens
        self.http = HttpClient(
            self.base_url, service="Microsoft Graph", tokens=source,
            headers={"Accept": "application/json", "Prefer": PREFER_LONDON},
            timeout=timeout, verify=verify, transport=transport, attempts=max_attempts,
            max_inline_wait=max_wait, now=now,
            sleep=sleep or (lambda seconds: default_sleep(seconds)),
        )

    def sleep(self, seconds: float) -> None:
        """Wait between retry rounds (the injectable sleep)."""
        self.http.sleep(seconds)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _slot(self, mailbox: str | None) -> Iterator[None]:
        if mailbox is None:
            yield
            return
        with mailbox_slot(mailbox):
            yield

    def request(
        self,
        method: str,
        path: str,
        *,
        mailbox: str | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
        recover: Callable[[], httpx.Response | None] | None = None,
    ) -> httpx.Response:
        """Send one request (path relative to graph_url); HttpError or ServiceUnavailable on a
        failure, naming the mailbox."""
        with self._slot(mailbox):
            try:
                return self.http.request(method, path, json=json, params=params,
                                         headers=headers, retry=retry, recover=recover)
            except (HttpError, ServiceUnavailable) as exc:
                if mailbox and exc.args and mailbox not in str(exc):
                    exc.args = (f"{exc.args[0]} (mailbox {mailbox})", *exc.args[1:])
                raise

    def batch(self, requests: list[dict[str, Any]], *, mailbox: str | None = None
              ) -> dict[str, dict[str, Any]]:
        """POST one JSON batch (at most 20 requests); answers keyed by request id."""
        if len(requests) > MAX_BATCH:
            raise ValueError(f"a Graph batch holds at most {MAX_BATCH} requests")
        response = self.request("POST", "/$batch", mailbox=mailbox, json={"requests": requests})
        answers = response.json().get("responses", [])
        return {str(a.get("id")): a for a in answers}
