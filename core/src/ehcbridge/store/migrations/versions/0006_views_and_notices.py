"""Views received and files kept with a review; notices queued per recipient and channel; an
invitee's postal address and mobile (for families without email).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ehcbridge.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invitees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mobile", sa.String(32), nullable=True))
    op.create_table(
        "views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id"), nullable=False),
        sa.Column("contributor", sa.String(254), nullable=False),
        sa.Column("role", sa.String(20)),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_views"),
    )
    op.create_index("ix_views_review_id", "views", ["review_id"])
    op.create_table(
        "review_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id"), nullable=False),
        sa.Column("views_id", sa.Integer(), sa.ForeignKey("views.id")),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_files"),
    )
    op.create_index("ix_review_files_review_id", "review_files", ["review_id"])
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("reviews.id")),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("duty", sa.String(40)),
        sa.Column("role", sa.String(20)),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("plugin", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("detail", sa.Text()),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
        sa.UniqueConstraint("event_id", name="uq_notices_event_id"),
    )
    op.create_index("ix_notices_review_id", "notices", ["review_id"])


def downgrade() -> None:
    op.drop_index("ix_notices_review_id", "notices")
    op.drop_table("notices")
    op.drop_index("ix_review_files_review_id", "review_files")
    op.drop_table("review_files")
    op.drop_index("ix_views_review_id", "views")
    op.drop_table("views")
    with op.batch_alter_table("invitees", schema=None) as batch_op:
        batch_op.drop_column("mobile")
        batch_op.drop_column("address")
