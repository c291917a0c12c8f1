"""The MIS kit: a connector supplies MisPupil records; the kit diffs, applies and answers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ehcbridge import hookimpl, mis
from ehcbridge.app import App
from ehcbridge.events import HookContext, PupilRecord
from ehcbridge.mis import Batch, MisContact, MisPupil, SyncReport
from ehcbridge.pytest_plugin import Harness
from ehcbridge.testing import plugin_module

UPN, OTHER = "A123456789012", "B123456789012"
PARENT = MisContact(order=1, forename="Alex", surname="Example", relationship="Mother",
                    parental_responsibility=True, email="Parent@Example.net")
PUPIL = MisPupil(upn=UPN, forename="Sam", surname="Example", dob="2012-05-02", nc_year=8,
                 school_urn="100001", sen_provision="E", contacts=(PARENT,))


@hookimpl
def lookup_pupil(upn: str, ctx: HookContext) -> PupilRecord | None:
    return mis.lookup(upn, ctx)


@pytest.fixture
def setup(ehc: Harness) -> tuple[App, HookContext]:
    app = ehc.app({"mymis": plugin_module("mymis", lookup_pupil=lookup_pupil)})
    ehc.import_reviews(app, [{"case_id": "EHC-1", "forename": "S", "surname": "E",
                              "plan_issued": "2025-04-01", "upn": UPN}])
    return app, app.plugin_context("mymis")


def sync(ctx: HookContext, *pupils: MisPupil, full: bool = True,
         dry_run: bool = False) -> SyncReport:
    report = SyncReport(source="file", dry_run=dry_run)
    batch = Batch(school="urn:100001", source="file", full=full,
                  pupils={p.upn: p for p in pupils})
    mis.apply([batch], ctx, report)
    return report


def test_a_new_pupil_updates_the_core_and_invites_the_parent(
        ehc: Harness, setup: tuple[App, HookContext]) -> None:
    app, ctx = setup
    report = sync(ctx, PUPIL, replace(PUPIL, upn=OTHER))
    assert report.summary() == "added 2, updated 0, unchanged 0, left 0"
    case = ehc.store.case("EHC-1")
    assert (case.pupil.forename, case.pupil.nc_year, case.pupil.school_urn) == ("Sam", 8,
                                                                               "100001")
    assert [(i.role.value, i.email, i.source) for i in case.invitees] == [
        ("parent", "Parent@Example.net", "mis")]
    assert report.invitees_added == 1
    record = app.lookup_pupil(UPN)
    assert record is not None and record.source == "mymis:file"
    assert record.sen_provision == "E" and record.contacts[0].relationship == "Mother"
    again = sync(ctx, PUPIL, replace(PUPIL, upn=OTHER))
    assert again.summary() == "added 0, updated 0, unchanged 2, left 0"
    assert len(ehc.store.case("EHC-1").invitees) == 1


@pytest.mark.parametrize(("change", "flag"), [
    ({"nc_year": 9}, mis.FLAG_PFA),
    ({"school_urn": "100002"}, mis.FLAG_EARLY),
    ({"sen_provision": "K"}, mis.FLAG_SEN),
    ({"looked_after": True}, mis.FLAG_LAC),
])
def test_a_change_raises_the_flag_it_calls_for(ehc: Harness, setup: tuple[App, HookContext],
                                               change: dict[str, object], flag: str) -> None:
    _, ctx = setup
    sync(ctx, PUPIL)
    report = sync(ctx, replace(PUPIL, **change))  # type: ignore[arg-type]
    assert report.updated == 1 and [f for f, _ in report.changes[0].flags] == [flag]
    assert flag in ehc.store.case("EHC-1").flags


def test_a_pupil_missing_from_a_full_list_has_left_but_not_from_a_partial_one(
        setup: tuple[App, HookContext]) -> None:
    app, ctx = setup
    sync(ctx, PUPIL)
    assert sync(ctx, full=False).left == 0
    assert getattr(app.lookup_pupil(UPN), "source", None) == "mymis:file"
    assert sync(ctx).left == 1
    # The MIS no longer answers for the pupil: the core's own record is what remains.
    assert getattr(app.lookup_pupil(UPN), "source", None) == "store"


def test_a_dry_run_writes_nothing(ehc: Harness, setup: tuple[App, HookContext]) -> None:
    _, ctx = setup
    report = sync(ctx, PUPIL, dry_run=True)
    assert report.added == 1 and report.changes[0].describe() == (
        f"added    {UPN}; 1 new parent email(s)")
    assert ctx.store.state_items("pupil:") == []
    assert ehc.store.case("EHC-1").pupil.forename == "S"
