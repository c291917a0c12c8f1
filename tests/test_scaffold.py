"""`ehcbridge plugin new`: the package it writes installs, passes its own tests and is called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ehcbridge.cli import cli

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(EHCBRIDGE_STORE__URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    return env


def test_the_package_passes_its_tests_and_mypy_strict(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plugin", "new", "my-mis", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    pkg = tmp_path / "p"
    assert sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file()) == [
        "README.md", "pyproject.toml", "src/ehcbridge_my_mis/__init__.py",
        "src/ehcbridge_my_mis/cli.py", "src/ehcbridge_my_mis/py.typed",
        "tests/test_my_mis.py"]
    pyproject = (pkg / "pyproject.toml").read_text()
    assert 'name = "ehcbridge-my-mis"' in pyproject
    assert '[project.entry-points.ehcbridge]\nmy_mis = "ehcbridge_my_mis"' in pyproject
    env = {**_env(tmp_path), "PYTHONPATH": str(pkg / "src")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=pkg, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
    # The workspace's cache: ehcbridge and pydantic are analysed once, not on every run.
    typed = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                            str(REPO / ".mypy_cache" / "scaffold"), "src", "tests"],
                           cwd=pkg, env=env, capture_output=True, text=True)
    assert typed.returncode == 0, typed.stdout + typed.stderr


@pytest.mark.parametrize(("name", "message"), [
    ("My Plugin", "'My Plugin' is not a plugin name"),
    ("9lives", "'9lives' is not a plugin name"),
])
def test_a_bad_name_is_refused(name: str, message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plugin", "new", name, "--dir", str(tmp_path / "x")])
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "x").exists()


def test_an_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["plugin", "new", "x", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 1 and "already exists and is not empty" in result.output
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["keep.txt"]


def _uv() -> str:
    import uv

    return uv.find_uv_bin()


def test_a_new_plugin_in_a_fresh_environment(tmp_path: Path) -> None:
    """The whole journey of a third party: scaffold, install, test, run."""
    venv = tmp_path / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python, ehcbridge = str(venv / "bin" / "python"), str(venv / "bin" / "ehcbridge")

    def install(*what: str) -> None:
        command = [uv, "pip", "install", "--quiet", "--python", python, *what]
        # The workspace sync has already cached every wheel; fall back to the index if not.
        if subprocess.run([*command, "--offline"], capture_output=True).returncode != 0:
            subprocess.run(command, check=True)

    install(str(REPO / "core"), "pytest")
    env = _env(tmp_path)

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd)

    made = run(ehcbridge, "plugin", "new", "hello-world", "--dir", str(tmp_path / "hw"))
    assert made.returncode == 0, made.stderr
    install(str(tmp_path / "hw"))
    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path / "hw")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout

    listed = {r["name"]: r for r in json.loads(run(ehcbridge, "plugins", "--json").stdout)}
    assert listed["hello_world"]["status"] == "loaded"
    assert listed["hello_world"]["distribution"] == "ehcbridge-hello-world"
    assert listed["hello_world"]["hooks"] == ["check", "on_review_scheduled",
                                              "register_commands", "register_settings"]
    csv = tmp_path / "list.csv"
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n"
                   "EHC-1,Sam,Example,2026-04-01,2027-03-10T10:00\n")
    assert run(ehcbridge, "import", "reviews", str(csv)).returncode == 0
    env["EHCBRIDGE_PLUGINS__HELLO_WORLD__GREETING"] = "Good morning"
    ran = run(ehcbridge, "-v", "run", "--once", "--now", "2027-01-04T09:00")
    assert ran.returncode == 0, ran.stderr
    assert "Good morning: EHC-1 scheduled" in ran.stderr
    seen = run(ehcbridge, "hello-world", "seen")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout == "EHC-1/r1/m1/scheduled/0 EHC-1 scheduled\n"
