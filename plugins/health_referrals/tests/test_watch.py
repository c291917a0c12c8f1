"""Statutory watch: every reg 20(2) role invited, with at least two weeks' notice, or the review
carries a ``statutory_risk`` flag saying what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ehcbridge.events import HookContext
from ehcbridge.models import LONDON, Invitee, Role
from ehcbridge.testing import MemoryPluginStore, make_event
from ehcbridge_health_referrals import on_review_scheduled, on_views_due
from ehcbridge_health_referrals.settings import HealthReferralsSettings

Ctx = Callable[..., HookContext]
START = datetime(2026, 3, 10, 10, 0, tzinfo=LONDON)

FULL = (
    Invitee(role=Role.YOUNG_PERSON, name="Young person", email="yp@example.net"),
    Invitee(role=Role.SETTING, name="SENCO", email="senco@school.example.org"),
    Invitee(role=Role.LA_SEN_OFFICER, name="Caseworker", email="sen@la.example.gov.uk"),
    Invitee(role=Role.HEALTH, team="Bristol SALT", email="salt.bristol@nhs.net"),
    Invitee(role=Role.SOCIAL_CARE, team="Children's social care", email="csc@la.example.gov.uk"),
)


def scheduled(days_notice: int, invitees: tuple[Invitee, ...] = FULL, action: str = "scheduled",
              start: datetime = START, **overrides: object) -> object:
    """An on_review_scheduled event sent ``days_notice`` days before the meeting."""
    return make_event("on_review_scheduled", action, start=start, invitees=invitees,
                      occurred_at=start - timedelta(days=days_notice, hours=1), **overrides)


def test_two_weeks_notice_with_everyone_invited_is_not_a_risk(context: Ctx,
                                                              store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(14), ctx=context())
    assert "statutory_risk" not in store.flags.get("EHC-0001", {})


def test_short_notice_is_flagged(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(10), ctx=context())
    detail = store.flags["EHC-0001"]["statutory_risk"]
    assert detail == ("only 10 days' notice of the meeting on 10 March 2026 (notified "
                      "2026-02-28; reg 20(3) requires 14)")
    assert store.audits[-1]["action"] == "statutory_risk"


def test_missing_health_and_social_care_are_flagged(context: Ctx,
                                                    store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(30, FULL[:3]), ctx=context())
    assert store.flags["EHC-0001"]["statutory_risk"] == (
        "not invited to the meeting on 10 March 2026: a health care professional, a social care "
        "officer (reg 20(2)); invite by 2026-02-24 for two weeks' notice")


def test_parent_or_young_person_satisfies_a(context: Ctx, store: MemoryPluginStore) -> None:
    with_parent = (Invitee(role=Role.PARENT, name="Parent"), *FULL[1:])
    on_review_scheduled(event=scheduled(20, with_parent), ctx=context())
    assert "statutory_risk" not in store.flags.get("EHC-0001", {})
    on_review_scheduled(event=scheduled(20, FULL[1:]), ctx=context())
    assert "the parent or young person" in store.flags["EHC-0001"]["statutory_risk"]


def test_setting_not_required_when_the_pupil_has_no_school(context: Ctx,
                                                           store: MemoryPluginStore) -> None:
    event = make_event("on_review_scheduled", "scheduled", start=START,
                       invitees=(FULL[0], *FULL[2:]), occurred_at=START - timedelta(days=30))
    on_review_scheduled(event=event, ctx=context())
    assert "the setting" in store.flags["EHC-0001"]["statutory_risk"]
    no_school = event.model_copy(update={"pupil": event.pupil.model_copy(
        update={"school_urn": None})})
    on_review_scheduled(event=no_school, ctx=context())
    assert "statutory_risk" not in store.flags["EHC-0001"]  # reg 21: the LA runs it


def test_fixing_the_problem_clears_the_flag(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(30, FULL[:3]), ctx=context())
    assert "statutory_risk" in store.flags["EHC-0001"]
    # The invitees were added; the next check (views stage) sees them and clears the flag.
    on_views_due(event=make_event("on_views_due", "request", start=START, invitees=FULL,
                                  occurred_at=START - timedelta(weeks=6)), ctx=context())
    assert "statutory_risk" not in store.flags["EHC-0001"]
    assert store.audits[-1]["action"] != "statutory_risk"
    assert any(a["action"] == "statutory_risk_cleared" for a in store.audits)


def test_views_stage_keeps_a_short_notice_flag(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(7), ctx=context())
    on_views_due(event=make_event("on_views_due", "due", start=START, invitees=FULL,
                                  occurred_at=START - timedelta(weeks=2)), ctx=context())
    assert "only 7 days' notice" in store.flags["EHC-0001"]["statutory_risk"]


def test_a_missing_role_found_late_says_it_is_too_late(context: Ctx,
                                                       store: MemoryPluginStore) -> None:
    on_views_due(event=make_event("on_views_due", "due", start=START, invitees=FULL[:4],
                                  occurred_at=START - timedelta(days=10)), ctx=context())
    assert store.flags["EHC-0001"]["statutory_risk"].endswith(
        "a social care officer (reg 20(2)); too late for two weeks' notice")


def test_rescheduling_restarts_the_notice(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(30), ctx=context())
    later = START + timedelta(days=7)
    on_review_scheduled(event=scheduled(5, action="rescheduled", start=later, sequence=1),
                        ctx=context())
    assert store.flags["EHC-0001"]["statutory_risk"].startswith(
        "only 5 days' notice of the meeting on 17 March 2026")
    # A retried delivery of the first event must not reset the notice date of the new time.
    on_review_scheduled(event=scheduled(5, action="rescheduled", start=later, sequence=1),
                        ctx=context())
    assert "only 5 days' notice" in store.flags["EHC-0001"]["statutory_risk"]


def test_cancelling_clears_only_our_flag(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(3), ctx=context())
    on_review_scheduled(event=scheduled(3, action="cancelled"), ctx=context())
    assert "statutory_risk" not in store.flags["EHC-0001"]
    store.flag_review("EHC-0002", "statutory_risk", "raised by someone else")
    on_review_scheduled(event=scheduled(3, action="cancelled", case_id="EHC-0002"),
                        ctx=context())
    assert store.flags["EHC-0002"]["statutory_risk"] == "raised by someone else"


def test_watch_runs_without_routing_configured(context: Ctx, store: MemoryPluginStore) -> None:
    on_review_scheduled(event=scheduled(3), ctx=context(settings_=HealthReferralsSettings()))
    assert "statutory_risk" in store.flags["EHC-0001"]
