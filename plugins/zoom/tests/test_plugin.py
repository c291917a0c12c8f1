"""Settings, doctor check, CLI and plugin loading."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import ehcbridge_zoom
import pluggy
import pytest
from click.testing import CliRunner
from ehcbridge import hookspecs
from ehcbridge.testing import ContextApp, make_context
from ehcbridge_zoom import cli
from ehcbridge_zoom.settings import ZoomSettings
from pydantic import SecretStr, ValidationError


def test_defaults() -> None:
    s = ZoomSettings()
    assert (s.oauth_url, s.api_url) == ("https://zoom.us", "https://api.zoom.us/v2")
    assert s.waiting_room and not s.join_before_host and s.mute_upon_entry
    assert not s.meeting_authentication
    assert s.topic_template == "EHCP annual review: {initials} ({case_id})"
    assert s.missing() == ["account_id", "client_id", "client_secret", "host"]


def test_plain_http_only_for_loopback() -> None:
    with pytest.raises(ValidationError, match="https"):
        ZoomSettings(api_url="http://api.zoom.us/v2")
    assert ZoomSettings(api_url="http://127.0.0.1:8080/v2/").api_url == "http://127.0.0.1:8080/v2"


def test_unknown_template_field_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"topic_template: unknown placeholder \{needs\}"):
        ZoomSettings(topic_template="Review {needs}")


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="waiting_rom"):
        ZoomSettings(waiting_rom=False)  # type: ignore[call-arg]


def test_check_not_configured_never_raises() -> None:
    [result] = ehcbridge_zoom.check(ctx=make_context("zoom", ZoomSettings(client_id="x")))
    assert result.status == "not configured" and "host" in result.detail
    [result] = ehcbridge_zoom.check(ctx=make_context("zoom"))
    assert result.status == "not configured"


def test_check_ok(zoom: Any, settings: ZoomSettings) -> None:
    results = ehcbridge_zoom.check(ctx=make_context("zoom", settings))
    assert [(r.name, r.status) for r in results] == [("zoom token", "ok"), ("zoom host", "ok")]
    assert zoom.calls("GET") == [f"/v2/users/{zoom.host}"]


def test_check_unknown_host(zoom: Any, settings: ZoomSettings) -> None:
    wrong = settings.model_copy(update={"host": "gone@la.example.gov.uk"})
    results = ehcbridge_zoom.check(ctx=make_context("zoom", wrong))
    assert results[-1].status == "failed" and "gone@la.example.gov.uk" in results[-1].detail


def test_check_basic_host_warns(zoom: Any, settings: ZoomSettings) -> None:
    zoom.users[zoom.host]["type"] = 1
    assert ehcbridge_zoom.check(ctx=make_context("zoom", settings))[-1].status == "warning"


def test_check_bad_secret_fails_without_leaking(zoom: Any, settings: ZoomSettings) -> None:
    wrong = settings.model_copy(update={"client_secret": SecretStr("not-the-secret")})
    [result] = ehcbridge_zoom.check(ctx=make_context("zoom", wrong))
    assert result.status == "failed" and "not-the-secret" not in result.detail


def test_cli_check(zoom: Any, settings: ZoomSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ehcbridge.invocation.current_app",
                        lambda: ContextApp(make_context("zoom", settings)))
    result = CliRunner().invoke(cli.zoom, ["check"])
    assert result.exit_code == 0, result.output
    assert "zoom token: ok" in result.output and f"host {zoom.host}" in result.output
    assert zoom.secret not in result.output


def test_cli_check_failure_exit_code(zoom: Any, settings: ZoomSettings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = settings.model_copy(update={"host": "gone@la.example.gov.uk"})
    monkeypatch.setattr("ehcbridge.invocation.current_app",
                        lambda: ContextApp(make_context("zoom", wrong)))
    result = CliRunner().invoke(cli.zoom, ["check"])
    assert result.exit_code == 1 and "zoom host: failed" in result.output


def test_cli_meetings_lists_ours(zoom: Any, settings: ZoomSettings,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime

    zoom.add_meeting(zoom.host, "Staff", datetime(2026, 4, 1, 9, 0))
    zoom.add_meeting(zoom.host, "Review", datetime(2026, 4, 2, 9, 0),
                     agenda="[ehcbridge:EHC-0009:review-4]\nEHCP annual review")
    monkeypatch.setattr("ehcbridge.invocation.current_app",
                        lambda: ContextApp(make_context("zoom", settings)))
    result = CliRunner().invoke(cli.zoom, ["meetings"])
    assert result.exit_code == 0, result.output
    assert "ehcbridge:EHC-0009:review-4" in result.output and "Staff" not in result.output


def test_cli_meetings_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ehcbridge.invocation.current_app",
                        lambda: ContextApp(make_context("zoom", ZoomSettings())))
    result = CliRunner().invoke(cli.zoom, ["meetings"])
    assert result.exit_code == 1 and "not configured" in result.output


def test_plugin_registers_against_the_hookspecs() -> None:
    pm = pluggy.PluginManager("ehcbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(ehcbridge_zoom, name="zoom")
    pm.check_pending()  # a misspelt hook name would fail here
    registered: list[type] = []
    pm.hook.register_settings(register=registered.append)
    assert registered == [ZoomSettings]
    import click

    group = click.Group("ehcbridge")
    pm.hook.register_commands(cli=group)
    assert "zoom" in group.commands


def test_entry_point_and_lazy_imports() -> None:
    code = ("import sys, importlib.metadata as m; "
            "[ep] = [e for e in m.entry_points(group='ehcbridge') if e.name == 'zoom']; "
            "ep.load(); print('httpx' in sys.modules, 'tenacity' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
