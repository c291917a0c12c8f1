"""The DfE Unique Pupil Number check: 13 characters, a check letter from a weighted sum mod 23."""

from __future__ import annotations

from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.gb import upn as _upn


class InvalidUPN(ValueError):
    """A UPN that fails the DfE format or check-letter rule."""


_REASONS = {
    "InvalidLength": "must be 13 characters",
    "InvalidFormat": "must be a letter, 11 digits and a digit or letter",
    "InvalidChecksum": "check letter does not match",
}


def validate_upn(value: str | None) -> str:
    """Return the UPN in upper case, or raise InvalidUPN saying which rule it breaks.

    python-stdnum does the length, format and check-letter rule. Its list of local authority
    numbers dates from 2011, so a UPN issued by a newer authority (Dorset 838, BCP 839, the
    Northamptonshire and Cumbria unitaries 940-943...) would be refused although the DfE rule
    accepts it: an unknown LA number is therefore not an error here.
    """
    if value is None or not value.strip():
        raise InvalidUPN("UPN is missing")
    number = _upn.compact(value)
    try:
        return str(_upn.validate(number))
    except InvalidComponent:
        return number
    except ValidationError as exc:
        reason = _REASONS.get(type(exc).__name__, "is not a valid UPN")
        raise InvalidUPN(f"UPN {reason}") from None


def is_valid_upn(value: str | None) -> bool:
    """True when ``value`` passes the DfE UPN rule."""
    try:
        validate_upn(value)
    except InvalidUPN:
        return False
    return True


def make_upn(twelve: str) -> str:
    """Prefix 12 characters (LA, establishment, year, serial) with their check letter."""
    return str(_upn.calc_check_digit(twelve.upper())) + twelve.upper()
