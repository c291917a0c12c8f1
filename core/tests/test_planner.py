"""The meeting planner: windows, school days, capacity, alignment, overdue and explanations."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta

import pytest
from ehcbridge.events import DateConstraint
from ehcbridge.models import LONDON
from ehcbridge.planner import (
    PlannerOptions,
    PlanningItem,
    PlanResult,
    Proposal,
    propose,
)
from ehcbridge.timeline import ClockOptions, is_school_day
from pydantic import ValidationError

TODAY = date(2027, 1, 4)  # a Monday; the earliest lawful meeting is Monday 18 Jan 2027
CO = "senco@school.example.org"


def item(
    case_id: str,
    latest: date,
    *constraints: DateConstraint,
    coordinator: str | None = CO,
) -> PlanningItem:
    return PlanningItem(case_id=case_id, coordinator=coordinator,
                        review_due=latest + timedelta(weeks=4), meeting_latest=latest,
                        constraints=constraints)


def only(result: PlanResult) -> Proposal:
    assert len(result.proposals) == 1, result
    return result.proposals[0]


def prefer(day: date | datetime, reason: str = "CLA review", weight: float = 1.0) -> DateConstraint:
    return DateConstraint(day=day, reason=reason, weight=weight)


def block(day: date, reason: str = "SENCO on a course") -> DateConstraint:
    return DateConstraint(day=day, reason=reason, weight=0, blocked=True)


# --- choosing the day -------------------------------------------------------------------------


def test_meeting_on_the_deadline_when_it_is_a_school_day() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 3, 4))], today=TODAY))
    assert proposal.start == datetime(2027, 3, 4, 9, 30, tzinfo=LONDON)
    assert proposal.end == datetime(2027, 3, 4, 10, 30, tzinfo=LONDON)
    assert proposal.reason == "on the deadline 2027-03-04, the latest day possible"
    assert proposal.aligned_with is None
    assert proposal.coordinator == CO


def test_deadline_on_a_saturday_moves_back_to_friday() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 3, 6))], today=TODAY))
    assert proposal.start.date() == date(2027, 3, 5)
    assert proposal.reason == "latest free school day before the deadline 2027-03-06"


def test_bank_holidays_and_school_holidays_are_skipped() -> None:
    # Easter Monday 29 Mar 2027 and Good Friday 26 Mar 2027.
    assert only(propose([item("E", date(2027, 3, 29))], today=TODAY)).start.date() == date(
        2027, 3, 25)
    options = PlannerOptions(school_holidays=((date(2027, 2, 15), date(2027, 2, 19)),))
    proposal = only(propose([item("H", date(2027, 2, 17))], today=TODAY, options=options))
    assert proposal.start.date() == date(2027, 2, 12)


def test_times_are_london_aware_in_summer_time() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 4, 6))], today=TODAY))
    assert proposal.start.tzinfo is LONDON
    assert proposal.start.utcoffset() == timedelta(hours=1)
    assert proposal.start.time() == time(9, 30)


# --- capacity ---------------------------------------------------------------------------------


def test_booked_meetings_fill_the_day_and_push_to_the_day_before() -> None:
    result = propose([item("EHC-1", date(2027, 3, 4))], today=TODAY,
                     booked={(CO, date(2027, 3, 4)): 3})
    assert only(result).start.date() == date(2027, 3, 3)


def test_later_meetings_of_the_same_coordinator_take_later_slots() -> None:
    result = propose([item("EHC-1", date(2027, 3, 4))], today=TODAY,
                     booked={(CO, date(2027, 3, 4)): 2})
    proposal = only(result)
    assert proposal.start == datetime(2027, 3, 4, 12, 0, tzinfo=LONDON)  # 09:30 + 2 x 75 min
    assert proposal.end == datetime(2027, 3, 4, 13, 0, tzinfo=LONDON)


def test_daily_maximum_per_coordinator_and_coordinators_are_independent() -> None:
    items = [item(f"A{i}", date(2027, 3, 4)) for i in range(4)]
    items += [item(f"B{i}", date(2027, 3, 4), coordinator="other@school.example.org")
              for i in range(3)]
    result = propose(items, today=TODAY)
    days = Counter((p.coordinator, p.start.date()) for p in result.proposals)
    assert days == {(CO, date(2027, 3, 4)): 3, (CO, date(2027, 3, 3)): 1,
                    ("other@school.example.org", date(2027, 3, 4)): 3}
    starts = sorted(p.start.time() for p in result.proposals
                    if p.coordinator == CO and p.start.date() == date(2027, 3, 4))
    assert starts == [time(9, 30), time(10, 45), time(12, 0)]


def test_items_without_coordinator_share_one_diary() -> None:
    items = [item(f"U{i}", date(2027, 3, 4), coordinator=None) for i in range(4)]
    result = propose(items, today=TODAY, booked={(None, date(2027, 3, 3)): 3})
    assert Counter(p.start.date() for p in result.proposals) == {
        date(2027, 3, 4): 3, date(2027, 3, 2): 1}


# --- alignment with preferred dates -----------------------------------------------------------


def test_aligned_with_a_preferred_date_inside_the_window() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 3, 18), prefer(date(2027, 3, 12)))],
                            today=TODAY))
    assert proposal.start == datetime(2027, 3, 12, 9, 30, tzinfo=LONDON)
    assert proposal.reason == "aligned with CLA review on 12 Mar 2027"
    assert proposal.aligned_with == "CLA review"


def test_preferred_saturday_moves_to_the_day_before() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 3, 18), prefer(date(2027, 3, 13)))],
                            today=TODAY))
    assert proposal.start.date() == date(2027, 3, 12)
    assert proposal.reason == ("the day before CLA review on 13 Mar 2027 "
                               "(13 Mar 2027 falls on a Saturday)")
    assert proposal.aligned_with == "CLA review"


def test_preferred_bank_holiday_monday_moves_to_the_day_after() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 4, 10), prefer(date(2027, 3, 29)))],
                            today=TODAY))
    assert proposal.start.date() == date(2027, 3, 30)
    assert proposal.reason.startswith("the day after CLA review on 29 Mar 2027 (29 Mar 2027 "
                                      "falls on a bank holiday: Easter Monday")


def test_fully_booked_preferred_day_uses_neighbour() -> None:
    result = propose([item("EHC-1", date(2027, 3, 18), prefer(date(2027, 3, 10)))],
                     today=TODAY, booked={(CO, date(2027, 3, 10)): 3})
    proposal = only(result)
    assert proposal.start.date() == date(2027, 3, 9)
    assert "the coordinator already has 3 meetings on 10 Mar 2027" in proposal.reason


def test_preferred_date_outside_the_window_is_ignored() -> None:
    late = only(propose([item("L", date(2027, 3, 4), prefer(date(2027, 3, 5)))], today=TODAY))
    early = only(propose([item("E", date(2027, 3, 4), prefer(date(2027, 1, 15)))], today=TODAY))
    for proposal in (late, early):
        assert proposal.start.date() == date(2027, 3, 4)
        assert proposal.aligned_with is None


def test_heaviest_preference_wins_and_datetimes_are_accepted() -> None:
    constraints = (prefer(date(2027, 2, 3), "CIN review", 1.0),
                   prefer(datetime(2027, 2, 10, 14, 0, tzinfo=LONDON), "CLA review", 2.0))
    proposal = only(propose([item("EHC-1", date(2027, 3, 4), *constraints)], today=TODAY))
    assert proposal.start.date() == date(2027, 2, 10)
    assert proposal.aligned_with == "CLA review"


def test_no_free_day_near_preference_falls_back_to_latest_day() -> None:
    wanted = date(2027, 2, 10)
    booked = {(CO, wanted + timedelta(days=d)): 3 for d in range(-3, 4)}
    proposal = only(propose([item("EHC-1", date(2027, 3, 4), prefer(wanted))], today=TODAY,
                            booked=booked))
    assert proposal.start.date() == date(2027, 3, 4)
    assert proposal.aligned_with is None
    assert "no free school day near the preferred dates" in proposal.reason


# --- blocked dates ----------------------------------------------------------------------------


def test_blocked_dates_are_avoided() -> None:
    result = propose([item("EHC-1", date(2027, 3, 4), block(date(2027, 3, 4)),
                           block(date(2027, 3, 3)))], today=TODAY)
    assert only(result).start.date() == date(2027, 3, 2)


def test_blocked_wins_over_preferred_on_the_same_day() -> None:
    day = date(2027, 3, 2)
    result = propose([item("EHC-1", date(2027, 3, 4), prefer(day), block(day))], today=TODAY)
    assert only(result).start.date() == date(2027, 3, 1)
    assert only(result).reason == ("the day before CLA review on 2 Mar 2027 "
                                   "(2 Mar 2027 is blocked: SENCO on a course)")


def test_blocked_neighbour_explained() -> None:
    day = date(2027, 3, 2)
    result = propose([item("EHC-1", date(2027, 3, 18), prefer(day))], today=TODAY,
                     booked={(CO, day): 3})
    assert only(result).start.date() == date(2027, 3, 1)
    result = propose([item("EHC-1", date(2027, 3, 18), prefer(day), block(day - timedelta(1)))],
                     today=TODAY, booked={(CO, day): 3})
    assert only(result).start.date() == date(2027, 3, 3)
    assert only(result).reason.startswith("the day after CLA review on 2 Mar 2027")


# --- overdue and unplannable ------------------------------------------------------------------


def test_overdue_listed_most_overdue_first_with_days() -> None:
    items = [item("SOON", date(2027, 1, 10)), item("LATE", date(2026, 12, 20)),
             item("OK", date(2027, 3, 4)), item("JUST", date(2027, 1, 1)),
             item("EDGE", date(2027, 1, 17))]
    result = propose(items, today=TODAY)
    assert [(o.case_id, o.days_overdue) for o in result.overdue] == [
        ("LATE", 15), ("JUST", 3), ("SOON", 0), ("EDGE", 0)]
    assert "2027-01-18" in result.overdue[0].reason
    assert [p.case_id for p in result.proposals] == ["OK"]


def test_first_lawful_day_is_exactly_two_weeks_ahead() -> None:
    proposal = only(propose([item("EHC-1", date(2027, 1, 18))], today=TODAY))
    assert proposal.start.date() == date(2027, 1, 18)


def test_no_free_day_is_reported_as_unplanned_with_reason() -> None:
    items = [item("EHC-1", date(2027, 1, 19), block(date(2027, 1, 18)), block(date(2027, 1, 19)))]
    result = propose(items, today=TODAY)
    assert result.proposals == [] and result.overdue == []
    assert [u.case_id for u in result.unplanned] == ["EHC-1"]
    assert "no free school day between 2027-01-18 and 2027-01-19" in result.unplanned[0].reason


def test_planning_window_narrows_the_days() -> None:
    items = [item("LATER", date(2027, 3, 31)), item("EARLY", date(2027, 1, 25))]
    result = propose(items, today=TODAY, window_from=date(2027, 2, 1),
                     window_to=date(2027, 2, 28))
    proposal = only(result)
    assert proposal.case_id == "LATER"
    assert proposal.start.date() == date(2027, 2, 26)
    assert proposal.reason == ("latest free school day before the end of the planning window "
                               "2027-02-28")
    assert [u.case_id for u in result.unplanned] == ["EARLY"]


# --- ordering, determinism, validation --------------------------------------------------------


def test_tightest_deadline_is_served_first() -> None:
    options = PlannerOptions(max_meetings_per_day=1)
    roomy = item("ROOMY", date(2027, 3, 31), prefer(date(2027, 1, 18)))
    tight = item("TIGHT", date(2027, 1, 18))
    result = propose([roomy, tight], today=TODAY, options=options)
    placed = {p.case_id: p for p in result.proposals}
    assert placed["TIGHT"].start.date() == date(2027, 1, 18)
    assert placed["ROOMY"].start.date() == date(2027, 1, 19)
    assert placed["ROOMY"].reason == ("the day after CLA review on 18 Jan 2027 (the coordinator "
                                      "already has 1 meeting on 18 Jan 2027)")


def random_items(seed: int, count: int) -> list[PlanningItem]:
    rng = random.Random(seed)
    items = []
    for index in range(count):
        latest = TODAY + timedelta(days=rng.randrange(0, 120))
        constraints: list[DateConstraint] = []
        if rng.random() < 0.3:
            constraints.append(prefer(TODAY + timedelta(days=rng.randrange(10, 120))))
        for _ in range(rng.randrange(0, 4)):
            constraints.append(block(TODAY + timedelta(days=rng.randrange(10, 120))))
        items.append(PlanningItem(f"EHC-{index:04d}", rng.choice([None, "a", "b", "c", "d"]),
                                  latest + timedelta(weeks=4), latest, tuple(constraints)))
    return items


def test_every_proposal_is_lawful_and_within_capacity() -> None:
    holidays = ((date(2027, 2, 15), date(2027, 2, 19)), (date(2027, 3, 26), date(2027, 4, 9)))
    options = PlannerOptions(max_meetings_per_day=2, school_holidays=holidays)
    items = random_items(7, 600)
    rng = random.Random(8)
    booked = {(rng.choice(["a", "b", None]), TODAY + timedelta(days=rng.randrange(14, 120))):
              rng.randrange(1, 3) for _ in range(60)}
    result = propose(items, today=TODAY, options=options, booked=booked)
    by_id = {i.case_id: i for i in items}
    clock = ClockOptions(school_holidays=holidays)
    load = Counter(booked)
    for proposal in result.proposals:
        source = by_id[proposal.case_id]
        day = proposal.start.date()
        assert TODAY + timedelta(days=14) <= day <= source.meeting_latest
        assert is_school_day(day, clock)
        assert day not in {c.day for c in source.constraints if c.blocked}
        load[(source.coordinator, day)] += 1
    assert max(load.values()) <= 2
    planned = ({p.case_id for p in result.proposals} | {o.case_id for o in result.overdue}
               | {u.case_id for u in result.unplanned})
    assert planned == set(by_id)  # every item accounted for exactly once
    assert len(result.proposals) + len(result.overdue) + len(result.unplanned) == len(items)
    assert result.proposals and result.overdue and result.unplanned
    assert [p.start for p in result.proposals] == sorted(p.start for p in result.proposals)


def test_same_input_in_any_order_gives_the_same_plan() -> None:
    items = random_items(11, 300)
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert propose(items, today=TODAY) == propose(shuffled, today=TODAY)


def test_duplicate_case_is_refused() -> None:
    with pytest.raises(ValueError, match="EHC-1 appears more than once"):
        propose([item("EHC-1", date(2027, 3, 4)), item("EHC-1", date(2027, 3, 5))], today=TODAY)


def test_constraint_day_must_be_a_date() -> None:
    bad = DateConstraint(day="next Tuesday", reason="CLA review")
    with pytest.raises(ValueError, match="case EHC-1: constraint 'CLA review'"):
        propose([item("EHC-1", date(2027, 3, 4), bad)], today=TODAY)


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 14"):
        PlannerOptions(notice_days=10)
    with pytest.raises(ValidationError, match="run past midnight"):
        PlannerOptions(max_meetings_per_day=12, meeting_minutes=120)
    with pytest.raises(ValidationError, match="before first day"):
        PlannerOptions(school_holidays=((date(2027, 2, 19), date(2027, 2, 15)),))


def test_a_review_without_preference_leaves_a_preferred_day_free() -> None:
    options = PlannerOptions(max_meetings_per_day=1)
    free = item("FREE", date(2027, 1, 20))  # tighter, so planned first
    family = item("FAMILY", date(2027, 3, 31), prefer(date(2027, 1, 20)))
    placed = {p.case_id: p for p in propose([free, family], today=TODAY,
                                             options=options).proposals}
    assert placed["FAMILY"].start.date() == date(2027, 1, 20)
    assert placed["FAMILY"].reason == "aligned with CLA review on 20 Jan 2027"
    assert placed["FREE"].start.date() == date(2027, 1, 19)
