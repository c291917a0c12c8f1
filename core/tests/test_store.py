"""The store keeps data across upgrades and holds plugin state, flags and the ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.models import LONDON, Invitee, Outcome, Plan, Pupil, ReviewKind, Role
from ehcbridge.store import Store, StoreError
from sqlalchemy import text


def head_revision() -> str:
    """The newest migration (every test that checks "upgraded to head" compares with it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from ehcbridge.store import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def seed(store: Store, count: int = 1) -> None:
    """Cases EHC-1 ... EHC-<count>, each with an annual review due by 31 March 2027."""
    with store.begin() as conn:
        for n in range(1, count + 1):
            store.upsert_case(conn, pupil=Pupil(upn=f"C99900000000{n}", forename="Sam",
                                                surname="Ex"),
                              plan=Plan(case_id=f"EHC-{n}", issued_on=date(2026, 4, 1)),
                              coordinator_email=None, review_due=date(2027, 3, 31),
                              kind=ReviewKind.ANNUAL, pfa=False)


def test_reopening_an_existing_database_keeps_every_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keep.sqlite3'}"
    first = Store(url)
    seed(first)
    first.set_state_many("teams", {"event:EHC-1": {"id": "AAMk"}})
    first.close()
    again = Store(url)  # runs the migrations again: a no-op at head
    assert again.revision() == head_revision()
    assert again.case_ids() == ["EHC-1"]
    assert again.get_state("teams", "event:EHC-1") == {"id": "AAMk"}


def test_upgrade_from_an_empty_database_creates_every_table(store: Store) -> None:
    with store.engine.connect() as conn:
        version = conn.execute(text("select version_num from alembic_version")).scalar_one()
    assert version == head_revision()
    for table in ("pupils", "plans", "reviews", "meetings", "invitees", "decisions", "events",
                  "deliveries", "plugin_state", "audit", "flags", "invitations", "timers"):
        assert store.count(table) == 0


def test_decision_opens_the_next_review_and_keeps_dates_apart(store: Store) -> None:
    seed(store)
    start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
    store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1))
    store.mark_held("EHC-1")
    store.decide("EHC-1", outcome=Outcome.MAINTAIN, reason="progress good",
                 decided_on=date(2027, 3, 30), next_review_due=date(2028, 3, 29))
    case = store.case("EHC-1")
    # The DfE's "last review date" is the decision date, not the meeting date.
    assert case.plan.last_review_decision == date(2027, 3, 30)
    assert case.review.due_by == date(2028, 3, 29) and case.review.status == "due"
    with pytest.raises(StoreError, match="no meeting to record as held"):
        store.mark_held("EHC-1")


def test_state_flags_invitees_and_unknown_cases(store: Store) -> None:
    seed(store)
    store.set_state_many("outlook", {"a": 1, "b": [1, 2], "c%": "x"})
    store.set_state_many("outlook", {"a": 2})
    assert store.state_items("outlook") == [("a", 2), ("b", [1, 2]), ("c%", "x")]
    assert store.state_items("outlook", "c%") == [("c%", "x")]
    assert store.get_state("teams", "a") is None
    store.flag_review("EHC-1", "statutory_risk", "health not invited", raised_by="health")
    store.flag_review("EHC-1", "statutory_risk", "social care not invited", raised_by="health")
    assert store.case("EHC-1").flags == {"statutory_risk": "social care not invited"}
    assert [r["case_id"] for r in store.list_reviews(flag="statutory_risk")] == ["EHC-1"]
    assert store.add_invitee("EHC-1", Invitee(role=Role.PARENT, email="p@example.net"))
    assert not store.add_invitee("EHC-1", Invitee(role=Role.PARENT, email="p@example.net",
                                                  name="Parent"))
    store.set_response("EHC-1", "P@example.net", "accepted")
    [inv] = store.case("EHC-1").invitees
    assert (inv.name, inv.response) == ("Parent", "accepted")
    with pytest.raises(StoreError, match="unknown case 'EHC-404'"):
        store.case("EHC-404")


def test_upgrade_from_the_first_schema_keeps_every_row(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from ehcbridge.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    old = Store(url, migrate=False)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        # Rows as a 0001 installation wrote them.
        for sql in (
            "insert into pupils (id, upn, forename, surname) values (1, 'C999000000001', 'S', 'E')",
            "insert into plans (id, case_id, pupil_id, issued_on, plan_type) "
            "values (1, 'EHC-1', 1, '2026-04-01', 'ehcp')",
            "insert into reviews (id, plan_id, kind, due_by, status, preparing_for_adulthood, "
            "current) values (1, 1, 'annual', '2027-03-31', 'scheduled', 0, 1)",
            "insert into meetings (id, review_id, start, \"end\", online, status, sequence) "
            "values (1, 1, '2027-03-10 10:00:00', '2027-03-10 11:00:00', 0, 'scheduled', 0)",
            "insert into events (id, key, hook, action, review_id, meeting_id, occurred_at, "
            "payload, dispatched) values (1, 'EHC-1/r1/m1/scheduled/0', 'on_review_scheduled', "
            "'scheduled', 1, 1, '2027-01-04 09:00:00', '{}', 1)",
            "insert into deliveries (event_id, plugin, hook, status, attempts, next_attempt_at, "
            "created_at) values (1, 'teams', 'on_review_scheduled', 'delivered', 1, "
            "'2027-01-04 09:00:00', '2027-01-04 09:00:00')",
            "insert into plugin_state (plugin, key, value) values ('teams', 'event:EHC-1', "
            "'{\"id\": \"AAMk\"}')",
        ):
            conn.execute(text(sql))
    old.close()
    new = Store(url)  # upgrades to head
    assert new.revision() == head_revision()
    case = new.case("EHC-1")
    assert case.meeting is not None and case.meeting.start.hour == 10
    assert case.review.report_sent_on is None
    [row] = new.deliveries()
    assert (row.plugin, row.status) == ("teams", "delivered")
    assert new.get_state("teams", "event:EHC-1") == {"id": "AAMk"}
    # 0002: the same plugin may now hold a provider delivery and a lifecycle delivery.
    new.ensure_delivery(1, "teams", "provide_online_meeting",
                        datetime(2027, 1, 4, 9, tzinfo=LONDON))
    assert len(new.deliveries()) == 2


def test_meeting_report_and_decision_dates_are_kept_apart(store: Store) -> None:
    seed(store)
    start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
    store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1))
    with pytest.raises(StoreError, match="the report follows the meeting"):
        store.record_report("EHC-1", date(2027, 3, 1))
    store.mark_held("EHC-1", now=start + timedelta(hours=1))
    store.record_report("EHC-1", date(2027, 3, 19))
    held = store.case("EHC-1")
    assert held.review.report_sent_on == date(2027, 3, 19)
    assert held.meeting is not None and held.meeting.start.date() == date(2027, 3, 10)
    store.decide("EHC-1", outcome=Outcome.MAINTAIN, reason="ok", decided_on=date(2027, 4, 2),
                 next_review_due=date(2028, 4, 1))
    assert store.case("EHC-1").plan.last_review_decision == date(2027, 4, 2)
    assert store.case_by_review(held.review.id or 0).review.report_sent_on == date(2027, 3, 19)


# Helpers the engine leans on for a first run's tens of thousands of deliveries --------------


class Statements:
    """SQL statements run by a store, in order (to count what a call costs)."""

    def __init__(self, store: Store) -> None:
        from sqlalchemy import event

        self.sql: list[str] = []
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        self.sql.append(" ".join(statement.split()).lower())

    def count(self, fragment: str) -> int:
        return sum(fragment in s for s in self.sql)


def reviews_read(sql: Statements) -> int:
    """Lookups of a case's current review (``Store.review_id_for``)."""
    return sum(s.startswith("select reviews.id") and "join plans" in s for s in sql.sql)


def test_one_delivery_looks_the_review_up_once_until_a_new_review_opens(store: Store) -> None:
    seed(store)
    sql = Statements(store)
    store.flag_review("EHC-1", "f", "x", raised_by="p")
    store.record_invitation("EHC-1", "a@example.net", plugin="p", status="sent", detail="")
    assert reviews_read(sql) == 2  # outside a delivery: every call looks it up
    sql.sql.clear()
    with store.one_delivery():
        store.claim_invitation("EHC-1", "b@example.net", plugin="p")
        store.record_invitation("EHC-1", "b@example.net", plugin="p", status="sent", detail="")
        store.flag_review("EHC-1", "f", "y", raised_by="p")
        store.clear_flag("EHC-1", "f")
        assert reviews_read(sql) == 1
        first = store.case("EHC-1").review.id
        # A decision opens the next review: what was looked up is forgotten.
        start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
        store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1))
        store.mark_held("EHC-1", now=start + timedelta(hours=1))
        store.decide("EHC-1", outcome=Outcome.MAINTAIN, reason="ok",
                     decided_on=date(2027, 3, 30), next_review_due=date(2028, 3, 29))
        store.record_invitation("EHC-1", "c@example.net", plugin="p", status="sent", detail="")
    assert store.case("EHC-1").review.id != first
    assert [i["email"] for i in store.case("EHC-1").invitations] == ["c@example.net"]
    assert [i["email"] for i in store.case_by_review(first or 0).invitations] == [
        "a@example.net", "b@example.net"]


def test_one_statement_commits_as_it_runs(store: Store) -> None:
    seed(store)
    with store.one_statement() as conn:
        if store.backend == "postgresql":  # no BEGIN/COMMIT round trips: autocommit
            assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
        conn.execute(text("insert into audit (plugin, action, at) values ('p', 'a', "
                          "current_timestamp)"))
    assert store.count("audit") == 1
    store.audit("p", "EHC-1", "b", {"n": 1})
    assert store.count("audit") == 2
    # The pool's connections are back to transactions afterwards.
    with store.begin() as conn:
        conn.execute(text("insert into audit (plugin, action, at) values ('p', 'c', "
                          "current_timestamp)"))
        if store.backend == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        conn.rollback()
    assert store.count("audit") == 2


def test_claims_and_records_are_single_statements_with_the_same_outcomes(store: Store) -> None:
    seed(store)
    with store.one_delivery():
        store.claim_invitation("EHC-1", "warm@example.net", plugin="outlook")  # memo filled
        sql = Statements(store)
        assert store.claim_invitation("EHC-1", "A@Example.net", plugin="outlook") == "outlook"
        store.record_invitation("EHC-1", "A@Example.net", plugin="outlook", status="sent",
                                detail="")
    writes = [s for s in sql.sql if s.startswith(("insert", "update", "select"))]
    assert len(writes) == 2, writes  # one INSERT ... SELECT ... WHERE NOT EXISTS each
    assert all(s.startswith("insert") and "not (exists" in s for s in writes)
    # The same answers as before: own claim again, another plugin's claim or live invitation
    # wins, a failed invitation frees the address.
    assert store.claim_invitation("EHC-1", "a@example.net", plugin="outlook") == "outlook"
    assert store.claim_invitation("EHC-1", "a@example.net", plugin="teams") == "outlook"
    store.record_invitation("EHC-1", "t@example.net", plugin="teams", status="sent", detail="")
    assert store.claim_invitation("EHC-1", "T@example.net", plugin="outlook") == "teams"
    store.record_invitation("EHC-1", "f@example.net", plugin="teams", status="failed",
                            detail="550")
    assert store.claim_invitation("EHC-1", "f@example.net", plugin="outlook") == "outlook"
    # A second record for an address updates the first (latest status kept).
    store.record_invitation("EHC-1", "a@EXAMPLE.net", plugin="outlook", status="failed",
                            detail="refused")
    records = [(i["plugin"], i["email"].lower(), i["status"])
               for i in store.case("EHC-1").invitations]
    assert sorted(records) == [("outlook", "a@example.net", "failed"),
                               ("teams", "f@example.net", "failed"),
                               ("teams", "t@example.net", "sent")]


def test_ensure_delivery_creates_one_row_whatever_the_calls(store: Store) -> None:
    seed(store)
    now = datetime(2027, 1, 4, 9, tzinfo=LONDON)
    with store.begin() as conn:
        conn.execute(text("insert into events (id, key, hook, action, review_id, occurred_at, "
                          "payload, dispatched) values (7, 'k', 'on_review_scheduled', "
                          "'scheduled', 1, current_timestamp, '{}', false)"))
    first = store.ensure_delivery(7, "teams", "provide_online_meeting", now)
    again = store.ensure_delivery(7, "teams", "provide_online_meeting", now)
    other = store.ensure_delivery(7, "zoom", "provide_online_meeting", now)
    assert first.id == again.id != other.id
    assert (first.status, first.attempts, first.plugin) == ("pending", 0, "teams")
    assert store.count("deliveries") == 2


def test_mark_linkless_writes_a_batch_in_a_few_statements(store: Store) -> None:
    start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
    seed(store, 3)
    cases = {}
    for n in (1, 2, 3):
        store.schedule_meeting(f"EHC-{n}", start=start, end=start + timedelta(hours=1),
                               online=True)
        cases[n] = store.case(f"EHC-{n}")
    store.flag_review("EHC-2", "no_provider", "old detail", raised_by="engine")
    items = [(cases[n].meeting.id or 0, cases[n].review.id or 0, f"why {n}")  # type: ignore[union-attr]
             for n in (1, 2, 3)]
    items.append((cases[3].meeting.id or 0, cases[3].review.id or 0, "why 3, later"))  # type: ignore[union-attr]
    sql = Statements(store)
    store.mark_linkless(items, "no_provider")
    assert len(sql.sql) <= 4  # meetings (executemany), flags read, update, insert
    for n, detail in ((1, "why 1"), (2, "why 2"), (3, "why 3, later")):
        case = store.case(f"EHC-{n}")
        assert case.flags["no_provider"] == detail  # a later item for a review wins
        assert case.meeting is not None
        assert store.meeting_link_error(case.meeting.id or 0) == detail
    assert store.flag_count("no_provider") == 3


def test_a_batch_commits_its_writes_together_or_not_at_all(store: Store) -> None:
    seed(store)
    with store.batch():
        store.set_state_many("p", {"a": 1})
        assert store.get_state("p", "a") == 1  # reads in the batch see its writes
        with store.batch():  # a nested batch joins
            store.record_invitation("EHC-1", "a@example.net", plugin="p", status="sent",
                                    detail="")
        store.audit("p", "EHC-1", "x", {})
        with store.engine.connect() as other:  # another connection sees nothing yet
            assert other.execute(text("select count(*) from plugin_state where plugin = 'p'")
                                 ).scalar_one() == 0
    assert store.get_state("p", "a") == 1 and store.count("audit") == 1
    assert len(store.case("EHC-1").invitations) == 1

    with pytest.raises(RuntimeError), store.batch():
        store.set_state_many("p", {"b": 2})
        store.claim_invitation("EHC-1", "b@example.net", plugin="p")
        raise RuntimeError("the next write failed")
    assert store.get_state("p", "b") is None
    assert store.claim_invitation("EHC-1", "b@example.net", plugin="q") == "q"  # never claimed


def test_a_plugins_prefix_lookup_uses_an_index_not_a_scan_of_every_key(store: Store) -> None:
    keys = {f"sent:{n}:{n % 7}_x@example.net": n for n in range(20_000)}
    keys["sent:1%:odd@example.net"] = -1  # LIKE's own characters in a key are literal
    store.set_state_many("outlook", keys)
    store.set_state_many("other", {"sent:12:": 0})
    seen: list[tuple[str, Any]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: Any,
                *_args: object) -> None:
        seen.append((statement, params))

    from sqlalchemy import event

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        found = store.state_items("outlook", "sent:12:")
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert found == [("sent:12:5_x@example.net", 12)]
    assert store.state_items("outlook", "sent:1%:") == [("sent:1%:odd@example.net", -1)]
    [(statement, params)] = seen
    explain = "EXPLAIN QUERY PLAN " if store.backend == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        if store.backend == "postgresql":
            conn.exec_driver_sql("ANALYZE plugin_state")
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(explain + statement, params))
    assert "plugin_state" in plan or "Index" in plan
    assert "Seq Scan" not in plan and "SCAN plugin_state" not in plan, plan


def test_upgrade_turns_a_flag_for_a_meeting_only_set_late_into_meeting_late(
        store: Store) -> None:
    start = datetime(2027, 2, 24, 10, tzinfo=LONDON)  # in time: nothing flagged by this
    seed(store, 3)
    for n in (1, 2):
        store.schedule_meeting(f"EHC-{n}", start=start, end=start + timedelta(hours=1),
                               now=datetime(2026, 11, 2, 9, tzinfo=LONDON))
    assert store.flag_count("meeting_late") == 0
    # As the lifecycle worded them before revision 0012.
    planned = ("meeting_held (SEND Regs 2014 reg 20(10); CFA 2014 s44(1)) was due by "
               "2027-03-03; the meeting on 2027-04-14 is after the review is due (2027-03-31)")
    done = ("advice_circulated (SEND Regs 2014 reg 20(4)) was due by 2027-02-24; recorded as "
            "done on 2027-03-01, 5 days late")
    store.flag_review("EHC-1", "deadline_late", planned, raised_by="lifecycle")
    store.flag_review("EHC-2", "deadline_late", done, raised_by="lifecycle")
    store.flag_review("EHC-3", "deadline_late", planned, raised_by="lifecycle")  # no meeting
    with store.engine.begin() as conn:
        # Back to revision 0011's shape: 0013 renamed a column since, 0014 added one.
        conn.execute(text("alter table plans drop column no_setting"))
        conn.execute(text("alter table plans rename column post16_move to transfer_deadline"))
        conn.execute(text("update alembic_version set version_num = '0011'"))
    store.migrate()
    assert store.revision() == head_revision()
    assert store.case("EHC-1").flags == {"meeting_late": planned}
    assert store.case("EHC-2").flags == {"deadline_late": done}  # something done late stays
    assert store.case("EHC-3").flags == {"deadline_late": planned}


def test_the_engine_reads_an_invitees_postal_address_and_mobile(store: Store) -> None:
    """The engine's set reads give plugins the same invitees as ``Store.case``: a family
    without email keeps its address (for letters) and mobile (for texts)."""
    from ehcbridge.store import reads

    seed(store)
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, name="Gran", address="1 Old Road\nDE1",
                                       mobile="07700900123"))
    case = store.case("EHC-1")
    assert reads.cases_by_review(store, [case.review.id or 0])[case.review.id or 0] \
        .invitees == case.invitees
    assert case.invitees[0].address == "1 Old Road\nDE1"


def test_a_decision_hands_the_invitees_on_to_the_next_review(store: Store) -> None:
    """The family and named professionals are carried, without their answers; parents from
    the MIS, rule invitees and teams routing found are left to be found again."""
    seed(store)
    ep = Invitee(role=Role.OTHER, name="EP", email="ep@la.example.gov.uk")
    for invitee in (Invitee(role=Role.PARENT, email="p@example.net", source="import"), ep,
                    Invitee(role=Role.PARENT, email="mis@example.net", source="mis"),
                    Invitee(role=Role.SOCIAL_CARE, email="csw@la.example.gov.uk",
                            source="rule:csw-group"),
                    Invitee(role=Role.HEALTH, name="CAMHS", email="camhs@nhs.example",
                            team="CAMHS", source="routed")):
        store.add_invitee("EHC-1", invitee)
    # A named therapist routed to her team's mailbox: carried as named, routed again next year.
    store.add_invitee("EHC-1", Invitee(role=Role.HEALTH, name="Dr Salt", email="salt@nhs.example",
                                       team="SALT", source="routed"),
                      routed_from="dr.salt@nhs.example")
    store.set_response("EHC-1", "p@example.net", "accepted")
    start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
    store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1))
    store.mark_held("EHC-1")
    store.decide("EHC-1", outcome=Outcome.MAINTAIN, reason="progress good",
                 decided_on=date(2027, 3, 30), next_review_due=None)
    after = store.case("EHC-1").invitees
    assert [(i.role, i.email, i.team, i.source, i.response) for i in after] == [
        (Role.PARENT, "p@example.net", None, "import", None),
        (Role.OTHER, "ep@la.example.gov.uk", None, "manual", None),
        (Role.HEALTH, "dr.salt@nhs.example", None, "carried", None)]


def test_a_year_8_pupils_next_review_prepares_for_adulthood(store: Store) -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000009", forename="Sam", surname="Ex",
                                            nc_year=8),
                          plan=Plan(case_id="EHC-8", issued_on=date(2026, 4, 1)),
                          coordinator_email=None, review_due=date(2027, 3, 31),
                          kind=ReviewKind.ANNUAL, pfa=False)
    start = datetime(2027, 3, 10, 10, tzinfo=LONDON)
    store.schedule_meeting("EHC-8", start=start, end=start + timedelta(hours=1))
    store.mark_held("EHC-8")
    store.decide("EHC-8", outcome=Outcome.MAINTAIN, reason="progress good",
                 decided_on=date(2027, 3, 30), next_review_due=None,
                 now=datetime(2027, 3, 30, 9, tzinfo=LONDON))
    assert store.case("EHC-8").review.preparing_for_adulthood is True


def test_an_invitee_is_removed_by_their_address_or_the_one_they_were_routed_from(
        store: Store) -> None:
    seed(store)
    store.add_invitee("EHC-1", Invitee(role=Role.HEALTH, name="Dr Salt", email="salt@nhs.example",
                                       team="SALT", source="routed"),
                      routed_from="dr.salt@nhs.example")
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, name="Gran", address="1 Old Road"))
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, email="p@example.net"))
    with store.begin() as conn:
        assert store.remove_invitees(conn, "EHC-1") == []  # nobody named: nobody removed
        assert [(i.team, origin) for i, origin in store.remove_invitees(
            conn, "EHC-1", email="Dr.Salt@nhs.example")] == [("SALT", "dr.salt@nhs.example")]
        assert store.remove_invitees(conn, "EHC-1", email="p@example.net", role="setting") == []
        assert [i.address for i, _ in store.remove_invitees(conn, "EHC-1", name="Gran")] == [
            "1 Old Road"]
    assert [i.email for i in store.case("EHC-1").invitees] == ["p@example.net"]


def test_the_engines_set_read_is_the_case_store_case_gives(store: Store) -> None:
    """Everything but the duties (which the engine does not read per event), the timers
    already fired included: the notices ask whether the views stage has fired."""
    import dataclasses
    from datetime import datetime as dt

    from ehcbridge.store import reads

    seed(store)
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, email="p@example.net"))
    start = dt(2027, 3, 10, 10, tzinfo=LONDON)
    store.schedule_meeting("EHC-1", start=start, end=start + timedelta(hours=1),
                           now=dt(2027, 1, 4, 8, tzinfo=LONDON))
    with store.begin() as conn:
        store.take_due_timers(conn, dt(2027, 1, 28, 9, tzinfo=LONDON))
    case = store.case("EHC-1")
    assert "views_request" in case.fired_timers
    read = reads.cases_by_review(store, [case.review.id or 0])[case.review.id or 0]
    assert dataclasses.replace(read, duties=case.duties) == case


def test_the_light_duty_reads_agree_with_the_full_one(store: Store) -> None:
    """The dashboard's counts read (name, status) in SQL and (name, status, due) rows: the
    same duties as duty_rows, without building each one."""
    from ehcbridge.models import Duty, DutyStatus

    seed(store, 2)
    for n, statuses in ((1, ("met", "missed", "pending")), (2, ("missed", "at_risk"))):
        store.save_duties(store.case(f"EHC-{n}").review.id or 0, [
            Duty(name=name, rule="reg 20", kind="statutory", due=date(2027, 1, 10 + i),
                 owed_by="la", owed_to=("parent",), status=DutyStatus(status))
            for i, (name, status) in enumerate(zip(
                ("invitations_sent", "meeting_held", "report_sent"), statuses, strict=False))])
    full = store.duty_rows()
    assert len(full) == 5
    by: dict[tuple[str, str], int] = {}
    for _c, _r, d in full:
        by[(d.name, d.status.value)] = by.get((d.name, d.status.value), 0) + 1
    assert store.duty_counts() == by
    assert sorted(store.duty_facts(["missed", "at_risk"])) == sorted(
        (c, r, (d.name, d.status.value, d.due)) for c, r, d in full
        if d.status.value in ("missed", "at_risk"))
    assert store.duty_facts(["missed"], current=False) == []  # every review here is current
    assert store.current_review_ids(["EHC-1", "EHC-2", "EHC-404"]) == {
        "EHC-1": store.case("EHC-1").review.id, "EHC-2": store.case("EHC-2").review.id}
    assert store.current_duties_due(["missed", "pending"], [
        (date(2027, 1, 10), date(2027, 1, 10)), (date(2027, 1, 11), date(2027, 1, 12)),
        (date(2027, 2, 1), date(2027, 2, 2))]) == [1, 2, 0]
