"""Size limits on what comes in from files and feeds (the ``[limits]`` settings section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class Limits(BaseModel):
    """How big a file, a calendar feed, a value and a list may be."""

    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    """Largest review list, CTF, SSDA903 or CIN census file read (100 MiB)."""

    max_calendar_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    """Largest iCalendar file or feed, local or fetched from a URL (20 MiB)."""

    max_field_chars: int = Field(default=4000, ge=64)
    """Longest single value (a name, an address, a location) in any import."""

    max_rows: int = Field(default=250_000, ge=1)
    """Most rows (or pupils, events, children) read from one file."""


DEFAULT_LIMITS = Limits()


class TooLarge(ValueError):
    """A file, feed or value over its limit; the message says which limit."""


def check_file_size(path: Path, limit: int, *, what: str = "file") -> int:
    """The size of ``path``; TooLarge when it is over ``limit`` bytes (read nothing first)."""
    size = path.stat().st_size
    if size > limit:
        raise TooLarge(f"the {what} is {size:,} bytes, over the limit of {limit:,} bytes "
                       "(limits.max_file_bytes / max_calendar_bytes)")
    return size


def field_problem(value: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """Why a single value cannot be stored (too long, a NUL character), or None when it can."""
    if len(value) > limits.max_field_chars:
        return (f"is {len(value):,} characters long, over the limit of "
                f"{limits.max_field_chars:,} (limits.max_field_chars)")
    if "\x00" in value:
        return "contains a NUL character"
    return None
