"""iCalendar feeds of a team's review meetings, from a file and from a local HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from ehcbridge.models import Role
from ehcbridge_social_care import poll_feed
from ehcbridge_social_care.importers import (
    FeedError,
    ImportRefused,
    describe_source,
    import_source,
    load_records,
)
from ehcbridge_social_care.settings import SocialCareSettings
from pydantic import SecretStr

from .conftest import UPN_A, UPN_B, UPN_C, CountingStore, context


def vevent(uid: str, start: str, *lines: str) -> str:
    body = "\r\n".join(lines)
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T090000Z\r\nDTSTART{start}\r\n"
            f"SUMMARY:Review meeting for a named child\r\n{body}\r\nEND:VEVENT\r\n")


def vcalendar(*events: str, team: str | None = "North CLA team") -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LA//Case system//EN\r\n"
    if team:
        head += f"X-EHCBRIDGE-TEAM:{team}\r\n"
    return head + "".join(events) + "END:VCALENDAR\r\n"


FEED = vcalendar(
    # 1: UPN property, CATEGORIES, a London date-time, ORGANIZER as the worker
    vevent("r1@la", ";TZID=Europe/London:20270312T100000", f"X-EHCBRIDGE-UPN:{UPN_A}",
           "CATEGORIES:CLA,Review", "ORGANIZER;CN=Jo Worker:mailto:Jo.Worker@la.example.gov.uk"),
    # 2: description convention, all-day date, its own team
    vevent("r2@la", ";VALUE=DATE:20270115",
           f"DESCRIPTION:UPN: {UPN_B}\\nReview type: cp\\nTeam: Child Protection East"),
    # 3: social care id + DOB, needs the mapping file
    vevent("r3@la", ":20270201T140000Z", "X-EHCBRIDGE-CHILD-ID:LA003",
           "X-EHCBRIDGE-DOB:2015-09-09", "X-EHCBRIDGE-REVIEW-TYPE:cin"),
    # 4: not a review (no child): ignored
    vevent("team@la", ":20270105T090000Z", "CATEGORIES:Team meeting"),
    # 5: a child id the mapping does not know
    vevent("r5@la", ":20270201T140000Z", "X-EHCBRIDGE-CHILD-ID:LA999",
           "X-EHCBRIDGE-DOB:2015-09-09", "CATEGORIES:cla"),
)


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "map.csv"
    path.write_text(f"social_care_id,upn,dob\nLA003,{UPN_C},2015-09-09\n")
    return path


def write_ics(tmp_path: Path, text: str, name: str = "feed.ics") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_ics_file_import(tmp_path: Path, store: CountingStore, mapping: Path) -> None:
    report = import_source(context(store), str(write_ics(tmp_path, FEED)), mapping=mapping)
    assert report.layout == "ics"
    assert (report.rows, report.matched_rows, report.ignored) == (5, 3, 1)
    assert [str(u) for u in report.unmatched] == [
        "event 5: social care id not in the mapping file"]
    records = {r.upn: r for r in load_records(context(store))}
    assert [(r.kind, r.day, r.uid) for r in records[UPN_A].reviews] == [
        ("cla", date(2027, 3, 12), "r1@la")]
    assert [(r.kind, r.day) for r in records[UPN_B].reviews] == [("cp", date(2027, 1, 15))]
    assert [(r.kind, r.day) for r in records[UPN_C].reviews] == [("cin", date(2027, 2, 1))]
    (a,) = store.invitees["EHC-A"]
    assert (a.role, a.name, a.email, a.team, a.source) == (
        Role.SOCIAL_CARE, "North CLA team", "jo.worker@la.example.gov.uk", "North CLA team",
        "social_care")
    (b,) = store.invitees["EHC-B"]
    assert (b.name, b.email) == ("Child Protection East", None)
    # The summary (which names the child) is never kept.
    assert "named child" not in str(store.state)


def test_late_evening_meeting_is_dated_in_london(tmp_path: Path, store: CountingStore) -> None:
    feed = vcalendar(vevent("late@la", ":20270611T233000Z", f"X-EHCBRIDGE-UPN:{UPN_A}",
                            "CATEGORIES:cla"))
    import_source(context(store), str(write_ics(tmp_path, feed)))
    assert load_records(context(store))[0].reviews[0].day == date(2027, 6, 12)  # 00:30 BST


def test_moved_and_cancelled_events_replace_earlier_dates(tmp_path: Path,
                                                          store: CountingStore) -> None:
    ctx = context(store)
    first = vcalendar(
        vevent("m@la", ";VALUE=DATE:20270312", f"X-EHCBRIDGE-UPN:{UPN_A}", "CATEGORIES:cla"),
        vevent("c@la", ";VALUE=DATE:20270115", f"X-EHCBRIDGE-UPN:{UPN_B}", "CATEGORIES:cp"),
    )
    import_source(ctx, str(write_ics(tmp_path, first)))
    second = vcalendar(
        vevent("m@la", ";VALUE=DATE:20270319", f"X-EHCBRIDGE-UPN:{UPN_A}", "CATEGORIES:cla"),
        vevent("c@la", ";VALUE=DATE:20270115", f"X-EHCBRIDGE-UPN:{UPN_B}", "CATEGORIES:cp",
               "STATUS:CANCELLED"),
    )
    import_source(ctx, str(write_ics(tmp_path, second)))
    records = {r.upn: r for r in load_records(ctx)}
    assert [r.day for r in records[UPN_A].reviews] == [date(2027, 3, 19)]
    assert records[UPN_B].reviews == []


def test_bad_events_name_the_event_and_property(tmp_path: Path, store: CountingStore) -> None:
    feed = vcalendar(
        vevent("1@la", ";VALUE=DATE:20270312", f"X-EHCBRIDGE-UPN:{UPN_A}"),
        vevent("2@la", ";VALUE=DATE:20270312", f"X-EHCBRIDGE-UPN:{UPN_A}", "CATEGORIES:cla,cp"),
        vevent("3@la", ";VALUE=DATE:20270312", "X-EHCBRIDGE-UPN:nope", "CATEGORIES:cla"),
        vevent("4@la", ";VALUE=DATE:20270312", f"X-EHCBRIDGE-UPN:{UPN_A}",
               "X-EHCBRIDGE-REVIEW-TYPE:lac"),
    )
    path = write_ics(tmp_path, feed)
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(path))
    assert [str(e) for e in refused.value.errors] == [
        f"{path} event 1, column CATEGORIES: needs exactly one of cla, cp, cin (or "
        "X-EHCBRIDGE-REVIEW-TYPE)",
        f"{path} event 2, column CATEGORIES: has more than one review type: cla, cp",
        f"{path} event 3, column X-EHCBRIDGE-UPN: 'nope' not a valid UPN: must be 13 "
        "characters",
        f"{path} event 4, column X-EHCBRIDGE-REVIEW-TYPE: 'lac' is not one of cla, cp, cin",
    ]
    assert store.state == {}


def test_not_an_icalendar_file_is_refused(tmp_path: Path, store: CountingStore) -> None:
    path = write_ics(tmp_path, "hello, this is not a calendar\n")
    with pytest.raises(ImportRefused, match="not an iCalendar file"):
        import_source(context(store), str(path))


class FeedHandler(http.server.BaseHTTPRequestHandler):
    """Serves FEED at /secret-token/feed.ics, 404 elsewhere, and records requests."""

    body = FEED.encode()
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.path != "/secret-token/feed.ics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_ics_url_import(feed_server: str, store: CountingStore, mapping: Path) -> None:
    report = import_source(context(store), f"{feed_server}/secret-token/feed.ics",
                           mapping=mapping)
    assert report.layout == "ics" and report.matched_rows == 3
    assert report.source == feed_server  # the token in the path is never shown
    assert "secret-token" not in str(store.audits)


def test_feed_errors_do_not_show_the_token(feed_server: str, store: CountingStore) -> None:
    with pytest.raises(FeedError) as failed:
        import_source(context(store), f"{feed_server}/secret-token/wrong.ics")
    assert str(failed.value) == f"{feed_server}: the feed answered HTTP 404"
    with pytest.raises(FeedError, match="cannot fetch the feed") as refused:
        import_source(context(store), "http://127.0.0.1:9/secret-token/feed.ics")
    assert "secret-token" not in str(refused.value)
    assert store.state == {}


def test_scheduled_poll_imports_the_configured_feed(feed_server: str,
                                                    store: CountingStore) -> None:
    settings = SocialCareSettings(feed_url=SecretStr(f"{feed_server}/secret-token/feed.ics"))
    poll_feed(context(store, settings))
    assert {r.upn for r in load_records(context(store))} == {UPN_A, UPN_B}
    before = dict(store.state)
    poll_feed(context(CountingStore(plugin="social_care")))  # no feed_url: nothing happens
    assert store.state == before


def test_describe_source() -> None:
    assert describe_source("https://user:pw@cal.example.org/tok/x.ics?key=1") == (
        "https://cal.example.org")
    assert describe_source("/data/feed.ics") == "/data/feed.ics"


def test_oversized_or_failing_feed_is_refused() -> None:
    import httpx
    from ehcbridge_social_care.importers import fetch_feed

    big = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 5000))
    with pytest.raises(FeedError, match="larger than 1000 bytes"):
        fetch_feed("https://cal.example.org/t/feed.ics", transport=big, max_bytes=1000)
    ok = httpx.MockTransport(lambda request: httpx.Response(200, content=FEED.encode()))
    assert fetch_feed("https://cal.example.org/t/feed.ics", transport=ok) == FEED.encode()
