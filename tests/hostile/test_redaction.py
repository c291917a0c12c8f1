"""Secrets, tokens and email addresses never reach a log line, a terminal or the ledger."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from typing import Any

import pytest
from ehcbridge import hookimpl
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON
from ehcbridge.plugin_settings import PluginSettings
from ehcbridge.redact import SECRET, RedactingFilter, redact, register_settings, secret_values
from ehcbridge.store import Store
from ehcbridge.testing import make_app, plugin_module
from pydantic import BaseModel, Field, SecretStr

TOKEN = "FEEDTOKEN-5e6f"
ICS = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n")


@pytest.fixture
def feed(loopback: Any) -> str:
    """A loopback calendar feed whose URL carries a token, as councils' case systems give."""
    return f"{loopback(ICS).origin}/{TOKEN}/reviews.ics?key=k-{TOKEN}"


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
def test_feed_url_token_is_not_logged(sqlite_cli: Any, feed: str, verbosity: str) -> None:
    result = sqlite_cli(verbosity, "doctor", EHCBRIDGE_PLUGINS__SOCIAL_CARE__FEED_URL=feed)
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown
    assert "social_care feed" in result.stdout  # the feed was fetched
    assert "HTTP Request: GET http://127.0.0.1:" in result.stderr  # and httpx logged it
    assert "/[redacted] \"HTTP/1.0 200 OK\"" in result.stderr
    assert TOKEN not in shown


class Nested(BaseModel):
    password: SecretStr = SecretStr("")


class Vendor(PluginSettings):
    """A plugin's settings: secrets found by type or by marker, never by a per-plugin list."""

    api_url: str = "https://api.example.org/v1"
    webhook_url: str = Field(default="", json_schema_extra=SECRET)
    client_secret: SecretStr | None = None
    nested: Nested = Nested()
    retries: int = 3


def test_secret_fields_are_found_generically() -> None:
    settings = Vendor(webhook_url="https://hooks.example.org/T0/B0/s3cr3tPathPart",
                      client_secret=SecretStr("cl1ent-s3cret"),
                      nested=Nested(password=SecretStr("n3sted-pw")))
    assert sorted(secret_values(settings)) == ["cl1ent-s3cret",
                                               "https://hooks.example.org/T0/B0/s3cr3tPathPart",
                                               "n3sted-pw"]
    register_settings(settings)
    line = ("POST https://hooks.example.org/T0/B0/s3cr3tPathPart failed with cl1ent-s3cret "
            "and n3sted-pw; see https://api.example.org/v1/status")
    clean = redact(line)
    for secret in ("s3cr3tPathPart", "T0/B0", "cl1ent-s3cret", "n3sted-pw"):
        assert secret not in clean
    assert "https://hooks.example.org/[redacted]" in clean
    assert "https://api.example.org/v1/status" in clean  # not a secret: kept


def _logged(level: int, message: str, *args: Any, exc: bool = False) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("ehcbridge.tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        if exc:
            try:
                raise RuntimeError(message % args)
            except RuntimeError:
                logger.log(level, "failed", exc_info=True)
        else:
            logger.log(level, message, *args)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_filter_redacts_tokens_and_addresses_in_messages_arguments_and_tracebacks() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"
    text = _logged(logging.INFO, "sent to %s with Authorization: Bearer %s (%s)",
                   "jo.parent@example.net", "abcDEF123456789xyz", jwt)
    assert "jo.parent" not in text and "abcDEF123456789xyz" not in text and jwt not in text
    assert "[redacted]@example.net" in text and "Bearer [redacted]" in text
    text = _logged(logging.WARNING, "GET https://graph.example/x?access_token=%s&top=5",
                   "tok-123456")
    assert "tok-123456" not in text and "top=5" in text
    text = _logged(logging.ERROR, "postgresql://app:%s@db.internal/ehc down", "pg-pass-99")
    assert "pg-pass-99" not in text and "db.internal" in text
    text = _logged(logging.ERROR, "mail for %s refused", "jo.parent@example.net", exc=True)
    assert "Traceback" in text and "jo.parent" not in text
    # Addresses stay at DEBUG (-vv) for troubleshooting routing; tokens never do.
    text = _logged(logging.DEBUG, "routing %s, Bearer %s", "jo.parent@example.net",
                   "abcDEF123456789xyz")
    assert "jo.parent@example.net" in text and "abcDEF123456789xyz" not in text


class LeakySettings(PluginSettings):
    api_key: SecretStr = SecretStr("")


def test_plugin_exception_messages_are_redacted_before_they_are_stored(
        store: Store, scheduled_case: str) -> None:
    @hookimpl
    def register_settings(register: Any) -> None:
        register(LeakySettings)

    @hookimpl
    def on_review_scheduled(event: Any, ctx: Any) -> None:
        raise RuntimeError(f"550 mailbox of jo.parent@example.net refused; key "
                           f"{ctx.settings.api_key.get_secret_value()}; Bearer abcDEF1234567890")

    app = make_app(store, {"leaky": plugin_module("leaky", register_settings=register_settings,
                                                  on_review_scheduled=on_review_scheduled)},
                   settings={"plugins": {"leaky": {"api_key": "K3Y-very-secret"}}})
    Engine(app).run_once(datetime(2027, 1, 4, 8, 0, tzinfo=LONDON))
    (row,) = store.deliveries()
    assert row.status == "retrying"
    assert row.last_error is not None and row.last_error.startswith("RuntimeError: 550")
    for leaked in ("jo.parent", "K3Y-very-secret", "abcDEF1234567890"):
        assert leaked not in row.last_error


def test_plugin_trace_redacts_exception_text(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from ehcbridge.plugins import PluginManager
    from ehcbridge.testing import FakeEntryPoint

    @hookimpl
    def on_review_scheduled(event: Any, ctx: Any) -> None:
        raise RuntimeError("no mailbox jo.parent@example.net (Bearer abcDEF1234567890)")

    monkeypatch.setenv("EHCBRIDGE_TRACE_PLUGINS", "1")
    module = plugin_module("tracer", on_review_scheduled=on_review_scheduled)
    manager = PluginManager({}, None, entry_points=[FakeEntryPoint("tracer", module)])
    manager.call_each("on_review_scheduled", event=None, ctx=None)
    err = capsys.readouterr().err
    assert "on_review_scheduled <- tracer raised RuntimeError: no mailbox" in err
    assert "jo.parent" not in err and "abcDEF1234567890" not in err


@pytest.mark.parametrize(("text", "hidden"), [
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("{'Authorization': 'Bearer opaque'}", "opaque"),
    ("login failed: password=hunter22 for the relay", "hunter22"),
    ('client_secret: "xyz987abc"', "xyz987abc"),
    ("GET /meetings?api_key=k-12345&page=2", "k-12345"),
])
def test_credentials_are_hidden_in_any_text(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert "[redacted]" in redact(text)


@pytest.mark.parametrize("text", ["token refreshed successfully", "basic information missing",
                                  "the key is missing", "no authorization needed",
                                  "https://api.example.org/v1/users/me"])
def test_plain_words_are_left_alone(text: str) -> None:
    assert redact(text) == text
