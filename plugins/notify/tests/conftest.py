"""A fake GOV.UK Notify on 127.0.0.1 following the documented API: JWT (HS256) API-key
authentication with the service id as issuer and a 30-second clock window, the v2 endpoints the
plugin uses, and Notify's error shape ``{"status_code": N, "errors": [{"error", "message"}]}``."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
SECRET = "3d844edf-8d35-48ac-975b-e847b4f122b0"
API_KEY = f"ehcbridge_live-{SERVICE_ID}-{SECRET}"
EMAIL_TEMPLATE = "f33517ff-2a88-4f6e-b855-c550268ce08a"
SMS_TEMPLATE = "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d"
# An email template with two "send a file by email" placeholders: ((file_1)) and ((file_2)).
FILES_TEMPLATE = "0f6e3c1a-9b2d-4c8e-a7f5-3d2b1c0e9f8a"
TEMPLATES = {EMAIL_TEMPLATE: ("email", ("subject", "body")), SMS_TEMPLATE: ("sms", ("body",)),
             FILES_TEMPLATE: ("email", ("subject", "body", "file_1", "file_2"))}
# Notify's documented limits and messages for a file sent by email.
FILE_TYPES = (".csv", ".doc", ".docx", ".jpeg", ".jpg", ".json", ".odt", ".pdf", ".png", ".rtf",
              ".txt", ".xlsx")
RETENTION = re.compile(r"^([1-9]|[1-7][0-9]) weeks?$")
UK_MOBILE = re.compile(r"^(\+44\s?7|07)\d{3}\s?\d{6}$")


@dataclass
class FakeNotify:
    """What the fake received, and what it should answer next."""

    url: str = ""
    api_key: str = API_KEY
    email_template: str = EMAIL_TEMPLATE
    sms_template: str = SMS_TEMPLATE
    files_template: str = FILES_TEMPLATE  # an email template with ((file_1)) and ((file_2))
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> notification
    requests: list[tuple[str, str]] = field(default_factory=list)
    # (method, path regex, status, body, headers): answered once instead of the real thing
    scripted: list[tuple[str, str, int, Any, dict[str, str]]] = field(default_factory=list)

    def fail_next(self, method: str, path: str, status: int, error: str, message: str,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next matching request with Notify's error shape."""
        body = {"status_code": status, "errors": [{"error": error, "message": message}]}
        self.scripted.append((method, path, status, body, headers or {}))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Notifications of one type (email, sms, letter), oldest first."""
        return [n for n in self.sent.values() if n["type"] == kind]


def _file_problem(value: dict[str, Any]) -> str | None:
    """Notify's refusal of a ``{"file": ...}`` personalisation value, or None."""
    try:
        data = base64.b64decode(str(value.get("file", "")), validate=True)
    except ValueError:
        return "Unable to decode the file"
    if len(data) > 2 * 1024 * 1024:
        return "File is larger than 2MB"
    name = str(value.get("filename") or "")
    if not name.lower().endswith(FILE_TYPES):
        return (f"Unsupported file type '{name.rpartition('.')[2]}'. Supported file types are: "
                + ", ".join(FILE_TYPES))
    if not isinstance(value.get("confirm_email_before_download"), bool | None):
        return "Unsupported value for confirm_email_before_download"
    retention = value.get("retention_period")
    if retention is not None and not RETENTION.match(str(retention)):
        return "Unsupported value for retention_period"
    return None


def _error(status: int, error: str, message: str) -> tuple[int, Any]:
    return status, {"status_code": status, "errors": [{"error": error, "message": message}]}


def _handler(state: FakeNotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _auth(self) -> tuple[int, Any] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return _error(401, "AuthError",
                              "Unauthorized: authentication token must be provided")
            token = header[7:]
            try:
                claims = jwt.decode(token, SECRET, algorithms=["HS256"],
                                    options={"verify_iat": False})
            except jwt.InvalidTokenError:
                return _error(403, "AuthError", "Invalid token: API key not found")
            if claims.get("iss") != SERVICE_ID:
                return _error(403, "AuthError", "Invalid token: service not found")
            if abs(int(claims.get("iat", 0)) - time.time()) > 30:
                return _error(403, "AuthError",
                              "Error: Your system clock must be accurate to within 30 seconds")
            return None

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.requests.append((method, self.path))
            for i, (m, pattern, status, body, headers) in enumerate(state.scripted):
                if m == method and re.fullmatch(pattern, self.path):
                    del state.scripted[i]
                    self._send(status, body, headers)
                    return
            denied = self._auth()
            if denied is not None:
                self._send(*denied)
                return
            status, body = self._route(method, self.path, json.loads(raw) if raw else {})
            self._send(status, body)

        def _route(self, method: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
            if method == "POST" and path == "/v2/notifications/email":
                return self._templated("email", data, "email_address")
            if method == "POST" and path == "/v2/notifications/sms":
                return self._templated("sms", data, "phone_number")
            if method == "POST" and path == "/v2/notifications/letter":
                return self._letter(data)
            if method == "GET" and path.startswith("/v2/notifications/"):
                found = state.sent.get(path.rsplit("/", 1)[1])
                if found is None:
                    return _error(404, "NoResultFound", "No result found")
                return 200, {k: v for k, v in found.items() if k != "pdf"}
            if method == "GET" and path.startswith("/v2/templates"):
                return 200, {"templates": [{"id": t, "type": kind, "version": 1}
                                           for t, (kind, _) in TEMPLATES.items()]}
            return _error(404, "NotFound", "Not found")

        def _templated(self, kind: str, data: dict[str, Any], to_key: str) -> tuple[int, Any]:
            template = TEMPLATES.get(str(data.get("template_id")))
            if template is None or template[0] != kind:
                return _error(400, "BadRequestError", "Template not found")
            to = str(data.get(to_key, ""))
            if kind == "email" and "@" not in to:
                return _error(400, "ValidationError", "email_address Not a valid email address")
            if kind == "sms" and not UK_MOBILE.match(to):
                return _error(400, "ValidationError", "phone_number Not a UK mobile number")
            personalisation = data.get("personalisation") or {}
            missing = [p for p in template[1] if p not in personalisation]
            if missing:
                return _error(400, "BadRequestError",
                              f"Missing personalisation: {', '.join(missing)}")
            files: dict[str, bytes] = {}
            for name, value in personalisation.items():
                if not isinstance(value, dict):
                    continue
                problem = _file_problem(value)
                if problem is not None:
                    return _error(400, "BadRequestError", problem)
                files[name] = base64.b64decode(value["file"])
            ident = str(uuid.uuid4())
            state.sent[ident] = {"id": ident, "reference": data.get("reference"), "type": kind,
                                 to_key: to, "status": "created",
                                 "personalisation": personalisation, "files": files}
            content = {"body": personalisation.get("body", "")}
            if kind == "email":
                content.update(subject=personalisation["subject"],
                               from_email="sen.reviews@notifications.service.gov.uk")
            else:
                content["from_number"] = "OAKSHIRE"
            return 201, {"id": ident, "reference": data.get("reference"), "content": content,
                         "uri": f"{state.url}/v2/notifications/{ident}",
                         "template": {"id": data["template_id"], "version": 1,
                                      "uri": f"{state.url}/v2/template/{data['template_id']}"}}

        def _letter(self, data: dict[str, Any]) -> tuple[int, Any]:
            if not data.get("reference"):
                return _error(400, "ValidationError", "reference is a required property")
            try:
                pdf = base64.b64decode(str(data.get("content", "")), validate=True)
            except ValueError:
                return _error(400, "ValidationError", "Cannot decode letter content (base64)")
            if not pdf.startswith(b"%PDF"):
                return _error(400, "ValidationError", "Letter content is not a valid PDF")
            ident = str(uuid.uuid4())
            postage = data.get("postage", "second")
            state.sent[ident] = {"id": ident, "reference": data["reference"], "type": "letter",
                                 "status": "pending-virus-check", "postage": postage,
                                 "pdf": pdf}
            return 201, {"id": ident, "reference": data["reference"], "postage": postage}

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    """The fake Notify, running on a free loopback port."""
    state = FakeNotify()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
