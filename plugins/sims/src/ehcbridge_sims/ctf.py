"""Streaming reader for the DfE Common Transfer File (CTF), versions 18 onwards.

The file is read element by element with defusedxml (DTDs, entity declarations and external
references are refused before they are expanded) and each ``Pupil`` is dropped once read, so
memory does not grow with the size of the XML. Only the fields the review cycle needs are kept:
ethnicity, FSM, attendance and assessments are never read into a record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from ehcbridge.formats import DEFAULT_LIMITS, Limits, RowProblem, TooLarge, check_file_size

from .records import (
    PROVISIONS,
    FieldError,
    MisContact,
    MisPupil,
    check_field,
    clean_email,
    clean_text,
    parse_bool,
    parse_date,
    parse_nc_year,
)
from .upn import InvalidUPN, validate_upn

MIN_VERSION = 18
NAME_CHARS = 100  # what the core keeps of a pupil's forename and surname
Progress = Callable[[int, int], None]


class CtfError(Exception):
    """A file that is refused as a whole (not well-formed, hostile or not a CTF)."""


@dataclass(frozen=True)
class CtfHeader:
    """The CTF ``Header``: version, export time, whether it is full, and who sent it to whom."""

    version: str
    datetime: str | None = None
    lea: str | None = None
    estab: str | None = None
    urn: str | None = None
    school_name: str | None = None
    qualifier: str | None = None  # DocumentQualifier: "full" or "partial"
    dest_lea: str | None = None
    dest_estab: str | None = None

    @property
    def school_key(self) -> str:
        """How the school is known between syncs: its URN, else LA and establishment number."""
        if self.urn:
            return f"urn:{self.urn}"
        return f"dfe:{self.lea or ''}{self.estab or ''}"

    @property
    def partial(self) -> bool:
        """The header says the file is partial: it cannot tell who is no longer on roll."""
        return (self.qualifier or "").strip().lower() == "partial"


class Problem(RowProblem):
    """A pupil that was skipped (or a field that was dropped): the core's RowProblem.

    Only a constructor in the older argument order (``upn=`` is the value), so callers written
    for it keep working; every problem is a :class:`ehcbridge.formats.RowProblem`.
    """

    def __init__(self, source: str, pupil_no: int, field: str, message: str,
                 upn: str | None = None, skipped: bool = True) -> None:
        super().__init__(source, pupil_no, field, "", message, unit="pupil",
                         skipped=skipped, key=f"UPN {upn}" if upn else "")

    @property
    def upn(self) -> str | None:
        """The pupil's UPN as given (may be invalid), or None."""
        return self.key.removeprefix("UPN ") or None


@dataclass
class CtfFile:
    """A whole CTF, read and validated."""

    path: Path
    header: CtfHeader
    sha256: str
    pupils: list[MisPupil] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def leavers_only(self) -> bool:
        """Every pupil in the file has left the sending school (a leavers CTF)."""
        return bool(self.pupils) and all(p.leaving_date for p in self.pupils)

    @property
    def full(self) -> bool:
        """A whole roll: pupils of the school missing from it have left.

        Not so for a file the header calls partial, nor for a leavers file (from its contents),
        which lists only the pupils who left.
        """
        return not self.header.partial and not self.leavers_only


class _Reader:
    """Wraps the file: hashes the bytes and reports progress while the parser reads."""

    def __init__(self, raw: IO[bytes], total: int, progress: Progress | None) -> None:
        self._raw = raw
        self._total = total
        self._progress = progress
        self.done = 0
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.hash.update(chunk)
        self.done += len(chunk)
        if self._progress is not None:
            self._progress(self.done, self._total)
        return chunk


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_ctf(path: Path | str, progress: Progress | None = None,
             limits: Limits = DEFAULT_LIMITS) -> CtfFile:
    """Read and validate a whole CTF; raise CtfError when the file must be refused."""
    path = Path(path)
    header: CtfHeader | None = None
    pupils: list[MisPupil] = []
    problems: list[Problem] = []

    def keep_header(h: CtfHeader) -> None:
        nonlocal header
        header = h

    digest: list[str] = []
    for item in iter_ctf(path, on_header=keep_header, progress=progress, digest=digest,
                         limits=limits):
        if isinstance(item, Problem):
            problems.append(item)
        else:
            pupils.append(item)
    assert header is not None  # iter_ctf refuses a file without one
    return CtfFile(path=path, header=header, sha256=digest[0], pupils=pupils, problems=problems)


def iter_ctf(
    path: Path | str,
    *,
    on_header: Callable[[CtfHeader], None] | None = None,
    progress: Progress | None = None,
    digest: list[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[MisPupil | Problem]:
    """Yield each pupil (or the problem that made it skipped) as the file is read.

    Raises CtfError for a file that is not well-formed, hostile or not a CTF; a caller that
    must write nothing for such a file consumes the whole iterator before writing.
    ``digest`` receives the file's SHA-256 once the end is reached.
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    path = Path(path)
    name = path.name
    try:
        size = check_file_size(path, limits.max_file_bytes)
        raw = path.open("rb")
    except TooLarge as exc:
        raise CtfError(f"{name}: refused, {exc}; nothing was imported") from None
    except OSError as exc:
        raise CtfError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with raw:
        reader = _Reader(raw, size, progress)
        events = iterparse(reader, events=("start", "end"), forbid_dtd=True)
        try:
            yield from _walk(events, name, on_header, limits)
        except ParseError as exc:
            line, column = getattr(exc, "position", (0, 0))
            reason = str(exc).split(":")[0]
            raise CtfError(
                f"{name}: not well-formed XML at line {line}, column {column} ({reason}); "
                "nothing was imported"
            ) from None
        except DefusedXmlException as exc:
            raise CtfError(
                f"{name}: refused, the file declares a DTD or entities "
                f"({type(exc).__name__}); a CTF never needs them, nothing was imported"
            ) from None
        if digest is not None:
            digest.append(reader.hash.hexdigest())


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag if tag[:1] != "{" else tag.rpartition("}")[2]


def _walk(
    events: Iterator[tuple[str, Element]],
    name: str,
    on_header: Callable[[CtfHeader], None] | None,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[MisPupil | Problem]:
    # Only the top three levels matter (CTfile, Header/CTFpupilData, Pupil), so tag names are
    # looked at there only: this loop runs for every element of the file.
    depth = 0
    root: Element | None = None
    container: Element | None = None
    header: CtfHeader | None = None
    seen: set[str] = set()
    count = 0
    for event, elem in events:
        if event == "start":
            depth += 1
            if depth == 1:
                root = elem
                if _local(elem.tag) != "CTfile":
                    raise CtfError(
                        f"{name}: not a Common Transfer File (the root element is "
                        f"<{_local(elem.tag)}>, expected <CTfile>); nothing was imported"
                    )
            elif depth == 2 and _local(elem.tag) == "CTFpupilData":
                if header is None:
                    raise CtfError(f"{name}: not a valid CTF: pupil data before the <Header>")
                container = elem
            continue
        depth -= 1
        if depth == 2:
            if container is not None and _local(elem.tag) == "Pupil":
                count += 1
                assert header is not None
                if count > limits.max_rows:
                    raise CtfError(f"{name}: refused, more than {limits.max_rows:,} pupils "
                                   "(limits.max_rows); nothing was imported")
                yield from _pupil(elem, header, name, count, seen, limits)
                container.clear()  # drop what has been read: flat memory
        elif depth == 1:
            tag = _local(elem.tag)
            if tag == "Header":
                header = _header(elem, name)
                if on_header is not None:
                    on_header(header)
            elif tag == "CTFpupilData":
                container = None
            if root is not None:
                root.clear()
    if header is None:
        raise CtfError(f"{name}: not a valid CTF: there is no <Header>; nothing was imported")


def _kids(elem: Element) -> dict[str, list[Element]]:
    out: dict[str, list[Element]] = {}
    for child in elem:
        out.setdefault(_local(child.tag), []).append(child)
    return out


def _text(kids: dict[str, list[Element]], tag: str) -> str | None:
    found = kids.get(tag)
    return clean_text(found[0].text) if found else None


def _header(elem: Element, name: str) -> CtfHeader:
    kids = _kids(elem)
    version = _text(kids, "CTFversion")
    if version is None:
        raise CtfError(
            f"{name}: not a Common Transfer File: the <Header> has no <CTFversion>; "
            "nothing was imported"
        )
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise CtfError(f"{name}: CTFversion {version!r} is not a version number") from None
    if major < MIN_VERSION:
        raise CtfError(
            f"{name}: CTF version {version} is not supported (versions {MIN_VERSION} onwards); "
            "export the file again from an up-to-date MIS"
        )
    school = kids.get("SourceSchool")
    skids = _kids(school[0]) if school else {}
    urn = _text(skids, "URN")
    if urn is not None and not (urn.isascii() and urn.isdigit() and len(urn) <= 10):
        raise CtfError(f"{name}: Header/SourceSchool/URN is not a school URN (up to 10 digits); "
                       "nothing was imported")
    dest = kids.get("DestSchool")
    dkids = _kids(dest[0]) if dest else {}
    return CtfHeader(
        version=version,
        datetime=_text(kids, "DateTime"),
        lea=_text(skids, "LEA"),
        estab=_text(skids, "Estab"),
        urn=urn,
        school_name=_text(skids, "SchoolName"),
        qualifier=_text(kids, "DocumentQualifier"),
        dest_lea=_text(dkids, "LEA"),
        dest_estab=_text(dkids, "Estab"),
    )


def _pupil(
    elem: Element, header: CtfHeader, name: str, number: int, seen: set[str],
    limits: Limits = DEFAULT_LIMITS,
) -> list[MisPupil | Problem]:
    kids = _kids(elem)
    raw_upn = _text(kids, "UPN")
    if raw_upn is not None and len(raw_upn) > 64:
        return [Problem(name, number, "UPN", "is not a UPN (too long)")]
    try:
        upn = validate_upn(raw_upn)
    except InvalidUPN as exc:
        return [Problem(name, number, "UPN", str(exc), upn=raw_upn)]
    if upn in seen:
        return [Problem(name, number, "UPN", "appears twice in the file; first kept", upn=upn)]
    seen.add(upn)
    basic = _kids(kids["BasicDetails"][0]) if "BasicDetails" in kids else {}

    def text(tag: str) -> str | None:
        # CTF 18+ puts most fields in BasicDetails; some suppliers write them on Pupil itself.
        return _text(kids, tag) or _text(basic, tag)

    names = {tag: text(tag) for tag in ("Forename", "Surname", "PreferredForename",
                                        "PreferredSurname")}
    try:
        for tag, value in names.items():
            check_field(value, tag, limits)
    except FieldError as exc:
        return [Problem(name, number, exc.field, str(exc).split(": ", 1)[1], upn=upn)]
    forename, surname = names["Forename"], names["Surname"]
    for tag in ("Forename", "Surname"):
        if len(names[tag] or "") > NAME_CHARS:
            return [Problem(name, number, tag, f"is longer than {NAME_CHARS} characters",
                            upn=upn)]
    if not forename or not surname:
        missing = "Forename" if not forename else "Surname"
        return [Problem(name, number, missing, "is missing", upn=upn)]
    try:
        dob = parse_date(_text(kids, "DOB"), "DOB")
        nc_year = parse_nc_year(text("NCyearActual"), "NCyearActual")
        leaving = _leaving_date(kids, header)
    except FieldError as exc:
        return [Problem(name, number, exc.field, str(exc).split(": ", 1)[1], upn=upn)]
    out: list[MisPupil | Problem] = []
    sens, needs = _sen_parts(kids)
    provision = _current_provision(sens)
    if provision is not None and provision not in PROVISIONS:
        out.append(Problem(name, number, "SENprovision", "is not N, K or E",
                           upn=upn, skipped=False))
    contacts = []
    for contact, raw_email in _contacts(kids):
        if raw_email and contact.email is None:
            out.append(Problem(name, number, "Contact/Email", "is not an email address",
                               upn=upn, skipped=False))
        try:
            for value in contact.data().values():
                if isinstance(value, str):
                    check_field(value, "Contact", limits)
        except FieldError as exc:
            out.append(Problem(name, number, exc.field, str(exc).split(": ", 1)[1], upn=upn,
                               skipped=False))
            continue
        contacts.append(contact)
    pupil = MisPupil(
        upn=upn,
        forename=forename,
        surname=surname,
        dob=dob,
        sex=_short(text("Sex") or text("Gender")),
        nc_year=nc_year,
        school_urn=header.urn,
        sen_provision=provision if provision in PROVISIONS else None,
        needs=_needs(needs),
        contacts=tuple(contacts),
        preferred_forename=_other(names["PreferredForename"], forename),
        preferred_surname=_other(names["PreferredSurname"], surname),
        looked_after=_looked_after(kids),
        leaving_date=leaving,
    )
    return [pupil, *out]


def _short(value: str | None) -> str | None:
    return value[:10] if value else None


def _other(preferred: str | None, legal: str) -> str | None:
    """A preferred name only when it differs from the legal one."""
    return preferred if preferred and preferred != legal else None


def _looked_after(kids: dict[str, list[Element]]) -> bool | None:
    """``LookedAfter/InCare`` (true/false), or None when the file does not say."""
    found = kids.get("LookedAfter")
    if not found:
        return None
    value = _text(_kids(found[0]), "InCare")
    return None if value is None else parse_bool(value)


def _leaving_date(kids: dict[str, list[Element]], header: CtfHeader) -> str | None:
    """The date the pupil left the sending school, from ``SchoolHistory/School/LeavingDate``.

    The entry for the sending school is the one with its LA and establishment number; an entry
    without them counts when it is the last one (the most recent school).
    """
    schools: list[Element] = []
    for history in kids.get("SchoolHistory", []):
        schools += [e for e in history if _local(e.tag) == "School"]
    for position, school in enumerate(schools):
        skids = _kids(school)
        lea, estab = _text(skids, "LEA"), _text(skids, "Estab")
        ours = (lea, estab) == (header.lea, header.estab) if lea and estab \
            else position == len(schools) - 1
        if ours:
            left = parse_date(_text(skids, "LeavingDate"), "SchoolHistory/LeavingDate")
            if left is not None:
                return left
    return None


def _sen_parts(kids: dict[str, list[Element]]) -> tuple[list[Element], list[Element]]:
    """The SEN and SENneed elements: inside SENhistory (the schema) or directly in Pupil."""
    sens, needs = list(kids.get("SEN", [])), []
    blocks = list(kids.get("SENneeds", []))
    for history in kids.get("SENhistory", []):
        inner = _kids(history)
        sens += inner.get("SEN", [])
        blocks += inner.get("SENneeds", [])
    for block in blocks:
        needs += [e for e in block if _local(e.tag) == "SENneed"]
    return sens, needs


def _current_provision(sens: list[Element]) -> str | None:
    """The SEN provision in force: the open SEN entry with the latest start date."""
    entries: list[tuple[str, bool, int, str]] = []
    for position, sen in enumerate(sens):
        kids = _kids(sen)
        provision = (_text(kids, "SENprovision") or "").upper()
        if not provision:
            continue
        try:
            start = parse_date(_text(kids, "StartDate"), "StartDate") or ""
        except FieldError:
            start = ""  # an unreadable start date only loses its place in the order
        ended = bool(_text(kids, "EndDate"))
        entries.append((start, not ended, position, provision))
    if not entries:
        return None
    open_entries = [e for e in entries if e[1]] or entries
    return max(open_entries, key=lambda e: (e[0], e[2]))[3]


def _needs(needs: list[Element]) -> tuple[str, ...]:
    ranked: list[tuple[int, int, str]] = []
    for position, need in enumerate(needs):
        kids = _kids(need)
        kind = (_text(kids, "SENtype") or "").upper()
        if not kind or _text(kids, "NeedEndDate"):
            continue
        try:
            rank = int(_text(kids, "SENtypeRank") or 99)
        except ValueError:
            rank = 99
        ranked.append((rank, position, kind))
    return tuple(dict.fromkeys(kind for _, _, kind in sorted(ranked)))


def _contacts(kids: dict[str, list[Element]]) -> Iterator[tuple[MisContact, str | None]]:
    for block in kids.get("Contacts", []):
        inner = _kids(block)
        if "Contact" in inner:
            for contact in inner["Contact"]:
                yield _contact(_kids(contact))
        elif "Surname" in inner or "Relationship" in inner:
            # Some generators write each contact as its own <Contacts> element.
            yield _contact(inner)


def _contact(kids: dict[str, list[Element]]) -> tuple[MisContact, str | None]:
    order_text = _text(kids, "Order")
    raw_email = _text(kids, "Email")
    return MisContact(
        order=int(order_text) if order_text and order_text.isdigit() else None,
        title=_text(kids, "Title"),
        forename=_text(kids, "Forename"),
        surname=_text(kids, "Surname"),
        relationship=_text(kids, "Relationship"),
        parental_responsibility=parse_bool(_text(kids, "Responsibility")),
        email=clean_email(raw_email),
        phone=_phone(kids),
    ), raw_email


def _phone(kids: dict[str, list[Element]]) -> str | None:
    for phones in kids.get("Phones", []):
        inner = _kids(phones)
        for phone in inner.get("Phone", []):
            number = _text(_kids(phone), "PhoneNo")
            if number:
                return number
        number = _text(inner, "PhoneNo")  # generators that leave out <Phone>
        if number:
            return number
    return None
