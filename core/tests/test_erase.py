"""``forget_cases``: after the store erases cases, each plugin forgets them on its own; a plugin
that fails is reported by name and error type (never its message) and the erasure stands."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from ehcbridge import hookimpl
from ehcbridge.models import Plan, Pupil, ReviewKind
from ehcbridge.operations import erase_and_forget
from ehcbridge.store import Store, StoreError
from ehcbridge.testing import make_app, plugin_module


def _case(store: Store, case_id: str, upn: str) -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn=upn, forename="Sam", surname="Example",
                                            dob=date(2014, 5, 2), nc_year=7),
                          plan=Plan(case_id=case_id, issued_on=date(2026, 4, 1)),
                          coordinator_email=None, review_due=date(2027, 3, 31),
                          kind=ReviewKind.ANNUAL, pfa=False)


def test_every_plugin_forgets_the_erased_cases_and_a_failure_is_reported(store: Store) -> None:
    heard: list[list[str]] = []

    @hookimpl
    def forget_cases(case_ids: Any, ctx: Any) -> None:
        heard.append(sorted(case_ids))
        ctx.store.delete_state("own-index")

    @hookimpl
    def broken_forget(case_ids: Any, ctx: Any) -> None:
        raise RuntimeError("cannot reach the archive for Sam Example")

    _case(store, "EHC-7", "A999000000017")
    _case(store, "EHC-8", "P999000000018")
    app = make_app(store, {"keeper": plugin_module("keeper", forget_cases=forget_cases),
                           "archive": plugin_module("archive", forget_cases=broken_forget)})
    store.set_state_many("keeper", {"own-index": {"EHC-7": "row 4"}})
    rows, failed = erase_and_forget(app, ["EHC-7"])
    assert rows > 0 and heard == [["EHC-7"]]
    assert failed == [("archive", "RuntimeError")]  # the type: its message names a child
    assert store.get_state("keeper", "own-index") is None
    with pytest.raises(StoreError):
        store.case("EHC-7")
    assert store.case("EHC-8").plan.case_id == "EHC-8"
    with pytest.raises(StoreError, match="unknown case 'EHC-9': nothing was erased"):
        erase_and_forget(app, ["EHC-8", "EHC-9"])
    assert store.case("EHC-8").plan.case_id == "EHC-8" and heard == [["EHC-7"]]
