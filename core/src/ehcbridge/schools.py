"""The schools directory: who receives each school's termly list (CSV or .xlsx, in settings).

Read through the shared table reader (encodings, header normalisation, size limits). Columns:
``urn``, ``name``, ``headteacher_email``, ``senco_email``, and optionally ``headteacher_name``,
``address`` (a postal address, lines separated by ``;``, for a school with no email), ``area`` and
``phase``. The file is checked as a whole at load: one bad row and nothing is used, each problem
naming its row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ehcbridge.formats import RowProblem

REQUIRED = ("urn", "name")
KNOWN = (*REQUIRED, "headteacher_email", "headteacher_name", "senco_email", "address", "area",
         "phase")
_EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$")
_URN = re.compile(r"^\d{6,7}$")


class DirectoryError(ValueError):
    """The schools directory cannot be used; ``problems`` lists each bad row."""

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class School:
    """One school or college and where its termly list goes."""

    urn: str
    name: str
    headteacher_email: str | None = None
    headteacher_name: str | None = None
    senco_email: str | None = None
    address: tuple[str, ...] = ()
    area: str | None = None
    phase: str | None = None


ALIASES = {"headteacher": "headteacher_email", "head_email": "headteacher_email",
           "head_teacher_email": "headteacher_email", "principal_email": "headteacher_email",
           "senco": "senco_email", "school_name": "name", "establishment_name": "name",
           "postal_address": "address"}


def load_directory(path: Path) -> dict[str, School]:
    """Read and check the directory (CSV or .xlsx); DirectoryError naming every bad row, or the
    schools by URN."""
    from ehcbridge.formats import TableError, read_table

    try:
        table = read_table(path, aliases=ALIASES)
    except TableError as exc:
        raise DirectoryError(f"{path}: cannot be read: {exc}", exc.problems) from None
    missing = [c for c in REQUIRED if c not in table.header]
    if missing:
        raise DirectoryError(f"{path}: column {', '.join(missing)} is missing "
                             f"(columns: {', '.join(KNOWN)})")
    problems: list[RowProblem] = list(table.problems)
    schools: dict[str, School] = {}
    for number, v in table.rows:
        if not any(v.values()):
            continue

        def bad(column: str, message: str, _n: int = number, _v: dict[str, str] = v) -> None:
            problems.append(table.problem(_n, column, _v.get(column, ""), message))

        if not _URN.match(v.get("urn", "")):
            bad("urn", "is not a URN (six or seven digits)")
        elif v["urn"] in schools:
            bad("urn", "appears twice")
        if not v.get("name"):
            bad("name", "is empty")
        for column in ("headteacher_email", "senco_email"):
            if v.get(column) and not _EMAIL.match(v[column]):
                bad(column, "is not an email address")
        address = tuple(p.strip() for p in v.get("address", "").split(";") if p.strip())
        if not v.get("headteacher_email") and not address:
            bad("headteacher_email", "is empty and there is no postal address either: the "
                "school's list could not be sent")
        schools[v.get("urn", "")] = School(
            urn=v.get("urn", ""), name=v.get("name", ""),
            headteacher_email=v.get("headteacher_email") or None,
            headteacher_name=v.get("headteacher_name") or None,
            senco_email=v.get("senco_email") or None, address=address,
            area=v.get("area") or None, phase=v.get("phase") or None)
    if problems:
        raise DirectoryError(f"{path}: {len(problems)} problem(s): "
                             + "; ".join(str(p) for p in problems[:20]), problems)
    return schools
