"""Erasing cases: every row the store keeps about a child's plan, in one transaction.

Children's data is kept only as long as it is needed (UK GDPR art. 5(1)(e)): once a plan has
ceased and the council's retention period has passed, or a case was entered by mistake, the
council erases it. The store decides nothing: which cases to erase is the caller's choice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, func, or_, select

from ehcbridge.store import schema as t
from ehcbridge.store.errors import StoreError

if TYPE_CHECKING:
    from ehcbridge.store import Store

CHUNK = 500  # ids per IN (...): well under every backend's limit on bound parameters


def ceased_before(store: Store, day: date) -> list[str]:
    """Case ids whose plan ceased (the last decision of the plan is ``cease``) before ``day``."""
    last = (select(t.reviews.c.plan_id, func.max(t.reviews.c.id).label("rid"))
            .group_by(t.reviews.c.plan_id).subquery())
    q = (select(t.plans.c.case_id)
         .join(last, last.c.plan_id == t.plans.c.id)
         .join(t.decisions, t.decisions.c.review_id == last.c.rid)
         .where(and_(t.decisions.c.outcome == "cease", t.decisions.c.decided_on < day))
         .order_by(t.plans.c.case_id))
    with store.engine.connect() as conn:
        return [str(r) for r in conn.execute(q).scalars()]


def erase_cases(store: Store, case_ids: Iterable[str]) -> dict[str, int]:
    """Delete every row of these cases (pupil, plan, reviews and all that hangs off them, their
    audit records and the plugins' state entries named by the case id or the pupil's UPN); all
    or nothing.
    Returns rows deleted by table. StoreError names the first unknown case."""
    wanted = sorted(set(case_ids))
    counts: dict[str, int] = {}
    with store.begin() as conn:
        known = {r.case_id: (r.id, r.pupil_id) for chunk in _chunks(wanted)
                 for r in conn.execute(select(t.plans.c.case_id, t.plans.c.id,
                                              t.plans.c.pupil_id)
                                       .where(t.plans.c.case_id.in_(chunk)))}
        missing = [c for c in wanted if c not in known]
        if missing:
            raise StoreError(f"unknown case {missing[0]!r}: nothing was erased",
                             case_id=missing[0], field="case_id")
        plan_ids = [p for p, _pupil in known.values()]
        pupil_ids = sorted({pupil for _p, pupil in known.values()})
        review_ids = _ids_in(conn, t.reviews.c.id, t.reviews.c.plan_id, plan_ids)
        event_ids = _ids_in(conn, t.events.c.id, t.events.c.review_id, review_ids)

        def gone(table: Any, column: Any, ids: Sequence[int | str]) -> None:
            for chunk in _chunks(ids):
                n = conn.execute(delete(table).where(column.in_(chunk))).rowcount
                counts[table.name] = counts.get(table.name, 0) + max(n, 0)

        # Children first: each table before the one its foreign keys point at.
        gone(t.deliveries, t.deliveries.c.event_id, event_ids)
        gone(t.notices, t.notices.c.event_id, event_ids)
        gone(t.notices, t.notices.c.review_id, review_ids)
        gone(t.timers, t.timers.c.review_id, review_ids)
        gone(t.events, t.events.c.id, event_ids)
        gone(t.review_files, t.review_files.c.review_id, review_ids)
        for table in (t.views, t.duties, t.flags, t.invitations, t.invitees, t.decisions,
                      t.meetings):
            gone(table, table.c.review_id, review_ids)
        gone(t.reviews, t.reviews.c.id, review_ids)
        gone(t.plans, t.plans.c.id, plan_ids)
        # A pupil with another plan still kept (a plan ceased, then a new one) stays.
        shared = set(_ids_in(conn, t.plans.c.pupil_id, t.plans.c.pupil_id, pupil_ids))
        leaving = [p for p in pupil_ids if p not in shared]
        upns = [str(u) for chunk in _chunks(leaving) for u in conn.execute(
            select(t.pupils.c.upn).where(t.pupils.c.id.in_(chunk))).scalars() if u]
        gone(t.pupils, t.pupils.c.id, leaving)
        gone(t.plan_details, t.plan_details.c.case_id, wanted)
        gone(t.audit, t.audit.c.case_id, wanted)
        _forget_state(conn, [*wanted, *upns], counts)
        _forget_review_keys(conn, review_ids, counts)
    return counts


def _forget_state(conn: Connection, names: list[str], counts: dict[str, int]) -> None:
    """Plugins' state entries whose key names one of the cases (``notice:EHC-1/r2/...``,
    ``sent:EHC-1:...``) or the UPN of a pupil erased (an MIS snapshot's ``pupil:<UPN>``): the
    name between separators, so EHC-1 does not take EHC-10."""
    for name in names:
        named = re.compile(rf"(^|[:/]){re.escape(name)}($|[:/])")
        rows = conn.execute(select(t.plugin_state.c.plugin, t.plugin_state.c.key).where(
            t.plugin_state.c.key.contains(name, autoescape=True))).all()
        for plugin, key in rows:
            if named.search(key):
                conn.execute(delete(t.plugin_state).where(and_(
                    t.plugin_state.c.plugin == plugin, t.plugin_state.c.key == key)))
                counts["plugin_state"] = counts.get("plugin_state", 0) + 1


# The core's own state keyed by review id and address: invitation claims ("<id>:<address>")
# and who asks a team for advice ("advice_by:<id>:<address>", ehcbridge.routing).
REVIEW_KEYS = (("_invitations", "{}:"), ("_engine", "advice_by:{}:"))


def _forget_review_keys(conn: Connection, review_ids: Sequence[int | str],
                        counts: dict[str, int]) -> None:
    for chunk in _chunks(review_ids):
        for plugin, pattern in REVIEW_KEYS:
            n = conn.execute(delete(t.plugin_state).where(and_(
                t.plugin_state.c.plugin == plugin,
                or_(*[t.plugin_state.c.key.startswith(pattern.format(rid), autoescape=True)
                      for rid in chunk])))).rowcount
            counts["plugin_state"] = counts.get("plugin_state", 0) + max(n, 0)


def _ids_in(conn: Connection, column: Any, where: Any, ids: Sequence[int | str]) -> list[int]:
    """``column`` of the rows whose ``where`` is one of ``ids``, a chunk at a time."""
    return [int(i) for chunk in _chunks(ids)
            for i in conn.execute(select(column).where(where.in_(chunk))).scalars()]


def _chunks(items: Sequence[int | str]) -> list[Sequence[int | str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
