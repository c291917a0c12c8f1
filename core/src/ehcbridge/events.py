"""What a lifecycle hook receives: an immutable event and a small per-plugin context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from ehcbridge.models import (
    Decision,
    Duty,
    Frozen,
    Invitee,
    Meeting,
    Milestone,
    Plan,
    Pupil,
    Review,
    Views,
)

if TYPE_CHECKING:
    from ehcbridge.settings import EngineSettings


class LifecycleEvent(Frozen):
    """A lifecycle event as delivered to every plugin.

    ``hook`` is the hook name; ``action`` says what happened:
    ``scheduled``/``rescheduled``/``cancelled`` (on_review_scheduled),
    ``request``/``reminder``/``due`` (on_views_due), ``recorded``/``ended``
    (on_meeting_held) and ``recorded``/``not_amended`` (on_decision).
    ``idempotency_key`` is identical across retries and restarts: pass it to remote APIs.
    """

    hook: str
    action: str
    idempotency_key: str
    occurred_at: datetime
    review: Review
    plan: Plan
    pupil: Pupil
    meeting: Meeting | None = None
    previous_meeting: Meeting | None = None
    invitees: tuple[Invitee, ...] = ()
    milestones: tuple[Milestone, ...] = ()
    decision: Decision | None = None
    reason: str | None = None  # why a meeting was cancelled, as entered by the caseworker
    duty: Duty | None = None  # on_deadline: the duty at risk or missed

    @property
    def stage(self) -> str:
        """The views stage (``request``, ``reminder`` or ``due``); same as ``action``."""
        return self.action

    def milestone(self, name: str) -> Milestone | None:
        """The milestone called ``name``, if the clock produced one."""
        return next((m for m in self.milestones if m.name == name), None)


class PluginStore(Protocol):
    """The part of the store a plugin may use: its own key-value state plus a few review facts."""

    def get_state(self, key: str, default: Any = None) -> Any:
        """Return the plugin's stored JSON value for ``key``."""

    def get_state_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``keys`` by key, leaving out keys not stored (one query)."""

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` for this plugin (committed at once)."""

    def set_state_many(self, items: dict[str, Any]) -> None:
        """Store many keys in one transaction (bulk syncs)."""

    def delete_state(self, key: str) -> None:
        """Remove ``key`` from this plugin's state."""

    def batch(self) -> AbstractContextManager[None]:
        """``with store.batch():`` the writes made in the block commit together, as one
        transaction (or none of them, if it raises), and the state and invitation reads in it
        see them. For writes that belong together: send mail or call a service before or after
        the block, never inside, so a crash cannot leave an effect unrecorded or a record of
        one that never happened (unless repeating the effect cannot duplicate it)."""

    def state_items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """All of this plugin's keys starting with ``prefix``."""

    def flag_review(self, case_id: str, flag: str, detail: str = "") -> None:
        """Raise a flag on a review (shown by ``review show``); idempotent."""

    def clear_flag(self, case_id: str, flag: str) -> None:
        """Clear a flag this or another plugin raised."""

    def record_invitation(
        self, case_id: str, email: str, *, status: str = "sent", detail: str = ""
    ) -> None:
        """Record that this plugin invited ``email`` (status ``sent``, ``failed``...)."""

    def claim_invitation(self, case_id: str, email: str) -> bool:
        """Claim ``email`` for this plugin before inviting them (then ``record_invitation``
        what was sent); False when another plugin already holds an invitation for them."""

    def release_invitations(self, case_id: str, emails: list[str], detail: str = "") -> None:
        """Give up this plugin's claims on ``emails`` (its invitation failed)."""

    def invitations(self, case_id: str) -> list[dict[str, Any]]:
        """Invitation records of every plugin for this review."""

    def set_response(self, case_id: str, email: str, response: str) -> None:
        """Store an invitee's response (accepted, declined, tentativelyAccepted...)."""

    def add_invitee(self, case_id: str, invitee: Invitee) -> None:
        """Add or update an invitee of the review (matched by role and email)."""

    def set_meeting_link(
        self, case_id: str, *, provider: str, join_url: str | None, external_id: str | None
    ) -> None:
        """Store an online meeting's provider, join URL and external id on the review's meeting."""

    def audit(self, case_id: str | None, action: str, detail: dict[str, Any]) -> None:
        """Append an audit record (who, what, why) for this plugin."""

    def update_pupil(self, upn: str, fields: dict[str, Any]) -> bool:
        """Update the core pupil with this UPN (forename, surname, dob, nc_year, school_urn);
        True when something changed. Recomputes the review flags (e.g. preparing for adulthood)."""

    def open_reviews_for_upn(self, upn: str) -> list[Review]:
        """Reviews of this pupil that are not yet decided or cancelled."""

    def update_pupils(self, items: dict[str, dict[str, Any]]) -> dict[str, bool]:
        """Bulk :meth:`update_pupil` in one transaction; UPN -> changed."""

    def open_reviews_for_upns(self, upns: list[str]) -> dict[str, list[Review]]:
        """Bulk :meth:`open_reviews_for_upn` in one query."""

    def review(self, case_id: str) -> Review | None:
        """The current review of a case."""

    def set_notice_status(self, reference: str, status: str, detail: str = "") -> str | None:
        """Record what became of a notice this plugin delivered (by the reference it returned:
        ``sent``, ``delivered`` or ``failed``); returns the case id, or None if unknown."""

    def record_views(self, case_id: str, contributor: str, received_on: Any,
                     files: list[tuple[str, str, bytes]]) -> int:
        """Record views received for the case's current review with their files (name, content
        type, bytes), as ``ehcbridge review views`` does; returns the views id."""

    def views(self, case_id: str) -> list[Views]:
        """Views and advice recorded for the case's current review, by anyone (``review views``,
        a reply read from a mailbox, another plugin), oldest first; empty when there is none."""


class Clock(Protocol):
    """The engine's notion of now, overridable with ``--now``."""

    def now(self) -> datetime:
        """Current Europe/London aware datetime."""


@dataclass(frozen=True)
class HookContext:
    """Per-plugin context passed to every hook call."""

    plugin: str
    settings: BaseModel | None
    logger: logging.Logger
    clock: Clock
    store: PluginStore
    engine_settings: EngineSettings | None = None  # the [engine] section (None in unit tests)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """One line of ``ehcbridge doctor``: ``ok``, ``warning``, ``failed`` or ``not configured``."""

    name: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class Schedule:
    """A periodic job a plugin registers: a cron expression and a callable taking a HookContext."""

    name: str
    cron: str
    func: Callable[[HookContext], object]


@dataclass(frozen=True)
class OnlineMeeting:
    """What an online meeting provider returns: the link to join and the provider's own id."""

    provider: str
    join_url: str
    external_id: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """Where an invitee's invitation and advice request go, from the ``route_invite`` hook."""

    team: str
    email: str
    rule: str
    reason: str
    portal_url: str | None = None
    data_level: str = "minimal"
    flagged: bool = False
    # The plugin that asks this invitee for advice itself (its own request and reminder): the
    # core's notices then leave the invitee out of ``views_request`` and send the
    # ``advice_reminder`` without its chase, only circulating the advice received so far.
    advice_by: str | None = None


@dataclass(frozen=True)
class DateConstraint:
    """A preferred or blocked date from ``meeting_constraints`` (weight > 0 prefers it)."""

    day: Any  # datetime.date
    reason: str
    weight: float = 1.0
    blocked: bool = False


@dataclass(frozen=True)
class PupilRecord:
    """What ``lookup_pupil`` returns: the pupil, contacts, SEN provision (N/K/E) and need codes."""

    pupil: Pupil
    contacts: tuple[Any, ...] = ()  # ehcbridge.models.Contact
    sen_provision: str | None = None
    needs: tuple[str, ...] = ()
    source: str = ""
