"""`ehcbridge teams check` and doctor: say exactly what is wrong."""

from __future__ import annotations

import json
import types
from typing import Any

import ehcbridge_teams as plugin
import pytest
from click.testing import CliRunner
from ehcbridge.testing import make_context
from ehcbridge_teams import cli
from ehcbridge_teams.meetings import run_check
from ehcbridge_teams_fake_graph import ORGANISER, SECRET, settings_for


def statuses(results: list[Any]) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in results]


def test_healthy_tenant_passes(fake: Any, ctx: Any) -> None:
    results = plugin.check(ctx)
    assert statuses(results) == [("teams: token", "ok"), ("teams: mailbox", "ok")]
    assert ORGANISER in results[1].detail
    [call] = fake.requests
    assert call["method"] == "GET" and call["path"] == f"/users/{ORGANISER}/calendar"


def test_not_configured_never_raises(store: Any) -> None:
    [result] = plugin.check(make_context("teams", None, store=store))
    assert result.status == "not configured"
    assert "tenant_id" in result.detail and "organiser" in result.detail


def test_bad_secret_is_reported_without_the_secret(fake: Any) -> None:
    wrong = "not-the-right-secret-42"
    [result] = run_check(settings_for(fake, client_secret=wrong))
    assert result.status == "failed"
    assert "invalid_client" in result.detail and "client_secret" in result.detail
    assert wrong not in result.detail


def test_unknown_tenant_is_reported(fake: Any) -> None:
    [result] = run_check(settings_for(fake, tenant_id="no-such-tenant"))
    assert result.status == "failed"
    assert "no-such-tenant" in result.detail and "not found" in result.detail


def test_mailbox_not_found(fake: Any) -> None:
    results = run_check(settings_for(fake), mailbox="nobody@school.example.org")
    assert statuses(results)[-1] == ("teams: mailbox", "failed")
    assert "mailbox nobody@school.example.org not found" in results[-1].detail
    assert "ErrorInvalidUser" in results[-1].detail


def test_consent_missing_or_mailbox_out_of_scope(fake: Any) -> None:
    fake.add_mailbox("blocked@school.example.org", access=False)
    results = run_check(settings_for(fake, organiser="blocked@school.example.org"))
    detail = results[-1].detail
    assert results[-1].status == "failed"
    assert "ErrorAccessDenied" in detail and "Calendars.ReadWrite" in detail
    assert "admin consent" in detail


def test_teams_not_allowed(fake: Any) -> None:
    fake.add_mailbox("noteams@school.example.org", teams=False)
    results = run_check(settings_for(fake), mailbox="noteams@school.example.org")
    assert results[-1].status == "failed"
    assert "Teams not allowed for mailbox noteams@school.example.org" in results[-1].detail


def test_coordinator_organiser_is_a_warning_without_a_mailbox(fake: Any) -> None:
    results = run_check(settings_for(fake, organiser="coordinator"))
    assert statuses(results) == [("teams: token", "ok"), ("teams: mailbox", "warning")]


def test_unreachable_authority_is_reported(tmp_path: Any) -> None:
    from ehcbridge_teams.settings import TeamsSettings

    settings = TeamsSettings(tenant_id="t", client_id="c", client_secret=SECRET,
                             organiser=ORGANISER, authority_host="https://127.0.0.1:9")
    [result] = run_check(settings)
    assert result.status == "failed" and "cannot reach" in result.detail


@pytest.fixture
def cli_ctx(monkeypatch: pytest.MonkeyPatch, ctx: Any) -> Any:
    app = types.SimpleNamespace(plugin_context=lambda name: ctx)
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: app)
    return ctx


def test_cli_check_prints_each_result_and_exits_zero(fake: Any, cli_ctx: Any) -> None:
    result = CliRunner().invoke(cli.teams, ["check"])
    assert result.exit_code == 0, result.output
    assert "[ok] teams: token" in result.output and "[ok] teams: mailbox" in result.output
    assert SECRET not in result.output


def test_cli_check_fails_for_a_mailbox_without_teams(fake: Any, cli_ctx: Any) -> None:
    fake.add_mailbox("noteams@school.example.org", teams=False)
    result = CliRunner().invoke(cli.teams, ["check", "--mailbox", "noteams@school.example.org",
                                            "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data[-1]["status"] == "failed"
    assert "allowedOnlineMeetingProviders" in data[-1]["detail"]
