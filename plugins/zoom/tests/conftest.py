"""A fake Zoom (OAuth + REST v2) on 127.0.0.1 with the documented shapes, errors and throttling."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

ACCOUNT_ID = "acc-Q5yrDo"
CLIENT_ID = "cid-8S9w5Q"
CLIENT_SECRET = "very-secret-value-123"
HOST = "reviews@la.example.gov.uk"
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


@dataclass
class Failure:
    """A scripted answer for the next matching request(s)."""

    method: str
    path: re.Pattern[str]
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after: bool = False  # do the real work first, then answer with the failure (lost answer)


class FakeZoom:
    """State and behaviour of the fake Zoom account."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = {HOST: {"id": "KDcuGIm1QgePTO8WbOqwIQ", "email": HOST, "type": 2,
                             "status": "active", "first_name": "Reviews", "last_name": "Team"}}
        self.meetings: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}
        self.token_ttl = 3600
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.bodies: list[tuple[str, str, Any]] = []
        self.failures: list[Failure] = []
        self.daily_limit = 100
        self.daily_counts: Counter[str] = Counter()
        self.daily_retry_after = True
        # "429": the rate-limit answer with X-RateLimit-Type: Daily-limit; "300": HTTP 300,
        # code 300, as the Create/Update meeting API reference lists the per-user daily cap.
        self.daily_style = "429"
        self.now: Any = lambda: datetime.now(UTC)  # the fake's clock, for its reset time
        self.reject_tokens = False
        self.next_id = 85746065400  # int64, beyond 32 bits like real meeting ids
        self.page_tokens: dict[str, int] = {}
        self.base = ""
        self.host, self.secret = HOST, CLIENT_SECRET

    # Helpers for tests -------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, body: Any = None, *,
             headers: dict[str, str] | None = None, times: int = 1, after: bool = False) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path`` regex with status."""
        self.failures.append(Failure(method, re.compile(path), status, body, headers or {},
                                     times, after))

    def expire_tokens(self) -> None:
        """Every issued token expires now (as after an hour)."""
        with self.lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def calls(self, method: str, prefix: str = "") -> list[str]:
        """Paths (with query) of the requests made with ``method`` starting with ``prefix``."""
        return [unquote(p) for m, p in self.requests
                if m == method and unquote(p).startswith(prefix)]

    def add_meeting(self, host: str, topic: str, start: datetime, agenda: str = "") -> int:
        """Pre-load a meeting that ehcbridge did not make."""
        meeting_id = self._new_id()
        self.meetings[meeting_id] = self._meeting(meeting_id, host, {
            "topic": topic, "type": 2, "start_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "timezone": "Europe/London", "duration": 30, "agenda": agenda})
        return meeting_id

    # Protocol ----------------------------------------------------------------------------

    def _new_id(self) -> int:
        self.next_id += 17
        return self.next_id

    def _meeting(self, meeting_id: int, host: str, body: dict[str, Any]) -> dict[str, Any]:
        user = self.users[host]
        pwd = secrets.token_urlsafe(8)
        return {
            "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
            "id": meeting_id, "host_id": user["id"], "host_email": host,
            "topic": body.get("topic", ""), "type": body.get("type", 2), "status": "waiting",
            "start_time": body.get("start_time"), "duration": body.get("duration", 60),
            "timezone": body.get("timezone", "UTC"), "agenda": body.get("agenda", ""),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "start_url": f"https://fake.zoom.us/s/{meeting_id}?zak=hostonly",
            "join_url": f"https://fake.zoom.us/j/{meeting_id}?pwd={pwd}",
            "password": pwd[:6], "h323_password": "123456", "pstn_password": "123456",
            "encrypted_password": pwd, "settings": dict(body.get("settings") or {}),
        }

    @staticmethod
    def _utc(meeting: dict[str, Any]) -> str:
        start = meeting["start_time"]
        if start.endswith("Z"):
            return str(start)
        local = datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(meeting["timezone"]))
        return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _public(self, meeting: dict[str, Any]) -> dict[str, Any]:
        return {**meeting, "start_time": self._utc(meeting)}

    def _validate(self, body: Any, creating: bool) -> str | None:
        if not isinstance(body, dict):
            return "Request Body should be a valid JSON object."
        if creating and body.get("type") not in (1, 2, 3, 8):
            return "Invalid field: type"
        if "topic" in body and len(body["topic"]) > 200:
            return "Invalid field: topic"
        if "start_time" in body:
            start = body["start_time"]
            if not (LOCAL_TIME.match(start) and body.get("timezone")) and not start.endswith("Z"):
                return "Invalid field: start_time"
        if "duration" in body and not isinstance(body["duration"], int):
            return "Invalid field: duration"
        if "agenda" in body and len(body["agenda"]) > 2000:
            return "Invalid field: agenda"
        return None

    def _daily(self, host: str) -> tuple[int, dict[str, str], Any] | None:
        if self.daily_counts[host] < self.daily_limit:
            self.daily_counts[host] += 1
            return None
        if self.daily_style == "300":
            return 300, {}, {"code": 300, "message": (
                "A maximum of 100 meetings can be created/updated for a single user in one day.")}
        tomorrow = self.now().astimezone(UTC).date() + timedelta(days=1)
        headers = {"X-RateLimit-Category": "Medium", "X-RateLimit-Type": "Daily-limit",
                   "X-RateLimit-Limit": str(self.daily_limit), "X-RateLimit-Remaining": "0"}
        if self.daily_retry_after:
            headers["Retry-After"] = f"{tomorrow.isoformat()}T00:00:00Z"
        return 429, headers, {"code": 429, "message": (
            f"You have exceeded the daily rate limit ({self.daily_limit}) of Meeting Create/Update "
            "API requests permitted for this particular user. You may resume these requests at "
            "GMT 00:00:00.")}

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes
               ) -> tuple[int, dict[str, str], Any]:
        """Answer one request: (status, headers, JSON body or None)."""
        url = urlsplit(target)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.lock:
            self.requests.append((method, target))
            body = json.loads(raw) if raw else None
            self.bodies.append((method, path, body))
            scripted = None
            for failure in self.failures:
                if failure.method == method and failure.path.search(path) and failure.times > 0:
                    failure.times -= 1
                    scripted = failure
                    break
            if scripted is not None and not scripted.after:
                return scripted.status, scripted.headers, scripted.body
            result = self._route(method, path, query, headers, body)
            if scripted is not None:
                return scripted.status, scripted.headers, scripted.body
            return result

    def _route(self, method: str, path: str, query: dict[str, list[str]],
               headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if path == "/oauth/token" and method == "POST":
            return self._token(query, headers)
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if (not auth.startswith("Bearer ") or self.reject_tokens
                or self.tokens.get(token, 0.0) <= time.time()):
            return 401, {}, {"code": 124, "message": "Invalid access token."}
        m = re.fullmatch(r"/v2/users/([^/]+)", path)
        if m and method == "GET":
            user = self.users.get(m.group(1))
            if user is None:
                return 404, {}, {"code": 1001, "message": f"User does not exist: {m.group(1)}."}
            return 200, {}, user
        m = re.fullmatch(r"/v2/users/([^/]+)/meetings", path)
        if m:
            host = m.group(1)
            if host not in self.users:
                return 404, {}, {"code": 1001, "message": f"User does not exist: {host}."}
            if method == "POST":
                error = self._validate(body, creating=True)
                if error:
                    return 400, {}, {"code": 300, "message": error}
                limited = self._daily(host)
                if limited:
                    return limited
                meeting_id = self._new_id()
                self.meetings[meeting_id] = self._meeting(meeting_id, host, body)
                return 201, {}, self._public(self.meetings[meeting_id])
            if method == "GET":
                return self._list(host, query)
        m = re.fullmatch(r"/v2/meetings/(\d+)", path)
        if m:
            meeting_id = int(m.group(1))
            meeting = self.meetings.get(meeting_id)
            if meeting is None:
                return 404, {}, {"code": 3001,
                                 "message": f"Meeting does not exist: {meeting_id}."}
            if method == "GET":
                return 200, {}, self._public(meeting)
            if method == "PATCH":
                error = self._validate(body, creating=False)
                if error:
                    return 400, {}, {"code": 300, "message": error}
                limited = self._daily(meeting["host_email"])
                if limited:
                    return limited
                settings = {**meeting["settings"], **(body.get("settings") or {})}
                meeting.update({k: v for k, v in body.items() if k != "settings"})
                meeting["settings"] = settings
                return 204, {}, None
            if method == "DELETE":
                del self.meetings[meeting_id]
                return 204, {}, None
        return 404, {}, {"code": 404, "message": "Not found"}

    def _token(self, query: dict[str, list[str]], headers: dict[str, str]
               ) -> tuple[int, dict[str, str], Any]:
        self.token_requests += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 400, {}, {"reason": "Invalid client_id or client_secret",
                             "error": "invalid_client"}
        if query.get("grant_type") != ["account_credentials"]:
            return 400, {}, {"reason": "unsupported grant type", "error": "unsupported_grant_type"}
        if query.get("account_id") != [ACCOUNT_ID]:
            return 400, {}, {"reason": "Invalid account_id", "error": "invalid_request"}
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_ttl
        return 200, {}, {"access_token": token, "token_type": "bearer",
                         "expires_in": self.token_ttl,
                         "scope": "meeting:write:admin meeting:read:admin user:read:admin",
                         "api_url": self.base}

    def _list(self, host: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        size = min(int(query.get("page_size", ["30"])[0]), 300)
        token = query.get("next_page_token", [""])[0]
        if token and token not in self.page_tokens:
            return 400, {}, {"code": 300, "message": "Invalid next_page_token."}
        offset = self.page_tokens.get(token, 0)
        mine = sorted((m for m in self.meetings.values() if m["host_email"] == host),
                      key=lambda m: (self._utc(m), m["id"]))
        page = mine[offset:offset + size]
        next_token = ""
        if offset + size < len(mine):
            next_token = secrets.token_urlsafe(12)
            self.page_tokens[next_token] = offset + size
        items = [{k: self._public(m)[k] for k in (
            "uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone",
            "created_at", "join_url")} | {"agenda": m["agenda"][:250]} for m in page]
        return 200, {}, {"page_size": size, "total_records": len(mine),
                         "next_page_token": next_token, "meetings": items}


def _handler(fake: FakeZoom) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = fake.handle(self.command, self.path, headers, raw)
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    """A running fake Zoom; ``zoom.base`` is its http://127.0.0.1:port root."""
    fake = FakeZoom()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    """Each test starts without cached tokens."""
    from ehcbridge_zoom.client import TOKENS

    TOKENS.clear()
    yield
    TOKENS.clear()


@pytest.fixture
def settings(zoom: FakeZoom) -> Any:
    """Settings pointing at the fake Zoom, with instant backoff."""
    from ehcbridge_zoom.settings import ZoomSettings

    return ZoomSettings(account_id=ACCOUNT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                        host=HOST, oauth_url=zoom.base, api_url=f"{zoom.base}/v2",
                        backoff=0, max_inline_wait=5, timeout=5)
