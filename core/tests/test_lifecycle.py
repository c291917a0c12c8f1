"""The lifecycle as pure functions: duties, transitions and deadlines, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from ehcbridge import lifecycle as lc
from ehcbridge.models import (
    LONDON,
    Decision,
    Duty,
    DutyStatus,
    Meeting,
    MeetingStatus,
    Outcome,
    Plan,
    Pupil,
    Review,
    ReviewKind,
    ReviewStatus,
)

NOW = datetime(2026, 11, 2, 9, tzinfo=LONDON)


def state(**review: object) -> lc.ReviewState:
    fields: dict[str, object] = dict(id=7, case_id="EHC-1", due_by=date(2027, 3, 31))
    fields.update(review)
    return lc.ReviewState(review=Review(**fields),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          pupil=Pupil(forename="S", surname="E", nc_year=7))


def scheduled(start: datetime = datetime(2027, 3, 3, 10, tzinfo=LONDON)) -> lc.ReviewState:
    change = lc.schedule(state(), start=start, end=start.replace(hour=11), location=None,
                         online=False, organiser=None, now=NOW, new_meeting_id=3)
    return replace(state(status=ReviewStatus.SCHEDULED), meeting=change.meeting,
                   duties=change.duties)


def by_name(duties: tuple[Duty, ...]) -> dict[str, Duty]:
    return {d.name: d for d in duties}


def test_meet_is_met_on_time_and_late_after_the_date() -> None:
    duty = Duty(name=lc.REPORT_SENT, rule="r", kind="statutory", due=date(2027, 3, 17),
                owed_by="setting", owed_to=("parent",))
    assert lc.meet(duty, date(2027, 3, 17), "x").status == DutyStatus.MET
    late = lc.meet(duty, date(2027, 3, 18), "review report --on 2027-03-18")
    assert (late.status, late.met_on, late.evidence) == (
        DutyStatus.LATE, date(2027, 3, 18), "review report --on 2027-03-18")


def test_schedule_returns_the_event_timers_and_notice_duties_to_write() -> None:
    start = datetime(2027, 3, 3, 10, tzinfo=LONDON)
    change = lc.schedule(state(), start=start, end=start.replace(hour=11), location="Room 4",
                         online=False, organiser="senco@example.org", now=NOW, new_meeting_id=3)
    [event] = change.events
    assert (event.key, event.hook, event.action) == (
        "EHC-1/r7/m3/scheduled/0", lc.HOOK_REVIEW_SCHEDULED, "scheduled")
    assert [(t.kind, t.due_at.date()) for t in change.timers or ()] == [
        ("views_request", date(2027, 1, 20)), ("reminder", date(2027, 2, 17)),
        ("views_due", date(2027, 2, 17)), ("meeting_end", date(2027, 3, 3))]
    duties = by_name(change.duties)
    assert duties[lc.INVITATIONS_SENT].status == DutyStatus.MET
    assert duties[lc.INVITATIONS_GOOD_PRACTICE].status == DutyStatus.MET  # 17 weeks ahead
    assert duties[lc.REPORT_SENT].due == date(2027, 3, 17)
    assert change.review_status == ReviewStatus.SCHEDULED and change.warnings == ()


def test_a_meeting_after_the_review_is_due_is_accepted_late_with_a_warning_and_flag() -> None:
    start = datetime(2027, 4, 14, 10, tzinfo=LONDON)
    change = lc.schedule(state(), start=start, end=start.replace(hour=11), location=None,
                         online=False, organiser=None, now=NOW, new_meeting_id=3)
    assert by_name(change.duties)[lc.MEETING_HELD].status == DutyStatus.LATE
    assert "after the review is due (2027-03-31)" in change.warnings[0]
    assert change.flags[0][0] == lc.FLAG_MEETING_LATE  # a plan, not yet a fact
    assert by_name(change.duties)[lc.DECISION_MADE].due == date(2027, 3, 31)


def test_a_late_meeting_moved_into_time_is_pending_again_and_its_flag_clears() -> None:
    late = scheduled(datetime(2027, 4, 14, 10, tzinfo=LONDON))
    assert by_name(late.duties)[lc.MEETING_HELD].status == DutyStatus.LATE
    start = datetime(2027, 3, 3, 10, tzinfo=LONDON)
    moved = lc.reschedule(late, start=start, end=start.replace(hour=11), location=None,
                          online=False, organiser=None, now=NOW, new_meeting_id=None)
    held = by_name(moved.duties)[lc.MEETING_HELD]
    assert (held.status, held.evidence) == (DutyStatus.PENDING, None)
    assert moved.flags == () and moved.warnings == ()
    assert moved.clear_flags == (lc.FLAG_MEETING_LATE,)
    cancelled = lc.cancel(late, reason="moved school", now=NOW)
    assert by_name(cancelled.duties)[lc.MEETING_HELD].status == DutyStatus.PENDING
    assert lc.FLAG_MEETING_LATE in cancelled.clear_flags


def test_a_meeting_held_as_late_as_it_was_set_raises_deadline_late() -> None:
    short = scheduled(datetime(2026, 11, 9, 10, tzinfo=LONDON))  # a week's notice on NOW
    assert short.meeting is not None
    assert [f for f, _ in lc.schedule(
        state(), start=short.meeting.start, end=short.meeting.end, location=None, online=False,
        organiser=None, now=NOW, new_meeting_id=3).flags] == [lc.FLAG_MEETING_LATE]
    done = lc.held(replace(short, review=short.review.model_copy(
        update={"status": ReviewStatus.SCHEDULED})), action="recorded",
        now=datetime(2026, 11, 9, 12, tzinfo=LONDON))
    assert [f for f, _ in done.flags] == [lc.FLAG_LATE]
    assert "held on 2026-11-09 with less notice" in done.warnings[0]
    assert lc.FLAG_MEETING_LATE in done.clear_flags


def test_decision_before_the_meeting_is_held_or_dated_before_it_is_refused() -> None:
    s = scheduled()
    with pytest.raises(lc.LifecycleError, match="no review meeting has been held"):
        lc.decide(s, outcome=Outcome.MAINTAIN, reason="r", on=date(2027, 3, 1), now=NOW)
    held = replace(s, review=s.review.model_copy(update={"status": ReviewStatus.HELD}),
                   meeting=s.meeting.model_copy(update={"status": MeetingStatus.HELD})
                   if s.meeting else None)
    with pytest.raises(lc.LifecycleError, match="before the meeting on 2027-03-03"):
        lc.decide(held, outcome=Outcome.AMEND, reason="r", on=date(2027, 3, 2), now=NOW)
    late = lc.decide(held, outcome=Outcome.AMEND, reason="r", on=date(2027, 4, 6), now=NOW)
    assert by_name(late.duties)[lc.DECISION_MADE].status == DutyStatus.LATE
    assert late.warnings and late.next_review is not None
    assert {lc.AMENDMENTS_PROPOSED, lc.FINAL_PLAN_ISSUED} <= set(by_name(late.duties))


def test_at_risk_counts_school_days_and_missed_fires_once_per_duty() -> None:
    duty = Duty(name=lc.REPORT_SENT, rule="r", kind="statutory", due=date(2027, 3, 31),
                owed_by="setting", owed_to=())
    # Easter 2027: Good Friday 26 Mar and Easter Monday 29 Mar are not school days.
    assert lc.at_risk_from(date(2027, 3, 31), 5) == date(2027, 3, 22)
    assert lc.deadline(duty, date(2027, 3, 19)) is None
    risk, action = lc.deadline(duty, date(2027, 3, 22)) or (None, None)
    assert risk is not None and (risk.status, action) == (DutyStatus.AT_RISK, "at_risk")
    missed, action = lc.deadline(risk, date(2027, 4, 1)) or (None, None)
    assert missed is not None and (missed.status, action) == (DutyStatus.MISSED, "missed")
    assert lc.deadline(missed, date(2027, 4, 2)) is None
    changes = lc.check_deadlines([("EHC-1", 7, risk)], date(2027, 4, 1))
    [event] = changes[7].events
    assert (event.key, event.hook) == ("EHC-1/r7/deadline/report_sent/missed", lc.HOOK_DEADLINE)
    assert event.payload["duty"]["status"] == "missed"


def test_the_15_day_window_is_met_by_waiting_not_missed() -> None:
    window = Duty(name=lc.REPRESENTATIONS_WINDOW, rule="r", kind="statutory",
                  due=date(2027, 2, 13), owed_by="la", owed_to=())
    found = lc.deadline(window, date(2027, 2, 14))
    assert found is not None and found[0].status == DutyStatus.MET and found[1] is None


def test_after_a_phase_transfer_review_the_next_is_due_12_months_after_the_decision() -> None:
    s = lc.ReviewState(review=Review(id=1, case_id="EHC-6", kind=ReviewKind.PHASE_TRANSFER,
                                     due_by=date(2027, 2, 15)),
                       plan=Plan(case_id="EHC-6", issued_on=date(2024, 6, 1),
                                 last_review_decision=date(2026, 6, 1)),
                       pupil=Pupil(forename="F", surname="S", nc_year=6))
    assert lc.open_review(s.plan, s.pupil, as_of=date(2026, 9, 7)) == (
        ReviewKind.PHASE_TRANSFER, date(2027, 2, 15))
    assert lc.next_review(s, date(2026, 12, 9), as_of=date(2026, 12, 9)) == (
        ReviewKind.ANNUAL, date(2027, 12, 8))
    meeting_held = by_name(lc.duties(s, as_of=date(2026, 9, 7)))[lc.MEETING_HELD]
    assert meeting_held.due == date(2026, 11, 23)  # 15 Feb less 4 + 8 weeks


def test_under_fives_are_reviewed_within_the_configured_months() -> None:
    s = lc.ReviewState(review=Review(id=1, case_id="EHC-7", kind=ReviewKind.UNDER_FIVE,
                                     due_by=date(2027, 4, 30)),
                       plan=Plan(case_id="EHC-7", issued_on=date(2026, 5, 1)),
                       pupil=Pupil(forename="G", surname="S", dob=date(2023, 1, 10)))
    assert lc.next_review(s, date(2027, 2, 17)) == (ReviewKind.UNDER_FIVE, date(2027, 8, 16))
    three = lc.Policy(under_five_review_months=3)
    assert lc.next_review(s, date(2027, 2, 17), three) == (
        ReviewKind.UNDER_FIVE, date(2027, 5, 16))


def test_transfer_windows_follow_the_pupils_nc_year() -> None:
    year5 = Pupil(forename="F", surname="S", nc_year=5)
    assert lc.transfer_window(year5, date(2027, 2, 15), date(2025, 10, 1)) == (
        date(2026, 4, 1), date(2026, 7, 31), "the summer term of Year 5")
    year11 = Pupil(forename="F", surname="S", nc_year=11)
    assert lc.transfer_window(year11, date(2027, 3, 31), date(2026, 10, 1)) == (
        date(2026, 9, 1), date(2026, 12, 31), "the autumn term of Year 11")


def test_early_review_needs_a_reason_and_no_meeting() -> None:
    change = lc.early(state(), reason="risk of exclusion", on=date(2026, 11, 2))
    assert change.kind == ReviewKind.EARLY and change.clear_flags == (lc.FLAG_EARLY_SUGGESTED,)
    with pytest.raises(lc.LifecycleError, match="a meeting is already set"):
        lc.early(scheduled(), reason="x", on=date(2026, 11, 2))


def test_a_post16_move_dates_the_review_and_withdrawing_it_restores_the_clock() -> None:
    college = replace(state(due_by=date(2027, 3, 31)),
                      pupil=Pupil(forename="S", surname="E", nc_year=12))
    change = lc.post16_move(college, date(2027, 2, 1), today=date(2026, 11, 2))
    assert (change.kind, change.due_by) == (ReviewKind.PHASE_TRANSFER, date(2026, 9, 1))
    assert change.plan is not None and change.plan.post16_move == date(2027, 2, 1)
    transfer = by_name(change.duties)[lc.PHASE_TRANSFER_FINAL_PLAN]
    assert (transfer.due, transfer.rule) == (date(2026, 9, 1), "SEND Regs 2014 reg 18(2)")
    assert change.flags[0][0] == lc.FLAG_OVERDUE  # 1 September has passed
    moved = replace(college, plan=change.plan, review=college.review.model_copy(
        update={"kind": change.kind, "due_by": change.due_by}))
    back = lc.post16_move(moved, None, today=date(2026, 11, 2))
    assert (back.kind, back.due_by, back.flags) == (ReviewKind.ANNUAL, date(2027, 3, 31), ())
    assert back.clear_flags == (lc.FLAG_OVERDUE,)
    assert lc.PHASE_TRANSFER_FINAL_PLAN not in by_name(back.duties)
    # An early review stays early, with the move's date.
    early = replace(moved, review=moved.review.model_copy(update={"kind": ReviewKind.EARLY}))
    assert lc.post16_move(early, date(2027, 3, 1), today=date(2026, 11, 2)).kind == \
        ReviewKind.EARLY
    with pytest.raises(lc.LifecycleError, match="the pupil is in Year 7"):
        lc.post16_move(state(), date(2027, 2, 1), today=date(2026, 11, 2))
    with pytest.raises(lc.LifecycleError, match="not after the plan's current review period"):
        lc.post16_move(college, date(2026, 3, 1), today=date(2026, 11, 2))


def test_the_la_owes_every_step_of_a_review_of_a_child_at_no_setting() -> None:
    at_home = replace(scheduled(), plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1),
                                             no_setting=True))
    found = by_name(lc.duties(at_home, as_of=date(2026, 11, 2)))
    assert {d.owed_by for d in found.values()} == {lc.LA}
    assert all("setting" not in d.owed_to for d in found.values())
    assert found[lc.INVITATIONS_SENT].rule == "SEND Regs 2014 reg 21(3)"
    assert found[lc.ADVICE_CIRCULATED].rule == "SEND Regs 2014 reg 21(4)"
    assert found[lc.REPORT_SENT].rule == "SEND Regs 2014 reg 21(7)"
    assert found[lc.MEETING_HELD].rule == "SEND Regs 2014 reg 21; CFA 2014 s44(1)"
    assert found[lc.DECISION_NOTIFIED].owed_to == ("parent", "young_person")
    school = by_name(lc.duties(scheduled(), as_of=date(2026, 11, 2)))
    assert school[lc.REPORT_SENT].owed_by == lc.SETTING
    assert {n: d.due for n, d in found.items()} == {n: d.due for n, d in school.items()}


def test_cancel_starts_the_notices_again_and_cease_makes_the_transfer_plan_moot() -> None:
    s = scheduled()
    change = lc.cancel(s, reason="family asked", now=NOW)
    assert by_name(change.duties)[lc.INVITATIONS_SENT].status == DutyStatus.PENDING
    assert by_name(change.duties)[lc.INVITATIONS_SENT].due is None
    assert change.timers == () and change.review_status == ReviewStatus.DUE
    transfer = replace(s, review=s.review.model_copy(update={"kind": ReviewKind.PHASE_TRANSFER}))
    ceased = lc.decide(transfer, outcome=Outcome.CEASE, reason="moved away",
                       on=date(2027, 2, 1), now=NOW)
    assert by_name(ceased.duties)[lc.PHASE_TRANSFER_FINAL_PLAN].status == \
        DutyStatus.NOT_APPLICABLE
    assert ceased.next_review is None
    assert Decision(outcome=Outcome.CEASE, reason="moved away",
                    decided_on=date(2027, 2, 1)) == ceased.decision
    assert isinstance(s.meeting, Meeting)


def test_hook_names_are_the_hookspecs_and_the_store_names_none() -> None:
    from pathlib import Path

    from ehcbridge import hookspecs, store

    for hook in lc.LIFECYCLE_HOOKS:
        assert hasattr(getattr(hookspecs, hook), "ehcbridge_spec"), hook
    source = Path(store.__file__).read_text()
    for hook in lc.LIFECYCLE_HOOKS:
        assert hook not in source, f"store/__init__.py names {hook}"
    for fragment in ("/views/", "/decision", "/held", "/deadline/", "scheduled/", "/r{"):
        assert fragment not in source, f"store/__init__.py builds event keys ({fragment})"


def test_the_deadline_horizon_covers_every_duty_at_risk_even_across_holidays() -> None:
    summer = lc.Policy(school_holidays=((date(2027, 7, 23), date(2027, 9, 1)),))
    today = date(2027, 7, 19)
    horizon = lc.deadline_horizon(today, summer)
    assert horizon == date(2027, 9, 6)  # 3 days before the holiday, 2 after, then one more
    for offset in range(60):
        due = today + timedelta(days=offset)
        at_risk = lc.at_risk_from(due, 5, summer.school_holidays) <= today
        assert not at_risk or due <= horizon, due


def test_carried_invitees_leave_what_is_found_again_and_collapse_repeats() -> None:
    from ehcbridge.models import Invitee, Role

    parent = Invitee(role=Role.PARENT, email="p@example.net", response="declined")
    out = lc.carried_invitees([
        (parent, None), (parent.model_copy(update={"name": "Pat"}), None),
        (Invitee(role=Role.HEALTH, name="SALT", email="salt@nhs.example", source="routed"), ""),
        (Invitee(role=Role.HEALTH, email="team@nhs.example", source="routed"), None),
        (Invitee(role=Role.PARENT, email="m@example.net", source="mis"), None)])
    assert [(i.role, i.name, i.email, i.source, i.response) for i in out] == [
        (Role.PARENT, None, "p@example.net", "manual", None),
        (Role.HEALTH, "SALT", None, "carried", None)]


@pytest.mark.parametrize(("nc_year", "already", "expected"), [
    (8, False, True),   # Year 8 now: the next review is in Year 9 (reg 20(6))
    (7, False, False),  # Year 8 next time: not yet
    (None, False, False),
    (None, True, True),  # once preparing for adulthood, always
])
def test_the_next_review_covers_preparing_for_adulthood_from_year_9(
        nc_year: int | None, already: bool, expected: bool) -> None:
    s = scheduled()
    held = replace(s, review=s.review.model_copy(update={
        "status": ReviewStatus.HELD, "preparing_for_adulthood": already}),
        meeting=s.meeting.model_copy(update={"status": MeetingStatus.HELD}) if s.meeting else None,
        pupil=s.pupil.model_copy(update={"nc_year": nc_year}))
    change = lc.decide(held, outcome=Outcome.MAINTAIN, reason="r", on=date(2027, 3, 10),
                       now=datetime(2027, 3, 10, 9, tzinfo=LONDON))
    assert change.next_review is not None
    assert change.next_review.preparing_for_adulthood is expected


def test_maintaining_a_phase_transfer_plan_is_warned_at_the_decision() -> None:
    s = scheduled()
    held = replace(s, review=s.review.model_copy(update={
        "status": ReviewStatus.HELD, "kind": ReviewKind.PHASE_TRANSFER}),
        meeting=s.meeting.model_copy(update={"status": MeetingStatus.HELD}) if s.meeting else None)
    kept = lc.decide(held, outcome=Outcome.MAINTAIN, reason="r", on=date(2027, 3, 10), now=NOW)
    [warning] = [w for w in kept.warnings if lc.PHASE_TRANSFER_FINAL_PLAN in w]
    assert "amended to name the next setting" in warning and "recorded missed" in warning
    assert by_name(kept.duties)[lc.PHASE_TRANSFER_FINAL_PLAN].status == DutyStatus.PENDING
    amended = lc.decide(held, outcome=Outcome.AMEND, reason="r", on=date(2027, 3, 10), now=NOW)
    assert not any(lc.PHASE_TRANSFER_FINAL_PLAN in w for w in amended.warnings)


def test_every_duty_a_person_records_names_a_review_command_that_exists() -> None:
    from ehcbridge.cli import review_group as review

    for spec in lc.SPECS:
        command = lc.record_command(spec.name, "EHC-1")
        if spec.automatic or spec.silent or spec.window:
            assert command is None, spec.name
            continue
        assert command is not None, spec.name
        verb = command.split()[2]
        assert verb in review.commands, (spec.name, verb)
        assert "EHC-1" in command


def test_to_act_on_keeps_the_current_review_and_the_decisions_follow_up_only() -> None:
    def duty(name: str) -> Duty:
        return Duty(name=name, rule="r", kind="statutory", due=date(2027, 1, 1),
                    owed_by="la", owed_to=("parent",), status=DutyStatus.MISSED)

    rows = [("EHC-1", 1, duty(lc.REPORT_SENT)), ("EHC-1", 1, duty(lc.FINAL_PLAN_ISSUED)),
            ("EHC-1", 2, duty(lc.REPORT_SENT)), ("EHC-1", 3, duty(lc.MEETING_HELD)),
            ("EHC-1", 2, duty(lc.FINAL_PLAN_ISSUED))]
    kept = lc.to_act_on(rows, {"EHC-1": 3})
    assert [(r, d.name) for _, r, d in kept] == [(3, lc.MEETING_HELD),
                                                 (2, lc.FINAL_PLAN_ISSUED)]


def test_after_a_phase_transfer_the_setting_left_behind_is_not_carried() -> None:
    from ehcbridge.models import Invitee, Role

    people = [(Invitee(role=Role.SETTING, email="senco@primary.example.org"), None),
              (Invitee(role=Role.PARENT, email="p@example.net"), None)]
    assert [i.role for i in lc.carried_invitees(people)] == [Role.SETTING, Role.PARENT]
    assert [i.role for i in lc.carried_invitees(people, moving_on=True)] == [Role.PARENT]


def test_a_removal_keeps_out_both_addresses_of_a_routed_professional() -> None:
    from ehcbridge.models import Invitee, Role

    routed = Invitee(role=Role.HEALTH, email="SALT@nhs.example", team="SALT", source="routed")
    by_letter = Invitee(role=Role.PARENT, name="Gran", address="1 Old Road")
    marks = lc.kept_out([(routed, "Dr.Salt@nhs.example"), (by_letter, None)])
    assert marks == {"salt@nhs.example": {"role": "health", "with": "dr.salt@nhs.example"},
                     "dr.salt@nhs.example": {"role": "health", "with": "salt@nhs.example"}}
    assert not lc.still_welcome(Invitee(role=Role.HEALTH, email=" dr.salt@NHS.example"),
                                       marks)
    assert lc.still_welcome(by_letter, marks)  # no address to keep out
    assert lc.lifted("Dr.Salt@nhs.example", marks) == ["dr.salt@nhs.example",
                                                              "salt@nhs.example"]
    assert lc.lifted("someone@else.example", marks) == []
