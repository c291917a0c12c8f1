"""Shared parsing (ehcbridge.formats): the DfE UPN rule, NC years, dates, headers, encodings."""

from __future__ import annotations

import codecs
import random
from datetime import date, datetime
from pathlib import Path

import pytest
from ehcbridge.formats import (
    DateRangeError,
    EncodingError,
    InvalidUPN,
    RowProblem,
    canonical_headers,
    decode_text,
    detect_encoding,
    is_valid_upn,
    make_upn,
    normalise_header,
    parse_date,
    parse_datetime,
    parse_nc_year,
    validate_upn,
)
from ehcbridge.models import LONDON

# The DfE rule written out independently from the specification's table: characters 2-13 are
# weighted 2 to 13; digits count as their value, the letters of the check alphabet (position 13
# of a temporary UPN) as 0 to 22; the sum modulo 23 picks the check letter from the same table.
DFE_TABLE = dict(zip("ABCDEFGHJKLMNPQRTUVWXYZ", range(23), strict=True))


def dfe_valid(upn: str) -> bool:
    if len(upn) != 13 or upn[0] not in DFE_TABLE:
        return False
    if not all(c in "0123456789" for c in upn[1:12]):
        return False
    if upn[12] not in "0123456789" and upn[12] not in DFE_TABLE:
        return False
    total = sum(weight * (int(c) if c in "0123456789" else DFE_TABLE[c])
                for weight, c in zip(range(2, 14), upn[1:], strict=True))
    return "ABCDEFGHJKLMNPQRTUVWXYZ"[total % 23] == upn[0]


def test_every_la_number_permanent_and_temporary_agrees_with_the_dfe_rule() -> None:
    rng = random.Random(15)
    for la in range(1000):  # every three digits, so 838, 839 and 940 to 943 among them
        for last in (str(rng.randrange(10)), rng.choice("ABCDEFGHJKLMNPQRTUVWXYZ")):
            body = f"{la:03d}{rng.randrange(10000):04d}{rng.randrange(100):02d}" \
                   f"{rng.randrange(100):02d}{last}"
            right = make_upn(body)
            assert dfe_valid(right) and validate_upn(right) == right
            for letter in "ABCDEFGHJKLMNPQRTUVWXYZ":
                wrong = letter + body
                assert is_valid_upn(wrong) == dfe_valid(wrong) == (wrong == right)


def test_ten_thousand_random_strings_agree_with_the_dfe_rule() -> None:
    rng = random.Random(2015)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !éÉ\uff10\uff11"
    accepted = 0
    for n in range(10_000):
        if n % 2:  # well shaped: a letter, 11 digits, a digit or letter
            text = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "".join(
                rng.choice("0123456789") for _ in range(11)) + rng.choice(
                "0123456789ABCDEFGHJKLMNPQRTUVWXYZ")
        else:
            text = "".join(rng.choice(alphabet) for _ in range(rng.choice((12, 13, 13, 14))))
        expected = dfe_valid(text.upper())
        assert is_valid_upn(text) == expected, text
        accepted += expected
    assert 0 < accepted < 1000  # about 1 in 23 of the well-shaped ones


@pytest.mark.parametrize("upn", [
    "B838200121009",  # Dorset: the check letter is P
    "I838200005001",  # I is not a check letter
    "9000000000000",
    "B80120000500!",
    "B\uff18\uff10\uff11\uff12\uff10\uff10\uff1005001",  # full-width digits
    "É801200005001",
    "S801200005001",
])
def test_the_issues_wrong_upns_are_refused(upn: str) -> None:
    with pytest.raises(InvalidUPN):
        validate_upn(upn)


def test_newer_las_and_temporary_upns_are_accepted() -> None:
    for la in ("838", "839", "940", "941", "942", "943"):
        assert is_valid_upn(make_upn(f"{la}200121009"))
        assert is_valid_upn(make_upn(f"{la}20012100A"))
    assert validate_upn(" p838 200121009 ") == "P838200121009"
    assert make_upn("838200121009") == "P838200121009"


@pytest.mark.parametrize(("text", "year"), [
    ("N1", -2), ("N2", -1), ("E1", -2), ("E2", -1), ("R", 0), ("r", 0), ("Reception", 0),
    ("1", 1), ("09", 9), ("Y9", 9), ("Year 9", 9), ("year9", 9), ("Yr 10", 10), ("14", 14),
    ("-1", -1), ("X", None), ("", None), (None, None), (9, 9), (9.0, 9),
])
def test_nc_year_codes(text: str | int | float | None, year: int | None) -> None:
    assert parse_nc_year(text) == year


@pytest.mark.parametrize("text", ["R1", "15", "Year 9b", "N3", "E3", "Y", "9.5", "\uff11"])
def test_not_nc_years(text: str) -> None:
    with pytest.raises(ValueError, match="is not an NC year"):
        parse_nc_year(text)


@pytest.mark.parametrize("text", [
    "2025-03-01", "01/03/2025", "1/3/2025", "01-03-2025", "01.03.2025", "01/03/25",
    "01-Mar-2025", "1 Mar 2025", "1 March 2025", "01-mar-25", "2025-03-01 00:00:00",
    "2025-03-01T00:00:00", "01/03/2025 00:00",
])
def test_uk_date_forms(text: str) -> None:
    assert parse_date(text) == date(2025, 3, 1)


def test_two_digit_years_and_cells() -> None:
    assert parse_date("02/05/14") == date(2014, 5, 2)
    assert parse_date("02/05/98") == date(1998, 5, 2)
    assert parse_date(datetime(2025, 3, 1)) == date(2025, 3, 1)


@pytest.mark.parametrize("text", ["31/02/2025", "2025-13-01", "March 2025", "01/03",
                                  "2025-03-01 10:30", "tomorrow", "0\uff11/03/2025"])
def test_not_dates(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        parse_date(text)


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01", "1899-12-31", "2101-01-01"])
def test_dates_outside_1900_to_2100_are_refused(text: str) -> None:
    with pytest.raises(DateRangeError, match="outside the years 1900 to 2100"):
        parse_date(text)


@pytest.mark.parametrize("text", ["9999-12-31T23:30", "0001-01-01T00:10+01:00",
                                  "0001-01-03T10:00", "31/12/9999 23:30"])
def test_far_date_times_are_a_clear_error_not_an_overflow(text: str) -> None:
    with pytest.raises(DateRangeError):
        parse_datetime(text)


def test_date_times_are_london_wall_time() -> None:
    assert parse_datetime("2027-06-10T10:00") == datetime(2027, 6, 10, 10, tzinfo=LONDON)
    assert parse_datetime("10/06/2027 10:00") == datetime(2027, 6, 10, 10, tzinfo=LONDON)
    assert parse_datetime("10-Jun-2027 10:00:00").hour == 10
    assert parse_datetime("2027-06-10T10:00+00:00").hour == 11  # BST


def test_headers_case_spaces_underscores_hyphens_and_aliases() -> None:
    assert normalise_header(" Case ID ") == "case_id"
    assert normalise_header("Plan-Issued") == "plan_issued"
    assert normalise_header("CASE__ID") == "case_id"
    assert canonical_headers(["Date of Birth", "UPN", "Year Group"],
                             {"date of birth": "dob", "Year_Group": "nc_year"}) == \
        ["dob", "upn", "nc_year"]


@pytest.mark.parametrize(("data", "name"), [
    ("Zoë,Ørsted".encode(), "UTF-8"),
    (codecs.BOM_UTF8 + "Zoë".encode(), "UTF-8 with BOM"),
    ("Zoë,Ørsted".encode("utf-16"), "UTF-16"),
    ("Zoë,Ørsted,a long enough line".encode("utf-16-le"), "UTF-16"),
    ("Zoë,Ørsted,a long enough line".encode("utf-16-be"), "UTF-16"),
    ("Zoë \u2013 £5".encode("cp1252"), "Windows-1252"),
])
def test_encodings_are_detected_and_named(data: bytes, name: str) -> None:
    text, found = decode_text(data)
    assert found == name
    assert text.lstrip("\ufeff").startswith("Zo")


@pytest.mark.parametrize(("data", "name"), [
    ("Zoë,Ørsted".encode(), "UTF-8"),
    (codecs.BOM_UTF8 + "Zoë".encode(), "UTF-8 with BOM"),
    ("Zoë,Ørsted".encode("utf-16"), "UTF-16"),
    ("Zoë,Ørsted,a long enough line".encode("utf-16-le"), "UTF-16"),
    ("Zoë \u2013 £5".encode("cp1252"), "Windows-1252"),
])
def test_a_file_is_detected_chunk_by_chunk_as_the_whole_bytes_are(
        tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    # Chunks of 3 bytes split every multi-byte character somewhere: still the same answer.
    codec, found = detect_encoding(path, chunk=3)
    assert found == name == decode_text(data)[1]
    assert path.read_text(encoding=codec).lstrip("\ufeff").startswith("Zo")


def test_a_late_bad_byte_names_its_offset_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"case_id\n" + b"A" * 5000 + b"\xff\n")
    with pytest.raises(EncodingError, match="at byte 5011"):
        detect_encoding(path, chunk=1024)


def test_binary_is_not_text() -> None:
    with pytest.raises(EncodingError, match="not a text file"):
        decode_text(b"\x00\x81\x8d\x00\x00\x00\xff\x01")


def test_row_problem_names_file_sheet_row_column_and_value_and_redacts() -> None:
    problem = RowProblem("list.xlsx", 4, "upn", "A801200005001", "check letter does not match",
                         sheet="Spring", key="EHC-1")
    assert str(problem) == ("list.xlsx sheet 'Spring' row 4 (EHC-1), column upn: "
                            "'A801200005001' check letter does not match")
    assert "A801200005001" not in problem.redacted() and "EHC-1" not in problem.redacted()
    long = RowProblem("a.csv", 2, "surname", "x" * 200_000, "is too long")
    assert len(str(long)) < 200 and "200,000 characters" in str(long)
