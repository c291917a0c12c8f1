"""The application object: settings, plugins, store and clock, shared by the CLI and the engine."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ehcbridge.events import CheckResult, HookContext, PupilRecord
from ehcbridge.models import LONDON, Invitee, Pupil, Review, Views
from ehcbridge.plugins import PluginManager
from ehcbridge.settings import Settings, load_settings
from ehcbridge.store import Store, StoreError

log = logging.getLogger("ehcbridge")


@dataclass
class SystemClock:
    """Wall-clock time in Europe/London, or a fixed instant for ``--now``."""

    fixed: datetime | None = None

    def now(self) -> datetime:
        """The current time (aware, Europe/London)."""
        if self.fixed is not None:
            return self.fixed.astimezone(LONDON)
        return datetime.now(LONDON)


@dataclass
class PluginStoreFacade:
    """The store as one plugin sees it: its own state plus a few review facts."""

    store: Store
    plugin: str
    app: App | None = field(default=None, repr=False)

    def get_state(self, key: str, default: Any = None) -> Any:
        """Return the plugin's stored JSON value for ``key``."""
        return self.store.get_state(self.plugin, key, default)

    def get_state_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``keys`` (those that exist), in one query."""
        return self.store.get_state_many(self.plugin, keys)

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        self.store.set_state_many(self.plugin, {key: value})

    def set_state_many(self, items: dict[str, Any]) -> None:
        """Store many keys in one transaction."""
        self.store.set_state_many(self.plugin, items)

    def delete_state(self, key: str) -> None:
        """Remove ``key``."""
        self.store.delete_state(self.plugin, key)

    def state_items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """The plugin's keys starting with ``prefix``."""
        return self.store.state_items(self.plugin, prefix)

    def batch(self) -> AbstractContextManager[None]:
        """Writes in the block commit together (see ``PluginStore.batch``)."""
        return self.store.batch()

    def flag_review(self, case_id: str, flag: str, detail: str = "") -> None:
        """Raise a flag on the review."""
        self.store.flag_review(case_id, flag, detail, raised_by=self.plugin)

    def clear_flag(self, case_id: str, flag: str) -> None:
        """Clear a flag."""
        self.store.clear_flag(case_id, flag)

    def record_invitation(self, case_id: str, email: str, *, status: str = "sent",
                          detail: str = "") -> None:
        """Record an invitation this plugin sent."""
        self.store.record_invitation(case_id, email, plugin=self.plugin, status=status,
                                     detail=detail)

    def claim_invitation(self, case_id: str, email: str) -> bool:
        """Claim ``email`` for this plugin before inviting; False when another plugin already
        holds an invitation (or a claim) for them."""
        return self.store.claim_invitation(case_id, email, plugin=self.plugin) == self.plugin

    def release_invitations(self, case_id: str, emails: list[str], detail: str = "") -> None:
        """Give up this plugin's claims on ``emails`` after its invitation failed."""
        self.store.release_invitations(case_id, plugin=self.plugin, emails=emails, detail=detail)

    def invitations(self, case_id: str) -> list[dict[str, Any]]:
        """Invitation records of every plugin for the review."""
        from ehcbridge.store.reads import invitations

        return invitations(self.store, case_id)

    def set_response(self, case_id: str, email: str, response: str) -> None:
        """Store an invitee's response."""
        self.store.set_response(case_id, email, response)

    def add_invitee(self, case_id: str, invitee: Invitee) -> None:
        """Add or update an invitee (through the router, when one is installed)."""
        if self.app is not None:
            self.app.add_invitee(case_id, invitee, require_email=False)
        else:
            from ehcbridge import transitions

            transitions.add_invitee(self.store, case_id, invitee)

    def set_meeting_link(self, case_id: str, *, provider: str, join_url: str | None,
                         external_id: str | None) -> None:
        """Store an online meeting link on the review's meeting."""
        meeting = self.store.case(case_id).meeting
        if meeting is None or meeting.id is None:
            raise StoreError(f"{case_id}: no meeting to attach a link to")
        self.store.set_meeting_link(meeting.id, provider=provider, join_url=join_url,
                                    external_id=external_id)

    def audit(self, case_id: str | None, action: str, detail: dict[str, Any]) -> None:
        """Append an audit record."""
        self.store.audit(self.plugin, case_id, action, detail)

    def update_pupil(self, upn: str, fields: dict[str, Any]) -> bool:
        """Update the pupil; recompute preparing-for-adulthood when the NC year changes."""
        changed, review_ids = self.store.update_pupil(upn, fields)
        if changed and fields.get("nc_year") is not None:
            # reg 20(6): from Year 9 the review covers preparing for adulthood
            self.store.set_pfa(review_ids, int(fields["nc_year"]) >= 9)
        return changed

    def update_pupils(self, items: dict[str, dict[str, Any]]) -> dict[str, bool]:
        """Update many pupils by UPN in one transaction; which ones changed."""
        from ehcbridge.timeline import preparing_for_adulthood

        changed = self.store.update_pupils(items)
        today = self.app.clock.now().date() if self.app is not None else None
        pfa: dict[bool, list[int]] = {True: [], False: []}
        for upn, reviews in changed.items():
            year = items[upn].get("nc_year")
            if year is None:
                continue
            pupil = Pupil(forename="-", surname="-", nc_year=int(year))
            # Judged at each review's due date, as the import and the decision judge it: a
            # Year 8 pupil whose review falls due after September is reviewed in Year 9 (by
            # this year alone, a sync turned off what the import had rightly turned on).
            for rid, due, was in reviews:
                now_pfa = preparing_for_adulthood(pupil, on=due, as_of=today)
                if now_pfa != was:
                    pfa[now_pfa].append(rid)
        for value, ids in pfa.items():
            self.store.set_pfa(ids, value)
        return {upn: upn in changed for upn in items}

    def open_reviews_for_upn(self, upn: str) -> list[Review]:
        """Open reviews of this pupil."""
        return [self.store.case(cid).review for cid in self.store.open_reviews_for_upn(upn)]

    def open_reviews_for_upns(self, upns: list[str]) -> dict[str, list[Review]]:
        """Open reviews of many pupils, in one query."""
        return self.store.open_reviews_for_upns(upns)

    def review(self, case_id: str) -> Review | None:
        """The current review of a case."""
        try:
            return self.store.case(case_id).review
        except StoreError:
            return None

    def views(self, case_id: str) -> list[Views]:
        """Views and advice recorded for the case's current review."""
        try:
            return self.store.views(case_id)
        except StoreError:
            return []

    def set_notice_status(self, reference: str, status: str, detail: str = "") -> str | None:
        """Record what became of a notice this plugin delivered, by its reference."""
        return self.store.set_notice_status_by_reference(self.plugin, reference, status,
                                                         detail or None)

    def record_views(self, case_id: str, contributor: str, received_on: Any,
                     files: list[tuple[str, str, bytes]]) -> int:
        """Record views received (matched to an invitee by address for their role)."""
        key = contributor.strip().lower()
        invitee = next((i for i in self.store.case(case_id).invitees
                        if (i.email or "").lower() == key), None)
        return self.store.add_views(case_id, contributor=contributor.strip(),
                                    role=invitee.role.value if invitee else None,
                                    received_on=received_on, files=files)


class App:
    """Settings, plugins, store and clock for one process."""

    def __init__(self, settings: Settings | None = None, *, config: str | Path | None = None,
                 now: datetime | None = None, plugins: PluginManager | None = None) -> None:
        self.settings = settings if settings is not None else load_settings(config)
        self.clock = SystemClock(now)
        self.plugins = plugins or PluginManager(self.settings.plugins, self.settings.config_path)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
        if self._store is None:
            self._store = Store(self.settings.store.resolved_url())
        return self._store

    def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def plugin_settings(self, name: str) -> Any:
        """The validated settings model of a plugin (None when it registered none)."""
        self.plugins.configure()
        record = self.plugins.records.get(name)
        return record.settings if record is not None else None

    def plugin_context(self, name: str) -> HookContext:
        """The HookContext a plugin's hooks and commands receive."""
        return HookContext(
            plugin=name,
            settings=self.plugin_settings(name),
            logger=logging.getLogger(f"ehcbridge.plugins.{name}"),
            clock=self.clock,
            store=PluginStoreFacade(self.store, name, self),
            engine_settings=self.settings.engine,
            extras={"lookup_pupil": self.lookup_pupil, "limits": self.settings.limits},
        )

    def start_plugins(self) -> None:
        """Load plugins and run their ``startup`` hooks."""
        self.plugins.load()
        self.plugins.start(self.plugin_context)

    def lookup_pupil(self, upn: str) -> PupilRecord | None:
        """Ask the plugins for a pupil by UPN (first answer wins)."""
        result = self.plugins.call_first("lookup_pupil", upn=upn, ctx=self.plugin_context)
        if isinstance(result, PupilRecord):
            return result
        pupil = self.store.pupil_by_upn(upn)  # no MIS plugin answered: what the store knows
        return PupilRecord(pupil=pupil, source="store") if pupil is not None else None

    def add_invitee(self, case_id: str, invitee: Invitee, *, require_email: bool = True) -> None:
        """Add an invitee, routed to their team by ``route_invite`` when a router answers."""
        from ehcbridge.routing import route_and_add

        if route_and_add(self, case_id, invitee, require_email=require_email):
            # Calendar plugins send the new invitee an invitation to the meeting already set.
            self.store.invitees_changed(case_id, now=self.clock.now())

    def clock_options(self, pupil: Any) -> Any:
        """The statutory clock's options for this pupil (school holidays, infant school)."""
        from ehcbridge.terms import school_holidays
        from ehcbridge.timeline import ClockOptions

        engine = self.settings.engine
        return ClockOptions(
            school_holidays=school_holidays(engine),
            infant_school=bool(pupil is not None and pupil.school_urn in engine.infant_schools),
        )

    def milestones(self, case: Any, meeting: Any = None) -> list[Any]:
        """The statutory clock for a case (with its meeting and decision, when known)."""
        from ehcbridge import lifecycle, transitions

        # The MIS gives this year's NC year, so the clock reads it as of today.
        return lifecycle.review_milestones(transitions.state_of(case), self.lifecycle_policy(),
                                           self.clock.now().date(), meeting)

    def lifecycle_policy(self) -> Any:
        """The lifecycle's settings (``ehcbridge.lifecycle.Policy``) from ``[engine]``."""
        from ehcbridge.transitions import policy_of

        return policy_of(self)

    def review_due(self, plan: Any, pupil: Any) -> Any:
        """When the review of ``plan`` is due, with the pupil's NC year read as of today."""
        from ehcbridge import timeline

        return timeline.review_due(plan, pupil, self.clock_options(pupil),
                                   as_of=self.clock.now().date())

    def _retention_check(self) -> CheckResult | None:
        """``store.keep_ceased_months``: plans that ceased longer ago are due for erasure."""
        months = self.settings.store.keep_ceased_months
        if months is None:
            return None
        from ehcbridge.store.erase import ceased_before
        from ehcbridge.timeline import add_months

        cutoff = add_months(self.clock.now().date(), -months)
        due = ceased_before(self.store, cutoff)
        if not due:
            return CheckResult("retention", "ok",
                               f"no plan ceased more than {months} months ago")
        return CheckResult("retention", "warning", f"{len(due)} plan(s) ceased before "
                           f"{cutoff.isoformat()} ({months} months ago) are due for erasure: "
                           f"ehcbridge erase --ceased-before {cutoff.isoformat()} --yes")

    def doctor(self) -> list[tuple[str, CheckResult]]:
        """Every plugin's checks, with failed plugins reported as failed."""
        results: list[tuple[str, CheckResult]] = []
        self.start_plugins()
        for record in self.plugins.records.values():
            if record.status == "failed":
                results.append((record.name, CheckResult("load", "failed", record.reason)))
            elif record.status in ("disabled", "skipped"):
                results.append((record.name, CheckResult("load", record.status, record.reason)))
        for outcome in self.plugins.call_each("check", ctx=self.plugin_context):
            if outcome.error is not None:
                results.append((outcome.plugin, CheckResult(
                    "check", "failed", f"{type(outcome.error).__name__}: {outcome.error}")))
                continue
            value = outcome.result
            items = value if isinstance(value, list | tuple) else [value] if value else []
            for item in items:
                if isinstance(item, CheckResult):
                    results.append((outcome.plugin, item))
        from ehcbridge.notices.render import template_check
        from ehcbridge.online import provider_check

        online = provider_check(self)
        if online is not None:
            results.append(("core", online))
        config = self.settings.config_path
        wording = template_check(self.settings.notices,
                                 config.parent if config is not None else None)
        if wording is not None:
            results.append(("core", CheckResult("notice templates", *wording)))
        retention = self._retention_check()
        if retention is not None:
            results.append(("core", retention))
        if self.settings.notices.council_email is None:
            # Notices invite a reply ("reply to this message"): without it the reply goes to
            # whichever mailbox sent the notice, often one nobody reads.
            results.append(("core", CheckResult(
                "notice replies", "warning", "notices.council_email is not set: a family or "
                "professional replying to a notice reaches the sending mailbox, and notices "
                "name no council contact")))
        return sorted(results, key=lambda r: r[0])
