"""Plugin loading: each plugin on its own, so one broken plugin never takes the others down."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from ehcbridge import hookimpl
from ehcbridge.plugin_settings import PluginSettings
from ehcbridge.plugins import PluginLoadError, PluginManager
from ehcbridge.testing import FakeEntryPoint, plugin_module
from pydantic import SecretStr


@hookimpl
def _scheduled(event: Any, ctx: Any) -> None:
    pass


def good(name: str = "good") -> Any:
    return plugin_module(name, on_review_scheduled=_scheduled)


def manager(*eps: Any, sections: dict[str, Any] | None = None) -> PluginManager:
    return PluginManager(sections or {}, None, entry_points=list(eps))


def statuses(pm: PluginManager) -> dict[str, tuple[str, str]]:
    pm.configure()
    return {n: (r.status, r.reason) for n, r in pm.records.items()}


def test_import_error_fails_only_that_plugin() -> None:
    pm = manager(FakeEntryPoint("broken", ImportError("No module named 'msal'")),
                 FakeEntryPoint("good", good()))
    found = statuses(pm)
    assert found["broken"] == ("failed", "ImportError: No module named 'msal'")
    assert found["good"][0] == "loaded"
    assert pm.implementers("on_review_scheduled") == ["good"]


def test_signature_that_does_not_match_its_spec_fails_the_plugin() -> None:
    @hookimpl
    def on_review_scheduled(event: Any, ctx: Any, extra: Any) -> None:
        pass

    pm = manager(FakeEntryPoint("bad", plugin_module("bad", on_review_scheduled=
                                                     on_review_scheduled)),
                 FakeEntryPoint("good", good()))
    found = statuses(pm)
    assert found["bad"][0] == "failed"
    assert "PluginValidationError" in found["bad"][1]
    assert found["good"][0] == "loaded"


def test_misspelt_hook_name_fails_the_plugin_and_names_the_hook() -> None:
    @hookimpl
    def check_pending(ctx: Any) -> None:
        pass

    pm = manager(FakeEntryPoint("typo", plugin_module("typo", check_pending=check_pending)),
                 FakeEntryPoint("good", good()))
    found = statuses(pm)
    assert found["typo"][0] == "failed"
    assert "check_pending" in found["typo"][1]
    assert "typo" not in pm.implementers("check")


def test_failing_startup_marks_only_that_plugin_failed() -> None:
    @hookimpl
    def startup(ctx: Any) -> None:
        raise RuntimeError("tenant_id is required")

    pm = manager(FakeEntryPoint("fragile", plugin_module("fragile", startup=startup,
                                                         on_review_scheduled=_scheduled)),
                 FakeEntryPoint("good", good()))
    pm.start(lambda name: None)
    assert pm.records["fragile"].status == "failed"
    assert "startup failed: RuntimeError: tenant_id is required" in pm.records["fragile"].reason
    assert pm.implementers("on_review_scheduled") == ["good"]


def test_strict_mode_turns_a_failure_into_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHCBRIDGE_STRICT_PLUGINS", "1")
    pm = manager(FakeEntryPoint("broken", ImportError("boom")))
    with pytest.raises(PluginLoadError, match="plugin broken failed: ImportError: boom"):
        pm.load()


def test_allow_list_deny_list_and_enabled_false(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [FakeEntryPoint(n, good(n)) for n in ("alpha", "beta", "gamma")]
    monkeypatch.setenv("EHCBRIDGE_DISABLE_PLUGINS", "beta")
    found = statuses(manager(*eps, sections={"gamma": {"enabled": "false"}}))
    assert found["alpha"][0] == "loaded"
    assert found["beta"] == ("disabled", "listed in EHCBRIDGE_DISABLE_PLUGINS")
    assert found["gamma"] == ("disabled", "enabled = false in [plugins.gamma]")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "")
    assert {s for s, _ in statuses(manager(*eps)).values()} == {"disabled"}
    monkeypatch.delenv("EHCBRIDGE_DISABLE_PLUGINS")
    monkeypatch.setenv("EHCBRIDGE_LOAD_PLUGINS", "gamma")
    found = statuses(manager(*eps))
    assert found["gamma"][0] == "loaded" and found["alpha"][0] == "disabled"


def _dist_with_requirement(tmp_path: Path, requirement: str) -> metadata.EntryPoint:
    info = tmp_path / "old_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: old-plugin\nVersion: 1.0\nRequires-Dist: {requirement}\n")
    (info / "entry_points.txt").write_text("[ehcbridge]\nold = json\n")
    dist = metadata.Distribution.at(info)
    return next(iter(dist.entry_points))


def test_plugin_needing_another_core_version_is_skipped_with_the_reason(tmp_path: Path) -> None:
    ep = _dist_with_requirement(tmp_path, "ehcbridge>=9.0")
    found = statuses(manager(ep))
    assert found["old"][0] == "skipped"
    assert "requires ehcbridge>=9.0" in found["old"][1]
    assert "installed core is 0.1.0" in found["old"][1]


class TeamsLike(PluginSettings):
    tenant_id: str | None = None
    max_attendees: int = 100
    client_secret: SecretStr | None = None


@hookimpl
def _register(register: Any) -> None:
    register(TeamsLike)


def test_wrong_type_in_a_plugin_section_names_the_key() -> None:
    pm = manager(FakeEntryPoint("teams", plugin_module("teams", register_settings=_register)),
                 FakeEntryPoint("good", good()),
                 sections={"teams": {"max_attendees": "lots"}})
    found = statuses(pm)
    assert found["teams"][0] == "failed"
    assert "[plugins.teams] key 'max_attendees'" in found["teams"][1]
    assert "'lots'" in found["teams"][1]
    assert found["good"][0] == "loaded"


def test_secret_values_never_appear_in_an_error() -> None:
    pm = manager(FakeEntryPoint("teams", plugin_module("teams", register_settings=_register)),
                 sections={"teams": {"client_secret": ["s3cr3t-value"]}})
    found = statuses(pm)
    assert "client_secret" in found["teams"][1]
    assert "s3cr3t-value" not in found["teams"][1]


def test_each_implementation_is_called_on_its_own() -> None:
    calls: list[str] = []

    @hookimpl
    def raising(event: Any, ctx: Any) -> None:
        calls.append("a")
        raise RuntimeError("graph is down")

    @hookimpl
    def fine(event: Any, ctx: Any) -> None:
        calls.append("b")

    pm = manager(FakeEntryPoint("a", plugin_module("a", on_review_scheduled=raising)),
                 FakeEntryPoint("b", plugin_module("b", on_review_scheduled=fine)))
    outcomes = pm.call_each("on_review_scheduled", event=None, ctx=lambda n: n)
    assert calls == ["a", "b"]
    assert [(o.plugin, o.ok) for o in outcomes] == [("a", False), ("b", True)]
    assert str(outcomes[0].error) == "graph is down"


def test_trace_prints_each_call(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EHCBRIDGE_TRACE_PLUGINS", "1")
    pm = manager(FakeEntryPoint("good", good()))
    pm.call_each("on_review_scheduled", event=None, ctx=None)
    err = capsys.readouterr().err
    assert "on_review_scheduled -> good" in err
    assert "on_review_scheduled <- good returned NoneType" in err


def test_trylast_implementations_are_called_after_the_others() -> None:
    calls: list[str] = []

    @hookimpl(trylast=True)
    def late(event: Any, ctx: Any) -> None:
        calls.append("aardvark")

    @hookimpl
    def normal(event: Any, ctx: Any) -> None:
        calls.append("zebra")

    pm = manager(FakeEntryPoint("aardvark", plugin_module("aardvark", on_review_scheduled=late)),
                 FakeEntryPoint("zebra", plugin_module("zebra", on_review_scheduled=normal)))
    pm.call_each("on_review_scheduled", event=None, ctx=None)
    assert calls == ["zebra", "aardvark"]
