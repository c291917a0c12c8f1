"""Running ehcbridge day to day: progress display, the engine command, doctor and its exit codes.

Progress goes to stderr: a rich bar when stderr is a terminal, otherwise a plain line now and
then (so a log collected by systemd shows that long work is moving), and nothing at all unless
a command turned the display on (library callers and tests see no output).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.engine import Engine, TickReport

# Exit codes of `ehcbridge doctor` (documented in docs/user-guide.md).
EXIT_OK = 0  # every check ok (warnings and "not configured" allowed)
EXIT_CHECK_FAILED = 1  # a plugin failed to load or one of its checks failed
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_STORE = 3  # the store is unreachable or its schema cannot be read

PLAIN_EVERY = 5.0  # seconds between plain progress lines when stderr is not a terminal
_DISPLAY = {"on": False}


def enable_progress(on: bool = True) -> None:
    """Let :func:`progress` draw (the CLI turns it on; library use stays quiet)."""
    _DISPLAY["on"] = on


class Progress:
    """One piece of long work: ``advance`` or ``update`` it; drawn as a bar or plain lines."""

    def __init__(self, label: str, total: int | None, stream: Any) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream
        self._bar: Any = None
        self._task: Any = None
        self._started = time.monotonic()
        self._last_line = self._started

    @property
    def shown(self) -> bool:
        """True when something is drawn (the CLI enabled the display)."""
        return self._stream is not None

    def start(self) -> None:
        """Begin drawing."""
        if self._stream is None:
            return
        if self._stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            # The label names a file, which may hold square brackets: not markup.
            self._bar = RichProgress(TextColumn("{task.description}", markup=False), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(),
                                     console=Console(file=self._stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)

    def update(self, done: int, total: int | None = None) -> None:
        """Set how much is done (and the total, when it became known or grew)."""
        self.done = done
        if total is not None:
            self.total = total
        if self._stream is None:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            self._line()

    def advance(self, step: int = 1) -> None:
        """Add ``step`` to what is done."""
        self.update(self.done + step)

    def _line(self) -> None:
        of = f"/{self.total:,}" if self.total else ""
        self._stream.write(f"{self.label}: {self.done:,}{of} "
                           f"({time.monotonic() - self._started:.0f} s)\n")
        self._stream.flush()

    def stop(self) -> None:
        """Finish drawing."""
        if self._bar is not None:
            self._bar.stop()
        elif self._stream is not None and time.monotonic() - self._started >= PLAIN_EVERY:
            self._line()  # long work that printed lines ends with its final figure


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Progress]:
    """A progress display for ``label`` (silent unless the CLI enabled the display)."""
    bar = Progress(label, total, sys.stderr if _DISPLAY["on"] else None)
    bar.start()
    try:
        yield bar
    finally:
        bar.stop()


def reporter(label: str) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback drawing a display that appears with the first call; for
    code that reports progress from deep inside (an import's chunks)."""
    state: dict[str, Progress] = {}

    def report(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = Progress(label, total, sys.stderr if _DISPLAY["on"] else None)
            bar.start()
        bar.update(done, total)
        if total and done >= total:
            bar.stop()

    return report


# The engine command ---------------------------------------------------------------------------


def report_json(engine: Engine, report: TickReport, seconds: float) -> dict[str, Any]:
    """``run --once --json``: what the pass did."""
    return {"worker": engine.worker, "timers_fired": report.timers_fired,
            "deadlines": report.deadlines,
            "events_dispatched": report.events_dispatched,
            "deliveries": dict(sorted(report.attempts.items())),
            "seconds": round(seconds, 3)}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_engine(engine: Engine, *, once: bool, as_json: bool, echo: Callable[..., Any]) -> None:
    """``ehcbridge run``: take the engine lock (SQLite), then one pass or ticks until stopped."""
    from ehcbridge.store.queue import EngineBusy

    try:
        engine.acquire()
    except EngineBusy as exc:
        raise click.ClickException(str(exc)) from None
    signal.signal(signal.SIGTERM, _interrupt)  # systemd's stop: claims go back at once
    try:
        if once:
            started = time.monotonic()
            with progress("delivering") as bar:
                queue, now = engine.queue, engine.app.clock.now()
                last = {"at": 0.0}

                def show(done: int, _total: int) -> None:
                    if time.monotonic() - last["at"] >= 0.5:  # a count query, not per call
                        last["at"] = time.monotonic()
                        bar.update(done, done + queue.count_due(now))

                if bar.shown:
                    engine.progress = show
                report = engine.run_once(now)
                bar.update(sum(report.attempts.values()), sum(report.attempts.values()))
            if as_json:
                echo(json.dumps(report_json(engine, report, time.monotonic() - started),
                                indent=2))
                return
            statuses = ", ".join(f"{n} {s}" for s, n in sorted(report.attempts.items())) \
                or "none"
            echo(f"timers fired: {report.timers_fired}; duties at risk or missed: "
                 f"{report.deadlines}; events dispatched: "
                 f"{report.events_dispatched}; deliveries: {statuses}")
            return
        try:
            engine.run_forever()
        except KeyboardInterrupt:
            echo("stopped")
    finally:
        engine.release()


# Listings -------------------------------------------------------------------------------------

RICH_ROWS = 200  # above this a rich table takes seconds to lay out; plain columns take ms


def echo_columns(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]],
                 echo: Callable[..., Any]) -> bool:
    """Print a long listing as plain aligned columns and return True; False (nothing printed)
    when the listing is short enough for a rich table."""
    if len(rows) <= RICH_ROWS:
        return False
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*headers).rstrip(), "  ".join("-" * w for w in widths)]
    out += [line.format(*r).rstrip() for r in rows]
    echo("\n".join(out))
    return True


# doctor -------------------------------------------------------------------------------------


def doctor_results(app: App) -> tuple[list[dict[str, str]], int]:
    """Every check as rows (plugin, check, status, detail) and the exit code they mean."""
    rows: list[dict[str, str]] = []
    code = EXIT_OK
    try:
        store = app.store
        revision = store.revision()
        rows.append(_row("core", "store", "ok", f"{store.backend}, schema {revision}"))
    except Exception as exc:  # PostgreSQL down, bad URL, unreadable file
        app._store = None
        rows.append(_row("core", "store", "failed", _store_problem(exc)))
        rows.append(_row("core", "plugins", "not run",
                         "plugin checks need the store; fix it first"))
        return rows, EXIT_STORE
    for plugin, result in app.doctor():
        rows.append(_row(plugin, result.name, result.status, result.detail))
        if result.status == "failed":
            code = EXIT_CHECK_FAILED
    from ehcbridge.store.queue import last_tick

    tick = last_tick(app.store)
    rows.append(_row("core", "engine", "ok" if tick else "not run",
                     f"last pass {tick.isoformat(timespec='seconds')}" if tick
                     else "no engine pass recorded yet"))
    return rows, code


def _row(plugin: str, check: str, status: str, detail: str) -> dict[str, str]:
    return {"plugin": plugin, "check": check, "status": status, "detail": detail}


def _store_problem(exc: BaseException) -> str:
    """What went wrong reaching the store, in one line without the driver's full text (which
    can hold connection details)."""
    from ehcbridge.redact import redact

    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return redact(f"cannot open the store: {type(orig).__name__}: {first}")[:300]


def doctor(app: App, as_json: bool, echo: Callable[..., Any]) -> int:
    """``ehcbridge doctor``: print the checks and return the exit code."""
    rows, code = doctor_results(app)
    if as_json:
        echo(json.dumps({"exit_code": code, "checks": rows}, indent=2))
        return code
    from rich.table import Table
    from rich.text import Text

    table = Table("plugin", "check", "status", "detail")
    for r in rows:  # literal text: the console prints with markup off (cli._console)
        colour = {"ok": "green", "failed": "red", "warning": "yellow"}.get(r["status"], "")
        table.add_row(r["plugin"], r["check"], Text(r["status"], style=colour), r["detail"])
    from ehcbridge.cli import _console

    _console().print(table)
    return code


# Settings hygiene -----------------------------------------------------------------------------


def unknown_plugin_sections(app: App) -> list[str]:
    """Warnings for ``[plugins.<name>]`` sections that match no installed plugin."""
    known = sorted(app.plugins.records)
    where = str(app.settings.config_path) if app.settings.config_path else "settings"
    return [f"warning: {where}: [plugins.{name}] matches no installed plugin (misspelt?); "
            f"installed: {', '.join(known) or 'none'}"
            for name in sorted(app.settings.plugins) if name not in app.plugins.records]


def quiet_alembic(verbose: int) -> None:
    """Alembic's migration lines only at -vv (debug)."""
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)


def create_private_file(path: Path) -> None:
    """Create ``path`` (empty, mode 0600) and any missing folders above it (mode 0700), leaving
    an existing file and existing folders as they are: they hold children's data."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask, never widened
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def export_everything(app: App, case_id: str
                      ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Everything held about one case for a subject access request: the store's rows by table
    and each plugin's own records (``export_case``). Returns the document and (plugin, error
    type) for each plugin that failed to answer."""
    from ehcbridge.store.erase import export_case

    tables = export_case(app.store, case_id)  # StoreError for an unknown case, before plugins
    app.start_plugins()
    held: dict[str, list[dict[str, Any]]] = {}
    failed: list[tuple[str, str]] = []
    for outcome in app.plugins.call_each("export_case", case_id=case_id,
                                         ctx=app.plugin_context):
        if outcome.error is not None:
            failed.append((outcome.plugin, type(outcome.error).__name__))
        elif outcome.result:
            held[outcome.plugin] = list(outcome.result)
    document = {"case_id": case_id, "exported_at": app.clock.now().isoformat(),
                "tables": tables, "plugins": dict(sorted(held.items()))}
    return document, failed


def erase_and_forget(app: App, case_ids: list[str], ceased_before: str | None = None,
                     wait: float = 0.0) -> tuple[int, list[tuple[str, str]]]:
    """Erase the cases from the store (all or nothing), then have each plugin forget them
    (``forget_cases``); an audit line records how many. While an engine worker is making a
    delivery of one of the cases, try again each second for up to ``wait`` seconds (then
    CasesBusy). Returns the store rows deleted and (plugin, error type) for each plugin that
    failed."""
    import time

    from ehcbridge.store.erase import CasesBusy, erase_cases

    give_up = time.monotonic() + wait
    while True:
        try:
            counts = erase_cases(app.store, case_ids)
            break
        except CasesBusy:
            if time.monotonic() >= give_up:
                raise
            time.sleep(min(1.0, max(0.0, give_up - time.monotonic())))
    # The store's own rows are gone; each plugin then forgets what only it can find.
    app.start_plugins()
    failed = [(o.plugin, type(o.error).__name__)
              for o in app.plugins.call_each("forget_cases", case_ids=list(case_ids),
                                             ctx=app.plugin_context) if o.error is not None]
    app.store.audit("core", None, "cases.erased",
                    {"cases": len(case_ids), "ceased_before": ceased_before})
    return sum(counts.values()), failed
