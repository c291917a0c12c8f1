"""Drop indexes that repeat the leading column of a unique constraint (faster bulk imports).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # uq_invitees_review_role_email and uq_flags_review_flag already index review_id first.
    with op.batch_alter_table("invitees", schema=None) as batch_op:
        batch_op.drop_index("ix_invitees_review_id")
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.drop_index("ix_flags_review_id")


def downgrade() -> None:
    with op.batch_alter_table("flags", schema=None) as batch_op:
        batch_op.create_index("ix_flags_review_id", ["review_id"], unique=False)
    with op.batch_alter_table("invitees", schema=None) as batch_op:
        batch_op.create_index("ix_invitees_review_id", ["review_id"], unique=False)
