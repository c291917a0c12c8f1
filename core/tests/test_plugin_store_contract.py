"""One contract, two implementations: ``MemoryPluginStore`` must behave as the real store does.

Each test runs on the store a plugin sees in production (``App.plugin_context(...).store`` on
SQLite) and on ``ehcbridge.testing.MemoryPluginStore``, through the ``PluginStore`` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from ehcbridge.events import PluginStore
from ehcbridge.models import Invitee, Role
from ehcbridge.pytest_plugin import Harness
from ehcbridge.testing import MemoryPluginStore

CASE, UPN = "EHC-1", "A123456789012"


@dataclass
class Subject:
    """A PluginStore and how to read back what only the core shows (flags, invitees)."""

    store: PluginStore
    flags: Callable[[str], dict[str, str]]
    invitees: Callable[[str], list[tuple[str, str | None, str | None, str | None]]]


@pytest.fixture(params=["store", "memory"])
def subject(request: pytest.FixtureRequest, ehc: Harness) -> Subject:
    app = ehc.app()
    ehc.import_reviews(app, [{"case_id": CASE, "forename": "Sam", "surname": "Example",
                              "plan_issued": "2025-04-01", "upn": UPN}])
    if request.param == "store":
        def invitees(case_id: str) -> list[tuple[str, str | None, str | None, str | None]]:
            return [(i.role.value, i.email, i.name, i.response)
                    for i in ehc.store.case(case_id).invitees]

        return Subject(app.plugin_context("p").store, lambda c: ehc.store.case(c).flags,
                       invitees)
    memory = MemoryPluginStore(plugin="p")
    memory.reviews[CASE] = ehc.store.case(CASE).review
    memory.pupils[UPN] = {"case_ids": [CASE], "forename": "Sam", "surname": "Example"}

    def memory_invitees(case_id: str) -> list[tuple[str, str | None, str | None, str | None]]:
        return [(i.role.value, i.email, i.name,
                 memory.responses.get((case_id, (i.email or "").lower())))
                for i in memory.invitees.get(case_id, [])]

    return Subject(memory, lambda c: dict(memory.flags.get(c, {})), memory_invitees)


def test_state_round_trips(subject: Subject) -> None:
    s = subject.store
    assert s.get_state("missing", "default") == "default"
    s.set_state("b:1", {"n": 1})
    s.set_state_many({"a:1": [1, 2], "b:2": "two"})
    assert s.get_state("b:1") == {"n": 1}
    assert s.state_items("b:") == [("b:1", {"n": 1}), ("b:2", "two")]
    assert s.get_state_many(["b:2", "missing", "a:1", "b:2"]) == {"b:2": "two", "a:1": [1, 2]}
    assert s.get_state_many([]) == {}
    s.set_state("b:1", None)
    s.delete_state("b:2")
    assert s.state_items("b:") == [("b:1", None)]


def test_a_batch_commits_together_or_not_at_all(subject: Subject) -> None:
    s = subject.store
    with s.batch():
        s.set_state("k:1", 1)
        assert s.get_state("k:1") == 1  # its own writes are seen inside
        s.record_invitation(CASE, "a@example.net")
        s.flag_review(CASE, "sent", "1")
    assert s.get_state("k:1") == 1 and subject.flags(CASE) == {"sent": "1"}
    with pytest.raises(RuntimeError), s.batch():
        s.set_state_many({"k:1": 2, "k:2": 2})
        s.record_invitation(CASE, "b@example.net")
        s.flag_review(CASE, "sent", "2")
        raise RuntimeError("a later write failed")
    assert s.state_items("k:") == [("k:1", 1)]
    assert subject.flags(CASE) == {"sent": "1"}
    assert [r["email"] for r in s.invitations(CASE)] == ["a@example.net"]


def test_flags_are_raised_refreshed_and_cleared(subject: Subject) -> None:
    subject.store.flag_review(CASE, "late", "first")
    subject.store.flag_review(CASE, "late", "second")
    assert subject.flags(CASE) == {"late": "second"}
    subject.store.clear_flag(CASE, "late")
    subject.store.clear_flag(CASE, "never-raised")
    assert subject.flags(CASE) == {}


def test_invitations_keep_the_latest_status_per_address(subject: Subject) -> None:
    subject.store.record_invitation(CASE, "a@x.org", status="failed", detail="timeout")
    subject.store.record_invitation(CASE, "A@x.org", status="sent")
    subject.store.record_invitation(CASE, "b@x.org")
    seen = sorted((r["email"].lower(), r["plugin"], r["status"], r["detail"])
                  for r in subject.store.invitations(CASE))
    assert seen == [("a@x.org", "p", "sent", ""), ("b@x.org", "p", "sent", "")]


def test_an_invitee_is_added_once_and_updated_by_role_and_email(subject: Subject) -> None:
    subject.store.add_invitee(CASE, Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.net"))
    subject.store.add_invitee(CASE, Invitee(role=Role.HEALTH, name="SALT team",
                                            email="salt@nhs.net"))
    subject.store.set_response(CASE, "SALT@nhs.net", "accepted")
    assert subject.invitees(CASE) == [("health", "salt@nhs.net", "SALT team", "accepted")]


def test_pupil_updates_say_whether_anything_changed(subject: Subject) -> None:
    assert subject.store.update_pupil(UPN, {"forename": "Samuel"}) is True
    assert subject.store.update_pupil(UPN, {"forename": "Samuel"}) is False
    assert subject.store.update_pupils({UPN: {"surname": "Other"}}) == {UPN: True}


def test_reviews_are_found_by_case_and_upn(subject: Subject) -> None:
    review = subject.store.review(CASE)
    assert review is not None and review.case_id == CASE
    assert subject.store.review("EHC-404") is None
    assert [r.case_id for r in subject.store.open_reviews_for_upn(UPN)] == [CASE]
    assert {u: [r.case_id for r in rs]
            for u, rs in subject.store.open_reviews_for_upns([UPN]).items()} == {UPN: [CASE]}




def test_an_unknown_case_has_no_invitations(subject: Subject) -> None:
    assert subject.store.invitations("EHC-404") == []


def test_views_recorded_by_anyone_are_read_back_for_the_current_review(subject: Subject) -> None:
    from datetime import date

    s = subject.store
    assert s.views(CASE) == [] and s.views("EHC-NONE") == []
    s.record_views(CASE, "SALT.Team@nhs.example.net", date(2027, 1, 20),
                   [("salt.pdf", "application/pdf", b"%PDF-1.4")])
    s.record_views(CASE, "Ms A Parent", date(2027, 1, 21), [])
    found = s.views(CASE)
    assert [(v.contributor, v.received, v.files) for v in found] == [
        ("SALT.Team@nhs.example.net", date(2027, 1, 20), ("salt.pdf",)),
        ("Ms A Parent", date(2027, 1, 21), ())]
