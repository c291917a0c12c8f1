"""Reading CTF files: fields kept, fields ignored, pupils skipped and files refused."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import pytest
from ctfgen import (
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    GenContact,
    pupil,
    upn_for,
    write_ctf,
    write_ctf_stream,
)
from ehcbridge_sims.ctf import CtfError, iter_ctf, read_ctf
from ehcbridge_sims.records import MisContact, MisPupil
from ehcbridge_sims.upn import make_upn

# Written by hand from the DfE CTF specification's message structure (not by ctfgen): element
# order as an MIS exports it, a CTF 19 header, unknown and sensitive sections to be ignored,
# a closed SEN entry, Gender instead of Sex, reception year.
SPEC_SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<CTfile>
  <Header>
    <DocumentName>Common Transfer File</DocumentName>
    <CTFversion>19.0</CTFversion>
    <DateTime>2025-07-18T15:02:11</DateTime>
    <DocumentQualifier>full</DocumentQualifier>
    <DataQualifier>partial</DataQualifier>
    <DataDescriptor>Transfer</DataDescriptor>
    <SupplierID>SIMS</SupplierID>
    <SourceSchool>
      <LEA>938</LEA>
      <Estab>2345</Estab>
      <URN>125678</URN>
      <SchoolName>Hillside Primary School</SchoolName>
      <AcademicYear>2024</AcademicYear>
    </SourceSchool>
    <DestSchool><LEA>938</LEA><Estab>4001</Estab></DestSchool>
    <SuppInfo><Note>free text</Note></SuppInfo>
  </Header>
  <CTFpupilData>
    <Pupil>
      <UPN>{upn1}</UPN>
      <UniqueLearnerNumber>4810123456</UniqueLearnerNumber>
      <UCI>{upn1}</UCI>
      <Surname>O'Example-Smith</Surname>
      <Forename>Zoë</Forename>
      <DOB>2014-02-28</DOB>
      <Gender>M</Gender>
      <BasicDetails>
        <FormerSurname>Example</FormerSurname>
        <PreferredSurname>Smith</PreferredSurname>
        <NCyearActual>6</NCyearActual>
        <Ethnicity>WIRI</Ethnicity>
        <EthnicitySource>P</EthnicitySource>
        <Languages><Type>F</Type><Language>ENG</Language></Languages>
        <MedicalFlag>true</MedicalFlag>
        <ServiceChild>N</ServiceChild>
      </BasicDetails>
      <LookedAfter><InCare>false</InCare></LookedAfter>
      <SENhistory>
        <SEN><StartDate>2018-09-05</StartDate><EndDate>2021-01-10</EndDate>
             <SENprovision>K</SENprovision></SEN>
        <SEN><StartDate>2021-01-11</StartDate><SENprovision>E</SENprovision></SEN>
        <SENneeds>
          <SENneed><SENtype>SEMH</SENtype><SENtypeRank>2</SENtypeRank></SENneed>
          <SENneed><SENtype>ASD</SENtype><SENtypeRank>1</SENtypeRank></SENneed>
          <SENneed><SENtype>MLD</SENtype><SENtypeRank>3</SENtypeRank>
                   <NeedEndDate>2020-07-01</NeedEndDate></SENneed>
        </SENneeds>
      </SENhistory>
      <Address><BS7><PAON>12</PAON><Street>Any Road</Street></BS7></Address>
      <Phones>
        <Phone><TelephoneType>H</TelephoneType><PhoneNo>01632 960123</PhoneNo></Phone>
      </Phones>
      <Contacts>
        <Contact>
          <Order>2</Order>
          <Title>Mr</Title>
          <Surname>Smith</Surname>
          <Forename>Dan</Forename>
          <Gender>M</Gender>
          <Relationship>PAF</Relationship>
          <Responsibility>true</Responsibility>
          <AddressAsPupil>true</AddressAsPupil>
          <Phones>
            <Phone><TelephoneType>M</TelephoneType><PhoneNo>07700 900123</PhoneNo></Phone>
          </Phones>
          <Email>dan.smith@example.org</Email>
        </Contact>
        <Contact>
          <Order>1</Order>
          <Title>Ms</Title>
          <Surname>O'Example</Surname>
          <Forename>Ann</Forename>
          <Relationship>PAM</Relationship>
          <Responsibility>true</Responsibility>
          <Email>ann@example.org</Email>
        </Contact>
        <Contact>
          <Order>3</Order>
          <Surname>Minder</Surname>
          <Relationship>CHM</Relationship>
          <Responsibility>false</Responsibility>
          <Email>minder@example.org</Email>
        </Contact>
      </Contacts>
      <Attendance><YearData><Year>2024</Year><SessionsPossible>380</SessionsPossible>
        <SessionsAuthorised>4</SessionsAuthorised></YearData></Attendance>
      <StageAssessments><KeyStage><Stage>KS1</Stage></KeyStage></StageAssessments>
      <SchoolHistory><School><LEA>938</LEA><Estab>2001</Estab></School></SchoolHistory>
    </Pupil>
    <Pupil>
      <UPN>{upn2}</UPN>
      <Surname>Example</Surname>
      <Forename>Robin</Forename>
      <DOB>2020-12-01</DOB>
      <Sex>F</Sex>
      <BasicDetails><NCyearActual>R</NCyearActual></BasicDetails>
    </Pupil>
  </CTFpupilData>
</CTfile>
"""

# In the style of the arcio-uk CTF test data generator's output (xml-js compact): each contact in
# its own <Contacts> element, dates as DD/MM/YYYY and SEN start dates as DD/MM/YY.
ARCIO_STYLE = """<CTfile>
    <Header>
        <DocumentName>Common Transfer File</DocumentName>
        <CTFversion>22.0</CTFversion>
        <DateTime>2023-03-01T10:00:00</DateTime>
        <DocumentQualifier>full</DocumentQualifier>
        <SupplierID>ArcioLLC</SupplierID>
        <SourceSchool>
            <LEA>823</LEA>
            <Estab>4012</Estab>
            <SchoolName>Example Upper School</SchoolName>
            <AcademicYear>2022</AcademicYear>
        </SourceSchool>
    </Header>
    <CTFpupilData>
        <Pupil>
            <UPN>{upn}</UPN>
            <Forename>Kit</Forename>
            <Surname>Sample</Surname>
            <DOB>10/06/2009</DOB>
            <Gender>F</Gender>
            <SENhistory>
                <SEN><StartDate>01/09/19</StartDate><SENprovision>K</SENprovision></SEN>
                <SEN><StartDate>14/02/22</StartDate><SENprovision>e</SENprovision></SEN>
                <SENneeds><SENneed><SENtypeRank>0</SENtypeRank><SENtype>PD</SENtype></SENneed>
                </SENneeds>
                <SuppInfo/>
            </SENhistory>
            <Contacts>
                <Order>3</Order>
                <Title>Mrs</Title>
                <Surname>Sample</Surname>
                <Forename>Jo</Forename>
                <Relationship>PAM</Relationship>
                <Responsibility>true</Responsibility>
                <Email>jo.sample@example.com</Email>
            </Contacts>
            <Contacts>
                <Surname>Sample</Surname>
                <Relationship>PAF</Relationship>
                <Responsibility>false</Responsibility>
                <Phones><TelephoneType>M</TelephoneType><PhoneNo>07700 900999</PhoneNo></Phones>
            </Contacts>
        </Pupil>
    </CTFpupilData>
</CTfile>
"""


def test_snapshot_has_every_field() -> None:
    full = MisPupil("A", "b", "c", preferred_forename="d", preferred_surname="e",
                    looked_after=True, leaving_date="2026-01-01")
    assert [f.name for f in fields(MisPupil)] == list(full.data())
    assert [f.name for f in fields(MisContact)] == list(MisContact().data())
    p = MisPupil("A", "b", "c", needs=("ASD",), contacts=(MisContact(email="x@y.z"),))
    assert MisPupil.from_data(p.data()) == p


def test_generated_file_keeps_only_what_reviews_need(tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "a.xml", [pupil(3)])
    ctf = read_ctf(path)
    assert ctf.header.version == "21.0"
    assert ctf.header.urn == "100001" and ctf.header.school_name == "Example Academy"
    (p,) = ctf.pupils
    assert p.upn == upn_for(3)
    assert (p.forename, p.surname, p.dob, p.sex, p.nc_year) == ("Charlie", "Dummy",
                                                                  "2011-04-04", "M", 4)
    assert p.sen_provision == "E"  # K from 2019, then E from 2021
    assert p.needs == ("ASD", "SLCN")
    assert [c.parental_responsibility for c in p.contacts] == [True, False]
    assert p.parent_emails().keys() == {"parent3@example.net"}
    stored = repr(p.data())
    for sensitive in ("WBRI", "FSM", "KS2", "SessionsPossible", "1234567890", "Middle"):
        assert sensitive not in stored
    assert ctf.problems == []
    assert len(ctf.sha256) == 64


def test_independent_sample_in_spec_style(tmp_path: Path) -> None:
    upn1, upn2 = make_upn("93823451400A"), make_upn("938234520001")
    path = tmp_path / "938_CTF_4001_001.XML"
    path.write_text(SPEC_SAMPLE.format(upn1=upn1, upn2=upn2), encoding="utf-8")
    ctf = read_ctf(path)
    assert ctf.header.school_key == "urn:125678"
    first, second = ctf.pupils
    assert (first.forename, first.surname) == ("Zoë", "O'Example-Smith")
    assert (first.sex, first.nc_year, first.school_urn) == ("M", 6, "125678")
    assert first.sen_provision == "E"
    assert first.needs == ("ASD", "SEMH")  # ranked; the ended MLD need is dropped
    record = first.to_record("sims:ctf")
    assert [c.forename for c in record.contacts] == ["Ann", "Dan", None]  # by Order
    assert record.contacts[1].phone == "07700 900123"
    assert {c.email for c in record.contacts if c.parental_responsibility} == {
        "ann@example.org", "dan.smith@example.org"}
    assert (second.nc_year, second.sex, second.sen_provision, second.contacts) == (0, "F", None,
                                                                                  ())


def test_arcio_style_output(tmp_path: Path) -> None:
    upn = make_upn("823401222001")
    path = tmp_path / "arcio.xml"
    path.write_text(ARCIO_STYLE.format(upn=upn), encoding="utf-8")
    ctf = read_ctf(path)
    assert ctf.header.school_key == "dfe:8234012"  # no URN: LA and establishment number
    (p,) = ctf.pupils
    assert p.dob == "2009-06-10"
    assert p.sen_provision == "E" and p.needs == ("PD",)
    assert [(c.relationship, c.parental_responsibility, c.email, c.phone) for c in p.contacts] == [
        ("PAM", True, "jo.sample@example.com", None), ("PAF", False, None, "07700 900999")]


def test_default_namespace_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ns.xml"
    with path.open("w") as out:
        write_ctf_stream(out, [pupil(1)], namespace="http://www.example.org/ctf")
    assert [p.upn for p in read_ctf(path).pupils] == [upn_for(1)]


def test_bad_pupils_are_reported_and_skipped(tmp_path: Path) -> None:
    bad_upn = "A" + upn_for(2)[1:] if upn_for(2)[0] != "A" else "B" + upn_for(2)[1:]
    path = write_ctf(tmp_path / "mixed.xml", [
        pupil(0),
        pupil(2, upn=bad_upn),
        pupil(0, forename="Again"),
        pupil(4, dob="2013-13-01"),
        pupil(5, nc_year="Y27"),
        pupil(6, surname=""),
        pupil(7, contacts=(GenContact(email="not-an-address"),)),
        pupil(8, sen=(("2020-01-01", "S"),)),
    ])
    ctf = read_ctf(path)
    assert [p.upn for p in ctf.pupils] == [upn_for(0), upn_for(7), upn_for(8)]
    messages = [str(p) for p in ctf.problems]
    assert messages[0] == f"mixed.xml pupil 2 (UPN {bad_upn}), column UPN: UPN check letter " \
                          "does not match"
    assert "pupil 3" in messages[1] and "appears twice" in messages[1]
    assert "pupil 4" in messages[2] and "DOB" in messages[2] and "is not a date" in messages[2]
    assert "pupil 5" in messages[3] and "NCyearActual" in messages[3]
    assert "pupil 6" in messages[4] and "Surname: is missing" in messages[4]
    assert "Contact/Email" in messages[5] and "field ignored" in messages[5]
    assert "SENprovision" in messages[6] and "field ignored" in messages[6]
    assert ctf.pupils[1].contacts[0].email is None
    assert ctf.pupils[2].sen_provision is None
    assert bad_upn not in ctf.problems[0].redacted()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<CTfile><Header><CTFversion>21.0</CTFversion></Header><CTFpupilData><Pupil>",
         "not well-formed XML at line 1"),
        ("", "not well-formed XML"),
        ("<CTfile><Header><CTFversion>21.0</CTF></Header></CTfile>", "not well-formed"),
        ('<?xml version="1.0"?><Census><Header/></Census>', "root element is <Census>"),
        ("<CTfile><Header><DocumentName>x</DocumentName></Header></CTfile>", "no <CTFversion>"),
        ("<CTfile><Header><CTFversion>15.0</CTFversion></Header></CTfile>",
         "version 15.0 is not supported"),
        ("<CTfile><CTFpupilData><Pupil/></CTFpupilData></CTfile>", "before the <Header>"),
        ("<CTfile><Other/></CTfile>", "there is no <Header>"),
        (BILLION_LAUGHS, "declares a DTD"),
        (EXTERNAL_ENTITY, "declares a DTD"),
    ],
)
def test_refused_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(CtfError, match=message) as info:
        read_ctf(path)
    assert str(info.value).startswith("bad.xml:")


def test_xml_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(CtfError):
        read_ctf(path)
    assert time.perf_counter() - started < 1.0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CtfError, match="cannot be read"):
        read_ctf(tmp_path / "nope.xml")


def test_reading_streams_and_reports_progress(tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "many.xml", 300)
    seen: list[tuple[int, int]] = []
    items = iter_ctf(path, progress=lambda done, total: seen.append((done, total)))
    first = next(items)
    assert first.upn == upn_for(0)  # type: ignore[union-attr]
    assert seen[-1][0] < path.stat().st_size  # the first pupil arrives before the file is read
    assert sum(1 for _ in items) == 299
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)
