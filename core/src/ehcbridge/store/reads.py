"""Set reads for the engine: many cases or events in a few queries instead of a few per item.

The engine dispatches and delivers thousands of events in one pass; loading each case on its own
(seven queries) was most of a council's first run. These read the same rows as
:meth:`Store.case_by_review` and :meth:`Store.event`, a chunk of ids per query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, func, select

from ehcbridge.models import (
    Decision,
    Invitee,
    Meeting,
    Outcome,
    Plan,
    Pupil,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
)
from ehcbridge.store import schema as t
from ehcbridge.store.errors import StoreError

if TYPE_CHECKING:
    from ehcbridge.store import CaseView, EventRow, Store

CHUNK = 500


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    items = sorted(set(ids))
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def cases_by_review(store: Store, review_ids: Iterable[int]) -> dict[int, CaseView]:
    """The case view of each review id (unknown ids are left out), in seven queries a chunk."""
    out: dict[int, CaseView] = {}
    with store.engine.connect() as conn:
        for chunk in _chunks(review_ids):
            out.update(_case_views(conn, chunk))
    return out


def current_cases_in(conn: Connection, case_ids: list[str]) -> dict[str, CaseView]:
    """The case view of each case's current review, by case id, in the caller's transaction
    (a re-import compares a chunk of rows against these instead of reading each case)."""
    out: dict[str, CaseView] = {}
    for i in range(0, len(case_ids), CHUNK):
        rows = conn.execute(
            select(t.plans.c.case_id, func.max(t.reviews.c.id).label("rid"))
            .join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
            .where(and_(t.plans.c.case_id.in_(case_ids[i:i + CHUNK]),
                        t.reviews.c.current.is_(True)))
            .group_by(t.plans.c.case_id)).all()
        views = _case_views(conn, [r.rid for r in rows])
        out.update({r.case_id: views[r.rid] for r in rows if r.rid in views})
    return out


def _grouped(conn: Connection, table: Any, ids: list[int], order: Any) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = {}
    for row in conn.execute(select(table).where(table.c.review_id.in_(ids)).order_by(order)):
        found.setdefault(row.review_id, []).append(row)
    return found


def _case_views(conn: Connection, ids: list[int]) -> dict[int, CaseView]:
    from ehcbridge.store import CaseView, _meeting

    rows = conn.execute(
        select(t.reviews, t.plans.c.case_id, t.plans.c.issued_on,
               t.plans.c.last_review_decision, t.plans.c.plan_type, t.plans.c.post16_move,
               t.plans.c.no_setting,
               t.plans.c.coordinator_email, t.plans.c.pupil_id,
               t.pupils.c.upn, t.pupils.c.forename, t.pupils.c.surname, t.pupils.c.dob,
               t.pupils.c.nc_year, t.pupils.c.school_urn)
        .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
        .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
        .where(t.reviews.c.id.in_(ids))).all()
    # The latest meeting of each review, as Store.case shows it.
    latest = (select(t.meetings.c.review_id, func.max(t.meetings.c.id).label("mid"))
              .where(t.meetings.c.review_id.in_(ids)).group_by(t.meetings.c.review_id)
              .subquery())
    meetings = {m.review_id: m for m in conn.execute(
        select(t.meetings).join(latest, and_(latest.c.mid == t.meetings.c.id)))}
    flags = _grouped(conn, t.flags, ids, t.flags.c.flag)
    invitees = _grouped(conn, t.invitees, ids, t.invitees.c.id)
    invitations = _grouped(conn, t.invitations, ids, t.invitations.c.id)
    decisions = {d.review_id: d for d in conn.execute(
        select(t.decisions).where(t.decisions.c.review_id.in_(ids)))}
    fired: dict[int, set[str]] = {}  # timer kinds fired for each review's latest meeting
    for timer in conn.execute(select(t.timers.c.meeting_id, t.timers.c.kind).where(and_(
            t.timers.c.review_id.in_(ids), t.timers.c.fired.is_(True)))):
        fired.setdefault(timer.meeting_id, set()).add(timer.kind)
    out: dict[int, CaseView] = {}
    for r in rows:
        flag_rows = flags.get(r.id, [])
        d = decisions.get(r.id)
        m = meetings.get(r.id)
        out[r.id] = CaseView(
            plan=Plan(case_id=r.case_id, issued_on=r.issued_on,
                      last_review_decision=r.last_review_decision, plan_type=r.plan_type,
                      post16_move=r.post16_move, no_setting=bool(r.no_setting)),
            pupil=Pupil(upn=r.upn, forename=r.forename, surname=r.surname, dob=r.dob,
                        nc_year=r.nc_year, school_urn=r.school_urn),
            review=Review(id=r.id, case_id=r.case_id, kind=ReviewKind(r.kind), due_by=r.due_by,
                          status=ReviewStatus(r.status),
                          preparing_for_adulthood=bool(r.preparing_for_adulthood),
                          coordinator_email=r.coordinator_email,
                          flags=tuple(f.flag for f in flag_rows),
                          report_sent_on=r.report_sent_on),
            meeting=_meeting(m) if m is not None else None,
            invitees=[Invitee(role=Role(i.role), name=i.name, email=i.email, team=i.team,
                              source=i.source, response=i.response, address=i.address,
                              mobile=i.mobile)
                      for i in invitees.get(r.id, [])],
            decision=(Decision(outcome=Outcome(d.outcome), reason=d.reason,
                               decided_on=d.decided_on) if d is not None else None),
            flags={f.flag: f.detail or "" for f in flag_rows},
            invitations=[{"plugin": i.plugin, "email": i.email, "status": i.status,
                          "detail": i.detail or "", "at": i.at.isoformat()}
                         for i in invitations.get(r.id, [])],
            plan_id=r.plan_id, pupil_id=r.pupil_id,
            fired_timers=frozenset(fired.get(m.id, ())) if m is not None else frozenset(),
            current=bool(r.current),
        )
    return out


def events_by_id(store: Store, event_ids: Iterable[int]) -> dict[int, EventRow]:
    """Outbox rows by id, a chunk per query."""
    from ehcbridge.store import _event_row

    out: dict[int, EventRow] = {}
    with store.engine.connect() as conn:
        for chunk in _chunks(event_ids):
            for r in conn.execute(select(t.events).where(t.events.c.id.in_(chunk))):
                out[r.id] = _event_row(r)
    return out


def meetings_by_id(store: Store, meeting_ids: Iterable[int]) -> dict[int, Meeting]:
    """Meetings by id, a chunk per query."""
    from ehcbridge.store import _meeting

    out: dict[int, Meeting] = {}
    with store.engine.connect() as conn:
        for chunk in _chunks(meeting_ids):
            for m in conn.execute(select(t.meetings).where(t.meetings.c.id.in_(chunk))):
                out[m.id] = _meeting(m)
    return out


def undispatched_after(store: Store, after_id: int, limit: int = 500) -> list[EventRow]:
    """Undispatched events with an id above ``after_id``, oldest first (keyset paging, so
    events still waiting for their online link never hide the ones behind them)."""
    from ehcbridge.store import _event_row

    with store.engine.connect() as conn:
        rows = conn.execute(select(t.events).where(and_(t.events.c.dispatched.is_(False),
                                                        t.events.c.id > after_id))
                            .order_by(t.events.c.id).limit(limit)).all()
    return [_event_row(r) for r in rows]


_INVITATIONS = (select(t.invitations).where(t.invitations.c.review_id == bindparam("rid"))
                .order_by(t.invitations.c.id))


def invitations(store: Store, case_id: str) -> list[dict[str, Any]]:
    """The current review's invitation records (as :attr:`CaseView.invitations`), in one query
    instead of a whole case view: calendar plugins ask on every delivery (the review looked
    up once per delivery, see :meth:`Store.one_delivery`)."""
    with store.one_statement() as conn:
        try:
            review_id = store._review_of(conn, case_id)
        except StoreError:  # an unknown case has no invitations
            return []
        rows = conn.execute(_INVITATIONS, {"rid": review_id}).all()
    return [{"plugin": i.plugin, "email": i.email, "status": i.status, "detail": i.detail or "",
             "at": i.at.isoformat()} for i in rows]
