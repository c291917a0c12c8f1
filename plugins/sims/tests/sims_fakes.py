"""Test helpers: linked reviews, Wonde-shaped students and a fake MIS aggregator API over HTTP."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from ctfgen import upn_for
from ehcbridge.models import Review, ReviewStatus
from ehcbridge.testing import MemoryPluginStore
from ehcbridge_sims import SimsSettings

TOKEN = "test-token-5f0c"


def link_review(store: MemoryPluginStore, upn: str, case_id: str,
                status: ReviewStatus = ReviewStatus.DUE) -> None:
    """Give the pupil with this UPN a review, as the core would after linking a plan."""
    store.reviews[case_id] = Review(case_id=case_id, due_by=date(2026, 6, 1), status=status)
    if status in (ReviewStatus.DUE, ReviewStatus.SCHEDULED, ReviewStatus.HELD):
        store.pupils.setdefault(upn, {}).setdefault("case_ids", []).append(case_id)


def student(i: int, **changes: Any) -> dict[str, Any]:
    """A student object shaped like Wonde's, with contacts and extended details included."""
    base: dict[str, Any] = {
        "id": f"A{1000 + i}",
        "upn": upn_for(i),
        "forename": ["Alex", "Sam", "Jo", "Kit", "Rowan"][i % 5],
        "surname": "Example",
        "legal_forename": "Legal",
        "legal_surname": "Example",
        "date_of_birth": {"date": "2012-05-02 00:00:00.000000", "timezone_type": 3,
                          "timezone": "Europe/London"},
        "gender": "F",
        "year": {"data": {"code": "8", "name": "Year 8"}},
        "extended_details": {"data": {
            "sen_status": "E", "sen_needs": [{"type": "SLCN", "rank": 2}, {"type": "ASD",
                                                                           "rank": 1}],
            "ethnicity": "WBRI", "free_school_meals": False, "in_lea_care": False,
        }},
        "contacts": {"data": [
            {"id": f"C{i}a", "title": "Ms", "forename": "Pat", "surname": "Example",
             "relationship": {"relationship": "Mother", "parental_responsibility": True,
                              "priority": 1, "lives_with_pupil": True},
             "contact_details": {"data": {"emails": {"email": f"mum{i}@example.net"},
                                          "telephones": {"phone": "01632 960001"}}}},
            {"id": f"C{i}b", "title": "Mr", "forename": "Lee", "surname": "Neighbour",
             "relationship": {"relationship": "Neighbour", "parental_responsibility": False,
                              "priority": 2},
             "contact_details": {"data": {"emails": {"email": f"n{i}@example.net"}}}},
        ]},
        "updated_at": {"date": "2026-01-01 00:00:00.000000"},
    }
    base.update(changes)
    return base


@dataclass
class FakeMis:
    """State of the fake aggregator: students per school and scripted failures."""

    students: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    delta: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # for updated_after
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    urn: str = "100001"
    url: str = ""


class _Handler(BaseHTTPRequestHandler):
    mis: FakeMis

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        mis = self.mis
        parsed = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        mis.requests.append({"path": parsed.path, "query": query,
                             "auth": self.headers.get("Authorization")})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"error": "invalid_token"})
            return
        if mis.failures:
            status, headers = mis.failures.pop(0)
            self._send(status, {"error": "try later"}, headers)
            return
        parts = parsed.path.strip("/").split("/")
        # /v1.0/schools/{id} or /v1.0/schools/{id}/students
        if len(parts) == 3 and parts[1] == "schools":
            self._send(200, {"data": {"id": parts[2], "name": "Example Academy",
                                      "urn": mis.urn}})
            return
        if len(parts) != 4 or parts[3] != "students" or parts[2] not in mis.students:
            self._send(404, {"error": "not found"})
            return
        school = parts[2]
        rows = mis.delta.get(school, []) if "updated_after" in query else mis.students[school]
        per_page = int(query.get("per_page", 50))
        page = int(query.get("page", 1))
        chunk = rows[(page - 1) * per_page: page * per_page]
        more = page * per_page < len(rows)
        nxt = None
        if more:
            nxt_query = {**query, "page": str(page + 1)}
            nxt = f"{mis.url}{parsed.path}?{urlencode(nxt_query)}"
        self._send(200, {"data": chunk, "meta": {"pagination": {
            "next": nxt, "previous": None, "more": more, "per_page": per_page,
            "current_page": page}}})


def api_settings(mis: FakeMis, **changes: Any) -> SimsSettings:
    """Settings pointing at the fake API."""
    values: dict[str, Any] = {"source": "api", "api_url": f"{mis.url}/v1.0", "token": TOKEN,
                              "school_ids": ["A1930499544"], "page_size": 2}
    values.update(changes)
    return SimsSettings(**values)


def serve(mis: FakeMis) -> ThreadingHTTPServer:
    """Start the fake API on 127.0.0.1 in a thread; ``mis.url`` becomes its address."""
    handler = type("Handler", (_Handler,), {"mis": mis})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    mis.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    return server
