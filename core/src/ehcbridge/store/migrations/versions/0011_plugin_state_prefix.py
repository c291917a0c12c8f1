"""PostgreSQL: an index for plugins' prefix lookups in their state (``key LIKE 'sent:...%'``).

Outside the "C" collation PostgreSQL cannot use the primary key for ``LIKE 'prefix%'``, so each
lookup scanned every key of the plugin: about 6 ms at 40,000 keys, once or more per delivery
(outlook's per-invitee sent keys grow by tens of thousands in a first run). ``varchar_pattern_ops``
compares byte by byte, which LIKE's prefix search can use. SQLite already searches a range of
the primary key instead (``Store.state_items``).

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "ix_plugin_state_key_prefix"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(INDEX, "plugin_state", ["plugin", "key"],
                        postgresql_ops={"key": "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="plugin_state")
