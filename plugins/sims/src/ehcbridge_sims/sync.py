"""Keep the MIS snapshot in step and tell the core what changed.

The sims plugin supplies the readers (CTF files, the aggregator API, the drop folder); the core's
MIS kit (``ehcbridge.mis``) compares with the stored snapshot, applies the changes the core must
see (idempotent: pupil fields, review flags, parent invitees) and finally stores the new snapshot
in one ``set_state_many`` call. A failure before that call leaves the old snapshot, so the next
run finds the same differences and applies them again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ehcbridge import NotConfigured, mis
from ehcbridge.events import HookContext
from ehcbridge.formats import DEFAULT_LIMITS, Limits
from ehcbridge.mis import (  # the MIS kit: records, diff, flags; re-exported for callers
    FLAG_EARLY,
    FLAG_LAC,
    FLAG_PFA,
    FLAG_SEN,
    PUPIL,
    Batch,
    Change,
    SyncReport,
)

from .ctf import CtfError, Problem, file_sha256, read_ctf

__all__ = ["FLAG_EARLY", "FLAG_LAC", "FLAG_PFA", "FLAG_SEN", "PUPIL", "Batch", "Change",
           "SyncReport", "lookup", "scheduled_drop", "scheduled_sync", "sync_api", "sync_files"]
SCHOOL = "school:"
CTF_FILE = "ctf:file:"
WATERMARK = "api:watermark:"
# Re-read a little before the last run started: overlapping is harmless, a gap loses changes.
WATERMARK_MARGIN = timedelta(minutes=5)

Progress = Callable[[int, int], None]


def _settings(ctx: HookContext) -> Any:
    from ehcbridge.plugin_settings import settings_of

    from . import SimsSettings

    return settings_of(ctx, SimsSettings, require=False)


def _now_iso(ctx: HookContext) -> str:
    return ctx.clock.now().isoformat(timespec="seconds")


# CTF files ------------------------------------------------------------------------------------


def sync_files(
    paths: Iterable[Path | str],
    ctx: HookContext,
    dry_run: bool = False,
    progress: Progress | None = None,
    relink: bool = False,
) -> SyncReport:
    """Import CTF files; raise CtfError (and write nothing) if any file must be refused.

    ``relink`` re-sends every pupil and parent to the core, not only the changes (for plans
    created since the last sync).
    """
    report = SyncReport(source="ctf", dry_run=dry_run)
    batches: dict[str, Batch] = {}
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise CtfError(f"{path}: no such file")
        sha = file_sha256(path)
        report.files.append(path.name)
        known = ctx.store.get_state(CTF_FILE + sha)
        last = (ctx.store.get_state(SCHOOL + known["school"]) or {}) if known else {}
        if known and not relink and last.get("sha256") == sha:
            # The very file imported last for this school: nothing can have changed.
            report.unchanged += int(known.get("pupils", 0))
            report.skipped += int(known.get("skipped", 0))
            continue
        ctf = read_ctf(path, progress=progress, limits=_limits(ctx))
        batch = batches.setdefault(
            ctf.header.school_key, Batch(school=ctf.header.school_key, source="ctf", full=True)
        )
        # A partial or leavers file says nothing about the pupils it leaves out.
        batch.full = batch.full and ctf.full
        for pupil in ctf.pupils:
            batch.pupils[pupil.upn] = pupil
        _note_problems(report, batch, ctf.problems)
        batch.meta[CTF_FILE + ctf.sha256] = {
            "school": ctf.header.school_key, "file": path.name,
            "pupils": len(ctf.pupils), "skipped": sum(p.skipped for p in ctf.problems),
        }
        batch.meta[SCHOOL + ctf.header.school_key] = {
            "source": "ctf", "name": ctf.header.school_name, "urn": ctf.header.urn,
            "ctf_version": ctf.header.version, "exported_at": ctf.header.datetime,
            "sha256": ctf.sha256, "file": path.name,
        }
    mis.apply(batches.values(), ctx, report, relink=relink)
    return report


def _limits(ctx: HookContext) -> Limits:
    """The core's [limits] settings (the defaults outside an application)."""
    limits = ctx.extras.get("limits")
    return limits if isinstance(limits, Limits) else DEFAULT_LIMITS


def _note_problems(report: SyncReport, batch: Batch, problems: list[Problem]) -> None:
    from .upn import InvalidUPN, validate_upn

    for problem in problems:
        report.problems.append(problem)
        if problem.skipped:
            report.skipped += 1
            with suppress(InvalidUPN):  # an invalid UPN is not a pupil we could have known
                batch.kept.add(validate_upn(problem.upn))


# Aggregator API -------------------------------------------------------------------------------


def sync_api(
    ctx: HookContext,
    dry_run: bool = False,
    client: Any = None,
    progress: Progress | None = None,
    relink: bool = False,
) -> SyncReport:
    """Sync every configured school from the aggregator API (incremental after the first run).

    ``relink`` reads every student (not only changes) and re-sends them all to the core.
    """
    from .api import AggregatorClient, student_to_pupil

    settings = _settings(ctx)
    if not settings.api_configured:
        raise NotConfigured(
            "the plugins.sims settings need api_url, token and school_ids for --api")
    own_client = client is None
    if client is None:
        client = AggregatorClient(
            api_url=str(settings.api_url), token=settings.token.get_secret_value(),
            page_size=settings.page_size,
        )
    report = SyncReport(source="api", dry_run=dry_run)
    started = ctx.clock.now().astimezone(UTC)
    batches: list[Batch] = []
    try:
        for school_id in settings.school_ids:
            mark = ctx.store.get_state(WATERMARK + school_id)
            since = datetime.fromisoformat(mark) if mark else None
            school = client.school(school_id)
            urn = str(school["urn"]) if school.get("urn") else None
            if relink:
                since = None
            batch = Batch(school=f"api:{school_id}", source="api", full=since is None)
            problems: list[Problem] = []
            for number, student in enumerate(client.students(school_id, since), start=1):
                for item in student_to_pupil(student, f"school {school_id}", number, urn):
                    if isinstance(item, Problem):
                        problems.append(item)
                    else:
                        batch.pupils[item.upn] = item
                if progress is not None:
                    progress(number, 0)
            _note_problems(report, batch, problems)
            contacts = [c for p in batch.pupils.values() for c in p.contacts]
            if len(contacts) >= 5 and not any(c.email for c in contacts):
                report.warnings.append(
                    f"school {school_id}: none of {len(contacts)} contacts has an email "
                    "address; check that the API returns contact_details with contacts")
            batch.meta[WATERMARK + school_id] = (started - WATERMARK_MARGIN).isoformat()
            batch.meta[SCHOOL + batch.school] = {
                "source": "api", "name": school.get("name"), "urn": urn,
                "synced_at": _now_iso(ctx), "full": batch.full,
            }
            batches.append(batch)
    finally:
        if own_client:
            client.close()
    mis.apply(batches, ctx, report, relink=relink)
    return report


# Drop folder ----------------------------------------------------------------------------------

SUFFIXES = {".xml", ".ctf"}
STALE_CLAIM = 600.0  # seconds before a file left in processing/ by a crash is tried again


@dataclass
class DropResult:
    """One file taken from the drop folder and where it went."""

    name: str
    moved_to: Path
    report: SyncReport | None = None
    error: str | None = None


def process_drop_folder(ctx: HookContext, min_age: float = 5.0) -> list[DropResult]:
    """Import each CTF waiting in ``drop_dir`` and move it to ``done/`` or ``failed/``.

    A file is claimed by renaming it into ``processing/`` first, so two runs (the nightly job and
    the poll) never import the same file twice. ``min_age`` skips files still being copied.
    """
    settings = _settings(ctx)
    drop: Path | None = settings.drop_dir
    if drop is None:
        return []
    if not drop.is_dir():
        raise NotConfigured(f"plugins.sims drop_dir {drop} is not a folder")
    processing, done, failed = (drop / name for name in ("processing", "done", "failed"))
    for folder in (processing, done, failed):
        folder.mkdir(exist_ok=True)
    now = time.time()
    for stuck in processing.iterdir():
        if stuck.is_file() and now - stuck.stat().st_mtime > STALE_CLAIM:
            os.replace(stuck, drop / stuck.name)
    results = []
    for path in sorted(drop.iterdir()):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        if now - path.stat().st_mtime < min_age:
            continue
        claimed = processing / path.name
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            continue  # another run took it
        results.append(_import_dropped(ctx, claimed, drop, done, failed))
    return results


def _import_dropped(ctx: HookContext, claimed: Path, drop: Path, done: Path,
                    failed: Path) -> DropResult:
    stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%S")
    name = claimed.name
    try:
        report = sync_files([claimed], ctx)
    except CtfError as exc:
        target = failed / f"{stamp}-{name}"
        os.replace(claimed, target)
        message = str(exc).replace(str(claimed.parent) + os.sep, "")
        target.with_name(target.name + ".error.txt").write_text(message + "\n", encoding="utf-8")
        ctx.logger.warning("sims: drop folder file refused: %s", message)
        return DropResult(name, target, error=message)
    except BaseException:
        os.replace(claimed, drop / name)  # not the file's fault: try again next time
        raise
    target = done / f"{stamp}-{name}"
    os.replace(claimed, target)
    ctx.logger.info("sims: imported %s from the drop folder: %s", name, report.summary())
    for problem in report.problems:
        ctx.logger.warning("sims: %s", problem.redacted())
    return DropResult(name, target, report=report)


# Scheduled jobs -------------------------------------------------------------------------------


def scheduled_sync(ctx: HookContext) -> SyncReport | None:
    """The nightly job: the aggregator API when configured, then the drop folder."""
    settings = _settings(ctx)
    if not settings.enabled:
        return None
    report = None
    if settings.source == "api" and settings.api_configured:
        report = sync_api(ctx)
        ctx.logger.info("sims: API sync: %s", report.summary())
        for warning in report.warnings:
            ctx.logger.warning("sims: %s", warning)
        for problem in report.problems:
            ctx.logger.warning("sims: %s", problem.redacted())
    if settings.drop_dir is not None:
        process_drop_folder(ctx)
    return report


def scheduled_drop(ctx: HookContext) -> list[DropResult]:
    """The frequent poll of the drop folder."""
    settings = _settings(ctx)
    if not settings.enabled or settings.drop_dir is None:
        return []
    return process_drop_folder(ctx)


# Lookup ---------------------------------------------------------------------------------------


def lookup(upn: str, ctx: HookContext) -> Any:
    """The PupilRecord the MIS last gave for this UPN, or None (unknown or left the school)."""
    return mis.lookup(upn, ctx)
