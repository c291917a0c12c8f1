"""A delivery per (event, plugin, hook): the online meeting provider also gets the lifecycle hook.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_event_plugin", type_="unique")
        batch_op.create_unique_constraint("uq_deliveries_event_plugin_hook",
                                          ["event_id", "plugin", "hook"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_event_plugin_hook", type_="unique")
        batch_op.create_unique_constraint("uq_deliveries_event_plugin", ["event_id", "plugin"])
