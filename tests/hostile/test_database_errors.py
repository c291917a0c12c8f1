"""A value the database cannot hold is a row error naming row and column, never a traceback,
and no database error carries a child's name or date of birth to the terminal or a log."""

from __future__ import annotations

import traceback
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from ehcbridge.models import Invitee, Plan, Pupil, ReviewKind, Role
from ehcbridge.store import CaseInput, Store, StoreError, ValueRejected
from ehcbridge.store import schema as t

HEADER = "case_id,forename,surname,dob,school_urn,plan_issued,parent_email\n"
GOOD = "EHC-1,Ann,Other,2014-01-01,100001,2024-01-10,\n"


BAD = [  # (row, column): each value fits a CSV but not the store
    ("EHC-2,Zebedee,Quixotic,2015-03-04,123456789012,2024-01-10,\n", "school_urn"),
    ("EHC-3,Zeb\x00edee,Quixotic,2015-03-04,100002,2024-01-10,\n", "forename"),
    ("EHC-4,Zebedee,Quixotic" + "x" * 120 + ",2015-03-04,100002,2024-01-10,\n", "surname"),
    ("EHC-5,Zebedee,Quixotic,2015-03-04,100002,2024-01-10," + "p" * 250 + "@example.org\n",
     "parent_email"),
]


def test_values_the_store_cannot_hold_are_row_errors(cli: Any, tmp_path: Path) -> None:
    """Through the CLI: each bad row named by row and column, no traceback, no database error
    text, nothing half-applied; --skip-invalid imports the good row."""
    source = tmp_path / "list.csv"
    source.write_text(HEADER + GOOD + "".join(row for row, _ in BAD))
    result = cli("import", "reviews", str(source))
    shown = result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert "Traceback" not in shown and "[parameters" not in shown and "DataError" not in shown
    for number, (_, column) in enumerate(BAD, start=3):
        assert f"row {number}, column {column}:" in result.stderr
    # Nothing half-applied: the good row is not stored either.
    listing = cli.quick("review", "list", "--json")
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"
    result = cli("import", "reviews", str(source), "--skip-invalid")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 added" in result.stdout


def _case(case_id: str, **pupil: Any) -> CaseInput:
    values = dict(forename="Zebedee", surname="Quixotic", dob=date(2015, 3, 4), **pupil)
    return CaseInput(pupil=Pupil(**values), plan=Plan(case_id=case_id,
                                                      issued_on=date(2024, 1, 10)),
                     coordinator_email=None, review_due=date(2025, 1, 10),
                     kind=ReviewKind.ANNUAL, pfa=False,
                     invitees=[Invitee(role=Role.LA_SEN_OFFICER, email="o" * 250 + "@x.org")]
                     if case_id == "EHC-4" else [])


def test_store_refuses_values_its_schema_cannot_hold_on_both_backends(store: Store) -> None:
    """Behind every importer, the store itself refuses what a column cannot hold, naming the
    case and column, never the value, and writes nothing; SQLite refuses what PostgreSQL would."""
    items = [_case("EHC-1", school_urn="100001"), _case("EHC-2", school_urn="123456789012"),
             _case("EHC-3", upn="A12345678901\x00")]
    items.append(_case("EHC-4"))
    with pytest.raises(ValueRejected) as refused, store.begin() as conn:
        store.import_cases(conn, items, datetime(2024, 9, 1, tzinfo=UTC))
    assert refused.value.problems == [
        ("EHC-2", "school_urn", "is longer than 10 characters"),
        ("EHC-3", "upn", "contains a NUL byte"),
        ("EHC-4", "la_sen_officer_email", "is longer than 254 characters")]
    _no_private(refused.value, "Zebedee", "Quixotic", "2015", "123456789012", "A1234")
    assert store.count("pupils") == 0


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


def test_main_prints_a_database_error_as_one_line(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's top-level handler: a database error that reaches it (here a duplicate key
    raised while listing) is one ``Error:`` line with exit code 1, without the row's values."""
    from ehcbridge import cli as cli_module

    row = dict(upn="A123456789012", forename="Zebedee", surname="Quixotic",
               dob=date(2015, 3, 4), updated_at=datetime(2026, 1, 1, tzinfo=UTC))

    def refused(self: Store, **kwargs: Any) -> list[Any]:
        with self.begin() as conn:
            conn.execute(sa.insert(t.pupils).values(**row))
            conn.execute(sa.insert(t.pupils).values(**row))
        return []

    monkeypatch.setattr(Store, "list_reviews", refused)
    monkeypatch.setenv("EHCBRIDGE_STORE__URL", str(store.engine.url.render_as_string(False)))
    monkeypatch.setattr("sys.argv", ["ehcbridge", "review", "list"])
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: database error (") and len(err.splitlines()) == 1, err
    for value in ("Zebedee", "Quixotic", "A123456789012", "2015"):
        assert value not in err


def test_bulk_writes_refused_by_the_database_hold_no_values(store: Store) -> None:
    """The import's bulk path (COPY on PostgreSQL, executemany on SQLite) is refused like any
    statement: a duplicate key is an IntegrityError and an unfitting value a StoreError, with
    no value in the chain (PostgreSQL's COPY context quotes the whole refused row)."""
    from ehcbridge.store import _bulk_insert

    row = dict(upn="A123456789012", forename="Zebedee", surname="Quixotic",
               dob=date(2015, 3, 4), updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    other = {**row, "upn": "B123456789012", "forename": "Yolanda"}
    with store.begin() as conn:
        _bulk_insert(conn, t.pupils, [row])
    with pytest.raises(sa.exc.IntegrityError) as dup, store.begin() as conn:
        _bulk_insert(conn, t.pupils, [other, row])
    _no_private(dup.value, "Zebedee", "Yolanda", "Quixotic", "A123456789012", "2015")
    assert store.count("pupils") == 1  # nothing of the refused batch stayed
    if store.backend == "postgresql":
        with pytest.raises(StoreError) as long, store.begin() as conn:
            _bulk_insert(conn, t.pupils, [{**other, "school_urn": "123456789012"}])
        _no_private(long.value, "Yolanda", "Quixotic", "123456789012", "2015")
        assert "does not fit its column" in str(long.value)
    # What the bulk path wrote reads back as it went in (JSON included).
    with store.begin() as conn:
        _bulk_insert(conn, t.plugin_state, [dict(plugin="p", key="k", value=[1, "two"])])
    assert store.get_state("p", "k") == [1, "two"]
