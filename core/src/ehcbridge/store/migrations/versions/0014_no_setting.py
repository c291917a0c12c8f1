"""Plans: ``no_setting``, true when the child or young person attends no school or other
institution, so the local authority arranges the review and no setting is invited (SEND
Regulations 2014 reg 21).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN with a constant default: in place on both backends, every plan at a setting.
    op.add_column("plans", sa.Column("no_setting", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.drop_column("no_setting")
