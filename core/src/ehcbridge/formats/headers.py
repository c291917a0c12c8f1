"""Column headers: case, spaces, underscores and hyphens are the same, plus documented aliases."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_header(name: object) -> str:
    """``" Plan-Issued "`` -> ``plan_issued``: lower case, runs of space/_/- become one _."""
    text = "" if name is None else str(name)
    return _SEPARATORS.sub("_", text.strip().lower()).strip("_")


def canonical_headers(names: Iterable[object], aliases: Mapping[str, str] | None = None
                      ) -> list[str]:
    """Each header normalised, then mapped through ``aliases`` (normalised alias -> column)."""
    table = {normalise_header(k): v for k, v in (aliases or {}).items()}
    out = []
    for name in names:
        key = normalise_header(name)
        out.append(table.get(key, key))
    return out
