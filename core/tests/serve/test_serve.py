"""``ehcbridge serve`` without a browser: sign-in, roles, audit, webhook, health, metrics."""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ehcbridge.app import App
from ehcbridge.cli import cli
from ehcbridge.web.app import create_app
from ehcbridge.web.db import WebStore
from ehcbridge.web.webhook import sign
from starlette.testclient import TestClient

from .conftest import PASSWORD, SECRET

REPO = Path(__file__).resolve().parents[3]


def client(app: App) -> TestClient:
    """HTTPS so the Secure cookies are sent back, as a browser would."""
    return TestClient(create_app(app), base_url="https://testserver", follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def signed_in(app: App, name: str) -> TestClient:
    c = client(app)
    page = c.get("/sign-in")
    r = c.post("/sign-in", data={"username": name, "password": PASSWORD,
                                 "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    return c


def test_every_page_needs_sign_in_and_cookies_are_locked_down(app: App) -> None:
    c = client(app)
    for path in ("/", "/reviews/EHC-001", "/reviews/EHC-001/timeline.svg", "/deliveries",
                 "/plugins", "/figures"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/sign-in", path
    assert c.get("/healthz").json() == {"status": "ok"}
    page = c.get("/sign-in")
    r = c.post("/sign-in", data={"username": "cw@council.example", "password": PASSWORD,
                                 "csrf": csrf_of(page.text)})
    cookie = r.headers["set-cookie"]
    assert "ehcbridge_session=" in cookie
    for attribute in ("HttpOnly", "Secure", "SameSite=lax"):
        assert attribute.lower() in cookie.lower(), attribute
    assert "ehcbridge_session" not in json.dumps(WebStore(app.store).users(), default=str)


def test_sign_in_refuses_wrong_password_missing_csrf_and_rate_limits(app: App) -> None:
    c = client(app)
    page = c.get("/sign-in")
    no_csrf = c.post("/sign-in", data={"username": "cw@council.example", "password": PASSWORD})
    assert no_csrf.status_code == 403
    codes = []
    for _ in range(6):
        page = c.get("/sign-in")
        r = c.post("/sign-in", data={"username": "cw@council.example", "password": "wrong",
                                     "csrf": csrf_of(page.text)})
        codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5] == 429
    assert "Too many attempts" in r.text
    page = c.get("/sign-in")  # even the right password waits now
    r = c.post("/sign-in", data={"username": "cw@council.example", "password": PASSWORD,
                                 "csrf": csrf_of(page.text)})
    assert r.status_code == 429
    assert "ehcbridge_session" not in r.headers.get("set-cookie", "")


def test_home_lists_at_risk_and_missed_reviews_by_school_with_initials_only(app: App) -> None:
    c = signed_in(app, "viewer@council.example")
    html = c.get("/").text
    assert "School 100001" in html and "School 100002" in html
    assert "EHC-001" in html and "(AB)" in html and "At risk" in html.replace("at risk", "At risk")
    assert "EHC-002" in html and "missed" in html
    assert "Ava" not in html and "Brown" not in html
    week, term = _open_due(app, date(2027, 2, 1), date(2027, 2, 7)), \
        _open_due(app, date(2027, 1, 1), date(2027, 3, 31))
    assert week >= 1 and term > week  # at least EHC-001's invitations, due Wed 3 Feb
    assert f'id="due-week">{week}<' in html and f'id="due-term">{term}<' in html


def _open_due(app: App, first: date, last: date) -> int:
    """Pending or at-risk duties due between two dates, as the home page should count them."""
    return sum(1 for _c, _r, d in app.store.duty_rows()
               if d.status in ("pending", "at_risk") and d.due and first <= d.due <= last)


def test_review_page_draws_the_timeline_and_records_each_view(app: App) -> None:
    c = signed_in(app, "viewer@council.example")
    html = c.get("/reviews/EHC-001").text
    assert "<svg" in html and 'data-duty="invitations_sent"' in html
    assert "duty-at_risk" in html and "duty-met" in html and "duty-pending" in html
    assert "Record report" not in html  # viewers get no forms
    assert "Speech and Language Therapy" in html and "accepted" in html
    assert "parent1@example.org" not in html  # no names or addresses for viewers
    svg = c.get("/reviews/EHC-001/timeline.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    views = WebStore(app.store).views("EHC-001")
    assert [v["user"] for v in views] == ["viewer@council.example"] * 2
    assert c.get("/reviews/NOPE").status_code == 404


def test_the_webhook_carries_a_post16_move_and_no_setting(app: App) -> None:
    c = client(app)
    data = {"case_id": "EHC-011", "forename": "Ed", "surname": "Fox", "plan_issued": "2026-05-01",
            "nc_year": 12, "no_setting": True, "post16_move": "2027-09-06"}
    assert post_event(c, {"id": "m1", "type": "review.created", "data": data}).status_code == 202
    plan = app.store.case("EHC-011").plan
    assert (plan.no_setting, plan.post16_move) == (True, date(2027, 9, 6))
    bad = post_event(c, {"id": "m2", "type": "review.updated",
                         "data": dict(data, nc_year=10)})
    assert bad.status_code == 422 and "data.post16_move" in bad.text


def test_review_page_says_who_arranges_the_review_and_a_post16_move(app: App,
                                                                    tmp_path: Path) -> None:
    from ehcbridge.intake import import_reviews
    from ehcbridge.models import DutyStatus

    from .conftest import NOW, duty

    later = tmp_path / "later.csv"
    later.write_text("case_id,forename,surname,nc_year,school_urn,plan_issued,no_setting,"
                     "post16_move\nEHC-004,Dee,Evans,12,100001,2026-05-01,yes,2027-09-06\n",
                     encoding="utf-8")
    import_reviews(app, later, now=NOW)
    review = app.store.case("EHC-004").review.id or 0
    app.store.save_duties(review, [duty("meeting_held", date(2027, 2, 17), DutyStatus.AT_RISK)])
    home = signed_in(app, "viewer@council.example").get("/").text
    assert "No school or college (reg 21)" in home  # not under school 100001
    html = signed_in(app, "viewer@council.example").get("/reviews/EHC-004").text
    assert "None: the local authority arranges this review (reg 21)" in html
    assert "06 Sep 2027 (reg 18(2)" in html
    html = signed_in(app, "viewer@council.example").get("/reviews/EHC-001").text
    assert "100001" in html and "reg 21" not in html and "Post-16 move" not in html


def test_names_only_for_caseworkers_when_the_setting_allows(tmp_path: Path) -> None:
    from .conftest import make_app, seed

    app = make_app(tmp_path, names_for_caseworkers=True)
    seed(app)
    assert "Ava Brown" in signed_in(app, "cw@council.example").get("/reviews/EHC-001").text
    assert "Ava" not in signed_in(app, "viewer@council.example").get("/reviews/EHC-001").text
    app.close()


def test_caseworker_retries_a_dead_delivery_and_a_viewer_cannot(app: App) -> None:
    dead = app.store.deliveries(status="dead")[0]
    viewer = signed_in(app, "viewer@council.example")
    page = viewer.get("/deliveries").text
    assert "SMTP 550" in page and "Retry<span" not in page
    r = viewer.post(f"/deliveries/{dead.id}/retry", data={"csrf": csrf_of(page)})
    assert r.status_code == 403
    assert app.store.deliveries(status="dead")[0].id == dead.id
    cw = signed_in(app, "cw@council.example")
    page = cw.get("/deliveries").text
    assert cw.post(f"/deliveries/{dead.id}/retry", data={}).status_code == 403  # no CSRF token
    r = cw.post(f"/deliveries/{dead.id}/retry", data={"csrf": csrf_of(page)})
    assert r.status_code == 303
    assert app.store.deliveries(status="dead") == []
    assert app.store.deliveries(status="pending")[0].id == dead.id


def test_caseworker_records_a_report_through_the_review_functions(app: App) -> None:
    cw = signed_in(app, "cw@council.example")
    page = cw.get("/reviews/EHC-003").text
    r = cw.post("/reviews/EHC-003/report", data={"csrf": csrf_of(page), "on": "2027-03-02"})
    assert r.status_code == 409 and "follows the meeting" in r.text  # not held yet: as the CLI
    r = cw.post("/reviews/EHC-003/report", data={"csrf": csrf_of(page), "on": "yesterday"})
    assert r.status_code == 422 and "on" in r.text and "is not a date" in r.text


def test_caseworker_removes_an_invitee_and_a_viewer_cannot(app: App) -> None:
    viewer = signed_in(app, "viewer@council.example")
    page = viewer.get("/reviews/EHC-001").text
    assert "Remove invitee" not in page
    assert viewer.post("/reviews/EHC-001/uninvite", data={
        "csrf": csrf_of(page), "who": "salt@nhs.example.net"}).status_code == 403
    cw = signed_in(app, "cw@council.example")
    page = cw.get("/reviews/EHC-001").text
    assert "Remove invitee" in page
    r = cw.post("/reviews/EHC-001/uninvite", data={"csrf": csrf_of(page),
                                                   "who": "nobody@example.org"})
    assert r.status_code == 422 and "is not invited to the current review" in r.text
    r = cw.post("/reviews/EHC-001/uninvite", data={"csrf": csrf_of(page),
                                                   "who": "SALT@nhs.example.net"})
    assert r.status_code == 303 and r.headers["location"] == "/reviews/EHC-001?done=removal"
    assert "The removal was recorded." in cw.get(r.headers["location"]).text
    assert [i.email for i in app.store.case("EHC-001").invitees] == ["parent1@example.org"]
    # Whoever opens the review next sees why the Hub's list no longer brings them back.
    said = " ".join(viewer.get("/reviews/EHC-001").text.split())
    assert "Removed from this plan, and not invited again unless someone invites them by " \
           "hand: Health." in said
    assert "salt@nhs.example.net" not in said  # names and addresses only where shown


def test_caseworker_follows_an_amend_decision_on_the_review_page(app: App) -> None:
    c = client(app)
    for n, (kind, data) in enumerate([
            ("meeting.scheduled", {"case_id": "EHC-001", "start": "2027-01-25T10:00"}),
            ("meeting.held", {"case_id": "EHC-001"}),
            ("decision.recorded", {"case_id": "EHC-001", "outcome": "amend",
                                   "reason": "Outcomes updated", "on": "2027-01-29"})]):
        assert post_event(c, {"id": f"a{n}", "type": kind, "data": data}).status_code == 202
    cw = signed_in(app, "cw@council.example")
    page = cw.get("/reviews/EHC-001").text
    # The decision opened next year's review; what the decision still asks for shows beside it.
    after = page[page.index('id="after-decision"'):]
    after = " ".join(after[:after.index("</table>")].split())
    assert "Amendments proposed" in after and "Final plan issued" in after, after
    assert 'id="amendments-form"' in page
    r = cw.post("/reviews/EHC-001/amendments", data={"csrf": csrf_of(page), "step": "proposed",
                                                      "on": "2027-01-30"})
    assert r.status_code == 303 and r.headers["location"] == "/reviews/EHC-001?done=amendments"
    assert "The sending of the proposed amendments was recorded." in cw.get(
        r.headers["location"]).text
    r = cw.post("/reviews/EHC-001/amendments", data={"csrf": csrf_of(page),
                                                      "step": "not_amended", "on": "2027-02-01"})
    assert r.status_code == 422 and "reason" in r.text and "is required" in r.text
    r = cw.post("/reviews/EHC-001/amendments", data={
        "csrf": csrf_of(page), "step": "not_amended", "reason": "Provision meets the needs",
        "on": "2027-02-01"})
    assert r.status_code == 303
    assert "The decision not to amend was recorded." in cw.get(r.headers["location"]).text
    finals = [d for _c, _r, d in app.store.duty_rows(case_ids=["EHC-001"],
                                                       name="final_plan_issued")]
    assert [(d.met_on, d.rule) for d in finals] == [(date(2027, 2, 1),
                                                     "SEND Regs 2014 reg 22(4)")]
    # Nothing is left open after the decision (no phase transfer waits for its plan): the table
    # and the form go.
    page = cw.get("/reviews/EHC-001").text
    assert 'id="after-decision"' not in page and 'id="amendments-form"' not in page
    r = cw.post("/reviews/EHC-001/amendments", data={"csrf": csrf_of(page), "step": "other"})
    assert r.status_code == 422


def test_sign_out_ends_the_session(app: App) -> None:
    c = signed_in(app, "viewer@council.example")
    page = c.get("/").text
    assert c.post("/sign-out", data={"csrf": csrf_of(page)}).status_code == 303
    assert c.get("/").status_code == 303


# Webhook ------------------------------------------------------------------------------------


def post_event(c: TestClient, event: dict[str, Any], *, secret: str = SECRET,
               stamp: int | None = None, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(event).encode()
    ts = str(int(time.time()) if stamp is None else stamp)
    sent = {"X-Ehcbridge-Timestamp": ts, "X-Ehcbridge-Signature": sign(secret, ts, body),
            "Content-Type": "application/json"}
    if headers is not None:
        sent = headers
    return c.post("/api/v1/events", content=body, headers=sent)


SCHEDULE = {"id": "evt-1", "type": "meeting.scheduled",
            "data": {"case_id": "EHC-001", "start": "2027-02-24T10:00", "location": "Room 2"}}


def _meeting_events(app: App) -> int:
    return app.store.count("events")


def test_a_good_event_takes_effect_once(app: App) -> None:
    c = client(app)
    before = _meeting_events(app)
    r = post_event(c, SCHEDULE)
    assert r.status_code == 202 and r.json() == {"id": "evt-1", "status": "accepted"}
    meeting = app.store.case("EHC-001").meeting
    assert meeting is not None and meeting.location == "Room 2" and meeting.start.hour == 10
    assert _meeting_events(app) == before + 1
    again = post_event(c, SCHEDULE)  # a replay, freshly signed: same id, no second effect
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    moved = dict(SCHEDULE, data=dict(SCHEDULE["data"], start="2027-02-25T10:00"))
    assert post_event(c, moved).json()["status"] == "duplicate"
    assert app.store.case("EHC-001").meeting.start.day == 24  # type: ignore[union-attr]
    assert _meeting_events(app) == before + 1


@pytest.mark.parametrize("how", ["unsigned", "bad signature", "wrong secret", "stale", "future"])
def test_refused_events_change_nothing(app: App, how: str) -> None:
    c = client(app)
    body = json.dumps(SCHEDULE).encode()
    now = int(time.time())
    if how == "unsigned":
        r = post_event(c, SCHEDULE, headers={"Content-Type": "application/json"})
    elif how == "bad signature":
        r = post_event(c, SCHEDULE, headers={"X-Ehcbridge-Timestamp": str(now),
                                             "X-Ehcbridge-Signature": "sha256=" + "0" * 64})
    elif how == "wrong secret":
        r = post_event(c, SCHEDULE, secret="not-the-secret")
    elif how == "stale":
        r = post_event(c, SCHEDULE, stamp=now - 301)
    else:
        r = post_event(c, SCHEDULE, stamp=now + 301)
    assert r.status_code == 401, r.text
    assert app.store.case("EHC-001").meeting is None
    assert WebStore(app.store).event_count() == 0
    del body


def test_a_replayed_request_is_refused_once_stale_and_has_one_effect_while_fresh(app: App) -> None:
    c = client(app)
    body = json.dumps(SCHEDULE).encode()
    ts = str(int(time.time()))
    headers = {"X-Ehcbridge-Timestamp": ts, "X-Ehcbridge-Signature": sign(SECRET, ts, body)}
    assert c.post("/api/v1/events", content=body, headers=headers).status_code == 202
    events = _meeting_events(app)
    replay = c.post("/api/v1/events", content=body, headers=headers)  # the very same bytes
    assert replay.status_code == 202 and replay.json()["status"] == "duplicate"
    assert _meeting_events(app) == events


@pytest.mark.parametrize(("event", "field"), [
    ({"id": "e", "type": "meeting.scheduled", "data": {"case_id": "EHC-001"}}, "data.start"),
    ({"id": "e", "type": "meeting.scheduled",
      "data": {"case_id": "EHC-001", "start": "tomorrow"}}, "data.start"),
    ({"id": "e", "type": "meeting.scheduled",
      "data": {"case_id": "EHC-404", "start": "2027-02-24T10:00"}}, "data.case_id"),
    ({"id": "e", "type": "meeting.exploded", "data": {}}, "type"),
    ({"type": "meeting.held", "data": {"case_id": "EHC-001"}}, "id"),
    ({"id": "e", "type": "review.created",
      "data": {"case_id": "EHC-9", "forename": "A", "surname": "B",
               "plan_issued": "2026-13-01"}}, "data.plan_issued"),
    ({"id": "e", "type": "review.created",
      "data": {"case_id": "EHC-9", "forename": "A", "surname": "B", "plan_issued": "2026-01-01",
               "upn": "X1"}}, "data.upn"),
    ({"id": "e", "type": "invitee.added",
      "data": {"case_id": "EHC-001", "role": "uncle"}}, "data.role"),
    ({"id": "e", "type": "invitee.removed", "data": {"case_id": "EHC-001"}}, "data.email"),
    ({"id": "e", "type": "invitee.removed",
      "data": {"case_id": "EHC-001", "email": "nobody@example.org"}}, "data.email"),
    ({"id": "e", "type": "decision.recorded",
      "data": {"case_id": "EHC-001", "outcome": "maintain", "reason": "ok",
               "colour": "red"}}, "data.colour"),
])
def test_bad_events_are_422_naming_the_field_and_change_nothing(app: App, event: dict[str, Any],
                                                                 field: str) -> None:
    c = client(app)
    before = (_meeting_events(app), app.store.case_ids())
    r = post_event(c, event)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert (_meeting_events(app), app.store.case_ids()) == before
    assert WebStore(app.store).event_count() == 0


def test_review_created_then_updated_uses_the_intake_rules(app: App) -> None:
    c = client(app)
    data = {"case_id": "EHC-010", "forename": "Dee", "surname": "Evans",
            "plan_issued": "2026-05-01", "school_urn": 100003, "nc_year": "Y7"}
    assert post_event(c, {"id": "r1", "type": "review.created", "data": data}).status_code == 202
    case = app.store.case("EHC-010")
    assert case.pupil.nc_year == 7 and case.pupil.school_urn == "100003"
    again = post_event(c, {"id": "r2", "type": "review.created", "data": data})
    assert again.status_code == 409
    updated = dict(data, school_urn="100004")
    assert post_event(c, {"id": "r3", "type": "review.updated",
                          "data": updated}).status_code == 202
    assert app.store.case("EHC-010").pupil.school_urn == "100004"


def test_review_updated_naming_a_new_senco_replaces_the_one_an_earlier_event_named(
        app: App) -> None:
    c = client(app)
    data = {"case_id": "EHC-011", "forename": "Dee", "surname": "Evans",
            "plan_issued": "2026-05-01", "setting_email": "senco@old.example.org"}
    assert post_event(c, {"id": "n1", "type": "review.created", "data": data}).status_code == 202
    moved = dict(data, setting_email="senco@new.example.org")
    assert post_event(c, {"id": "n2", "type": "review.updated", "data": moved}).status_code == 202
    assert [i.email for i in app.store.case("EHC-011").invitees] == ["senco@new.example.org"]


def test_every_event_type_reaches_the_review_functions(app: App) -> None:
    c = client(app)
    steps = [
        ("meeting.scheduled", {"case_id": "EHC-002", "start": "2027-02-10T10:00"}),
        ("meeting.rescheduled", {"case_id": "EHC-002", "start": "2027-02-11T10:00"}),
        ("invitee.added", {"case_id": "EHC-002", "role": "parent", "email": "p@example.org"}),
        ("invitee.added", {"case_id": "EHC-002", "role": "setting", "email": "s@example.org"}),
        ("invitee.removed", {"case_id": "EHC-002", "email": "S@example.org",
                             "role": "setting"}),
        ("meeting.held", {"case_id": "EHC-002"}),
        ("report.sent", {"case_id": "EHC-002", "on": "2027-02-15"}),
        ("decision.recorded", {"case_id": "EHC-002", "outcome": "maintain",
                               "reason": "Needs met", "on": "2027-03-01"}),
        ("meeting.scheduled", {"case_id": "EHC-001", "start": "2027-02-24T10:00"}),
        ("meeting.cancelled", {"case_id": "EHC-001", "reason": "illness"}),
    ]
    for n, (kind, data) in enumerate(steps):
        r = post_event(c, {"id": f"s{n}", "type": kind, "data": data})
        assert r.status_code == 202, (kind, r.text)
    # The decision opened the next review; the one before was decided with its report date.
    # The family was handed on to it, the SENCO removed before the meeting was not.
    assert [i.email for i in app.store.case("EHC-002").invitees] == ["p@example.org"]
    assert app.store.case("EHC-002").review.status == "due"
    assert app.store.case("EHC-001").meeting.status == "cancelled"  # type: ignore[union-attr]
    assert WebStore(app.store).event_count() == len(steps)


def test_the_rest_of_a_review_arrives_by_webhook_too(app: App) -> None:
    """Advice circulated, an early review, and an amend decision's later steps (reg 22), as
    the `ehcbridge review` commands record them; a refused step is a 409 saying why."""
    c = client(app)
    steps = [
        ("meeting.scheduled", {"case_id": "EHC-002", "start": "2027-01-25T10:00"}),
        ("advice.circulated", {"case_id": "EHC-002", "on": "2027-01-08"}),
        ("meeting.held", {"case_id": "EHC-002"}),
        ("decision.recorded", {"case_id": "EHC-002", "outcome": "amend",
                               "reason": "Outcomes updated", "on": "2027-01-29"}),
        ("amendments.proposed", {"case_id": "EHC-002", "on": "2027-01-30"}),
        ("amendments.not_made", {"case_id": "EHC-002", "reason": "Provision meets the needs",
                                 "on": "2027-02-01"}),
        ("review.early", {"case_id": "EHC-001", "reason": "moving to a new school"}),
    ]
    for n, (kind, data) in enumerate(steps):
        r = post_event(c, {"id": f"x{n}", "type": kind, "data": data})
        assert r.status_code == 202, (kind, r.text)
    rows = {(rid, d.name): d for _cid, rid, d in app.store.duty_rows(case_ids=["EHC-002"])}
    decided = min(rid for rid, _name in rows)
    assert rows[decided, "advice_circulated"].met_on == date(2027, 1, 8)
    assert rows[decided, "amendments_proposed"].met_on == date(2027, 1, 30)
    final = rows[decided, "final_plan_issued"]
    assert (final.met_on, final.rule) == (date(2027, 2, 1), "SEND Regs 2014 reg 22(4)")
    assert app.store.case("EHC-001").review.kind == "early"

    late = post_event(c, {"id": "y1", "type": "final_plan.issued",
                          "data": {"case_id": "EHC-002", "on": "2027-02-01"}})
    assert late.status_code == 409 and "decision not to amend was recorded" in late.json()["error"]
    blank = post_event(c, {"id": "y2", "type": "amendments.not_made",
                           "data": {"case_id": "EHC-002", "reason": " "}})
    assert blank.status_code == 422 and blank.json()["field"] == "data.reason"


def test_an_oversized_body_is_refused_unread(app: App) -> None:
    big = {"id": "big", "type": "meeting.held", "data": {"case_id": "x" * (2 * 1024 * 1024)}}
    assert post_event(client(app), big).status_code == 413
    assert WebStore(app.store).event_count() == 0


def test_webhook_is_off_without_a_secret(tmp_path: Path) -> None:
    from .conftest import make_app

    app = make_app(tmp_path, webhook_secret="")
    r = post_event(client(app), SCHEDULE, secret="")
    assert r.status_code == 401 and "not configured" in r.json()["error"]
    app.close()


# Health, metrics, OpenAPI, plugin routes ----------------------------------------------------


def test_readyz_and_metrics(app: App) -> None:
    c = client(app)
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"store": "ok", "migrations": "current", "engine": "unknown"}
    app.store.set_state_many("_engine", {"last_tick": {"at": "2000-01-01T00:00:00+00:00",
                                                       "worker": "w1"}})
    stale = c.get("/readyz")
    assert stale.status_code == 503 and "stale" in stale.json()["checks"]["engine"]
    text = c.get("/metrics").text
    assert 'ehcbridge_deliveries{plugin="outlook",status="dead"} 1.0' in text
    for status in ("at_risk", "missed"):
        n = len(app.store.duty_rows(status=status))
        assert n >= 1 and f'ehcbridge_duties{{status="{status}"}} {n}.0' in text
    assert "ehcbridge_engine_last_tick_age_seconds" in text


def test_a_missed_duty_of_a_concluded_review_leaves_the_metrics_gauge(app: App) -> None:
    # An alert on ehcbridge_duties{status="missed"} must clear once the review is concluded
    # and the next one opened: what it missed is history (the figures keep it).
    from ehcbridge import transitions
    from ehcbridge.models import LONDON, DutyStatus, Outcome
    from ehcbridge.web.data import attention

    from .conftest import NOW, duty

    c = client(app)
    missed = len(app.store.duty_rows(status="missed"))  # all EHC-002's, its review current
    assert missed and f'ehcbridge_duties{{status="missed"}} {missed}.0' in c.get("/metrics").text
    old = app.store.case("EHC-002").review.id or 0
    app.store.schedule_meeting("EHC-002", start=datetime(2027, 1, 25, 10, tzinfo=LONDON),
                               end=datetime(2027, 1, 25, 11, tzinfo=LONDON), now=NOW)
    transitions.held(app.store, "EHC-002", now=NOW)
    transitions.decide(app.store, "EHC-002", outcome=Outcome.MAINTAIN, reason="", on=NOW.date(),
                       now=NOW)
    # The report was never sent: the concluded review keeps that duty missed, on record.
    app.store.save_duties(old, [duty("report_sent", date(2027, 1, 31), DutyStatus.MISSED)])
    assert [(case, rid) for case, rid, _d in app.store.duty_rows(status="missed")] \
        == [("EHC-002", old)]
    assert 'ehcbridge_duties{status="missed"} 0.0' in c.get("/metrics").text
    assert not [r for r in attention(app) if r.case_id == "EHC-002"]  # as the dashboard lists


def test_served_openapi_document_is_the_one_in_docs(app: App) -> None:
    served = client(app).get("/openapi.json").json()
    kept = REPO / "docs" / "openapi.json"
    assert kept.exists() and json.loads(kept.read_text()) == served, \
        "docs/openapi.json is out of date: write the served document there"


def test_users_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    env = {"EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'u.sqlite3'}"}
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "add", "sam@council.example", "--role", "caseworker"],
                      input="a long enough password\n", env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["users", "add", "short", "--role", "viewer"], input="short\n",
                      env=env)
    assert r.exit_code == 1 and "at least 12" in r.output
    r = runner.invoke(cli, ["users", "add", "x", "--role", "admin"], input="x" * 20, env=env)
    assert r.exit_code == 2
    listed = runner.invoke(cli, ["users", "list", "--json"], env=env)
    assert json.loads(listed.output) == [{"name": "sam@council.example", "role": "caseworker",
                                          "source": "local"}]
    assert "a long enough password" not in (tmp_path / "u.sqlite3").read_bytes().decode(
        "latin-1")
    assert runner.invoke(cli, ["users", "remove", "sam@council.example"], env=env).exit_code == 0
    r = runner.invoke(cli, ["users", "remove", "sam@council.example"], env=env)
    assert r.exit_code == 1 and "no user named" in r.output


def test_plugins_add_routes_that_need_sign_in(app: App) -> None:
    from ehcbridge import hookimpl
    from ehcbridge.testing import make_app, plugin_module
    from starlette.responses import PlainTextResponse

    @hookimpl
    def register_routes(routes: Any, ctx: Any) -> None:
        async def free(request: Any) -> Any:
            return PlainTextResponse(f"3 rooms free ({ctx.plugin})")
        routes.add("/free", free)
        routes.add("/book", free, methods=("POST",), role="caseworker")

    with_rooms = make_app(app.store, {"rooms": plugin_module("rooms",
                                                             register_routes=register_routes)})
    c = client(with_rooms)
    assert c.get("/plugins/rooms/free").status_code == 303
    viewer = signed_in(with_rooms, "viewer@council.example")
    assert viewer.get("/plugins/rooms/free").text == "3 rooms free (rooms)"
    page = viewer.get("/").text
    assert viewer.post("/plugins/rooms/book", data={"csrf": csrf_of(page)}).status_code == 403


# Entra ID, without a browser (the browser test walks the same flow) -----------------------


def _entra_sign_in(app: App, fake: Any, ca: str, user: dict[str, Any]) -> Any:
    import httpx

    fake.next_user = user
    c = client(app)
    start = c.get("/sign-in/entra")
    assert start.status_code == 303 and start.headers["location"].startswith(fake.base)
    import ssl

    at_issuer = httpx.get(start.headers["location"], verify=ssl.create_default_context(cafile=ca),
                          follow_redirects=False)
    back = at_issuer.headers["location"]
    assert back.startswith("https://testserver/auth/callback?")
    return c, c.get(back.removeprefix("https://testserver"))


def test_entra_sign_in_with_a_signed_token_and_app_roles(tmp_path: Path, entra: Any,
                                                         seeded_db: Path) -> None:
    import shutil

    from .conftest import make_app

    fake, settings = entra
    shutil.copy(seeded_db, tmp_path / "serve.sqlite3")
    app = make_app(tmp_path, **settings)
    c, done = _entra_sign_in(app, fake, settings["oidc_ca_bundle"],
                             {"preferred_username": "jo@council.example",
                              "roles": ["caseworker"]})
    assert done.status_code == 303 and done.headers["location"] == "/", done.text
    assert "Signed in as <strong>jo@council.example</strong> (caseworker)" in c.get("/").text
    # No app role: refused. A token signed by another key: refused. A used state: refused.
    _, no_role = _entra_sign_in(app, fake, settings["oidc_ca_bundle"],
                                {"preferred_username": "guest@council.example"})
    assert no_role.status_code == 401 and "not been given access" in no_role.text
    from cryptography.hazmat.primitives.asymmetric import rsa

    fake.sign_with = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    c2, forged = _entra_sign_in(app, fake, settings["oidc_ca_bundle"],
                                {"preferred_username": "jo@council.example",
                                 "roles": ["caseworker"]})
    assert forged.status_code == 401 and "failed verification" in forged.text
    assert c2.get("/").status_code == 303
    replay = c2.get("/auth/callback?code=x&state=used")
    assert replay.status_code == 401 and "expired" in replay.text
    app.close()


def test_serve_command_answers_health_and_runs_the_engine(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import httpx

    from .conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(EHCBRIDGE_STORE__URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}",
               EHCBRIDGE_ENGINE__TICK_SECONDS="1", EHCBRIDGE_LOAD_PLUGINS="outlook",
               EHCBRIDGE_PLUGINS__OUTLOOK__OUTBOX_DIR=str(tmp_path / "outbox"))
    proc = subprocess.Popen([sys.executable, "-m", "ehcbridge.cli", "serve", "--port", str(port),
                             "--with-engine"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        ready: Any = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200 and "ticked" in ready.json()["checks"]["engine"]:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert "ticked" in ready.json()["checks"]["engine"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 303 and page.headers["location"] == "/sign-in"
        assert "server" not in page.headers  # uvicorn does not announce itself
    finally:
        proc.terminate()
        proc.wait(10)


def test_caseworker_records_views_through_the_notices_store(app: App,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from ehcbridge.store import Store

    cw = signed_in(app, "cw@council.example")
    page = cw.get("/reviews/EHC-001").text
    if not hasattr(Store, "add_views"):  # issue 13's notices not merged: said, not hidden
        r = cw.post("/reviews/EHC-001/views", data={"csrf": csrf_of(page), "from": "x",
                                                    "on": "2027-02-01"})
        assert r.status_code == 501
        recorded: list[dict[str, Any]] = []
        monkeypatch.setattr(Store, "add_views", lambda self, case, **kw: recorded.append(
            {"case": case, **kw}), raising=False)
        monkeypatch.setattr(Store, "views", lambda self, case: [], raising=False)
        page = cw.get("/reviews/EHC-001").text
        assert "Record views" in page and "Views received" in page
        r = cw.post("/reviews/EHC-001/views", data={"csrf": csrf_of(page),
                                                    "from": "someone@example.org",
                                                    "on": "2027-01-30"})
        assert r.status_code == 303, r.text
        assert recorded == [{"case": "EHC-001", "contributor": "someone@example.org",
                             "role": None, "received_on": date(2027, 1, 30), "files": [],
                             "now": app.clock.now()}]
    r = cw.post("/reviews/EHC-001/views", data={"csrf": csrf_of(page), "from": "x",
                                                "on": "someday"})
    assert r.status_code == 422 and "is not a date" in r.text
    viewer = signed_in(app, "viewer@council.example")
    r = viewer.post("/reviews/EHC-001/views", data={"csrf": csrf_of(viewer.get("/").text),
                                                    "from": "x", "on": "2027-02-01"})
    assert r.status_code == 403


def test_the_due_counts_are_those_of_the_duties_calling_for_action(app: App) -> None:
    """The home page counts in SQL; the counts are what reading every duty gives, the
    amendments still owed on the review decided before included."""
    from datetime import timedelta

    from ehcbridge import transitions
    from ehcbridge.models import LONDON, DutyStatus, Outcome
    from ehcbridge.web.data import OPEN, acting, due_counts, term_bounds

    from .conftest import NOW

    app.store.schedule_meeting("EHC-002", start=datetime(2027, 1, 25, 10, tzinfo=LONDON),
                               end=datetime(2027, 1, 25, 11, tzinfo=LONDON), now=NOW)
    transitions.held(app.store, "EHC-002", now=NOW)
    transitions.decide(app.store, "EHC-002", outcome=Outcome.AMEND, reason="", on=NOW.date(),
                       now=NOW)
    earlier = [d for case, rid, d in acting(app, OPEN) if case == "EHC-002"
               and rid != app.store.case("EHC-002").review.id]
    assert [d.name for d in earlier] and all(d.status is not DutyStatus.MET for d in earlier)
    rows = acting(app, OPEN)
    for day in (NOW.date() + timedelta(days=n) for n in range(0, 120, 9)):
        week = day - timedelta(days=day.weekday())
        first, last = term_bounds(day)
        assert due_counts(app, day) == {
            "week": sum(1 for *_, d in rows if d.due and week <= d.due <= week + timedelta(6)),
            "term": sum(1 for *_, d in rows if d.due and first <= d.due <= last)}
