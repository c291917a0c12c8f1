"""schemathesis against the served OpenAPI document: no input makes the API answer 500.

Requests come as generated (mostly refused as unsigned) and, for the webhook, also signed with
the right secret so the generated events reach the validation and the review functions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from ehcbridge.web.app import create_app
from ehcbridge.web.webhook import sign
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from .conftest import SECRET, make_app, seed

pytestmark = pytest.mark.slow


def test_no_generated_request_makes_a_server_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    seed(app)
    asgi = create_app(app)
    schema = schemathesis.openapi.from_asgi("/openapi.json", asgi)
    client = TestClient(asgi)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/events", "/healthz", "/readyz"}
    seen: dict[int, int] = {}

    for op in operations:
        _fuzz(op, seen, client)()
    # Signed events got past the signature check: accepted or refused for their content.
    print("statuses seen:", seen)
    assert seen.get(202, 0) + seen.get(422, 0) + seen.get(409, 0) > 20, seen
    app.close()


def _fuzz(op: Any, seen: dict[int, int], client: TestClient) -> Any:
    @given(case=op.as_strategy())
    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Sent through Starlette's test client: schemathesis's own requests transport trips
        # over urllib3-future, which caldav's niquests installs in place of urllib3.
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        response = client.request(kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                                  params=kwargs.get("params"), cookies=kwargs.get("cookies"),
                                  json=kwargs.get("json"), content=kwargs.get("data"))
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if op.path == "/api/v1/events" and case.body is not None:
            raw = json.dumps(case.body).encode()
            ts = str(int(time.time()))
            signed = client.post("/api/v1/events", content=raw, headers={
                "Content-Type": "application/json", "X-Ehcbridge-Timestamp": ts,
                "X-Ehcbridge-Signature": sign(SECRET, ts, raw)})
            assert signed.status_code < 500, (raw[:300], signed.text[:300])
            seen[signed.status_code] = seen.get(signed.status_code, 0) + 1

    return check
