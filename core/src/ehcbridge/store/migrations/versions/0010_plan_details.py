"""Optional review-list details the invitation rules read: receiving school, outcome services;
events that belong to no review (termly list notices).

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ehcbridge.store.schema import UTCDateTime

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_details",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("receiving_school", sa.String(254)),
        sa.Column("outcome_services", sa.String(1000)),
        sa.Column("updated_at", UTCDateTime()),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("review_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("review_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("plan_details")

