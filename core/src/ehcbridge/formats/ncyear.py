"""National Curriculum year codes as schools' MIS and councils' lists write them."""

from __future__ import annotations

import re

# Nursery and reception as the DfE codes them; E1/E2 are early-years codes some MIS exports use
# for the same two nursery years. Numbers below zero keep the order (N1 < N2 < R < 1).
EARLY_YEARS = {"N1": -2, "N2": -1, "E1": -2, "E2": -1, "R": 0, "RECEPTION": 0}
NOT_IN_NC = frozenset({"X", "NC"})
_YEAR = re.compile(r"^(?:Y|YR|YEAR|NC|NCY)?\s*(-?[0-9]{1,2})$")
MESSAGE = "is not an NC year (N1, N2, E1, E2, R, 1 to 14, Y9, Year 9, or X)"


def parse_nc_year(value: str | int | float | None) -> int | None:
    """The year as a number (R 0, N2/E2 -1, N1/E1 -2); None when empty or X (not in the NC).

    Raises ValueError with a message for anything else (``R1``, ``15``, ``Year 9b``).
    """
    if value is None or isinstance(value, bool):
        if value is None:
            return None
        raise ValueError(MESSAGE)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(MESSAGE)
        value = int(value)
    if isinstance(value, int):
        number = value
    else:
        text = " ".join(value.split()).upper()
        if not text:
            return None
        if text in NOT_IN_NC:
            return None
        if text in EARLY_YEARS:
            return EARLY_YEARS[text]
        match = _YEAR.match(text.replace(" ", "") if text.startswith("Y") else text)
        if match is None:
            raise ValueError(MESSAGE)
        number = int(match.group(1))
    if not -2 <= number <= 14:
        raise ValueError(MESSAGE)
    return number


_LABELS = {-2: "N1", -1: "N2", 0: "R"}


def nc_year_label(number: int | None) -> str:
    """The year as schools write it (``N1``, ``N2``, ``R``, ``1`` ... ``14``; empty for none):
    the DfE's codes, where a bare 0 or -1 would puzzle a headteacher."""
    if number is None:
        return ""
    return _LABELS.get(number, str(number))
