"""The plugin as the core loads it: entry point, hook names, settings section, doctor checks."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from ehcbridge.events import CheckResult, HookContext, Route
from ehcbridge.models import Invitee, Role
from ehcbridge.plugins import PluginManager
from ehcbridge.testing import MemoryPluginStore, make_context, make_event
from ehcbridge_health_referrals import check
from ehcbridge_health_referrals.settings import HealthReferralsSettings

EXAMPLE = Path(__file__).parents[1] / "README.md"


def manager(raw: dict[str, Any]) -> PluginManager:
    """A core plugin manager that sees only this plugin's entry point."""
    eps = metadata.entry_points(group="ehcbridge", name="health_referrals")
    return PluginManager({"health_referrals": raw}, None, entry_points=list(eps))


def example_section() -> dict[str, Any]:
    """The example TOML section from the README, parsed."""
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    section = tomllib.loads(block)["plugins"]["health_referrals"]
    assert isinstance(section, dict)
    return section


def test_loads_with_only_known_hooks_and_validates_the_readme_example(
        tmp_path: Path) -> None:
    raw = example_section()
    raw["outbox_dir"] = str(tmp_path)
    pm = manager(raw)
    pm.start(lambda name: make_context(name, pm.records[name].settings))
    record = pm.records["health_referrals"]
    assert record.status == "loaded", record.reason
    assert {"route_invite", "on_views_due", "on_review_scheduled", "register_settings",
            "register_commands", "check", "startup"} <= set(record.hooks)
    assert isinstance(record.settings, HealthReferralsSettings)
    assert len(record.settings.table.rules) >= 3


def test_core_routes_through_the_plugin(tmp_path: Path) -> None:
    raw = example_section()
    pm = manager(raw)
    store = MemoryPluginStore(plugin="health_referrals")

    def ctx_for(name: str) -> HookContext:
        return make_context(name, pm.records[name].settings, store=store)

    pm.start(ctx_for)
    event = make_event()
    route = pm.call_first("route_invite", review=event.review, pupil=event.pupil,
                          invitee=Invitee(role=Role.HEALTH, team="SALT"), ctx=ctx_for)
    assert isinstance(route, Route)
    assert route.rule == "salt"
    # It asks the team for advice itself: the core's notices do not ask the mailbox again.
    assert route.advice_by == "health_referrals"


def test_an_ambiguous_table_fails_the_plugin_naming_both_rules() -> None:
    raw = example_section()
    raw["rules"].append({"name": "salt-copy", "role": "health", "service": "speech therapy",
                         "team": "Copy", "mailbox": "copy@nhs.net"})
    pm = manager(raw)
    pm.configure()
    record = pm.records["health_referrals"]
    assert record.status == "failed"
    assert "'salt' (rules[0])" in record.reason and "'salt-copy'" in record.reason


def test_environment_style_values_are_accepted() -> None:
    settings = HealthReferralsSettings.model_validate(
        {"dco_mailbox": "dco@nhs.net", "la_code": "801", "smtp_port": "2525",
         "fallback_roles": ["health"]})
    assert settings.mail_settings().smtp_port == 2525
    assert settings.configured




def test_doctor_not_configured_never_raises() -> None:
    results = check(ctx=make_context("health_referrals", HealthReferralsSettings()))
    assert [r.status for r in results] == ["not configured"]
    assert "dco_mailbox" in results[0].detail


def test_doctor_reports_the_table_and_mail(settings: HealthReferralsSettings) -> None:
    results = check(ctx=make_context("health_referrals", settings))
    assert results[0] == CheckResult(
        "routing", "ok", "13 rule(s) (0 from CSV); unmatched invitations go to Designated "
                         "Clinical Officer service <dco.bristol@nhs.net>")
    assert results[1].name == "mail" and results[1].status == "ok"
    assert "outbox folder" in results[1].detail


def test_doctor_warns_about_a_default_from_address(
        settings_factory: Callable[..., HealthReferralsSettings]) -> None:
    settings = settings_factory(transport="smtp", from_address="ehcbridge@localhost",
                                smtp_password="s3cret-value")
    results = check(ctx=make_context("health_referrals", settings))
    assert results[1].status == "warning"
    assert all("s3cret" not in r.detail for r in results)
