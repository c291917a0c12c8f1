"""Field parsing for CTF and API pupils; the records themselves are the core's MIS kit
(``ehcbridge.mis``), re-exported here so ``from ehcbridge_sims.records import MisPupil`` works."""

from __future__ import annotations

import re

from ehcbridge.formats import DEFAULT_LIMITS, Limits, field_problem
from ehcbridge.formats import parse_date as _parse_date
from ehcbridge.formats import parse_nc_year as _parse_nc_year
from ehcbridge.mis import MisContact, MisPupil

__all__ = ["PROVISIONS", "FieldError", "MisContact", "MisPupil", "check_field", "clean_email",
           "clean_text", "parse_bool", "parse_date", "parse_nc_year"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PROVISIONS = frozenset({"N", "K", "E"})


class FieldError(ValueError):
    """A field value that cannot be read; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def parse_nc_year(value: str | int | None, field_name: str = "NCyearActual") -> int | None:
    """National curriculum year as a number (the core's codes: R 0, N2/E2 -1, N1/E1 -2, X None)."""
    try:
        return _parse_nc_year(value)
    except ValueError as exc:
        raise FieldError(field_name, str(exc)) from None


def parse_date(value: str | None, field_name: str) -> str | None:
    """An ISO date string from any form the core accepts (ISO in the CTF schema, UK forms)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > 10 and text[10] in "T " and text[4:5] == "-":
        text = text[:10]  # an ISO date-time: the CTF's DOB is a date
    try:
        return _parse_date(text).isoformat()
    except ValueError as exc:
        raise FieldError(field_name, str(exc)) from None


def check_field(value: str | None, field_name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """FieldError when a text value is too long to keep or holds a NUL character."""
    if value is not None:
        problem = field_problem(value, limits)
        if problem is not None:
            raise FieldError(field_name, problem)


def parse_bool(value: str | bool | None) -> bool:
    """CTF and JSON booleans: true/false, 1/0, Y/N."""
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in {"true", "1", "y", "yes"}


def clean_email(value: str | None) -> str | None:
    """A plausible email address, or None (a malformed one is dropped, never guessed)."""
    if not value:
        return None
    text = value.strip()
    return text if _EMAIL.match(text) else None


def clean_text(value: str | None) -> str | None:
    """Stripped text or None."""
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None
