"""The systemd units in deploy/: valid for systemd, and their commands are the real CLI's."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
INSTALLED = "/opt/ehcbridge/venv/bin/ehcbridge"


def _here() -> str:
    return str(Path(sys.executable).parent / "ehcbridge")


def _exec_start(unit: Path) -> list[str]:
    [line] = [x for x in unit.read_text(encoding="utf-8").splitlines()
              if x.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_units_are_valid_for_systemd(tmp_path: Path) -> None:
    units = sorted(DEPLOY.glob("ehcbridge-*.*"))
    assert {u.name for u in units} >= {"ehcbridge-serve.service", "ehcbridge-erase.service",
                                       "ehcbridge-erase.timer"}
    for unit in units:
        if unit.suffix == ".service":
            assert _exec_start(unit)[0] == INSTALLED  # where the guide installs it
        # The installed path, as the guide lays it out, becomes this checkout's command.
        (tmp_path / unit.name).write_text(unit.read_text(encoding="utf-8").replace(
            INSTALLED, _here()), encoding="utf-8")
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # systemd's own parser, where the machine has it
        done = subprocess.run([analyze, "verify", *(str(tmp_path / u.name) for u in units)],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr


def test_the_monthly_erasure_runs_as_the_unit_says(tmp_path: Path, monkeypatch: Any) -> None:
    from ehcbridge.testing import cli_invoker

    command = _exec_start(DEPLOY / "ehcbridge-erase.service")
    assert command[:2] == [INSTALLED, "erase"] and "--due" in command and "--yes" in command
    invoke = cli_invoker(tmp_path, monkeypatch, (
        f'[store]\nurl = "sqlite:///{(tmp_path / "e.sqlite3").as_posix()}"\n'))
    # Without a retention period the unit does nothing and says why (exit 2, a usage error).
    assert "--due needs store.keep_ceased_months" in invoke(*command[1:], code=2)
    config = tmp_path / "ehcbridge.toml"
    config.write_text(config.read_text(encoding="utf-8") + "keep_ceased_months = 24\n",
                      encoding="utf-8")
    assert invoke(*command[1:]).strip() == "No case to erase."
