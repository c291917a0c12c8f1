"""One problem type for every importer: where a bad value is (file, sheet, row, column), and why."""

from __future__ import annotations

from dataclasses import dataclass

SHOWN_CHARS = 40  # a value is echoed in an error up to this length: a 100 MB field is not


@dataclass(frozen=True)
class RowProblem:
    """One bad value, or a row (pupil, event) that was skipped, and the reason.

    ``unit`` is what ``row`` counts: ``row`` (CSV and spreadsheet rows, the header is row 1),
    ``pupil`` (the n-th pupil of a CTF), ``event`` (the n-th VEVENT of a calendar), ``child``
    (the n-th child of an XML return). ``skipped`` is False when only the field was ignored.
    ``key`` names who the row is about when the file says (``UPN B801200005001``); like
    ``value`` it is left out of :meth:`redacted`.
    """

    path: str
    row: int
    column: str
    value: str
    message: str
    unit: str = "row"
    sheet: str | None = None
    skipped: bool = True
    key: str = ""

    @property
    def file(self) -> str:
        """The file name or source as shown (same as ``path``)."""
        return self.path

    def where(self, *, redact: bool = False) -> str:
        """``list.xlsx sheet 'Spring' row 4, column plan_issued``."""
        sheet = f" sheet {self.sheet!r}" if self.sheet else ""
        if self.row == 0 and self.column == "-":  # about the whole file: no row to name
            return f"{self.path}{sheet}"
        key = f" ({shown_text(self.key)})" if self.key and not redact else ""
        return f"{self.path}{sheet} {self.unit} {self.row}{key}, column {self.column}"

    def __str__(self) -> str:
        return self._text(shown_value(self.value), redact=False)

    def redacted(self) -> str:
        """The same without the value and key: for logs, which never hold a child's data."""
        return self._text("", redact=True)

    def _text(self, shown: str, *, redact: bool) -> str:
        verdict = "" if self.skipped else " (field ignored)"
        return (f"{self.where(redact=redact)}:{' ' + shown if shown else ''} "
                f"{self.message}{verdict}")


def shown_text(value: str) -> str:
    """Text cut short when long (no quotes)."""
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."


def shown_value(value: str) -> str:
    """The value as quoted in a message, cut short when long."""
    if not value:
        return ""
    if len(value) > SHOWN_CHARS:
        return repr(value[:SHOWN_CHARS]) + f"... ({len(value):,} characters)"
    return repr(value)
