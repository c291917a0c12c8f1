"""Drop folder, scheduled jobs, settings, doctor checks and the CLI command."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import ehcbridge_sims
import pytest
from click.testing import CliRunner
from ctfgen import BILLION_LAUGHS, pupil, upn_for, write_ctf
from ehcbridge.testing import ContextApp, MemoryPluginStore, make_context
from ehcbridge_sims import SimsSettings
from ehcbridge_sims.cli import run_sync, show_status, sims
from ehcbridge_sims.doctor import run_checks
from ehcbridge_sims.sync import process_drop_folder, scheduled_drop, scheduled_sync
from pydantic import ValidationError
from rich.console import Console
from sims_fakes import TOKEN, FakeMis, api_settings, student


def aged(path: Path, seconds: float = 60) -> Path:
    """Make a file look as if it was copied a while ago."""
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def drop_ctx(store: MemoryPluginStore, drop: Path, **settings: Any) -> Any:
    return make_context("sims", SimsSettings(drop_dir=drop, **settings), store=store)


def test_drop_folder_moves_files_to_done_or_failed(store: MemoryPluginStore,
                                                   tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    aged(write_ctf(drop / "good.XML", 3))
    (drop / "bomb.xml").write_text(BILLION_LAUGHS)
    aged(drop / "bomb.xml")
    aged(write_ctf(drop / "fresh.xml", 2), seconds=0)  # still being copied
    (drop / "notes.txt").write_text("not a CTF")
    ctx = drop_ctx(store, drop)
    results = {r.name: r for r in scheduled_drop(ctx)}
    assert set(results) == {"good.XML", "bomb.xml"}
    assert results["good.XML"].report.added == 3  # type: ignore[union-attr]
    assert results["good.XML"].moved_to.parent == drop / "done"
    assert results["bomb.xml"].moved_to.parent == drop / "failed"
    error = Path(str(results["bomb.xml"].moved_to) + ".error.txt").read_text()
    assert "bomb.xml: refused, the file declares a DTD" in error
    assert sorted(p.name for p in drop.iterdir() if p.is_file()) == ["fresh.xml", "notes.txt"]
    assert len([k for k in store.state if k.startswith("pupil:")]) == 3
    # The same export dropped again the next night changes nothing.
    aged(write_ctf(drop / "good-again.xml", 3))
    (again,) = process_drop_folder(ctx)
    assert again.report is not None
    assert again.report.summary() == "added 0, updated 0, unchanged 3, left 0"


def test_stale_claims_are_retried(store: MemoryPluginStore, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    (drop / "processing").mkdir(parents=True)
    aged(write_ctf(drop / "processing" / "crashed.xml", 2), seconds=3600)
    (result,) = process_drop_folder(drop_ctx(store, drop))
    assert result.name == "crashed.xml" and result.report is not None
    assert result.report.added == 2


def test_scheduled_sync_reads_api_and_drop_folder(fake_mis: FakeMis, store: MemoryPluginStore,
                                                  tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    aged(write_ctf(drop / "other-school.xml", [pupil(40)], urn="177777"))
    fake_mis.students["A1930499544"] = [student(0), student(1)]
    ctx = make_context("sims", api_settings(fake_mis, drop_dir=drop), store=store)
    report = scheduled_sync(ctx)
    assert report is not None and report.added == 2
    assert ehcbridge_sims.lookup_pupil(upn_for(40), ctx) is not None
    assert [p.name.endswith("-other-school.xml") for p in (drop / "done").iterdir()] == [True]


def test_settings_and_schedules(tmp_path: Path, monkeypatch: Any) -> None:
    with pytest.raises(ValidationError, match="cron"):
        SimsSettings(schedule="every night")
    with pytest.raises(ValidationError, match="https"):
        SimsSettings(api_url="ftp://mis")
    with pytest.raises(ValidationError):
        SimsSettings(shedule="0 2 * * *")  # typo: unknown keys are refused
    settings = SimsSettings(token="s3cret", drop_dir=tmp_path, schedule="30 1 * * *")
    assert "s3cret" not in repr(settings)
    registered: list[tuple[str, str, Any]] = []
    ehcbridge_sims.register_schedules(lambda name, cron, func: registered.append(
        (name, cron, func)), make_context("sims", settings))
    assert [(n, c) for n, c, _ in registered] == [("sims-sync", "30 1 * * *"),
                                                  ("sims-drop-folder", "* * * * *")]
    models: list[type] = []
    ehcbridge_sims.register_settings(models.append)
    assert models == [SimsSettings]


def test_doctor_lines(fake_mis: FakeMis, store: MemoryPluginStore, tmp_path: Path) -> None:
    lines = run_checks(make_context("sims", SimsSettings(), store=store))
    assert [(r.name, r.status) for r in lines] == [("sims: drop folder", "not configured"),
                                                   ("sims: snapshot", "warning")]
    lines = run_checks(make_context("sims", SimsSettings(source="api"), store=store))
    assert lines[0].status == "not configured"
    fake_mis.students["A1930499544"] = [student(0)]
    ok = ehcbridge_sims.check(make_context("sims", api_settings(fake_mis, drop_dir=tmp_path),
                                           store=store))
    assert [(r.name, r.status) for r in ok][:2] == [
        ("sims: MIS API school A1930499544", "ok"), ("sims: drop folder", "ok")]
    bad = run_checks(make_context("sims", api_settings(fake_mis, token="nope",
                                                       drop_dir=tmp_path / "missing"),
                                  store=store))
    assert [r.status for r in bad][:2] == ["failed", "failed"]
    assert "refused the token" in bad[0].detail and "nope" not in bad[0].detail


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200), out


def test_run_sync_prints_counts_and_problems(ctx: Any, tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "a.xml", [pupil(0), pupil(1, upn="B801200005002")])
    con, out = console()
    assert run_sync(ctx, [path], api=False, dry_run=False, console=con) == 0
    text = out.getvalue()
    assert "pupil 2 (UPN B801200005002), column UPN: UPN check letter does not match" in text
    assert "added 1, updated 0, unchanged 0, left 0, skipped 1" in text
    assert "1 parent invitee(s) added" in text
    con, out = console()
    show_status(ctx, con)
    assert "1 pupils on roll" in out.getvalue() and "urn:100001" in out.getvalue()


def test_run_sync_refuses_a_bomb_and_usage_errors(ctx: Any, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(BILLION_LAUGHS)
    con, out = console()
    assert run_sync(ctx, [bomb], api=False, dry_run=False, console=con) == 1
    assert "Refused: bomb.xml: refused" in out.getvalue()
    assert run_sync(ctx, [bomb], api=True, dry_run=False, console=con) == 2
    assert run_sync(ctx, [], api=False, dry_run=False, console=con) == 2


def test_cli_command_through_click(ctx: Any, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr("ehcbridge.invocation.current_app", lambda: ContextApp(ctx))
    path = write_ctf(tmp_path / "a.xml", 3)
    runner = CliRunner()
    dry = runner.invoke(sims, ["sync", "--file", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"added    {upn_for(0)}" in dry.output
    assert "added 3, updated 0, unchanged 0, left 0 (dry run: nothing written)" in dry.output
    assert not ctx.store.state
    real = runner.invoke(sims, ["sync", "--file", str(path)])
    assert "added 3" in real.output
    again = runner.invoke(sims, ["sync", "--file", str(path)])
    assert "added 0, updated 0, unchanged 3, left 0" in again.output
    missing = runner.invoke(sims, ["sync", "--file", str(tmp_path / "nope.xml")])
    assert missing.exit_code == 1 and "no such file" in missing.output


def test_cli_api_sync(fake_mis: FakeMis, store: MemoryPluginStore) -> None:
    fake_mis.students["A1930499544"] = [student(0)]
    ctx = make_context("sims", api_settings(fake_mis), store=store)
    con, out = console()
    assert run_sync(ctx, [], api=True, dry_run=False, console=con) == 0
    assert "added 1" in out.getvalue()
    assert TOKEN not in out.getvalue()


def test_plain_sync_uses_the_drop_folder(store: MemoryPluginStore, tmp_path: Path) -> None:
    write_ctf(tmp_path / "a.xml", 2)
    ctx = drop_ctx(store, tmp_path)
    con, out = console()
    assert run_sync(ctx, [], api=False, dry_run=True, console=con) == 0
    assert "added 2" in out.getvalue() and "dry run" in out.getvalue()
    assert (tmp_path / "a.xml").exists() and not store.state
    assert run_sync(ctx, [], api=False, dry_run=False, console=con) == 0
    assert not (tmp_path / "a.xml").exists() and len(store.state) > 2


def test_hooks_match_the_specs_and_load_lazily() -> None:
    import subprocess

    import pluggy
    from ehcbridge import hookspecs

    pm = pluggy.PluginManager("ehcbridge")
    pm.add_hookspecs(hookspecs)
    pm.register(ehcbridge_sims, "sims")  # raises on a misspelt hook or argument
    assert {h.name for h in pm.get_hookcallers(ehcbridge_sims) or []} == {
        "check", "lookup_pupil", "register_commands", "register_schedules",
        "register_settings"}
    code = ("import sys, ehcbridge_sims; print(sorted(m for m in ('httpx', 'defusedxml', "
            "'stdnum', 'tenacity', 'croniter', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
