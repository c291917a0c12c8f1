"""Termly lists, term dates, the schools directory, invitation rules and the LA's figures."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from ehcbridge import kpis, lifecycle
from ehcbridge.invite_rules import InvitationRule, PlanDetails, rule_invitees
from ehcbridge.lists import build, due_window, to_csv, to_pdf
from ehcbridge.models import (
    LONDON,
    Duty,
    DutyStatus,
    Outcome,
    Plan,
    Pupil,
    Review,
    ReviewKind,
    Role,
)
from ehcbridge.schools import DirectoryError, School, load_directory
from ehcbridge.sen2 import census_date, rows_for
from ehcbridge.store import Store
from ehcbridge.terms import Term, TermError, check_terms, holidays_between, read_ics, term_named

DATA = Path(__file__).parent / "data"


# Term dates -----------------------------------------------------------------------------------


def test_term_dates_calendar_gives_terms_and_holidays() -> None:
    terms, holidays = read_ics(DATA / "term-dates.ics")
    assert [(t.name, t.start, t.end) for t in terms] == [
        ("Spring term 2027", date(2027, 1, 5), date(2027, 3, 26)),  # DTEND is exclusive
        ("Summer term 2027", date(2027, 4, 12), date(2027, 7, 21)),
    ]
    assert holidays == [(date(2027, 2, 15), date(2027, 2, 19))]
    # The Easter holiday is the gap between the terms; the INSET day is neither.
    assert holidays_between(terms) == [(date(2027, 3, 27), date(2027, 4, 11))]


def test_overlapping_terms_and_unknown_names_are_clear_errors() -> None:
    spring = Term("Spring", date(2027, 1, 5), date(2027, 3, 26))
    with pytest.raises(TermError, match="'Summer' overlaps 'Spring'"):
        check_terms([spring, Term("Summer", date(2027, 3, 20), date(2027, 7, 21))], "engine.terms")
    with pytest.raises(TermError, match=r"known terms: Spring"):
        term_named([spring], "Autumn")


def test_a_term_list_covers_due_dates_up_to_the_next_term() -> None:
    spring = Term("Spring", date(2027, 1, 5), date(2027, 3, 26))
    summer = Term("Summer", date(2027, 4, 12), date(2027, 7, 21))
    # A review due in the Easter holiday must be held in the spring term, so it is on that list.
    assert due_window(spring, [spring, summer]) == (date(2027, 1, 5), date(2027, 4, 11))
    assert due_window(summer, [spring, summer]) == (date(2027, 4, 12), date(2027, 7, 21))


# Schools directory ----------------------------------------------------------------------------


def test_directory_problems_name_each_row_and_nothing_is_used(tmp_path: Path) -> None:
    path = tmp_path / "schools.csv"
    path.write_text("URN,Name,Headteacher Email,SENCO-email\n"
                    "100001,Oak Primary,head@oak.example,senco@oak.example\n"
                    "12345,Bad Urn,head@bad.example,\n"
                    "100002,No Address,,\n"
                    "100001,Oak Again,head@oak2.example,not-an-email\n")
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    message = str(caught.value)
    assert "4 problem(s)" in message
    assert "row 3, column urn: '12345' is not a URN" in message
    assert "row 4, column headteacher_email" in message and "no postal address" in message
    assert "row 5, column urn: '100001' appears twice" in message
    assert "row 5, column senco_email: 'not-an-email' is not an email address" in message


def test_directory_loads_with_postal_address(tmp_path: Path) -> None:
    path = tmp_path / "schools.csv"
    path.write_text("urn,name,headteacher_email,address\n"
                    "100001,Oak Primary,head@oak.example,\n"
                    "100002,Elm Primary,,1 Elm Road; Anytown; AB1 2CD\n")
    schools = load_directory(path)
    assert schools["100002"].address == ("1 Elm Road", "Anytown", "AB1 2CD")
    assert schools["100001"].headteacher_email == "head@oak.example"


# Lists ---------------------------------------------------------------------------------------


def _case(store: Store, case_id: str, *, nc_year: int | None, urn: str, due: date,
          kind: ReviewKind = ReviewKind.ANNUAL, forename: str = "Ada",
          surname: str = "Lovelace") -> None:
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(forename=forename, surname=surname, nc_year=nc_year,
                                            school_urn=urn),
                          plan=Plan(case_id=case_id, issued_on=due - timedelta(days=364)),
                          coordinator_email=None, review_due=due, kind=kind, pfa=False)


DIRECTORY = {"100001": School("100001", "Oak Primary", "head@oak.example"),
             "100003": School("100003", "Ash Secondary", "head@ash.example")}


def test_lists_group_by_school_mark_transfer_and_pfa_and_report_unknown_schools(
        store: Store) -> None:
    _case(store, "C-1", nc_year=6, urn="100001", due=date(2027, 2, 15))
    _case(store, "C-2", nc_year=9, urn="100001", due=date(2027, 1, 19), forename="Ben",
          surname="Jones")
    _case(store, "C-3", nc_year=3, urn="100009", due=date(2027, 3, 1))
    _case(store, "C-4", nc_year=4, urn="100003", due=date(2027, 5, 1))  # next term
    lists = build(store, title="Spring 2027", due_from=date(2027, 1, 5), due_to=date(2027, 4, 11),
                  as_of=date(2026, 12, 4), directory=DIRECTORY)
    assert list(lists.by_school) == ["100001", "100009"]
    oak = {e.case_id: e for e in lists.by_school["100001"]}
    assert oak["C-1"].phase_transfer and not oak["C-1"].preparing_for_adulthood
    assert oak["C-2"].preparing_for_adulthood and not oak["C-2"].phase_transfer
    assert oak["C-2"].initials == "BJ" and oak["C-1"].school_name == "Oak Primary"
    assert lists.missing_schools == ["100009"]
    text = to_csv(lists.entries)
    assert "Lovelace" not in text and "Jones" not in text  # initials only
    assert text.splitlines()[1].startswith("100001,Oak Primary,C-2,BJ,9,2027-01-19")


def test_nc_year_is_read_for_the_academic_year_of_the_term(store: Store) -> None:
    _case(store, "C-1", nc_year=5, urn="100001", due=date(2027, 10, 1))
    # Listing the autumn 2027 term in December 2026: the Year 5 pupil will be in Year 6.
    lists = build(store, title="Autumn 2027", due_from=date(2027, 9, 2),
                  due_to=date(2027, 12, 31), as_of=date(2026, 12, 4), directory=DIRECTORY)
    [entry] = lists.entries
    assert entry.nc_year == 6 and entry.phase_transfer


def test_pdf_list_reads_back(store: Store) -> None:
    pypdf = pytest.importorskip("pypdf")
    import io

    _case(store, "C-1", nc_year=10, urn="100001", due=date(2027, 2, 15))
    lists = build(store, title="Spring 2027", due_from=date(2027, 1, 5), due_to=date(2027, 4, 11),
                  as_of=date(2026, 12, 4), directory=DIRECTORY)
    pdf = to_pdf("Spring 2027 (100001)", lists.entries)
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Spring 2027 (100001)" in text and "C-1" in text and "PfA" in text
    assert "Lovelace" not in text


# Invitation rules -----------------------------------------------------------------------------


RULES = [
    InvitationRule(name="pfa-team", team="PfA team", email="pfa@council.example",
                   from_nc_year=9),
    InvitationRule(name="receiving-school", invite="receiving_school",
                   phase_transfer_only=True),
    InvitationRule(name="outcome-teams", invite="outcome_services"),
    InvitationRule(name="la-sen-team", role=Role.LA_SEN_OFFICER, team="SEN team",
                   email="sen@council.example"),
]


def _review(kind: ReviewKind = ReviewKind.ANNUAL) -> Review:
    return Review(case_id="C-1", kind=kind, due_by=date(2027, 2, 15))


def test_rules_add_pfa_for_year_9_and_the_receiving_school_for_a_transfer() -> None:
    year9 = rule_invitees(RULES, _review(), Pupil(forename="A", surname="B", nc_year=9),
                          PlanDetails(), DIRECTORY)
    assert [(i.source, i.email) for i in year9] == [
        ("rule:pfa-team", "pfa@council.example"), ("rule:la-sen-team", "sen@council.example")]
    year6 = rule_invitees(RULES, _review(), Pupil(forename="A", surname="B", nc_year=6),
                          PlanDetails(receiving_school="100003", outcome_services=("SALT",)),
                          DIRECTORY)
    assert [(i.source, i.email, i.team) for i in year6] == [
        ("rule:receiving-school", "head@ash.example", "Ash Secondary"),
        ("rule:outcome-teams", None, "SALT"),
        ("rule:la-sen-team", "sen@council.example", "SEN team")]
    year4 = rule_invitees(RULES, _review(), Pupil(forename="A", surname="B", nc_year=4),
                          PlanDetails(receiving_school="100003"), DIRECTORY)
    assert [i.source for i in year4] == ["rule:la-sen-team"]  # not a transfer year


def test_a_rule_for_children_at_no_school_or_college() -> None:
    ehe = InvitationRule(name="ehe-team", team="Elective home education team",
                         email="ehe@council.example", no_setting_only=True)
    pupil = Pupil(forename="A", surname="B", nc_year=7)
    at_home = rule_invitees([ehe], _review(), pupil, PlanDetails(), DIRECTORY, no_setting=True)
    assert [(i.source, i.email) for i in at_home] == [("rule:ehe-team", "ehe@council.example")]
    assert rule_invitees([ehe], _review(), pupil, PlanDetails(), DIRECTORY) == []


# Figures --------------------------------------------------------------------------------------


def _held_and_decided(store: Store, case_id: str, meeting: date, decided: date | None) -> None:
    start = datetime.combine(meeting, datetime.min.time(), tzinfo=LONDON).replace(hour=10)
    store.schedule_meeting(case_id, start=start, end=start + timedelta(hours=1))
    store.mark_held(case_id, now=start + timedelta(hours=1))
    if decided is not None:
        store.decide(case_id, outcome=Outcome.MAINTAIN, reason="progress", decided_on=decided,
                     next_review_due=date(2028, 3, 1))


def _duty(name: str, due: date, status: DutyStatus) -> Duty:
    return Duty(name=name, rule="rule", kind="statutory", due=due, owed_by="la",
                owed_to=("parent",), status=status)


def test_kpis_count_on_time_and_late_per_school_and_overall(store: Store) -> None:
    _case(store, "R-1", nc_year=4, urn="100001", due=date(2027, 3, 31))
    _case(store, "R-2", nc_year=4, urn="100001", due=date(2027, 4, 30))
    _case(store, "R-3", nc_year=4, urn="100003", due=date(2027, 2, 28))
    ids = {c: store.case(c).review.id or 0 for c in ("R-1", "R-2", "R-3")}
    _held_and_decided(store, "R-1", date(2027, 2, 8), date(2027, 3, 1))
    _held_and_decided(store, "R-2", date(2027, 4, 5), date(2027, 5, 5))
    store.save_duties(ids["R-1"], [
        _duty(lifecycle.DECISION_MADE, date(2027, 3, 8), DutyStatus.MET),
        _duty(lifecycle.INVITATIONS_SENT, date(2027, 1, 25), DutyStatus.MET),
        _duty(lifecycle.REPORT_SENT, date(2027, 2, 22), DutyStatus.LATE)])
    store.save_duties(ids["R-2"], [
        _duty(lifecycle.DECISION_MADE, date(2027, 4, 30), DutyStatus.LATE),
        _duty(lifecycle.REPORT_SENT, date(2027, 4, 19), DutyStatus.MET),
        _duty(lifecycle.ADVICE_CIRCULATED, date(2027, 3, 22), DutyStatus.PENDING)])
    store.save_duties(ids["R-3"], [
        _duty(lifecycle.DECISION_MADE, date(2027, 2, 28), DutyStatus.MISSED)])
    # The lifecycle records duties of its own as the reviews move; any measured duty this test
    # does not set above is put back to pending, so the expected figures are exactly these.
    chosen = {(ids["R-1"], lifecycle.DECISION_MADE), (ids["R-1"], lifecycle.INVITATIONS_SENT),
              (ids["R-1"], lifecycle.REPORT_SENT), (ids["R-2"], lifecycle.DECISION_MADE),
              (ids["R-2"], lifecycle.REPORT_SENT), (ids["R-2"], lifecycle.ADVICE_CIRCULATED),
              (ids["R-3"], lifecycle.DECISION_MADE)}
    measured = {m.duty for m in kpis.MEASURES if m.duty}
    for _case_id, review_id, duty in store.duty_rows():
        if duty.name in measured and (review_id, duty.name) not in chosen:
            store.save_duties(review_id, [duty.model_copy(update={
                "status": DutyStatus.PENDING, "met_on": None})])
    result = kpis.compute(store, date(2027, 1, 1), date(2027, 6, 30), date(2027, 6, 1))
    overall = {k: (f.count, f.total, f.percent) for k, f in result.schools[kpis.OVERALL].items()}
    assert overall == {
        "reviews_due": (3, 3, 100.0),
        "concluded_in_12_months": (1, 3, 33.3),
        "decision_in_4_weeks": (1, 3, 33.3),
        "invitations_2_weeks": (1, 1, 100.0),
        "advice_circulated": (0, 0, None),  # pending: outcome not known yet
        "report_in_2_weeks": (1, 2, 50.0),
        "amendments_in_8_weeks": (0, 0, None),
        "transfer_by_deadline": (0, 0, None),
        "overdue_now": (1, 3, 33.3),
    }
    oak = result.schools["100001"]
    assert (oak["decision_in_4_weeks"].count, oak["decision_in_4_weeks"].total) == (1, 2)
    assert (result.schools["100003"]["overdue_now"].count,
            result.schools["100003"]["overdue_now"].total) == (1, 1)


def test_sen2_items_take_the_meeting_and_the_decision_dates_apart(store: Store) -> None:
    assert census_date(2027) == date(2027, 1, 21)  # third Thursday of January
    _case(store, "S-1", nc_year=4, urn="100001", due=date(2027, 1, 31))
    _case(store, "S-2", nc_year=4, urn="100001", due=date(2027, 3, 31))
    _held_and_decided(store, "S-1", date(2026, 12, 1), date(2026, 12, 20))
    _held_and_decided(store, "S-2", date(2027, 1, 12), date(2027, 2, 1))  # after census
    rows = {r["case_id"]: r for r in rows_for(store, date(2027, 1, 21))}
    assert rows["S-1"]["review_meeting_date"] == "2026-12-01"
    assert (rows["S-1"]["review_decision"], rows["S-1"]["review_decision_date"]) == (
        "maintain", "2026-12-20")
    assert rows["S-2"]["review_meeting_date"] == "2027-01-12"
    assert rows["S-2"]["review_decision"] == "" and rows["S-2"]["review_decision_date"] == ""


def test_early_years_are_listed_as_schools_write_them(store: Store) -> None:
    """Reception and nursery show as R, N2 and N1 on the heads' lists, not 0, -1 and -2."""
    from ehcbridge.formats import nc_year_label, parse_nc_year

    for n, code in enumerate(("N2", "N1", "R"), start=1):
        _case(store, f"C-{n}", nc_year=parse_nc_year(code), urn="100001",
              due=date(2027, 2, n))
    lists = build(store, title="Spring 2027", due_from=date(2027, 1, 4),
                  due_to=date(2027, 3, 31), as_of=date(2026, 12, 4), directory=DIRECTORY)
    assert sorted(e.row()["nc_year"] for e in lists.entries) == ["N1", "N2", "R"]
    assert [nc_year_label(n) for n in (None, -2, -1, 0, 1, 14)] == ["", "N1", "N2", "R", "1",
                                                                     "14"]
