"""Statutory projections: reg 33 for looked-after children, 3 then 6 months for CP conferences."""

from __future__ import annotations

from datetime import date

from ehcbridge_social_care.records import (
    ChildRecord,
    Occasion,
    ReviewDate,
    add_months,
    add_working_days,
    occasions,
)


def projected(record: ChildRecord, count: int = 2) -> list[tuple[str, date]]:
    return [(o.kind, o.day) for o in occasions(record, projected_reviews=count) if o.projected]


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert add_months(date(2027, 8, 31), 6) == date(2028, 2, 29)
    assert add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)


def test_twenty_working_days_skip_weekends_and_england_bank_holidays() -> None:
    # From Fri 18 Dec 2026: 25 Dec, 28 Dec (Boxing Day substitute) and 1 Jan are holidays.
    assert add_working_days(date(2026, 12, 18), 20) == date(2027, 1, 20)
    assert add_working_days(date(2026, 6, 1), 20) == date(2026, 6, 29)


def test_newly_looked_after_child_first_review_then_three_months_then_six() -> None:
    record = ChildRecord(upn="P823000000011", period_start={"cla": date(2026, 12, 18)})
    assert projected(record, 3) == [
        ("cla", date(2027, 1, 20)),   # 20 working days
        ("cla", date(2027, 4, 20)),   # 3 months after the first
        ("cla", date(2027, 10, 20)),  # then 6 months
    ]


def test_known_first_review_gives_second_within_three_months() -> None:
    record = ChildRecord(upn="P823000000011", period_start={"cla": date(2026, 9, 1)},
                         reviews=[ReviewDate("cla", date(2026, 9, 29), "generic")])
    assert projected(record, 1) == [("cla", date(2026, 12, 29))]


def test_later_reviews_every_six_months_from_the_last_known() -> None:
    record = ChildRecord(upn="P823000000011", reviews=[
        ReviewDate("cla", date(2026, 3, 16), "ssda903"),
        ReviewDate("cla", date(2026, 9, 15), "ssda903"),
    ])
    assert projected(record) == [("cla", date(2027, 3, 15)), ("cla", date(2027, 9, 15))]


def test_projection_due_on_a_weekend_moves_back_to_the_friday() -> None:
    record = ChildRecord(upn="P823000000011", reviews=[ReviewDate("cla", date(2026, 8, 30),
                                                                  "ics")])
    # 28 Feb 2027 is a Sunday: a review due "within" 6 months must be held by Fri 26 Feb.
    assert projected(record, 1) == [("cla", date(2027, 2, 26))]


def test_reviews_of_an_earlier_period_in_care_are_ignored() -> None:
    record = ChildRecord(upn="P823000000011", period_start={"cla": date(2026, 10, 1)},
                         reviews=[ReviewDate("cla", date(2025, 5, 1), "ssda903")])
    assert projected(record, 1) == [("cla", add_working_days(date(2026, 10, 1), 20))]


def test_child_protection_conferences_three_months_then_six() -> None:
    record = ChildRecord(upn="P823000000011", period_start={"cp": date(2026, 10, 5)})
    assert projected(record) == [("cp", date(2027, 1, 5)), ("cp", date(2027, 7, 5))]
    record.reviews.append(ReviewDate("cp", date(2027, 1, 4), "generic"))
    assert projected(record, 1) == [("cp", date(2027, 7, 2))]  # 4 Jul 2027 is a Sunday


def test_cin_reviews_and_unknown_children_are_not_projected() -> None:
    assert projected(ChildRecord(upn="P823000000011", reviews=[
        ReviewDate("cin", date(2026, 10, 1), "generic")])) == []
    assert occasions(ChildRecord(upn="P823000000011")) == []
    assert projected(ChildRecord(upn="P823000000011", period_start={"cla": date(2026, 1, 5)}),
                     0) == []


def test_reasons_name_the_review_not_the_child() -> None:
    real = Occasion("cla", date(2027, 3, 12), projected=False)
    assert real.reason == "CLA review on 12 Mar 2027"
    record = ChildRecord(upn="P823000000011", reviews=[ReviewDate("cp", date(2026, 9, 15), "x")])
    nxt = next(o for o in occasions(record) if o.projected)
    assert nxt.reason == ("CP review conference due by 15 Mar 2027 (projected: 6 months after "
                          "the CP review conference on 15 Sep 2026)")


def test_record_json_round_trip_and_feed_uid_replacement() -> None:
    record = ChildRecord(upn="P823000000011")
    record.add_review(ReviewDate("cla", date(2027, 3, 12), "ics", uid="u1"))
    record.add_review(ReviewDate("cla", date(2027, 3, 19), "ics", uid="u1"))  # moved
    record.add_review(ReviewDate("cp", date(2027, 1, 5), "generic"))
    record.add_review(ReviewDate("cp", date(2027, 1, 5), "ssda903"))  # same date again
    again = ChildRecord.from_json(record.upn, record.to_json())
    assert [(r.kind, r.day) for r in again.reviews] == [("cp", date(2027, 1, 5)),
                                                        ("cla", date(2027, 3, 19))]
