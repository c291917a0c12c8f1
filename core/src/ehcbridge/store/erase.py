"""Erasing cases: every row the store keeps about a child's plan, in one transaction.

Children's data is kept only as long as it is needed (UK GDPR art. 5(1)(e)): once a plan has
ceased and the council's retention period has passed, or a case was entered by mistake, the
council erases it. The store decides nothing: which cases to erase is the caller's choice.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, func, or_, select

from ehcbridge.store import schema as t
from ehcbridge.store.errors import StoreError

if TYPE_CHECKING:
    from ehcbridge.store import Store

_SEPARATORS = re.compile(r"[:/]")
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


@dataclass
class Footprint:
    """The ids of everything the store keeps about some cases, table by table."""

    cases: list[str]
    plans: list[int]
    pupils: list[int]  # every pupil of the cases
    leaving: list[int]  # those with no other plan kept (an export takes them all)
    reviews: list[int]
    events: list[int]
    upns: dict[int, str]  # pupil id -> UPN, of every pupil of the cases


# Where a case's rows are, children first (each table before the one its foreign keys point
# at), by the footprint list that selects them: erasing deletes in this order.
TABLES: tuple[tuple[Any, str, str], ...] = (
    (t.deliveries, "event_id", "events"), (t.notices, "event_id", "events"),
    (t.notices, "review_id", "reviews"), (t.timers, "review_id", "reviews"),
    (t.events, "id", "events"), (t.review_files, "review_id", "reviews"),
    *((table, "review_id", "reviews") for table in (
        t.views, t.duties, t.flags, t.invitations, t.invitees, t.decisions, t.meetings)),
    (t.reviews, "id", "reviews"), (t.plans, "id", "plans"), (t.pupils, "id", "leaving"),
    (t.plan_details, "case_id", "cases"), (t.audit, "case_id", "cases"),
)


def footprint(conn: Connection, case_ids: Iterable[str], verb: str) -> Footprint:
    """The rows of these cases; StoreError naming the first unknown case ("nothing was
    ``verb``")."""
    wanted = sorted(set(case_ids))
    known = {r.case_id: (r.id, r.pupil_id) for chunk in _chunks(wanted)
             for r in conn.execute(select(t.plans.c.case_id, t.plans.c.id, t.plans.c.pupil_id)
                                   .where(t.plans.c.case_id.in_(chunk)))}
    missing = [c for c in wanted if c not in known]
    if missing:
        raise StoreError(f"unknown case {missing[0]!r}: nothing was {verb}",
                         case_id=missing[0], field="case_id")
    plans = [p for p, _pupil in known.values()]
    pupils = sorted({pupil for _p, pupil in known.values()})
    reviews = _ids_in(conn, t.reviews.c.id, t.reviews.c.plan_id, plans)
    # A pupil with another plan kept (a plan ceased, then a new one) stays when erasing.
    others = {int(r.pupil_id) for chunk in _chunks(pupils) for r in conn.execute(
        select(t.plans.c.pupil_id).where(and_(t.plans.c.pupil_id.in_(chunk),
                                              t.plans.c.id.not_in(plans))))}
    upns = {int(r.id): str(r.upn) for chunk in _chunks(pupils) for r in conn.execute(
        select(t.pupils.c.id, t.pupils.c.upn).where(t.pupils.c.id.in_(chunk))) if r.upn}
    return Footprint(cases=wanted, plans=plans, pupils=pupils,
                     leaving=[p for p in pupils if p not in others], reviews=reviews,
                     events=_ids_in(conn, t.events.c.id, t.events.c.review_id, reviews),
                     upns=upns)


class CasesBusy(StoreError):
    """A worker holds a live claim on a delivery of a case being erased: its plugin may be
    writing about the case at this moment, so nothing was erased."""

    def __init__(self, case_id: str, worker: str) -> None:
        super().__init__(f"{case_id}: a delivery is being made by engine worker {worker} right "
                         "now; nothing was erased (run again once it is recorded)",
                         case_id=case_id)
        self.worker = worker


def erase_cases(store: Store, case_ids: Iterable[str]) -> dict[str, int]:
    """Delete every row of these cases (pupil, plan, reviews and all that hangs off them, their
    audit records and the plugins' state entries named by the case id or the pupil's UPN); all
    or nothing. Returns rows deleted by table. StoreError names the first unknown case;
    CasesBusy, the first case a worker is delivering for at this moment."""
    from ehcbridge.store.queue import wall_clock

    counts: dict[str, int] = {}
    with store.begin() as conn:
        if store.backend == "sqlite":
            # A write first, so the transaction holds SQLite's write lock before it reads: no
            # engine can claim one of these deliveries between the check below and the delete.
            conn.exec_driver_sql("UPDATE deliveries SET id = id WHERE 0")
        found = footprint(conn, case_ids, "erased")
        # A plugin in the middle of a delivery would write about the case after it is gone (a
        # sent invitation's record, a meeting's state): wait for it. On PostgreSQL the rows
        # stay locked to the end, and workers claim with SKIP LOCKED, so they pass them by.
        d = t.deliveries
        for chunk in _chunks(found.events):
            rows = conn.execute(select(d.c.event_id, d.c.claimed_by, d.c.lease_until)
                                .where(d.c.event_id.in_(chunk)).with_for_update()).all()
            live = [r for r in rows if r.claimed_by is not None and r.lease_until is not None
                    and r.lease_until > wall_clock()]
            if live:
                case = conn.execute(
                    select(t.plans.c.case_id).join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
                    .join(t.events, t.events.c.review_id == t.reviews.c.id)
                    .where(t.events.c.id == live[0].event_id)).scalar_one()
                raise CasesBusy(str(case), str(live[0].claimed_by))
        for table, column, ids in TABLES:
            for chunk in _chunks(getattr(found, ids)):
                n = conn.execute(delete(table).where(table.c[column].in_(chunk))).rowcount
                counts[table.name] = counts.get(table.name, 0) + max(n, 0)
        # A pupil kept by another plan keeps the MIS state under their UPN.
        upns = [found.upns[p] for p in found.leaving if p in found.upns]
        for plugin, key in _state_keys(conn, [*found.cases, *upns], found.reviews):
            conn.execute(delete(t.plugin_state).where(and_(
                t.plugin_state.c.plugin == plugin, t.plugin_state.c.key == key)))
            counts["plugin_state"] = counts.get("plugin_state", 0) + 1
    return counts


def export_case(store: Store, case_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row the store keeps about one case, by table (a subject access request): the
    rows :func:`erase_cases` would delete, and the pupil's row even when another plan keeps
    it. Values as JSON (dates ISO, files base64)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as conn:
        found = footprint(conn, [case_id], "exported")
        # The pupil's row too, even when another plan keeps it.
        found = replace(found, leaving=found.pupils)
        for table, column, ids in TABLES:
            seen = {r["id"] for r in out.get(table.name, []) if "id" in r}  # notices: twice
            for chunk in _chunks(getattr(found, ids)):
                for row in conn.execute(select(table).where(table.c[column].in_(chunk))):
                    values = {k: _json_value(v) for k, v in row._mapping.items()}
                    if "id" in values and values["id"] in seen:
                        continue
                    out.setdefault(table.name, []).append(values)
        keys = _state_keys(conn, [*found.cases, *found.upns.values()], found.reviews)
        for plugin, key in keys:
            value = conn.execute(select(t.plugin_state.c.value).where(and_(
                t.plugin_state.c.plugin == plugin, t.plugin_state.c.key == key))).scalar()
            out.setdefault("plugin_state", []).append(
                {"plugin": plugin, "key": key, "value": value})
    return dict(sorted(out.items()))


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _state_keys(conn: Connection, names: list[str], review_ids: Sequence[int | str]
                ) -> list[tuple[str, str]]:
    """(plugin, key) of the state entries about these cases: keys naming a case id or a UPN
    between separators (``notice:EHC-1/r2/...``, ``sent:EHC-1:...``, an MIS snapshot's
    ``pupil:<UPN>``; EHC-1 does not take EHC-10), and the core's own entries keyed by review
    id (invitation claims, who asks a team for advice)."""
    # One read of the keys, each split at its separators, for any number of cases; a case id
    # that itself holds a separator (case ids are the council's own) is matched whole.
    plain = {n for n in names if not _SEPARATORS.search(n)}
    odd = [re.compile(rf"(^|[:/]){re.escape(n)}($|[:/])") for n in names if n not in plain]
    found = [(str(plugin), str(key)) for plugin, key in conn.execute(
        select(t.plugin_state.c.plugin, t.plugin_state.c.key))
        if plain.intersection(_SEPARATORS.split(str(key)))
        or any(r.search(str(key)) for r in odd)]
    for chunk in _chunks(review_ids):
        for plugin, pattern in REVIEW_KEYS:
            found += [(plugin, str(key)) for key in conn.execute(
                select(t.plugin_state.c.key).where(and_(
                    t.plugin_state.c.plugin == plugin,
                    or_(*[t.plugin_state.c.key.startswith(pattern.format(rid), autoescape=True)
                          for rid in chunk])))).scalars()]
    return sorted(set(found))


# The core's own state keyed by review id and address: invitation claims ("<id>:<address>")
# and who asks a team for advice ("advice_by:<id>:<address>", ehcbridge.routing).
REVIEW_KEYS = (("_invitations", "{}:"), ("_engine", "advice_by:{}:"))


def _ids_in(conn: Connection, column: Any, where: Any, ids: Sequence[int | str]) -> list[int]:
    """``column`` of the rows whose ``where`` is one of ``ids``, a chunk at a time."""
    return [int(i) for chunk in _chunks(ids)
            for i in conn.execute(select(column).where(where.in_(chunk))).scalars()]


def _chunks(items: Sequence[int | str]) -> list[Sequence[int | str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
