"""Tables in: CSV (any accepted encoding) or an Excel workbook (.xlsx), as rows of text.

Both come out the same way: canonical column names (see :mod:`.headers`) and, per row, its
number as a spreadsheet shows it and its values as text, so importers validate one shape.
Spreadsheet cells are turned into text here: a date cell becomes ``2025-03-01 00:00:00``
(which the date parser reads), a whole number ``9`` rather than ``9.0``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from .headers import canonical_headers
from .limits import DEFAULT_LIMITS, Limits, TooLarge, check_file_size, field_problem
from .problems import RowProblem
from .text import EncodingError, decode_text

XLSX_SUFFIXES = (".xlsx", ".xlsm")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls


class TableError(Exception):
    """The table cannot be read at all; ``problems`` says where and why."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Table:
    """A header and its rows, with the encoding (CSV) or sheet (XLSX) that was read."""

    path: str
    header: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    encoding: str | None = None
    sheet: str | None = None

    def problem(self, row: int, column: str, value: str, message: str) -> RowProblem:
        """A RowProblem located in this table (with its sheet)."""
        return RowProblem(self.path, row, column, value, message, sheet=self.sheet)


def read_table(path: Path, *, name: str | None = None, sheet: str | None = None,
               aliases: Mapping[str, str] | None = None,
               limits: Limits = DEFAULT_LIMITS) -> Table:
    """Read a CSV or .xlsx file; TableError when the file as a whole cannot be read.

    Values over ``limits.max_field_chars`` or holding a NUL are reported in ``problems`` (their
    cells read as empty), so one bad cell names its row and column rather than the file.
    """
    shown = name or str(path)
    try:
        check_file_size(path, limits.max_file_bytes)
        with path.open("rb") as fh:
            head = fh.read(8)
    except TooLarge as exc:
        raise TableError([RowProblem(shown, 0, "-", "", str(exc))]) from None
    except OSError as exc:
        raise TableError([RowProblem(shown, 0, "-", "",
                                     f"cannot be read ({exc.strerror or exc})")]) from None
    if path.suffix.lower() in XLSX_SUFFIXES or head.startswith(_ZIP_MAGIC):
        return _read_xlsx(path, shown, sheet, aliases, limits)
    if head.startswith(_OLE_MAGIC) or path.suffix.lower() == ".xls":
        raise TableError([RowProblem(shown, 0, "-", "", "is an old Excel .xls workbook; save "
                                     "it as .xlsx or CSV UTF-8")])
    if sheet is not None:
        raise TableError([RowProblem(shown, 0, "-", "", "is not a workbook: --sheet only "
                                     "applies to .xlsx files")])
    return _read_csv(path.read_bytes(), shown, aliases, limits)


def _read_csv(data: bytes, shown: str, aliases: Mapping[str, str] | None,
              limits: Limits) -> Table:
    try:
        text, encoding = decode_text(data)
    except EncodingError as exc:
        raise TableError([RowProblem(shown, 0, "-", "", str(exc))]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    table = Table(path=shown, header=[], encoding=encoding)
    number = 1
    # The csv module refuses fields over 131,072 characters without saying which column; let it
    # read up to the file limit so max_field_chars names the row and column instead.
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limits.max_file_bytes))
    try:
        raw_header = next(reader, None)
        if not raw_header or not any(h.strip() for h in raw_header):
            raise TableError([RowProblem(shown, 1, "-", "", "has no header row")])
        table.header = canonical_headers(raw_header, aliases)
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            _add_row(table, number, cells, limits)
    except csv.Error as exc:
        # A NUL byte in a quoted field, or a field larger than the whole-file limit.
        reason = "has a value larger than the file limit" if "field larger" in str(exc) \
            else f"is not valid CSV ({exc})"
        raise TableError([RowProblem(shown, number + 1, "-", "", reason)]) from None
    finally:
        csv.field_size_limit(previous)
    return table


def _read_xlsx(path: Path, shown: str, sheet: str | None,
               aliases: Mapping[str, str] | None, limits: Limits) -> Table:
    import openpyxl  # only when a workbook is read

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, EOFError) as exc:
        raise TableError([RowProblem(shown, 0, "-", "", "is not a readable Excel workbook "
                                     f"(.xlsx): {type(exc).__name__}")]) from None
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise TableError([RowProblem(shown, 0, "-", "", "is not a readable Excel workbook "
                                     f"(.xlsx): {type(exc).__name__}")]) from None
    try:
        names = book.sheetnames
        if sheet is None:
            if not names:
                raise TableError([RowProblem(shown, 0, "-", "", "has no sheets")])
            sheet = names[0]
        elif sheet not in names:
            raise TableError([RowProblem(shown, 0, "-", sheet, "is not a sheet of this "
                                         f"workbook (sheets: {', '.join(names)})")])
        table = Table(path=shown, header=[], sheet=sheet)
        rows = book[sheet].iter_rows(values_only=True)
        header_found = False
        try:
            for number, values in enumerate(rows, start=1):
                cells = [_cell_text(v) for v in values]
                if not any(c.strip() for c in cells):
                    continue
                if not header_found:
                    table.header = canonical_headers(cells, aliases)
                    header_found = True
                    continue
                _add_row(table, number, cells, limits)
        except TableError:
            raise
        except Exception as exc:  # a damaged sheet part: say so, never a traceback
            raise TableError([RowProblem(shown, 0, "-", "", "has a sheet that cannot be read "
                                         f"({type(exc).__name__})", sheet=sheet)]) from None
        if not header_found:
            raise TableError([RowProblem(shown, 1, "-", "", "has no header row", sheet=sheet)])
        return table
    finally:
        book.close()


def _add_row(table: Table, number: int, cells: list[str], limits: Limits) -> None:
    if len(table.rows) >= limits.max_rows:
        raise TableError([table.problem(number, "-", "", f"has more than {limits.max_rows:,} "
                                        "rows (limits.max_rows)")])
    values: dict[str, str] = {}
    for column, cell in zip(table.header, cells, strict=False):
        if not column:
            continue
        value = cell.strip()
        problem = field_problem(value, limits)
        if problem is not None:
            table.problems.append(table.problem(number, column, value, problem))
            value = ""
        values.setdefault(column, value)
    table.rows.append((number, values))


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
