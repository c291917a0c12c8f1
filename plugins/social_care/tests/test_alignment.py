"""meeting_constraints: social care review dates as the planner's preferred meeting dates."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from ehcbridge.events import DateConstraint
from ehcbridge.formats import make_upn
from ehcbridge.models import Pupil, Review
from ehcbridge.planner import PlannerOptions, PlanningItem, propose
from ehcbridge.testing import MemoryPluginStore
from ehcbridge_social_care import meeting_constraints
from ehcbridge_social_care.importers import import_source
from ehcbridge_social_care.records import add_months, last_working_day_on_or_before
from ehcbridge_social_care.settings import SocialCareSettings

from .conftest import NOW, UPN_A, UPN_B, CountingStore, add_pupil, context


def pupil(upn: str | None) -> Pupil:
    return Pupil(upn=upn, forename="Sam", surname="Example", dob=date(2014, 5, 2))


def load(tmp_path: Path, store: MemoryPluginStore, text: str) -> None:
    path = tmp_path / "extract.csv"
    path.write_text(text)
    import_source(context(store), str(path))


def test_real_and_projected_dates_within_the_window(tmp_path: Path,
                                                    store: CountingStore) -> None:
    load(tmp_path, store, "upn,review_type,review_date,period_start\n"
         f"{UPN_A},cla,2026-03-16,\n{UPN_A},cla,2026-09-15,\n{UPN_A},cla,2027-03-12,\n"
         f"{UPN_B},cp,,2026-10-05\n")
    review = Review(case_id="EHC-A", due_by=date(2027, 9, 30))
    assert meeting_constraints(review=review, pupil=pupil(UPN_A), ctx=context(store)) == [
        DateConstraint(day=date(2027, 3, 12), reason="CLA review on 12 Mar 2027", weight=3.0),
        DateConstraint(day=date(2027, 9, 10), weight=1.0, reason=(
            "CLA review due by 10 Sep 2027 (projected: 6 months after the CLA review on "
            "12 Mar 2027)")),  # 12 Sep 2027 is a Sunday
    ]
    # Past reviews (16 Mar, 15 Sep 2026) and dates after the review is due are left out.
    short = Review(case_id="EHC-A", due_by=date(2027, 3, 11))
    assert meeting_constraints(review=short, pupil=pupil(UPN_A), ctx=context(store)) == []
    cp = meeting_constraints(review=Review(case_id="EHC-B", due_by=date(2027, 9, 30)),
                             pupil=pupil(UPN_B), ctx=context(store))
    assert [(c.day, c.weight) for c in cp] == [(date(2027, 1, 5), 1.0), (date(2027, 7, 5), 1.0)]


def test_weights_come_from_settings_and_a_known_date_hides_its_projection(
        tmp_path: Path, store: CountingStore) -> None:
    # The known second review falls exactly on its projected due date.
    load(tmp_path, store, "upn,review_type,review_date,period_start\n"
         f"{UPN_A},cla,2026-11-10,2026-10-13\n{UPN_A},cla,2027-02-10,\n")
    settings = SocialCareSettings(weight_real=5, weight_projected=0.5, projected_reviews=1)
    got = meeting_constraints(review=Review(case_id="EHC-A", due_by=date(2027, 6, 30)),
                              pupil=pupil(UPN_A), ctx=context(store, settings))
    assert [(c.day, c.weight) for c in got] == [(date(2026, 11, 10), 5), (date(2027, 2, 10), 5)]


def test_no_constraints_when_unknown_or_disabled(tmp_path: Path, store: CountingStore) -> None:
    review = Review(case_id="EHC-A", due_by=date(2027, 9, 30))
    assert meeting_constraints(review=review, pupil=pupil(UPN_A), ctx=context(store)) == []
    assert meeting_constraints(review=review, pupil=pupil(None), ctx=context(store)) == []
    load(tmp_path, store, f"upn,review_type,review_date\n{UPN_A},cla,2027-03-12\n")
    off = SocialCareSettings(enabled=False)
    assert meeting_constraints(review=review, pupil=pupil(UPN_A), ctx=context(store, off)) == []


def test_school_of_120_plans_every_social_care_child_is_aligned(tmp_path: Path) -> None:
    """The issue's acceptance: 120 plans, 15 children with social care reviews, all aligned."""
    store = CountingStore(plugin="social_care")
    today = NOW.date()
    upns = [make_upn(f"8230000{n:05d}") for n in range(120)]
    social = {upns[n * 8]: n for n in range(15)}
    rows, expected = ["upn,review_type,review_date,period_start,team"], {}
    reviews = {}
    for i, upn in enumerate(upns):
        due = today + timedelta(days=60 + (i * 7) % 300)
        n = social.get(upn)
        if n is not None and n < 10:
            # 10 children with a known review (CLA, CP, CIN) shortly before the meeting deadline.
            wanted = due - timedelta(days=28 + 10 + n)
            while wanted.weekday() >= 5:
                wanted -= timedelta(days=1)
            rows.append(f"{upn},{('cla', 'cp', 'cin')[n % 3]},{wanted.isoformat()},,Team {n}")
            expected[upn] = wanted
        elif n is not None:
            # 5 looked-after children known only by their last review: the next is projected.
            last = today - timedelta(days=20 + 9 * n)
            wanted = last_working_day_on_or_before(add_months(last, 6))
            due = wanted + timedelta(days=28 + 30)
            rows.append(f"{upn},cla,{last.isoformat()},,Team {n}")
            expected[upn] = wanted
        add_pupil(store, upn, f"EHC-{i:04d}", due)
        reviews[upn] = store.reviews[f"EHC-{i:04d}"]
    load(tmp_path, store, "\n".join(rows) + "\n")
    ctx = context(store)

    items, by_upn = [], {}
    for upn in upns:
        review = reviews[upn]
        constraints = meeting_constraints(review=review, pupil=pupil(upn), ctx=ctx)
        by_upn[upn] = constraints
        items.append(PlanningItem(case_id=review.case_id, coordinator="senco@school.example",
                                  review_due=review.due_by,
                                  meeting_latest=review.due_by - timedelta(days=28),
                                  constraints=tuple(constraints)))
    result = propose(items, today=today)
    reach = PlannerOptions().align_within_days
    by_case = {p.case_id: p for p in result.proposals}
    assert not result.overdue and not result.unplanned
    for upn, wanted in expected.items():
        proposal = by_case[reviews[upn].case_id]
        assert proposal.aligned_with is not None, (upn, proposal.reason)
        # The same day, or the nearest free day when the SENCO's day is already full.
        assert abs((proposal.start.date() - wanted).days) <= reach, (upn, proposal.reason)
        assert proposal.aligned_with in {c.reason for c in by_upn[upn]}
    assert sum(p.aligned_with is not None for p in result.proposals) == 15
    assert sum(bool(c) for c in by_upn.values()) == 15
