"""Statutory returns as councils submit them: SSDA903 Episodes and Reviews (CSV, .xlsx, XML) and
the CIN census XML; reg 33 projections from the period of care; hostile and oversized input.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
import pytest
from ehcbridge.formats import Limits
from ehcbridge_social_care.importers import (
    FeedError,
    ImportRefused,
    detect_layout,
    import_source,
    load_records,
)
from ehcbridge_social_care.records import occasions

from .conftest import DOB_A, DOB_B, UPN_A, UPN_B, UPN_C, CountingStore, context


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    """The SSDA903 Header table as returned: CHILD, SEX, DOB, ETHNIC, UPN, MOTHER, MC_DOB."""
    return write(tmp_path, "header.csv",
                 "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\r\n"
                 f"LA001,1,02/05/2014,WBRI,{UPN_A},,\r\n"
                 f"LA002,2,30/01/2012,WBRI,{UPN_B},,\r\n"
                 "LA009,1,01/01/2013,WBRI,UN1,,\r\n")


EPISODES = (
    "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,"
    "URN\r\n"
    # LA001 came into care on 1 Sep 2025 and is still looked after (a placement change on 3 Oct)
    "LA001,01/09/2025,S,C2,N1,U1,PR1,03/10/2025,X1,CARPL,AB1 2,CD3 4,SC123456\r\n"
    "LA001,03/10/2025,P,C2,N1,U4,PR1,,,,AB1 2,CD3 4,SC123457\r\n"
    # LA002: an earlier period (ended 2023), then one that ended on 30 Jun 2025
    "LA002,01/02/2022,S,V2,N4,U1,PR1,01/03/2023,E11,,AB1 2,CD3 4,SC123456\r\n"
    "LA002,10/01/2025,S,C2,N1,U1,PR1,30/06/2025,E13,,AB1 2,CD3 4,SC123456\r\n"
)
REVIEWS = (
    "CHILD,DOB,REVIEW,REVIEW_CODE\r\n"
    "LA001,02/05/2014,26/09/2025,PN1\r\n"
    "LA002,30/01/2012,05/02/2025,PN1\r\n"
)


def days(upn: str, store: CountingStore) -> list[tuple[date, bool]]:
    (record,) = load_records(context(store), upn)
    return [(o.day, o.projected) for o in occasions(record) if o.kind == "cla"]


def test_reg_33_new_to_care_second_review_within_3_months_then_6(
        tmp_path: Path, store: CountingStore, mapping: Path) -> None:
    episodes = write(tmp_path, "episodes.csv", EPISODES)
    reviews = write(tmp_path, "reviews.csv", REVIEWS)
    assert detect_layout(str(episodes), episodes.read_bytes()) == "ssda903_episodes"
    report = import_source(context(store), str(episodes), mapping=mapping)
    assert (report.layout, report.matched_rows, report.children) == ("ssda903_episodes", 2, 2)
    import_source(context(store), str(reviews), mapping=mapping)
    # 26 Sep 2025 + 3 months is Boxing Day: the review must be held by Wed 24 Dec 2025.
    assert days(UPN_A, store) == [(date(2025, 9, 26), False), (date(2025, 12, 24), True),
                                  (date(2026, 6, 24), True)]


def test_no_projections_after_the_episode_ends(tmp_path: Path, store: CountingStore,
                                               mapping: Path) -> None:
    import_source(context(store), str(write(tmp_path, "e.csv", EPISODES)), mapping=mapping)
    import_source(context(store), str(write(tmp_path, "r.csv", REVIEWS)), mapping=mapping)
    assert days(UPN_B, store) == [(date(2025, 2, 5), False)]


def test_a_new_child_with_no_review_yet_is_projected_from_the_start(
        tmp_path: Path, store: CountingStore, mapping: Path) -> None:
    import_source(context(store), str(write(tmp_path, "e.csv", EPISODES)), mapping=mapping)
    # 20 working days after Mon 1 Sep 2025 is Mon 29 Sep; then 3 months (29 Dec is a Monday).
    assert days(UPN_A, store) == [(date(2025, 9, 29), True), (date(2025, 12, 29), True)]


def ssda903_xml(upn_b: str = UPN_B) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SSDA903>
  <CHILD>
    <HEADER><CHILDID>LA001</CHILDID><SEX>1</SEX><DOB>2014-05-02</DOB><UPN>{UPN_A}</UPN></HEADER>
    <EPISODES>
      <EPISODE><DECOM>2025-09-01</DECOM><RNE>S</RNE><LS>C2</LS><DEC/></EPISODE>
    </EPISODES>
    <REVIEWS><REVIEW><REVIEW>2025-09-26</REVIEW><REVIEW_CODE>PN1</REVIEW_CODE></REVIEW></REVIEWS>
  </CHILD>
  <CHILD>
    <HEADER><CHILDID>LA002</CHILDID><SEX>2</SEX><DOB>2012-01-30</DOB><UPN>{upn_b}</UPN></HEADER>
    <EPISODES>
      <EPISODE><DECOM>2025-01-10</DECOM><RNE>S</RNE><DEC>2025-06-30</DEC></EPISODE>
    </EPISODES>
    <REVIEWS><REVIEW><REVIEW>2025-02-05</REVIEW><REVIEW_CODE>PN0</REVIEW_CODE></REVIEW></REVIEWS>
  </CHILD>
</SSDA903>
"""


def test_ssda903_xml_matched_by_upn(tmp_path: Path, store: CountingStore) -> None:
    path = write(tmp_path, "return.xml", ssda903_xml())
    report = import_source(context(store), str(path))
    assert (report.layout, report.rows, report.matched_rows, report.children) == \
        ("ssda903_xml", 2, 2, 2)
    assert days(UPN_A, store) == [(date(2025, 9, 26), False), (date(2025, 12, 24), True),
                                  (date(2026, 6, 24), True)]
    assert days(UPN_B, store) == [(date(2025, 2, 5), False)]


def test_ssda903_xml_wrong_check_letter_and_hostile_xml(tmp_path: Path,
                                                         store: CountingStore) -> None:
    wrong = "A" + UPN_B[1:] if UPN_B[0] != "A" else "B" + UPN_B[1:]
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(write(tmp_path, "r.xml", ssda903_xml(wrong))))
    assert str(refused.value.errors[0]).endswith(
        f"r.xml child 2, column UPN: '{wrong}' not a valid UPN: check letter does not match")
    bomb = ('<?xml version="1.0"?><!DOCTYPE SSDA903 [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            "<SSDA903><CHILD><HEADER><CHILDID>&b;</CHILDID></HEADER></CHILD></SSDA903>")
    with pytest.raises(ImportRefused, match="declares a DTD or entities"):
        import_source(context(store), str(write(tmp_path, "b.xml", bomb)), layout="ssda903_xml")
    with pytest.raises(ImportRefused, match="is not well-formed XML"):
        import_source(context(store), str(write(tmp_path, "c.xml", "<SSDA903><CHILD>")),
                      layout="ssda903_xml")
    assert store.state == {}


CIN = f"""<?xml version="1.0" encoding="UTF-8"?>
<Message>
  <Header><Collection>CIN</Collection><Year>2026</Year><ReferenceDate>2026-03-31</ReferenceDate>
    <SourceLevel>L</SourceLevel><LEA>801</LEA><SoftwareCode>Local</SoftwareCode></Header>
  <Children>
    <Child>
      <ChildIdentifiers><LAchildID>LA001</LAchildID><UPN>{UPN_A}</UPN>
        <PersonBirthDate>2014-05-02</PersonBirthDate><GenderCurrent>1</GenderCurrent>
      </ChildIdentifiers>
      <ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2025-06-02</CINreferralDate><ReferralSource>1A</ReferralSource>
        <ChildProtectionPlans>
          <CPPstartDate>2025-07-01</CPPstartDate><InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse>
          <Reviews><CPPreviewDate>2025-09-25</CPPreviewDate><CPPreviewDate>2026-03-20</CPPreviewDate></Reviews>
        </ChildProtectionPlans>
      </CINdetails>
    </Child>
    <Child>
      <ChildIdentifiers><LAchildID>LA003</LAchildID><UPN>{UPN_C}</UPN>
        <PersonBirthDate>2015-09-09</PersonBirthDate></ChildIdentifiers>
      <CINdetails>
        <CINreferralDate>2025-01-06</CINreferralDate>
        <CINPlanDates><CINPlanStartDate>2025-02-03</CINPlanStartDate></CINPlanDates>
        <ChildProtectionPlans>
          <CPPstartDate>2024-05-01</CPPstartDate><CPPendDate>2025-01-31</CPPendDate>
          <Reviews><CPPreviewDate>2024-07-30</CPPreviewDate></Reviews>
        </ChildProtectionPlans>
      </CINdetails>
    </Child>
  </Children>
</Message>
"""


def test_cin_census_child_protection_reviews_and_plans(tmp_path: Path,
                                                       store: CountingStore) -> None:
    path = write(tmp_path, "cin.xml", CIN)
    report = import_source(context(store), str(path))
    assert (report.layout, report.matched_rows, report.children) == ("cin_census", 2, 2)
    (a,) = load_records(context(store), UPN_A)
    cp = [(o.day, o.projected) for o in occasions(a) if o.kind == "cp"]
    assert cp == [(date(2025, 9, 25), False), (date(2026, 3, 20), False),
                  (date(2026, 9, 18), True), (date(2027, 3, 18), True)]
    (c,) = load_records(context(store), UPN_C)
    assert c.period_start == {"cp": date(2024, 5, 1), "cin": date(2025, 2, 3)}
    assert c.period_end == {"cp": date(2025, 1, 31)}
    assert [o for o in occasions(c) if o.projected] == []  # the CP plan has ended
    assert "LA001" not in str(store.state) and "2014-05-02" not in str(store.state)


def test_reviews_table_from_an_excel_workbook_and_windows_1252(
        tmp_path: Path, store: CountingStore, mapping: Path) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Reviews"
    ws.append(["CHILD", "DOB", "REVIEW", "REVIEW_CODE"])
    ws.append(["LA001", DOB_A, date(2025, 9, 26), "PN1"])
    ws.append(["LA002", DOB_B, "05-Feb-2025", "PN1"])
    book.save(tmp_path / "reviews.xlsx")
    report = import_source(context(store), str(tmp_path / "reviews.xlsx"), mapping=mapping)
    assert (report.layout, report.matched_rows) == ("ssda903", 2)
    text = f"upn,review_type,review_date,team\r\n{UPN_C},cin,01/03/25,Équipe Nord \u2013 CIN\r\n"
    generic = write(tmp_path, "generic.csv", text, encoding="cp1252")
    report = import_source(context(store), str(generic))
    assert report.encoding == "Windows-1252" and report.matched_rows == 1
    (c,) = load_records(context(store), UPN_C)
    assert c.worker is not None and c.worker.team == "Équipe Nord \u2013 CIN"


def test_a_wrong_check_letter_is_refused_in_every_table(tmp_path: Path, store: CountingStore,
                                                        mapping: Path) -> None:
    wrong = "A" + UPN_C[1:] if UPN_C[0] != "A" else "B" + UPN_C[1:]
    generic = write(tmp_path, "g.csv", f"upn,review_type,review_date\r\n{wrong},cla,2025-09-26\r\n")
    with pytest.raises(ImportRefused, match="check letter does not match"):
        import_source(context(store), str(generic))
    bad_map = write(tmp_path, "m.csv", f"social_care_id,upn\r\nLA001,{wrong}\r\n")
    with pytest.raises(ImportRefused, match="check letter does not match"):
        import_source(context(store), str(write(tmp_path, "r.csv", REVIEWS)), mapping=bad_map)
    with pytest.raises(ImportRefused, match="check letter does not match"):
        import_source(context(store), str(write(tmp_path, "c.xml", CIN.replace(UPN_C, wrong))))
    assert store.state == {}


def ics(start: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//LA//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
            f"DTSTAMP:20261101T090000Z\r\nDTSTART:{start}\r\nX-EHCBRIDGE-UPN:{UPN_A}\r\n"
            "CATEGORIES:cla\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize("start", ["00010101T000000Z", "99991231T233000Z", "00010101"])
def test_ics_dates_outside_1900_to_2100_are_event_errors(tmp_path: Path, store: CountingStore,
                                                         start: str) -> None:
    with pytest.raises(ImportRefused) as refused:
        import_source(context(store), str(write(tmp_path, "feed.ics", ics(start))))
    assert str(refused.value.errors[0]).startswith(f"{tmp_path / 'feed.ics'} event 1, column "
                                                   "DTSTART:")
    assert "outside the years 1900 to 2100" in str(refused.value.errors[0])


def test_a_local_ics_over_the_feed_limit_is_refused_like_a_url(tmp_path: Path,
                                                               store: CountingStore) -> None:
    big = tmp_path / "big.ics"
    with big.open("wb") as fh:
        fh.truncate(25 * 1024 * 1024)  # 25 MB, sparse: the size is refused before reading
    with pytest.raises(FeedError, match="over the limit of 20,971,520 bytes"):
        import_source(context(store), str(big))
    import dataclasses

    small = dataclasses.replace(context(store), extras={"limits": Limits(max_file_bytes=2048)})
    episodes = write(tmp_path, "e.csv", EPISODES * 10)
    with pytest.raises(FeedError, match="over the limit of 2,048 bytes"):
        import_source(small, str(episodes))
    assert store.state == {}
