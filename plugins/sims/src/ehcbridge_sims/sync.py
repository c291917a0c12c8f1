"""Keep the MIS snapshot in step and tell the core what changed.

A sync reads and validates everything first, then compares with the stored snapshot, applies the
changes the core must see (idempotent: pupil fields, review flags, parent invitees) and finally
stores the new snapshot in one ``set_state_many`` call. A failure before that call leaves the old
snapshot, so the next run finds the same differences and applies them again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ehcbridge import NotConfigured
from ehcbridge.events import HookContext
from ehcbridge.models import Invitee, Role

from .ctf import CtfError, Problem, file_sha256, read_ctf
from .records import MisPupil

PUPIL = "pupil:"
SCHOOL = "school:"
CTF_FILE = "ctf:file:"
WATERMARK = "api:watermark:"
# Re-read a little before the last run started: overlapping is harmless, a gap loses changes.
WATERMARK_MARGIN = timedelta(minutes=5)

FLAG_PFA = "preparing_for_adulthood"
FLAG_EARLY = "early_review_suggested"
FLAG_SEN = "sen_provision_changed"

Progress = Callable[[int, int], None]


@dataclass
class Change:
    """One pupil that was added, updated or left, with what changed and what follows from it."""

    upn: str
    kind: str  # added, updated, left
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    flags: list[tuple[str, str]] = field(default_factory=list)
    new_parents: list[tuple[str | None, str]] = field(default_factory=list)  # (name, email)

    def describe(self) -> str:
        """A one-line account for ``--dry-run`` and the CLI."""
        parts = [f"{self.kind:<8} {self.upn}"]
        for name, (old, new) in self.fields.items():
            if name == "contacts":
                parts.append("contacts changed")
            elif name in {"forename", "surname", "dob"}:
                parts.append(f"{name} changed")
            else:
                parts.append(f"{name} {old!r} -> {new!r}")
        if self.new_parents:
            parts.append(f"{len(self.new_parents)} new parent email(s)")
        parts += [f"flag {flag}" for flag, _ in self.flags]
        return "; ".join(parts)


@dataclass
class SyncReport:
    """What a sync found and did."""

    source: str
    dry_run: bool = False
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    left: int = 0
    skipped: int = 0
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    flags_raised: int = 0
    invitees_added: int = 0

    def summary(self) -> str:
        """``added 1, updated 2, unchanged 3, left 0`` (and skipped pupils, if any)."""
        text = (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"left {self.left}"
        )
        if self.skipped:
            text += f", skipped {self.skipped}"
        if self.dry_run:
            text += " (dry run: nothing written)"
        return text

    def merge(self, other: SyncReport) -> None:
        """Add another report's counts to this one."""
        for name in ("added", "updated", "unchanged", "left", "skipped", "flags_raised",
                     "invitees_added"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.changes += other.changes
        self.problems += other.problems
        self.warnings += other.warnings
        self.files += other.files


@dataclass
class Batch:
    """The pupils one school sent in one sync."""

    school: str
    source: str  # "ctf" or "api"
    full: bool  # a full list: pupils of this school not in it have left
    pupils: dict[str, MisPupil] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)  # valid UPNs skipped for a field error
    meta: dict[str, Any] = field(default_factory=dict)


def _settings(ctx: HookContext) -> Any:
    from . import SimsSettings

    settings = ctx.settings
    return settings if isinstance(settings, SimsSettings) else SimsSettings()


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
        ctf = read_ctf(path, progress=progress)
        batch = batches.setdefault(
            ctf.header.school_key, Batch(school=ctf.header.school_key, source="ctf", full=True)
        )
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
    _apply(batches.values(), ctx, report, relink=relink)
    return report


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
    _apply(batches, ctx, report, relink=relink)
    return report


# Diff and apply -------------------------------------------------------------------------------


def _diff(old: MisPupil, new: MisPupil) -> dict[str, tuple[Any, Any]]:
    old_data, new_data = old.data(), new.data()
    return {k: (old_data[k], v) for k, v in new_data.items() if old_data.get(k) != v}


def _consequences(change: Change, old: MisPupil | None, new: MisPupil) -> None:
    if old is not None:
        if (old.nc_year is None or old.nc_year < 9) and (new.nc_year or 0) >= 9:
            change.flags.append(
                (FLAG_PFA, f"MIS: now in Year {new.nc_year}; the review must cover preparing "
                           "for adulthood")
            )
        if old.school_urn and new.school_urn and old.school_urn != new.school_urn:
            change.flags.append(
                (FLAG_EARLY, f"MIS: school changed (URN {old.school_urn} -> {new.school_urn}); "
                             "consider an early review ('ehcbridge review early CASE --reason "
                             "...')")
            )
        if old.sen_provision == "E" and new.sen_provision in {"N", "K"}:
            change.flags.append(
                (FLAG_SEN, f"MIS: SEN provision is now {new.sen_provision} (was E, EHC plan)")
            )
    before = old.parent_emails() if old is not None else {}
    for email, contact in new.parent_emails().items():
        if email not in before:
            change.new_parents.append((contact.display_name, contact.email or email))


def _apply(batches: Iterable[Batch], ctx: HookContext, report: SyncReport,
           relink: bool = False) -> None:
    store = ctx.store
    now = _now_iso(ctx)
    batches = list(batches)
    if not batches:
        return
    previous: dict[str, dict[str, Any]] = {
        key[len(PUPIL):]: value for key, value in store.state_items(PUPIL)
    }
    writes: dict[str, Any] = {}
    to_core: dict[str, MisPupil] = {}
    to_reviews: dict[str, tuple[MisPupil, Change]] = {}
    for batch in batches:
        for upn, pupil in batch.pupils.items():
            stored = previous.get(upn)
            old = None if stored is None or stored.get("left") else MisPupil.from_data(
                stored["data"])
            if old is None:
                change: Change | None = Change(upn, "added")
                report.added += 1
            elif old == pupil and stored is not None and stored.get("school") == batch.school:
                change = None
                report.unchanged += 1
            else:
                change = Change(upn, "updated", fields=_diff(old, pupil))
                report.updated += 1
            if change is not None:
                _consequences(change, old, pupil)
                report.changes.append(change)
                writes[PUPIL + upn] = {
                    "source": batch.source, "school": batch.school, "data": pupil.data(),
                    "left": False, "updated_at": now,
                }
            if relink:
                # Re-send everything: plans created since the last sync get the MIS data and
                # every parent (the core matches invitees by role and email, so no duplicates).
                change = change or Change(upn, "unchanged")
                change.new_parents = [(c.display_name, c.email or e)
                                      for e, c in pupil.parent_emails().items()]
            if change is not None:
                to_core[upn] = pupil
                if change.flags or change.new_parents:
                    to_reviews[upn] = (pupil, change)
        if batch.full:
            for upn, stored in previous.items():
                if (stored.get("school") == batch.school and not stored.get("left")
                        and upn not in batch.pupils and upn not in batch.kept):
                    report.left += 1
                    report.changes.append(Change(upn, "left"))
                    writes[PUPIL + upn] = {**stored, "left": True, "updated_at": now}
        writes.update(batch.meta)
    if report.dry_run:
        return
    _update_core(store, to_core)
    for upn, reviews in _open_reviews(store, list(to_reviews)).items():
        pupil, change = to_reviews[upn]
        _tell_reviews(ctx, reviews, pupil, change, report)
    store.set_state_many(writes)


def _update_core(store: Any, pupils: dict[str, MisPupil]) -> None:
    """Send pupil fields to the core: in one call when the store offers a bulk method."""
    bulk = getattr(store, "update_pupils", None)
    if callable(bulk):
        bulk({upn: p.core_fields() for upn, p in pupils.items()})
        return
    for upn, pupil in pupils.items():
        store.update_pupil(upn, pupil.core_fields())


def _open_reviews(store: Any, upns: list[str]) -> dict[str, list[Any]]:
    """Open reviews per UPN: in one query when the store offers a bulk method."""
    bulk = getattr(store, "open_reviews_for_upns", None)
    if callable(bulk):
        found = bulk(upns)
        return {upn: list(found.get(upn, [])) for upn in upns}
    return {upn: store.open_reviews_for_upn(upn) for upn in upns}


def _tell_reviews(ctx: HookContext, reviews: list[Any], pupil: MisPupil, change: Change,
                  report: SyncReport) -> None:
    store = ctx.store
    for review in reviews:
        for flag, detail in change.flags:
            store.flag_review(review.case_id, flag, detail)
            store.audit(review.case_id, "sims.flag", {"flag": flag, "upn": pupil.upn})
            report.flags_raised += 1
        for name, email in change.new_parents:
            store.add_invitee(
                review.case_id, Invitee(role=Role.PARENT, name=name, email=email, source="mis")
            )
            store.audit(review.case_id, "sims.invitee", {"role": "parent", "upn": pupil.upn})
            report.invitees_added += 1


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
    from .upn import InvalidUPN, validate_upn

    try:
        key = validate_upn(upn)
    except InvalidUPN:
        return None
    stored = ctx.store.get_state(PUPIL + key)
    if not stored or stored.get("left"):
        return None
    return MisPupil.from_data(stored["data"]).to_record(source=f"sims:{stored.get('source')}")
