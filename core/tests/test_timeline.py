"""The statutory clock, checked to the day against the rules in docs/timeline.md."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from ehcbridge.models import LONDON, Decision, Milestone, Outcome, Plan, Pupil
from ehcbridge.testing import make_event
from ehcbridge.timeline import (
    ClockOptions,
    add_months,
    date_warnings,
    is_school_day,
    milestones,
    milestones_json,
    preparing_for_adulthood,
    review_due,
)
from pydantic import ValidationError


def plan(issued: date, last: date | None = None) -> Plan:
    return Plan(case_id="EHC-1", issued_on=issued, last_review_decision=last)


def pupil(nc_year: int | None = 7, dob: date | None = date(2014, 5, 2)) -> Pupil:
    return Pupil(forename="Sam", surname="Example", nc_year=nc_year, dob=dob)


def by_name(items: list[Milestone]) -> dict[str, Milestone]:
    return {m.name: m for m in items}


# --- review due (CFA 2014 s44(1)) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("issued", "due"),
    [
        (date(2024, 2, 29), date(2025, 2, 27)),  # 29 Feb + 12 months is 28 Feb, minus a day
        (date(2025, 1, 31), date(2026, 1, 30)),
        (date(2025, 4, 1), date(2026, 3, 31)),
        (date(2025, 3, 1), date(2026, 2, 28)),
        (date(2023, 3, 1), date(2024, 2, 29)),  # the period ends on a leap day
        (date(2025, 12, 31), date(2026, 12, 30)),
        (date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_first_review_due_is_last_day_of_12_month_period(issued: date, due: date) -> None:
    assert review_due(plan(issued)) == due


def test_later_review_runs_from_last_review_decision_not_issue_date() -> None:
    assert review_due(plan(date(2023, 9, 4), last=date(2025, 6, 20))) == date(2026, 6, 19)
    assert review_due(plan(date(2020, 1, 1), last=date(2024, 2, 29))) == date(2025, 2, 27)


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2025, 8, 31), 3) == date(2025, 11, 30)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert add_months(date(2025, 10, 15), 6) == date(2026, 4, 15)


# --- milestones with a meeting ----------------------------------------------------------------


def test_milestones_of_a_scheduled_meeting_to_the_day_with_rules() -> None:
    items = milestones(plan(date(2025, 4, 1)), meeting_start=datetime(2026, 2, 10, 10, 0,
                       tzinfo=LONDON), pupil=pupil())
    table = [(m.name, m.date, m.kind, m.rule) for m in items]
    assert table == [
        ("invites_good_practice", date(2025, 10, 21), "good_practice", "Council guidance"),
        ("views_request", date(2025, 12, 30), "good_practice", "Council guidance"),
        ("invites_statutory", date(2026, 1, 27), "statutory", "SEND Regs 2014 reg 20(3)"),
        ("reminder", date(2026, 1, 27), "good_practice", "Council guidance"),
        ("views_due", date(2026, 1, 27), "statutory", "SEND Regs 2014 reg 20(4)"),
        ("report_due", date(2026, 2, 24), "statutory", "SEND Regs 2014 reg 20(7)"),
        ("meeting_latest", date(2026, 3, 3), "statutory", "SEND Regs 2014 reg 20(10)"),
        ("decision_due", date(2026, 3, 10), "statutory", "SEND Regs 2014 reg 20(10)"),
        ("review_due", date(2026, 3, 31), "statutory", "CFA 2014 s44(1)"),
    ]
    assert all(m.warnings == () for m in items)  # all Tuesdays in term


def test_without_meeting_only_review_due_and_meeting_latest() -> None:
    items = milestones(plan(date(2025, 4, 1)))
    assert [(m.name, m.date) for m in items] == [
        ("meeting_latest", date(2026, 3, 3)),
        ("review_due", date(2026, 3, 31)),
    ]


def test_meeting_as_plain_date_and_utc_datetime_use_the_london_day() -> None:
    as_date = by_name(milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 6, 10)))
    # 23:30 UTC on 9 June is 00:30 BST on 10 June: the London day counts.
    late_utc = datetime(2026, 6, 9, 23, 30, tzinfo=UTC)
    as_utc = by_name(milestones(plan(date(2025, 6, 1)), meeting_start=late_utc))
    assert as_date["report_due"].date == date(2026, 6, 24)
    assert as_utc["report_due"].date == date(2026, 6, 24)


def test_decision_due_is_capped_at_review_due() -> None:
    items = by_name(milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 3, 20)))
    assert items["decision_due"].date == date(2026, 3, 31)  # not 17 April
    assert items["report_due"].date == date(2026, 4, 3)
    assert items["decision_due"].warnings == ()


def test_meeting_after_review_due_is_flagged_on_decision_due() -> None:
    items = by_name(milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 4, 14)))
    assert items["decision_due"].date == date(2026, 3, 31)
    assert "the meeting is after the review due date" in items["decision_due"].warnings


def test_amend_decision_adds_representations_and_final_plan() -> None:
    decision = Decision(outcome=Outcome.AMEND, reason="needs changed", decided_on=date(2026, 3, 2))
    items = by_name(milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 2, 10),
                               decision=decision))
    assert items["representations_due"].date == date(2026, 3, 17)
    assert items["representations_due"].rule == "SEND Regs 2014 reg 22(2)"
    assert items["final_amended_plan_due"].date == date(2026, 4, 27)
    assert items["final_amended_plan_due"].rule == "SEND Regs 2014 reg 22(3)"
    assert items["final_amended_plan_due"].kind == "statutory"


@pytest.mark.parametrize("outcome", [Outcome.MAINTAIN, Outcome.CEASE])
def test_no_amendment_milestones_unless_amending(outcome: Outcome) -> None:
    decision = Decision(outcome=outcome, reason="r", decided_on=date(2026, 3, 2))
    names = {m.name for m in milestones(plan(date(2025, 4, 1)), decision=decision)}
    assert "representations_due" not in names
    assert "final_amended_plan_due" not in names


def test_milestones_sorted_by_date_then_name() -> None:
    decision = Decision(outcome=Outcome.AMEND, reason="r", decided_on=date(2026, 2, 24))
    items = milestones(plan(date(2025, 9, 10)), meeting_start=date(2026, 1, 27),
                       pupil=pupil(nc_year=6, dob=date(2021, 12, 1)), decision=decision)
    keys = [(m.date, m.name) for m in items]
    assert keys == sorted(keys)
    assert len({m.name for m in items}) == len(items)


# --- phase transfer (reg 18) ------------------------------------------------------------------


def test_year_6_transfer_brings_review_due_forward_to_15_february() -> None:
    p, child = plan(date(2025, 9, 10)), pupil(nc_year=6)
    assert review_due(p, child) == date(2026, 2, 15)
    items = by_name(milestones(p, pupil=child))
    assert items["phase_transfer_deadline"].date == date(2026, 2, 15)
    assert items["phase_transfer_deadline"].rule == "SEND Regs 2014 reg 18(1)(b)"
    assert items["phase_transfer_deadline"].kind == "statutory"
    assert items["review_due"].date == date(2026, 2, 15)
    # room for the decision (4 weeks) and the amended plan (8 weeks) before 15 Feb
    assert items["meeting_latest"].date == date(2025, 11, 23)
    assert items["review_due"].warnings == ("falls on a Sunday",)


def test_year_11_transfer_to_post_16_is_31_march() -> None:
    p, child = plan(date(2025, 6, 2)), pupil(nc_year=11)
    # Year 11 in 2024/25 (the academic year of the period start): transfer deadline 31 Mar 2025
    # is before the period started, so it has passed and no longer applies.
    assert "phase_transfer_deadline" not in by_name(milestones(p, pupil=child))
    assert review_due(p, child) == date(2026, 6, 1)
    # Year 11 in 2025/26: 31 March 2026 is inside the period and before the annual date.
    items = by_name(milestones(p, pupil=child, as_of=date(2025, 10, 1)))
    assert items["phase_transfer_deadline"].date == date(2026, 3, 31)
    assert items["phase_transfer_deadline"].rule == "SEND Regs 2014 reg 18(1)(a)"
    assert review_due(p, child, as_of=date(2025, 10, 1)) == date(2026, 3, 31)


def test_transfer_at_end_of_next_academic_year_is_found_from_period_start() -> None:
    # Year 5 when the period starts (Mar 2025) -> Year 6 in 2025/26 -> deadline 15 Feb 2026.
    assert review_due(plan(date(2025, 3, 1)), pupil(nc_year=5)) == date(2026, 2, 15)


def test_transfer_after_review_due_is_shown_but_does_not_move_due_date() -> None:
    p, child = plan(date(2024, 12, 1)), pupil(nc_year=6)
    items = by_name(milestones(p, pupil=child, as_of=date(2025, 10, 1)))
    assert items["phase_transfer_deadline"].date == date(2026, 2, 15)
    assert items["review_due"].date == date(2025, 11, 30)


def test_year_2_is_a_transfer_only_at_an_infant_school() -> None:
    p, child = plan(date(2025, 9, 10)), pupil(nc_year=2, dob=date(2018, 10, 1))
    assert "phase_transfer_deadline" not in by_name(milestones(p, pupil=child))
    infant = ClockOptions(infant_school=True)
    items = by_name(milestones(p, pupil=child, options=infant))
    assert items["phase_transfer_deadline"].date == date(2026, 2, 15)
    assert review_due(p, child, infant) == date(2026, 2, 15)


def test_three_tier_areas_add_transfer_years() -> None:
    options = ClockOptions(phase_transfer_years=(4, 8))
    assert review_due(plan(date(2025, 9, 10)), pupil(nc_year=4), options) == date(2026, 2, 15)
    assert review_due(plan(date(2025, 9, 10)), pupil(nc_year=4)) == date(2026, 9, 9)


def test_transfer_deadline_override_wins() -> None:
    options = ClockOptions(transfer_deadline=date(2026, 1, 9))
    p = plan(date(2025, 9, 10))
    assert review_due(p, pupil(nc_year=6), options) == date(2026, 1, 9)
    assert review_due(p, pupil(nc_year=None), options) == date(2026, 1, 9)
    item = by_name(milestones(p, pupil=pupil(nc_year=6), options=options))
    assert item["phase_transfer_deadline"].date == date(2026, 1, 9)
    assert "reg 18" in item["phase_transfer_deadline"].rule


def test_post16_move_is_prepared_for_five_months_before_it() -> None:
    # Year 12 at one college, moving to another on 11 January 2027 (reg 18(2)).
    p = plan(date(2026, 3, 20)).model_copy(update={"post16_move": date(2027, 1, 11)})
    items = by_name(milestones(p, pupil=pupil(nc_year=12), as_of=date(2026, 10, 1)))
    assert items["phase_transfer_deadline"].date == date(2026, 8, 11)
    assert items["phase_transfer_deadline"].rule == "SEND Regs 2014 reg 18(2)"
    assert items["review_due"].date == date(2026, 8, 11)  # not 19 March 2027
    # decision 8 weeks before, meeting 4 weeks before that: room for the amended plan
    assert items["meeting_latest"].date == date(2026, 5, 19)
    # without an NC year (not following the NC) the move still counts
    assert review_due(p, pupil(nc_year=None)) == date(2026, 8, 11)
    # 31 August: 5 months before 31 January, clamped to the month's end
    assert add_months(date(2027, 1, 31), -5) == date(2026, 8, 31)


def test_post16_move_after_the_annual_date_does_not_move_it() -> None:
    p = plan(date(2026, 3, 20)).model_copy(update={"post16_move": date(2027, 9, 6)})
    items = by_name(milestones(p, pupil=pupil(nc_year=12), as_of=date(2026, 10, 1)))
    assert items["phase_transfer_deadline"].date == date(2027, 4, 6)
    assert items["review_due"].date == date(2027, 3, 19)


def test_post16_move_prepared_for_in_an_earlier_period_is_not_this_ones() -> None:
    # The move's deadline came before this period began: the last review dealt with it.
    p = plan(date(2025, 3, 1), last=date(2026, 2, 2)).model_copy(
        update={"post16_move": date(2026, 6, 1)})
    assert "phase_transfer_deadline" not in by_name(milestones(p, pupil=pupil(nc_year=13)))
    assert review_due(p, pupil(nc_year=13)) == date(2027, 2, 1)


def test_a_review_the_la_arranges_cites_reg_21() -> None:
    # No school or college (reg 21): the same dates, the LA's own paragraphs.
    at_home = plan(date(2025, 9, 10)).model_copy(update={"no_setting": True})
    meeting = datetime(2026, 6, 10, 10, tzinfo=LONDON)
    rules = {m.name: m.rule for m in milestones(at_home, meeting_start=meeting, pupil=pupil())}
    dates = {m.name: m.date for m in milestones(at_home, meeting_start=meeting, pupil=pupil())}
    assert rules["invites_statutory"] == "SEND Regs 2014 reg 21(3)"
    assert rules["views_due"] == "SEND Regs 2014 reg 21(4)"
    assert rules["report_due"] == "SEND Regs 2014 reg 21(7)"
    assert rules["decision_due"] == "SEND Regs 2014 reg 21"
    assert rules["review_due"] == "CFA 2014 s44(1)"
    assert dates == {m.name: m.date for m in milestones(
        plan(date(2025, 9, 10)), meeting_start=meeting, pupil=pupil())}


def test_no_transfer_without_nc_year() -> None:
    names = {m.name for m in milestones(plan(date(2025, 9, 10)), pupil=pupil(nc_year=None))}
    assert "phase_transfer_deadline" not in names


# --- under fives (CoP 9.178) ------------------------------------------------------------------


def test_under_five_gets_interim_reviews_3_and_6_months_after_meeting() -> None:
    items = by_name(milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 2, 10),
                               pupil=pupil(nc_year=None, dob=date(2021, 6, 1))))
    assert items["under_five_interim_3m"].date == date(2026, 5, 10)
    assert items["under_five_interim_6m"].date == date(2026, 8, 10)
    assert items["under_five_interim_3m"].rule == "SEND Code of Practice 9.178"
    assert items["under_five_interim_6m"].kind == "good_practice"
    assert items["under_five_interim_3m"].warnings == ("falls on a Sunday",)


def test_five_on_the_meeting_day_gets_no_interim_reviews() -> None:
    names = {m.name for m in milestones(plan(date(2025, 4, 1)), meeting_start=date(2026, 2, 10),
                                        pupil=pupil(nc_year=0, dob=date(2021, 2, 10)))}
    assert not {"under_five_interim_3m", "under_five_interim_6m"} & names


def test_under_five_without_meeting_checks_as_of_and_counts_from_period_start() -> None:
    p, child = plan(date(2025, 8, 31)), pupil(nc_year=None, dob=date(2021, 1, 15))
    items = by_name(milestones(p, pupil=child))
    assert items["under_five_interim_3m"].date == date(2025, 11, 30)
    assert items["under_five_interim_6m"].date == date(2026, 2, 28)
    assert "under_five_interim_3m" not in by_name(milestones(p, pupil=child,
                                                             as_of=date(2026, 1, 15)))


def test_leap_day_birthday_turns_five_on_1_march() -> None:
    child = pupil(nc_year=None, dob=date(2020, 2, 29))
    on_28 = by_name(milestones(plan(date(2024, 6, 3)), meeting_start=date(2025, 2, 28),
                               pupil=child))
    on_1 = by_name(milestones(plan(date(2024, 6, 3)), meeting_start=date(2025, 3, 1),
                              pupil=child))
    assert "under_five_interim_3m" in on_28
    assert "under_five_interim_3m" not in on_1


def test_preparing_for_adulthood_from_year_9() -> None:
    assert preparing_for_adulthood(pupil(nc_year=9))
    assert preparing_for_adulthood(pupil(nc_year=13))
    assert not preparing_for_adulthood(pupil(nc_year=8))
    assert not preparing_for_adulthood(pupil(nc_year=None))


# --- warnings ---------------------------------------------------------------------------------


def test_bank_holiday_and_weekend_warnings() -> None:
    assert date_warnings(date(2026, 12, 25)) == ("falls on a bank holiday: Christmas Day",)
    assert date_warnings(date(2026, 8, 31)) == (
        "falls on a bank holiday: Late Summer Bank Holiday",
    )
    assert date_warnings(date(2026, 12, 26)) == (
        "falls on a Saturday", "falls on a bank holiday: Boxing Day",
    )
    assert date_warnings(date(2026, 3, 8)) == ("falls on a Sunday",)
    assert date_warnings(date(2026, 3, 10)) == ()


def test_school_holiday_warning_and_school_days() -> None:
    options = ClockOptions(school_holidays=((date(2026, 10, 26), date(2026, 10, 30)),))
    assert date_warnings(date(2026, 10, 30), options) == ("falls in a school holiday",)
    assert date_warnings(date(2026, 10, 25), options) == ("falls on a Sunday",)
    assert not is_school_day(date(2026, 10, 26), options)
    assert is_school_day(date(2026, 10, 26))
    assert is_school_day(date(2026, 11, 2), options)
    assert not is_school_day(date(2026, 12, 28))  # Boxing Day (observed)
    assert not is_school_day(date(2026, 3, 7))


def test_milestone_dates_are_never_moved_only_warned() -> None:
    # Issued 26 Dec 2025: the 12-month period ends on Christmas Day 2026.
    options = ClockOptions(school_holidays=((date(2026, 12, 19), date(2027, 1, 4)),))
    items = by_name(milestones(plan(date(2025, 12, 26)), options=options))
    assert items["review_due"].date == date(2026, 12, 25)
    assert items["review_due"].warnings == (
        "falls on a bank holiday: Christmas Day", "falls in a school holiday",
    )
    assert items["meeting_latest"].date == date(2026, 11, 27)
    assert items["meeting_latest"].warnings == ()
    # Milestones are reused across plans; other school holidays must not leak into them.
    plain = by_name(milestones(plan(date(2025, 12, 26))))
    assert plain["review_due"].warnings == ("falls on a bank holiday: Christmas Day",)
    other = ClockOptions(school_holidays=((date(2026, 11, 23), date(2026, 11, 27)),))
    moved = by_name(milestones(plan(date(2025, 12, 26)), options=other))
    assert moved["review_due"].warnings == ("falls on a bank holiday: Christmas Day",)
    assert moved["meeting_latest"].warnings == ("falls in a school holiday",)


def test_school_holiday_ranges_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"school_holidays\[1\].*before first day"):
        ClockOptions(school_holidays=((date(2026, 2, 16), date(2026, 2, 20)),
                                      (date(2026, 4, 10), date(2026, 3, 30))))
    with pytest.raises(ValidationError):
        ClockOptions(unknown=True)  # type: ignore[call-arg]


# --- shapes other parts rely on ---------------------------------------------------------------


def test_json_shape_for_the_cli() -> None:
    items = milestones(plan(date(2025, 12, 26)))
    data = json.loads(json.dumps(milestones_json(items)))
    assert data[-1] == {"name": "review_due", "date": "2026-12-25", "kind": "statutory",
                        "rule": "CFA 2014 s44(1)",
                        "warnings": ["falls on a bank holiday: Christmas Day"]}
    assert [set(row) for row in data] == [{"name", "date", "kind", "rule", "warnings"}] * 2


def test_make_event_carries_clock_milestones() -> None:
    event = make_event(start=datetime(2026, 3, 10, 10, 0, tzinfo=LONDON))
    assert event.review.due_by == date(2026, 3, 31)
    views_due = event.milestone("views_due")
    assert views_due is not None and views_due.date == date(2026, 2, 24)
    decision_due = event.milestone("decision_due")
    assert decision_due is not None and decision_due.date == date(2026, 3, 31)
