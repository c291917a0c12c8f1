"""Erasing cases the council no longer needs to keep (UK GDPR storage limitation), through the
real CLI and engine on SQLite and PostgreSQL: a dry run first, then every row naming the child,
the family or the case gone from every table, plugins' state included, and the other cases
untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

LIST = ("case_id,upn,forename,surname,dob,nc_year,school_urn,plan_issued,coordinator_email,"
        "parent_email,setting_email\n"
        "EHC-1,A999000000017,Ivy,Quill,2014-10-02,7,130001,2026-02-20,sen@la.example.gov.uk,"
        "ivy.family@example.net,senco@school.example.org\n"
        "EHC-10,P999000000018,Jon,Reed,2014-11-03,7,130001,2026-02-20,sen@la.example.gov.uk,"
        "jon.family@example.net,senco@school.example.org\n")
# What must not survive the erasure of EHC-1, anywhere in the database.
TRACES = ("'EHC-1'", "EHC-1/", "EHC-1:", "A999000000017", "Quill", "ivy.family@example.net")


@pytest.fixture
def ehc(mailing_council: Any) -> Any:
    """Two cases with meetings, invitations sent by the outlook plugin; EHC-1's plan ceased."""
    invoke = mailing_council(LIST, "2026-12-02T10:00")
    invoke("run", "--once", "--now", "2026-10-01T18:00")
    invoke("review", "--now", "2026-12-02T12:00", "held", "EHC-1")
    invoke("review", "--now", "2026-12-09T09:00", "decide", "EHC-1", "cease", "--reason",
           "Moved to another local authority", "--on", "2026-12-09")
    invoke("run", "--once", "--now", "2026-12-09T18:00")
    return invoke


def rows_naming(url: str, traces: tuple[str, ...]) -> dict[str, int]:
    """table -> rows whose values show any of ``traces``, over every table of the database."""
    engine = sa.create_engine(_driver(url))
    found: dict[str, int] = {}
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    text = repr(tuple(row)) + json.dumps([str(v) for v in row])
                    if any(trace in text for trace in traces):
                        found[table.name] = found.get(table.name, 0) + 1
    finally:
        engine.dispose()
    return found


def count(url: str, table: str) -> int:
    engine = sa.create_engine(_driver(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def _driver(url: str) -> str:
    from ehcbridge.settings import driver_url

    return driver_url(url)


def test_a_ceased_case_is_erased_everywhere_and_the_others_stay(ehc: Any, store_url: str) -> None:
    before = rows_naming(store_url, TRACES)
    assert {"pupils", "plans", "invitees", "events", "plugin_state", "audit"} <= set(before), before
    kept = rows_naming(store_url, ("EHC-10",))
    deliveries = count(store_url, "deliveries")

    out = ehc("erase", "--ceased-before", "2027-01-01")
    assert "Would erase 1 case(s): EHC-1. Nothing can bring them back" in out
    assert rows_naming(store_url, TRACES) == before  # a dry run changes nothing
    assert "No case to erase." in ehc("erase", "--ceased-before", "2026-12-01")

    out = ehc("erase", "--ceased-before", "2027-01-01", "--yes")
    assert "Erased 1 case(s): EHC-1 (" in out
    assert rows_naming(store_url, TRACES) == {}
    assert 0 < count(store_url, "deliveries") < deliveries  # EHC-1's went with its events
    assert "unknown case 'EHC-1'" in ehc("review", "show", "EHC-1", code=1)
    # EHC-10 (whose id starts with EHC-1) keeps every row and its invitations' records.
    assert rows_naming(store_url, ("EHC-10",)) == kept
    shown = json.loads(ehc("review", "--now", "2026-12-09T18:00", "show", "EHC-10", "--json"))
    assert shown["meeting"]["status"] == "held"  # its end passed: the engine noticed
    assert {i["email"] for i in shown["invitations"]} >= {"jon.family@example.net"}
    ehc("run", "--once", "--now", "2026-12-10T18:00")  # the engine carries on without it


def test_named_cases_all_or_nothing(ehc: Any, store_url: str) -> None:
    before = rows_naming(store_url, TRACES)
    out = ehc("erase", "EHC-1", "EHC-404", "--yes", code=1)
    assert "unknown case 'EHC-404': nothing was erased" in out
    assert rows_naming(store_url, TRACES) == before
    assert "give --ceased-before DATE" in ehc("erase", code=2)
    assert "'someday' is not a date" in ehc("erase", "--ceased-before", "someday", code=2)
    # A case entered by mistake, its plan not ceased: named, it is erased.
    assert "Erased 1 case(s): EHC-10 (" in ehc("erase", "EHC-10", "--yes")
    assert rows_naming(store_url, ("EHC-10", "jon.family@example.net")) == {}


def test_doctor_says_when_ceased_plans_are_due_for_erasure(
        ehc: Any, tmp_path: Path, store_url: str) -> None:
    quiet = json.JSONDecoder().raw_decode(ehc("doctor", "--json", "--now",
                                              "2027-06-01T09:00"))[0]
    assert "retention" not in {c["check"] for c in quiet["checks"]}  # not asked for
    assert "--due needs store.keep_ceased_months" in ehc("erase", "--due", code=2)
    config = tmp_path / "ehcbridge.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "[store]\n", "[store]\nkeep_ceased_months = 24\n"), encoding="utf-8")

    def retention(now: str) -> dict[str, str]:
        report = json.JSONDecoder().raw_decode(ehc("doctor", "--json", "--now", now))[0]
        return next(c for c in report["checks"] if c["check"] == "retention")

    assert retention("2028-12-01T09:00") == {
        "plugin": "core", "check": "retention", "status": "ok",
        "detail": "no plan ceased more than 24 months ago"}
    due = retention("2029-01-15T09:00")  # EHC-1 ceased on 9 December 2026
    assert due["status"] == "warning"
    assert due["detail"] == ("1 plan(s) ceased before 2027-01-15 (24 months ago) are due for "
                             "erasure: ehcbridge erase --ceased-before 2027-01-15 --yes")
    # What a nightly job runs: the plans past the retention period, as the setting says.
    assert "No case to erase." in ehc("erase", "--due", "--now", "2028-12-01T09:00", "--yes")
    assert "Would erase 1 case(s): EHC-1." in ehc("erase", "--due", "--now", "2029-01-15T09:00")
    command = due["detail"].split(": ehcbridge ", 1)[1].split()
    assert "Erased 1 case(s): EHC-1 (" in ehc(*command)
    assert retention("2029-01-15T09:00")["status"] == "ok"
    assert rows_naming(store_url, TRACES) == {}


def test_export_gives_everything_erase_would_delete_and_nothing_else(
        ehc: Any, tmp_path: Path) -> None:
    out = ehc("export", "EHC-1", "--out", "sar/EHC-1.json")
    saved = tmp_path / "sar" / "EHC-1.json"
    assert (saved.stat().st_mode & 0o777) == 0o600
    document = json.loads(saved.read_text(encoding="utf-8"))
    tables = document["tables"]
    rows = sum(len(r) for r in tables.values())
    # What the outlook plugin keeps by meeting UID and address (the invitation sent to the
    # family, each copy) comes too: the core cannot find it by the case's name.
    outlook = document["plugins"]["outlook"]
    assert out.strip() == (f"EHC-1: {rows} rows from {len(tables)} tables, {len(outlook)} "
                           "records of the outlook plugin written to sar/EHC-1.json")
    assert any("ivy.family@example.net" in r["key"] for r in outlook), outlook
    assert {r["key"].split(":")[0] for r in outlook} >= {"rev", "sent"}
    text = json.dumps(document)
    assert all(trace in text for trace in ("A999000000017", "Quill", "ivy.family@example.net"))
    assert {"pupils", "plans", "reviews", "invitees", "events", "duties", "plugin_state"} \
        <= set(tables)
    assert "EHC-10" not in text and "jon.family@example.net" not in text
    assert "unknown case 'EHC-404': nothing was exported" in ehc("export", "EHC-404", code=1)
    # The same rows are what erasing deletes.
    assert f"Erased 1 case(s): EHC-1 ({rows} rows)." in ehc("erase", "EHC-1", "--yes")
    # ... and, once erased, no plugin has anything left to give about it.
    shown = json.loads(ehc("export", "EHC-10"))
    assert "EHC-1\"" not in json.dumps(shown["plugins"]) and shown["plugins"]["outlook"]



def test_erasing_takes_the_cases_letters_out_of_the_print_packs(
        mailing_council: Any, tmp_path: Path) -> None:
    import base64
    import re

    from pypdf import PdfReader

    invoke = mailing_council(LIST, "2026-12-02T10:00")
    # Each family also has a contact by post only, so its notices become printed letters.
    for case, name, address in (("EHC-1", "Mr Q Grandparent", "1 Mill Lane, Oakfield, OK1 2AB"),
                                ("EHC-10", "Ms R Carer", "3 Brook Road, Oakfield, OK1 3CD")):
        invoke("review", "invite", case, "--role", "parent", "--name", name,
               "--address", address)
    invoke("run", "--once", "--now", "2026-10-01T18:00")
    invoke("review", "--now", "2026-12-02T12:00", "held", "EHC-1")
    invoke("run", "--once", "--now", "2026-12-09T18:00")
    invoke("review", "--now", "2026-12-10T09:00", "decide", "EHC-1", "cease", "--reason",
           "Moved to another local authority", "--on", "2026-12-10")
    invoke("run", "--once", "--now", "2026-12-10T10:00")
    letters = tmp_path / "letters"

    def text_of(pack: Path) -> str:
        return "\n".join(p.extract_text() for p in PdfReader(pack).pages)

    def case_ids() -> list[str]:
        return sorted(e["case_id"] for m in letters.glob("*/manifest.json")
                      for e in json.loads(m.read_text(encoding="utf-8")))

    before = case_ids()
    assert "EHC-1" in before and "EHC-10" in before, before
    assert (letters / "print-pack-2026-12-10.pdf").exists()  # EHC-1's decision letter only
    assert "Mr Q Grandparent" in text_of(letters / "print-pack-2026-10-01.pdf")

    assert "Erased 1 case(s): EHC-1 (" in invoke("erase", "EHC-1", "--yes")
    assert case_ids() == [c for c in before if c == "EHC-10"]
    # A day left with no letter loses its folder and pack; the others are rebuilt without them.
    assert not (letters / "2026-12-10").exists()
    assert not (letters / "print-pack-2026-12-10.pdf").exists()
    shared = text_of(letters / "print-pack-2026-10-01.pdf")
    assert "Ms R Carer" in shared and "3 Brook Road" in shared
    assert "Mr Q Grandparent" not in shared and "Mill Lane" not in shared
    assert not re.search(r"EHC-1\b", shared)
    given = json.loads(invoke("export", "EHC-10"))["plugins"]["letters"]
    assert {g["case_id"] for g in given} == {"EHC-10"} and len(given) == case_ids().count("EHC-10")
    assert all(base64.b64decode(g["pdf_base64"]).startswith(b"%PDF") for g in given)
    kept = {p.name for p in (letters / "2026-10-01").glob("*.pdf")}
    assert kept == {e["file"] for e in json.loads(
        (letters / "2026-10-01" / "manifest.json").read_text(encoding="utf-8"))}
    # A letter written later that day takes a new number, never one still on disk.
    from datetime import date

    from ehcbridge.notices import Notice, NoticeRecipient
    from ehcbridge_letters.pack import add_letter
    from ehcbridge_letters.settings import LettersSettings

    later = Notice(key="EHC-10/r1/notice/late/letter", kind="views_request", channel="letter",
                   recipient=NoticeRecipient(role="parent", name="Ms R Carer",
                                             address=("3 Brook Road", "OK1 3CD")),
                   subject="Late", case_id="EHC-10")
    add_letter(LettersSettings(folder=letters), later, date(2026, 10, 1))
    assert len({p.name for p in (letters / "2026-10-01").glob("*.pdf")} - kept) == 1


def test_a_case_is_not_erased_under_a_delivery_an_engine_is_making(
        ehc: Any, store_url: str) -> None:
    import threading
    from datetime import UTC, datetime

    from ehcbridge.store import Store
    from ehcbridge.store import schema as t
    from ehcbridge.store.queue import DeliveryQueue

    store = Store(store_url)
    try:
        # An engine elsewhere has just claimed a retry of one of EHC-1's deliveries.
        d, e, r, p = t.deliveries, t.events, t.reviews, t.plans
        with store.begin() as conn:
            target = conn.execute(
                sa.select(d.c.id, d.c.plugin).join(e, e.c.id == d.c.event_id)
                .join(r, r.c.id == e.c.review_id).join(p, p.c.id == r.c.plan_id)
                .where(p.c.case_id == "EHC-1").limit(1)).one()
            conn.execute(sa.update(d).where(d.c.id == target.id).values(
                status="retrying", next_attempt_at=datetime(2026, 12, 1, tzinfo=UTC)))
        other = DeliveryQueue(store, "county-hall-2:4242", lease_seconds=60)
        claimed = other.claim(datetime(2026, 12, 9, 18, tzinfo=UTC), target.plugin)
        assert target.id in {c.id for c in claimed}
        before = rows_naming(store_url, TRACES)

        out = ehc("erase", "EHC-1", "--yes", "--wait", "0", code=1)
        assert ("EHC-1: a delivery is being made by engine worker county-hall-2:4242 right now; "
                "nothing was erased (run again once it is recorded)") in out
        assert rows_naming(store_url, TRACES) == before

        # The worker records its attempt a moment later: erase, waiting, then goes ahead.
        def record() -> None:
            other.finish(target.id, status="delivered", attempts=2,
                         next_attempt_at=datetime(2026, 12, 9, 18, tzinfo=UTC), error=None,
                         now=datetime(2026, 12, 9, 18, tzinfo=UTC))

        timer = threading.Timer(1.0, record)
        timer.start()
        try:
            assert "Erased 1 case(s): EHC-1 (" in ehc("erase", "EHC-1", "--yes", "--wait", "20")
        finally:
            timer.join()
        assert rows_naming(store_url, TRACES) == {}
    finally:
        store.close()
