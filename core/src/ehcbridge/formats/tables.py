"""Tables in: CSV (any accepted encoding) or an Excel workbook (.xlsx), as rows of text.

Both come out the same way: canonical column names (see :mod:`.headers`) and, per row, its
number as a spreadsheet shows it and its values as text, so importers validate one shape.
Spreadsheet cells are turned into text here: a date cell becomes ``2025-03-01 00:00:00``
(which the date parser reads), a whole number ``9`` rather than ``9.0``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from .headers import canonical_headers
from .limits import DEFAULT_LIMITS, Limits, TooLarge, check_file_size, field_problem
from .problems import RowProblem
from .text import EncodingError, detect_encoding

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


@dataclass
class TableStream:
    """A table read lazily: its header now, its rows each time :meth:`rows` is iterated (the
    file is read again), so a list of any length is checked and then applied at constant
    memory rather than held whole."""

    path: str
    header: list[str]
    cells: Callable[[], Iterator[tuple[int, list[str]]]]
    limits: Limits
    encoding: str | None = None
    sheet: str | None = None
    position: Callable[[], int] = lambda: 0
    """Bytes of the file read so far (CSV; 0 when not known), for a progress display."""

    def problem(self, row: int, column: str, value: str, message: str) -> RowProblem:
        """A RowProblem located in this table (with its sheet)."""
        return RowProblem(self.path, row, column, value, message, sheet=self.sheet)

    def rows(self) -> Iterator[tuple[int, dict[str, str], list[RowProblem]]]:
        """(row number, values by column, problems with its cells) per non-empty data row.

        Raises TableError past ``limits.max_rows`` rows, or when the file cannot be read on.
        """
        limits, header, count = self.limits, self.header, 0
        for number, cells in self.cells():
            count += 1
            if count > limits.max_rows:
                raise TableError([self.problem(number, "-", "", f"has more than "
                                               f"{limits.max_rows:,} rows (limits.max_rows)")])
            values: dict[str, str] = {}
            problems: list[RowProblem] = []
            for column, cell in zip(header, cells, strict=False):
                if not column:
                    continue
                value = cell.strip()
                if len(value) > limits.max_field_chars or "\x00" in value:  # rare: say why
                    problems.append(self.problem(number, column, value,
                                                 field_problem(value, limits) or ""))
                    value = ""
                values.setdefault(column, value)
            yield number, values, problems


def stream_table(path: Path, *, name: str | None = None, sheet: str | None = None,
                 aliases: Mapping[str, str] | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> TableStream:
    """Open a CSV or .xlsx file for reading row by row; TableError when the file as a whole
    cannot be read (too big, not text, no header, not a workbook)."""
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
        return _xlsx_stream(path, shown, sheet, aliases, limits)
    if head.startswith(_OLE_MAGIC) or path.suffix.lower() == ".xls":
        raise TableError([RowProblem(shown, 0, "-", "", "is an old Excel .xls workbook; save "
                                     "it as .xlsx or CSV UTF-8")])
    if sheet is not None:
        raise TableError([RowProblem(shown, 0, "-", "", "is not a workbook: --sheet only "
                                     "applies to .xlsx files")])
    return _csv_stream(path, shown, aliases, limits)


def read_table(path: Path, *, name: str | None = None, sheet: str | None = None,
               aliases: Mapping[str, str] | None = None,
               limits: Limits = DEFAULT_LIMITS) -> Table:
    """Read a CSV or .xlsx file whole; TableError when the file as a whole cannot be read.

    Values over ``limits.max_field_chars`` or holding a NUL are reported in ``problems`` (their
    cells read as empty), so one bad cell names its row and column rather than the file.
    """
    stream = stream_table(path, name=name, sheet=sheet, aliases=aliases, limits=limits)
    table = Table(path=stream.path, header=stream.header, encoding=stream.encoding,
                  sheet=stream.sheet)
    for number, values, problems in stream.rows():
        table.rows.append((number, values))
        table.problems += problems
    return table


def _csv_stream(path: Path, shown: str, aliases: Mapping[str, str] | None,
                limits: Limits) -> TableStream:
    try:
        codec, encoding = detect_encoding(path)
    except EncodingError as exc:
        raise TableError([RowProblem(shown, 0, "-", "", str(exc))]) from None
    except OSError as exc:
        raise TableError([RowProblem(shown, 0, "-", "",
                                     f"cannot be read ({exc.strerror or exc})")]) from None

    opened: list[Any] = []

    def records() -> Generator[tuple[int, list[str]], None, None]:
        number = 1
        # The csv module refuses fields over 131,072 characters without saying which column;
        # let it read up to the file limit so max_field_chars names the row and column instead.
        previous = csv.field_size_limit()
        csv.field_size_limit(max(previous, limits.max_file_bytes))
        try:
            with path.open("r", encoding=codec, newline="") as fh:
                opened[:] = [fh.buffer]
                reader = csv.reader(fh)
                yield 1, next(reader, [])
                for number, cells in enumerate(reader, start=2):
                    if any(c.strip() for c in cells):
                        yield number, cells
        except csv.Error as exc:
            # A NUL byte in a quoted field, or a field larger than the whole-file limit.
            reason = "has a value larger than the file limit" if "field larger" in str(exc) \
                else f"is not valid CSV ({exc})"
            raise TableError([RowProblem(shown, number + 1, "-", "", reason)]) from None
        finally:
            csv.field_size_limit(previous)

    first = records()
    _, raw_header = next(first)
    first.close()
    if not raw_header or not any(h.strip() for h in raw_header):
        raise TableError([RowProblem(shown, 1, "-", "", "has no header row")])

    def data() -> Iterator[tuple[int, list[str]]]:
        rows = records()
        next(rows)  # the header
        yield from rows

    def position() -> int:
        try:
            return int(opened[0].tell()) if opened else 0
        except (OSError, ValueError):  # closed
            return 0

    return TableStream(shown, canonical_headers(raw_header, aliases), data, limits,
                       encoding=encoding, position=position)


def _xlsx_stream(path: Path, shown: str, sheet: str | None,
                 aliases: Mapping[str, str] | None, limits: Limits) -> TableStream:
    import openpyxl  # only when a workbook is read

    def book() -> Any:
        try:
            return openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a damaged workbook
            raise TableError([RowProblem(shown, 0, "-", "", "is not a readable Excel workbook "
                                         f"(.xlsx): {type(exc).__name__}")]) from None

    opened = book()
    try:
        names = opened.sheetnames
    finally:
        opened.close()
    if sheet is None:
        if not names:
            raise TableError([RowProblem(shown, 0, "-", "", "has no sheets")])
        sheet = names[0]
    elif sheet not in names:
        raise TableError([RowProblem(shown, 0, "-", sheet, "is not a sheet of this "
                                     f"workbook (sheets: {', '.join(names)})")])
    chosen = sheet

    def records() -> Generator[tuple[int, list[str]], None, None]:
        opened = book()
        try:
            for number, values in enumerate(opened[chosen].iter_rows(values_only=True),
                                            start=1):
                cells = [_cell_text(v) for v in values]
                if any(c.strip() for c in cells):
                    yield number, cells
        except TableError:
            raise
        except Exception as exc:  # a damaged sheet part: say so, never a traceback
            raise TableError([RowProblem(shown, 0, "-", "", "has a sheet that cannot be read "
                                         f"({type(exc).__name__})", sheet=chosen)]) from None
        finally:
            opened.close()

    first = records()
    found = next(first, None)
    first.close()
    if found is None:
        raise TableError([RowProblem(shown, 1, "-", "", "has no header row", sheet=chosen)])

    def data() -> Iterator[tuple[int, list[str]]]:
        rows = records()
        next(rows)  # the header
        yield from rows

    return TableStream(shown, canonical_headers(found[1], aliases), data, limits, sheet=chosen)


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
