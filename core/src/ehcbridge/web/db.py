"""Persistence for ``ehcbridge serve``: users, sessions, webhook event ids, views of reviews.

Like the core store it persists what it is given and decides nothing; it shares the store's
connection pool and transactions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ehcbridge.store import Store, StoreError
from ehcbridge.store import schema as t
from ehcbridge.web.tables import web_sessions, web_users, webhook_events
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

ROLES = ("viewer", "caseworker")
AUDIT_PLUGIN = "serve"  # the core audit table's "plugin" column for dashboard records
VIEWED = "review viewed"


@dataclass(frozen=True)
class User:
    """A dashboard user."""

    name: str
    role: str
    source: str
    password_hash: str | None = None


@dataclass(frozen=True)
class Session:
    """A signed-in browser."""

    user: str
    role: str
    csrf: str
    expires_at: datetime


def token_hash(token: str) -> str:
    """What is stored for a session cookie: its SHA-256, so a copy of the table signs no one in."""
    return hashlib.sha256(token.encode()).hexdigest()


class WebStore:
    """Reads and writes of the dashboard's own tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # Users -----------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str | None, source: str,
                 now: datetime) -> None:
        """Add a user, or replace the role and password of an existing one."""
        with self.store.begin() as c:
            row = c.execute(select(web_users.c.id).where(web_users.c.name == name)).first()
            values = {"role": role, "password_hash": password_hash, "source": source}
            if row is None:
                c.execute(insert(web_users).values(name=name, created_at=now, **values))
            else:
                c.execute(update(web_users).where(web_users.c.id == row.id).values(**values))

    def remove_user(self, name: str) -> None:
        """Remove a user and sign them out everywhere."""
        with self.store.begin() as c:
            gone = c.execute(delete(web_users).where(web_users.c.name == name)).rowcount
            if not gone:
                raise StoreError(f"no user named {name!r}")
            c.execute(delete(web_sessions).where(web_sessions.c.user_name == name))

    def user(self, name: str) -> User | None:
        """One user by name."""
        with self.store.engine.connect() as c:
            r = c.execute(select(web_users).where(web_users.c.name == name)).first()
        return User(r.name, r.role, r.source, r.password_hash) if r is not None else None

    def users(self) -> list[User]:
        """Every user, by name."""
        with self.store.engine.connect() as c:
            rows = c.execute(select(web_users).order_by(web_users.c.name)).all()
        return [User(r.name, r.role, r.source) for r in rows]

    # Sessions --------------------------------------------------------------------------------

    def open_session(self, token: str, user: str, role: str, csrf: str, now: datetime,
                     expires_at: datetime) -> None:
        """Store a new session (and drop expired ones)."""
        with self.store.begin() as c:
            c.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
            c.execute(insert(web_sessions).values(token_hash=token_hash(token), user_name=user,
                                                  role=role, csrf=csrf, created_at=now,
                                                  expires_at=expires_at))

    def session(self, token: str, now: datetime) -> Session | None:
        """The live session for a cookie value, or None."""
        with self.store.engine.connect() as c:
            r = c.execute(select(web_sessions).where(
                web_sessions.c.token_hash == token_hash(token))).first()
        if r is None or r.expires_at <= now:
            return None
        return Session(r.user_name, r.role, r.csrf, r.expires_at)

    def close_session(self, token: str) -> None:
        """Sign a browser out."""
        with self.store.begin() as c:
            c.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash(token)))

    # Audit of views --------------------------------------------------------------------------

    def record_view(self, user: str, case_id: str) -> None:
        """Who looked at which review, and when (the audit table adds the time)."""
        self.store.audit(AUDIT_PLUGIN, case_id, VIEWED, {"user": user})

    def views(self, case_id: str | None = None) -> list[dict[str, Any]]:
        """Audit records of review views, oldest first."""
        q = select(t.audit).where(t.audit.c.plugin == AUDIT_PLUGIN,
                                  t.audit.c.action == VIEWED).order_by(t.audit.c.id)
        if case_id is not None:
            q = q.where(t.audit.c.case_id == case_id)
        with self.store.engine.connect() as c:
            return [{"user": (r.detail or {}).get("user"), "case_id": r.case_id, "at": r.at}
                    for r in c.execute(q)]

    # Webhook event ids -----------------------------------------------------------------------

    def claim_event(self, event_id: str, type_: str, now: datetime) -> bool:
        """Record an event id; False when it was seen before (its effect already happened)."""
        try:
            with self.store.begin() as c:
                c.execute(insert(webhook_events).values(event_id=event_id, type=type_,
                                                        received_at=now))
        except IntegrityError:
            return False
        return True

    def release_event(self, event_id: str) -> None:
        """Forget an event id whose effect failed, so a corrected resend can take effect."""
        with self.store.begin() as c:
            c.execute(delete(webhook_events).where(webhook_events.c.event_id == event_id))

    def event_count(self) -> int:
        """How many webhook events took effect."""
        with self.store.engine.connect() as c:
            return len(c.execute(select(webhook_events.c.event_id)).all())
