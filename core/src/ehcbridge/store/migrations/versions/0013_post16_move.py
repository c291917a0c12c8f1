"""Plans: ``transfer_deadline`` (never written) becomes ``post16_move``, the date a young person
is to move to another post-16 institution; the clock dates the review 5 months before it
(SEND Regulations 2014 reg 18(2)).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RENAME COLUMN in place on both backends (SQLite since 3.25): no copy of a large table.
    op.alter_column("plans", "transfer_deadline", new_column_name="post16_move")


def downgrade() -> None:
    op.alter_column("plans", "post16_move", new_column_name="transfer_deadline")
