"""What the hooks do: create, move or remove the Zoom meeting of a review, idempotently.

The Zoom meeting id is kept in the plugin state per case id (``meeting:<case_id>``) and returned
to the engine, which stores it on the meeting. When both are lost (the process died between
Zoom's answer and the store), the meeting is found again by the review reference written at the
start of its agenda, so a retry never books a second meeting.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from ehcbridge.events import CheckResult, HookContext, LifecycleEvent, OnlineMeeting
from ehcbridge.models import LONDON

from ehcbridge_zoom.client import ZoomApiError, ZoomClient, ZoomNotFound
from ehcbridge_zoom.settings import ZoomSettings

PROVIDER = "zoom"
TIMEZONE = "Europe/London"
TOPIC_MAX = 200
AGENDA_MAX = 2000


def state_key(case_id: str) -> str:
    """The plugin-state key holding the Zoom meeting of a case."""
    return f"meeting:{case_id}"


def review_ref(event: LifecycleEvent) -> str:
    """The reference that identifies this review's meeting on Zoom (stable across retries)."""
    if event.review.id is not None:
        return f"ehcbridge:{event.review.case_id}:review-{event.review.id}"
    return f"ehcbridge:{event.idempotency_key}"


def _marker(ref: str) -> str:
    return f"[{ref}]"


def meeting_body(event: LifecycleEvent, settings: ZoomSettings) -> dict[str, Any]:
    """The create/update request body for the event's meeting (Zoom "scheduled meeting", type 2)."""
    meeting = event.meeting
    if meeting is None:
        raise ValueError("the event has no meeting")
    start = meeting.start.astimezone(LONDON)
    fields = {
        "case_id": event.review.case_id,
        "initials": event.pupil.initials,
        "kind": str(event.review.kind.value).replace("_", " "),
        "date": start.strftime("%d %B %Y"),
        "time": start.strftime("%H:%M"),
        "forename": event.pupil.forename,
        "surname": event.pupil.surname,
    }
    topic = settings.topic_template.format(**fields)[:TOPIC_MAX]
    # The reference goes first: Zoom truncates agendas to 250 characters when listing meetings.
    agenda = f"{_marker(review_ref(event))}\n{settings.agenda_template.format(**fields)}"
    options: dict[str, Any] = {
        "host_video": settings.host_video,
        "participant_video": settings.participant_video,
        "join_before_host": settings.join_before_host,
        "mute_upon_entry": settings.mute_upon_entry,
        "waiting_room": settings.waiting_room,
        "meeting_authentication": settings.meeting_authentication,
        "auto_recording": settings.auto_recording,
    }
    if settings.alternative_hosts:
        options["alternative_hosts"] = ";".join(settings.alternative_hosts)
    return {
        "topic": topic,
        "type": 2,
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
        "timezone": TIMEZONE,
        "duration": max(1, math.ceil((meeting.end - meeting.start).total_seconds() / 60)),
        "agenda": agenda[:AGENDA_MAX],
        "settings": options,
    }


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _same_slot(found: dict[str, Any], body: dict[str, Any]) -> bool:
    """True when a listed meeting already has the body's start, duration and topic."""
    try:
        listed = datetime.fromisoformat(str(found.get("start_time")))
    except ValueError:
        return False
    if listed.tzinfo is None:
        listed = listed.replace(tzinfo=UTC)
    wanted = datetime.fromisoformat(body["start_time"]).replace(tzinfo=LONDON)
    return (listed == wanted and found.get("duration") == body["duration"]
            and found.get("topic") == body["topic"])


def find_meeting(client: ZoomClient, ref: str) -> dict[str, Any] | None:
    """The host's upcoming meeting carrying ``ref`` in its agenda or topic, if any."""
    marker = _marker(ref)
    for item in client.iter_upcoming():
        if marker in (item.get("agenda") or "") or marker in (item.get("topic") or ""):
            return dict(item)
    return None


def _known(event: LifecycleEvent, ctx: HookContext) -> dict[str, Any] | None:
    """The Zoom meeting this review already has, from the plugin state or the event."""
    state = ctx.store.get_state(state_key(event.review.case_id))
    if isinstance(state, dict) and state.get("meeting_id") and (
        state.get("review_id") == event.review.id
    ):
        return state
    for meeting in (event.meeting, event.previous_meeting):
        external_id = meeting.external_id if meeting is not None else None
        if meeting is not None and meeting.provider == PROVIDER and (external_id or "").isdigit():
            return {"meeting_id": int(str(external_id)), "join_url": meeting.join_url}
    return None


def _save(ctx: HookContext, event: LifecycleEvent, meeting_id: int, join_url: str,
          body: dict[str, Any]) -> OnlineMeeting:
    ref = review_ref(event)
    ctx.store.set_state(state_key(event.review.case_id), {
        "meeting_id": meeting_id,
        "join_url": join_url,
        "review_id": event.review.id,
        "ref": ref,
        "start_time": body["start_time"],
        "duration": body["duration"],
        "fingerprint": _fingerprint(body),
    })
    return OnlineMeeting(provider=PROVIDER, join_url=join_url, external_id=str(meeting_id),
                         extra={"meeting_id": meeting_id, "ref": ref})


def _create(client: ZoomClient, ref: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the meeting; after an unclear failure look again before retrying (no duplicate)."""
    adopted = False

    def recover() -> dict[str, Any] | None:
        # A 5xx or a timeout may still have created the meeting on Zoom's side.
        nonlocal adopted
        found = find_meeting(client, ref)
        adopted = found is not None
        return found

    try:
        created = client.create_meeting(body, recover=recover)
    except ZoomNotFound as exc:
        raise ZoomApiError(
            f"Zoom host {client.host} does not exist on this Zoom account "
            "(set [plugins.zoom] host to a licensed user's email)",
            status=exc.status, code=exc.code) from None
    return created, adopted


def ensure_meeting(event: LifecycleEvent, ctx: HookContext, settings: ZoomSettings,
                   client: ZoomClient) -> OnlineMeeting:
    """Create or move the review's Zoom meeting and return its link."""
    case_id = event.review.case_id
    ref = review_ref(event)
    body = meeting_body(event, settings)
    known = _known(event, ctx)

    if known is None:
        found = find_meeting(client, ref)
        if found is not None:
            meeting_id = int(found["id"])
            ctx.store.audit(case_id, "zoom.meeting_adopted",
                            {"meeting_id": meeting_id, "host": settings.host,
                             "reason": "found by its review reference; not created again"})
            ctx.logger.info("zoom: found existing meeting %s for %s", meeting_id, case_id)
            if not _same_slot(found, body):
                client.update_meeting(meeting_id, body)
            return _save(ctx, event, meeting_id, str(found["join_url"]), body)
    elif not known.get("join_url"):
        try:
            known["join_url"] = client.get_meeting(known["meeting_id"])["join_url"]
        except ZoomNotFound:
            _recreate_note(ctx, case_id, known["meeting_id"], settings.host)
            known = None

    if known is not None:
        meeting_id = int(known["meeting_id"])
        if known.get("fingerprint") == _fingerprint(body):
            return _save(ctx, event, meeting_id, str(known["join_url"]), body)
        try:
            client.update_meeting(meeting_id, body)
        except ZoomNotFound:
            _recreate_note(ctx, case_id, meeting_id, settings.host)
            known = None
        else:
            ctx.store.audit(case_id, "zoom.meeting_updated",
                            {"meeting_id": meeting_id, "start_time": body["start_time"],
                             "duration": body["duration"]})
            ctx.logger.info("zoom: moved meeting %s for %s", meeting_id, case_id)
            # PATCH answers 204 with no body; the join URL does not change.
            return _save(ctx, event, meeting_id, str(known["join_url"]), body)

    created, adopted = _create(client, ref, body)
    meeting_id = int(created["id"])
    if adopted:
        ctx.store.audit(case_id, "zoom.meeting_adopted",
                        {"meeting_id": meeting_id, "host": settings.host,
                         "reason": "created by a request whose answer was lost"})
        if not _same_slot(created, body):
            client.update_meeting(meeting_id, body)
    else:
        ctx.store.audit(case_id, "zoom.meeting_created",
                        {"meeting_id": meeting_id, "host": settings.host,
                         "start_time": body["start_time"], "duration": body["duration"]})
        ctx.logger.info("zoom: created meeting %s for %s", meeting_id, case_id)
    return _save(ctx, event, meeting_id, str(created["join_url"]), body)


def _recreate_note(ctx: HookContext, case_id: str, meeting_id: int, host: str) -> None:
    """Audit that a meeting vanished on Zoom's side and a new one will be made."""
    ctx.store.audit(case_id, "zoom.meeting_recreated",
                    {"meeting_id": meeting_id, "host": host,
                     "reason": "the meeting was deleted on Zoom; a new one is created"})
    ctx.logger.warning("zoom: meeting %s of %s was deleted on Zoom; creating a new one",
                       meeting_id, case_id)


def remove_meeting(event: LifecycleEvent, ctx: HookContext, client: ZoomClient, *,
                   search: bool = True) -> None:
    """Delete the review's Zoom meeting (already gone counts as done).

    With ``search`` a meeting whose id was lost is looked up by its review reference.
    """
    case_id = event.review.case_id
    known = _known(event, ctx)
    meeting_id: int | None = int(known["meeting_id"]) if known else None
    if meeting_id is None and not search:
        return
    if meeting_id is None:
        found = find_meeting(client, review_ref(event))
        meeting_id = int(found["id"]) if found else None
    if meeting_id is None:
        ctx.store.audit(case_id, "zoom.meeting_absent",
                        {"reason": "no Zoom meeting was found for this review"})
        return
    deleted = client.delete_meeting(meeting_id)
    state = ctx.store.get_state(state_key(case_id))
    if isinstance(state, dict) and state.get("meeting_id") == meeting_id:
        ctx.store.delete_state(state_key(case_id))
    ctx.store.audit(case_id, "zoom.meeting_deleted" if deleted else "zoom.meeting_already_gone",
                    {"meeting_id": meeting_id})
    ctx.logger.info("zoom: removed meeting %s of %s", meeting_id, case_id)


def provide(event: LifecycleEvent, ctx: HookContext, settings: ZoomSettings,
            client: ZoomClient | None = None) -> OnlineMeeting | None:
    """The provide_online_meeting body: create/move the meeting, or remove it when cancelled."""
    own = client is None
    # Retry-After dates and the daily reset are read against the engine's clock (--now).
    zoom = client if client is not None else ZoomClient.from_settings(
        settings, utcnow=lambda: ctx.clock.now().astimezone(UTC))
    try:
        meeting = event.meeting
        if event.action == "cancelled":
            remove_meeting(event, ctx, zoom)
            return None
        if meeting is None or not meeting.online:
            # Moved to an in-person meeting: drop the Zoom meeting we know of, if any.
            remove_meeting(event, ctx, zoom, search=False)
            return None
        return ensure_meeting(event, ctx, settings, zoom)
    finally:
        if own:
            zoom.close()


def check(settings: ZoomSettings | None, client: ZoomClient | None = None) -> list[CheckResult]:
    """Doctor lines: the app gets a token, and the host user exists."""
    if settings is None or not settings.configured:
        missing = (", ".join(settings.missing()) if settings is not None
                   else "the [plugins.zoom] section")
        return [CheckResult("zoom", "not configured", f"missing: {missing}")]
    own = client is None
    zoom = client if client is not None else ZoomClient.from_settings(settings)
    results: list[CheckResult] = []
    try:
        try:
            zoom.with_retries(zoom.token)
        except Exception as exc:
            return [CheckResult("zoom token", "failed", str(exc))]
        results.append(CheckResult("zoom token", "ok", f"account {settings.account_id}"))
        try:
            user = zoom.get_user()
        except ZoomNotFound:
            results.append(CheckResult(
                "zoom host", "failed", f"host {settings.host} does not exist on this account"))
            return results
        except Exception as exc:
            results.append(CheckResult("zoom host", "failed", str(exc)))
            return results
        detail = f"host {user.get('email') or settings.host}"
        if user.get("status") not in (None, "active"):
            results.append(CheckResult("zoom host", "failed",
                                       f"{detail} is {user.get('status')}, not active"))
        elif user.get("type") == 1:
            results.append(CheckResult(
                "zoom host", "warning",
                f"{detail} is a Basic user: meetings with 3+ people end after 40 minutes"))
        else:
            results.append(CheckResult("zoom host", "ok", detail))
        return results
    finally:
        if own:
            zoom.close()


def ehcbridge_meetings(client: ZoomClient) -> list[dict[str, Any]]:
    """The host's upcoming meetings carrying an ehcbridge review reference (id, start, ref)."""
    rows = []
    for item in client.iter_upcoming():
        agenda = item.get("agenda") or ""
        start = agenda.find("[ehcbridge:")
        end = agenda.find("]", start)
        if start >= 0 and end > start:
            rows.append({"id": item.get("id"), "start_time": item.get("start_time"),
                         "ref": agenda[start + 1:end]})
    return rows
