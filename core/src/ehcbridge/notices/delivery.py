"""Notices through the delivery ledger: queued as ``deliver_notice`` events, one per recipient and
channel, delivered by the channel's plugin, and recorded against the duty they meet."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ehcbridge.notices import NOTICE_HOOK
from ehcbridge.notices.build import Composer
from ehcbridge.notices.model import Notice, NoticeReceipt
from ehcbridge.notices.render import TemplateProblem

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.models import Invitee
    from ehcbridge.store import CaseView, EventRow

log = logging.getLogger("ehcbridge.notices")

FAILED_FLAG = "notice_failed"
# Lifecycle events that produce notices, and the Composer method that builds them.
TRIGGERS = {("on_views_due", "request"): "views_request",
            ("on_views_due", "reminder"): "advice_reminder",
            ("on_decision", "recorded"): "decision",
            ("on_decision", "not_amended"): "not_amended",
            **{("on_review_scheduled", action): "meeting"
               for action in ("scheduled", "rescheduled", "updated", "cancelled")}}


def composer(app: App, review_id: int, case: CaseView | None = None, *,
             advice: bool = True) -> Composer:
    """A Composer for a review as it stands now (``case``: as the caller just read it;
    ``advice``: False for notices that ask nobody for advice, which need not know who a plugin
    asks itself, a query per review)."""
    from ehcbridge.routing import advice_asked_by

    case = case or app.store.case_by_review(review_id)
    miles = {m.name: m.date for m in app.milestones(case)}
    loaded = frozenset(app.plugins.implementers(NOTICE_HOOK))
    config = app.settings.config_path
    return Composer(settings=app.settings.notices, case=case, today=app.clock.now().date(),
                    milestones=miles, loaded=loaded,
                    asked_by=advice_asked_by(app, review_id) if advice else {},
                    config_dir=config.parent if config is not None else None)


def queue(app: App, notices: list[Notice], now: datetime) -> int:
    """Put notices in the ledger (each once, by key); returns how many were new."""
    by_review: dict[int | None, list[dict[str, Any]]] = {}
    settings = app.settings.notices
    via = {"email": settings.email_via, "letter": settings.letter_via, "sms": settings.text_via}
    for n in notices:
        by_review.setdefault(n.review_id, []).append({
            "key": n.key, "kind": n.kind, "duty": n.duty, "role": n.recipient.role,
            "channel": n.channel, "plugin": via.get(n.channel),
            "payload": {"notice": n.model_dump(mode="json")}})
    return sum(app.store.queue_notices(rid, items, now) for rid, items in by_review.items())


def send(app: App, notice: Notice, *, now: datetime | None = None) -> bool:
    """Queue one notice (any recipient, any attachments, tied to a review) for delivery by the
    engine through the ledger; False when a notice with this key was queued before."""
    return queue(app, [notice], now or app.clock.now()) == 1


def deliver_now(app: App, notice: Notice) -> NoticeReceipt | None:
    """Hand a notice straight to its channel's plugin, outside the ledger (for notices that
    belong to no review); raises what the plugin raises."""
    settings = app.settings.notices
    plugin = {"email": settings.email_via, "letter": settings.letter_via,
              "sms": settings.text_via}[notice.channel]
    app.start_plugins()
    outcomes = app.plugins.call_each(NOTICE_HOOK, plugins=[plugin], notice=notice,
                                     ctx=app.plugin_context)
    if not outcomes:
        raise LookupError(f"no plugin {plugin!r} delivers {notice.channel} notices")
    if outcomes[0].error is not None:
        raise outcomes[0].error
    result = outcomes[0].result
    return result if isinstance(result, NoticeReceipt) else None


def queue_for_event(app: App, ev: EventRow, now: datetime, case: CaseView | None = None
                    ) -> int:
    """Build and queue the notices a lifecycle event calls for (none for most events); ``case``
    saves reading the review's case again when the caller (the engine's batch) has it."""
    kind = TRIGGERS.get((ev.hook, ev.action))
    if kind is None:
        return 0
    return queue(app, _compose(app, case or app.store.case_by_review(ev.review_id), [kind],
                               ev.payload), now)


def queue_late_requests(app: App, case: CaseView, now: datetime) -> int:
    """Someone invited after the views stage fired (a corrected address, a new SENCO named by
    a later list) is asked for views too, and sent the reminder with the advice gathered when
    that stage has fired: notices are keyed by recipient, so those asked already are not
    asked again. Nothing once the meeting has started. Returns how many were queued."""
    from ehcbridge.models import MeetingStatus

    meeting = case.meeting
    if (case.review.id is None or meeting is None or meeting.status != MeetingStatus.SCHEDULED
            or meeting.start <= now or "views_request" not in case.fired_timers):
        return 0
    kinds = ["views_request"] + (["advice_reminder"] if "reminder" in case.fired_timers else [])
    return queue(app, _compose(app, case, kinds), now)


def _compose(app: App, case: CaseView, kinds: list[str],
             payload: dict[str, Any] | None = None) -> list[Notice]:
    """The notices of these kinds for a review as ``case`` shows it (``payload``: the event's,
    for what only the event knows). A template a council got wrong flags the review (no
    notices) instead of stopping the engine."""
    review_id = case.review.id or 0
    advice = any(k in ("views_request", "advice_reminder") for k in kinds)
    if advice:
        from ehcbridge.routing import ensure_advice_routes

        ensure_advice_routes(app, case)  # keeps state only: the case's invitees stay as read
    found: list[Notice] = []
    try:
        comp = composer(app, review_id, case, advice=advice)
        for kind in kinds:
            if kind == "views_request":
                found += comp.views_request()
            elif kind == "advice_reminder":
                found += comp.advice_reminder(app.store.review_files(review_id, kind="views"))
            elif kind == "meeting":
                found += comp.meeting_letters()
            elif kind == "not_amended":
                given = payload or {}
                proposed = given.get("proposed")
                found += comp.not_amended(str(given.get("reason", "")),
                                          date.fromisoformat(str(given["on"])),
                                          date.fromisoformat(proposed) if proposed else None,
                                          _next_review_due(app, comp))
            else:
                found += comp.decision(_next_review_due(app, comp))
    except TemplateProblem as exc:
        log.error("cannot build %s notices: %s", "/".join(kinds), exc)
        app.store.flag_review(case.plan.case_id, FAILED_FLAG, str(exc), raised_by="notices")
        return []
    return found


def queue_report(app: App, case_id: str, file_id: int | None, now: datetime) -> int:
    """The review report to everyone invited (reg 20(7)), with the report attached."""
    review_id = app.store.case(case_id).review.id
    assert review_id is not None
    comp = composer(app, review_id)
    report = None
    if file_id is not None:
        report = next(f for f in app.store.review_files(review_id, kind="report")
                      if f["id"] == file_id)
    return queue(app, comp.report(report), now)


def _next_review_due(app: App, comp: Composer) -> date | None:
    decision = comp.case.decision
    if decision is None:
        return None
    plan = comp.case.plan.model_copy(update={"last_review_decision": decision.decided_on})
    due: date = app.review_due(plan, comp.case.pupil)
    return due


# The engine's side -------------------------------------------------------------------------


def plugins_for(app: App, ev: EventRow) -> list[str]:
    """The one plugin a notice event goes to: the one named for its channel, if loaded."""
    plugin = _payload_plugin(app, ev)
    if plugin in app.plugins.implementers(NOTICE_HOOK):
        return [plugin]
    notice = ev.payload.get("notice", {})
    detail = f"no plugin {plugin!r} is loaded to deliver {notice.get('channel')} notices"
    app.store.set_notice_status(ev.id, status="failed", detail=detail)
    _flag(app, ev, f"{ev.action}: {detail}")
    return []


def _flag(app: App, ev: EventRow, detail: str) -> None:
    # A notice of no review (a termly list) has no review to flag: the log and ledger say it.
    if not ev.review_id:
        log.error("notice %s: %s", ev.key, detail)
        return
    case = app.store.case_by_review(ev.review_id)
    app.store.flag_review(case.plan.case_id, FAILED_FLAG, detail, raised_by="notices")


def _payload_plugin(app: App, ev: EventRow) -> str:
    channel = str(ev.payload.get("notice", {}).get("channel", ""))
    s = app.settings.notices
    return {"email": s.email_via, "letter": s.letter_via, "sms": s.text_via}.get(channel, "")


def notice_for(app: App, ev: EventRow) -> Notice:
    """The notice an event carries, with the bytes of its attachments filled in."""
    import base64

    notice = Notice.model_validate(ev.payload["notice"])
    if not any(a.file_id is not None and a.data_b64 is None for a in notice.attachments):
        return notice
    filled = tuple(a.model_copy(update={"data_b64": base64.b64encode(
        app.store.file_data(a.file_id)).decode("ascii")})
        if a.file_id is not None and a.data_b64 is None else a for a in notice.attachments)
    return notice.model_copy(update={"attachments": filled})


def delivered(app: App, ev: EventRow, plugin: str, result: Any, now: datetime,
              case: CaseView | None = None) -> None:
    """Record a delivered notice and, once every notice for its duty is out, meet the duty
    (``case``: the review's case as the caller read it, to save reading it again)."""
    receipt = result if isinstance(result, NoticeReceipt) else None
    app.store.set_notice_status(ev.id, status=receipt.status if receipt else "sent",
                                plugin=plugin, reference=receipt.reference if receipt else None,
                                detail=receipt.detail if receipt else None, now=now)
    duty = ev.payload.get("notice", {}).get("duty")
    if duty and ev.review_id:
        meet_if_complete(app, ev.review_id, str(duty), now.date(), case)


def _asked_by_plugins(app: App, case: CaseView) -> str:
    """The invitees' mailboxes a plugin asked for advice itself instead of a notice, in words
    (the request was made for them too); empty when there are none."""
    from ehcbridge.routing import advice_asked_by

    asked = advice_asked_by(app, case.review.id or 0)
    mailboxes = {(i.email or "").strip().lower() for i in case.invitees if i.email}
    by_plugin: dict[str, int] = {}
    for mailbox, plugin in asked.items():
        if mailbox in mailboxes:
            by_plugin[plugin] = by_plugin.get(plugin, 0) + 1
    return "".join(f"; {count} team mailbox(es) asked by {plugin} itself"
                   for plugin, count in sorted(by_plugin.items()))


def failed(app: App, ev: EventRow, plugin: str, message: str) -> None:
    """A notice that could not be delivered: record it and flag the review."""
    app.store.set_notice_status(ev.id, status="failed", plugin=plugin, detail=message)
    notice = ev.payload.get("notice", {})
    recipient = notice.get("recipient", {})
    count = sum(1 for r in app.store.notices(review_id=ev.review_id) if r["status"] == "failed") \
        if ev.review_id else 1
    _flag(app, ev, f"{count} notice(s) failed; latest: {ev.action} to {recipient.get('role')} "
                   f"by {notice.get('channel')} ({plugin}): {message}")


class AfterWithdrawal(NamedTuple):
    """What :func:`after_withdrawal` did: duties met, and letters queued to those removed."""

    met: int
    letters: int


def after_withdrawal(app: App, review_id: int, duties: frozenset[str],
                     removed: list[Invitee] | None = None) -> AfterWithdrawal:
    """Meet the duties whose only notices not sent were withdrawn (everyone still invited has
    theirs), and post a letter to each of ``removed`` reached by letter only who was posted
    the meeting (see ``Composer.withdrawal_letters``)."""
    today = app.clock.now().date()
    letters: list[Notice] = []
    if removed and any(not i.email and i.address for i in removed):
        sent = [r["key"] for r in app.store.notices(review_id=review_id)
                if r["kind"] == "meeting" and r["status"] in ("sent", "delivered")]
        try:
            letters = composer(app, review_id, advice=False).withdrawal_letters(removed, sent)
        except TemplateProblem as exc:
            log.error("cannot build meeting_withdrawn notices: %s", exc)
            case = app.store.case_by_review(review_id)
            app.store.flag_review(case.plan.case_id, FAILED_FLAG, str(exc), raised_by="notices")
            letters = []
    queued = queue(app, letters, app.clock.now()) if letters else 0
    met = sum(meet_if_complete(app, review_id, duty, today) for duty in sorted(duties))
    if not any(r["status"] == "failed" for r in app.store.notices(review_id=review_id)):
        case = app.store.case_by_review(review_id)
        if FAILED_FLAG in case.flags:  # the only failures were to those no longer invited
            app.store.clear_flag(case.plan.case_id, FAILED_FLAG)
    return AfterWithdrawal(met, queued)


def meet_if_complete(app: App, review_id: int, duty_name: str, on: date,
                     case: CaseView | None = None) -> bool:
    """Meet ``duty_name`` on the review when all of its notices have gone; True when met."""
    # A notice withdrawn (its recipient is no longer invited) is owed to nobody now.
    rows = [r for r in app.store.notices(review_id=review_id, duty=duty_name)
            if r["status"] != "withdrawn"]
    if not rows or any(r["status"] not in ("sent", "delivered") for r in rows):
        return False
    from ehcbridge import lifecycle

    store = app.store
    case = case or store.case_by_review(review_id)
    found = [d for _cid, rid, d in store.duty_rows(name=duty_name,
                                                    case_ids=[case.plan.case_id])
             if rid == review_id]
    if not found or "notice(s) by" in (found[0].evidence or ""):
        return False
    channels = sorted({f"{r['channel']}" for r in rows})
    evidence = (f"{len(rows)} notice(s) by {', '.join(channels)}: deliveries of events "
                f"{', '.join(str(r['event_id']) for r in rows)}")
    if duty_name == lifecycle.VIEWS_REQUESTED:
        evidence += _asked_by_plugins(app, case)
    # A transition may have marked the duty met when it was triggered (the views stage fired,
    # the decision was recorded); the day everyone was actually sent it is the better record.
    store.save_duties(review_id, [lifecycle.meet(found[0], on, evidence)])
    return True
