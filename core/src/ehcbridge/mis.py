"""The MIS kit: pupil and contact records, the diff against the stored snapshot, and what a
change means for the reviews (pupil fields, flags, parent invitees).

A connector for any MIS supplies only its reader: it turns the MIS's data into
:class:`MisPupil` records grouped in a :class:`Batch` per school, and calls :func:`apply`. The
kit compares them with the snapshot kept in the plugin's own state (``pupil:<UPN>`` keys),
updates the core's pupils, raises the flags a change calls for, adds parents with parental
responsibility to the pupil's open reviews and stores the new snapshot last, in one
``set_state_many``: a failure before then leaves the old snapshot, so the next run applies the
same changes again (every step is idempotent). :func:`lookup` answers ``lookup_pupil``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ehcbridge.events import HookContext, PluginStore, PupilRecord
from ehcbridge.formats.problems import RowProblem
from ehcbridge.models import Contact, Invitee, Pupil, Review, Role

PUPIL = "pupil:"

FLAG_PFA = "preparing_for_adulthood"
FLAG_EARLY = "early_review_suggested"
FLAG_SEN = "sen_provision_changed"
FLAG_LAC = "looked_after"


@dataclass(frozen=True)
class MisContact:
    """A pupil's contact as the MIS has it."""

    order: int | None = None
    title: str | None = None
    forename: str | None = None
    surname: str | None = None
    relationship: str | None = None
    parental_responsibility: bool = False
    email: str | None = None
    phone: str | None = None

    @property
    def display_name(self) -> str | None:
        """Title, forename and surname as one name, or None when the MIS has none."""
        name = " ".join(p for p in (self.title, self.forename, self.surname) if p)
        return name or None

    def data(self) -> dict[str, Any]:
        """JSON-able fields (written out: ``dataclasses.asdict`` deep-copies and is slow)."""
        return {
            "order": self.order, "title": self.title, "forename": self.forename,
            "surname": self.surname, "relationship": self.relationship,
            "parental_responsibility": self.parental_responsibility, "email": self.email,
            "phone": self.phone,
        }

    def to_model(self) -> Contact:
        """The core Contact model."""
        return Contact(**self.data())


@dataclass(frozen=True)
class MisPupil:
    """One pupil as read from a CTF or the aggregator API (already validated)."""

    upn: str
    forename: str
    surname: str
    dob: str | None = None  # ISO date
    sex: str | None = None
    nc_year: int | None = None
    school_urn: str | None = None
    sen_provision: str | None = None
    needs: tuple[str, ...] = ()
    contacts: tuple[MisContact, ...] = field(default_factory=tuple)
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    looked_after: bool | None = None  # CTF LookedAfter/InCare; None when the MIS does not say
    leaving_date: str | None = None  # ISO date the pupil left the school that sent the data

    def data(self) -> dict[str, Any]:
        """The JSON-able snapshot that is stored and compared between syncs."""
        data = {
            "upn": self.upn, "forename": self.forename, "surname": self.surname,
            "dob": self.dob, "sex": self.sex, "nc_year": self.nc_year,
            "school_urn": self.school_urn, "sen_provision": self.sen_provision,
            "needs": list(self.needs), "contacts": [c.data() for c in self.contacts],
        }
        # Newer fields only when set, so snapshots stored before they existed still compare equal.
        for name in ("preferred_forename", "preferred_surname", "looked_after", "leaving_date"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> MisPupil:
        """Rebuild from a stored snapshot."""
        values = dict(data)
        values["needs"] = tuple(values.get("needs") or ())
        values["contacts"] = tuple(MisContact(**c) for c in values.get("contacts") or ())
        return cls(**values)

    def core_fields(self) -> dict[str, Any]:
        """The fields the core Pupil keeps, for ``store.update_pupil``.

        A field the MIS left out (no URN in the header, no year group) is not sent: missing
        data never clears what the core already knows.
        """
        fields = {
            "forename": self.forename,
            "surname": self.surname,
            "dob": self.dob,
            "nc_year": self.nc_year,
            "school_urn": self.school_urn,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def parent_emails(self) -> dict[str, MisContact]:
        """Contacts with parental responsibility and an email, by lower-cased email."""
        return {
            c.email.lower(): c for c in self.contacts if c.parental_responsibility and c.email
        }

    def to_record(self, source: str) -> PupilRecord:
        """The PupilRecord that ``lookup_pupil`` returns."""
        pupil = Pupil(
            upn=self.upn,
            forename=self.forename,
            surname=self.surname,
            dob=date.fromisoformat(self.dob) if self.dob else None,
            nc_year=self.nc_year,
            school_urn=self.school_urn,
        )
        contacts = tuple(c.to_model() for c in sorted(self.contacts, key=_contact_order))
        return PupilRecord(
            pupil=pupil,
            contacts=contacts,
            sen_provision=self.sen_provision,
            needs=self.needs,
            source=source,
        )


def _contact_order(contact: MisContact) -> int:
    return contact.order if contact.order is not None else 99


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
            elif name in {"forename", "surname", "dob", "preferred_forename",
                          "preferred_surname", "looked_after"}:
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
    problems: list[RowProblem] = field(default_factory=list)
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



# Diff and apply -----------------------------------------------------------------------------


def _diff(old: MisPupil, new: MisPupil) -> dict[str, tuple[Any, Any]]:
    old_data, new_data = old.data(), new.data()
    # .get: a newer optional field (looked_after...) is absent from an older snapshot
    return {k: (old_data.get(k), v) for k, v in new_data.items() if old_data.get(k) != v}


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
    if new.looked_after and (old is None or not old.looked_after):
        change.flags.append(
            (FLAG_LAC, "MIS: the pupil is looked after; invite the virtual school and the "
                       "social worker, and align with the CLA review")
        )
    before = old.parent_emails() if old is not None else {}
    for email, contact in new.parent_emails().items():
        if email not in before:
            change.new_parents.append((contact.display_name, contact.email or email))


def _now_iso(ctx: HookContext) -> str:
    return ctx.clock.now().isoformat(timespec="seconds")


def apply(batches: Iterable[Batch], ctx: HookContext, report: SyncReport,
          relink: bool = False) -> None:
    """Compare each batch with the stored snapshot and apply the changes (not in a dry run).

    ``relink`` re-sends every pupil and parent to the core, not only the changes (for plans
    created since the last sync). Counts, changes and what was raised go into ``report``.
    """
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
            if pupil.leaving_date:
                # Listed with a leaving date (a leavers CTF, SchoolHistory): off roll now.
                if stored is not None and not stored.get("left"):
                    report.left += 1
                    report.changes.append(Change(upn, "left"))
                    writes[PUPIL + upn] = {
                        "source": batch.source, "school": batch.school, "data": pupil.data(),
                        "left": True, "updated_at": now,
                    }
                else:
                    report.unchanged += 1
                continue
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


def _update_core(store: PluginStore, pupils: dict[str, MisPupil]) -> None:
    """Send pupil fields to the core in one transaction."""
    store.update_pupils({upn: p.core_fields() for upn, p in pupils.items()})


def _open_reviews(store: PluginStore, upns: list[str]) -> dict[str, list[Review]]:
    """Open reviews per UPN, in one query."""
    found = store.open_reviews_for_upns(upns)
    return {upn: list(found.get(upn, [])) for upn in upns}


def _tell_reviews(ctx: HookContext, reviews: list[Review], pupil: MisPupil, change: Change,
                  report: SyncReport) -> None:
    store = ctx.store
    for review in reviews:
        for flag, detail in change.flags:
            store.flag_review(review.case_id, flag, detail)
            store.audit(review.case_id, f"{ctx.plugin}.flag", {"flag": flag, "upn": pupil.upn})
            report.flags_raised += 1
        for name, email in change.new_parents:
            store.add_invitee(
                review.case_id, Invitee(role=Role.PARENT, name=name, email=email, source="mis")
            )
            store.audit(review.case_id, f"{ctx.plugin}.invitee",
                        {"role": "parent", "upn": pupil.upn})
            report.invitees_added += 1



# Lookup -------------------------------------------------------------------------------------


def lookup(upn: str, ctx: HookContext) -> PupilRecord | None:
    """The PupilRecord the MIS last gave for this UPN, or None (unknown or left the school);
    its ``source`` is ``<plugin>:<batch source>``, e.g. ``sims:ctf``."""
    from ehcbridge.formats.upn import InvalidUPN, validate_upn

    try:
        key = validate_upn(upn)
    except InvalidUPN:
        return None
    stored = ctx.store.get_state(PUPIL + key)
    if not stored or stored.get("left"):
        return None
    return MisPupil.from_data(stored["data"]).to_record(
        source=f"{ctx.plugin}:{stored.get('source')}")
