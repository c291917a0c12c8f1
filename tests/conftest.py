"""Cross-package tests: keep the developer's EHCBRIDGE_* settings out of every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No EHCBRIDGE_* leaks in, no ./ehcbridge.toml is read, data goes to a temp folder."""
    for key in list(os.environ):
        if key.startswith("EHCBRIDGE_") and key != "EHCBRIDGE_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
