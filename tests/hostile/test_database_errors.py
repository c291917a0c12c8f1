"""A value the database cannot hold is a row error naming row and column, never a traceback,
and no database error carries a child's name or date of birth to the terminal or a log."""

from __future__ import annotations

import traceback
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ehcbridge.store import Store, StoreError
from ehcbridge.store import schema as t

HEADER = "case_id,forename,surname,dob,school_urn,plan_issued,parent_email\n"
# What must never be shown: the child's names and date of birth.
PRIVATE = ("Zebedee", "Quixotic", "2015-03-04", "04/03/2015", "2015, 3, 4")
GOOD = "EHC-1,Ann,Other,2014-01-01,100001,2024-01-10,\n"


BAD = [  # (row, column, problem): each fits the review list but not the store
    ("EHC-2,Zebedee,Quixotic,2015-03-04,123456789012,2024-01-10,\n", "school_urn",
     "is longer than 10 characters"),
    ("EHC-3,Zeb\x00edee,Quixotic,2015-03-04,100002,2024-01-10,\n", "forename",
     "contains a NUL byte"),
    ("EHC-4,Zebedee,Quixotic" + "x" * 120 + ",2015-03-04,100002,2024-01-10,\n", "surname",
     "is longer than 100 characters"),
    ("EHC-5,Zebedee,Quixotic,2015-03-04,100002,2024-01-10," + "p" * 250 + "@example.org\n",
     "parent_email", "is longer than 254 characters"),
]


def test_values_the_store_cannot_hold_are_row_errors(cli: Any, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text(HEADER + GOOD + "".join(row for row, _, _ in BAD))
    result = cli("import", "reviews", str(source))
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert "Traceback" not in shown
    for number, (_, column, problem) in enumerate(BAD, start=3):
        assert f"row {number}, column {column}: {problem}" in result.stderr
    for private in PRIVATE:
        assert private not in shown
    # Nothing half-applied: the good row is not stored either.
    listing = cli.quick("review", "list", "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"
    # --skip-invalid imports the good row and reports the others, still without their values.
    result = cli("import", "reviews", str(source), "--skip-invalid")
    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown
    assert "1 added" in result.stdout
    assert result.stderr.count("skipped: ") == len(BAD)
    for private in PRIVATE:
        assert private not in shown


def _no_private(exc: BaseException, *private: str) -> None:
    """No message in the exception's chain (what a logged traceback prints) holds a value."""
    seen: BaseException | None = exc
    while seen is not None:
        text = "".join(traceback.format_exception_only(seen))
        for value in private:
            assert value not in text, text
        seen = seen.__cause__ or seen.__context__


def test_database_errors_hold_no_values_anywhere_in_their_chain(store: Store) -> None:
    row = dict(upn="A123456789012", forename="Zebedee", surname="Quixotic",
               dob=date(2015, 3, 4), updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    with store.begin() as conn:
        conn.execute(sa.insert(t.pupils).values(**row))
    # A duplicate UPN: PostgreSQL's DETAIL quotes the key ("Key (upn)=(A123...)").
    with pytest.raises(sa.exc.IntegrityError) as dup, store.begin() as conn:
        conn.execute(sa.insert(t.pupils).values(**row))
    _no_private(dup.value, "Zebedee", "Quixotic", "A123456789012", "2015")
    # A value too long for its column (only PostgreSQL enforces it).
    if store.backend == "postgresql":
        with pytest.raises(StoreError) as long, store.begin() as conn:
            conn.execute(sa.insert(t.pupils).values(**{**row, "upn": None,
                                                       "school_urn": "123456789012"}))
        _no_private(long.value, "Zebedee", "Quixotic", "123456789012", "2015")
        assert "does not fit its column" in str(long.value)
        # A NUL byte in a lookup: psycopg refuses it before the server sees it.
        with pytest.raises(StoreError) as nul:
            store.pupil_by_upn("Zeb\x00edee")
        _no_private(nul.value, "Zeb")


def test_cli_reports_a_database_refusal_in_one_line(cli: Any, tmp_path: Path) -> None:
    """A value only the database checks (a 600-character location) gives one error line."""
    source = tmp_path / "list.csv"
    source.write_text(HEADER + GOOD)
    assert cli.quick("import", "reviews", str(source)).returncode == 0
    place = "Room of Zebedee Quixotic " + "x" * 600
    result = cli("review", "schedule", "EHC-1", "--start", "2027-03-10T10:00",
                 "--location", place)
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown and "Zebedee" not in shown
    if "sqlite" in cli.url:  # SQLite stores any length
        assert result.returncode == 0, shown
    else:
        assert result.returncode == 1
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1


CTF = """<?xml version="1.0" encoding="UTF-8"?>
<CTfile><Header><DocumentName>Common Transfer File</DocumentName><CTFversion>19.0</CTFversion>
<DateTime>2025-07-18T15:02:11</DateTime><DocumentQualifier>full</DocumentQualifier>
<SupplierID>SIMS</SupplierID><SourceSchool><LEA>938</LEA><Estab>2345</Estab><URN>125678</URN>
<SchoolName>Hillside</SchoolName><AcademicYear>2024</AcademicYear></SourceSchool>
<DestSchool><LEA>938</LEA><Estab>4001</Estab></DestSchool></Header>
<CTFpupilData><Pupil><UPN>{upn}</UPN><Surname>Quixotic{tail}</Surname>
<Forename>Zebedee</Forename><DOB>2015-03-04</DOB><Gender>M</Gender>
<BasicDetails><NCyearActual>6</NCyearActual></BasicDetails></Pupil></CTFpupilData></CTfile>
"""


def test_mis_update_the_database_refuses_prints_no_names(cli: Any, tmp_path: Path) -> None:
    """A plugin's write that PostgreSQL refuses (a 158-character surname from a CTF) reaches
    the user as one line without the child's names, through the CLI's top-level handler."""
    from ehcbridge_sims.upn import make_upn

    upn = make_upn("938234514001")
    source = tmp_path / "list.csv"
    source.write_text(f"case_id,upn,forename,surname,plan_issued\nEHC-9,{upn},Zoe,Smith,"
                      "2024-01-10\n")
    assert cli.quick("import", "reviews", str(source)).returncode == 0
    ctf = tmp_path / "pupils.xml"
    ctf.write_text(CTF.format(upn=upn, tail="x" * 150))
    result = cli("sims", "sync", "--file", str(ctf))
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown
    for private in PRIVATE:
        assert private not in shown
    if "postgresql" in cli.url:
        assert result.returncode == 1
        assert "Error: the database refused a value" in result.stderr
