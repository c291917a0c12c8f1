"""Importing review lists: all-or-nothing, errors that name the row, column and value."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from ehcbridge.intake import IntakeError, import_reviews
from ehcbridge.models import LONDON
from ehcbridge.store import Store
from ehcbridge.testing import make_app

HEADER = ("Case_ID,UPN,Forename,Surname,DOB,NC_Year,School_URN,Plan_Issued,Last_Review,"
          "Meeting_Start,Meeting_End,Location,Online,Coordinator_Email,Notes\n")
GOOD = [
    "EHC-1,C999000000001,Sam,Ex,02/05/2014,7,100001,2026-04-01,,2027-03-10T10:00,"
    "2027-03-10T11:00,Room 4,false,senco@school.example.org,ignored\n",
    "EHC-2,,Alex,Ample,2012-01-09,9,100001,15/06/2023,20/06/2026,,,,true,,\n",
]


def write(tmp_path: Path, rows: list[str], bom: bool = False, name: str = "reviews.csv") -> Path:
    path = tmp_path / name
    text = HEADER + "".join(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_import_with_bom_uk_dates_and_unknown_columns(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    report = import_reviews(app, write(tmp_path, GOOD, bom=True))
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    assert report.meetings == {"scheduled": 1}
    one = store.case("EHC-1")
    assert one.pupil.dob == date(2014, 5, 2)
    assert one.review.due_by == date(2027, 3, 31)  # 12 months from 1 Apr 2026, minus a day
    assert one.meeting is not None
    assert one.meeting.start == datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
    two = store.case("EHC-2")
    assert two.plan.last_review_decision == date(2026, 6, 20)
    assert two.review.due_by == date(2027, 6, 19)
    assert two.review.preparing_for_adulthood  # Year 9, reg 20(6)


def test_reimport_is_unchanged_and_an_edit_is_an_update(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    path = write(tmp_path, GOOD)
    import_reviews(app, path)
    again = import_reviews(app, path)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert again.meetings == {"unchanged": 1}
    edited = write(tmp_path, [GOOD[0].replace("2027-03-10T10:00,2027-03-10T11:00",
                                              "2027-03-11T10:00,2027-03-11T11:00"), GOOD[1]])
    report = import_reviews(app, edited)
    assert report.meetings == {"rescheduled": 1}
    assert store.count("events") == 2


def test_reimport_writes_only_the_rows_that_differ(store: Store, tmp_path: Path) -> None:
    """The set-read fast path of a re-import still sees every kind of change."""
    app = make_app(store)
    import_reviews(app, write(tmp_path, GOOD))
    moved = GOOD[0].replace(",Room 4,", ",Room 5,")
    renamed = GOOD[1].replace(",Ample,", ",Amble,").replace(",9,", ",10,")
    report = import_reviews(app, write(tmp_path, [moved, renamed]))
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    assert report.meetings == {"rescheduled": 1}
    assert store.case("EHC-1").meeting.location == "Room 5"  # type: ignore[union-attr]
    two = store.case("EHC-2")
    assert (two.pupil.surname, two.pupil.nc_year) == ("Amble", 10)
    again = import_reviews(app, write(tmp_path, [moved, renamed]))
    assert (again.updated, again.unchanged) == (0, 2) and again.meetings == {"unchanged": 1}


def test_one_bad_row_refuses_the_whole_file_and_names_it(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    bad = GOOD[1].replace("2012-01-09", "31/02/2012")
    path = write(tmp_path, [GOOD[0], bad])
    with pytest.raises(IntakeError) as caught:
        import_reviews(app, path)
    [problem] = caught.value.problems
    assert (problem.row, problem.column, problem.value) == (3, "dob", "31/02/2012")
    assert str(problem).startswith(f"{path} row 3, column dob: '31/02/2012' is not a date")
    assert store.count("plans") == 0 and store.count("events") == 0


def _many(count: int) -> list[str]:
    return [f"EHC-{n},,Kit,Row{n},2014-05-02,7,100001,2026-04-01,,,,,false,,\n"
            for n in range(100, 100 + count)]


def test_a_bad_row_after_chunks_were_written_rolls_all_back_and_every_problem_is_named(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ehcbridge.intake as intake

    monkeypatch.setattr(intake, "_CHUNK", 3)  # rows are written as the file is read
    app = make_app(store)
    rows = _many(10)
    rows[7] = rows[7].replace("2014-05-02", "31/02/2014")
    rows.append(rows[2])  # a repeated case id after that
    with pytest.raises(IntakeError) as caught:
        import_reviews(app, write(tmp_path, rows))
    assert [(p.row, p.column) for p in caught.value.problems] == [(9, "dob"), (12, "case_id")]
    assert caught.value.problems[1].message == "repeats row 4"
    assert store.count("plans") == 0 and store.count("events") == 0 and store.count("duties") == 0


def test_a_long_list_streams_in_chunks_and_skip_invalid_keeps_the_rest(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ehcbridge.intake as intake

    monkeypatch.setattr(intake, "_CHUNK", 4)
    app = make_app(store)
    rows = _many(11)
    rows[5] = rows[5].replace(",false,", ",perhaps,")
    report = import_reviews(app, write(tmp_path, rows), skip_invalid=True)
    assert report.added == 10 and [(p.row, p.column) for p in report.skipped] == [(7, "online")]
    assert len(store.case_ids()) == 10 and "EHC-105" not in store.case_ids()
    again = import_reviews(app, write(tmp_path, rows), skip_invalid=True)
    assert (again.added, again.unchanged) == (0, 10)


def test_skip_invalid_imports_the_good_rows(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    bad = GOOD[1].replace(",true,", ",perhaps,")
    report = import_reviews(app, write(tmp_path, [GOOD[0], bad]), skip_invalid=True)
    assert report.added == 1
    assert [(p.row, p.column) for p in report.skipped] == [(3, "online")]
    assert store.case_ids() == ["EHC-1"]


def test_dry_run_writes_nothing(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    report = import_reviews(app, write(tmp_path, GOOD), dry_run=True)
    assert report.added == 2 and report.meetings == {"scheduled": 1}
    assert store.count("plans") == 0 and store.count("meetings") == 0


@pytest.mark.parametrize(("row", "column", "message"), [
    (GOOD[0].replace("EHC-1,", ","), "case_id", "is required"),
    (GOOD[0].replace("C999000000001", "A99"), "upn", "is not a valid UPN"),
    (GOOD[0].replace("C999000000001", "A999000000001"), "upn", "check letter does not match"),
    (GOOD[0].replace(",7,", ",Y22,"), "nc_year", "is not an NC year"),
    (GOOD[0].replace("2027-03-10T11:00", "2027-03-10T09:00"), "meeting_end", "is not after"),
    (GOOD[0].replace("senco@school.example.org", "senco"), "coordinator_email", "not an email"),
    (GOOD[0] + GOOD[0], "case_id", "repeats row 2"),
])
def test_each_kind_of_bad_value(store: Store, tmp_path: Path, row: str, column: str,
                                message: str) -> None:
    with pytest.raises(IntakeError) as caught:
        import_reviews(make_app(store), write(tmp_path, [row]))
    assert any(p.column == column and message in p.message for p in caught.value.problems)


def test_missing_required_column_and_binary(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("case_id,forename\nA,B\n")
    with pytest.raises(IntakeError, match="column surname: column is missing"):
        import_reviews(make_app(store), path)
    path.write_bytes(HEADER.encode() + b"EHC-9,\x00\x81\x8d\x00")
    with pytest.raises(IntakeError, match="is not a text file"):
        import_reviews(make_app(store), path)


def test_an_invitee_added_by_a_later_list_is_invited_to_the_meeting(store: Store,
                                                                    tmp_path: Path) -> None:
    app = make_app(store)
    path = write(tmp_path, GOOD)
    import_reviews(app, path)
    header = HEADER.replace(",Notes\n", ",Notes,Parent_Email\n")
    path.write_text(header + GOOD[0].replace(",ignored\n", ",ignored,parent@example.net\n")
                    + GOOD[1].replace("\n", ",\n"))
    report = import_reviews(app, path)
    assert (report.updated, report.unchanged) == (1, 1)
    keys = [e.key for e in store.undispatched_events()]
    assert keys[0] == "EHC-1/r1/m1/scheduled/0" and len(keys) == 2
    assert keys[1].startswith("EHC-1/r1/m1/updated/0/")
    again = import_reviews(app, path)  # nothing new: no second update
    assert again.unchanged == 2 and len(store.undispatched_events()) == 2


def test_a_meeting_for_a_ceased_plan_names_the_row_from_the_structured_error(
        store: Store, tmp_path: Path) -> None:
    from ehcbridge.models import Outcome

    app = make_app(store)
    import_reviews(app, write(tmp_path, GOOD))
    store.decide("EHC-1", outcome=Outcome.CEASE, reason="moved out of the area",
                 decided_on=date(2026, 12, 1), next_review_due=None)
    moved = write(tmp_path, [GOOD[1], GOOD[0].replace("2027-03-10T10:00,2027-03-10T11:00",
                                                      "2027-03-12T10:00,2027-03-12T11:00")])
    with pytest.raises(IntakeError) as caught:
        import_reviews(app, moved)
    [problem] = caught.value.problems
    assert (problem.row, problem.column) == (3, "meeting_start")
    assert problem.message == "the review is decided; nothing to schedule"
    assert store.case("EHC-2").review.status == "due"  # nothing half-applied
