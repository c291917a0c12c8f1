"""``ehcbridge plugin new NAME``: write a third-party plugin package whose tests pass as written."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import click

from ehcbridge import __version__

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


def _core_range() -> str:
    """``>=0.1,<0.2`` for core 0.1.x: the hook contract may change between minor versions."""
    major, minor = (int(p) for p in __version__.split(".")[:2])
    return f">={major}.{minor},<{major}.{minor + 1}"


PYPROJECT = '''\
[project]
name = "ehcbridge-{dist}"
version = "0.1.0"
description = "ehcbridge plugin: {title}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["ehcbridge{core}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How ehcbridge finds the plugin: entry point group "ehcbridge", name = the plugin's name.
[project.entry-points.ehcbridge]
{entry} = "ehcbridge_{entry}"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/ehcbridge_{entry}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

INIT = '''\
"""ehcbridge plugin {entry}: remembers every review meeting set, moved or cancelled.

Replace the body of ``on_review_scheduled`` with your own work. The hooks are typed against
``ehcbridge.hookspecs``; ``mypy --strict`` passes on this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ehcbridge import hookimpl
from ehcbridge.events import CheckResult, HookContext, LifecycleEvent
from ehcbridge.plugin_settings import PluginSettings, settings_of

if TYPE_CHECKING:
    import click
    from ehcbridge.hookspecs import RegisterSettings

PLUGIN = "{entry}"


class Settings(PluginSettings):
    """The ``[plugins.{entry}]`` section of ehcbridge.toml (or EHCBRIDGE_PLUGINS__{upper}__*)."""

    greeting: str = "Hello"
    # A key the plugin cannot work without: keep it optional here and list it in missing(),
    # so ehcbridge loads the plugin, `doctor` says what to set, and deliveries are skipped
    # (not retried) until it is set.
    # api_url: str | None = None
    #
    # def missing(self) -> list[str]:
    #     return [] if self.api_url else ["api_url"]


@hookimpl
def register_settings(register: RegisterSettings) -> None:
    """Validate ``[plugins.{entry}]`` with :class:`Settings`."""
    register(Settings)


@hookimpl
def on_review_scheduled(event: LifecycleEvent, ctx: HookContext) -> None:
    """Record the meeting (raise to have the engine retry this delivery later)."""
    settings = settings_of(ctx, Settings)  # NotConfigured (skipped) while a key is missing
    ctx.store.set_state(f"seen:{{event.idempotency_key}}", {{
        "case_id": event.review.case_id, "action": event.action, "greeting": settings.greeting}})
    ctx.logger.info("%s: %s %s", settings.greeting, event.review.case_id, event.action)


@hookimpl
def check(ctx: HookContext) -> CheckResult:
    """One line of ``ehcbridge doctor``."""
    settings = settings_of(ctx, Settings, require=False)
    missing = settings.missing()
    if missing:
        return CheckResult(PLUGIN, "not configured", "set " + ", ".join(missing))
    return CheckResult(PLUGIN, "ok", f"greeting {{settings.greeting!r}}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``ehcbridge {command} ...``."""
    from ehcbridge_{entry}.cli import group

    cli.add_command(group)
'''

CLI = '''\
"""``ehcbridge {command} ...``: the plugin's commands."""

from __future__ import annotations

import click
from ehcbridge.events import HookContext
from ehcbridge.invocation import pass_plugin_context


@click.group(name="{command}")
def group() -> None:
    """Commands of the {entry} plugin."""


@group.command()
@pass_plugin_context("{entry}")
def seen(ctx: HookContext) -> None:
    """List the review meetings this plugin has seen."""
    for key, value in ctx.store.state_items("seen:"):
        click.echo(f"{{key.removeprefix('seen:')}} {{value['case_id']}} {{value['action']}}")
'''

TESTS = '''\
"""Tests of the {entry} plugin, on the fixtures of ehcbridge's pytest plugin (no conftest)."""

from __future__ import annotations

from datetime import datetime

import ehcbridge_{entry} as plugin
import pytest
from click.testing import CliRunner
from ehcbridge.models import LONDON
from ehcbridge.pytest_plugin import Harness
from ehcbridge_{entry}.cli import group
from pydantic import ValidationError

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=LONDON)
ROWS = [{{"case_id": "EHC-1", "forename": "Sam", "surname": "Example",
         "plan_issued": "2026-04-01", "meeting_start": "2027-03-10T10:00"}}]


def test_the_engine_delivers_a_scheduled_meeting_once(ehc: Harness) -> None:
    settings = {{"plugins": {{"{entry}": {{"greeting": "Hi"}}}}}}
    app = ehc.app({{"{entry}": plugin}}, settings=settings, now=NOW)
    ehc.import_reviews(app, ROWS)
    ehc.run_until_quiet(app)
    ehc.run_until_quiet(app)  # nothing is delivered twice
    assert ehc.deliveries("{entry}") == [("{entry}", "on_review_scheduled", "delivered")]
    assert ehc.context("{entry}", app=app).store.state_items("seen:") == [
        ("seen:EHC-1/r1/m1/scheduled/0", {{"case_id": "EHC-1", "action": "scheduled",
                                          "greeting": "Hi"}})]


def test_the_hook_on_its_own(ehc: Harness) -> None:
    ctx = ehc.context("{entry}", plugin.Settings(greeting="Hey"))
    plugin.on_review_scheduled(ehc.event("on_review_scheduled", "rescheduled"), ctx)
    [(key, value)] = ctx.store.state_items("seen:")
    assert value == {{"case_id": "EHC-0001", "action": "rescheduled", "greeting": "Hey"}}


def test_settings_refuse_a_misspelt_key() -> None:
    with pytest.raises(ValidationError):
        plugin.Settings.model_validate({{"greting": "Hi"}})


def test_doctor_and_the_command(ehc: Harness) -> None:
    app = ehc.app({{"{entry}": plugin}}, now=NOW)
    assert ("{entry}", "ok") in [(name, r.status) for name, r in app.doctor()]
    ehc.import_reviews(app, ROWS)
    ehc.run_until_quiet(app)
    result = CliRunner().invoke(group, ["seen"], obj=app)
    assert result.exit_code == 0, result.output
    assert result.output == "EHC-1/r1/m1/scheduled/0 EHC-1 scheduled\\n"
'''

README = '''\
# ehcbridge-{dist}

An [ehcbridge](https://github.com/) plugin: {title}.

## Install

    pip install ./ehcbridge-{dist}        # into the same environment as ehcbridge
    ehcbridge plugins                     # lists "{entry}" as loaded

## Settings

In `ehcbridge.toml` (or environment variables `EHCBRIDGE_PLUGINS__{upper}__GREETING=...`):

```toml
[plugins.{entry}]
greeting = "Hello"
```

## What it does

- `on_review_scheduled`: remembers each meeting set, moved or cancelled.
- `ehcbridge {command} seen`: lists them.
- `ehcbridge doctor`: one line for this plugin.

## Tests

    pip install -e './ehcbridge-{dist}[test]'
    pytest ehcbridge-{dist}

The tests use the fixtures of ehcbridge's own pytest plugin (`ehc`, `ehc_store`,
`ehc_outbox`, `ehc_now`): a real SQLite store, a fixed clock and the engine run until quiet.
See ehcbridge's docs/writing-plugins.md.
'''


def write_plugin(name: str, target: Path) -> list[Path]:
    """Write the package for plugin ``name`` into ``target``; returns the files written."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a plugin name: lower-case letters and digits, "
                         "words joined by - or _ (e.g. my-mis)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} already exists and is not empty")
    entry = name.replace("-", "_")
    values = {"entry": entry, "dist": entry.replace("_", "-"),
              "command": entry.replace("_", "-"), "upper": entry.upper(),
              "title": entry.replace("_", " "), "core": _core_range()}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/ehcbridge_{entry}/__init__.py": INIT,
        f"src/ehcbridge_{entry}/cli.py": CLI,
        f"src/ehcbridge_{entry}/py.typed": "",
        f"tests/test_{entry}.py": TESTS,
    }
    written = []
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
        written.append(path)
    return written


def demo_step(work: Path, echo: Callable[[str], None]) -> Path:
    """The demo's last step: a plugin package of your own, written beside the demo's files."""
    target = work / "ehcbridge-hello"
    if target.is_dir():
        shutil.rmtree(target)  # the demo's own output from an earlier run in this folder
    write_plugin("hello", target)
    echo(f"Your own plugin: ehcbridge plugin new hello --dir {target}")
    echo(f"  then: pip install -e '{target}[test]' && pytest {target}")
    return target


@click.group("plugin")
def plugin_group() -> None:
    """Write your own plugin."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the package into (default: ./ehcbridge-NAME).")
def new_cmd(name: str, directory: Path | None) -> None:
    """Write a plugin package NAME: pyproject with the entry point, src/, tests/ and a README."""
    target = directory or Path(f"ehcbridge-{name.replace('_', '-')}")
    try:
        files = write_plugin(name, target)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in files:
        click.echo(f"wrote {path}")
    click.echo(f"next: pip install -e '{target}[test]' && pytest {target}")
