"""The SEN2 person-level return's annual-review items, per plan, for the LA's CMS to load.

From 2024 the DfE's SEN2 return asks, in its EHC plan module, for the date of the latest annual
review meeting (item 5.4), the LA's decision that followed it (item 5.5, voluntary in 2024) and
the date the LA notified that decision (item 5.6, ``LastReview``), each as at the census date (the
third Thursday of January). ehcbridge keeps the meeting, report and decision dates apart, so each
item comes from its own record and "last review date" is never mistaken for the meeting date.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from ehcbridge.models import LONDON

if TYPE_CHECKING:
    from ehcbridge.store import Store

COLUMNS = ("upn", "case_id", "school_urn", "review_meeting_date", "review_decision",
           "review_decision_date")


def census_date(year: int) -> date:
    """The SEN2 census date: the third Thursday of January of ``year``."""
    first = date(year, 1, 1)
    first_thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + timedelta(weeks=2)


def rows_for(store: Store, census: date) -> list[dict[str, str]]:
    """One row per plan: items 5.4 to 5.6 as at the census date (blank when not yet known)."""
    from ehcbridge.store.reports import sen2_rows

    out = []
    for r in sen2_rows(store, census):
        meeting = r["meeting_start"].astimezone(LONDON).date() if r["meeting_start"] else None
        decided = r["decided_on"] if r["decided_on"] and r["decided_on"] <= census else None
        out.append({
            # A child at no school or college (reg 21) is reported at none, whatever URN the
            # list still shows of a school they left.
            "upn": r["upn"] or "", "case_id": r["case_id"],
            "school_urn": "" if r["no_setting"] else r["school_urn"] or "",
            "review_meeting_date": meeting.isoformat() if meeting else "",
            "review_decision": r["outcome"] if decided else "",
            "review_decision_date": decided.isoformat() if decided else "",
        })
    return out
