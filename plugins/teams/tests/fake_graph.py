"""A fake Microsoft Entra token endpoint and Microsoft Graph, served over real HTTPS on 127.0.0.1.

Implements the documented shapes the plugin relies on: OIDC discovery and the client-credentials
token endpoint; /users/{id}/calendar; event create (201, transactionId de-duplication,
onlineMeeting.joinUrl), list with a singleValueExtendedProperties filter, get, PATCH, cancel
(202); JSON batching; Graph error bodies; 429 with Retry-After; a mode failing the first N calls.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

ORGANISER = "sen@school.example.org"
SECRET = "s3cret-value-XYZ"
UPDATABLE = {
    "attendees", "body", "categories", "end", "hideAttendees", "importance", "isAllDay",
    "isOnlineMeeting", "isReminderOn", "location", "locations", "onlineMeetingProvider",
    "recurrence", "reminderMinutesBeforeStart", "responseRequested", "sensitivity", "showAs",
    "start", "subject",
}
TEAMS_BLOB = "<div>________________<br>Microsoft Teams meeting<br>Join: {url}</div>"
_FILTER = re.compile(
    r"^singleValueExtendedProperties/Any\(ep: ep/id eq '(?P<id>[^']+)' and "
    r"ep/value eq '(?P<value>(?:[^']|'')*)'\)$"
)


@dataclass
class Mailbox:
    """A mailbox in the fake tenant."""

    teams: bool = True
    access: bool = True
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Failure:
    """Fail the next ``count`` Graph calls with ``status`` (after processing, if ``after``)."""

    count: int
    status: int = 503
    retry_after: str | None = "1"
    code: str = "ServiceUnavailable"
    methods: tuple[str, ...] = ()
    after: bool = False


class FakeGraph:
    """The fake service; start() it, read ``requests`` and ``mailboxes`` in assertions."""

    def __init__(self, tmp: Path, *, tenant: str = "contoso-tenant", client_id: str = "app-123",
                 secret: str = SECRET) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.secret = secret
        self.mailboxes: dict[str, Mailbox] = {}
        self.requests: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.tokens: set[str] = set()
        self.failures: list[Failure] = []
        self.batch_inner_throttle: int = 0
        # "honour" the extended-property $filter, "ignore" it (list everything), or "reject" it.
        self.filter_mode = "honour"
        self.token_failures = 0  # fail this many token requests with 503
        self.delay = 0.0
        # Tokens Graph has stopped accepting (expired early, revoked), and what it says then.
        self.expired: set[str] = set()
        # Reads of a new event that still show no onlineMeeting (Teams fills the link in late).
        self.late_join_reads = 0
        # False: a POST repeated with the same transactionId makes a second event (Graph's
        # documentation does not promise de-duplication).
        self.dedupe_transactions = True
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.lock = threading.RLock()
        ca, cert = _tls()
        self.ca_path = tmp / "fake-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)

    # -- control -------------------------------------------------------------------------

    def start(self) -> FakeGraph:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def add_mailbox(self, address: str, *, teams: bool = True, access: bool = True) -> Mailbox:
        """Create a mailbox (Teams allowed unless ``teams=False``)."""
        box = self.mailboxes[address.lower()] = Mailbox(teams=teams, access=access)
        return box

    def fail_next(self, count: int, status: int = 503, *, retry_after: str | None = "1",
                  methods: tuple[str, ...] = (), after: bool = False) -> None:
        """Make the next ``count`` matching Graph calls fail."""
        code = {429: "ApplicationThrottled", 503: "ServiceUnavailable",
                504: "GatewayTimeout"}.get(status, "generalException")
        self.failures.append(Failure(count, status, retry_after, code, methods, after))

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on, as Graph does once it expired."""
        with self.lock:
            self.expired |= self.tokens
            self.tokens = set()

    def events(self, mailbox: str, *, include_cancelled: bool = False) -> list[dict[str, Any]]:
        """Events in a mailbox."""
        return [e for e in self.mailboxes[mailbox.lower()].events.values()
                if include_cancelled or not e.get("isCancelled")]

    def respond(self, mailbox: str, event_id: str, email: str, response: str) -> None:
        """An attendee answers the invitation."""
        event = self.mailboxes[mailbox.lower()].events[event_id]
        for attendee in event["attendees"]:
            if attendee["emailAddress"]["address"].lower() == email.lower():
                attendee["status"] = {"response": response, "time": "2026-02-01T10:00:00Z"}

    def calls(self, method: str, contains: str = "") -> list[dict[str, Any]]:
        """Graph requests (not token ones) with this method whose path contains ``contains``."""
        return [r for r in self.requests if r["method"] == method and contains in r["path"]]

    def all_text(self) -> str:
        """Everything clients sent (to look for leaked secrets)."""
        return json.dumps(self.requests)

    # -- dispatch ------------------------------------------------------------------------

    def take_failure(self, method: str, after: bool) -> Failure | None:
        """The failure to apply to this call, if any."""
        with self.lock:
            for failure in self.failures:
                if failure.count > 0 and failure.after == after and (
                        not failure.methods or method in failure.methods):
                    failure.count -= 1
                    return failure
        return None

    def graph(self, method: str, path: str, query: dict[str, list[str]], body: Any,
              headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """Route one Graph call (also used for each request of a batch)."""
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.expired:
            return _error(401, "InvalidAuthenticationToken",
                          "Lifetime validation failed, the token is expired.")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return _error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if path == "/$batch" and method == "POST":
            return self.batch(body, headers)
        m = re.fullmatch(r"/users/([^/]+)(/.*)", path)
        if not m:
            return _error(400, "BadRequest", f"Unsupported path {path}")
        address, rest = unquote(m.group(1)).lower(), m.group(2)
        box = self.mailboxes.get(address)
        if box is None:
            return _error(404, "ErrorInvalidUser",
                          f"The requested user '{address}' is invalid.")
        if not box.access:
            return _error(403, "ErrorAccessDenied",
                          "Access to OData is disabled: Blocked by tenant configured AppOnly "
                          "AccessPolicy settings.")
        if rest == "/calendar" and method == "GET":
            return 200, {}, {
                "id": "AAMkCal", "name": "Calendar", "canEdit": True,
                "allowedOnlineMeetingProviders": ["teamsForBusiness"] if box.teams else [],
                "defaultOnlineMeetingProvider": "teamsForBusiness" if box.teams else "unknown",
                "owner": {"name": "SEN", "address": address},
            }
        if rest == "/events" and method == "POST":
            return self.create(address, box, body)
        if rest == "/events" and method == "GET":
            return self.list_events(box, query)
        m = re.fullmatch(r"/events/([^/]+)(/cancel)?", rest)
        if not m:
            return _error(400, "BadRequest", f"Unsupported path {path}")
        event = box.events.get(unquote(m.group(1)))
        if event is None or (event.get("isCancelled") and method != "GET"):
            return _error(404, "ErrorItemNotFound",
                          "The specified object was not found in the store.")
        if m.group(2):
            if method != "POST":
                return _error(405, "BadRequest", "Method not allowed")
            event["isCancelled"] = True
            event["cancelComment"] = (body or {}).get("comment")
            return 202, {}, None
        if method == "GET":
            if event.get("_late_reads", 0) > 0:
                event["_late_reads"] -= 1
                return 200, {}, {**_select(event, query), "onlineMeeting": None}
            return 200, {}, _select(event, query)
        if method == "PATCH":
            bad = sorted(set(body or {}) - UPDATABLE)
            if bad:
                return _error(400, "ErrorInvalidPropertyForUpdate", f"Cannot update {bad}")
            event.update(json.loads(json.dumps(body)))
            for attendee in event["attendees"]:
                attendee.setdefault("status", {"response": "none", "time": "0001-01-01T00:00:00Z"})
            event["changeKey"] = uuid.uuid4().hex
            return 200, {}, event
        return _error(405, "BadRequest", "Method not allowed")

    def create(self, address: str, box: Mailbox, body: Any) -> tuple[int, dict[str, str], Any]:
        """POST /users/{id}/events."""
        if not isinstance(body, dict) or not body.get("start") or not body.get("end"):
            return _error(400, "ErrorInvalidRequest", "start and end are required")
        for key in ("start", "end"):
            if set(body[key]) != {"dateTime", "timeZone"}:
                return _error(400, "ErrorInvalidRequest", f"{key} must be a dateTimeTimeZone")
        txn = body.get("transactionId")
        if txn and self.dedupe_transactions:
            for event in box.events.values():
                if event.get("transactionId") == txn:
                    return 201, {}, _public(event)
        event_id = "AAMkAD" + uuid.uuid4().hex
        event = json.loads(json.dumps(body))
        event.pop("singleValueExtendedProperties", None)
        event.update({
            "id": event_id, "iCalUId": "040000008200E0" + uuid.uuid4().hex,
            "isCancelled": False, "changeKey": uuid.uuid4().hex,
            "organizer": {"emailAddress": {"address": address, "name": "SEN"}},
            "onlineMeetingUrl": None,
        })
        if not txn:
            event.pop("transactionId", None)
        props = body.get("singleValueExtendedProperties", [])
        event["_props"] = {p["id"]: p["value"] for p in props}
        for attendee in event.get("attendees", []):
            attendee["status"] = {"response": "none", "time": "0001-01-01T00:00:00Z"}
        if body.get("isOnlineMeeting") and body.get("onlineMeetingProvider") == "teamsForBusiness" \
                and box.teams:
            url = f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{uuid.uuid4().hex}"
            event["onlineMeeting"] = {"joinUrl": url, "conferenceId": "123456789"}
            content = (body.get("body") or {}).get("content", "")
            event["body"] = {"contentType": "HTML", "content": content + TEAMS_BLOB.format(url=url)}
        else:
            # What Graph does when the mailbox cannot host Teams meetings: 201, no link.
            event["isOnlineMeeting"] = False
            event["onlineMeetingProvider"] = "unknown"
            event["onlineMeeting"] = None
        box.events[event_id] = event
        if self.late_join_reads and event.get("onlineMeeting"):
            # The 201 and the next reads come before Teams has made the meeting's link.
            event["_late_reads"] = self.late_join_reads
            return 201, {}, {**_public(event), "onlineMeeting": None}
        return 201, {}, _public(event)

    def list_events(self, box: Mailbox, query: dict[str, list[str]]
                    ) -> tuple[int, dict[str, str], Any]:
        """GET /users/{id}/events with an optional extended-property $filter."""
        flt = (query.get("$filter") or [""])[0]
        items = list(box.events.values())
        if flt and self.filter_mode == "reject":
            return _error(400, "ErrorInvalidUrlQueryFilter", "The query filter is invalid.")
        if flt and self.filter_mode == "honour":
            m = _FILTER.match(flt)
            if not m:
                return _error(400, "ErrorInvalidUrlQueryFilter", "The query filter is invalid.")
            value = m.group("value").replace("''", "'").lower()
            items = [e for e in items
                     if (e.get("_props", {}).get(m.group("id")) or "").lower() == value]
        items = [e for e in items if not e.get("isCancelled")]
        expand = re.fullmatch(r"singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)",
                              (query.get("$expand") or [""])[0])
        out = []
        for e in items:
            item = _select(e, query)
            if expand and self.filter_mode == "honour" and expand.group(1) in e.get("_props", {}):
                prop = expand.group(1)
                item["singleValueExtendedProperties"] = [{"id": prop, "value": e["_props"][prop]}]
            out.append(item)
        return 200, {}, {"value": out}

    def batch(self, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """POST /$batch: at most 20 requests, unique ids, each answered individually."""
        requests = (body or {}).get("requests") or []
        if len(requests) > 20:
            return _error(400, "BadRequest", "Number of requests exceeds the limit of 20.")
        ids = [r.get("id") for r in requests]
        if len(set(ids)) != len(ids):
            return _error(400, "BadRequest", "Batch request ids must be unique.")
        responses = []
        for item in requests:
            with self.lock:
                throttle = self.batch_inner_throttle > 0
                if throttle:
                    self.batch_inner_throttle -= 1
            if throttle:
                responses.append({"id": item["id"], "status": 429,
                                  "headers": {"Retry-After": "2"},
                                  "body": {"error": {"code": "ApplicationThrottled",
                                                     "message": "MailboxConcurrency limit."}}})
                continue
            parts = urlsplit(item["url"])
            status, hdrs, answer = self.graph(
                item["method"], parts.path, parse_qs(parts.query), item.get("body"), headers)
            responses.append({"id": item["id"], "status": status, "headers": hdrs,
                              "body": answer})
        responses.reverse()  # Graph may answer in any order.
        return 200, {}, {"responses": responses}


def _looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    if len(parts) != 3:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("alg") == "RS256"


_TLS_CACHE: list[tuple[trustme.CA, trustme.LeafCert]] = []


def _tls() -> tuple[trustme.CA, trustme.LeafCert]:
    # Key generation is the slow part; one CA per test session is plenty.
    if not _TLS_CACHE:
        ca = trustme.CA()
        _TLS_CACHE.append((ca, ca.issue_cert("127.0.0.1", "localhost")))
    return _TLS_CACHE[0]


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_") and k != "cancelComment"}


def _select(event: dict[str, Any], query: dict[str, list[str]]) -> dict[str, Any]:
    select = (query.get("$select") or [""])[0]
    public = _public(event)
    if not select:
        return public
    wanted = set(select.split(",")) | {"id"}
    return {k: v for k, v in public.items() if k in wanted}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> tuple[int, dict[str, str], Any]:
    return status, headers or {}, {"error": {"code": code, "message": message, "innerError": {
        "date": "2026-01-05T09:00:00", "request-id": str(uuid.uuid4())}}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGraph
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        tenant_prefix = f"/{fake.tenant}"
        if parts.path.startswith("/v1.0/"):
            self._graph(method, parts.path[len("/v1.0"):], parse_qs(parts.query), raw)
            return
        if parts.path.endswith("/v2.0/.well-known/openid-configuration") and method == "GET":
            if not parts.path.startswith(tenant_prefix + "/"):
                self._reply(400, {}, {"error": "invalid_tenant", "error_description":
                                      "AADSTS90002: Tenant not found."})
                return
            base = fake.base + tenant_prefix
            self._reply(200, {}, {
                "authorization_endpoint": base + "/oauth2/v2.0/authorize",
                "token_endpoint": base + "/oauth2/v2.0/token",
                "issuer": base + "/v2.0",
            })
            return
        if parts.path == tenant_prefix + "/oauth2/v2.0/token" and method == "POST":
            with fake.lock:
                failing = fake.token_failures > 0
                fake.token_failures -= int(failing)
            if failing:
                self._reply(503, {"Retry-After": "1"}, None)
                return
            form = parse_qs(raw.decode())
            with fake.lock:
                fake.token_requests.append(form)
            ok_client = form.get("client_id") == [fake.client_id]
            secret_ok = form.get("client_secret") == [fake.secret] or (
                _looks_like_jwt((form.get("client_assertion") or [""])[0])
                and form.get("client_assertion_type") ==
                ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"])
            if form.get("grant_type") != ["client_credentials"] or not ok_client \
                    or not secret_ok:
                self._reply(401, {}, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. "
                                         "Trace ID: 1 Correlation ID: 2",
                    "error_codes": [7000215]})
                return
            token = "tok-" + uuid.uuid4().hex
            with fake.lock:
                fake.tokens.add(token)
            self._reply(200, {}, {"token_type": "Bearer", "expires_in": 3599,
                                  "ext_expires_in": 3599, "access_token": token})
            return
        self._reply(404, {}, {"error": "not_found"})

    def _graph(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        fake = self.fake
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._reply(400, {}, {"error": {"code": "BadRequest", "message": "Invalid JSON"}})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        mailbox = ""
        m = re.match(r"/users/([^/?]+)", path)
        if m:
            mailbox = unquote(m.group(1)).lower()
        with fake.lock:
            fake.requests.append({"method": method, "path": path, "query": query, "body": body,
                                  "mailbox": mailbox})
            fake.in_flight[mailbox] = fake.in_flight.get(mailbox, 0) + 1
            fake.max_in_flight[mailbox] = max(fake.max_in_flight.get(mailbox, 0),
                                              fake.in_flight[mailbox])
        try:
            if fake.delay:
                time.sleep(fake.delay)
            failure = fake.take_failure(method, after=False)
            if failure is not None:
                extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                self._reply(*_error(failure.status, failure.code, "Simulated failure.", extra))
                return
            with fake.lock:
                status, hdrs, answer = fake.graph(method, path, query, body, headers)
            failure = fake.take_failure(method, after=True)
            if failure is not None:
                # Processed, but the client never hears about it (e.g. a gateway timeout).
                extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                self._reply(*_error(failure.status, failure.code, "Simulated failure.", extra))
                return
            self._reply(status, hdrs, answer)
        finally:
            with fake.lock:
                fake.in_flight[mailbox] -= 1

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def settings_for(fake: FakeGraph, **overrides: Any) -> Any:
    """TeamsSettings pointing at the fake."""
    from ehcbridge_teams.settings import TeamsSettings

    values: dict[str, Any] = {
        "tenant_id": fake.tenant, "client_id": fake.client_id, "client_secret": SECRET,
        "organiser": ORGANISER, "authority_host": fake.base, "graph_url": fake.base + "/v1.0",
        "ca_bundle": fake.ca_path,
    }
    values.update(overrides)
    return TeamsSettings(**values)
