"""ruff and mypy are part of the test run, so CI and the README's one command check them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1"})


def test_ruff_is_clean() -> None:
    result = _tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_strict_on_core() -> None:
    targets = ["core/src"] + [str(p) for p in sorted((REPO / "plugins").glob("*/src"))]
    result = _tool("mypy", *targets)
    assert result.returncode == 0, result.stdout + result.stderr
