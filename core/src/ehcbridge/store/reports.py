"""Read-only queries for the LA's lists and returns: plain rows, one set query each."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from ehcbridge.models import LONDON, ReviewStatus
from ehcbridge.store import schema as t

if TYPE_CHECKING:
    from ehcbridge.store import Store

OPEN = (ReviewStatus.DUE.value, ReviewStatus.SCHEDULED.value, ReviewStatus.HELD.value)


def _latest_meeting() -> Any:
    m = t.meetings
    return (select(func.max(m.c.id)).where(m.c.review_id == t.reviews.c.id)
            .correlate(t.reviews).scalar_subquery())


def termly_rows(store: Store, due_from: date, due_to: date,
                school_urn: str | None = None) -> list[dict[str, Any]]:
    """Open current reviews due between the two dates, with the pupil's initials and NC year."""
    m = t.meetings
    q = (select(t.plans.c.case_id, t.reviews.c.kind, t.reviews.c.due_by, t.reviews.c.status,
                t.reviews.c.preparing_for_adulthood, t.pupils.c.forename, t.pupils.c.surname,
                t.pupils.c.nc_year, t.pupils.c.school_urn, t.plans.c.post16_move,
                t.plans.c.no_setting,
                m.c.start.label("meeting_start"), m.c.status.label("meeting_status"))
         .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
         .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
         .outerjoin(m, m.c.id == _latest_meeting())
         .where(and_(t.reviews.c.current.is_(True), t.reviews.c.status.in_(OPEN),
                     t.reviews.c.due_by >= due_from, t.reviews.c.due_by <= due_to))
         .order_by(t.pupils.c.school_urn, t.reviews.c.due_by, t.plans.c.case_id))
    if school_urn is not None:
        q = q.where(t.at_school(school_urn))
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def review_facts(store: Store, due_from: date, due_to: date) -> list[dict[str, Any]]:
    """Every review (current or past) due between the dates, with its held meeting, report and
    decision dates, for the annual-review figures."""
    m = t.meetings
    held = (select(m.c.review_id, func.max(m.c.start).label("held_start"))
            .where(m.c.status == "held").group_by(m.c.review_id).subquery())
    q = (select(t.reviews.c.id.label("review_id"), t.plans.c.case_id, t.reviews.c.kind,
                t.reviews.c.due_by, t.reviews.c.status, t.reviews.c.report_sent_on,
                t.pupils.c.school_urn, held.c.held_start,
                t.decisions.c.outcome, t.decisions.c.decided_on)
         .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
         .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
         .outerjoin(held, held.c.review_id == t.reviews.c.id)
         .outerjoin(t.decisions, t.decisions.c.review_id == t.reviews.c.id)
         .where(and_(t.reviews.c.due_by >= due_from, t.reviews.c.due_by <= due_to,
                     t.reviews.c.status != ReviewStatus.CANCELLED.value))
         .order_by(t.reviews.c.due_by, t.plans.c.case_id))
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def schools_by_case(store: Store) -> dict[str, str | None]:
    """Each case id's school URN (the pupil's current school)."""
    q = select(t.plans.c.case_id, t.pupils.c.school_urn).join(
        t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
    with store.engine.connect() as conn:
        return {r.case_id: r.school_urn for r in conn.execute(q)}


def sen2_rows(store: Store, census: date) -> list[dict[str, Any]]:
    """Per plan: the latest review meeting held on or before the census date and the decision
    that followed it (the SEN2 person-level return's annual-review items)."""
    m = t.meetings
    cutoff = datetime.combine(census + timedelta(days=1), time(), tzinfo=LONDON)
    held = (select(t.reviews.c.plan_id, m.c.review_id, m.c.start)
            .join(t.reviews, t.reviews.c.id == m.c.review_id)
            .where(and_(m.c.status == "held", m.c.start < cutoff)).subquery())
    latest = (select(held.c.plan_id, func.max(held.c.start).label("start"))
              .group_by(held.c.plan_id).subquery())
    q = (select(t.plans.c.case_id, t.pupils.c.upn, t.pupils.c.school_urn, t.plans.c.no_setting,
                latest.c.start.label("meeting_start"), held.c.review_id,
                t.decisions.c.outcome, t.decisions.c.decided_on)
         .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
         .outerjoin(latest, latest.c.plan_id == t.plans.c.id)
         .outerjoin(held, and_(held.c.plan_id == latest.c.plan_id,
                               held.c.start == latest.c.start))
         .outerjoin(t.decisions, t.decisions.c.review_id == held.c.review_id)
         .order_by(t.plans.c.case_id))
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def rule_invitee_counts(store: Store) -> dict[str, int]:
    """Invitees added by each invitation rule (source ``rule:<name>``), on every review."""
    q = (select(t.invitees.c.source, func.count())
         .where(t.invitees.c.source.like("rule:%")).group_by(t.invitees.c.source))
    with store.engine.connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(q)}


def event_delivery_counts(store: Store, action: str) -> dict[str, int]:
    """Deliveries of the events with this action (e.g. notices of one kind), by status."""
    q = (select(t.deliveries.c.status, func.count())
         .join(t.events, t.events.c.id == t.deliveries.c.event_id)
         .where(t.events.c.action == action).group_by(t.deliveries.c.status))
    with store.engine.connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(q)}



def duty_outcomes(store: Store, names: list[str], statuses: list[str], due_from: date,
                  due_to: date) -> list[tuple[str, str, date, str]]:
    """(case id, duty name, due, status) of the named duties due in the window with one of the
    statuses: the figures' one set query (no model per row)."""
    q = (select(t.plans.c.case_id, t.duties.c.name, t.duties.c.due, t.duties.c.status)
         .join(t.reviews, t.reviews.c.id == t.duties.c.review_id)
         .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
         .where(and_(t.duties.c.name.in_(names), t.duties.c.status.in_(statuses),
                     t.duties.c.due >= due_from, t.duties.c.due <= due_to)))
    with store.engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(q)]


def next_review_invitees(store: Store) -> tuple[int, int]:
    """(current reviews a decision opened, invitees they have): how many people next year's
    reviews already know to invite."""
    earlier = t.reviews.alias("earlier")
    opened = (select(t.reviews.c.id).where(and_(
        t.reviews.c.current.is_(True),
        select(earlier.c.id).join(t.decisions, t.decisions.c.review_id == earlier.c.id)
        .where(and_(earlier.c.plan_id == t.reviews.c.plan_id, earlier.c.id < t.reviews.c.id))
        .exists())).subquery())
    with store.engine.connect() as conn:
        reviews = int(conn.execute(select(func.count()).select_from(opened)).scalar_one())
        invitees = int(conn.execute(select(func.count()).select_from(t.invitees).where(
            t.invitees.c.review_id.in_(select(opened.c.id)))).scalar_one())
    return reviews, invitees
