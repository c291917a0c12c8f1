"""Applies lifecycle transitions: read a review from the store, ask ``ehcbridge.lifecycle`` what
must change, and have the store write exactly that, in one transaction.

The single-review commands (``ehcbridge review ...``), the bulk import, the engine's timers and
deadline checks all come through here, so each transition is decided in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from ehcbridge import lifecycle
from ehcbridge.lifecycle import DEFAULT_POLICY, Change, LifecycleError, Policy, ReviewState
from ehcbridge.models import LONDON, DutyStatus, Invitee, Outcome, Review, ReviewStatus, Role
from ehcbridge.store import CaseInput, CaseView, Store, StoreError, reads

if TYPE_CHECKING:
    from ehcbridge.app import App

log = logging.getLogger("ehcbridge.lifecycle")


def policy_of(app: App) -> Policy:
    """The lifecycle's settings from the app's ``[engine]`` section."""
    engine = app.settings.engine
    return Policy(
        school_holidays=tuple((h.start, h.end) for h in engine.school_holidays),
        infant_schools=frozenset(engine.infant_schools),
        at_risk_school_days=engine.at_risk_school_days,
        under_five_review_months=engine.under_five_review_months,
        transfer_windows=tuple(lifecycle.TransferWindow(**w.model_dump())
                               for w in engine.transfer_review_windows),
    )


def state_of(case: CaseView) -> ReviewState:
    """The lifecycle's view of a stored review."""
    return ReviewState(review=case.review, plan=case.plan, pupil=case.pupil, meeting=case.meeting,
                       decision=case.decision, duties=tuple(case.duties),
                       fired_timers=case.fired_timers,
                       invitees_key=lifecycle.invitees_key(case.invitees))


def today_of(now: datetime) -> date:
    """The Europe/London date of ``now``."""
    return now.astimezone(LONDON).date()


@contextmanager
def _refused() -> Iterator[None]:
    """A refused transition becomes a StoreError naming the case and field (for the CLI and
    the import, which already handle StoreError)."""
    try:
        yield
    except LifecycleError as exc:
        raise StoreError(str(exc), case_id=exc.case_id, field=exc.field,
                         value=exc.value) from None


def _apply(store: Store, case_id: str, now: datetime, conn: Connection | None,
           decide: Callable[[Connection, ReviewState], Change | None], *,
           decided: bool = False) -> Change | None:
    with _refused(), store._maybe_begin(conn) as c:
        review_id = store.review_id_for(c, case_id)
        if decided:
            review_id = store.decided_review_id(c, case_id) or review_id
        change = decide(c, state_of(store.case_in(c, review_id)))
        if change is not None and change.action != "unchanged":
            store.apply_change(c, review_id, change, now)
        return change


def _one(store: Store, case_id: str, now: datetime, conn: Connection | None,
         decide: Callable[[Connection, ReviewState], Change], *,
         decided: bool = False) -> Change:
    change = _apply(store, case_id, now, conn, decide, decided=decided)
    assert change is not None
    return change


# Single-review transitions -------------------------------------------------------------------


def schedule(store: Store, case_id: str, *, start: datetime, end: datetime,
             location: str | None, online: bool, organiser: str | None, now: datetime,
             conn: Connection | None = None, policy: Policy = DEFAULT_POLICY) -> Change:
    """Set or move the review meeting (``action``: scheduled, rescheduled or unchanged)."""

    def decide(c: Connection, state: ReviewState) -> Change:
        new_id = None if state.scheduled_meeting else store.reserve_meeting_ids(c)[0]
        return lifecycle.schedule(state, start=start, end=end, location=location, online=online,
                                  organiser=organiser, now=now, new_meeting_id=new_id,
                                  policy=policy)

    return _one(store, case_id, now, conn, decide)


def cancel(store: Store, case_id: str, *, reason: str, now: datetime,
           policy: Policy = DEFAULT_POLICY) -> Change:
    """Cancel the meeting; the review is due again."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.cancel(s, reason=reason, now=now, policy=policy))


def invite(store: Store, case_id: str, *, now: datetime, conn: Connection | None = None) -> bool:
    """New invitees of a meeting already set: calendar plugins invite them (False: no meeting)."""
    return _apply(store, case_id, now, conn, lambda c, s: lifecycle.invite(s)) is not None


@dataclass(frozen=True)
class Uninvited:
    """Who :func:`uninvite` removed, from which review, and the duties of notices to them it
    withdrew (each may now be met: everyone still invited was sent theirs)."""

    removed: list[Invitee]
    review_id: int
    duties: frozenset[str]


def uninvite(store: Store, case_id: str, *, email: str | None = None, name: str | None = None,
             role: str | None = None, now: datetime) -> Uninvited:
    """Remove an invitee of the current review (by email, else by name for someone reached by
    letter) and withdraw their notices not sent yet; calendar plugins then update the meeting
    already set, which withdraws their invitation. StoreError when nobody matches."""
    with store.begin() as conn:
        found = store.remove_invitees(conn, case_id, email=email, name=name, role=role)
        if not found:
            who = "with that email" if email else "with that name"
            raise StoreError(f"{case_id}: no {role or 'invitee'} {who} is invited to the current "
                             "review ('review show' lists them)", case_id=case_id,
                             field="email" if email else "name")
        store.keep_out(conn, case_id, lifecycle.kept_out(found))
        removed = [invitee for invitee, _ in found]
        review_id = store.review_id_for(conn, case_id)
        duties = withdraw_notices(store, conn, review_id, removed)
        invite(store, case_id, now=now, conn=conn)
    return Uninvited(removed, review_id, duties)


def invite_again(store: Store, case_id: str, email: str | None) -> None:
    """An explicit invitation (``review invite``, the webhook's ``invitee.added``): lift a
    caseworker's earlier removal of this address, and of the one it was routed with."""
    if not email:
        return
    with store.begin() as conn:
        store.lift_removals(conn, case_id, lifecycle.lifted(email, store.removals(case_id, conn)))


def add_invitee(store: Store, case_id: str, invitee: Invitee, **options: Any) -> bool:
    """Add (or update) an invitee unless a caseworker removed their address from this plan
    (only an explicit invitation, :func:`invite_again`, brings them back); True when someone
    new was added. ``options`` go to :meth:`Store.add_invitee`."""
    with store.begin() as conn:
        if not lifecycle.still_welcome(invitee, store.removals(case_id, conn)):
            return False
        return store.add_invitee(case_id, invitee, conn=conn, **options)


def withdraw_notices(store: Store, conn: Connection, review_id: int,
                     removed: list[Invitee]) -> frozenset[str]:
    """Notices to people no longer invited that have not gone (a views request waiting for a
    mail server, one that failed at a wrong address) are withdrawn: they would send the
    child's papers to someone who should not have them. Returns the duties they were for."""
    emails = {lifecycle.email_key(i.email) for i in removed if i.email}
    letters = {(i.name, tuple((i.address or "").split("\n"))) for i in removed if not i.email}
    found = [(event_id, duty) for event_id, duty, to in store.unsent_notices(conn, review_id)
             if lifecycle.email_key(to.get("email")) in emails
             or (not to.get("email") and (to.get("name"), tuple(to.get("address") or ()))
                 in letters)]
    store.withdraw_notices(conn, [event_id for event_id, _ in found],
                           "withdrawn: the recipient is no longer invited")
    return frozenset(duty for _, duty in found if duty)


def request_update(store: Store, case_id: str, reason: str, *, now: datetime) -> bool:
    """Calendar plugins update the meeting once per ``reason`` and revision; False when there
    is no scheduled meeting or it was already asked."""

    def decide(c: Connection, state: ReviewState) -> Change | None:
        change = lifecycle.request_update(state, reason)
        if change is None or store.event_exists(c, change.events[0].key):
            return None
        return change

    return _apply(store, case_id, now, None, decide) is not None


def held(store: Store, case_id: str, *, now: datetime, policy: Policy = DEFAULT_POLICY) -> Change:
    """The meeting took place."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.held(s, action="recorded", now=now, policy=policy))


def report(store: Store, case_id: str, *, on: date, now: datetime,
           policy: Policy = DEFAULT_POLICY) -> Change:
    """The review report went out (reg 20(7)); late is accepted with a warning."""
    return _one(store, case_id, now, None, lambda c, s: lifecycle.report(s, on=on, policy=policy))


def advice(store: Store, case_id: str, *, on: date, now: datetime,
           policy: Policy = DEFAULT_POLICY) -> Change:
    """The advice and views were circulated to everyone invited (reg 20(4))."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.views_received(s, on=on, policy=policy))


def decide(store: Store, case_id: str, *, outcome: Outcome, reason: str, on: date,
           now: datetime, policy: Policy = DEFAULT_POLICY, next_due: date | None = None
           ) -> Change:
    """The LA's decision; refused before the meeting is held, late accepted with a warning.
    The next review starts with the invitees :func:`lifecycle.carried_invitees` hands on."""

    def run(c: Connection, state: ReviewState) -> Change:
        change = lifecycle.decide(state, outcome=outcome, reason=reason, on=on, now=now,
                                  policy=policy, next_due=next_due)
        if change.next_review is None:
            return change
        moving_on = any(d.name == lifecycle.PHASE_TRANSFER_FINAL_PLAN for d in change.duties)
        carried = lifecycle.carried_invitees(store.invitees_with_origin(c, state.review_id),
                                             moving_on=moving_on)
        return replace(change, next_review=replace(change.next_review, invitees=carried))

    return _one(store, case_id, now, None, run)


def amendments(store: Store, case_id: str, *, on: date, now: datetime,
               policy: Policy = DEFAULT_POLICY) -> Change:
    """The proposed amendments of the last amend decision were sent (reg 22)."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.amendments_proposed(s, on=on, policy=policy),
                decided=True)


def final_plan(store: Store, case_id: str, *, on: date, now: datetime,
               policy: Policy = DEFAULT_POLICY) -> Change:
    """The final amended plan was issued (reg 22(3), reg 18 for a phase transfer)."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.final_plan_issued(s, on=on, policy=policy), decided=True)


def not_amended(store: Store, case_id: str, *, reason: str, on: date, now: datetime,
                policy: Policy = DEFAULT_POLICY) -> Change:
    """After the representations, the LA decided not to make the proposed amendments (reg
    22(4)): the family is told why, and the plan stays as it is."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.not_amended(s, reason=reason, on=on, policy=policy),
                decided=True)


def early(store: Store, case_id: str, *, reason: str, now: datetime) -> Change:
    """Make the current review an early review, with its reason."""
    return _one(store, case_id, now, None,
                lambda c, s: lifecycle.early(s, reason=reason, on=today_of(now)))


def post16_move(store: Store, case_id: str, *, move: date | None, now: datetime,
                policy: Policy = DEFAULT_POLICY) -> Change:
    """Record (None: withdraw) a post-16 move date (reg 18(2)); the review is re-dated."""
    return _one(store, case_id, now, None, lambda c, s: lifecycle.post16_move(
        s, move, today=today_of(now), policy=policy))


def no_setting(store: Store, case_id: str, *, value: bool, now: datetime,
               policy: Policy = DEFAULT_POLICY) -> Change:
    """Record that the child attends no school or college (True; reg 21) or one again."""
    return _one(store, case_id, now, None, lambda c, s: lifecycle.no_setting(
        s, value, today=today_of(now), policy=policy))


def refresh(store: Store, conn: Connection, review_id: int, now: datetime,
            policy: Policy = DEFAULT_POLICY) -> None:
    """Re-date a review's duties after its due date or kind changed (an import update)."""
    state = state_of(store.case_in(conn, review_id))
    today = today_of(now)
    found = lifecycle.duties(state, policy, today)
    flags: tuple[tuple[str, str], ...] = ()
    if state.review.due_by < today and state.decision is None:
        flags = lifecycle.open_duties(state, policy, today)[1]
    store.apply_change(conn, review_id, Change(action="refresh", duties=found, flags=flags), now)


# The engine ----------------------------------------------------------------------------------


def fire_timers(store: Store, now: datetime, *, limit: int = 1000,
                policy: Policy = DEFAULT_POLICY) -> int:
    """Turn every timer due by ``now`` into what it means (views stages, meeting ended)."""
    total = 0
    while True:
        with store.begin() as conn:
            rows = store.take_due_timers(conn, now, limit)
            for row in rows:
                state = state_of(store.case_in(conn, row.review_id))
                try:
                    change = lifecycle.timer_fired(state, kind=row.kind,
                                                   meeting_id=row.meeting_id, now=now,
                                                   policy=policy)
                except LifecycleError as exc:  # the meeting went away in between
                    log.info("timer %s of review %s ignored: %s", row.kind, row.review_id, exc)
                    continue
                store.apply_change(conn, row.review_id, change, now)
        total += len(rows)
        if len(rows) < limit:
            return total


def check_deadlines(store: Store, now: datetime, policy: Policy = DEFAULT_POLICY) -> int:
    """Mark duties at risk or missed and write their on_deadline events; returns how many
    duties changed."""
    today = today_of(now)
    rows = store.duty_rows(statuses=[DutyStatus.PENDING.value,
                                     DutyStatus.AT_RISK.value],
                           due_before=lifecycle.deadline_horizon(today, policy))
    changes = lifecycle.check_deadlines(rows, today, policy)
    if changes:
        with store.begin() as conn:
            for review_id, change in changes.items():
                store.apply_change(conn, review_id, change, now)
    return sum(len(c.duties) for c in changes.values())


# The bulk import -----------------------------------------------------------------------------


def _keep_post16_move(view: CaseView | None, item: CaseInput, policy: Policy,
                      today: date) -> None:
    """A list without a post-16 move date does not withdraw one recorded here ('review move'):
    the item keeps it, and its review is dated as the clock dates it with the move. Only a
    date in the list changes it; 'review move CASE --none' withdraws it."""
    if view is None or view.plan.post16_move is None or item.plan.post16_move is not None:
        return
    item.plan = item.plan.model_copy(update={"post16_move": view.plan.post16_move})
    item.kind, item.review_due = lifecycle.open_review(item.plan, item.pupil, policy, today)


def _keep_no_setting(view: CaseView | None, item: CaseInput) -> None:
    """A list that does not say whether the child attends a setting (no no_setting column)
    leaves what is recorded ('review no-setting'): a child at no setting stays so, and the
    setting such a list still names (the Hub's last school) is not invited."""
    if view is None or item.no_setting_listed or not view.plan.no_setting:
        return
    item.plan = item.plan.model_copy(update={"no_setting": True})
    item.invitees = [i for i in item.invitees if i.role != Role.SETTING]


def _keep_later_decision(view: CaseView | None, item: CaseInput) -> None:
    """A list older than a decision recorded here (the Hub's export has not caught up, or last
    month's file is imported again) does not undo it: the item keeps the plan's last decision
    and the review that decision opened (due date, kind, preparing for adulthood), and the
    meeting it still lists, held before that decision, is not set again for the next review.
    Changes ``item`` in place, so the caller's report reads the same dates."""
    decided = view.plan.last_review_decision if view is not None else None
    listed = item.plan.last_review_decision
    if view is not None and decided is not None and (listed is None or listed < decided):
        # Not when the list knows this decision, or a later one made in the Hub.
        item.plan = item.plan.model_copy(update={"last_review_decision": decided})
        item.review_due, item.kind = view.review.due_by, view.review.kind
        item.pfa = item.pfa or view.review.preparing_for_adulthood
    latest = item.plan.last_review_decision
    if item.meeting is not None and latest is not None and today_of(item.meeting[0]) <= latest:
        item.meeting = None  # the decided review's meeting, not one for the review now due


def _same_case(view: CaseView, item: CaseInput) -> bool:
    """True when the stored case already holds everything the row says (what upsert_case
    would compare), so nothing need be written."""
    p, q, r = view.pupil, item.pupil, view.review
    return ((p.upn, p.forename, p.surname, p.dob, p.nc_year, p.school_urn)
            == (q.upn, q.forename, q.surname, q.dob, q.nc_year, q.school_urn)
            and (view.plan.issued_on, view.plan.last_review_decision, view.plan.plan_type,
                 view.plan.post16_move, view.plan.no_setting, r.coordinator_email)
            == (item.plan.issued_on, item.plan.last_review_decision, item.plan.plan_type,
                item.plan.post16_move, item.plan.no_setting, item.coordinator_email)
            and (r.due_by, r.preparing_for_adulthood, r.kind)
            == (item.review_due, item.pfa, item.kind))


def _same_meeting(view: CaseView | None, item: CaseInput, now: datetime,
                  policy: Policy) -> bool:
    """True when the lifecycle says scheduling the row's meeting changes nothing (asked of
    the pure function, on the case as read; anything else goes through :func:`schedule`)."""
    if view is None or item.meeting is None:
        return False
    state = state_of(view)
    if state.scheduled_meeting is None:
        return False
    begin, end, location, online = item.meeting
    try:
        change = lifecycle.schedule(state, start=begin, end=end, location=location,
                                    online=online, organiser=item.coordinator_email, now=now,
                                    new_meeting_id=None, policy=policy)
    except LifecycleError:
        return False  # schedule() raises it again, as a StoreError naming the row
    return change.action == "unchanged"


def import_cases(store: Store, conn: Connection, items: list[CaseInput], now: datetime,
                 policy: Policy = DEFAULT_POLICY) -> list[tuple[str, str]]:
    """Upsert many cases in the caller's transaction; (added|updated|unchanged, meeting action
    or '') per item. New cases go through the same lifecycle functions as a single review, and
    are written in bulk, so a council's whole caseload imports in seconds."""
    today = today_of(now)
    results: list[tuple[str, str]] = []
    for start in range(0, len(items), 500):
        chunk = items[start:start + 500]
        # A re-import is mostly unchanged rows: read the chunk's cases in a few set queries
        # and write (or re-run a transition) only where a row differs.
        views = reads.current_cases_in(conn, [i.plan.case_id for i in chunk])
        for item in chunk:
            _keep_post16_move(views.get(item.plan.case_id), item, policy, today)
            _keep_no_setting(views.get(item.plan.case_id), item)
            _keep_later_decision(views.get(item.plan.case_id), item)
        existing = store.existing_case_ids(conn, [i.plan.case_id for i in chunk
                                                  if i.plan.case_id not in views]) | set(views)
        new = [i for i in chunk if i.plan.case_id not in existing]
        review_ids = store.insert_cases(conn, new, now) if new else {}
        statuses: dict[str, str] = {}
        for item in chunk:
            view = views.get(item.plan.case_id)
            if view is not None and _same_case(view, item):
                status, review_ids[item.plan.case_id] = "unchanged", view.review.id or 0
            elif item.plan.case_id in existing:
                status, review_ids[item.plan.case_id] = store.upsert_case(
                    conn, pupil=item.pupil, plan=item.plan,
                    coordinator_email=item.coordinator_email, review_due=item.review_due,
                    kind=item.kind, pfa=item.pfa)
            else:
                status = "added"
            statuses[item.plan.case_id] = status
        # A list names one person per role: one it no longer names there is not invited.
        for item in chunk:
            view = views.get(item.plan.case_id)
            if view is not None and (item.invitees or item.plan.no_setting):
                gone = lifecycle.replaced_by_list(view.invitees, item.invitees,
                                                  item.plan.no_setting)
                if gone:
                    store.remove_listed_invitees(conn, view.review.id or 0, gone)
                    withdraw_notices(store, conn, view.review.id or 0, gone)
                    item.replaced = len(gone)
        # Nobody a caseworker removed comes back because a list still names them.
        removed: dict[str, set[str]] = {}
        for case, address in store.removed_addresses(
                conn, [i.plan.case_id for i in chunk if i.invitees]):
            removed.setdefault(case, set()).add(address)
        welcome = [replace(i, invitees=[v for v in i.invitees if lifecycle.still_welcome(
            v, removed[i.plan.case_id])]) if i.plan.case_id in removed else i for i in chunk]
        gained = store.import_invitees(conn, welcome, review_ids, now) | {
            review_ids[i.plan.case_id] for i in chunk if i.replaced}
        actions: dict[str, str] = {}
        meeting_ids = iter(store.reserve_meeting_ids(
            conn, sum(1 for i in new if i.meeting is not None)))
        fresh: list[tuple[int, Change]] = []
        for item in new:
            with _refused():
                rid = review_ids[item.plan.case_id]
                review = Review.model_construct(  # from validated input: no second check
                    id=rid, case_id=item.plan.case_id, kind=item.kind, due_by=item.review_due,
                    status=ReviewStatus.DUE, preparing_for_adulthood=item.pfa,
                    coordinator_email=item.coordinator_email, flags=(), report_sent_on=None)
                state = ReviewState(review=review,
                                    plan=item.plan, pupil=item.pupil)
                if item.meeting is None:
                    change = Change(duties=lifecycle.duties(state, policy, today))
                else:
                    begin, end, location, online = item.meeting
                    change = lifecycle.schedule(
                        state, start=begin, end=end, location=location, online=online,
                        organiser=item.coordinator_email, now=now,
                        new_meeting_id=next(meeting_ids), policy=policy)
                    actions[item.plan.case_id] = change.action
                found, flags = lifecycle.imported(change.duties, item.review_due, today)
                fresh.append((rid, replace(change, duties=lifecycle.dated(found),
                                           flags=change.flags + flags)))
        store.insert_changes(conn, fresh, now)  # before any other meeting id is reserved
        for item in chunk:
            case_id = item.plan.case_id
            if case_id not in existing:
                continue
            rid = review_ids[case_id]
            if item.meeting is not None and _same_meeting(views.get(case_id), item, now,
                                                          policy):
                actions[case_id] = "unchanged"
            elif item.meeting is not None:
                begin, end, location, online = item.meeting
                actions[case_id] = schedule(store, case_id, start=begin, end=end,
                                            location=location, online=online,
                                            organiser=item.coordinator_email, now=now, conn=conn,
                                            policy=policy).action
            if statuses[case_id] == "updated":
                refresh(store, conn, rid, now, policy)
            if rid in gained and actions.get(case_id, "unchanged") == "unchanged":
                # A meeting set earlier: calendar plugins invite the newcomers.
                invite(store, case_id, now=now, conn=conn)
        results += [
            ("updated" if statuses[i.plan.case_id] == "unchanged"
             and review_ids[i.plan.case_id] in gained else statuses[i.plan.case_id],
             actions.get(i.plan.case_id, "")) for i in chunk]
    return results
