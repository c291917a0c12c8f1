"""The schools directory: who receives each school's termly list (a CSV named in settings).

Columns (header names compared without case, spaces, hyphens or underscores): ``urn``, ``name``,
``headteacher_email``, ``senco_email``, and optionally ``headteacher_name``, ``address`` (a postal
address, lines separated by ``;``, for a school with no email), ``area`` and ``phase``. The file
is checked as a whole at load: one bad row and nothing is used, each problem naming its row.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ehcbridge.intake import RowProblem

REQUIRED = ("urn", "name")
KNOWN = (*REQUIRED, "headteacher_email", "headteacher_name", "senco_email", "address", "area",
         "phase")
_EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$")
_URN = re.compile(r"^\d{6,7}$")
MAX_BYTES = 5 * 1024 * 1024


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


def _key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "_", header.strip().lower())


def load_directory(path: Path) -> dict[str, School]:
    """Read and check the directory; DirectoryError naming every bad row, or schools by URN."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DirectoryError(f"{path}: larger than {MAX_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read the schools directory ({exc.strerror})") \
            from None
    except UnicodeDecodeError:
        raise DirectoryError(f"{path}: not UTF-8 text (save it as CSV UTF-8)") from None
    reader = csv.reader(text.splitlines())
    header = [_key(h) for h in next(reader, [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DirectoryError(f"{path}: column {', '.join(missing)} is missing "
                             f"(columns: {', '.join(KNOWN)})")
    problems: list[RowProblem] = []
    schools: dict[str, School] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        v = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}

        def bad(column: str, message: str, _n: int = number, _v: dict[str, str] = v) -> None:
            problems.append(RowProblem(str(path), _n, column, _v.get(column, ""), message))

        if not _URN.match(v["urn"]):
            bad("urn", "is not a URN (six or seven digits)")
        elif v["urn"] in schools:
            bad("urn", "appears twice")
        if not v["name"]:
            bad("name", "is empty")
        for column in ("headteacher_email", "senco_email"):
            if v.get(column) and not _EMAIL.match(v[column]):
                bad(column, "is not an email address")
        address = tuple(p.strip() for p in v.get("address", "").split(";") if p.strip())
        if not v.get("headteacher_email") and not address:
            bad("headteacher_email", "is empty and there is no postal address either: the "
                "school's list could not be sent")
        schools[v["urn"]] = School(
            urn=v["urn"], name=v["name"], headteacher_email=v.get("headteacher_email") or None,
            headteacher_name=v.get("headteacher_name") or None,
            senco_email=v.get("senco_email") or None, address=address,
            area=v.get("area") or None, phase=v.get("phase") or None)
    if problems:
        raise DirectoryError(f"{path}: {len(problems)} problem(s): "
                             + "; ".join(str(p) for p in problems[:20]), problems)
    return schools
