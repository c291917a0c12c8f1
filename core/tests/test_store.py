"""The store keeps data across upgrades and holds plugin state, flags and the ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

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


def seed(store: Store) -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(upn="C999000000001", forename="Sam", surname="Ex"),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
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
