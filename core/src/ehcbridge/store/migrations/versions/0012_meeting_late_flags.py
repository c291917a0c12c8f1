"""Flags: a meeting only *set* late is ``meeting_late`` (cleared when it is moved into time), not
``deadline_late`` (something done late).

Before this revision the lifecycle raised ``deadline_late`` for a meeting set after its latest
date or with less than two weeks' notice, and nothing cleared it when the meeting was moved into
time. For reviews whose meeting is still to take place, such flags (recognised by the lifecycle's
own wording) become ``meeting_late``, so the next move into time clears them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The endings of the warnings lifecycle.schedule wrote for a meeting as set.
PLANNED = ("% gives less notice", "% is after the review is due (%", "% is after the latest meeting date")


def upgrade() -> None:
    flags = sa.table("flags", sa.column("flag", sa.String), sa.column("detail", sa.Text),
                     sa.column("raised_by", sa.String), sa.column("review_id", sa.Integer))
    reviews = sa.table("reviews", sa.column("id", sa.Integer), sa.column("status", sa.String))
    planned = sa.and_(flags.c.flag == "deadline_late", flags.c.raised_by == "lifecycle",
                      sa.or_(*(flags.c.detail.like(p) for p in PLANNED)),
                      flags.c.review_id.in_(sa.select(reviews.c.id)
                                            .where(reviews.c.status == "scheduled")))
    # One flag of a name per review: where meeting_late is already raised, the old one goes.
    late = sa.table("flags", sa.column("flag", sa.String), sa.column("review_id", sa.Integer)
                    ).alias("late")
    op.execute(flags.delete().where(planned, flags.c.review_id.in_(
        sa.select(late.c.review_id).where(late.c.flag == "meeting_late"))))
    op.execute(flags.update().where(planned).values(flag="meeting_late"))


def downgrade() -> None:
    flags = sa.table("flags", sa.column("flag", sa.String))
    op.execute(flags.update().where(flags.c.flag == "meeting_late")
               .values(flag="deadline_late"))
