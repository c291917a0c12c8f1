"""Hostile-input and fault tests: a database URL per backend, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def database_url(store_url: str) -> str:
    """An empty database for ``EHCBRIDGE_STORE__URL``: an SQLite file, or a fresh PostgreSQL
    schema (tests/conftest.py)."""
    return store_url


class Cli:
    """The real ``ehcbridge`` command line (its ``main``, as the console script runs it) in a
    subprocess with no developer settings and the test's store."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url, self.cwd = url, cwd

    def env(self, **extra: str) -> dict[str, str]:
        """The subprocess environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")
               and k != "PYTHONDONTWRITEBYTECODE"}  # start-up without compiling every module
        env.update(EHCBRIDGE_STORE__URL=self.url, XDG_DATA_HOME=str(self.cwd / "xdg"),
                   PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "ehcbridge-tests-pycache"),
                   **extra)
        return env

    def __call__(self, *args: str, timeout: float = 120,
                 **extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``ehcbridge ARGS``; the result has text stdout and stderr."""
        return subprocess.run([sys.executable, "-m", "ehcbridge.cli", *args],
                              env=self.env(**extra), cwd=self.cwd, capture_output=True,
                              text=True, timeout=timeout)

    def quick(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``ehcbridge ARGS`` in this process (click's runner): for listings, where a
        subprocess would only add start-up time."""
        from click.testing import CliRunner
        from ehcbridge.cli import cli

        env = {k: None for k in os.environ if k.startswith("EHCBRIDGE_")
               and k != "EHCBRIDGE_TEST_DATABASE_URL"}
        result = CliRunner().invoke(cli, list(args), env={**env, **self.env(**extra)})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                           result.stderr)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """The CLI on this test's database (each backend)."""
    return Cli(database_url, tmp_path)


@pytest.fixture
def store(database_url: str) -> Iterator[Any]:
    """The Store on this test's database, as the CLI opens it."""
    from ehcbridge.settings import driver_url
    from ehcbridge.store import Store

    opened = Store(driver_url(database_url))
    yield opened
    opened.close()


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    """The CLI on an SQLite file, for tests where the backend does not matter."""
    return Cli(f"sqlite:///{tmp_path / 'cli.sqlite3'}", tmp_path)


@pytest.fixture
def scheduled_case(store: Any) -> str:
    """Case EHC-1 with a meeting on 10 March 2027: one on_review_scheduled event in the outbox."""
    from datetime import date, datetime, timedelta

    from ehcbridge.models import LONDON, Plan, Pupil, ReviewKind

    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(forename="Sam", surname="Ex", dob=date(2014, 5, 2)),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          coordinator_email=None, review_due=date(2027, 3, 31),
                          kind=ReviewKind.ANNUAL, pfa=False)
    start = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
    store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1))
    return "EHC-1"


class Loopback:
    """A loopback HTTP server answering every GET with ``body`` and recording each path."""

    def __init__(self, body: bytes) -> None:
        import http.server
        import threading

        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Any]:
    """Start :class:`Loopback` servers (``loopback(body)``); all are stopped afterwards."""
    servers: list[Loopback] = []

    def start(body: bytes) -> Loopback:
        servers.append(Loopback(body))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
