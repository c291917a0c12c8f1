"""Shared parsing for every importer: UPNs, NC years, dates, headers, encodings, tables, problems.

Core intake, the MIS plugins and the social care plugin read values through these functions, so
the same value is accepted or refused everywhere with the same message.
"""

from __future__ import annotations

from .dates import DateRangeError, check_date, parse_date, parse_datetime
from .headers import canonical_headers, normalise_header
from .limits import DEFAULT_LIMITS, Limits, TooLarge, check_file_size, field_problem
from .ncyear import nc_year_label, parse_nc_year
from .problems import RowProblem
from .tables import Table, TableError, TableStream, read_table, stream_table
from .text import EncodingError, decode_text, detect_encoding
from .upn import InvalidUPN, check_letter, is_valid_upn, make_upn, validate_upn

__all__ = [
    "DEFAULT_LIMITS",
    "DateRangeError",
    "EncodingError",
    "InvalidUPN",
    "Limits",
    "RowProblem",
    "Table",
    "TableError",
    "TableStream",
    "TooLarge",
    "canonical_headers",
    "check_date",
    "check_file_size",
    "check_letter",
    "decode_text",
    "detect_encoding",
    "field_problem",
    "is_valid_upn",
    "make_upn",
    "nc_year_label",
    "normalise_header",
    "parse_date",
    "parse_datetime",
    "parse_nc_year",
    "read_table",
    "stream_table",
    "validate_upn",
]
