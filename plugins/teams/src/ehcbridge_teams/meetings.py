"""Review meetings as Outlook events with a Teams link: create, move, cancel, read responses.

Per review the plugin keeps one state record (key ``event:<case id>``) holding the Graph event id,
the organiser mailbox, the meeting sequence last applied and a fingerprint of what was sent, so
every hook call is idempotent and a reschedule is exactly one PATCH.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from ehcbridge import PermanentError, RetryLater
from ehcbridge.events import CheckResult, LifecycleEvent, OnlineMeeting, PluginStore
from ehcbridge.http import HttpError, ServiceUnavailable
from ehcbridge.models import LONDON, REQUIRED_ROLES, Role
from ehcbridge.retry import parse_retry_after

from ehcbridge_teams.auth import MsalTokens, TokenError, acquire_token, ssl_context
from ehcbridge_teams.graph import MAX_BATCH, GraphClient, GraphError, GraphUnavailable
from ehcbridge_teams.settings import COORDINATOR, TeamsSettings

PROVIDER = "teams"
STATE_PREFIX = "event:"
TIME_ZONE = "Europe/London"
# A named extended property tagging our events, so an event created just before a crash is found
# again ($filter on singleValueExtendedProperties is documented for events; transactionId's
# behaviour on a duplicate POST is not).
TAG_PROPERTY_ID = "String {70e808ef-c46e-4fc7-a5ce-91e22c76d709} Name ehcbridgeMeetingKey"
_TXN_NAMESPACE = uuid.UUID("5d0f7f0e-9a0c-4d9b-8a43-3f2f6b1c7e21")
PROFESSIONAL_ROLES = REQUIRED_ROLES - {Role.PARENT, Role.YOUNG_PERSON}
DECLINED_FLAG = "teams_required_declined"
MISSING_FLAG = "teams_event_missing"
RESPONSES_WINDOW = timedelta(weeks=3)
RETRYABLE_CONFLICTS = frozenset({409, 412, 423})
CANCEL_COMMENT = "This EHCP review meeting has been cancelled. The coordinator will be in touch."
CEASE_COMMENT = (
    "This EHCP review meeting is no longer needed and has been cancelled. "
    "The local authority will write to you."
)
MOVED_COMMENT = (
    "This Teams meeting has been cancelled because the review meeting is no longer held on "
    "Teams. You will receive the new details separately."
)
ROLE_LABELS = {
    Role.PARENT: "Parent or carer",
    Role.YOUNG_PERSON: "Young person",
    Role.SETTING: "School or setting",
    Role.LA_SEN_OFFICER: "LA SEN officer",
    Role.HEALTH: "Health",
    Role.SOCIAL_CARE: "Social care",
    Role.OTHER: "Invitee",
}


def state_key(case_id: str) -> str:
    """The plugin state key holding a review's event record."""
    return STATE_PREFIX + case_id


def transaction_id(idempotency_key: str) -> str:
    """Graph transactionId derived from the event's idempotency key (same on every retry)."""
    return str(uuid.uuid5(_TXN_NAMESPACE, idempotency_key))


def meeting_tag(event: LifecycleEvent) -> str:
    """The value of our extended property: one per review meeting."""
    meeting = event.meeting
    if meeting is not None and meeting.id is not None:
        return f"{event.review.case_id}:meeting:{meeting.id}"
    return f"{event.review.case_id}:key:{event.idempotency_key}"


def resolve_organiser(settings: TeamsSettings, event: LifecycleEvent) -> str:
    """The mailbox that owns the event: the fixed organiser, or the review's coordinator."""
    if settings.organiser != COORDINATOR:
        return str(settings.organiser)
    email = event.review.coordinator_email or (event.meeting.organiser if event.meeting else None)
    if not email:
        raise PermanentError(
            f"review {event.review.case_id}: organiser is 'coordinator' but the review has no "
            "coordinator email"
        )
    return email


def render_subject(settings: TeamsSettings, event: LifecycleEvent) -> str:
    """The calendar subject from subject_template (initials and case id by default, no needs)."""
    return str(settings.subject_template).format(
        initials=event.pupil.initials,
        case_id=event.review.case_id,
        kind=str(event.review.kind.value).replace("_", " "),
        forename=event.pupil.forename,
        surname=event.pupil.surname,
    )


def advice_sentence(event: LifecycleEvent) -> str:
    """The sentence naming the date advice is due (two weeks before the meeting, reg 20(4))."""
    assert event.meeting is not None
    milestone = event.milestone("views_due")
    # The core clock's date when it has one; otherwise the rule itself.
    due = milestone.date if milestone is not None else (
        event.meeting.start.astimezone(LONDON) - timedelta(weeks=2)).date()
    return f"Please send your advice and information by {due.strftime('%A')} {due.day} {due:%B %Y}."


def render_body(event: LifecycleEvent) -> str:
    """HTML body: purpose, the two-week advice rule, how to join. No names, no needs."""
    assert event.meeting is not None
    case_id = html.escape(event.review.case_id)
    kind = html.escape(str(event.review.kind.value).replace("_", " "))
    return (
        f"<p>You are invited to the {kind} review meeting of education, health and care plan "
        f"{case_id}. The meeting reviews progress towards the outcomes in the plan and agrees "
        "any changes to recommend to the local authority.</p>"
        "<p>The SEND Regulations 2014 (regulation 20(4)) require advice and information to be "
        "circulated to everyone invited at least two weeks before the meeting. "
        f"<strong>{html.escape(advice_sentence(event))}</strong></p>"
        "<p>How to join: select the Microsoft Teams link in this invitation. You can join from "
        "a web browser without installing Teams, or by phone with the dial-in details if "
        "shown. If you cannot attend, please reply so the coordinator knows, and send your "
        "advice before the meeting.</p>"
    )


def _london(dt: datetime) -> dict[str, str]:
    local = dt.astimezone(LONDON).replace(tzinfo=None)
    return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": TIME_ZONE}


def attendee_roles(event: LifecycleEvent, organiser: str) -> dict[str, str]:
    """Invitees with an email, by lower-cased address, and their role (required roles win)."""
    roles: dict[str, str] = {}
    for invitee in event.invitees:
        if not invitee.email:
            continue
        email = invitee.email.strip().lower()
        if email == organiser.lower():
            continue
        current = roles.get(email)
        if current is None or (Role(current) not in REQUIRED_ROLES and invitee.required):
            roles[email] = invitee.role.value
    return roles


def render_attendees(event: LifecycleEvent, organiser: str,
                     roles: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Graph attendees: reg 20(2) roles required, everyone else optional."""
    roles = attendee_roles(event, organiser) if roles is None else roles
    names: dict[str, str] = {}
    for invitee in event.invitees:
        if invitee.email and invitee.email.strip().lower() in roles and invitee.name:
            names.setdefault(invitee.email.strip().lower(), invitee.name)
    out = []
    for email, role in roles.items():
        out.append({
            "emailAddress": {"address": email, "name": names.get(email, ROLE_LABELS[Role(role)])},
            "type": "required" if Role(role) in REQUIRED_ROLES else "optional",
        })
    return out


def mutable_fields(settings: TeamsSettings, event: LifecycleEvent, organiser: str,
                   roles: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields a reschedule or invitee change PATCHes (the body is handled separately)."""
    meeting = event.meeting
    assert meeting is not None
    location = meeting.location if meeting.location and meeting.location.lower() != "online" \
        else "Microsoft Teams Meeting"
    return {
        "subject": render_subject(settings, event),
        "start": _london(meeting.start),
        "end": _london(meeting.end),
        "location": {"displayName": location},
        "attendees": render_attendees(event, organiser, roles),
    }


def create_payload(settings: TeamsSettings, event: LifecycleEvent, organiser: str,
                   roles: dict[str, str] | None = None) -> dict[str, Any]:
    """The full POST body of a new event."""
    payload = mutable_fields(settings, event, organiser, roles)
    payload.update({
        "body": {"contentType": "HTML", "content": render_body(event)},
        # Set on create only: Graph's update documentation does not list it as updatable.
        "allowNewTimeProposals": settings.allow_new_time_proposals,
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "responseRequested": True,
        "transactionId": transaction_id(event.idempotency_key),
        "singleValueExtendedProperties": [{"id": TAG_PROPERTY_ID, "value": meeting_tag(event)}],
    })
    return payload


def fingerprint(fields: dict[str, Any]) -> str:
    """A stable hash of what was sent, to skip PATCHes that would change nothing."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def make_client(settings: TeamsSettings, now: Callable[[], datetime] | None = None
                ) -> GraphClient:
    """A GraphClient for these settings (msal token renewed after a 401, TLS trust from
    ca_bundle or the system, Retry-After dates read against ``now``: the engine's clock)."""
    return GraphClient(
        settings.graph_url,
        MsalTokens(settings),
        verify=ssl_context(settings),
        timeout=settings.timeout_seconds,
        max_wait=settings.max_retry_wait_seconds,
        now=now,
    )


@contextmanager
def engine_errors() -> Iterator[None]:
    """Translate Graph and token failures into what the engine understands."""
    try:
        yield
    except ServiceUnavailable:
        raise  # already a RetryLater, with Graph's Retry-After
    except HttpError as exc:
        if exc.status in RETRYABLE_CONFLICTS:
            raise RetryLater(str(exc)) from None
        if exc.status in (401, 403):
            raise PermanentError(
                f"{exc} - check the Calendars.ReadWrite application permission, admin consent "
                "and any mailbox restriction (run `ehcbridge teams check`)"
            ) from None
        raise PermanentError(str(exc)) from None
    except TokenError as exc:
        if exc.permanent:
            raise PermanentError(str(exc)) from None
        raise RetryLater(str(exc)) from None


def _user(mailbox: str) -> str:
    return "/users/" + quote(mailbox, safe="@")


def _event_path(mailbox: str, event_id: str) -> str:
    return f"{_user(mailbox)}/events/{quote(event_id, safe='')}"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class TeamsCalendar:
    """Keeps one Outlook event per review meeting in step with the review."""

    def __init__(
        self, settings: TeamsSettings, store: PluginStore, logger: logging.Logger,
        client: GraphClient,
    ) -> None:
        self.settings = settings
        self.store = store
        self.log = logger
        self.client = client

    # -- create / update -----------------------------------------------------------------

    def upsert(self, event: LifecycleEvent) -> OnlineMeeting:
        """Create the event, or PATCH it when it exists and something changed."""
        assert event.meeting is not None
        state = self.store.get_state(state_key(event.review.case_id))
        if state and state.get("event_id") and not state.get("cancelled"):
            if event.meeting.sequence < int(state.get("sequence", 0)):
                # A late retry of an older change must not undo a newer one.
                self.log.info("teams: ignoring stale meeting sequence for %s", event.review.case_id)
                return self._online_meeting(state)
            return self._update(event, state)
        return self._create(event)

    def _find_by_tag(self, organiser: str, tag: str, txn: str | None = None
                     ) -> dict[str, Any] | None:
        """Our live event for this meeting, if one exists (found by its extended property)."""
        quoted = tag.replace("'", "''")
        flt = (f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG_PROPERTY_ID}' "
               f"and ep/value eq '{quoted}')")
        try:
            response = self.client.request(
                "GET", f"{_user(organiser)}/events", mailbox=organiser,
                params={
                    "$filter": flt,
                    "$select": "id,transactionId,isCancelled,onlineMeeting,iCalUId,attendees",
                    "$expand": f"singleValueExtendedProperties($filter=id eq '{TAG_PROPERTY_ID}')",
                },
            )
        except GraphError as exc:
            if exc.status in (401, 403):
                raise
            # A server without this query (some test doubles) leaves transactionId as the guard.
            self.log.warning("teams: cannot search %s for an earlier event (%s); relying on "
                             "transactionId", organiser, exc.code)
            return None
        for item in response.json().get("value", []):
            if item.get("isCancelled"):
                continue
            props = {p.get("id"): p.get("value")
                     for p in item.get("singleValueExtendedProperties") or []}
            # Only adopt what is provably ours: the tag came back, or it is this very request.
            if str(props.get(TAG_PROPERTY_ID, "")).lower() == tag.lower() or (
                    txn is not None and item.get("transactionId") == txn):
                return dict(item)
        return None

    def _claimed_roles(self, event: LifecycleEvent, organiser: str,
                       held: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """The attendees this event may invite: those it invited before and those no other
        plugin has invited (claimed here first); and the addresses newly claimed."""
        case_id = event.review.case_id
        roles: dict[str, str] = {}
        claimed: list[str] = []
        elsewhere = 0
        for email, role in attendee_roles(event, organiser).items():
            if email in held:
                roles[email] = role
            elif self.store.claim_invitation(case_id, email):
                roles[email] = role
                claimed.append(email)
            else:
                elsewhere += 1
        if elsewhere:
            # Invited already (e.g. by email while Teams was failing): they get the link as
            # an update from that plugin, not a second invitation from us.
            self.log.info("teams: %d invitee(s) of %s already hold an invitation from another "
                          "plugin; not invited again", elsewhere, case_id)
        return roles, claimed

    def _create(self, event: LifecycleEvent) -> OnlineMeeting:
        assert event.meeting is not None
        case_id = event.review.case_id
        organiser = resolve_organiser(self.settings, event)
        tag = meeting_tag(event)
        txn = transaction_id(event.idempotency_key)
        existing = self._find_by_tag(organiser, tag, txn)
        held: dict[str, str] = {}
        if existing is not None:
            # Created before a crash or a lost answer: it invited whoever it listed.
            held = {str((a.get("emailAddress") or {}).get("address") or "").lower(): ""
                    for a in existing.get("attendees") or []}
        roles, claimed = self._claimed_roles(event, organiser, held)
        payload = create_payload(self.settings, event, organiser, roles)
        fields = mutable_fields(self.settings, event, organiser, roles)
        recovered = existing is not None
        if existing is None:
            def recover() -> httpx.Response | None:
                # Graph may have created the event before answering 5xx or timing out.
                nonlocal recovered
                found = self._find_by_tag(organiser, tag, txn)
                recovered = found is not None
                return httpx.Response(201, json=found) if found is not None else None

            try:
                response = self.client.request(
                    "POST", f"{_user(organiser)}/events", mailbox=organiser, json=payload,
                    recover=recover,
                )
            except HttpError as exc:
                # Refused: nobody was invited, so another plugin may invite them.
                self.store.release_invitations(case_id, claimed, detail=str(exc)[:200])
                raise
            data = response.json()
        else:
            data = existing
            recovered = True
            self.log.info("teams: found the event of %s created before a restart", case_id)
        if not data.get("id"):
            raise PermanentError(f"Graph created an event in mailbox {organiser} without an id")
        same_request = data.get("transactionId") == payload["transactionId"]
        state: dict[str, Any] = {
            "case_id": case_id,
            "event_id": data["id"],
            "organiser": organiser,
            "tag": meeting_tag(event),
            "transaction_id": payload["transactionId"],
            "meeting_id": event.meeting.id,
            "sequence": event.meeting.sequence,
            # Recovered from another request: PATCH below so the event matches this one.
            "fingerprint": fingerprint(fields) if (not recovered or same_request) else "",
            "start": event.meeting.start.isoformat(),
            "end": event.meeting.end.isoformat(),
            "advice": advice_sentence(event),
            "attendees": roles,
            "join_url": (data.get("onlineMeeting") or {}).get("joinUrl"),
            "ical_uid": data.get("iCalUId"),
            "cancelled": False,
        }
        # Stored at once: a retry after this point PATCHes instead of creating again.
        self.store.set_state(state_key(case_id), state)
        # Also after a recovery: the crashed attempt died before it could record anything.
        for email in state["attendees"]:
            self.store.record_invitation(
                case_id, email, status="sent", detail=f"Outlook invitation from {organiser}"
            )
        self.store.audit(case_id, "teams.event_adopted" if recovered else "teams.event_created", {
            "event_id": data["id"], "organiser": organiser,
            "attendees": len(state["attendees"]), "sequence": event.meeting.sequence,
        })
        if not state["fingerprint"]:
            return self._update(event, state)
        return self._online_meeting(state)

    def _update(self, event: LifecycleEvent, state: dict[str, Any]) -> OnlineMeeting:
        assert event.meeting is not None
        case_id = event.review.case_id
        organiser = state["organiser"]
        roles, claimed = self._claimed_roles(event, organiser, state.get("attendees") or {})
        fields = mutable_fields(self.settings, event, organiser, roles)
        new_fp = fingerprint(fields)
        if new_fp != state.get("fingerprint"):
            patch = dict(fields)
            new_advice = advice_sentence(event)
            old_advice = state.get("advice")
            if old_advice and old_advice != new_advice:
                body = self._body_with(organiser, state["event_id"], old_advice, new_advice)
                if body is not None:
                    patch["body"] = body
            try:
                self.client.request(
                    "PATCH", _event_path(organiser, state["event_id"]), mailbox=organiser,
                    json=patch,
                )
            except GraphError as exc:
                if exc.status != 404:
                    self.store.release_invitations(case_id, claimed, detail=str(exc)[:200])
                    raise
                # Deleted by hand in Outlook: make a new one rather than leave the review bare.
                self.log.warning("teams: event of %s was deleted in Outlook; creating it again",
                                 case_id)
                self.store.set_state(state_key(case_id), {**state, "cancelled": True})
                return self._create(event)
            new_roles = roles
            for email in sorted(set(new_roles) - set(state.get("attendees", {}))):
                self.store.record_invitation(
                    case_id, email, status="sent", detail=f"Outlook invitation from {organiser}"
                )
            state = {
                **state,
                "fingerprint": new_fp,
                "sequence": max(int(state.get("sequence", 0)), event.meeting.sequence),
                "start": event.meeting.start.isoformat(),
                "end": event.meeting.end.isoformat(),
                "advice": new_advice if "body" in patch or not old_advice else old_advice,
                "attendees": new_roles,
            }
            self.store.set_state(state_key(case_id), state)
            self.store.audit(case_id, "teams.event_updated", {
                "event_id": state["event_id"], "organiser": organiser,
                "sequence": event.meeting.sequence, "attendees": len(new_roles),
            })
        return self._online_meeting(state)

    def _body_with(self, organiser: str, event_id: str, old: str, new: str
                   ) -> dict[str, str] | None:
        # Graph asks to GET and keep the Teams blob when changing an online meeting's body.
        try:
            response = self.client.request(
                "GET", _event_path(organiser, event_id), mailbox=organiser,
                params={"$select": "body"},
            )
        except GraphError:
            return None  # the date in the body stays as it was; the PATCH itself matters more
        body = response.json().get("body") or {}
        content = str(body.get("content") or "")
        escaped_old, escaped_new = html.escape(old), html.escape(new)
        if escaped_old in content:
            content = content.replace(escaped_old, escaped_new)
        elif old in content:
            content = content.replace(old, new)
        else:
            return None
        return {"contentType": str(body.get("contentType") or "HTML"), "content": content}

    def _online_meeting(self, state: dict[str, Any]) -> OnlineMeeting:
        join_url = state.get("join_url")
        organiser = state["organiser"]
        if not join_url:
            join_url = self._poll_join_url(state)
            state = {**state, "join_url": join_url}
            self.store.set_state(state_key(state["case_id"]), state)
        return OnlineMeeting(
            provider=PROVIDER, join_url=join_url, external_id=state["event_id"],
            extra={"organiser": organiser, "ical_uid": state.get("ical_uid")},
        )

    def _poll_join_url(self, state: dict[str, Any]) -> str:
        """Read the event until Teams has filled in its join URL (it can lag the 201), waiting
        longer each time up to ``join_url_wait_seconds`` in all."""
        organiser = state["organiser"]
        waited, pause = 0.0, min(0.5, self.settings.join_url_wait_seconds)
        while True:
            response = self.client.request(
                "GET", _event_path(organiser, state["event_id"]), mailbox=organiser,
                params={"$select": "isOnlineMeeting,onlineMeetingProvider,onlineMeeting"},
            )
            data = response.json()
            join_url = (data.get("onlineMeeting") or {}).get("joinUrl")
            if join_url:
                return str(join_url)
            if data.get("isOnlineMeeting") is False or (
                    data.get("onlineMeetingProvider") not in (None, "teamsForBusiness")):
                raise PermanentError(
                    f"Graph created event {state['event_id']} in mailbox {organiser} without a "
                    "Teams join URL (onlineMeeting.joinUrl): Teams meetings are probably not "
                    f"allowed for {organiser}; run `ehcbridge teams check --mailbox {organiser}`"
                )
            if waited + pause > self.settings.join_url_wait_seconds:
                raise RetryLater(
                    f"Teams has not yet given event {state['event_id']} in mailbox {organiser} "
                    f"a join URL after {waited:.0f}s; will look again")
            self.client.sleep(pause)
            waited += pause
            pause *= 2

    # -- cancel --------------------------------------------------------------------------

    def cancel(self, event: LifecycleEvent, comment: str = CANCEL_COMMENT) -> bool:
        """Cancel the review's event (sends cancellations); False when there was nothing to do."""
        case_id = event.review.case_id
        state = self.store.get_state(state_key(case_id))
        if not state or not state.get("event_id"):
            if event.meeting is None:
                return False
            # Created just before a crash and never stored? Look for our tag.
            organiser = resolve_organiser(self.settings, event)
            found = self._find_by_tag(organiser, meeting_tag(event))
            if found is None:
                return False
            state = {"case_id": case_id, "event_id": found["id"], "organiser": organiser,
                     "tag": meeting_tag(event), "cancelled": False, "attendees": {}}
        if state.get("cancelled"):
            return False
        organiser = state["organiser"]
        try:
            self.client.request(
                "POST", _event_path(organiser, state["event_id"]) + "/cancel",
                mailbox=organiser, json={"comment": comment},
            )
        except GraphError as exc:
            if exc.status != 404:
                raise
            self.log.info("teams: event of %s was already gone", case_id)
        self.store.set_state(state_key(case_id), {**state, "cancelled": True})
        self.store.clear_flag(case_id, DECLINED_FLAG)
        self.store.audit(case_id, "teams.event_cancelled",
                         {"event_id": state["event_id"], "organiser": organiser})
        return True

    # -- responses -----------------------------------------------------------------------

    def refresh_responses(self, now: datetime, *, max_rounds: int = 4) -> dict[str, int]:
        """Read attendee responses of meetings in the next three weeks (JSON batches of 20)."""
        horizon = now + RESPONSES_WINDOW
        by_mailbox: dict[str, list[dict[str, Any]]] = {}
        for _, state in self.store.state_items(STATE_PREFIX):
            if not isinstance(state, dict) or not state.get("event_id") or state.get("cancelled"):
                continue
            if not state.get("start") or not state.get("end"):
                continue
            if _parse(state["end"]) < now or _parse(state["start"]) > horizon:
                continue
            by_mailbox.setdefault(state["organiser"].lower(), []).append(state)
        summary = {"meetings": 0, "changed": 0, "declined": 0, "failed": 0}
        for mailbox, states in sorted(by_mailbox.items()):
            for start in range(0, len(states), MAX_BATCH):
                chunk = states[start:start + MAX_BATCH]
                self._refresh_chunk(mailbox, chunk, summary, max_rounds)
        return summary

    def _refresh_chunk(self, mailbox: str, chunk: list[dict[str, Any]],
                       summary: dict[str, int], max_rounds: int) -> None:
        pending = {str(i): st for i, st in enumerate(chunk, 1)}
        for _round in range(max_rounds):
            requests = [
                {"id": rid, "method": "GET",
                 "url": _event_path(st["organiser"], st["event_id"]) + "?$select=attendees"}
                for rid, st in pending.items()
            ]
            answers = self.client.batch(requests, mailbox=mailbox)
            again: dict[str, dict[str, Any]] = {}
            wait = 0.0
            for rid, st in pending.items():
                answer = answers.get(rid) or {"status": 503, "headers": {}}
                status = int(answer.get("status", 0))
                if status == 200:
                    summary["meetings"] += 1
                    self._apply_responses(st, answer.get("body") or {}, summary)
                elif status in (429, 503, 504):
                    again[rid] = st
                    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                    asked = parse_retry_after(headers.get("retry-after"), self.client.http.now())
                    wait = max(wait, 1.0 if asked is None else asked)
                elif status == 404:
                    summary["failed"] += 1
                    self.store.flag_review(
                        st["case_id"], MISSING_FLAG,
                        f"the Outlook event in {st['organiser']} was deleted outside ehcbridge",
                    )
                else:
                    summary["failed"] += 1
                    code = ((answer.get("body") or {}).get("error") or {}).get("code", "")
                    self.log.warning("teams: reading responses of %s failed: %s %s",
                                     st["case_id"], status, code)
            if not again:
                return
            pending = again
            if _round + 1 < max_rounds:
                self.client.sleep(min(wait, self.settings.max_retry_wait_seconds))
        summary["failed"] += len(pending)
        self.log.warning("teams: %d response reads still throttled; next run retries",
                         len(pending))

    def _apply_responses(self, state: dict[str, Any], body: dict[str, Any],
                         summary: dict[str, int]) -> None:
        case_id = state["case_id"]
        roles = state.get("attendees") or {}
        before = state.get("responses") or {}
        now_seen: dict[str, str] = {}
        declined = []
        for attendee in body.get("attendees") or []:
            email = str((attendee.get("emailAddress") or {}).get("address") or "").lower()
            response = str((attendee.get("status") or {}).get("response") or "none")
            if not email or response == "organizer":
                continue
            now_seen[email] = response
            # "none" says nothing; storing it could hide an answer recorded another way.
            if before.get(email, "none") != response:
                self.store.set_response(case_id, email, response)
                summary["changed"] += 1
            role = roles.get(email)
            if response == "declined" and role and Role(role) in PROFESSIONAL_ROLES:
                declined.append(f"{ROLE_LABELS[Role(role)]} ({email})")
        if declined:
            summary["declined"] += 1
            self.store.flag_review(case_id, DECLINED_FLAG,
                                   "declined the Teams meeting: " + ", ".join(declined))
        elif state.get("declined"):
            self.store.clear_flag(case_id, DECLINED_FLAG)
        if now_seen != before or bool(declined) != bool(state.get("declined")):
            self.store.set_state(state_key(case_id),
                                 {**state, "responses": now_seen, "declined": bool(declined)})


# -- check ---------------------------------------------------------------------------------


def run_check(settings: TeamsSettings, *, mailbox: str | None = None,
              client: GraphClient | None = None) -> list[CheckResult]:
    """Token, mailbox calendar and Teams-allowed checks, each saying exactly what is wrong."""
    if not settings.configured:
        missing = ", ".join(settings.missing()) if settings.enabled else "plugin disabled"
        return [CheckResult("teams", "not configured", f"[plugins.teams] needs: {missing}")]
    try:
        acquire_token(settings)
    except TokenError as exc:
        return [CheckResult("teams: token", "failed", str(exc))]
    results = [CheckResult(
        "teams: token", "ok",
        f"app-only token for client {settings.client_id} from {settings.authority_host}",
    )]
    target = mailbox or (settings.organiser if settings.organiser != COORDINATOR else None)
    if target is None:
        results.append(CheckResult(
            "teams: mailbox", "warning",
            "organiser is 'coordinator' (each review's coordinator mailbox); check one with "
            "`ehcbridge teams check --mailbox ADDRESS`",
        ))
        return results
    own = client is None
    graph = client or make_client(settings)
    try:
        data = graph.request("GET", f"{_user(target)}/calendar", mailbox=target).json()
    except GraphError as exc:
        results.append(CheckResult("teams: mailbox", "failed", _explain(exc, target)))
        return results
    except GraphUnavailable as exc:
        results.append(CheckResult("teams: mailbox", "failed", str(exc)))
        return results
    except TokenError as exc:
        results.append(CheckResult("teams: mailbox", "failed", str(exc)))
        return results
    finally:
        if own:
            graph.close()
    providers = list(data.get("allowedOnlineMeetingProviders") or [])
    if "teamsForBusiness" not in providers:
        results.append(CheckResult(
            "teams: mailbox", "failed",
            f"Teams not allowed for mailbox {target}: allowedOnlineMeetingProviders is "
            f"{providers or 'empty'}; give the mailbox a Teams licence or allow Teams meetings "
            "in Outlook for it",
        ))
    else:
        results.append(CheckResult(
            "teams: mailbox", "ok",
            f"calendar of {target} readable; Teams meetings allowed "
            f"(default provider {data.get('defaultOnlineMeetingProvider', 'unknown')})",
        ))
    return results


def _explain(exc: GraphError, mailbox: str) -> str:
    if exc.status == 401:
        return (f"consent missing or token rejected for mailbox {mailbox} (Graph said {exc.code}): "
                "grant the Calendars.ReadWrite application permission and admin consent")
    if exc.status == 403:
        return (f"access to mailbox {mailbox} denied (Graph said {exc.code}): grant the "
                "Calendars.ReadWrite application permission with admin consent, and include the "
                "mailbox in the app's RBAC for Applications scope or application access policy")
    if exc.status == 404:
        return (f"mailbox {mailbox} not found (Graph said {exc.code}): check the address and that "
                "it is an Exchange Online mailbox")
    return str(exc)
