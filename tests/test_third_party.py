"""A plugin written outside the workspace, installed with pip-style tooling into a fresh venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GOOD_PYPROJECT = """\
[project]
name = "ehcbridge-hello"
version = "1.2.0"
dependencies = ["ehcbridge>=0.1,<0.2"]

[project.entry-points.ehcbridge]
hello = "ehcbridge_hello"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""

GOOD_MODULE = '''\
import json, os
import click
from ehcbridge import hookimpl


@hookimpl
def on_review_scheduled(event, ctx):
    with open(os.environ["HELLO_LOG"], "a") as fh:
        fh.write(json.dumps({"key": event.idempotency_key, "action": event.action}) + "\\n")


@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        """Say hello."""
        click.echo("hello from a third-party plugin")
'''

BROKEN_PYPROJECT = GOOD_PYPROJECT.replace("ehcbridge-hello", "ehcbridge-broken").replace(
    'hello = "ehcbridge_hello"', 'broken = "ehcbridge_broken"')
BROKEN_MODULE = "raise RuntimeError('this plugin is broken on purpose')\n"


def _uv() -> str:
    import uv

    return uv.find_uv_bin()


def _package(root: Path, name: str, pyproject: str, module: str) -> Path:
    pkg = root / name
    (pkg / f"ehcbridge_{name}").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(pyproject)
    (pkg / f"ehcbridge_{name}" / "__init__.py").write_text(module)
    return pkg


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with the core, one first-party plugin and two third-party
    plugins (one good, one that raises on import), installed from their folders."""
    root = tmp_path_factory.mktemp("third-party")
    good = _package(root, "hello", GOOD_PYPROJECT, GOOD_MODULE)
    broken = _package(root, "broken", BROKEN_PYPROJECT, BROKEN_MODULE)
    env_dir = root / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)], check=True)
    install = [uv, "pip", "install", "--quiet", "--python", str(env_dir / "bin" / "python"),
               str(REPO / "core"), str(REPO / "plugins" / "outlook"), str(good), str(broken)]
    # The workspace sync has already cached every wheel; fall back to the index if not.
    if subprocess.run([*install, "--offline"], capture_output=True).returncode != 0:
        subprocess.run(install, check=True)
    yield env_dir


def _run(venv: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(HELLO_LOG=str(tmp_path / "hello.log"),
               EHCBRIDGE_STORE__URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               EHCBRIDGE_PLUGINS__OUTLOOK__OUTBOX_DIR=str(tmp_path / "outbox"))
    return subprocess.run([str(venv / "bin" / "ehcbridge"), *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path)


def test_third_party_plugin_is_discovered_called_and_adds_a_command(venv: Path,
                                                                    tmp_path: Path) -> None:
    listed = {r["name"]: r for r in json.loads(_run(venv, "plugins", "--json",
                                                    tmp_path=tmp_path).stdout)}
    assert listed["hello"] == {"name": "hello", "distribution": "ehcbridge-hello",
                               "version": "1.2.0",
                               "hooks": ["on_review_scheduled", "register_commands"],
                               "status": "loaded", "reason": ""}
    assert _run(venv, "hello", tmp_path=tmp_path).stdout.strip() == \
        "hello from a third-party plugin"
    csv = tmp_path / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n"
                   "EHC-1,Sam,Example,2026-04-01,2027-03-10T10:00\n")
    assert _run(venv, "import", "reviews", str(csv), tmp_path=tmp_path).returncode == 0
    ran = _run(venv, "run", "--once", "--now", "2027-01-04T09:00", tmp_path=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = (tmp_path / "hello.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"key": "EHC-1/r1/m1/scheduled/0", "action": "scheduled"}]


def test_plugin_that_raises_on_import_takes_nothing_else_down(venv: Path,
                                                              tmp_path: Path) -> None:
    listed = {r["name"]: r for r in json.loads(_run(venv, "plugins", "--json",
                                                    tmp_path=tmp_path).stdout)}
    assert listed["broken"]["status"] == "failed"
    assert listed["broken"]["reason"] == "RuntimeError: this plugin is broken on purpose"
    assert listed["hello"]["status"] == "loaded"
    assert listed["outlook"]["status"] == "loaded"
    doctor = _run(venv, "doctor", tmp_path=tmp_path)
    assert doctor.returncode == 1
    broken_line = next(line for line in doctor.stdout.splitlines() if "broken" in line)
    assert "failed" in broken_line and "broken on purpose" in broken_line
    assert "outlook" in doctor.stdout
