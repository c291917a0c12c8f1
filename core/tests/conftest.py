"""Fixtures for the core's tests: isolated environment, both store backends, test plugins."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ehcbridge.settings import driver_url
from ehcbridge.store import Store

PG_URL = os.environ.get("EHCBRIDGE_TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="EHCBRIDGE_TEST_DATABASE_URL not set"))]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No EHCBRIDGE_* settings leak in from the developer's shell, and no ./ehcbridge.toml."""
    for key in list(os.environ):
        if key.startswith("EHCBRIDGE_") and key != "EHCBRIDGE_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def _pg_store() -> Iterator[Store]:
    import sqlalchemy as sa

    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(driver_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = Store(driver_url(PG_URL), schema=schema)
    try:
        yield store
    finally:
        store.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on SQLite, and on PostgreSQL when EHCBRIDGE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
        yield s
        s.close()
    else:
        yield from _pg_store()
