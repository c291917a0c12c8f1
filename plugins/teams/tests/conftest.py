"""Fixtures: a fake Entra ID + Graph over HTTPS on 127.0.0.1, settings for it, no sleeping."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.testing import MemoryPluginStore, make_context

_spec = importlib.util.spec_from_file_location(
    "ehcbridge_teams_fake_graph", Path(__file__).with_name("fake_graph.py")
)
assert _spec is not None and _spec.loader is not None
fake_graph = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fake_graph
_spec.loader.exec_module(fake_graph)

ORGANISER = fake_graph.ORGANISER
SECRET = fake_graph.SECRET
settings_for = fake_graph.settings_for


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """A new msal app per test, and retry waits recorded instead of slept."""
    from ehcbridge_teams import auth, graph

    auth.reset_apps()
    waits: list[float] = []
    monkeypatch.setattr(graph, "default_sleep", waits.append)
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield waits
    auth.reset_apps()


@pytest.fixture
def waits(_fresh_state: list[float]) -> list[float]:
    """Seconds the Graph client would have slept."""
    return _fresh_state


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Any]:
    """The running fake with the SEN mailbox."""
    server = fake_graph.FakeGraph(tmp_path, secret=SECRET).start()
    server.add_mailbox(ORGANISER)
    server.add_mailbox("senco@school.example.org")
    yield server
    server.stop()


@pytest.fixture
def settings(fake: Any) -> Any:
    """Settings for the fake."""
    return settings_for(fake)


@pytest.fixture
def store() -> MemoryPluginStore:
    """The plugin's store."""
    return MemoryPluginStore(plugin="teams")


@pytest.fixture
def ctx(settings: Any, store: MemoryPluginStore) -> Any:
    """A HookContext for the teams plugin (clock: 5 Jan 2026 09:00)."""
    return make_context("teams", settings, store=store)
