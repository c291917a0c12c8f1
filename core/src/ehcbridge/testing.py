"""Helpers for plugin authors' tests: build events and contexts without a store or an engine.

For tests on a real store and engine, use the fixtures of the pytest plugin
(``ehcbridge.pytest_plugin``). ``MemoryPluginStore`` behaves as the store a plugin sees; a shared
contract test (core/tests/test_plugin_store_contract.py) runs the same checks on both.
"""

from __future__ import annotations

import copy
import logging
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.models import (
    LONDON,
    Invitee,
    Meeting,
    Plan,
    Pupil,
    Review,
    ReviewStatus,
    Role,
    Views,
)


@dataclass
class MemoryPluginStore:
    """An in-memory PluginStore: what a plugin writes can be read back in assertions."""

    state: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, dict[str, str]] = field(default_factory=dict)
    invitation_records: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[tuple[str, str], str] = field(default_factory=dict)
    invitees: dict[str, list[Invitee]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    pupils: dict[str, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)
    notice_statuses: dict[str, tuple[str, str]] = field(default_factory=dict)
    views_received: list[tuple[str, str, Any, list[tuple[str, str, bytes]]]] = field(
        default_factory=list)
    plugin: str = "test"

    def get_state(self, key: str, default: Any = None) -> Any:
        """Return the stored value for ``key``."""
        return self.state.get(key, default)

    def get_state_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``keys`` (those that exist)."""
        return {k: self.state[k] for k in keys if k in self.state}

    def set_state(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        self.state[key] = value

    def set_state_many(self, items: dict[str, Any]) -> None:
        """Store many keys."""
        self.state.update(items)

    def delete_state(self, key: str) -> None:
        """Remove ``key``."""
        self.state.pop(key, None)

    def state_items(self, prefix: str = "") -> list[tuple[str, Any]]:
        """Keys starting with ``prefix`` and their values."""
        return sorted((k, v) for k, v in self.state.items() if k.startswith(prefix))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes in the block are kept together: when it raises, the state, flags, invitation
        records and audit records are put back as they were before it (as a rolled-back
        transaction would leave them)."""
        saved = copy.deepcopy((self.state, self.flags, self.invitation_records, self.audits))
        try:
            yield
        except BaseException:
            self.state, self.flags, self.invitation_records, self.audits = saved
            raise

    def flag_review(self, case_id: str, flag: str, detail: str = "") -> None:
        """Raise a flag on a review."""
        self.flags.setdefault(case_id, {})[flag] = detail

    def clear_flag(self, case_id: str, flag: str) -> None:
        """Clear a flag."""
        self.flags.get(case_id, {}).pop(flag, None)

    def record_invitation(
        self, case_id: str, email: str, *, status: str = "sent", detail: str = ""
    ) -> None:
        """Record an invitation (the latest status per plugin and address, as the store keeps)."""
        for record in self.invitation_records:
            if (record["case_id"], record["plugin"], record["email"].lower()) == (
                    case_id, self.plugin, email.lower()):
                record.update(status=status, detail=detail)
                return
        self.invitation_records.append(
            {"case_id": case_id, "email": email, "plugin": self.plugin, "status": status,
             "detail": detail}
        )

    def claim_invitation(self, case_id: str, email: str) -> bool:
        """Claim an address unless another plugin's live invitation holds it."""
        return not any(r["email"].lower() == email.lower() and r["plugin"] != self.plugin
                       and r["status"] != "failed" for r in self.invitations(case_id))

    def release_invitations(self, case_id: str, emails: list[str], detail: str = "") -> None:
        """Mark this plugin's invitations to ``emails`` failed."""
        wanted = {e.lower() for e in emails}
        for r in self.invitation_records:
            if (r["case_id"] == case_id and r["plugin"] == self.plugin
                    and r["email"].lower() in wanted):
                r["status"], r["detail"] = "failed", detail

    def invitations(self, case_id: str) -> list[dict[str, Any]]:
        """Invitation records for a review."""
        return [r for r in self.invitation_records if r["case_id"] == case_id]

    def set_response(self, case_id: str, email: str, response: str) -> None:
        """Store an invitee's response."""
        self.responses[(case_id, email.lower())] = response

    def add_invitee(self, case_id: str, invitee: Invitee) -> None:
        """Add an invitee, or update the one with the same role and email (as the store does;
        no router runs here)."""
        found = self.invitees.setdefault(case_id, [])
        for i, known in enumerate(found):
            if (known.role, known.email) == (invitee.role, invitee.email):
                found[i] = invitee
                return
        found.append(invitee)

    def set_meeting_link(
        self, case_id: str, *, provider: str, join_url: str | None, external_id: str | None
    ) -> None:
        """Store an online meeting link."""
        self.links[case_id] = {"provider": provider, "join_url": join_url,
                               "external_id": external_id}

    def audit(self, case_id: str | None, action: str, detail: dict[str, Any]) -> None:
        """Append an audit record."""
        self.audits.append({"case_id": case_id, "action": action, "detail": detail})

    def update_pupil(self, upn: str, fields: dict[str, Any]) -> bool:
        """Update a pupil; True when a field changed."""
        current = self.pupils.setdefault(upn, {})
        changed = any(current.get(k) != v for k, v in fields.items())
        current.update(fields)
        return changed

    def open_reviews_for_upn(self, upn: str) -> list[Review]:
        """Reviews whose case is linked to this UPN in ``pupils[upn]['case_ids']``."""
        case_ids = self.pupils.get(upn, {}).get("case_ids", [])
        return [self.reviews[c] for c in case_ids if c in self.reviews]

    def update_pupils(self, items: dict[str, dict[str, Any]]) -> dict[str, bool]:
        """Bulk update_pupil."""
        return {upn: self.update_pupil(upn, fields) for upn, fields in items.items()}

    def open_reviews_for_upns(self, upns: list[str]) -> dict[str, list[Review]]:
        """Bulk open_reviews_for_upn."""
        return {upn: self.open_reviews_for_upn(upn) for upn in upns}

    def review(self, case_id: str) -> Review | None:
        """The review of a case."""
        return self.reviews.get(case_id)

    def set_notice_status(self, reference: str, status: str, detail: str = "") -> str | None:
        """Record a notice's status by reference (kept in ``notice_statuses``)."""
        self.notice_statuses[reference] = (status, detail)
        return None

    def record_views(self, case_id: str, contributor: str, received_on: Any,
                     files: list[tuple[str, str, bytes]]) -> int:
        """Record views received (kept in ``views_received``)."""
        self.views_received.append((case_id, contributor, received_on, files))
        return len(self.views_received)

    def views(self, case_id: str) -> list[Views]:
        """The views recorded for ``case_id`` through ``record_views``."""
        return [Views(id=n, contributor=who, received=on, files=tuple(f[0] for f in files))
                for n, (case, who, on, files) in enumerate(self.views_received, 1)
                if case == case_id]


@dataclass
class FixedClock:
    """A clock that says what it is told."""

    at: datetime

    def now(self) -> datetime:
        """The fixed time."""
        return self.at


def make_context(
    plugin: str = "test",
    settings: BaseModel | None = None,
    *,
    now: datetime | None = None,
    store: MemoryPluginStore | None = None,
) -> HookContext:
    """A HookContext backed by memory, for unit tests of hook implementations."""
    return HookContext(
        plugin=plugin,
        settings=settings,
        logger=logging.getLogger(f"ehcbridge.plugins.{plugin}"),
        clock=FixedClock(now or datetime(2026, 1, 5, 9, 0, tzinfo=LONDON)),
        store=store or MemoryPluginStore(plugin=plugin),
    )


def make_event(
    hook: str = "on_review_scheduled",
    action: str = "scheduled",
    *,
    case_id: str = "EHC-0001",
    start: datetime | None = None,
    minutes: int = 60,
    online: bool = True,
    join_url: str | None = None,
    invitees: tuple[Invitee, ...] | None = None,
    sequence: int = 0,
    coordinator: str = "senco@school.example.org",
    key: str | None = None,
    **overrides: Any,
) -> LifecycleEvent:
    """A realistic LifecycleEvent with synthetic data; keyword overrides replace fields."""
    from ehcbridge import timeline  # late: timeline is a sibling module of the core

    start = start or datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)
    pupil = Pupil(upn="A123456789012", forename="Sam", surname="Example", dob=date(2014, 5, 2),
                  nc_year=7, school_urn="100001")
    plan = Plan(case_id=case_id, issued_on=date(2025, 4, 1))
    meeting = Meeting(id=1, start=start, end=start + timedelta(minutes=minutes),
                      location="Room 4, Example School" if not online else "Online",
                      online=online, join_url=join_url, organiser=coordinator, sequence=sequence)
    if invitees is None:
        invitees = (
            Invitee(role=Role.PARENT, name="Parent of S.E.", email="parent@example.net"),
            Invitee(role=Role.SETTING, name="SENCO", email=coordinator),
            Invitee(role=Role.LA_SEN_OFFICER, name="SEN caseworker", email="sen@la.example.gov.uk"),
            Invitee(role=Role.HEALTH, name="SALT team", email="salt@nhs.example.net"),
            Invitee(role=Role.SOCIAL_CARE, name="Children's social care",
                    email="csc@la.example.gov.uk"),
            Invitee(role=Role.OTHER, name="Class teacher", email="teacher@school.example.org"),
        )
    milestones = tuple(timeline.milestones(plan, meeting_start=start, pupil=pupil))
    review = Review(id=1, case_id=case_id, due_by=timeline.review_due(plan),
                    status=ReviewStatus.SCHEDULED, coordinator_email=coordinator)
    fields: dict[str, Any] = dict(
        hook=hook, action=action, idempotency_key=key or f"{case_id}:{hook}:{action}:{sequence}",
        occurred_at=start - timedelta(weeks=8), review=review, plan=plan, pupil=pupil,
        meeting=meeting, invitees=invitees, milestones=milestones,
    )
    fields.update(overrides)
    return LifecycleEvent(**fields)


@dataclass
class ContextApp:
    """Stands in for the App of a plugin command in a test: every plugin gets ``ctx``.

    ``CliRunner().invoke(command, args, obj=ContextApp(ctx))``, or monkeypatch
    ``ehcbridge.invocation.current_app`` to return it.
    """

    ctx: HookContext

    def plugin_context(self, name: str) -> HookContext:
        """The context given (whatever the plugin name)."""
        return self.ctx


@dataclass
class FakeEntryPoint:
    """Stands in for an installed entry point: a name and the object it loads."""

    name: str
    target: Any
    dist: Any = None
    group: str = "ehcbridge"

    def load(self) -> Any:
        """Return the plugin object, or raise like a broken import would."""
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


def plugin_module(name: str, **hooks: Any) -> types.ModuleType:
    """A module object carrying hook implementations, like a plugin's ``__init__.py``."""
    module = types.ModuleType(name)
    for hook_name, func in hooks.items():
        setattr(module, hook_name, func)
    return module


def make_app(store: Any, plugins: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None, now: datetime | None = None) -> Any:
    """An App on ``store`` with exactly the given plugins (installed ones are ignored)."""
    from ehcbridge.app import App
    from ehcbridge.plugins import PluginManager
    from ehcbridge.settings import load_settings

    loaded = load_settings(**(settings or {}))
    eps = [FakeEntryPoint(n, t) for n, t in (plugins or {}).items()]
    manager = PluginManager(loaded.plugins, None, entry_points=eps)  # type: ignore[arg-type]
    app = App(loaded, plugins=manager, now=now)
    app._store = store
    return app


def cli_invoker(tmp_path: Any, monkeypatch: Any, config: str, *,
                secret: str | None = None) -> Any:
    """``invoke(*args, code=0)``: the real ``ehcbridge`` command on ``config`` (written to
    ``tmp_path/ehcbridge.toml``), isolated from the caller's EHCBRIDGE_* variables and data
    folder, asserting the exit code, no traceback and (when given) that ``secret`` never shows."""
    import os

    from click.testing import CliRunner

    from ehcbridge.cli import cli

    for key in list(os.environ):
        if key.startswith("EHCBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ehcbridge.toml"
    path.write_text(config, encoding="utf-8")

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--config", str(path), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        assert secret is None or secret not in result.output
        return str(result.output)

    return invoke
