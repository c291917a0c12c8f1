"""Planner support: social care review dates of a pupil as preferred meeting dates."""

from __future__ import annotations

from datetime import date

from ehcbridge.events import DateConstraint, HookContext
from ehcbridge.models import Pupil, Review

from .importers import load_records, settings_of
from .records import Occasion, occasions


def occasions_for(ctx: HookContext, upn: str) -> list[Occasion]:
    """Known and projected social care review dates of one pupil (empty when unknown)."""
    records = load_records(ctx, upn)
    if not records:
        return []
    return occasions(records[0], projected_reviews=settings_of(ctx).projected_reviews)


def constraints_for(review: Review, pupil: Pupil, ctx: HookContext) -> list[DateConstraint]:
    """One preferred date per social care review between today and the review's due date.

    A known date outweighs a projected one; a projected date on the same day as a known one of
    the same kind is dropped.
    """
    settings = settings_of(ctx)
    if not settings.enabled or not pupil.upn:
        return []
    today: date = ctx.clock.now().date()
    found = [o for o in occasions_for(ctx, pupil.upn) if today <= o.day <= review.due_by]
    real_days = {(o.kind, o.day) for o in found if not o.projected}
    return [
        DateConstraint(day=o.day, reason=o.reason,
                       weight=settings.weight_projected if o.projected else settings.weight_real)
        for o in found
        if not (o.projected and (o.kind, o.day) in real_days)
    ]
