"""Docs live with the code: every hook, plugin, command and setting is documented."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest
from ehcbridge import hookspecs
from ehcbridge.settings import EngineSettings, StoreSettings

REPO = Path(__file__).resolve().parents[1]
PLUGINS = ["teams", "outlook", "sims", "health_referrals", "social_care", "zoom", "letters",
           "notify"]


def _specs() -> dict[str, list[str]]:
    return {name: list(inspect.signature(func).parameters)
            for name, func in vars(hookspecs).items()
            if callable(func) and hasattr(func, "ehcbridge_spec")}


@pytest.mark.parametrize("name", sorted(_specs()))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    doc = (REPO / "docs" / "hooks.md").read_text()
    heading = f"## {name}({', '.join(_specs()[name])})"
    assert heading in doc.splitlines(), f"docs/hooks.md lacks the heading {heading!r}"
    section = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    assert "@hookimpl" in section, f"{name}: no example in docs/hooks.md"


def test_every_hookspec_has_a_docstring() -> None:
    for name in _specs():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


@pytest.mark.parametrize("plugin", PLUGINS)
def test_every_plugin_has_a_readme_and_a_guide(plugin: str) -> None:
    assert (REPO / "plugins" / plugin / "README.md").stat().st_size > 500
    assert (REPO / "docs" / f"{plugin}.md").exists()


def test_every_builtin_command_is_in_the_user_guide() -> None:
    from ehcbridge.cli import cli

    guide = "\n".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    for name, command in cli.commands.items():
        if name in {"teams", "outlook", "sims", "health-referrals", "social-care", "zoom"}:
            continue
        assert f"ehcbridge {name}" in guide, f"`ehcbridge {name}` is not documented"
        for sub in getattr(command, "commands", {}):
            assert re.search(rf"ehcbridge {name} {sub}\b", guide), \
                f"`ehcbridge {name} {sub}` is not documented"


def test_example_config_names_every_core_setting() -> None:
    example = tomllib.loads((REPO / "config" / "ehcbridge.example.toml").read_text())
    text = (REPO / "config" / "ehcbridge.example.toml").read_text()
    for field in StoreSettings.model_fields:
        assert re.search(rf"^#?\s*{field}\s*=", text, re.M), f"store.{field} missing"
    for field in EngineSettings.model_fields:
        assert re.search(rf"^#?\s*{field}\s*=|\[\[engine\.{field}\]\]", text, re.M), \
            f"engine.{field} missing"
    assert set(example.get("plugins", {})) >= set(PLUGINS)
    env_example = (REPO / "config" / ".env.example").read_text()
    assert "EHCBRIDGE_STORE__URL" in env_example


def test_example_config_is_valid_for_every_plugin() -> None:
    from click.testing import CliRunner
    from ehcbridge.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(REPO / "config" / "ehcbridge.example.toml"),
                                      "plugins", "--json"])
    assert result.exit_code == 0, result.output
    import json

    failed = [r for r in json.loads(result.stdout) if r["status"] != "loaded"]
    assert failed == []
