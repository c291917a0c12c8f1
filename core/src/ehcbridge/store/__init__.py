"""The durable store: SQLite by default, PostgreSQL by URL, schema managed by Alembic."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from ehcbridge.models import (
    LONDON,
    Decision,
    Duty,
    DutyStatus,
    Invitee,
    Meeting,
    MeetingStatus,
    Outcome,
    Plan,
    Pupil,
    Review,
    ReviewKind,
    ReviewStatus,
    Role,
    Views,
)
from ehcbridge.store import schema as t
from ehcbridge.store.errors import (
    StoreDataError,
    StoreError,
    ValueRejected,
    check_cases,
    copy_failed,
    on_error,
)

MIGRATIONS = Path(__file__).parent / "migrations"

# Delivery statuses. "pending" and "retrying" are still to be attempted.
PENDING, RETRYING, DELIVERED, DEAD, SKIPPED = "pending", "retrying", "delivered", "dead", "skipped"
OPEN_STATUSES = (PENDING, RETRYING)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


@dataclass
class CaseView:
    """Everything known about one case's current review."""

    plan: Plan
    pupil: Pupil
    review: Review
    meeting: Meeting | None
    invitees: list[Invitee]
    decision: Decision | None
    flags: dict[str, str]
    invitations: list[dict[str, Any]] = field(default_factory=list)
    plan_id: int = 0
    pupil_id: int = 0
    duties: list[Duty] = field(default_factory=list)
    fired_timers: frozenset[str] = frozenset()  # timer kinds already fired for the meeting
    current: bool = True  # False for a review concluded since (a decision opened the next)


@dataclass
class CaseInput:
    """One case to import: pupil, plan, its current review's due date and an optional meeting
    (start, end, location, online)."""

    pupil: Pupil
    plan: Plan
    coordinator_email: str | None
    review_due: date
    kind: ReviewKind
    pfa: bool
    invitees: list[Invitee] = field(default_factory=list)
    meeting: tuple[datetime, datetime, str | None, bool] | None = None
    replaced: int = 0  # set by the import: invitees of an earlier list this one replaced
    no_setting_listed: bool = True  # False: the list does not say, keep what is recorded


@dataclass
class EventRow:
    """A lifecycle event waiting in (or already through) the outbox."""

    id: int
    key: str
    hook: str
    action: str
    review_id: int  # 0 for an event that belongs to no review (a termly list notice)
    meeting_id: int | None
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass
class TimerRow:
    """A timer that came due: the lifecycle says what it means."""

    id: int
    review_id: int
    meeting_id: int
    kind: str
    due_at: datetime


@dataclass
class DeliveryRow:
    """One (event, plugin) pair of the delivery ledger."""

    id: int
    event_id: int
    plugin: str
    hook: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    event_key: str = ""
    case_id: str = ""


class _Scope(threading.local):
    """What one thread has open: a batch's connection, a delivery's memo of review ids."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.reviews: dict[str, int] | None = None


class Store:
    """All reads and writes of ehcbridge's data; every method is one transaction (or joins the
    batch its thread has open, see :meth:`batch`)."""

    def __init__(self, url: str, *, schema: str | None = None, migrate: bool = True) -> None:
        parsed = make_url(url)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                from ehcbridge.operations import create_private_file

                create_private_file(Path(parsed.database))  # children's data: 0700 and 0600
            connect_args["timeout"] = 30
        elif schema:
            connect_args["options"] = f"-csearch_path={schema}"
        self.url = url
        # No statement parameter (a child's name, a date of birth) in any error or log line.
        self.engine: Engine = create_engine(url, connect_args=connect_args, future=True,
                                            hide_parameters=True)
        # The same pool, each statement committed as it runs (PostgreSQL; see one_statement).
        self._autocommit: Engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._scope = _Scope()
        event.listen(self.engine, "handle_error", on_error)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if migrate:
            self.migrate()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema up to the newest revision, keeping every row."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            # SQLite rebuilds a table to alter it; with foreign keys on, dropping a table others
            # point at fails. The pragma only takes effect outside a transaction.
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on error (inside :meth:`batch`,
        the batch's, committed with it)."""
        if self._scope.conn is not None:
            yield self._scope.conn
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes this thread makes inside the block into one transaction: every
        store method called in it joins (a nested batch too), and all commit together when
        the block ends, or none if it raises. The plugin-state and invitation reads in it
        see its writes (other reads see what is committed). For writes that belong together
        with no effect outside the database in between (a plugin sends its message before or
        after, never inside)."""
        if self._scope.conn is not None:
            yield
            return
        with self.engine.begin() as conn:
            self._scope.conn = conn
            try:
                yield
            finally:
                self._scope.conn = None

    @contextmanager
    def one_statement(self) -> Iterator[Connection]:
        """A connection for reads, or for work that is one statement (or a few that need not be
        atomic): on PostgreSQL in autocommit, each statement committed as it runs, which spares
        the BEGIN and COMMIT round trips of a transaction; on SQLite a transaction (which opens
        only at the first write). Inside :meth:`batch`, the batch's connection, so its reads
        see its writes."""
        if self._scope.conn is not None:
            yield self._scope.conn
        elif self.engine.dialect.name == "postgresql":
            with self._autocommit.connect() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def one_delivery(self, known: dict[str, int] | None = None) -> Iterator[None]:
        """One delivery's calls on this thread: the current review of a case is looked up
        once, not on every call a plugin makes (a first run makes tens of thousands); ``known``,
        case id to current review id as the caller has just read it, is not looked up at all.
        Writes that open a review forget what was looked up. (No connection is held for the
        delivery: a plugin's call may take long, and the pool is shared by every lane.)"""
        outer = self._scope.reviews
        self._scope.reviews = dict(known or {})
        try:
            yield
        finally:
            self._scope.reviews = outer

    def _review_of(self, conn: Connection, case_id: str) -> int:
        """:meth:`review_id_for`, remembered for the rest of the delivery (see one_delivery)."""
        memo = self._scope.reviews
        if memo is None:
            return self.review_id_for(conn, case_id)
        found = memo.get(case_id)
        if found is None:
            found = memo[case_id] = self.review_id_for(conn, case_id)
        return found

    def _reviews_changed(self) -> None:
        if self._scope.reviews:
            self._scope.reviews.clear()

    # Pupils, plans, reviews ------------------------------------------------------------------

    def upsert_case(
        self,
        conn: Connection,
        *,
        pupil: Pupil,
        plan: Plan,
        coordinator_email: str | None,
        review_due: date,
        kind: ReviewKind,
        pfa: bool,
    ) -> tuple[str, int]:
        """Insert or update a case (pupil, plan, current review); returns (added|updated|unchanged,
        review id). Called inside the caller's transaction so an import is all-or-nothing."""
        self._reviews_changed()
        now = utcnow()
        plan_row = conn.execute(select(t.plans).where(t.plans.c.case_id == plan.case_id)).first()
        pupil_values = dict(upn=pupil.upn, forename=pupil.forename, surname=pupil.surname,
                            dob=pupil.dob, nc_year=pupil.nc_year, school_urn=pupil.school_urn)
        plan_values = dict(issued_on=plan.issued_on, last_review_decision=plan.last_review_decision,
                           plan_type=plan.plan_type, coordinator_email=coordinator_email,
                           post16_move=plan.post16_move, no_setting=plan.no_setting)
        if plan_row is None:
            pupil_id = self._pupil_id_for(conn, pupil, pupil_values, now)
            plan_id = _new_id(conn.execute(insert(t.plans).values(
                case_id=plan.case_id, pupil_id=pupil_id, **plan_values)))
            review_id = _new_id(conn.execute(insert(t.reviews).values(
                plan_id=plan_id, kind=kind.value, due_by=review_due, status=ReviewStatus.DUE.value,
                preparing_for_adulthood=pfa, current=True, created_at=now,
            )))
            return "added", int(review_id)
        changed = False
        pupil_row = conn.execute(select(t.pupils).where(t.pupils.c.id == plan_row.pupil_id)).one()
        if any(getattr(pupil_row, k) != v for k, v in pupil_values.items()):
            conn.execute(update(t.pupils).where(t.pupils.c.id == pupil_row.id)
                         .values(updated_at=now, **pupil_values))
            changed = True
        if any(getattr(plan_row, k) != v for k, v in plan_values.items()):
            conn.execute(update(t.plans).where(t.plans.c.id == plan_row.id).values(**plan_values))
            changed = True
        review_row = self._current_review_row(conn, plan_row.id)
        if review_row is None:
            review_id = _new_id(conn.execute(insert(t.reviews).values(
                plan_id=plan_row.id, kind=kind.value, due_by=review_due,
                status=ReviewStatus.DUE.value, preparing_for_adulthood=pfa, current=True,
                created_at=now)))
            return "updated", int(review_id)
        if (review_row.due_by, review_row.preparing_for_adulthood, review_row.kind) != (
                review_due, pfa, kind.value):
            conn.execute(update(t.reviews).where(t.reviews.c.id == review_row.id).values(
                due_by=review_due, preparing_for_adulthood=pfa, kind=kind.value))
            changed = True
        return ("updated" if changed else "unchanged"), int(review_row.id)

    def import_cases(self, conn: Connection, items: list[CaseInput], now: datetime,
                     progress: Callable[[int, int], None] | None = None
                     ) -> list[tuple[str, str]]:
        """Upsert many cases in the caller's transaction; returns (added|updated|unchanged,
        meeting action or '') per item. Kept for callers: the lifecycle decides what each row
        means (``ehcbridge.transitions.import_cases``); the store only writes it."""
        from ehcbridge.transitions import import_cases

        check_cases(items)  # every value fits its column on either backend, or nothing is written
        results = import_cases(self, conn, items, now)
        if progress is not None:  # ``progress`` gets (cases done, cases in all)
            progress(len(results), len(items))
        return results

    def insert_cases(self, conn: Connection, items: list[CaseInput], now: datetime
                     ) -> dict[str, int]:
        """Insert new cases (pupils, plans, reviews) in bulk; returns case id -> review id."""
        self._reviews_changed()
        upns = [i.pupil.upn for i in items if i.pupil.upn]
        pupil_ids: dict[str, int] = {}
        if upns:
            pupil_ids = {r.upn: r.id for r in conn.execute(
                select(t.pupils.c.id, t.pupils.c.upn).where(t.pupils.c.upn.in_(upns)))}
        to_insert: list[CaseInput] = []
        seen: set[str] = set(pupil_ids)
        for item in items:
            if item.pupil.upn is None or item.pupil.upn not in seen:
                to_insert.append(item)
                if item.pupil.upn:
                    seen.add(item.pupil.upn)
        ids = _reserve_ids(conn, t.pupils, len(to_insert))
        _bulk_insert(conn, t.pupils, [
            dict(id=pid, upn=i.pupil.upn, forename=i.pupil.forename, surname=i.pupil.surname,
                 dob=i.pupil.dob, nc_year=i.pupil.nc_year, school_urn=i.pupil.school_urn,
                 updated_at=now) for i, pid in zip(to_insert, ids, strict=True)])
        by_item: dict[int, int] = {}
        for item, pid in zip(to_insert, ids, strict=True):
            by_item[id(item)] = pid
            if item.pupil.upn:
                pupil_ids[item.pupil.upn] = pid
        for item in items:
            if id(item) not in by_item:
                assert item.pupil.upn is not None
                by_item[id(item)] = pupil_ids[item.pupil.upn]
        plan_ids = _reserve_ids(conn, t.plans, len(items))
        _bulk_insert(conn, t.plans, [
            dict(id=pid, case_id=i.plan.case_id, pupil_id=by_item[id(i)],
                 issued_on=i.plan.issued_on, last_review_decision=i.plan.last_review_decision,
                 plan_type=i.plan.plan_type, coordinator_email=i.coordinator_email,
                 post16_move=i.plan.post16_move, no_setting=i.plan.no_setting)
            for i, pid in zip(items, plan_ids, strict=True)])
        review_ids = _reserve_ids(conn, t.reviews, len(items))
        _bulk_insert(conn, t.reviews, [
            dict(id=rid, plan_id=pid, kind=i.kind._value_, due_by=i.review_due,
                 status=ReviewStatus.DUE.value, preparing_for_adulthood=i.pfa, current=True,
                 created_at=now) for i, pid, rid in zip(items, plan_ids, review_ids, strict=True)])
        return {i.plan.case_id: rid for i, rid in zip(items, review_ids, strict=True)}

    def import_invitees(self, conn: Connection, items: list[CaseInput],
                        review_ids: dict[str, int], now: datetime) -> set[int]:
        """Insert the invitees a list names that the reviews do not have yet; returns the ids
        of reviews that gained someone."""
        wanted = [(review_ids[i.plan.case_id], inv) for i in items for inv in i.invitees]
        if not wanted:
            return set()
        have = {(r.review_id, r.role, r.email) for r in conn.execute(
            select(t.invitees.c.review_id, t.invitees.c.role, t.invitees.c.email)
            .where(t.invitees.c.review_id.in_({rid for rid, _ in wanted})))}
        rows: list[dict[str, Any]] = []
        for rid, inv in wanted:
            key = (rid, inv.role._value_, inv.email)  # _value_: see _duty_values
            if key not in have:
                have.add(key)
                rows.append(dict(review_id=rid, role=inv.role._value_, name=inv.name,
                                 email=inv.email, team=inv.team, source=inv.source,
                                 added_at=now, address=inv.address, mobile=inv.mobile))
        _bulk_insert(conn, t.invitees, rows)
        return {row["review_id"] for row in rows}

    def _pupil_id_for(self, conn: Connection, pupil: Pupil, values: dict[str, Any],
                      now: datetime) -> int:
        if pupil.upn:
            row = conn.execute(select(t.pupils.c.id).where(t.pupils.c.upn == pupil.upn)).first()
            if row is not None:
                conn.execute(update(t.pupils).where(t.pupils.c.id == row.id)
                             .values(updated_at=now, **values))
                return int(row.id)
        return int(_new_id(conn.execute(insert(t.pupils).values(updated_at=now, **values))
                   ))

    def _current_review_row(self, conn: Connection, plan_id: int) -> Any:
        return conn.execute(select(t.reviews).where(
            and_(t.reviews.c.plan_id == plan_id, t.reviews.c.current.is_(True)))
            .order_by(t.reviews.c.id.desc())).first()

    def case_ids(self) -> list[str]:
        """Every case id, sorted."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.plans.c.case_id).order_by(t.plans.c.case_id))
                        .scalars())

    def count(self, table: str) -> int:
        """Number of rows in one of the store's tables."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.metadata.tables[table]))
                       .scalar_one())

    def review_id_for(self, conn: Connection, case_id: str) -> int:
        """The current review id of a case, or StoreError naming the case."""
        row = conn.execute(
            select(t.reviews.c.id).join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
            .where(and_(t.plans.c.case_id == case_id, t.reviews.c.current.is_(True)))
            .order_by(t.reviews.c.id.desc())).first()
        if row is None:
            raise StoreError(f"unknown case {case_id!r}", case_id=case_id, field="case_id")
        return int(row.id)

    def case(self, case_id: str) -> CaseView:
        """The current review of a case with its meeting, invitees, decision and flags."""
        with self.engine.connect() as conn:
            return self._case_view(conn, self.review_id_for(conn, case_id))

    def case_by_review(self, review_id: int) -> CaseView:
        """Like :meth:`case`, by review id."""
        with self.engine.connect() as conn:
            return self._case_view(conn, review_id)

    def _case_view(self, conn: Connection, review_id: int) -> CaseView:
        r = conn.execute(select(t.reviews).where(t.reviews.c.id == review_id)).one()
        p = conn.execute(select(t.plans).where(t.plans.c.id == r.plan_id)).one()
        pu = conn.execute(select(t.pupils).where(t.pupils.c.id == p.pupil_id)).one()
        m = conn.execute(select(t.meetings).where(t.meetings.c.review_id == review_id)
                         .order_by(t.meetings.c.id.desc())).first()
        flag_rows = conn.execute(select(t.flags.c.flag, t.flags.c.detail)
                                 .where(t.flags.c.review_id == review_id)
                                 .order_by(t.flags.c.flag)).all()
        inv_rows = conn.execute(select(t.invitees).where(t.invitees.c.review_id == review_id)
                                .order_by(t.invitees.c.id)).all()
        d = conn.execute(select(t.decisions).where(t.decisions.c.review_id == review_id)).first()
        invs = conn.execute(select(t.invitations).where(t.invitations.c.review_id == review_id)
                            .order_by(t.invitations.c.id)).all()
        duty_rows = conn.execute(select(t.duties).where(t.duties.c.review_id == review_id)).all()
        fired: frozenset[str] = frozenset()
        if m is not None:
            # By review too: timers are indexed by review, not by meeting.
            fired = frozenset(conn.execute(select(t.timers.c.kind).where(and_(
                t.timers.c.review_id == review_id, t.timers.c.meeting_id == m.id,
                t.timers.c.fired.is_(True)))).scalars())
        pupil = Pupil(upn=pu.upn, forename=pu.forename, surname=pu.surname, dob=pu.dob,
                      nc_year=pu.nc_year, school_urn=pu.school_urn)
        plan = Plan(case_id=p.case_id, issued_on=p.issued_on,
                    last_review_decision=p.last_review_decision, plan_type=p.plan_type,
                    post16_move=p.post16_move, no_setting=bool(p.no_setting))
        review = Review(id=r.id, case_id=p.case_id, kind=ReviewKind(r.kind), due_by=r.due_by,
                        status=ReviewStatus(r.status),
                        preparing_for_adulthood=bool(r.preparing_for_adulthood),
                        coordinator_email=p.coordinator_email,
                        flags=tuple(f.flag for f in flag_rows),
                        report_sent_on=r.report_sent_on)
        return CaseView(
            plan=plan, pupil=pupil, review=review,
            meeting=_meeting(m) if m is not None else None,
            invitees=[Invitee(role=Role(i.role), name=i.name, email=i.email, team=i.team,
                              source=i.source, response=i.response, address=i.address,
                              mobile=i.mobile) for i in inv_rows],
            decision=(Decision(outcome=Outcome(d.outcome), reason=d.reason,
                               decided_on=d.decided_on) if d is not None else None),
            flags={f.flag: f.detail or "" for f in flag_rows},
            invitations=[{"plugin": i.plugin, "email": i.email, "status": i.status,
                          "detail": i.detail or "", "at": i.at.isoformat()} for i in invs],
            plan_id=p.id, pupil_id=pu.id,
            duties=sorted((_duty(d) for d in duty_rows), key=_duty_order), fired_timers=fired,
            current=bool(r.current),
        )

    def list_reviews(self, *, due_before: date | None = None, flag: str | None = None,
                     school_urn: str | None = None,
                     open_only: bool = True) -> list[dict[str, Any]]:
        """Current reviews as plain rows for listings, soonest due first."""
        m = t.meetings
        latest_meeting = (select(func.max(m.c.id)).where(m.c.review_id == t.reviews.c.id)
                          .correlate(t.reviews).scalar_subquery())
        q = (select(t.plans.c.case_id, t.reviews.c.id.label("review_id"), t.reviews.c.kind,
                    t.reviews.c.due_by, t.reviews.c.status, t.reviews.c.preparing_for_adulthood,
                    t.plans.c.coordinator_email, t.pupils.c.school_urn, t.pupils.c.upn,
                    t.plans.c.no_setting,
                    m.c.start.label("meeting_start"), m.c.status.label("meeting_status"))
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
             .outerjoin(m, m.c.id == latest_meeting)
             .where(t.reviews.c.current.is_(True))
             .order_by(t.reviews.c.due_by, t.plans.c.case_id))
        if open_only:
            q = q.where(t.reviews.c.status.in_([ReviewStatus.DUE.value,
                                                ReviewStatus.SCHEDULED.value,
                                                ReviewStatus.HELD.value]))
        if due_before is not None:
            q = q.where(t.reviews.c.due_by <= due_before)
        if school_urn is not None:
            q = q.where(t.at_school(school_urn))
        if flag is not None:
            q = q.where(t.reviews.c.id.in_(select(t.flags.c.review_id)
                                           .where(t.flags.c.flag == flag)))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            flag_map: dict[int, list[str]] = {}
            for fr in conn.execute(select(t.flags.c.review_id, t.flags.c.flag)):
                flag_map.setdefault(fr.review_id, []).append(fr.flag)
        return [dict(r._mapping, flags=sorted(flag_map.get(r.review_id, []))) for r in rows]

    def planning_rows(self, school_urn: str | None = None) -> list[tuple[Review, Pupil]]:
        """Current reviews without a meeting, with their pupils, in one query (for the planner)."""
        q = (select(t.reviews.c.id, t.reviews.c.kind, t.reviews.c.due_by, t.reviews.c.status,
                    t.reviews.c.preparing_for_adulthood, t.plans.c.case_id,
                    t.plans.c.coordinator_email, t.pupils.c.upn, t.pupils.c.forename,
                    t.pupils.c.surname, t.pupils.c.dob, t.pupils.c.nc_year,
                    t.pupils.c.school_urn)
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
             .where(and_(t.reviews.c.current.is_(True),
                         t.reviews.c.status == ReviewStatus.DUE.value))
             .order_by(t.reviews.c.due_by, t.plans.c.case_id))
        if school_urn is not None:
            q = q.where(t.at_school(school_urn))
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                review = Review(
                    id=r.id, case_id=r.case_id, kind=ReviewKind(r.kind), due_by=r.due_by,
                    status=ReviewStatus(r.status),
                    preparing_for_adulthood=bool(r.preparing_for_adulthood),
                    coordinator_email=r.coordinator_email, flags=())
                pupil = Pupil(upn=r.upn, forename=r.forename, surname=r.surname, dob=r.dob,
                              nc_year=r.nc_year, school_urn=r.school_urn)
                out.append((review, pupil))
        return out

    def pupil_by_upn(self, upn: str) -> Pupil | None:
        """The pupil with this UPN, if the store has one."""
        with self.engine.connect() as conn:
            r = conn.execute(select(t.pupils).where(t.pupils.c.upn == upn)).first()
        if r is None:
            return None
        return Pupil(upn=r.upn, forename=r.forename, surname=r.surname, dob=r.dob,
                     nc_year=r.nc_year, school_urn=r.school_urn)

    def current_review_ids(self, case_ids: Iterable[str]) -> dict[str, int]:
        """The current review id of each of these cases, by case id, in a query per 500."""
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(case_ids)), 500):
                out.update((case_id, int(rid)) for case_id, rid in conn.execute(
                    select(t.plans.c.case_id, func.max(t.reviews.c.id))
                    .join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
                    .where(and_(t.plans.c.case_id.in_(chunk), t.reviews.c.current.is_(True)))
                    .group_by(t.plans.c.case_id)))
        return out

    def pupils_of(self, case_ids: Iterable[str]) -> dict[str, Pupil]:
        """The pupil of each of these cases, by case id, in a query per 500 cases."""
        out: dict[str, Pupil] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(case_ids)), 500):
                for r in conn.execute(select(t.plans.c.case_id, t.pupils).join(
                        t.plans, t.plans.c.pupil_id == t.pupils.c.id)
                        .where(t.plans.c.case_id.in_(chunk))):
                    out[r.case_id] = Pupil(upn=r.upn, forename=r.forename, surname=r.surname,
                                           dob=r.dob, nc_year=r.nc_year,
                                           school_urn=r.school_urn)
        return out

    def booked_meetings(self, start: date, end: date) -> dict[tuple[str | None, date], int]:
        """Scheduled meetings per (coordinator, day) between two dates, for the planner."""
        q = (select(t.plans.c.coordinator_email, t.meetings.c.start)
             .join(t.reviews, t.reviews.c.id == t.meetings.c.review_id)
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .where(t.meetings.c.status == MeetingStatus.SCHEDULED.value))
        out: dict[tuple[str | None, date], int] = {}
        with self.engine.connect() as conn:
            for coord, at in conn.execute(q):
                day = at.astimezone(LONDON).date()
                if start <= day <= end:
                    out[(coord, day)] = out.get((coord, day), 0) + 1
        return out

    # Lifecycle changes: kept for callers; ehcbridge.transitions asks ehcbridge.lifecycle what
    # each one means and hands the store a Change to write ----------------------------------

    def schedule_meeting(
        self, case_id: str, *, start: datetime, end: datetime, location: str | None = None,
        online: bool = False, organiser: str | None = None, now: datetime | None = None,
        conn: Connection | None = None,
    ) -> str:
        """Set or move the meeting; returns scheduled, rescheduled or unchanged."""
        from ehcbridge import transitions

        return transitions.schedule(self, case_id, start=start, end=end, location=location,
                                    online=online, organiser=organiser, now=now or utcnow(),
                                    conn=conn).action

    def invitees_changed(self, case_id: str, *, now: datetime | None = None,
                         conn: Connection | None = None) -> bool:
        """Tell calendar plugins about new invitees of a meeting already set; False when there
        is no meeting yet."""
        from ehcbridge import transitions

        return transitions.invite(self, case_id, now=now or utcnow(), conn=conn)

    def request_meeting_update(self, case_id: str, reason: str, *,
                               now: datetime | None = None) -> bool:
        """Have calendar plugins update the scheduled meeting (action ``updated``), once per
        ``reason`` and meeting revision (e.g. its online link arrived late); False when there is
        no scheduled meeting or it was already fired."""
        from ehcbridge import transitions

        return transitions.request_update(self, case_id, reason, now=now or utcnow())

    def cancel_meeting(self, case_id: str, *, reason: str = "",
                       now: datetime | None = None) -> None:
        """Cancel the scheduled meeting (the review goes back to due)."""
        from ehcbridge import transitions

        transitions.cancel(self, case_id, reason=reason, now=now or utcnow())

    def mark_held(self, case_id: str, *, now: datetime | None = None) -> None:
        """Record that the meeting took place."""
        from ehcbridge import transitions

        transitions.held(self, case_id, now=now or utcnow())

    def record_report(self, case_id: str, sent_on: date) -> None:
        """Record when the review report was sent to everyone invited (reg 20(7))."""
        from ehcbridge import transitions

        transitions.report(self, case_id, on=sent_on, now=utcnow())

    def decide(self, case_id: str, *, outcome: Outcome, reason: str, decided_on: date,
               next_review_due: date | None, now: datetime | None = None) -> None:
        """Record the LA's decision and open the next review (unless the plan ceases)."""
        from ehcbridge import transitions

        transitions.decide(self, case_id, outcome=outcome, reason=reason, on=decided_on,
                           now=now or utcnow(), next_due=next_review_due)

    def fire_timers(self, now: datetime, limit: int = 1000) -> int:
        """Turn timers that are due into events; returns how many fired."""
        from ehcbridge import transitions

        return transitions.fire_timers(self, now, limit=limit)

    # Writing what the lifecycle decided ------------------------------------------------------

    def case_in(self, conn: Connection, review_id: int) -> CaseView:
        """Like :meth:`case_by_review`, inside the caller's transaction."""
        return self._case_view(conn, review_id)

    def decided_review_id(self, conn: Connection, case_id: str) -> int | None:
        """The case's latest review that has a decision."""
        row = conn.execute(
            select(t.reviews.c.id).join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
            .join(t.decisions, t.decisions.c.review_id == t.reviews.c.id)
            .where(t.plans.c.case_id == case_id).order_by(t.reviews.c.id.desc())).first()
        return int(row.id) if row is not None else None

    def reserve_meeting_ids(self, conn: Connection, count: int = 1) -> list[int]:
        """Ids new meetings will have (event keys name them before they are written)."""
        return _reserve_ids(conn, t.meetings, count)

    def existing_case_ids(self, conn: Connection, case_ids: list[str]) -> set[str]:
        """Which of these case ids the store already holds."""
        return set(conn.execute(select(t.plans.c.case_id)
                                .where(t.plans.c.case_id.in_(case_ids))).scalars())

    def take_due_timers(self, conn: Connection, now: datetime, limit: int = 1000
                        ) -> list[TimerRow]:
        """Timers due by ``now``, marked fired in the caller's transaction, oldest first."""
        rows = conn.execute(
            select(t.timers).where(and_(t.timers.c.fired.is_(False), t.timers.c.due_at <= now))
            .order_by(t.timers.c.due_at, t.timers.c.id).limit(limit)).all()
        if rows:
            conn.execute(update(t.timers).where(t.timers.c.id.in_([r.id for r in rows]))
                         .values(fired=True))
        return [TimerRow(id=r.id, review_id=r.review_id, meeting_id=r.meeting_id, kind=r.kind,
                         due_at=r.due_at) for r in rows]

    def apply_change(self, conn: Connection, review_id: int, change: Any, now: datetime
                     ) -> int | None:
        """Write a lifecycle Change (``ehcbridge.lifecycle.Change``) to one review in the
        caller's transaction; returns the id of the review it opened, if any."""
        self._reviews_changed()
        c = conn
        m = change.meeting
        if m is not None:
            values = dict(start=m.start, end=m.end, location=m.location, online=m.online,
                          organiser=m.organiser, status=m.status.value, sequence=m.sequence)
            if change.new_meeting:
                c.execute(insert(t.meetings).values(id=m.id, review_id=review_id, **values))
            else:
                c.execute(update(t.meetings).where(t.meetings.c.id == m.id).values(**values))
            if change.held_at is not None:
                c.execute(update(t.meetings).where(and_(t.meetings.c.id == m.id,
                                                        t.meetings.c.held_at.is_(None)))
                          .values(held_at=change.held_at))
        review_values: dict[str, Any] = {}
        if change.review_status is not None:
            review_values["status"] = change.review_status.value
        if change.kind is not None:
            review_values["kind"] = change.kind.value
        if change.due_by is not None:
            review_values["due_by"] = change.due_by
        if change.report_sent_on is not None:
            review_values["report_sent_on"] = change.report_sent_on
        if review_values:
            c.execute(update(t.reviews).where(t.reviews.c.id == review_id).values(**review_values))
        if change.plan is not None:  # what a transition may change of the plan
            c.execute(update(t.plans).where(t.plans.c.id == select(t.reviews.c.plan_id).where(
                t.reviews.c.id == review_id).scalar_subquery())
                .values(post16_move=change.plan.post16_move, no_setting=change.plan.no_setting))
        if change.timers is not None:
            c.execute(delete(t.timers).where(and_(t.timers.c.review_id == review_id,
                                                  t.timers.c.fired.is_(False))))
            if change.timers:
                c.execute(insert(t.timers), [dict(review_id=review_id, meeting_id=tm.meeting_id,
                                                  kind=tm.kind, due_at=tm.due_at, fired=False)
                                             for tm in change.timers])
        for ev in change.events:
            self._add_event(c, key=ev.key, hook=ev.hook, action=ev.action, review_id=review_id,
                            meeting_id=ev.meeting_id, at=now, payload=ev.payload)
        self.save_duties(review_id, list(change.duties), conn=c)
        for flag, detail in change.flags:
            self._flag(c, review_id, flag, detail, "lifecycle")
        for flag in change.clear_flags:
            c.execute(delete(t.flags).where(and_(t.flags.c.review_id == review_id,
                                                 t.flags.c.flag == flag)))
        opened = None
        if change.decision is not None or change.next_review is not None:
            review = c.execute(select(t.reviews).where(t.reviews.c.id == review_id)).one()
            d = change.decision
            if d is not None:
                c.execute(insert(t.decisions).values(review_id=review_id, outcome=d.outcome.value,
                                                     reason=d.reason, decided_on=d.decided_on))
                c.execute(update(t.plans).where(t.plans.c.id == review.plan_id)
                          .values(last_review_decision=d.decided_on))
            nxt = change.next_review
            if nxt is not None:
                c.execute(update(t.reviews).where(t.reviews.c.id == review_id)
                          .values(current=False))
                opened = _new_id(c.execute(insert(t.reviews).values(
                    plan_id=review.plan_id, kind=nxt.kind.value, due_by=nxt.due_by,
                    status=ReviewStatus.DUE.value,
                    preparing_for_adulthood=nxt.preparing_for_adulthood, current=True,
                    created_at=now)))
                self.save_duties(opened, list(nxt.duties), conn=c)
                _bulk_insert(c, t.invitees, [
                    dict(review_id=opened, role=i.role.value, name=i.name, email=i.email,
                         team=i.team, source=i.source, added_at=now, address=i.address,
                         mobile=i.mobile) for i in nxt.invitees])
        return opened

    # Addresses a caseworker removed from a plan's reviews (lifecycle.kept_out says which),
    # kept in a reserved state namespace by case and address.
    _REMOVED = "_uninvited"

    def _removed_key(self, case_id: str, address: str) -> str:
        return f"{case_id}:{address}"

    def removed_addresses(self, conn: Connection, case_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(case id, address) pairs a caseworker removed from these cases' reviews."""
        wanted = set(case_ids)
        found: set[tuple[str, str]] = set()
        # Every removal in one read: they are few (a caseworker's corrections), the cases many.
        for key in conn.execute(select(t.plugin_state.c.key).where(
                t.plugin_state.c.plugin == self._REMOVED)).scalars():
            case_id, _, address = str(key).rpartition(":")
            if case_id in wanted:
                found.add((case_id, address))
        return found

    def removed_from(self, case_id: str) -> list[dict[str, Any]]:
        """The addresses a caseworker removed from this plan (address, role), by address."""
        return [{"email": address, "role": value.get("role")}
                for address, value in self.removals(case_id).items()]

    def removals(self, case_id: str, conn: Connection | None = None) -> dict[str, dict[str, Any]]:
        """This plan's removals by address, as :meth:`keep_out` stored them."""
        prefix = f"{case_id}:"
        with self._maybe_begin(conn) as c:
            items = c.execute(select(t.plugin_state.c.key, t.plugin_state.c.value).where(and_(
                t.plugin_state.c.plugin == self._REMOVED,
                t.plugin_state.c.key.startswith(prefix, autoescape=True)))).all()
        return {key[len(prefix):]: dict(value or {}) for key, value in items}

    def keep_out(self, conn: Connection, case_id: str, marks: dict[str, dict[str, Any]]) -> None:
        """Store removals (address: what lifecycle.kept_out says of it) for this plan."""
        from ehcbridge.store.queue import upsert_state

        if marks:
            upsert_state(conn, self._REMOVED, {self._removed_key(case_id, address): value
                                               for address, value in marks.items()}, utcnow())

    def lift_removals(self, conn: Connection, case_id: str, addresses: list[str]) -> None:
        """Forget these removals of this plan."""
        if addresses:
            conn.execute(delete(t.plugin_state).where(and_(
                t.plugin_state.c.plugin == self._REMOVED,
                t.plugin_state.c.key.in_([self._removed_key(case_id, a) for a in addresses]))))

    def remove_invitees(self, conn: Connection, case_id: str, *, email: str | None = None,
                        name: str | None = None, role: str | None = None
                        ) -> list[tuple[Invitee, str | None]]:
        """Delete the current review's invitees with this email (any case), or with this name
        and no email; only of ``role`` when given. Returns who was deleted, each with the
        address they were routed from."""
        review_id = self.review_id_for(conn, case_id)
        cond = [t.invitees.c.review_id == review_id]
        if email:
            address = email.strip().lower()
            # A professional routed to a team mailbox is known by the address they were named
            # with too.
            cond.append(or_(func.lower(t.invitees.c.email) == address,
                            func.lower(t.invitees.c.routed_from) == address))
        elif name:
            cond += [t.invitees.c.email.is_(None), t.invitees.c.name == name.strip()]
        else:
            return []
        if role:
            cond.append(t.invitees.c.role == role)
        rows = conn.execute(select(t.invitees).where(and_(*cond))).all()
        if rows:
            conn.execute(delete(t.invitees).where(t.invitees.c.id.in_([r.id for r in rows])))
        return [(Invitee(role=Role(r.role), name=r.name, email=r.email, team=r.team,
                         source=r.source, response=r.response, address=r.address,
                         mobile=r.mobile), r.routed_from) for r in rows]

    def remove_listed_invitees(self, conn: Connection, review_id: int,
                               invitees: list[Invitee]) -> None:
        """Delete these invitees (by role, address and source) from a review."""
        for i in invitees:
            conn.execute(delete(t.invitees).where(and_(
                t.invitees.c.review_id == review_id, t.invitees.c.role == i.role.value,
                t.invitees.c.email == i.email, t.invitees.c.source == i.source)))

    def invitees_with_origin(self, conn: Connection, review_id: int
                             ) -> list[tuple[Invitee, str | None]]:
        """A review's invitees, each with the address it was routed from (None when it was
        not routed from anyone)."""
        rows = conn.execute(select(t.invitees).where(t.invitees.c.review_id == review_id)
                            .order_by(t.invitees.c.id)).all()
        return [(Invitee(role=Role(i.role), name=i.name, email=i.email, team=i.team,
                         source=i.source, response=i.response, address=i.address,
                         mobile=i.mobile), i.routed_from) for i in rows]

    def insert_changes(self, conn: Connection, changes: list[tuple[int, Any]], now: datetime
                       ) -> None:
        """Write lifecycle Changes of reviews created in this transaction, in bulk (an import
        of a whole caseload): new meetings, statuses, timers, events, duties and flags."""
        _bulk_insert(conn, t.meetings, [
            dict(id=ch.meeting.id, review_id=rid, start=ch.meeting.start, end=ch.meeting.end,
                 location=ch.meeting.location, online=ch.meeting.online,
                 organiser=ch.meeting.organiser, status=ch.meeting.status.value,
                 sequence=ch.meeting.sequence)
            for rid, ch in changes if ch.meeting is not None and ch.new_meeting])
        by_status: dict[str, list[int]] = {}
        for rid, ch in changes:
            if ch.review_status is not None:
                by_status.setdefault(ch.review_status.value, []).append(rid)
        for status, ids in by_status.items():
            for chunk in _chunks(ids, 500):
                conn.execute(update(t.reviews).where(t.reviews.c.id.in_(chunk))
                             .values(status=status))
        timers = [(rid, tm) for rid, ch in changes for tm in ch.timers or ()]
        _insert_columns(conn, t.timers, {
            "review_id": [rid for rid, _tm in timers],
            "meeting_id": [tm.meeting_id for _r, tm in timers],
            "kind": [tm.kind for _r, tm in timers], "due_at": [tm.due_at for _r, tm in timers],
            "fired": [False] * len(timers)})
        _bulk_insert(conn, t.events, [
            dict(key=ev.key, hook=ev.hook, action=ev.action, review_id=rid,
                 meeting_id=ev.meeting_id, occurred_at=now, payload=ev.payload, dispatched=False)
            for rid, ch in changes for ev in ch.events])
        # A caseload has a hundred thousand duties or more: built as columns, not row dicts.
        owed = [(rid, d) for rid, ch in changes for d in ch.duties]
        _insert_columns(conn, t.duties, {
            "review_id": [rid for rid, _d in owed], "name": [d.name for _r, d in owed],
            "rule": [d.rule for _r, d in owed], "kind": [d.kind for _r, d in owed],
            "due": [d.due for _r, d in owed], "owed_by": [d.owed_by for _r, d in owed],
            "owed_to": [d.owed_to for _r, d in owed],
            "status": [d.status._value_ for _r, d in owed],  # _value_: see _duty_values
            "met_on": [d.met_on for _r, d in owed], "evidence": [d.evidence for _r, d in owed],
            "updated_at": [now] * len(owed)})
        _bulk_insert(conn, t.flags, [
            dict(review_id=rid, flag=flag, detail=detail, raised_by="lifecycle", at=now)
            for rid, ch in changes for flag, detail in ch.flags])

    def _flag(self, c: Connection, review_id: int, flag: str, detail: str,
              raised_by: str) -> None:
        row = c.execute(select(t.flags.c.id).where(and_(t.flags.c.review_id == review_id,
                                                        t.flags.c.flag == flag))).first()
        if row is None:
            c.execute(insert(t.flags).values(review_id=review_id, flag=flag, detail=detail,
                                             raised_by=raised_by, at=utcnow()))
        else:
            c.execute(update(t.flags).where(t.flags.c.id == row.id)
                      .values(detail=detail, raised_by=raised_by))

    def event_exists(self, conn: Connection, key: str) -> bool:
        """True when an event with this key is already in the outbox."""
        return conn.execute(select(t.events.c.id).where(t.events.c.key == key)).first() \
            is not None

    def _add_event(self, c: Connection, *, key: str, hook: str, action: str,
                   review_id: int | None,
                   meeting_id: int | None, at: datetime, payload: dict[str, Any] | None = None
                   ) -> bool:
        exists = c.execute(select(t.events.c.id).where(t.events.c.key == key)).first()
        if exists is not None:
            return False
        c.execute(insert(t.events).values(key=key, hook=hook, action=action, review_id=review_id,
                                          meeting_id=meeting_id, occurred_at=at,
                                          payload=payload or {}, dispatched=False))
        return True

    @contextmanager
    def _maybe_begin(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.begin() as c:
                yield c

    # Timers, events, deliveries (the engine) -------------------------------------------------

    def undispatched_events(self, limit: int = 500) -> list[EventRow]:
        """Events whose deliveries have not been created yet, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.events).where(t.events.c.dispatched.is_(False))
                                .order_by(t.events.c.id).limit(limit)).all()
        return [_event_row(r) for r in rows]

    def event(self, event_id: int) -> EventRow:
        """One event by id."""
        with self.engine.connect() as conn:
            return _event_row(conn.execute(select(t.events).where(t.events.c.id == event_id))
                              .one())

    def ensure_delivery(self, event_id: int, plugin: str, hook: str, now: datetime) -> DeliveryRow:
        """The ledger row for (event, plugin), created pending when missing (one INSERT ...
        SELECT ... WHERE NOT EXISTS, then the row read back)."""
        d = t.deliveries
        where = and_(d.c.event_id == event_id, d.c.plugin == plugin, d.c.hook == hook)
        with self.begin() as c:
            c.execute(insert(d).from_select(
                ["event_id", "plugin", "hook", "status", "attempts", "next_attempt_at",
                 "created_at"],
                select(_param("n_event", d.c.event_id), _param("n_plugin", d.c.plugin),
                       _param("n_hook", d.c.hook), _param("n_status", d.c.status),
                       _param("n_attempts", d.c.attempts), _param("n_next", d.c.next_attempt_at),
                       _param("n_created", d.c.created_at))
                .where(~exists().where(where))),
                dict(n_event=event_id, n_plugin=plugin, n_hook=hook, n_status=PENDING,
                     n_attempts=0, n_next=now, n_created=now))
            return _delivery_row(c.execute(select(d).where(where)).one())

    def dispatch(self, event_id: int, plugins: list[str], hook: str, now: datetime) -> None:
        """Create a pending delivery per plugin and mark the event dispatched, atomically."""
        with self.begin() as c:
            have = set(c.execute(select(t.deliveries.c.plugin).where(and_(
                t.deliveries.c.event_id == event_id, t.deliveries.c.hook == hook))).scalars())
            rows = [dict(event_id=event_id, plugin=p, hook=hook, status=PENDING, attempts=0,
                         next_attempt_at=now, created_at=now) for p in plugins if p not in have]
            if rows:
                c.execute(insert(t.deliveries), rows)
            c.execute(update(t.events).where(t.events.c.id == event_id).values(dispatched=True))

    def due_deliveries(self, now: datetime, limit: int = 500,
                       exclude_hooks: tuple[str, ...] = ()) -> list[DeliveryRow]:
        """Deliveries to attempt now, oldest first."""
        q = (select(t.deliveries, t.events.c.key.label("event_key"))
             .join(t.events, t.events.c.id == t.deliveries.c.event_id)
             .where(and_(t.deliveries.c.status.in_(OPEN_STATUSES),
                         t.deliveries.c.next_attempt_at <= now))
             .order_by(t.deliveries.c.next_attempt_at, t.deliveries.c.id).limit(limit))
        if exclude_hooks:
            q = q.where(t.deliveries.c.hook.not_in(exclude_hooks))
        with self.engine.connect() as conn:
            return [_delivery_row(r) for r in conn.execute(q).all()]

    def finish_delivery(self, delivery_id: int, *, status: str, attempts: int,
                        next_attempt_at: datetime, error: str | None, now: datetime) -> None:
        """Record the outcome of one attempt."""
        with self.begin() as c:
            c.execute(update(t.deliveries).where(t.deliveries.c.id == delivery_id).values(
                status=status, attempts=attempts, next_attempt_at=next_attempt_at,
                last_error=error, finished_at=now if status not in OPEN_STATUSES else None))

    def deliveries(self, *, status: str | None = None, case_id: str | None = None,
                   limit: int | None = 1000, offset: int = 0) -> list[DeliveryRow]:
        """Ledger rows for ``ehcbridge deliveries``, oldest first (``limit`` None: all)."""
        q = (select(t.deliveries, t.events.c.key.label("event_key"),
                    t.plans.c.case_id.label("case_id"))
             .join(t.events, t.events.c.id == t.deliveries.c.event_id)
             # Outer joins: a termly list notice belongs to no review.
             .outerjoin(t.reviews, t.reviews.c.id == t.events.c.review_id)
             .outerjoin(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .order_by(t.deliveries.c.id).limit(limit).offset(offset or None))
        if status:
            q = q.where(t.deliveries.c.status == status)
        if case_id:
            q = q.where(t.plans.c.case_id == case_id)
        with self.engine.connect() as conn:
            return [_delivery_row(r) for r in conn.execute(q).all()]

    def count_deliveries(self, *, status: str | None = None, case_id: str | None = None) -> int:
        """How many ledger rows :meth:`deliveries` would list without a limit."""
        q = select(func.count()).select_from(t.deliveries)
        if status:
            q = q.where(t.deliveries.c.status == status)
        if case_id:
            q = (q.join(t.events, t.events.c.id == t.deliveries.c.event_id)
                 .join(t.reviews, t.reviews.c.id == t.events.c.review_id)
                 .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
                 .where(t.plans.c.case_id == case_id))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def delivery_counts(self) -> dict[tuple[str, str, str], int]:
        """Counts by (hook, plugin, status)."""
        q = select(t.deliveries.c.hook, t.deliveries.c.plugin, t.deliveries.c.status,
                   func.count()).group_by(t.deliveries.c.hook, t.deliveries.c.plugin,
                                          t.deliveries.c.status)
        with self.engine.connect() as conn:
            return {(h, p, s): int(n) for h, p, s, n in conn.execute(q)}

    def retry_delivery(self, delivery_id: int, now: datetime) -> DeliveryRow:
        """Put a dead (or skipped) delivery back in the queue with a fresh attempt count."""
        with self.begin() as c:
            row = c.execute(select(t.deliveries).where(t.deliveries.c.id == delivery_id)).first()
            if row is None:
                raise StoreError(f"no delivery with id {delivery_id}")
            if row.status == DELIVERED:
                raise StoreError(f"delivery {delivery_id} was already delivered")
            c.execute(update(t.deliveries).where(t.deliveries.c.id == delivery_id).values(
                status=PENDING, attempts=0, next_attempt_at=now, finished_at=None))
            row = c.execute(select(t.deliveries).where(t.deliveries.c.id == delivery_id)).one()
            return _delivery_row(row)

    def set_meeting_link(self, meeting_id: int, *, provider: str | None, join_url: str | None,
                         external_id: str | None, error: str | None = None) -> None:
        """Store what the online meeting provider returned (or why it failed)."""
        with self.begin() as c:
            values: dict[str, Any] = {"link_error": error}
            if provider is not None:
                values.update(provider=provider, join_url=join_url, external_id=external_id)
            c.execute(update(t.meetings).where(t.meetings.c.id == meeting_id).values(**values))

    def mark_linkless(self, items: list[tuple[int, int, str]], flag: str) -> None:
        """Record that online meetings go out without a link: for each (meeting id, review id,
        detail) the meeting's link error and the review's ``flag``, in one transaction (a
        first run does this for every meeting): a few statements a batch, not three an item."""
        if not items:
            return
        details: dict[int, str] = {}  # review id -> detail; a later item wins, as one by one
        for _meeting_id, review_id, detail in items:
            details[review_id] = detail
        now = utcnow()
        with self.begin() as c:
            c.execute(update(t.meetings).where(t.meetings.c.id == bindparam("meeting_id"))
                      .values(link_error=bindparam("new_error")),
                      [{"meeting_id": m, "new_error": d} for m, _r, d in items])
            have: set[int] = set()
            for chunk in _chunks(list(details), 500):
                have.update(c.execute(select(t.flags.c.review_id).where(and_(
                    t.flags.c.review_id.in_(chunk), t.flags.c.flag == flag))).scalars())
            again = [{"rid": r, "new_detail": d} for r, d in details.items() if r in have]
            if again:
                c.execute(update(t.flags).where(and_(t.flags.c.review_id == bindparam("rid"),
                                                     t.flags.c.flag == flag))
                          .values(detail=bindparam("new_detail"), raised_by="engine"), again)
            new = [dict(review_id=r, flag=flag, detail=d, raised_by="engine", at=now)
                   for r, d in details.items() if r not in have]
            if new:
                c.execute(insert(t.flags), new)

    def meeting(self, meeting_id: int) -> Meeting:
        """One meeting by id."""
        with self.engine.connect() as conn:
            return _meeting(conn.execute(select(t.meetings).where(t.meetings.c.id == meeting_id))
                            .one())

    def clear_meeting_link(self, meeting_id: int) -> None:
        """Forget the online meeting's provider, link and id."""
        with self.begin() as c:
            c.execute(update(t.meetings).where(t.meetings.c.id == meeting_id).values(
                provider=None, join_url=None, external_id=None))

    def meeting_link_error(self, meeting_id: int) -> str | None:
        """Why the provider could not create the meeting's link, if it failed."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.meetings.c.link_error)
                                .where(t.meetings.c.id == meeting_id)).scalar_one_or_none()

    # Duties (what the lifecycle computed; the store only keeps it) ---------------------------

    def duties(self, case_id: str) -> list[Duty]:
        """The current review's duties, by due date then name."""
        with self.engine.connect() as conn:
            review_id = self.review_id_for(conn, case_id)
            rows = conn.execute(select(t.duties).where(t.duties.c.review_id == review_id)).all()
        return sorted((_duty(r) for r in rows), key=_duty_order)

    def duty_counts(self) -> dict[tuple[str, str], int]:
        """How many duties of every review there are, by (name, status), counted in SQL: the
        figures of a whole caseload without reading each duty."""
        q = (select(t.duties.c.name, t.duties.c.status, func.count())
             .group_by(t.duties.c.name, t.duties.c.status))
        with self.engine.connect() as conn:
            return {(str(name), str(status)): int(n) for name, status, n in conn.execute(q)}

    def duty_facts(self, statuses: list[str], *, current: bool | None = None,
                   names: Iterable[str] | None = None) -> list[tuple[str, int, DutyFact]]:
        """(case id, review id, name, status and due date) of every review's duties of these
        statuses (only of current reviews, or only of earlier ones, when ``current`` says; only
        these ``names`` when given): the light read of :meth:`duty_rows` for counting (no rule,
        parties or evidence)."""
        q = (select(t.plans.c.case_id, t.duties.c.review_id, t.duties.c.name,
                    t.duties.c.status, t.duties.c.due)
             .join(t.reviews, t.reviews.c.id == t.duties.c.review_id)
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .where(t.duties.c.status.in_(statuses)))
        if current is not None:
            q = q.where(t.reviews.c.current.is_(current))
        if names is not None:
            q = q.where(t.duties.c.name.in_(list(names)))
        with self.engine.connect() as conn:
            return [(case_id, int(rid), DutyFact(name, status, due))
                    for case_id, rid, name, status, due in conn.execute(q)]

    def current_duties_due(self, statuses: list[str], windows: list[tuple[date, date]]
                           ) -> list[int]:
        """How many duties of current reviews, of these statuses, fall due in each window
        (first and last day), counted in SQL."""
        due = t.duties.c.due
        q = (select(*(func.coalesce(func.sum(case((and_(due >= a, due <= b), 1), else_=0)), 0)
                      for a, b in windows))
             .select_from(t.duties.join(t.reviews, t.reviews.c.id == t.duties.c.review_id))
             .where(and_(t.reviews.c.current.is_(True), t.duties.c.status.in_(statuses))))
        with self.engine.connect() as conn:
            return [int(n) for n in conn.execute(q).one()]

    def duty_rows(self, *, status: str | None = None, name: str | None = None,
                  case_ids: list[str] | None = None, statuses: list[str] | None = None,
                  due_before: date | None = None, current_only: bool = False
                  ) -> list[tuple[str, int, Duty]]:
        """(case id, review id, duty) of every review's duties, filtered, by case then due."""
        q = (select(t.duties, t.plans.c.case_id)
             .join(t.reviews, t.reviews.c.id == t.duties.c.review_id)
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id))
        if status is not None:
            q = q.where(t.duties.c.status == status)
        if statuses is not None:
            q = q.where(t.duties.c.status.in_(statuses))
        if due_before is not None:
            q = q.where(t.duties.c.due <= due_before)
        if current_only:
            q = q.where(t.reviews.c.current.is_(True))
        if name is not None:
            q = q.where(t.duties.c.name == name)
        out: list[tuple[str, int, Duty]] = []
        with self.engine.connect() as conn:
            for chunk in (_chunks(list(case_ids), 500) if case_ids is not None else [None]):
                cq = q if chunk is None else q.where(t.plans.c.case_id.in_(chunk))
                out += [(r.case_id, int(r.review_id), _duty(r)) for r in conn.execute(cq)]
        out.sort(key=lambda row: (row[0], row[1], *_duty_order(row[2])))
        return out

    def save_duties(self, review_id: int, duties: list[Duty], *,
                    conn: Connection | None = None) -> None:
        """Insert or update duties of a review, matched by (review, name)."""
        if not duties:
            return
        now = utcnow()
        with self._maybe_begin(conn) as c:
            have = set(c.execute(select(t.duties.c.name).where(
                t.duties.c.review_id == review_id)).scalars())
            new = [_duty_values(review_id, d, now) for d in duties if d.name not in have]
            if new:
                c.execute(insert(t.duties), new)
            for d in duties:
                if d.name in have:
                    c.execute(update(t.duties).where(and_(
                        t.duties.c.review_id == review_id, t.duties.c.name == d.name))
                        .values(**_duty_values(review_id, d, now)))

    # Invitees, flags, invitations, state, audit (also behind the plugin facade) --------------

    def add_invitee(self, case_id: str, invitee: Invitee, *, routed_from: str | None = None,
                    conn: Connection | None = None, replace_email: str | None = None) -> bool:
        """Add an invitee, or update the one with the same role and email; True when new."""
        with self._maybe_begin(conn) as c:
            review_id = self.review_id_for(c, case_id)
            match_email = replace_email if replace_email is not None else invitee.email
            cond = and_(t.invitees.c.review_id == review_id,
                        t.invitees.c.role == invitee.role.value,
                        (t.invitees.c.email == match_email) if match_email is not None
                        else and_(t.invitees.c.email.is_(None),
                                  # without email, a postal address tells two people apart
                                  t.invitees.c.address.is_(None) if invitee.address is None
                                  else t.invitees.c.address == invitee.address))
            row = c.execute(select(t.invitees).where(cond)).first()
            values = dict(role=invitee.role.value, name=invitee.name, email=invitee.email,
                          team=invitee.team, source=invitee.source)
            if invitee.address is not None or invitee.mobile is not None:
                values.update(address=invitee.address, mobile=invitee.mobile)
            if row is not None and replace_email is not None and invitee.email != replace_email:
                target = c.execute(select(t.invitees.c.id).where(and_(
                    t.invitees.c.review_id == review_id, t.invitees.c.role == invitee.role.value,
                    t.invitees.c.email == invitee.email))).first()
                if target is not None:  # two invitees routed to one mailbox: keep one
                    c.execute(delete(t.invitees).where(t.invitees.c.id == row.id))
                    row = c.execute(select(t.invitees).where(t.invitees.c.id == target.id)).one()
            if row is None:
                c.execute(insert(t.invitees).values(review_id=review_id, added_at=utcnow(),
                                                    routed_from=routed_from, **values))
                return True
            if routed_from is not None:
                values["routed_from"] = routed_from
            c.execute(update(t.invitees).where(t.invitees.c.id == row.id).values(**values))
            return False

    def set_response(self, case_id: str, email: str, response: str) -> None:
        """Store an invitee's response to the invitation."""
        with self.begin() as c:
            review_id = self._review_of(c, case_id)
            c.execute(update(t.invitees).where(and_(
                t.invitees.c.review_id == review_id,
                func.lower(t.invitees.c.email) == email.lower())).values(response=response))

    def flag_review(self, case_id: str, flag: str, detail: str, raised_by: str) -> None:
        """Raise (or refresh) a flag on the current review."""
        with self.begin() as c:
            self._flag(c, self._review_of(c, case_id), flag, detail, raised_by)

    def flag_count(self, flag: str, *, current_only: bool = False) -> int:
        """How many reviews carry ``flag`` (past ones too, unless ``current_only``)."""
        q = select(func.count()).select_from(t.flags).where(t.flags.c.flag == flag)
        if current_only:
            q = q.join(t.reviews, t.reviews.c.id == t.flags.c.review_id).where(
                t.reviews.c.current.is_(True))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def clear_flag(self, case_id: str, flag: str) -> None:
        """Clear a flag from the current review."""
        with self.one_statement() as c:
            review_id = self._review_of(c, case_id)
            c.execute(delete(t.flags).where(and_(t.flags.c.review_id == review_id,
                                                 t.flags.c.flag == flag)))

    def record_invitation(self, case_id: str, email: str, *, plugin: str, status: str,
                          detail: str) -> None:
        """Record that a plugin sent (or failed to send) an invitation: the latest status per
        plugin and address. One statement when it is the first record (INSERT ... SELECT ...
        WHERE NOT EXISTS), an update after that."""
        with self.one_statement() as c:
            review_id = self._review_of(c, case_id)
            now = utcnow()
            params = dict(rid=review_id, by_plugin=plugin, address=email.lower(),
                          new_email=email, new_status=status, new_detail=detail, new_at=now)
            if c.execute(_RECORD_NEW, params).first() is None:
                del params["new_email"]
                c.execute(_RECORD_AGAIN, params)

    # One invitation per person per meeting across plugins: the first plugin to claim an
    # address holds it. The claim is a row keyed by review and address in a reserved state
    # namespace, so two plugins racing for the same person cannot both win (primary key).
    # Claims are not invitations: a plugin still records what it actually sent.
    _CLAIMS = "_invitations"

    def claim_invitation(self, case_id: str, email: str, *, plugin: str) -> str:
        """Claim ``email`` for ``plugin`` before inviting them, unless another plugin holds a
        claim or a live invitation; returns the holder (``plugin`` when the claim is its own)."""
        address = email.strip().lower()
        with self.one_statement() as c:  # a first run claims tens of thousands
            review_id = self._review_of(c, case_id)
            key = f"{review_id}:{address}"
            # One statement: the claim is written unless another plugin's live invitation
            # exists, and the primary key decides a race (ON CONFLICT DO NOTHING).
            if c.execute(_claim_statement(c.dialect.name), dict(
                    claims=self._CLAIMS, new_key=key, new_value={"plugin": plugin},
                    new_at=utcnow(), rid=review_id, by_plugin=plugin,
                    address=address)).first() is not None:
                return plugin
            other = c.execute(select(t.invitations.c.plugin).where(and_(
                t.invitations.c.review_id == review_id, t.invitations.c.plugin != plugin,
                func.lower(t.invitations.c.email) == address,
                t.invitations.c.status != "failed"))).first()
            if other is not None:
                return str(other.plugin)
            held = c.execute(select(t.plugin_state.c.value).where(and_(
                t.plugin_state.c.plugin == self._CLAIMS,
                t.plugin_state.c.key == key))).scalar_one_or_none()
        return str((held or {}).get("plugin", plugin))

    def release_invitations(self, case_id: str, *, plugin: str, emails: list[str] | None = None,
                            detail: str = "", unsent_only: bool = False) -> None:
        """Give up ``plugin``'s claims (on ``emails``, or all; with ``unsent_only`` those it
        never recorded as sent) after its invitation failed, so another plugin may invite
        them; its invitation records to those addresses say ``failed``."""
        with self.begin() as c:
            review_id = self._review_of(c, case_id)
            rows = c.execute(select(t.plugin_state.c.key, t.plugin_state.c.value).where(and_(
                t.plugin_state.c.plugin == self._CLAIMS,
                t.plugin_state.c.key.startswith(f"{review_id}:", autoescape=True)))).all()
            sent = set(c.execute(select(func.lower(t.invitations.c.email)).where(and_(
                t.invitations.c.review_id == review_id, t.invitations.c.plugin == plugin,
                t.invitations.c.status == "sent"))).scalars()) if unsent_only else set()
            wanted = {e.strip().lower() for e in emails} if emails is not None else None
            for key, value in rows:
                address = key.partition(":")[2]
                if (value or {}).get("plugin") != plugin or address in sent or (
                        wanted is not None and address not in wanted):
                    continue
                c.execute(delete(t.plugin_state).where(and_(
                    t.plugin_state.c.plugin == self._CLAIMS, t.plugin_state.c.key == key)))
                c.execute(update(t.invitations).where(and_(
                    t.invitations.c.review_id == review_id, t.invitations.c.plugin == plugin,
                    func.lower(t.invitations.c.email) == address)).values(
                        status="failed", detail=detail or "invitation failed", at=utcnow()))

    def get_state(self, plugin: str, key: str, default: Any = None) -> Any:
        """A plugin's stored value."""
        with self.one_statement() as conn:
            row = conn.execute(_GET_STATE, {"plugin": plugin, "key": key}).first()
        return default if row is None else row.value

    def get_state_many(self, plugin: str, keys: Iterable[str]) -> dict[str, Any]:
        """A plugin's stored values of ``keys``, by key (keys not stored are left out), in one
        query per 500 keys."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self.one_statement() as conn:
            for chunk in _chunks(wanted, 500):
                found.update(conn.execute(_GET_STATES, {"plugin": plugin, "keys": chunk}).all())
        return found

    def set_state_many(self, plugin: str, items: dict[str, Any]) -> None:
        """Store several keys of a plugin's state in one transaction."""
        if not items:
            return
        from ehcbridge.store.queue import upsert_state

        with self.one_statement() as c:  # one statement (executemany): no transaction needed
            upsert_state(c, plugin, items, utcnow())

    def delete_state(self, plugin: str, key: str) -> None:
        """Remove a key from a plugin's state."""
        with self.one_statement() as c:
            c.execute(delete(t.plugin_state).where(and_(t.plugin_state.c.plugin == plugin,
                                                        t.plugin_state.c.key == key)))

    def state_items(self, plugin: str, prefix: str = "") -> list[tuple[str, Any]]:
        """A plugin's keys starting with ``prefix``, sorted."""
        with self.one_statement() as conn:
            q = select(t.plugin_state.c.key, t.plugin_state.c.value).where(
                t.plugin_state.c.plugin == plugin).order_by(t.plugin_state.c.key)
            if prefix:
                q = q.where(t.plugin_state.c.key.startswith(prefix, autoescape=True))
                if self.backend == "sqlite":
                    # SQLite's LIKE is case-blind and cannot use the primary key; a range on
                    # the key (binary collation) can, so a lookup per delivery stays O(log n).
                    q = q.where(t.plugin_state.c.key >= prefix,
                                t.plugin_state.c.key < prefix + "\U0010ffff")
            return [(k, v) for k, v in conn.execute(q)]

    def audit(self, plugin: str, case_id: str | None, action: str, detail: dict[str, Any]) -> None:
        """Append an audit record."""
        with self.one_statement() as c:
            c.execute(_AUDIT, dict(plugin=plugin, case_id=case_id, action=action,
                                   detail=detail, at=utcnow()))

    def update_pupil(self, upn: str, fields: dict[str, Any]) -> tuple[bool, list[int]]:
        """Update the pupil with this UPN; returns (changed, ids of its current reviews)."""
        allowed = {"forename", "surname", "dob", "nc_year", "school_urn"}
        values = {k: v for k, v in fields.items() if k in allowed}
        if isinstance(values.get("dob"), str):
            values["dob"] = date.fromisoformat(values["dob"])
        with self.begin() as c:
            row = c.execute(select(t.pupils).where(t.pupils.c.upn == upn)).first()
            if row is None:
                return False, []
            changed = any(getattr(row, k) != v for k, v in values.items())
            if changed:
                c.execute(update(t.pupils).where(t.pupils.c.id == row.id)
                          .values(updated_at=utcnow(), **values))
            review_ids = list(c.execute(
                select(t.reviews.c.id).join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
                .where(and_(t.plans.c.pupil_id == row.id, t.reviews.c.current.is_(True))))
                .scalars())
            return changed, review_ids

    def update_pupils(self, items: dict[str, dict[str, Any]]
                      ) -> dict[str, list[tuple[int, date, bool]]]:
        """Update many pupils by UPN in one transaction; returns the changed UPNs with their
        current reviews (id, due date, covers preparing for adulthood)."""
        allowed = {"forename", "surname", "dob", "nc_year", "school_urn"}
        changed: dict[str, list[tuple[int, date, bool]]] = {}
        now = utcnow()
        with self.begin() as c:
            for chunk in _chunks(list(items), 500):
                rows = {r.upn: r for r in c.execute(select(t.pupils)
                                                    .where(t.pupils.c.upn.in_(chunk)))}
                for upn in chunk:
                    row = rows.get(upn)
                    if row is None:
                        continue
                    values = {k: v for k, v in items[upn].items() if k in allowed}
                    if isinstance(values.get("dob"), str):
                        values["dob"] = date.fromisoformat(values["dob"])
                    if any(getattr(row, k) != v for k, v in values.items()):
                        c.execute(update(t.pupils).where(t.pupils.c.id == row.id)
                                  .values(updated_at=now, **values))
                        changed[upn] = []
                ids = [rows[u].id for u in chunk if u in changed]
                if ids:
                    for pupil_id, review_id, due, pfa in c.execute(
                            select(t.plans.c.pupil_id, t.reviews.c.id, t.reviews.c.due_by,
                                   t.reviews.c.preparing_for_adulthood)
                            .join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
                            .where(and_(t.plans.c.pupil_id.in_(ids),
                                        t.reviews.c.current.is_(True)))):
                        upn = next(u for u in chunk if u in rows and rows[u].id == pupil_id)
                        changed[upn].append((review_id, due, bool(pfa)))
        return changed

    def open_reviews_for_upns(self, upns: list[str]) -> dict[str, list[Review]]:
        """Open reviews of many pupils, in one query per 500 UPNs."""
        out: dict[str, list[Review]] = {u: [] for u in upns}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(upns), 500):
                q = (select(t.pupils.c.upn, t.reviews, t.plans.c.case_id,
                            t.plans.c.coordinator_email)
                     .join(t.plans, t.plans.c.pupil_id == t.pupils.c.id)
                     .join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
                     .where(and_(t.pupils.c.upn.in_(chunk), t.reviews.c.current.is_(True),
                                 t.reviews.c.status.in_([ReviewStatus.DUE.value,
                                                         ReviewStatus.SCHEDULED.value,
                                                         ReviewStatus.HELD.value]))))
                for r in conn.execute(q):
                    out[r.upn].append(Review(
                        id=r.id, case_id=r.case_id, kind=ReviewKind(r.kind), due_by=r.due_by,
                        status=ReviewStatus(r.status),
                        preparing_for_adulthood=bool(r.preparing_for_adulthood),
                        coordinator_email=r.coordinator_email))
        return out

    def set_pfa(self, review_ids: list[int], value: bool) -> None:
        """Set or clear the preparing-for-adulthood flag on reviews."""
        if review_ids:
            with self.begin() as c:
                c.execute(update(t.reviews).where(t.reviews.c.id.in_(review_ids))
                          .values(preparing_for_adulthood=value))

    def open_reviews_for_upn(self, upn: str) -> list[str]:
        """Case ids of this pupil's open reviews."""
        q = (select(t.plans.c.case_id).join(t.pupils, t.pupils.c.id == t.plans.c.pupil_id)
             .join(t.reviews, t.reviews.c.plan_id == t.plans.c.id)
             .where(and_(t.pupils.c.upn == upn, t.reviews.c.current.is_(True),
                         t.reviews.c.status.in_([ReviewStatus.DUE.value,
                                                 ReviewStatus.SCHEDULED.value,
                                                 ReviewStatus.HELD.value]))))
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    # Views received, files kept with a review, notices (issue 13) ----------------------------

    def add_views(self, case_id: str, *, contributor: str, role: str | None, received_on: date,
                  files: list[tuple[str, str, bytes]], now: datetime | None = None) -> int:
        """Record views received from ``contributor`` with their files (name, content type,
        bytes), all in one transaction; returns the views id."""
        import hashlib

        at = now or utcnow()
        with self.begin() as c:
            review_id = self.review_id_for(c, case_id)
            views_id = _new_id(c.execute(insert(t.views).values(
                review_id=review_id, contributor=contributor, role=role,
                received_on=received_on, at=at)))
            for name, content_type, data in files:
                c.execute(insert(t.review_files).values(
                    review_id=review_id, views_id=views_id, kind="views", filename=name,
                    content_type=content_type, size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(), data=data, at=at))
            return views_id

    def views(self, case_id: str | None = None, *, review_id: int | None = None
              ) -> list[Views]:
        """Views received for a review (the case's current one unless ``review_id``)."""
        with self.engine.connect() as conn:
            rid = review_id if review_id is not None else self.review_id_for(conn, str(case_id))
            rows = conn.execute(select(t.views).where(t.views.c.review_id == rid)
                                .order_by(t.views.c.id)).all()
            names: dict[int, list[str]] = {}
            for f in conn.execute(select(t.review_files.c.views_id, t.review_files.c.filename)
                                  .where(t.review_files.c.review_id == rid)
                                  .order_by(t.review_files.c.id)):
                if f.views_id is not None:
                    names.setdefault(f.views_id, []).append(f.filename)
        return [Views(id=r.id, contributor=r.contributor, role=r.role, received=r.received_on,
                      files=tuple(names.get(r.id, []))) for r in rows]

    def add_file(self, case_id: str, *, kind: str, filename: str, content_type: str,
                 data: bytes, now: datetime | None = None) -> int:
        """Keep a file (the review report...) with the current review; returns its id."""
        import hashlib

        with self.begin() as c:
            review_id = self.review_id_for(c, case_id)
            return _new_id(c.execute(insert(t.review_files).values(
                review_id=review_id, kind=kind, filename=filename, content_type=content_type,
                size=len(data), sha256=hashlib.sha256(data).hexdigest(), data=data,
                at=now or utcnow())))

    def review_files(self, review_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        """Files kept with a review (without their bytes), oldest first."""
        q = (select(t.review_files.c.id, t.review_files.c.views_id, t.review_files.c.kind,
                    t.review_files.c.filename, t.review_files.c.content_type,
                    t.review_files.c.size, t.views.c.contributor, t.views.c.role,
                    t.views.c.received_on)
             .outerjoin(t.views, t.views.c.id == t.review_files.c.views_id)
             .where(t.review_files.c.review_id == review_id).order_by(t.review_files.c.id))
        if kind is not None:
            q = q.where(t.review_files.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def file_data(self, file_id: int) -> bytes:
        """The bytes of a file kept with a review."""
        with self.engine.connect() as conn:
            data = conn.execute(select(t.review_files.c.data)
                                .where(t.review_files.c.id == file_id)).scalar_one_or_none()
        if data is None:
            raise StoreError(f"no file with id {file_id}")
        return bytes(data)

    def queue_notices(self, review_id: int | None, items: list[dict[str, Any]],
                      now: datetime) -> int:
        """Write each notice as a ``deliver_notice`` event with its ledger row in ``notices``
        (keys already present are skipped); returns how many were new. Each item has key,
        kind, duty, role, channel, plugin and payload. ``review_id`` is None for a notice that
        belongs to no review (a termly list)."""
        added = 0
        with self.begin() as c:
            for item in items:
                if not self._add_event(c, key=item["key"], hook="deliver_notice",
                                       action=item["kind"][:20], review_id=review_id,
                                       meeting_id=None, at=now, payload=item["payload"]):
                    continue
                event_id = c.execute(select(t.events.c.id)
                                     .where(t.events.c.key == item["key"])).scalar_one()
                c.execute(insert(t.notices).values(
                    event_id=event_id, review_id=review_id, kind=item["kind"],
                    duty=item.get("duty"), role=item.get("role"), channel=item["channel"],
                    plugin=item.get("plugin"), status="queued", queued_at=now))
                added += 1
        return added

    def set_notice_status(self, event_id: int, *, status: str, plugin: str | None = None,
                          reference: str | None = None, detail: str | None = None,
                          now: datetime | None = None) -> None:
        """Record what became of a notice's delivery (sent, delivered, failed)."""
        values: dict[str, Any] = {"status": status, "detail": detail}
        if plugin is not None:
            values["plugin"] = plugin
        if reference is not None:
            values["reference"] = reference
        if status == "sent":
            values["sent_at"] = now or utcnow()
        with self.begin() as c:
            c.execute(update(t.notices).where(t.notices.c.event_id == event_id).values(**values))

    def set_notice_status_by_reference(self, plugin: str, reference: str, status: str,
                                       detail: str | None = None) -> str | None:
        """Update a notice by the channel's own reference; returns its case id (or None)."""
        with self.begin() as c:
            row = c.execute(select(t.notices.c.id, t.plans.c.case_id)
                            .join(t.reviews, t.reviews.c.id == t.notices.c.review_id)
                            .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
                            .where(and_(t.notices.c.plugin == plugin,
                                        t.notices.c.reference == reference))).first()
            if row is None:
                return None
            c.execute(update(t.notices).where(t.notices.c.id == row.id)
                      .values(status=status, detail=detail))
            return str(row.case_id)

    def unsent_notices(self, conn: Connection, review_id: int
                       ) -> list[tuple[int, str | None, dict[str, Any]]]:
        """The review's notices not sent (queued, or failed): (event id, duty, recipient as
        queued)."""
        rows = conn.execute(select(t.notices.c.event_id, t.notices.c.duty, t.events.c.payload)
                            .join(t.events, t.events.c.id == t.notices.c.event_id)
                            .where(and_(t.notices.c.review_id == review_id,
                                        t.notices.c.status.in_(("queued", "failed"))))).all()
        return [(r.event_id, r.duty,
                 dict((r.payload or {}).get("notice", {}).get("recipient") or {}))
                for r in rows]

    def withdraw_notices(self, conn: Connection, event_ids: list[int], detail: str) -> None:
        """Mark notices ``withdrawn`` and their deliveries not yet made ``skipped`` (events not
        yet dispatched are marked dispatched, so no delivery is made)."""
        if not event_ids:
            return
        conn.execute(update(t.notices).where(t.notices.c.event_id.in_(event_ids))
                     .values(status="withdrawn", detail=detail))
        conn.execute(update(t.deliveries).where(and_(
            t.deliveries.c.event_id.in_(event_ids), t.deliveries.c.status.in_(OPEN_STATUSES)))
            .values(status=SKIPPED, last_error=detail, finished_at=utcnow()))
        conn.execute(update(t.events).where(t.events.c.id.in_(event_ids))
                     .values(dispatched=True))

    def notices(self, *, review_id: int | None = None, case_id: str | None = None,
                duty: str | None = None) -> list[dict[str, Any]]:
        """Notice ledger rows: kind, duty, role, channel, plugin, status, reference, dates."""
        q = (select(t.notices, t.events.c.key, t.plans.c.case_id)
             .join(t.events, t.events.c.id == t.notices.c.event_id)
             .join(t.reviews, t.reviews.c.id == t.notices.c.review_id)
             .join(t.plans, t.plans.c.id == t.reviews.c.plan_id)
             .order_by(t.notices.c.id))
        if review_id is not None:
            q = q.where(t.notices.c.review_id == review_id)
        if case_id is not None:
            q = q.where(t.plans.c.case_id == case_id)
        if duty is not None:
            q = q.where(t.notices.c.duty == duty)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _bulk_insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, with each column type's own bind
    conversion: the same SQL SQLAlchemy would send, without its per-row bookkeeping, which is
    most of the time of a large import."""
    if not rows:
        return
    _insert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]})


def _insert_columns(conn: Connection, table: Any, data: dict[str, list[Any]]) -> None:
    """:func:`_bulk_insert` of rows given column by column (``data``: name -> one value per
    row), for callers that can build the columns without a dict per row."""
    dialect = conn.dialect
    columns = list(data)
    if not columns or not data[columns[0]]:
        return
    copying = dialect.driver == "psycopg"
    # The dialect's own implementation: PostgreSQL's JSON, for one, serialises there. COPY
    # takes JSON as its text, made here once per distinct value rather than by psycopg per row.
    processors = [_json_text if copying and isinstance(table.c[name].type, JSON)
                  else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                  for name in columns]
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    # Column by column: a column without conversion is taken as it is, and the rows are put
    # together by zip, so a 100,000-row insert is not millions of Python-level calls.
    values: list[list[Any]] = []
    for name, proc in zip(columns, processors, strict=True):
        column = data[name]
        if proc is not None:
            column = _converted(column, proc)
        values.append(column)
    if copying:
        _copy(conn, f"COPY {quote(table.name)} ({names}) FROM STDIN", zip(*values, strict=True))
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))})"
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


def _copy(conn: Connection, sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
    """Rows sent with PostgreSQL's COPY, in the connection's transaction: psycopg's executemany
    costs a round of its pipeline per row, most of a large import's time on PostgreSQL."""
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except raw.Error as exc:
        # Not through SQLAlchemy, so not through its error hook: scrubbed here the same way
        # (PostgreSQL's COPY context quotes the refused row).
        raise copy_failed(sql, exc) from None


def _converted(column: list[Any], proc: Any) -> list[Any]:
    """``proc`` applied to each value, each distinct value converted once (many rows share the
    import's timestamp or a meeting time)."""
    cache: dict[Any, Any] = {}
    out = []
    for value in column:
        key = tuple(value) if type(value) is list else value  # a duty's owed_to, say
        try:
            out.append(cache[key])
        except KeyError:
            cache[key] = converted = proc(value)
            out.append(converted)
        except TypeError:  # unhashable (JSON payloads)
            out.append(proc(value))
    return out


def _json_text(value: Any) -> str:
    """A JSON column's value as the text COPY takes (None as JSON null, as SQLAlchemy's JSON
    type stores it)."""
    return json.dumps(value)


def _reserve_ids(conn: Connection, table: Any, count: int) -> list[int]:
    """Primary keys for ``count`` new rows, so a bulk insert needs no RETURNING (which SQLite
    would run row by row). PostgreSQL takes them from the table's sequence; SQLite continues
    after the largest id (a racing writer would fail on the primary key, never overwrite)."""
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        seq = conn.execute(select(func.pg_get_serial_sequence(table.name, "id"))).scalar_one()
        return list(conn.execute(select(func.nextval(seq))
                                 .select_from(func.generate_series(1, count))).scalars())
    start = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
    return list(range(start, start + count))


def _new_id(result: Any) -> int:
    """The primary key an INSERT produced."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _meeting(m: Any) -> Meeting:
    return Meeting(id=m.id, start=m.start, end=m.end, location=m.location, online=bool(m.online),
                   join_url=m.join_url, provider=m.provider, external_id=m.external_id,
                   organiser=m.organiser, status=MeetingStatus(m.status), sequence=m.sequence)


def _event_row(r: Any) -> EventRow:
    return EventRow(id=r.id, key=r.key, hook=r.hook, action=r.action,
                    review_id=r.review_id or 0,
                    meeting_id=r.meeting_id, occurred_at=r.occurred_at, payload=r.payload or {})


def _delivery_row(r: Any) -> DeliveryRow:
    m = r._mapping
    return DeliveryRow(id=m["id"], event_id=m["event_id"], plugin=m["plugin"], hook=m["hook"],
                       status=m["status"], attempts=m["attempts"],
                       next_attempt_at=m["next_attempt_at"], last_error=m["last_error"],
                       created_at=m["created_at"], finished_at=m["finished_at"],
                       event_key=m.get("event_key", ""), case_id=m.get("case_id") or "")


class DutyFact(NamedTuple):
    """A duty as :meth:`Store.duty_facts` reads it: enough to count and date it."""

    name: str
    status: str
    due: date | None


def _duty(r: Any) -> Duty:
    return Duty(name=r.name, rule=r.rule, kind=r.kind, due=r.due, owed_by=r.owed_by,
                owed_to=tuple(r.owed_to or ()), status=DutyStatus(r.status), met_on=r.met_on,
                evidence=r.evidence)


def _duty_order(d: Duty) -> tuple[date, str]:
    return (d.due or date.max, d.name)


def _duty_values(review_id: int, d: Duty, now: datetime) -> dict[str, Any]:
    # ``_value_`` is the plain attribute behind ``.value``, which on Python 3.11 is a descriptor
    # costing microseconds a read; an import reads it for every duty of a caseload.
    return dict(review_id=review_id, name=d.name, rule=d.rule, kind=d.kind, due=d.due,
                owed_by=d.owed_by, owed_to=d.owed_to, status=d.status._value_,
                met_on=d.met_on, evidence=d.evidence, updated_at=now)


def _param(name: str, column: Any) -> Any:
    """A bound parameter typed as ``column``, for the SELECT list of an INSERT ... SELECT."""
    return bindparam(name, type_=column.type)


# Statements run on every delivery, built once: SQLAlchemy then finds their compiled form by a
# cache key computed once, instead of building and keying a new statement per call.
_GET_STATE = select(t.plugin_state.c.value).where(and_(
    t.plugin_state.c.plugin == bindparam("plugin"), t.plugin_state.c.key == bindparam("key")))
_GET_STATES = select(t.plugin_state.c.key, t.plugin_state.c.value).where(and_(
    t.plugin_state.c.plugin == bindparam("plugin"),
    t.plugin_state.c.key.in_(bindparam("keys", expanding=True))))
_AUDIT = insert(t.audit)
# (Bound names differ from the columns': SQLAlchemy keeps those for VALUES and SET.)
_SAME_INVITATION = and_(t.invitations.c.review_id == bindparam("rid"),
                        t.invitations.c.plugin == bindparam("by_plugin"),
                        func.lower(t.invitations.c.email) == bindparam("address"))
_RECORD_NEW = insert(t.invitations).from_select(
    ["review_id", "plugin", "email", "status", "detail", "at"],
    select(_param("rid", t.invitations.c.review_id),
           _param("by_plugin", t.invitations.c.plugin),
           _param("new_email", t.invitations.c.email),
           _param("new_status", t.invitations.c.status),
           _param("new_detail", t.invitations.c.detail),
           _param("new_at", t.invitations.c.at))
    .where(~exists().where(_SAME_INVITATION))).returning(t.invitations.c.id)
_RECORD_AGAIN = update(t.invitations).where(_SAME_INVITATION).values(
    status=bindparam("new_status"), detail=bindparam("new_detail"), at=bindparam("new_at"))


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """INSERT the claim row unless another plugin has a live invitation to the address, doing
    nothing on a taken key; RETURNING tells whether it was written."""
    from sqlalchemy.dialects import postgresql, sqlite

    s = t.plugin_state
    other = exists().where(and_(
        t.invitations.c.review_id == bindparam("rid"),
        t.invitations.c.plugin != bindparam("by_plugin"),
        func.lower(t.invitations.c.email) == bindparam("address"),
        t.invitations.c.status != "failed"))
    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(s)
    return stmt.from_select(["plugin", "key", "value", "updated_at"], select(
        _param("claims", s.c.plugin), _param("new_key", s.c.key),
        _param("new_value", s.c.value), _param("new_at", s.c.updated_at))
        .where(~other)).on_conflict_do_nothing().returning(s.c.key)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


__all__ = ["DEAD", "DELIVERED", "PENDING", "RETRYING", "SKIPPED", "CaseInput", "CaseView",
           "DeliveryRow", "DutyFact",
           "EventRow", "IntegrityError", "Store", "StoreDataError", "StoreError", "TimerRow",
           "ValueRejected"]
