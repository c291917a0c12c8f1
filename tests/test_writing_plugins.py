"""The worked connector in docs/writing-plugins.md works as printed: its tests and mypy pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILE_BLOCK = re.compile(r"```python\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.S)


def test_the_worked_mis_connector_passes_its_tests_and_mypy_strict(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    files = {m["path"]: m["body"] for m in FILE_BLOCK.finditer(doc)}
    assert sorted(files) == ["src/ehcbridge_rollcall/__init__.py", "src/ehcbridge_rollcall/cli.py",
                             "src/ehcbridge_rollcall/roll.py", "tests/test_rollcall.py"]
    for relative, body in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(body, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env["PYTHONPATH"] = str(tmp_path / "src")
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--rootdir", str(tmp_path), "tests"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    typed = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir",
                            str(REPO / ".mypy_cache" / "scaffold"), "src", "tests"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert typed.returncode == 0, typed.stdout + typed.stderr
