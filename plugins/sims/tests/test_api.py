"""Syncing from the aggregator API over real HTTP: pagination, deltas, 429 and 5xx."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from ctfgen import upn_for
from ehcbridge import NotConfigured
from ehcbridge.models import LONDON
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_sims import SimsSettings
from ehcbridge_sims.api import AggregatorClient, ApiError, parse_sen_status, student_to_pupil
from ehcbridge_sims.sync import sync_api
from sims_fakes import TOKEN, FakeMis, api_settings, student

SCHOOL = "A1930499544"


def client_for(mis: FakeMis, sleeps: list[float], **kw: Any) -> AggregatorClient:
    return AggregatorClient(api_url=f"{mis.url}/v1.0", token=kw.pop("token", TOKEN),
                            page_size=2, sleep=sleeps.append, **kw)


def test_full_then_incremental_sync(fake_mis: FakeMis, store: MemoryPluginStore) -> None:
    fake_mis.students[SCHOOL] = [student(i) for i in range(5)]
    ctx = make_context("sims", api_settings(fake_mis), store=store,
                       now=datetime(2026, 1, 5, 2, 0, tzinfo=LONDON))
    report = sync_api(ctx)
    assert report.summary() == "added 5, updated 0, unchanged 0, left 0"
    pages = [r for r in fake_mis.requests if r["path"].endswith("/students")]
    assert len(pages) == 3  # 2 + 2 + 1, following meta.pagination.next
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in fake_mis.requests)
    assert pages[0]["query"] == {"include": "contacts,extended_details", "per_page": "2"}
    assert store.pupils[upn_for(0)] | {"case_ids": None} == {
        "forename": "Alex", "surname": "Example", "dob": "2012-05-02", "nc_year": 8,
        "school_urn": "100001", "case_ids": None}
    assert [i.email for i in store.invitees["EHC-0000"]] == ["mum0@example.net"]
    assert store.state["api:watermark:" + SCHOOL] == "2026-01-05T01:55:00+00:00"

    # The next run asks only for changes since the watermark.
    fake_mis.requests.clear()
    fake_mis.delta[SCHOOL] = [student(0, year={"data": {"code": "9", "name": "Year 9"}}),
                              student(1)]
    ctx2 = make_context("sims", api_settings(fake_mis), store=store,
                        now=datetime(2026, 1, 6, 2, 0, tzinfo=LONDON))
    report = sync_api(ctx2)
    # A delta cannot tell who left: only a full read can.
    assert report.summary() == "added 0, updated 1, unchanged 1, left 0"
    first = next(r for r in fake_mis.requests if r["path"].endswith("/students"))
    assert first["query"]["updated_after"] == "2026-01-05 01:55:00"
    assert "preparing_for_adulthood" in store.flags["EHC-0000"]
    assert store.state["api:watermark:" + SCHOOL] == "2026-01-06T01:55:00+00:00"


def test_full_sync_finds_leavers(fake_mis: FakeMis, store: MemoryPluginStore) -> None:
    fake_mis.students[SCHOOL] = [student(i) for i in range(3)]
    ctx = make_context("sims", api_settings(fake_mis), store=store)
    sync_api(ctx)
    del store.state["api:watermark:" + SCHOOL]  # e.g. an operator forcing a full read
    fake_mis.students[SCHOOL] = [student(0), student(1)]
    assert sync_api(ctx).summary() == "added 0, updated 0, unchanged 2, left 1"


def test_429_and_500_are_retried_with_backoff(fake_mis: FakeMis) -> None:
    fake_mis.students[SCHOOL] = [student(0)]
    fake_mis.failures = [(429, {"Retry-After": "7"}), (500, {}), (503, {})]
    sleeps: list[float] = []
    with client_for(fake_mis, sleeps) as client:
        rows = list(client.students(SCHOOL))
    assert [r["upn"] for r in rows] == [upn_for(0)]
    assert sleeps[0] == 7.0  # Retry-After honoured
    assert len(sleeps) == 3 and sleeps[1] >= 1 and sleeps[2] >= sleeps[1]


def test_persistent_errors_write_nothing(fake_mis: FakeMis, store: MemoryPluginStore) -> None:
    fake_mis.students[SCHOOL] = [student(0)]
    fake_mis.failures = [(500, {})] * 10
    sleeps: list[float] = []
    ctx = make_context("sims", api_settings(fake_mis), store=store)
    with pytest.raises(ApiError, match="kept answering HTTP 500 after 3 attempts"):
        sync_api(ctx, client=client_for(fake_mis, sleeps, max_attempts=3))
    assert store.state == {} and store.invitees == {}
    assert len(sleeps) == 2


def test_rejected_token_is_a_clear_error_without_the_token(fake_mis: FakeMis) -> None:
    fake_mis.students[SCHOOL] = []
    with pytest.raises(ApiError, match="refused the token") as info:
        list(client_for(fake_mis, [], token="wrong-secret").students(SCHOOL))
    assert "wrong-secret" not in str(info.value)


def test_unknown_school_is_an_error(fake_mis: FakeMis) -> None:
    with pytest.raises(ApiError, match="HTTP 404"):
        list(client_for(fake_mis, []).students("nope"))


def test_not_configured(store: MemoryPluginStore) -> None:
    ctx = make_context("sims", SimsSettings(source="api"), store=store)
    with pytest.raises(NotConfigured):
        sync_api(ctx)


def test_student_mapping() -> None:
    (pupil,) = student_to_pupil(student(3), "school X", 1, "100001")
    assert pupil.upn == upn_for(3) and pupil.forename == "Kit"  # type: ignore[union-attr]
    assert pupil.sen_provision == "E" and pupil.needs == ("ASD", "SLCN")  # type: ignore[union-attr]
    assert [c.parental_responsibility for c in pupil.contacts] == [True, False]  # type: ignore[union-attr]
    assert "WBRI" not in repr(pupil)
    # No ``data`` wrappers, plain year and date, UPN under education_details.
    flat = student(4, upn=None, year="Year 11", date_of_birth="2010-01-31",
                   education_details={"data": {"upn": upn_for(4)}},
                   extended_details={"sen_status": "SEN Support"},
                   contacts=[{"forename": "A", "surname": "B",
                              "relationship": {"relationship": "Father",
                                               "parental_responsibility": "true"},
                              "contact_details": {"emails": {"email": "bad@"}}}])
    got = student_to_pupil(flat, "school X", 2, None)
    assert got[0].nc_year == 11 and got[0].dob == "2010-01-31"  # type: ignore[union-attr]
    assert got[0].sen_provision == "K"  # type: ignore[union-attr]
    assert "is not an email address" in str(got[1])
    (problem,) = student_to_pupil(student(5, upn="B801200005002"), "school X", 3, None)
    assert "check letter" in str(problem)


@pytest.mark.parametrize(("value", "code"), [
    ("E", "E"), ("k", "K"), ("EHC Plan", "E"), ("Statement", "E"), ("SEN Support", "K"),
    ("No Special Educational Need", "N"), (None, None), ("?", None)])
def test_sen_status_words(value: str | None, code: str | None) -> None:
    assert parse_sen_status(value) == code


def test_contacts_without_any_email_are_a_warning(fake_mis: FakeMis,
                                                  store: MemoryPluginStore) -> None:
    no_details = [student(i, contacts={"data": [{"forename": "P", "surname": "E",
                                                 "relationship": {"parental_responsibility": True}}
                                                ]}) for i in range(6)]
    fake_mis.students[SCHOOL] = no_details
    report = sync_api(make_context("sims", api_settings(fake_mis), store=store))
    assert report.added == 6 and report.invitees_added == 0
    assert report.warnings == [f"school {SCHOOL}: none of 6 contacts has an email address; "
                               "check that the API returns contact_details with contacts"]
