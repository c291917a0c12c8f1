"""Cross-package tests: keep the developer's EHCBRIDGE_* settings out of every test."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def loopback_smtp() -> Iterator[Callable[[Any], int]]:
    """Start aiosmtpd with a given handler on a free loopback port (returns the port); every
    server started is stopped when the test ends."""
    from aiosmtpd.controller import Controller

    controllers: list[Any] = []

    def start(handler: Any) -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return port

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()
