"""CSV imports: SSDA903 Reviews with a mapping file, the generic layout, and bad input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from ehcbridge.models import Invitee, Role
from ehcbridge_social_care.importers import (
    ImportRefused,
    detect_layout,
    import_source,
    load_records,
)
from ehcbridge_social_care.records import META_KEY

from .conftest import (
    DOB_A,
    DOB_B,
    UPN_A,
    UPN_B,
    UPN_C,
    UPN_NO_REVIEW,
    CountingStore,
    context,
    lookup_from,
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding, newline="")
    return path


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    return write(tmp_path, "map.csv",
                 "social_care_id,upn,dob\n"
                 f"LA001,{UPN_A},2014-05-02\n"
                 f"LA002,{UPN_B},30/01/2012\n"
                 f"LA004,{UPN_NO_REVIEW},2013-03-03\n")


SSDA903 = (
    "CHILD,DOB,REVIEW,REVIEW_CODE\r\n"
    "LA001,02/05/2014,15/09/2026,PN1\r\n"   # row 2: matched
    "LA001,02/05/2014,16/03/2026,PN1\r\n"   # row 3: matched, same child
    "LA002,01/01/2012,01/10/2026,PN0\r\n"   # row 4: DOB disagrees with the mapping file
    "LA003,09/09/2015,01/10/2026,PN3\r\n"   # row 5: not in the mapping file
    "LA004,03/03/2013,01/10/2026,PN3\r\n"   # row 6: no open EHCP review
)


def test_ssda903_matched_through_mapping_and_dob(tmp_path: Path, store: CountingStore,
                                                 mapping: Path) -> None:
    source = write(tmp_path, "reviews.csv", SSDA903)
    report = import_source(context(store), str(source), mapping=mapping)
    assert report.layout == "ssda903"
    assert (report.rows, report.matched_rows, report.children) == (5, 2, 1)
    assert [(u.row, u.reason) for u in report.unmatched] == [
        (4, "date of birth does not match the mapping file"),
        (5, "social care id not in the mapping file"),
        (6, "no open EHCP review for this UPN"),
    ]
    (record,) = load_records(context(store))
    assert record.upn == UPN_A
    assert [(r.kind, r.day, r.source) for r in record.reviews] == [
        ("cla", date(2026, 3, 16), "ssda903"), ("cla", date(2026, 9, 15), "ssda903")]
    assert store.bulk_writes == 1
    assert store.state[META_KEY]["matched"] == 2
    # Nothing about unmatched children is kept, and no dates of birth or social care ids at all.
    assert not any(UPN_B in k or UPN_NO_REVIEW in k for k in store.state)
    assert "2014-05-02" not in str(store.state) and "LA001" not in str(store.state)
    assert store.audits[-1]["action"] == "social_care.import"


def test_ssda903_without_mapping_file_reports_every_row_unmatched(tmp_path: Path,
                                                                   store: CountingStore) -> None:
    source = write(tmp_path, "reviews.csv", SSDA903)
    report = import_source(context(store), str(source))
    assert report.matched_rows == 0
    assert {u.reason for u in report.unmatched} == {
        "social care id needs a mapping file (--mapping) to find the UPN"}
    assert load_records(context(store)) == []


def test_bad_row_refuses_the_whole_file_and_names_file_row_and_column(
        tmp_path: Path, store: CountingStore, mapping: Path) -> None:
    source = write(tmp_path, "reviews.csv", SSDA903 + "LA001,02/05/2014,31/02/2026,PN1\r\n"
                   "LA001,02/05/2014,01/01/2026,XX9\r\n")
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(source), mapping=mapping)
    messages = [str(e) for e in refused.value.errors]
    assert messages == [
        f"{source} row 7, column REVIEW: '31/02/2026' is not a date (use YYYY-MM-DD or "
        "DD/MM/YYYY)",
        f"{source} row 8, column REVIEW_CODE: 'XX9' is not a participation code PN0-PN7",
    ]
    assert store.state == {} and store.invitees == {} and store.bulk_writes == 0


def test_skip_invalid_imports_the_good_rows_and_lists_the_bad(tmp_path: Path,
                                                              store: CountingStore,
                                                              mapping: Path) -> None:
    source = write(tmp_path, "reviews.csv", SSDA903 + "LA001,,01/01/2026,PN1\r\n")
    report = import_source(context(store), str(source), mapping=mapping, skip_invalid=True)
    assert report.matched_rows == 2
    assert [(e.row, e.column) for e in report.skipped_invalid] == [(7, "DOB")]
    assert len(load_records(context(store))[0].reviews) == 2


def test_missing_header_column_is_reported_as_row_one(tmp_path: Path, store: CountingStore,
                                                      mapping: Path) -> None:
    source = write(tmp_path, "reviews.csv", "CHILD,REVIEW\nLA001,15/09/2026\n")
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(source), mapping=mapping, layout="ssda903")
    assert str(refused.value) == f"{source} row 1, column DOB: column missing from the header"


def test_mapping_without_dob_uses_the_pupils_record(tmp_path: Path, store: CountingStore) -> None:
    mapping = write(tmp_path, "map.csv", f"social_care_id,upn\nLA001,{UPN_A}\nLA002,{UPN_B}\n"
                    f"LA003,{UPN_C}\n")
    source = write(tmp_path, "reviews.csv", SSDA903)
    without_lookup = import_source(context(store), str(source), mapping=mapping, dry_run=True)
    assert {u.reason for u in without_lookup.unmatched} >= {
        "no date of birth to confirm the social care id (add a dob column to the mapping file)"}
    assert without_lookup.matched_rows == 0

    lookup = lookup_from({UPN_A: DOB_A, UPN_B: DOB_B, UPN_C: date(2015, 9, 10)})
    report = import_source(context(store, lookup=lookup), str(source), mapping=mapping)
    assert report.matched_rows == 2
    assert [(u.row, u.reason) for u in report.unmatched] == [
        (4, "date of birth does not match the pupil's record"),
        (5, "date of birth does not match the pupil's record"),
        (6, "social care id not in the mapping file"),
    ]


def test_bad_mapping_file_refuses_the_import(tmp_path: Path, store: CountingStore) -> None:
    mapping = write(tmp_path, "map.csv", "social_care_id,upn,dob\n"
                    f"LA001,{UPN_A},2014-05-02\nLA002,12345,2014-05-02\n"
                    f"LA001,{UPN_B},2012-01-30\n")
    source = write(tmp_path, "reviews.csv", SSDA903)
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(source), mapping=mapping)
    assert [str(e) for e in refused.value.errors] == [
        f"{mapping} row 3, column upn: '12345' not a valid UPN: must be 13 characters",
        f"{mapping} row 4, column social_care_id: 'LA001' maps to a different pupil than row 2",
    ]
    assert store.state == {}


GENERIC = (
    "upn,social_care_id,dob,review_type,review_date,social_worker_email,social_worker_name,team,"
    "period_start\n"
    f"{UPN_A.lower()},,,CLA,2026-09-15,Jo.Worker@LA.example.gov.uk,Jo Worker,North CLA team,\n"
    f"{UPN_B},,,cp,,cp.team@la.example.gov.uk,,Child Protection East,2026-10-05\n"
    f",LA003,2015-09-09,cin,2026-11-20,,,,\n"
    f"{UPN_NO_REVIEW},,,cin,2026-11-20,,,,\n"
)


def test_generic_layout_stores_dates_and_adds_the_social_care_invitee(
        tmp_path: Path, store: CountingStore) -> None:
    mapping = write(tmp_path, "map.csv", f"social_care_id,upn,dob\nLA003,{UPN_C},2015-09-09\n")
    source = write(tmp_path, "extract.csv", GENERIC)
    report = import_source(context(store), str(source), mapping=mapping)
    assert report.layout == "generic"
    assert (report.matched_rows, report.children, report.invitees) == (3, 3, 2)
    assert [(u.row, u.reason) for u in report.unmatched] == [
        (5, "no open EHCP review for this UPN")]
    assert store.invitees == {
        "EHC-A": [Invitee(role=Role.SOCIAL_CARE, name="North CLA team",
                          email="jo.worker@la.example.gov.uk", team="North CLA team",
                          source="social_care")],
        "EHC-B": [Invitee(role=Role.SOCIAL_CARE, name="Child Protection East",
                          email="cp.team@la.example.gov.uk", team="Child Protection East",
                          source="social_care")],
    }
    records = {r.upn: r for r in load_records(context(store))}
    assert records[UPN_B].period_start == {"cp": date(2026, 10, 5)}
    assert [(r.kind, r.day) for r in records[UPN_C].reviews] == [("cin", date(2026, 11, 20))]


def test_invitee_without_a_team_is_named_after_the_worker(tmp_path: Path,
                                                          store: CountingStore) -> None:
    source = write(tmp_path, "x.csv", "upn,review_type,review_date,social_worker_email,"
                   f"social_worker_name\n{UPN_A},cla,2026-09-15,sw@la.example.gov.uk,Jo Worker\n")
    import_source(context(store), str(source))
    (invitee,) = store.invitees["EHC-A"]
    assert (invitee.name, invitee.email, invitee.team) == ("Jo Worker", "sw@la.example.gov.uk",
                                                           None)


def test_generic_upn_row_with_a_disagreeing_dob_is_unmatched(tmp_path: Path,
                                                             store: CountingStore) -> None:
    source = write(tmp_path, "x.csv", "upn,dob,review_type,review_date\n"
                   f"{UPN_A},2014-05-03,cla,2026-09-15\n{UPN_B},2012-01-30,cla,2026-09-15\n")
    report = import_source(context(store, lookup=lookup_from({UPN_A: DOB_A, UPN_B: DOB_B})),
                           str(source))
    assert [(u.row, u.reason) for u in report.unmatched] == [
        (2, "date of birth does not match the pupil's record")]
    assert [r.upn for r in load_records(context(store))] == [UPN_B]


def test_generic_bad_values_name_their_columns(tmp_path: Path, store: CountingStore) -> None:
    source = write(tmp_path, "x.csv",
                   "upn,social_care_id,review_type,review_date,social_worker_email\n"
                   f"{UPN_A},,looked after,2026-09-15,\n"
                   f"{UPN_A},,cla,2026-09-15,not-an-address\n"
                   "A12,,cla,2026-09-15,\n"
                   ",,cla,2026-09-15,\n"
                   f"{UPN_A},,cla,,\n")
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(source))
    assert [(e.row, e.column) for e in refused.value.errors] == [
        (2, "review_type"), (3, "social_worker_email"), (4, "upn"), (5, "upn"),
        (6, "review_date")]
    assert "'looked after' is not one of cla, cp, cin" in str(refused.value)
    assert store.state == {}


def test_dry_run_writes_nothing(tmp_path: Path, store: CountingStore) -> None:
    source = write(tmp_path, "extract.csv", GENERIC)
    report = import_source(context(store), str(source), dry_run=True)
    assert report.dry_run and report.matched_rows == 2 and report.invitees == 2
    assert store.state == {} and store.invitees == {} and store.audits == []


def test_reimport_merges_without_duplicates(tmp_path: Path, store: CountingStore) -> None:
    first = write(tmp_path, "a.csv", f"upn,review_type,review_date\n{UPN_A},cla,2026-03-16\n")
    second = write(tmp_path, "b.csv", f"upn,review_type,review_date\n{UPN_A},cla,2026-03-16\n"
                   f"{UPN_A},cla,2026-09-15\n")
    import_source(context(store), str(first))
    import_source(context(store), str(second))
    (record,) = load_records(context(store))
    assert [r.day for r in record.reviews] == [date(2026, 3, 16), date(2026, 9, 15)]


def test_excel_exports_with_bom_or_windows_1252_are_read(tmp_path: Path,
                                                         store: CountingStore) -> None:
    bom = write(tmp_path, "bom.csv", f"\ufeffupn,review_type,review_date,team\n"
                f"{UPN_A},cla,2026-09-15,Équipe Nord\n", encoding="utf-8")
    cp = write(tmp_path, "cp.csv", f"upn,review_type,review_date,team\n"
               f"{UPN_B},cla,2026-09-15,Équipe Sud\n", encoding="cp1252")
    assert import_source(context(store), str(bom)).matched_rows == 1
    assert import_source(context(store), str(cp)).matched_rows == 1
    teams = {r.upn: r.worker.team for r in load_records(context(store)) if r.worker}
    assert teams == {UPN_A: "Équipe Nord", UPN_B: "Équipe Sud"}


def test_layout_detection() -> None:
    assert detect_layout("r.csv", b"CHILD,DOB,REVIEW,REVIEW_CODE\n") == "ssda903"
    assert detect_layout("r.csv", b"\xef\xbb\xbfupn,review_type,review_date\n") == "generic"
    assert detect_layout("feed.ics", None) == "ics"
    assert detect_layout("https://cal.example/x", None) == "ics"
    assert detect_layout("export.txt", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") == "ics"
    with pytest.raises(ValueError, match="use --layout"):
        detect_layout("r.csv", b"name,date\n")


def test_ssda903_header_table_works_as_the_mapping_file(tmp_path: Path,
                                                        store: CountingStore) -> None:
    header = write(tmp_path, "header.csv", "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\n"
                   f"LA001,1,02/05/2014,WBRI,{UPN_A},,\n"
                   "LA002,2,30/01/2012,WBRI,UN2,,\n")  # UN2: no UPN, skipped
    source = write(tmp_path, "reviews.csv", SSDA903)
    report = import_source(context(store), str(source), mapping=header)
    assert report.matched_rows == 2
    assert (4, "social care id not in the mapping file") in [
        (u.row, u.reason) for u in report.unmatched]


def test_lookup_pupil_is_asked_once_per_pupil(tmp_path: Path, store: CountingStore,
                                              mapping: Path) -> None:
    asked: list[str] = []
    answer = lookup_from({UPN_A: DOB_A})

    def lookup(upn: str) -> object:
        asked.append(upn)
        return answer(upn)

    source = write(tmp_path, "reviews.csv", SSDA903)
    report = import_source(context(store, lookup=lookup), str(source), mapping=mapping)
    assert report.matched_rows == 2
    assert asked.count(UPN_A) == 1
