"""Fixtures: a memory store with open reviews, a context, and a fake MIS aggregator API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.testing import MemoryPluginStore, make_context

sys.path.insert(0, str(Path(__file__).parent))  # ctfgen and sims_fakes, shared with benchmarks

from ctfgen import upn_for
from ehcbridge_sims import SimsSettings
from sims_fakes import FakeMis, link_review, serve


@pytest.fixture
def store() -> MemoryPluginStore:
    """A memory store where pupils 0 and 1 of the generated files have open reviews."""
    s = MemoryPluginStore(plugin="sims")
    link_review(s, upn_for(0), "EHC-0000")
    link_review(s, upn_for(1), "EHC-0001")
    return s


@pytest.fixture
def ctx(store: MemoryPluginStore) -> Any:
    """A HookContext for the sims plugin with CTF settings."""
    return make_context("sims", SimsSettings(), store=store)


@pytest.fixture
def fake_mis() -> Iterator[FakeMis]:
    """A fake aggregator API on 127.0.0.1; ``fake_mis.url`` is its base URL."""
    mis = FakeMis()
    server = serve(mis)
    try:
        yield mis
    finally:
        server.shutdown()
        server.server_close()
