"""Installing as the user guide says, on a fresh virtual environment, and the demo's advice."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


@pytest.mark.slow
def test_wheels_built_with_uv_build_install_core_and_a_plugin(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for package in ("ehcbridge", "ehcbridge-outlook"):
        subprocess.run([_uv(), "build", "--package", package, "--wheel", "--out-dir", str(dist)],
                       cwd=REPO, check=True, capture_output=True)
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    assert len(wheels) == 2, wheels
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--python", sys.executable, str(venv)], check=True,
                   capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run([_uv(), "pip", "install", "--python", str(python), *wheels], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    ehcbridge = str(venv / "bin" / "ehcbridge")
    listed = subprocess.run([ehcbridge, "plugins", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"outlook"} and rows["outlook"]["status"] == "loaded"
    doctor = subprocess.run([ehcbridge, "doctor", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    checks = json.loads(doctor.stdout)["checks"]
    store = next(c for c in checks if c["check"] == "store")
    assert store["status"] == "ok" and "schema" in store["detail"]  # migrations were packaged


def test_the_command_the_demo_prints_works_as_printed(tmp_path: Path) -> None:
    from ehcbridge.demo import run_demo

    lines: list[str] = []
    run_demo(tmp_path / "demo", echo=lines.append, step_days=7)
    assert any(line.startswith("Engine: worker ") and "own lane" in line for line in lines)
    [advice] = [line for line in lines if line.startswith("Try: ")]
    command = shlex.split(advice.removeprefix("Try: "))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    # Another folder and a shell PATH without the virtual environment: as a user would paste it.
    env["PATH"] = "/usr/bin:/bin"
    shown = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert command[-1] in shown.stdout and "Milestones" in shown.stdout
