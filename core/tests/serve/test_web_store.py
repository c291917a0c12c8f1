"""The dashboard's tables on SQLite, and on PostgreSQL when EHCBRIDGE_TEST_DATABASE_URL is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ehcbridge.store import Store, StoreError
from ehcbridge.web.db import WebStore

T0 = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)


def test_users_sessions_event_ids_and_views(store: Store) -> None:
    web = WebStore(store)
    web.add_user("jo", "viewer", "hash-1", "local", T0)
    web.add_user("jo", "caseworker", "hash-2", "local", T0)  # same name: replaced
    assert [(u.name, u.role) for u in web.users()] == [("jo", "caseworker")]
    user = web.user("jo")
    assert user is not None and user.password_hash == "hash-2"

    web.open_session("cookie-value", "jo", "caseworker", "csrf-1", T0, T0 + timedelta(hours=8))
    session = web.session("cookie-value", T0 + timedelta(hours=1))
    assert session is not None and session.user == "jo" and session.csrf == "csrf-1"
    assert web.session("cookie-value", T0 + timedelta(hours=9)) is None  # expired
    assert web.session("another", T0) is None
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("select token_hash from web_sessions").scalar_one()
    assert stored != "cookie-value" and len(stored) == 64  # only its hash is kept

    web.remove_user("jo")  # signs out everywhere
    assert web.session("cookie-value", T0) is None
    with pytest.raises(StoreError, match="no user named"):
        web.remove_user("jo")

    assert web.claim_event("evt-1", "meeting.held", T0)
    assert not web.claim_event("evt-1", "meeting.held", T0)
    web.release_event("evt-1")
    assert web.claim_event("evt-1", "meeting.held", T0)
    assert web.event_count() == 1

    web.record_view("jo", "EHC-1")
    assert [(v["user"], v["case_id"]) for v in web.views("EHC-1")] == [("jo", "EHC-1")]
