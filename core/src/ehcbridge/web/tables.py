"""Tables of ``ehcbridge serve`` (migration 0007): users, sessions, webhook event ids.

Views of a review are written to the core's ``audit`` table (plugin ``serve``, action
``review viewed``) so there is one audit trail.
"""

from __future__ import annotations

from ehcbridge.store.schema import UTCDateTime, metadata
from sqlalchemy import Column, Integer, String, Table

web_users = Table(
    "web_users", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(254), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200)),  # None: signs in through Entra ID only
    Column("source", String(20), nullable=False),  # "local" or "entra"
    Column("created_at", UTCDateTime, nullable=False),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 of the cookie value
    Column("user_name", String(254), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("event_id", String(200), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
