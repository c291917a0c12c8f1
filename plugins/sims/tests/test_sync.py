"""Syncing CTF files into the store: counts, idempotence, changes the core must see."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import ehcbridge_sims
import pytest
from ctfgen import GenContact, pupil, upn_for, write_ctf
from ehcbridge.events import PupilRecord
from ehcbridge.models import ReviewStatus, Role
from ehcbridge.testing import MemoryPluginStore
from ehcbridge_sims.ctf import CtfError
from ehcbridge_sims.sync import sync_files
from sims_fakes import link_review


def snapshot(store: MemoryPluginStore) -> dict[str, Any]:
    return copy.deepcopy({k: getattr(store, k) for k in (
        "state", "flags", "invitees", "pupils", "audits", "invitation_records")})


class CountingStore(MemoryPluginStore):
    """Counts every write, to prove a sync wrote nothing."""

    writes: int = 0

    def set_state_many(self, items: dict[str, Any]) -> None:
        self.writes += 1
        super().set_state_many(items)

    def update_pupil(self, upn: str, fields: dict[str, Any]) -> bool:
        self.writes += 1
        return super().update_pupil(upn, fields)

    def flag_review(self, case_id: str, flag: str, detail: str = "") -> None:
        self.writes += 1
        super().flag_review(case_id, flag, detail)

    def add_invitee(self, case_id: str, invitee: Any) -> None:
        self.writes += 1
        super().add_invitee(case_id, invitee)


def test_first_sync_adds_links_and_invites_parents(ctx: Any, store: MemoryPluginStore,
                                                   tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "ctf.xml", 5)
    report = sync_files([path], ctx)
    assert report.summary() == "added 5, updated 0, unchanged 0, left 0"
    assert store.pupils[upn_for(0)]["nc_year"] == 1
    assert store.pupils[upn_for(0)]["dob"] == "2008-01-01"
    assert store.pupils[upn_for(4)]["school_urn"] == "100001"
    # The parent with parental responsibility is invited; the relative without it is not.
    (invitee,) = store.invitees["EHC-0000"]
    assert (invitee.role, invitee.email, invitee.name, invitee.source) == (
        Role.PARENT, "parent0@example.net", "Mx Pat Example", "mis")
    assert [i.email for i in store.invitees["EHC-0001"]] == ["parent1@example.net"]
    assert report.invitees_added == 2
    assert store.flags == {}  # nothing to flag on a first sight
    assert len([k for k in store.state if k.startswith("pupil:")]) == 5


def test_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    from ehcbridge.testing import make_context

    store = CountingStore(plugin="sims")
    link_review(store, upn_for(0), "EHC-0000")
    ctx = make_context("sims", ehcbridge_sims.SimsSettings(), store=store)
    path = write_ctf(tmp_path / "ctf.xml", 20)
    sync_files([path], ctx)
    before, writes = snapshot(store), store.writes
    report = sync_files([path], ctx)
    assert report.summary() == "added 0, updated 0, unchanged 20, left 0"
    assert store.writes == writes
    assert snapshot(store) == before


def test_same_content_in_a_new_file_is_unchanged(ctx: Any, store: MemoryPluginStore,
                                                 tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", 10)], ctx)
    invitees = copy.deepcopy(store.invitees)
    again = write_ctf(tmp_path / "b.xml", 10, school="Example Academy (renamed)")
    report = sync_files([again], ctx)
    assert report.summary() == "added 0, updated 0, unchanged 10, left 0"
    assert store.invitees == invitees and store.flags == {}


def test_year_9_school_move_and_sen_change_flag_the_review(
    ctx: Any, store: MemoryPluginStore, tmp_path: Path
) -> None:
    first = [pupil(0, nc_year="8"), pupil(1, nc_year="10", sen=(("2019-09-01", "E"),)),
             pupil(2)]
    sync_files([write_ctf(tmp_path / "a.xml", first)], ctx)
    link_review(store, upn_for(2), "EHC-0002")
    second = [
        pupil(0, nc_year="9"),
        pupil(1, nc_year="10", sen=(("2019-09-01", "E"), ("2025-09-01", "K"))),
        pupil(2),
    ]
    report = sync_files([write_ctf(tmp_path / "b.xml", second, urn="100002")], ctx)
    assert report.summary() == "added 0, updated 3, unchanged 0, left 0"
    assert store.pupils[upn_for(0)]["nc_year"] == 9  # the core recomputes PfA from this
    assert "preparing_for_adulthood" in store.flags["EHC-0000"]
    assert "Year 9" in store.flags["EHC-0000"]["preparing_for_adulthood"]
    assert "sen_provision_changed" in store.flags["EHC-0001"]
    assert "now K" in store.flags["EHC-0001"]["sen_provision_changed"]
    for case in ("EHC-0000", "EHC-0001", "EHC-0002"):
        assert "URN 100001 -> 100002" in store.flags[case]["early_review_suggested"]
    assert "preparing_for_adulthood" not in store.flags["EHC-0001"]  # already Year 10
    assert {a["action"] for a in store.audits} == {"sims.flag", "sims.invitee"}


def test_changed_parent_email_adds_an_invitee(ctx: Any, store: MemoryPluginStore,
                                              tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", 2)], ctx)
    new_mum = GenContact(forename="Pat", surname="Example", email="pat.new@example.net")
    changed = [pupil(0, contacts=(new_mum,)), pupil(1)]
    report = sync_files([write_ctf(tmp_path / "b.xml", changed)], ctx)
    assert report.updated == 1 and report.invitees_added == 1
    assert [i.email for i in store.invitees["EHC-0000"]] == ["parent0@example.net",
                                                            "pat.new@example.net"]
    assert len(store.invitees["EHC-0001"]) == 1


def test_closed_reviews_are_not_touched(ctx: Any, store: MemoryPluginStore,
                                        tmp_path: Path) -> None:
    link_review(store, upn_for(3), "EHC-OLD", status=ReviewStatus.DECIDED)
    sync_files([write_ctf(tmp_path / "a.xml", 4)], ctx)
    assert "EHC-OLD" not in store.invitees


def test_pupils_missing_from_the_file_have_left(ctx: Any, store: MemoryPluginStore,
                                                tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", 4)], ctx)
    # Pupil 3 leaves; pupil 2 is skipped for a bad date of birth, which is not leaving.
    report = sync_files([write_ctf(tmp_path / "b.xml",
                                   [pupil(0), pupil(1), pupil(2, dob="31/02/2012")])], ctx)
    assert report.summary() == "added 0, updated 0, unchanged 2, left 1, skipped 1"
    assert ehcbridge_sims.lookup_pupil(upn_for(3), ctx) is None
    assert ehcbridge_sims.lookup_pupil(upn_for(2), ctx) is not None
    # A file from another school does not make this school's pupils leave.
    other = sync_files([write_ctf(tmp_path / "c.xml", [pupil(50)], urn="199999")], ctx)
    assert other.summary() == "added 1, updated 0, unchanged 0, left 0"
    # Coming back counts as added.
    back = sync_files([write_ctf(tmp_path / "d.xml", 4)], ctx)
    assert (back.added, back.updated, back.unchanged, back.left) == (1, 0, 3, 0)


def test_dry_run_shows_differences_and_writes_nothing(ctx: Any, store: MemoryPluginStore,
                                                      tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", 3)], ctx)
    before = snapshot(store)
    report = sync_files([write_ctf(tmp_path / "b.xml", [pupil(0, nc_year="9"), pupil(1),
                                                        pupil(7)])], ctx, dry_run=True)
    assert report.summary() == ("added 1, updated 1, unchanged 1, left 1 "
                                "(dry run: nothing written)")
    lines = [c.describe() for c in report.changes]
    assert any("nc_year 1 -> 9" in line and "flag preparing_for_adulthood" in line
               for line in lines)
    assert any(line.startswith("left") and upn_for(2) in line for line in lines)
    assert snapshot(store) == before


def test_a_refused_file_writes_nothing(ctx: Any, store: MemoryPluginStore,
                                       tmp_path: Path) -> None:
    good = write_ctf(tmp_path / "good.xml", 3)
    bad = tmp_path / "bad.xml"
    bad.write_text(good.read_text()[:-40])  # truncated
    before = snapshot(store)
    with pytest.raises(CtfError, match=r"bad\.xml: not well-formed"):
        sync_files([good, bad], ctx)
    assert snapshot(store) == before


def test_failure_while_applying_is_retried_by_the_next_run(ctx: Any, store: MemoryPluginStore,
                                                           tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    path = write_ctf(tmp_path / "a.xml", 3)
    original = store.add_invitee
    calls = {"n": 0}

    def flaky(case_id: str, invitee: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database went away")
        original(case_id, invitee)

    monkeypatch.setattr(store, "add_invitee", flaky)
    with pytest.raises(RuntimeError):
        sync_files([path], ctx)
    assert not any(k.startswith("pupil:") for k in store.state)  # snapshot not committed
    report = sync_files([path], ctx)
    assert report.added == 3
    assert [i.email for i in store.invitees["EHC-0001"]] == ["parent1@example.net"]


def test_lookup_pupil_hook(ctx: Any, tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", [pupil(0, nc_year="R")])], ctx)
    record = ehcbridge_sims.lookup_pupil(upn_for(0).lower(), ctx)
    assert isinstance(record, PupilRecord)
    assert record.pupil.upn == upn_for(0) and record.pupil.nc_year == 0
    assert str(record.pupil.dob) == "2008-01-01"
    assert record.sen_provision == "E" and record.needs == ("ASD", "SLCN")
    assert [c.order for c in record.contacts] == [1, 2]
    assert record.source == "sims:ctf"
    assert ehcbridge_sims.lookup_pupil("B801200005001", ctx) is None
    assert ehcbridge_sims.lookup_pupil("not a upn", ctx) is None


def test_relink_sends_everything_again(ctx: Any, store: MemoryPluginStore,
                                       tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "a.xml", 3)
    sync_files([path], ctx)
    # A plan for pupil 2 is created after the sync: a plain re-run has nothing new to say...
    link_review(store, upn_for(2), "EHC-0002")
    assert sync_files([path], ctx).invitees_added == 0
    assert "EHC-0002" not in store.invitees
    # ...a relink sends every pupil and parent again.
    store.pupils[upn_for(2)]["nc_year"] = None
    report = sync_files([path], ctx, relink=True)
    assert report.summary() == "added 0, updated 0, unchanged 3, left 0"
    assert [i.email for i in store.invitees["EHC-0002"]] == ["parent2@example.net"]
    assert store.pupils[upn_for(2)]["nc_year"] == 3


class BulkStore(MemoryPluginStore):
    """A store with the optional bulk methods: one call each per sync."""

    calls: list[str]

    def __init__(self) -> None:
        super().__init__(plugin="sims")
        self.calls = []

    def update_pupils(self, items: dict[str, dict[str, Any]]) -> dict[str, bool]:
        self.calls.append(f"update_pupils:{len(items)}")
        return {upn: self.update_pupil(upn, fields) for upn, fields in items.items()}

    def open_reviews_for_upns(self, upns: list[str]) -> dict[str, list[Any]]:
        self.calls.append(f"open_reviews_for_upns:{len(upns)}")
        return {upn: self.open_reviews_for_upn(upn) for upn in upns}


def test_bulk_store_methods_are_used_when_offered(tmp_path: Path) -> None:
    from ehcbridge.testing import make_context

    store = BulkStore()
    link_review(store, upn_for(0), "EHC-0000")
    ctx = make_context("sims", ehcbridge_sims.SimsSettings(), store=store)
    report = sync_files([write_ctf(tmp_path / "a.xml", 4)], ctx)
    assert report.added == 4 and report.invitees_added == 1
    assert store.calls == ["update_pupils:4", "open_reviews_for_upns:4"]


def test_missing_fields_never_clear_the_core(ctx: Any, store: MemoryPluginStore,
                                             tmp_path: Path) -> None:
    sync_files([write_ctf(tmp_path / "a.xml", [pupil(0)])], ctx)
    assert store.pupils[upn_for(0)]["school_urn"] == "100001"
    # A file whose header has no URN and a pupil without a year group.
    sync_files([write_ctf(tmp_path / "b.xml", [pupil(0, nc_year="")], urn=None)], ctx)
    assert store.pupils[upn_for(0)]["school_urn"] == "100001"
    assert store.pupils[upn_for(0)]["nc_year"] == 1
