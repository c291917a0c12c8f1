"""Synthetic Common Transfer Files for tests and benchmarks (no real child's data).

Writes the CTF 18+ structure: ``CTfile/Header`` and ``CTfile/CTFpupilData/Pupil`` with basic
details, SEN history, needs and contacts, plus the sections the plugin must ignore (ethnicity,
FSM, attendance, assessments), streamed so a 50,000-pupil file never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape

from ehcbridge_sims.upn import make_upn

FORENAMES = ["Alex", "Sam", "Jo", "Charlie", "Robin", "Kit", "Jamie", "Ashley", "Morgan", "Rowan"]
SURNAMES = ["Example", "Sample", "Testcase", "Dummy", "Placeholder", "Fixture", "Mock", "Stub"]


@dataclass(frozen=True)
class GenContact:
    """A synthetic contact."""

    forename: str = "Pat"
    surname: str = "Example"
    title: str = "Mx"
    relationship: str = "PAR"
    responsibility: bool = True
    email: str | None = "pat.example@example.net"
    order: int = 1
    phone: str | None = "01632 960000"


@dataclass(frozen=True)
class GenPupil:
    """A synthetic pupil."""

    upn: str
    forename: str = "Sam"
    surname: str = "Example"
    dob: str = "2012-05-02"
    sex: str = "F"
    nc_year: str = "8"
    sen: tuple[tuple[str, str], ...] = (("2019-09-01", "E"),)
    needs: tuple[tuple[str, int], ...] = (("ASD", 1), ("SLCN", 2))
    contacts: tuple[GenContact, ...] = field(default_factory=lambda: (GenContact(),))
    noise: bool = True  # sections the plugin must not keep
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    in_care: bool | None = None  # LookedAfter/InCare
    leaving_date: str | None = None  # SchoolHistory entry for the sending school (801/2000)

    def but(self, **changes: object) -> GenPupil:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def upn_for(i: int, la: str = "801", estab: str = "2000") -> str:
    """A valid, deterministic UPN for pupil number ``i`` (up to 99,999 per school)."""
    return make_upn(f"{la}{estab}{i:05d}")


def pupil(i: int, **changes: object) -> GenPupil:
    """Pupil number ``i``, deterministic, with one parent with parental responsibility."""
    base = GenPupil(
        upn=upn_for(i),
        forename=FORENAMES[i % len(FORENAMES)],
        surname=SURNAMES[i % len(SURNAMES)],
        dob=f"{2008 + i % 10}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        sex="FM"[i % 2],
        nc_year=str(1 + i % 13),
        sen=(("2019-09-01", "K"), ("2021-03-01", "E")) if i % 3 == 0 else (("2020-01-06", "K"),),
        contacts=(
            GenContact(forename="Pat", surname=SURNAMES[i % len(SURNAMES)],
                       email=f"parent{i}@example.net", order=1),
            GenContact(forename="Lee", surname="Relative", title="Mr", relationship="REL",
                       responsibility=False, email=f"relative{i}@example.net", order=2),
        ),
    )
    return base.but(**changes) if changes else base


def _el(tag: str, value: object | None) -> str:
    return "" if value is None else f"<{tag}>{escape(str(value))}</{tag}>"


def pupil_xml(p: GenPupil) -> str:
    """One ``<Pupil>`` element."""
    parts = [
        "<Pupil>",
        _el("UPN", p.upn),
        _el("UniqueLearnerNumber", "1234567890") if p.noise else "",
        _el("Surname", p.surname),
        _el("Forename", p.forename),
        _el("DOB", p.dob),
        _el("Sex", p.sex),
        "<BasicDetails>",
        _el("MiddleNames", "Middle") if p.noise else "",
        _el("PreferredForename", p.preferred_forename),
        _el("PreferredSurname", p.preferred_surname),
        _el("NCyearActual", p.nc_year),
        _el("Ethnicity", "WBRI") if p.noise else "",
        _el("EnrolStatus", "C"),
        "</BasicDetails>",
    ]
    if p.in_care is not None:
        parts.append(f"<LookedAfter>{_el('InCare', 'true' if p.in_care else 'false')}"
                     f"{_el('CareAuthority', '801') if p.in_care else ''}</LookedAfter>")
    if p.leaving_date or p.noise:
        parts.append(
            "<SchoolHistory><School><SchoolName>Previous Primary</SchoolName><LEA>801</LEA>"
            "<Estab>3000</Estab><EntryDate>2016-09-01</EntryDate><LeavingDate>2019-07-20"
            "</LeavingDate><LeavingReason>MOV</LeavingReason></School>"
            "<School><SchoolName>Example Academy</SchoolName><LEA>801</LEA><Estab>2000</Estab>"
            "<EntryDate>2019-09-01</EntryDate>" + _el("LeavingDate", p.leaving_date)
            + "</School></SchoolHistory>")
    if p.noise:
        parts.append("<FSMhistory><FSMinstance><FSMstartDate>2019-09-01</FSMstartDate>"
                     "<UKcountry>ENG</UKcountry></FSMinstance></FSMhistory>")
    if p.sen or p.needs:
        parts.append("<SENhistory>")
        for start, provision in p.sen:
            parts.append(f"<SEN>{_el('StartDate', start)}{_el('SENprovision', provision)}</SEN>")
        if p.needs:
            parts.append("<SENneeds>")
            for kind, rank in p.needs:
                parts.append(f"<SENneed>{_el('SENtype', kind)}{_el('SENtypeRank', rank)}</SENneed>")
            parts.append("</SENneeds>")
        parts.append("</SENhistory>")
    if p.contacts:
        parts.append("<Contacts>")
        for c in p.contacts:
            parts += [
                "<Contact>",
                _el("Order", c.order), _el("Title", c.title), _el("Surname", c.surname),
                _el("Forename", c.forename), _el("Gender", "U"),
                _el("Relationship", c.relationship),
                _el("Responsibility", "true" if c.responsibility else "false"),
                "<AddressAsPupil>true</AddressAsPupil>",
                f"<Phones><Phone><TelephoneType>H</TelephoneType>{_el('PhoneNo', c.phone)}"
                "</Phone></Phones>" if c.phone else "",
                _el("Email", c.email),
                "</Contact>",
            ]
        parts.append("</Contacts>")
    if p.noise:
        parts.append("<Attendance><YearData><Year>2025</Year><SessionsPossible>300"
                     "</SessionsPossible></YearData></Attendance>"
                     "<StageAssessments><KeyStage><Stage>KS2</Stage><StageAssessment>"
                     "<Subject>MAT</Subject><Result>105</Result></StageAssessment>"
                     "</KeyStage></StageAssessments>")
    parts.append("</Pupil>")
    return "".join(parts)


def header_xml(
    *, version: str = "21.0", urn: str | None = "100001", lea: str = "801", estab: str = "2000",
    school: str = "Example Academy", qualifier: str | None = "full",
) -> str:
    """The ``<Header>`` element."""
    return (
        "<Header><DocumentName>Common Transfer File</DocumentName>"
        f"{_el('CTFversion', version)}<DateTime>2026-01-05T08:30:00</DateTime>"
        f"{_el('DocumentQualifier', qualifier)}<SupplierID>TestGen</SupplierID>"
        f"<SourceSchool>{_el('LEA', lea)}{_el('Estab', estab)}{_el('URN', urn)}"
        f"{_el('SchoolName', school)}<AcademicYear>2025</AcademicYear></SourceSchool>"
        "<DestSchool><LEA>801</LEA><Estab>2001</Estab></DestSchool></Header>"
    )


def write_ctf_stream(
    out: TextIO, pupils: Iterable[GenPupil], *, namespace: str | None = None, **header: str | None
) -> None:
    """Write a CTF to an open text stream, one pupil at a time."""
    ns = f' xmlns="{namespace}"' if namespace else ""
    out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<CTfile{ns}>\n')
    out.write(header_xml(**header))  # type: ignore[arg-type]
    out.write("\n<CTFpupilData>\n")
    for p in pupils:
        out.write(pupil_xml(p))
        out.write("\n")
    out.write("</CTFpupilData>\n</CTfile>\n")


def write_ctf(path: Path, pupils: Iterable[GenPupil] | int, **header: str | None) -> Path:
    """Write a CTF file with the given pupils (or that many generated ones)."""
    items = (pupil(i) for i in range(pupils)) if isinstance(pupils, int) else pupils
    with path.open("w", encoding="utf-8") as out:
        write_ctf_stream(out, items, **header)  # type: ignore[arg-type]
    return path


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE CTfile [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<CTfile><Header><CTFversion>21.0</CTFversion></Header><CTFpupilData><Pupil>
<UPN>B801200005001</UPN><Surname>&lol9;</Surname><Forename>Bomb</Forename>
</Pupil></CTFpupilData></CTfile>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<CTfile><Header><CTFversion>21.0</CTFversion></Header><CTFpupilData><Pupil>
<UPN>B801200005001</UPN><Surname>&xxe;</Surname><Forename>Leak</Forename>
</Pupil></CTFpupilData></CTfile>
"""
