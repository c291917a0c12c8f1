"""Table definitions (SQLAlchemy Core). Changes here need an Alembic migration in migrations/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC and read back aware, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to naive UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read back as an aware UTC datetime."""
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC)


pupils = Table(
    "pupils", metadata,
    Column("id", Integer, primary_key=True),
    Column("upn", String(13), unique=True, nullable=True),
    Column("forename", String(100), nullable=False),
    Column("surname", String(100), nullable=False),
    Column("dob", Date),
    Column("nc_year", Integer),
    Column("school_urn", String(10)),
    Column("updated_at", UTCDateTime),
)

plans = Table(
    "plans", metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", String(64), unique=True, nullable=False),
    Column("pupil_id", Integer, ForeignKey("pupils.id"), nullable=False, index=True),
    Column("issued_on", Date, nullable=False),
    Column("last_review_decision", Date),
    Column("plan_type", String(32), nullable=False, default="ehcp"),
    Column("coordinator_email", String(254)),
    Column("post16_move", Date),  # reg 18(2): a move between post-16 institutions
    Column("no_setting", Boolean, nullable=False, default=False,
           server_default=false()),  # reg 21: the LA arranges the review
)

reviews = Table(
    "reviews", metadata,
    Column("id", Integer, primary_key=True),
    Column("plan_id", Integer, ForeignKey("plans.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("due_by", Date, nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("preparing_for_adulthood", Boolean, nullable=False, default=False),
    Column("current", Boolean, nullable=False, default=True),
    Column("report_sent_on", Date),
    Column("created_at", UTCDateTime),
)

meetings = Table(
    "meetings", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, index=True),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("location", String(500)),
    Column("online", Boolean, nullable=False, default=False),
    Column("join_url", Text),
    Column("provider", String(40)),
    Column("external_id", String(200)),
    Column("link_error", Text),
    Column("organiser", String(254)),
    Column("status", String(20), nullable=False),
    Column("sequence", Integer, nullable=False, default=0),
    Column("held_at", UTCDateTime),
)

invitees = Table(
    "invitees", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("name", String(200)),
    Column("email", String(254)),
    Column("team", String(200)),
    Column("source", String(40), nullable=False, default="manual"),
    Column("response", String(40)),
    Column("routed_from", String(254)),
    Column("added_at", UTCDateTime),
    Column("address", Text),
    Column("mobile", String(32)),
    UniqueConstraint("review_id", "role", "email", name="uq_invitees_review_role_email"),
)

invitations = Table(
    "invitations", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, index=True),
    Column("plugin", String(64), nullable=False),
    Column("email", String(254), nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", Text),
    Column("at", UTCDateTime, nullable=False),
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, unique=True),
    Column("outcome", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_on", Date, nullable=False),
)

flags = Table(
    "flags", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False),
    Column("flag", String(64), nullable=False),
    Column("detail", Text),
    Column("raised_by", String(64)),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("review_id", "flag", name="uq_flags_review_flag"),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("hook", String(40), nullable=False),
    Column("action", String(20), nullable=False),
    # Null for an event of no review (a termly list notice, migration 0010).
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=True, index=True),
    Column("meeting_id", Integer, ForeignKey("meetings.id")),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    Column("dispatched", Boolean, nullable=False, default=False),
    Index("ix_events_dispatched", "dispatched", "id"),
)

timers = Table(
    "timers", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, index=True),
    Column("meeting_id", Integer, ForeignKey("meetings.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("fired", Boolean, nullable=False, default=False),
    Index("ix_timers_pending", "fired", "due_at"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False),
    Column("plugin", String(64), nullable=False),
    Column("hook", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    # The worker attempting it and until when its claim holds (several workers, issue 17).
    Column("claimed_by", String(120)),
    Column("lease_until", UTCDateTime),
    UniqueConstraint("event_id", "plugin", "hook", name="uq_deliveries_event_plugin_hook"),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
)

duties = Table(
    "duties", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False),
    Column("name", String(40), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("due", Date),
    Column("owed_by", String(20), nullable=False),
    Column("owed_to", JSON, nullable=False, default=list),
    Column("status", String(20), nullable=False, index=True),
    Column("met_on", Date),
    Column("evidence", Text),
    Column("updated_at", UTCDateTime),
    UniqueConstraint("review_id", "name", name="uq_duties_review_name"),
)

plugin_state = Table(
    "plugin_state", metadata,
    Column("plugin", String(64), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("value", JSON),
    Column("updated_at", UTCDateTime),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("plugin", String(64), nullable=False),
    Column("case_id", String(64), index=True),
    Column("action", String(64), nullable=False),
    Column("detail", JSON),
    Column("at", UTCDateTime, nullable=False),
)

# Optional review-list columns the invitation rules read (receiving school, outcome services).
plan_details = Table(
    "plan_details", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("receiving_school", String(254)),
    Column("outcome_services", String(1000)),
    Column("updated_at", UTCDateTime),
)

# Views and advice received for a review, and the files kept with it (migration 0006).
views = Table(
    "views", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, index=True),
    Column("contributor", String(254), nullable=False),
    Column("role", String(20)),
    Column("received_on", Date, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

review_files = Table(
    "review_files", metadata,
    Column("id", Integer, primary_key=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), nullable=False, index=True),
    Column("views_id", Integer, ForeignKey("views.id")),
    Column("kind", String(20), nullable=False),  # views | report
    Column("filename", String(255), nullable=False),
    Column("content_type", String(120), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# One row per notice queued (one recipient, one channel), updated as its delivery goes.
notices = Table(
    "notices", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False, unique=True),
    Column("review_id", Integer, ForeignKey("reviews.id"), index=True),
    Column("kind", String(40), nullable=False),
    Column("duty", String(40)),
    Column("role", String(20)),
    Column("channel", String(10), nullable=False),
    Column("plugin", String(64)),
    Column("status", String(20), nullable=False),  # queued | sent | delivered | failed
    Column("reference", String(200)),
    Column("detail", Text),
    Column("queued_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
)


def at_school(urn: str) -> Any:
    """Where a review's pupil is at the school ``urn``: a child at no school or college (reg
    21) is at none, whatever URN a list still shows of a school they left."""
    return and_(pupils.c.school_urn == urn, plans.c.no_setting.is_(False))
