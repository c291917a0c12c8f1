"""The plugin against the real core store (SQLite): what `review show` would list and flag."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import ehcbridge_sims
import pytest
from ctfgen import pupil, upn_for, write_ctf
from ehcbridge.models import Plan, Pupil, ReviewKind
from ehcbridge_sims.sync import sync_files

store_module = pytest.importorskip("ehcbridge.store")
testing = pytest.importorskip("ehcbridge.testing")


def seeded_store(tmp_path: Path, *, dob: date, issued: date, due: date, pfa: bool) -> Any:
    """A store with one Year 8 pupil's plan, EHC-1."""
    store = store_module.Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn=upn_for(0), forename="S", surname="E",
                                            dob=dob, nc_year=8),
                          plan=Plan(case_id="EHC-1", issued_on=issued),
                          coordinator_email="senco@school.example.org",
                          review_due=due, kind=ReviewKind.ANNUAL, pfa=pfa)
    return store


@pytest.fixture
def app(tmp_path: Path) -> Any:
    store = seeded_store(tmp_path, dob=date(2012, 1, 1), issued=date(2026, 4, 1),
                         due=date(2027, 3, 31), pfa=False)
    application = testing.make_app(store, {"sims": ehcbridge_sims})
    yield application
    store.close()


def test_sync_reaches_the_review(app: Any, tmp_path: Path) -> None:
    from ehcbridge.cli import case_json

    ctx = app.plugin_context("sims")
    first = sync_files([write_ctf(tmp_path / "a.xml", [pupil(0, nc_year="8"), pupil(1)])], ctx)
    assert first.summary() == "added 2, updated 0, unchanged 0, left 0"
    case = case_json(app, "EHC-1")
    parents = [(i["role"], i["email"], i["source"]) for i in case["invitees"]]
    assert ("parent", "parent0@example.net", "mis") in parents
    assert case["pupil"]["school_urn"] == "100001"
    assert not case["review"]["preparing_for_adulthood"]

    second = sync_files([write_ctf(tmp_path / "b.xml", [pupil(0, nc_year="9"), pupil(1)])], ctx)
    assert second.summary() == "added 0, updated 1, unchanged 1, left 0"
    case = case_json(app, "EHC-1")
    assert case["review"]["preparing_for_adulthood"]
    assert "preparing_for_adulthood" in case["flags"]
    assert case["pupil"]["nc_year"] == 9

    again = sync_files([tmp_path / "b.xml"], ctx)
    assert again.summary() == "added 0, updated 0, unchanged 2, left 0"
    assert app.lookup_pupil(upn_for(0)).source == "sims:ctf"


def test_a_year_8_pupil_whose_review_falls_after_september_is_reviewed_for_adulthood(
        tmp_path: Path) -> None:
    """The sync judges preparing for adulthood at the review's due date, as the import does:
    by the Year 8 alone, a sync turned off what the import had rightly turned on."""
    from datetime import datetime

    from ehcbridge.cli import case_json
    from ehcbridge.models import LONDON

    store = seeded_store(tmp_path, dob=date(2013, 1, 1), issued=date(2026, 10, 20),
                         due=date(2027, 10, 19), pfa=True)
    app = testing.make_app(store, {"sims": ehcbridge_sims},
                           now=datetime(2027, 1, 10, 9, tzinfo=LONDON))
    ctx = app.plugin_context("sims")
    sync_files([write_ctf(tmp_path / "a.xml", [pupil(0, nc_year="8")])], ctx)
    assert case_json(app, "EHC-1")["review"]["preparing_for_adulthood"]  # Year 9 by October
    sync_files([write_ctf(tmp_path / "b.xml", [pupil(0, nc_year="7")])], ctx)
    assert not case_json(app, "EHC-1")["review"]["preparing_for_adulthood"]  # corrected
    store.close()
