"""The DfE Unique Pupil Number (UPN): shape and check letter, for every LA number.

A UPN is 13 characters: a check letter, the 3-digit LA number, the 4-digit establishment
number, 2 digits of the year it was allocated and a 3-character serial. A permanent UPN ends
in a digit; a temporary one ends in a letter of the check alphabet. The check letter is the sum
of characters 2 to 13 weighted 2 to 13 (digits by value, a final letter by its position in the
check alphabet), modulo 23, as a letter of that alphabet. Any three digits are a valid LA number:
no list of authorities is consulted, so new ones (838, 839, 940 to 943...) work.
"""

from __future__ import annotations

CHECK_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"  # A-Z without I, O and S
_DIGITS = "0123456789"


class InvalidUPN(ValueError):
    """A UPN that breaks the DfE shape or check-letter rule; the message says which."""


def check_letter(twelve: str) -> str:
    """The check letter of the 12 characters after it (LA, establishment, year, serial)."""
    total = 0
    for weight, char in enumerate(twelve, start=2):
        value = _DIGITS.find(char) if char in _DIGITS else CHECK_ALPHABET.find(char)
        if value < 0 or len(char) != 1:
            raise InvalidUPN("UPN must be a letter, 11 digits and a digit or letter")
        total += weight * value
    return CHECK_ALPHABET[total % 23]


def validate_upn(value: str | None) -> str:
    """Return the UPN in upper case without spaces, or raise InvalidUPN saying what is wrong."""
    if value is None or not value.strip():
        raise InvalidUPN("UPN is missing")
    number = "".join(value.split()).upper()
    if len(number) != 13:
        raise InvalidUPN("UPN must be 13 characters")
    first, middle, last = number[0], number[1:12], number[12]
    # ASCII only: str.isdigit() would let full-width and other Unicode digits through.
    if (first not in CHECK_ALPHABET or any(c not in _DIGITS for c in middle)
            or (last not in _DIGITS and last not in CHECK_ALPHABET)):
        raise InvalidUPN("UPN must be a letter, 11 digits and a digit or letter "
                         "(letters exclude I, O and S)")
    if check_letter(number[1:]) != first:
        raise InvalidUPN("UPN check letter does not match")
    return number


def is_valid_upn(value: str | None) -> bool:
    """True when ``value`` passes the DfE UPN rule."""
    try:
        validate_upn(value)
    except InvalidUPN:
        return False
    return True


def make_upn(twelve: str) -> str:
    """Prefix 12 characters (LA, establishment, year, serial) with their check letter."""
    body = twelve.upper()
    return check_letter(body) + body
