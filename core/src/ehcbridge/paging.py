"""Listings that page: the notice a user sees when a page does not show everything."""

from __future__ import annotations


def page_notice(shown: int, offset: int, limit: int, total: int) -> str:
    """'' when the page holds every row; otherwise which rows were shown and how to see more."""
    more = total - offset - shown
    if more <= 0 and offset == 0:
        return ""
    if shown == 0:
        return f"no rows after row {offset}: there are {total}"
    text = f"showing rows {offset + 1}-{offset + shown} of {total}"
    if more > 0:
        text += (f"; {more} more: use --offset {offset + shown}"
                 + (f" (or --limit 0 for all {total})" if limit else ""))
    return text
