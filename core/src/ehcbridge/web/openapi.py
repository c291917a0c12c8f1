"""The OpenAPI document of the API; ``docs/openapi.json`` is this, written by the tests' check."""

from __future__ import annotations

from typing import Any

from ehcbridge.web.webhook import TYPES

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}


def _data_schema(kind: str) -> dict[str, Any]:
    allowed, required = TYPES[kind]
    value = {"type": ["string", "number", "boolean", "null"]}
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: value for name in allowed}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    events = [{"type": "object", "additionalProperties": False,
               "required": ["id", "type", "data"],
               "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 200},
                              "type": {"const": kind}, "data": _data_schema(kind)}}
              for kind in TYPES]
    signed = [{"name": "X-Ehcbridge-Timestamp", "in": "header", "required": True,
               "description": "Unix seconds when the event was signed; refused when more than "
                              "5 minutes from the server's clock.",
               "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
              {"name": "X-Ehcbridge-Signature", "in": "header", "required": True,
               "description": 'sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>"> with '
                              "serve.webhook_secret.",
               "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"}}]

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    status = {"type": "object", "properties": {"status": {"type": "string"},
                                               "checks": {"type": "object"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ehcbridge serve", "version": "1",
                 "description": "Review events in, health and metrics out. Dashboard pages "
                                "are for signed-in people and are not described here."},
        "paths": {
            "/api/v1/events": {"post": {
                "summary": "Send a review event",
                "operationId": "postEvent",
                "parameters": signed,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"oneOf": events}}}},
                "responses": {
                    "202": answer("Accepted: applied now, or already applied (same id)", {
                        "type": "object", "required": ["id", "status"],
                        "properties": {"id": {"type": "string"},
                                       "status": {"enum": ["accepted", "duplicate"]}}}),
                    "401": answer("Signature missing or wrong, or timestamp stale", _ERROR),
                    "409": answer("The review is not in a state for this event", _ERROR),
                    "413": {"description": "The body is over 1 MiB"},
                    "422": answer("A field is wrong; 'field' names it", _ERROR),
                }}},
            "/healthz": {"get": {"summary": "The process is up", "operationId": "healthz",
                                 "responses": {"200": answer("Up", status)}}},
            "/readyz": {"get": {
                "summary": "Store answers, schema current, engine ticked recently",
                "operationId": "readyz",
                "responses": {"200": answer("Ready", status),
                              "503": answer("Not ready; checks say why", status)}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                                 "responses": {"200": {"description": "Text format",
                                                       "content": {"text/plain": {
                                                           "schema": {"type": "string"}}}}}}},
        },
    }
