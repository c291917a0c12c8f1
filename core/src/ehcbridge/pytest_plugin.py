"""The pytest plugin shipped with ehcbridge (entry point ``pytest11``): fixtures for plugin tests.

Installed with the core, so a plugin's tests use these fixtures with no conftest:

- ``ehc_now``: a fixed instant (Monday 5 January 2026, 09:00 Europe/London); override the
  fixture to choose another.
- ``ehc_store``: a real :class:`~ehcbridge.store.Store` on a temporary SQLite file, migrated.
- ``ehc_outbox``: every email sent through ``ehcbridge.mail`` in the test, captured (nothing
  leaves the machine, whatever the transport).
- ``ehc``: an :class:`Harness` tying them together: ``ehc.app(...)`` makes an App with exactly
  the plugins given, ``ehc.import_reviews(...)`` adds reviews as ``ehcbridge import reviews``
  does, ``ehc.run_until_quiet(app)`` runs the engine until nothing more happens, and
  ``ehc.context(...)`` / ``ehc.event(...)`` build what a hook receives for unit tests.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from ehcbridge.models import LONDON

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ehcbridge.app import App
    from ehcbridge.engine import TickReport
    from ehcbridge.events import HookContext, LifecycleEvent
    from ehcbridge.intake import ImportReport
    from ehcbridge.store import Store

DEFAULT_NOW = datetime(2026, 1, 5, 9, 0, tzinfo=LONDON)


@dataclass
class Outbox:
    """Emails sent during a test, in order."""

    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages with ``address`` among their recipients (To or Cc)."""
        wanted = address.lower()
        return [m for m in self.messages
                if wanted in ",".join(str(m.get(h, "")) for h in ("To", "Cc")).lower()]

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class Harness:
    """What the ``ehc`` fixture gives a test: a real store, a fixed clock and the engine."""

    now: datetime
    store: Store
    outbox: Outbox
    folder: Path
    apps: list[App] = field(default_factory=list)

    def app(self, plugins: dict[str, ModuleType | object] | None = None,
            settings: dict[str, Any] | None = None, now: datetime | None = None) -> App:
        """An App on the test's store with exactly ``plugins`` (name -> module) loaded.

        ``settings`` is what ``ehcbridge.toml`` would hold, e.g.
        ``{"plugins": {"hello": {"greeting": "hi"}}, "engine": {...}}``.
        """
        from ehcbridge.testing import make_app

        app: App = make_app(self.store, plugins, settings, now=now or self.now)
        self.apps.append(app)
        return app

    def import_reviews(self, app: App, rows: list[dict[str, str]]) -> ImportReport:
        """Import review rows (the columns of ``ehcbridge import reviews``) as that command does.

        The required columns are ``case_id, forename, surname, plan_issued``; add
        ``meeting_start`` (``2026-03-10T10:00``) to schedule a meeting.
        """
        from ehcbridge.intake import import_reviews

        path = self.folder / f"reviews-{len(list(self.folder.glob('reviews-*.csv')))}.csv"
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return import_reviews(app, path, now=app.clock.now())

    def run_until_quiet(self, app: App, now: datetime | None = None,
                        max_passes: int = 20) -> TickReport:
        """Run engine passes at ``now`` until one fires, dispatches and attempts nothing."""
        from ehcbridge.engine import Engine, TickReport

        engine = Engine(app)
        total = TickReport()
        for _ in range(max_passes):
            report = engine.run_once(now or app.clock.now())
            total.merge(report)
            if not (report.timers_fired or report.events_dispatched
                    or sum(report.attempts.values())):
                return total
        raise AssertionError(f"the engine was still busy after {max_passes} passes")

    def deliveries(self, plugin: str | None = None) -> list[tuple[str, str, str]]:
        """The delivery ledger as (plugin, hook, status), optionally of one plugin."""
        rows = self.store.deliveries()
        return [(r.plugin, r.hook, r.status) for r in rows
                if plugin is None or r.plugin == plugin]

    def context(self, plugin: str = "test", settings: BaseModel | None = None,
                app: App | None = None) -> HookContext:
        """The HookContext the engine would give ``plugin``, on the test's real store.

        ``settings`` replaces the validated settings (handy for a unit test of one hook).
        """
        from dataclasses import replace

        app = app or self.app()
        ctx = app.plugin_context(plugin)
        return replace(ctx, settings=settings) if settings is not None else ctx

    def event(self, hook: str = "on_review_scheduled", action: str = "scheduled",
              **overrides: Any) -> LifecycleEvent:
        """A realistic LifecycleEvent with synthetic data (``ehcbridge.testing.make_event``)."""
        from ehcbridge.testing import make_event

        return make_event(hook, action, **overrides)


@pytest.fixture
def ehc_now() -> datetime:
    """The fixed instant tests run at (override this fixture to choose another)."""
    return DEFAULT_NOW


@pytest.fixture
def ehc_store(tmp_path: Path) -> Iterator[Store]:
    """A real store on a temporary SQLite file, migrated to the current schema."""
    from ehcbridge.store import Store

    store = Store(f"sqlite:///{(tmp_path / 'ehcbridge.sqlite3').as_posix()}")
    yield store
    store.close()


@pytest.fixture
def ehc_outbox(monkeypatch: pytest.MonkeyPatch) -> Outbox:
    """Every email sent through ``ehcbridge.mail`` during the test, whatever the transport."""
    from ehcbridge import mail

    outbox = Outbox()
    monkeypatch.setattr(mail, "_write_outbox",
                        lambda message, folder: outbox.messages.append(message))
    monkeypatch.setattr(mail, "_send_smtp",
                        lambda message, settings: outbox.messages.append(message))
    return outbox


@pytest.fixture
def ehc(ehc_now: datetime, ehc_store: Store, ehc_outbox: Outbox, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """A real store, a fixed clock, a captured outbox and the engine, for one test."""
    # Settings come from the test, never from the developer's ehcbridge.toml or environment.
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("EHCBRIDGE_") and not name.startswith("EHCBRIDGE_TEST_"):
            monkeypatch.delenv(name)
    harness = Harness(now=ehc_now, store=ehc_store, outbox=ehc_outbox, folder=tmp_path)
    yield harness
    for app in harness.apps:
        app._store = None  # the store fixture closes the shared store
