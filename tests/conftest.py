"""Cross-package tests: keep the developer's EHCBRIDGE_* settings out of every test."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("EHCBRIDGE_TEST_DATABASE_URL")
# Storage is tested on SQLite always, and on PostgreSQL when the variable names a server.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="EHCBRIDGE_TEST_DATABASE_URL not set"))]


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL (dropped afterwards), as a URL whose search_path
    points at it; skipped when EHCBRIDGE_TEST_DATABASE_URL is not set."""
    if not PG_URL:
        pytest.skip("EHCBRIDGE_TEST_DATABASE_URL not set")
    import sqlalchemy as sa
    from ehcbridge.settings import driver_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(driver_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'store.sqlite3').as_posix()}"
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture
def council(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Any:
    """``invoke(*args, code=0)``: the real ``ehcbridge`` command on a settings file naming only
    the test store (on each backend), run in ``tmp_path``."""
    from ehcbridge.testing import cli_invoker

    return cli_invoker(tmp_path, monkeypatch, f'[store]\nurl = "{store_url}"\n')


@pytest.fixture
def mailing_council(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Any:
    """``start(review_list, meeting_start)``: the real ``ehcbridge`` on the test store (each
    backend) with the outlook plugin writing to ``tmp_path/outbox``; the list imported on 1
    October 2026 and every case's meeting set for ``meeting_start``. Returns ``invoke``."""
    from ehcbridge.testing import cli_invoker

    def start(review_list: str, meeting_start: str) -> Any:
        invoke = cli_invoker(tmp_path, monkeypatch, (
            f'[store]\nurl = "{store_url}"\n\n[plugins.outlook]\ntransport = "outbox"\n'
            f'outbox_dir = "{(tmp_path / "outbox").as_posix()}"\n'))
        Path("reviews.csv").write_text(review_list, encoding="utf-8")
        invoke("import", "reviews", "reviews.csv", "--now", "2026-10-01T09:00")
        for row in review_list.splitlines()[1:]:
            invoke("review", "--now", "2026-10-01T09:00", "schedule", row.split(",")[0],
                   "--start", meeting_start)
        return invoke

    return start


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


@pytest.fixture
def add_case() -> Callable[..., None]:
    """``add_case(store, case_id, upn=..., coordinator=...)``: one annual review of a Year 7
    pupil, as the import would add it (for tests that then invite and schedule)."""
    return _add_case


def _add_case(store: Any, case_id: str, *, upn: str, coordinator: str | None,
              forename: str = "Sam", issued: Any = None, due: Any = None) -> None:
    from datetime import date

    from ehcbridge.models import Plan, Pupil, ReviewKind

    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn=upn, forename=forename, surname="Example",
                                            dob=date(2014, 5, 2), nc_year=7),
                          plan=Plan(case_id=case_id, issued_on=issued or date(2026, 4, 1)),
                          coordinator_email=coordinator, review_due=due or date(2027, 3, 31),
                          kind=ReviewKind.ANNUAL, pfa=False)


@pytest.fixture
def cli_runner() -> Callable[[Path], Callable[..., str]]:
    """``cli_runner(config)`` gives ``run(*args)``: ``ehcbridge --config CONFIG ARGS...``
    in-process, asserting exit 0 and returning the output."""
    return _cli_runner


def _cli_runner(config: Path) -> Callable[..., str]:
    from click.testing import CliRunner
    from ehcbridge.cli import cli

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return str(result.output)

    return run
