"""Plugins are called through pluggy's own machinery, one plugin at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ehcbridge import hookimpl
from ehcbridge.events import CheckResult, HookContext
from ehcbridge.plugins import PluginManager
from ehcbridge.testing import FakeEntryPoint, plugin_module


def manager(**plugins: Any) -> PluginManager:
    pm = PluginManager({}, None, entry_points=[FakeEntryPoint(n, m) for n, m in plugins.items()])
    pm.configure()
    return pm


def test_a_wrapper_implementation_is_refused_at_load_with_the_reason() -> None:
    @hookimpl(wrapper=True)
    def on_decision(event: Any, ctx: Any) -> Iterator[None]:
        yield

    @hookimpl(hookwrapper=True)
    def check(ctx: Any) -> Iterator[None]:
        yield

    pm = manager(wrapping=plugin_module("wrapping", on_decision=on_decision),
                 old=plugin_module("old", check=check))
    for name, hook in (("wrapping", "on_decision"), ("old", "check")):
        record = pm.records[name]
        assert record.status == "failed"
        assert record.reason.startswith(f"hook wrapper {hook} is not supported")
        assert "wrapper=True" in record.reason
    assert pm.implementers("on_decision") == [] and pm.implementers("check") == []


def test_an_optional_hook_this_core_lacks_is_not_an_error() -> None:
    calls: list[str] = []

    @hookimpl(optionalhook=True)
    def on_something_newer(ctx: Any) -> None:
        calls.append("newer")

    @hookimpl
    def on_decision(event: Any, ctx: Any) -> None:
        calls.append("decision")

    pm = manager(future=plugin_module("future", on_something_newer=on_something_newer,
                                      on_decision=on_decision))
    assert pm.records["future"].status == "loaded"
    assert pm.records["future"].hooks == ["on_decision"]
    pm.call_each("on_decision", event=None, ctx=None)
    assert calls == ["decision"]


def test_a_misnamed_argument_fails_the_plugin_as_pluggy_validates_it() -> None:
    @hookimpl
    def on_decision(evnt: Any, ctx: Any) -> None:
        pass

    pm = manager(typo=plugin_module("typo", on_decision=on_decision))
    assert pm.records["typo"].status == "failed"
    assert "evnt" in pm.records["typo"].reason


def test_each_plugin_gets_its_own_context_and_only_the_arguments_it_names() -> None:
    seen: list[tuple[str, str]] = []

    @hookimpl
    def check(ctx: HookContext) -> CheckResult:
        seen.append(("check", str(ctx)))
        return CheckResult("c", "ok")

    @hookimpl
    def route_invite(invitee: Any, ctx: Any) -> None:  # fewer arguments than the spec
        seen.append(("route", f"{invitee}/{ctx}"))

    pm = manager(a=plugin_module("a", check=check), b=plugin_module("b", check=check,
                                                                   route_invite=route_invite))
    outcomes = pm.call_each("check", ctx=lambda name: f"ctx-of-{name}")
    assert [(o.plugin, o.result) for o in outcomes] == [("a", CheckResult("c", "ok")),
                                                        ("b", CheckResult("c", "ok"))]
    assert seen == [("check", "ctx-of-a"), ("check", "ctx-of-b")]
    # review and pupil are left out by the caller: pluggy still gets every spec argument
    assert pm.call_first("route_invite", invitee="inv", ctx=lambda n: n) is None
    assert seen[-1] == ("route", "inv/b")


def test_tracing_uses_pluggy_hook_call_monitoring(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EHCBRIDGE_TRACE_PLUGINS", "1")

    @hookimpl
    def on_decision(event: Any, ctx: Any) -> None:
        raise RuntimeError("no decision store")

    pm = manager(failing=plugin_module("failing", on_decision=on_decision))
    # The same monitor sees a hook called straight through pluggy.
    with pytest.raises(RuntimeError):
        pm.pm.hook.on_decision(event=None, ctx=None)
    [outcome] = pm.call_each("on_decision", event=None, ctx=None)
    assert isinstance(outcome.error, RuntimeError)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == [
        "ehcbridge trace: on_decision -> failing",
        "ehcbridge trace: on_decision <- failing raised RuntimeError: no decision store",
    ] * 2
