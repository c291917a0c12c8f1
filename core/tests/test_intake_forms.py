"""Review lists as councils hold them: Excel workbooks, other headers, encodings and date forms,
shared UPNs, and hostile values refused at the edge (file, row and column named, nothing written).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from ehcbridge.cli import cli
from ehcbridge.formats import make_upn
from ehcbridge.intake import IntakeError, import_reviews
from ehcbridge.models import LONDON
from ehcbridge.store import Store
from ehcbridge.testing import make_app

UPN_1, UPN_2 = make_upn("838200121009"), make_upn("940201500123")
HEADER = ["Case ID", "UPN", "Forename", "Surname", "Date of Birth", "Year Group", "School URN",
          "Plan Issued", "Last Review", "Meeting Date", "Location"]


def workbook(path: Path, rows: list[list[object]], *, sheet: str = "Spring term",
             extra_first: bool = False) -> Path:
    """An .xlsx as a council saves it: a title-free sheet, date cells, number cells."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    if extra_first:
        first.title = "Notes"
        first.append(["This sheet is not the list"])
        ws = book.create_sheet(sheet)
    else:
        first.title = sheet
        ws = first
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


ROWS: list[list[object]] = [
    ["EHC-1", UPN_1, "Sam", "Ex", datetime(2014, 5, 2), 9, 100001, datetime(2025, 3, 1),
     None, datetime(2027, 3, 10, 10, 0), "Room 4"],
    ["EHC-2", UPN_2, "Alex", "Ample", "02/05/2020", "R", "100002", "01-Mar-2025", "01/03/26",
     None, None],
]


def test_xlsx_first_sheet_with_date_and_number_cells(store: Store, tmp_path: Path) -> None:
    app = make_app(store)
    report = import_reviews(app, workbook(tmp_path / "list.xlsx", ROWS))
    assert (report.added, report.meetings) == (2, {"scheduled": 1})
    assert report.sheet == "Spring term"
    one = store.case("EHC-1")
    assert (one.pupil.dob, one.pupil.nc_year, one.pupil.school_urn) == \
        (date(2014, 5, 2), 9, "100001")
    assert one.plan.issued_on == date(2025, 3, 1)
    assert one.meeting is not None
    assert one.meeting.start == datetime(2027, 3, 10, 10, tzinfo=LONDON)
    two = store.case("EHC-2")
    assert (two.pupil.nc_year, two.plan.last_review_decision) == (0, date(2026, 3, 1))


def test_xlsx_named_sheet_and_errors_name_the_sheet(store: Store, tmp_path: Path) -> None:
    path = workbook(tmp_path / "list.xlsx", ROWS, extra_first=True, sheet="Reviews")
    app = make_app(store)
    with pytest.raises(IntakeError, match="column is missing"):
        import_reviews(app, path)  # the first sheet is the notes
    assert import_reviews(app, path, sheet="Reviews").added == 2
    with pytest.raises(IntakeError, match="'Autumn' is not a sheet of this workbook"):
        import_reviews(app, path, sheet="Autumn")
    bad = workbook(tmp_path / "bad.xlsx", [[*ROWS[0][:7], "31/02/2025", *ROWS[0][8:]]],
                   sheet="Reviews")
    with pytest.raises(IntakeError) as caught:
        import_reviews(make_app(store), bad)
    assert str(caught.value.problems[0]) == (
        f"{bad} sheet 'Reviews' row 2, column plan_issued: '31/02/2025' is not a date "
        "(use YYYY-MM-DD or DD/MM/YYYY)")


def test_not_a_workbook_and_old_xls_are_clear_errors(store: Store, tmp_path: Path) -> None:
    fake = tmp_path / "list.xlsx"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IntakeError, match="is not a readable Excel workbook"):
        import_reviews(make_app(store), fake)
    old = tmp_path / "list.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(IntakeError, match=r"old Excel \.xls"):
        import_reviews(make_app(store), old)


def csv_file(tmp_path: Path, lines: list[str], encoding: str = "utf-8",
             name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_bytes("\r\n".join(lines).encode(encoding))
    return path


def test_headers_as_councils_write_them_and_windows_1252(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [
        "Case ID,Unique Pupil Number,First Name,Last Name,DOB,NC Year,Plan Issued,Plan-Issued2",
        f"EHC-1,{UPN_1},Zoë,Ørsted,01-03-2015,Year 9,01/03/25,x",
        f"EHC-2,{UPN_2},Siân,O\u2019Neill,2015-03-01 00:00:00,E2,2025-03-01,y",
    ], encoding="cp1252")
    report = import_reviews(make_app(store), path)
    assert report.added == 2 and report.encoding == "Windows-1252"
    assert any("read as Windows-1252" in w for w in report.warnings)
    one, two = store.case("EHC-1"), store.case("EHC-2")
    assert (one.pupil.forename, one.pupil.nc_year, one.pupil.dob) == ("Zoë", 9, date(2015, 3, 1))
    assert (two.pupil.surname, two.pupil.nc_year) == ("O\u2019Neill", -1)
    assert one.plan.issued_on == two.plan.issued_on == date(2025, 3, 1)


def test_utf16_is_read(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["case_id,forename,surname,plan_issued", "EHC-1,Zoë,Ex,2025-03-01"],
                    encoding="utf-16")
    report = import_reviews(make_app(store), path)
    assert report.added == 1 and report.encoding == "UTF-16"


@pytest.mark.parametrize(("value", "column", "message"), [
    ("R1", "nc_year", "is not an NC year"),
    ("B838200121009", "upn", "check letter does not match"),
    ("B80120000500!", "upn", "is not a valid UPN"),
    ("É801200005001", "upn", "is not a valid UPN"),
    ("B\uff18\uff10\uff11\uff12\uff10\uff10\uff1005001", "upn", "is not a valid UPN"),
])
def test_wrong_codes_and_check_letters_are_refused(store: Store, tmp_path: Path, value: str,
                                                   column: str, message: str) -> None:
    path = csv_file(tmp_path, [f"case_id,forename,surname,plan_issued,{column}",
                               f"EHC-1,A,B,2025-03-01,{value}"])
    with pytest.raises(IntakeError) as caught:
        import_reviews(make_app(store), path)
    assert [(p.row, p.column) for p in caught.value.problems] == [(2, column)]
    assert message in caught.value.problems[0].message
    assert store.count("plans") == 0


def test_two_case_ids_sharing_a_upn_are_reported(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["case_id,upn,forename,surname,plan_issued",
                               f"EHC-1,{UPN_1},Sam,Ex,2025-03-01",
                               f"EHC-2,{UPN_1.lower()},Sam,Ex,2025-04-01",
                               f"EHC-3,{UPN_2},Alex,Ample,2025-04-01"])
    dry = CliRunner().invoke(cli, ["import", "reviews", str(path), "--dry-run"])
    assert dry.exit_code == 0
    assert "rows 2, 3 (case ids EHC-1, EHC-2) share one UPN" in dry.stderr
    assert UPN_1 not in dry.output
    result = CliRunner().invoke(cli, ["import", "reviews", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["added"] == 3
    assert len(data["warnings"]) == 1 and "EHC-1, EHC-2" in data["warnings"][0]


@pytest.mark.parametrize(("column", "value", "message"), [
    ("meeting_start", "9999-12-31T23:30", "outside the years 1900 to 2100"),
    ("meeting_start", "0001-01-01T00:10+01:00", "outside the years 1900 to 2100"),
    ("meeting_start", "0001-01-03T10:00", "outside the years 1900 to 2100"),
    ("plan_issued", "9999-12-31", "outside the years 1900 to 2100"),
    ("dob", "0001-01-01", "outside the years 1900 to 2100"),
    ("surname", "x" * 131_073, "over the limit of 4,000 (limits.max_field_chars)"),
    ("surname", "x" * 5_000, "over the limit of 4,000"),
    ("location", "Room\x004", "contains a NUL character"),
    ("school_urn", "123456789012", "is longer than 10 characters"),
])
def test_hostile_values_are_row_errors_through_the_cli(tmp_path: Path, column: str, value: str,
                                                       message: str) -> None:
    values = {"case_id": "EHC-1", "forename": "Sam", "surname": "Ex", "plan_issued": "2025-03-01",
              "dob": "", "meeting_start": "", "location": "", "school_urn": ""}
    values[column] = value
    good = "EHC-2,Alex,Ample,2025-03-01,,,,"
    path = csv_file(tmp_path, [",".join(values), ",".join(values.values()), good])
    result = CliRunner().invoke(cli, ["import", "reviews", str(path)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)
    assert "Traceback" not in result.output
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert f"{path} row 2, column {column}:" in line and message in line
    assert len(line) < 400  # a 131,073-character value is not echoed whole
    listing = CliRunner().invoke(cli, ["review", "list", "--json"])
    assert json.loads(listing.stdout) == []  # nothing half-applied


def test_field_limit_and_file_limit_come_from_settings(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["case_id,forename,surname,plan_issued",
                               f"EHC-1,{'y' * 90},Ex,2025-03-01"])
    app = make_app(store, settings={"limits": {"max_field_chars": 80}})
    with pytest.raises(IntakeError, match="over the limit of 80"):
        import_reviews(app, path)
    app = make_app(store, settings={"limits": {"max_file_bytes": 1024}})
    big = csv_file(tmp_path, ["case_id,forename,surname,plan_issued"]
                   + [f"EHC-{n},Sam,Ex,2025-03-01" for n in range(100)], name="big.csv")
    with pytest.raises(IntakeError, match="over the limit of 1,024 bytes") as caught:
        import_reviews(app, big)
    # About the whole file: it names the file, not a "row 0, column -".
    assert f"{big}: the file is " in str(caught.value) and "row 0" not in str(caught.value)
    assert store.count("plans") == 0
