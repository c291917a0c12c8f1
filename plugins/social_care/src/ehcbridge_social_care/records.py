"""Stored social care review dates of a child and the statutory projections made from them.

State layout (plugin key-value state, JSON): ``child:<UPN>`` holds::

    {"reviews": [{"kind": "cla", "date": "2027-03-12", "source": "ssda903", "uid": null}],
     "period_start": {"cla": "2026-08-03"}, "period_end": {"cp": "2026-10-01"},
     "worker": {"email": "...", "name": "...", "team": "...", "as_of": "2027-03-12"}}

Only what alignment needs is kept: no names, dates of birth or social care ids.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

KINDS = ("cla", "cp", "cin")
KIND_LABELS = {
    "cla": "CLA review",
    "cp": "CP review conference",
    "cin": "CIN review",
}
STATE_PREFIX = "child:"
META_KEY = "meta:last_import"


@dataclass(frozen=True)
class ReviewDate:
    """A known social care review of one child (past or already booked)."""

    kind: str
    day: date
    source: str
    uid: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in plugin state."""
        return {"kind": self.kind, "date": self.day.isoformat(), "source": self.source,
                "uid": self.uid}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReviewDate:
        """Read the JSON form back."""
        return cls(kind=data["kind"], day=date.fromisoformat(data["date"]),
                   source=data.get("source", ""), uid=data.get("uid"))


@dataclass(frozen=True)
class Worker:
    """The allocated social worker or team, as of a review date."""

    email: str | None
    name: str | None
    team: str | None
    as_of: date

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in plugin state."""
        return {"email": self.email, "name": self.name, "team": self.team,
                "as_of": self.as_of.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Worker:
        """Read the JSON form back."""
        return cls(email=data.get("email"), name=data.get("name"), team=data.get("team"),
                   as_of=date.fromisoformat(data["as_of"]))


@dataclass
class ChildRecord:
    """Everything the plugin keeps about one child, keyed by UPN."""

    upn: str
    reviews: list[ReviewDate] = field(default_factory=list)
    period_start: dict[str, date] = field(default_factory=dict)
    period_end: dict[str, date] = field(default_factory=dict)  # the period has ended (903 DEC)
    worker: Worker | None = None

    @property
    def key(self) -> str:
        """The plugin state key of this record."""
        return f"{STATE_PREFIX}{self.upn}"

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in plugin state."""
        return {
            "reviews": [r.to_json() for r in sorted(self.reviews, key=_review_sort)],
            "period_start": {k: v.isoformat() for k, v in sorted(self.period_start.items())},
            "period_end": {k: v.isoformat() for k, v in sorted(self.period_end.items())},
            "worker": self.worker.to_json() if self.worker else None,
        }

    @classmethod
    def from_json(cls, upn: str, data: dict[str, Any] | None) -> ChildRecord:
        """Read the JSON form back (an empty record when ``data`` is None)."""
        if not data:
            return cls(upn=upn)
        return cls(
            upn=upn,
            reviews=[ReviewDate.from_json(r) for r in data.get("reviews", [])],
            period_start={k: date.fromisoformat(v)
                          for k, v in (data.get("period_start") or {}).items()},
            period_end={k: date.fromisoformat(v)
                        for k, v in (data.get("period_end") or {}).items()},
            worker=Worker.from_json(data["worker"]) if data.get("worker") else None,
        )

    def add_review(self, review: ReviewDate) -> None:
        """Add a review; a feed event (``uid``) replaces its earlier date; no duplicates."""
        if review.uid:
            self.remove_uid(review.uid)
        if not any(r.kind == review.kind and r.day == review.day for r in self.reviews):
            self.reviews.append(review)

    def remove_uid(self, uid: str) -> None:
        """Forget the review that came from the feed event ``uid`` (moved or cancelled)."""
        self.reviews = [r for r in self.reviews if r.uid != uid]

    def set_worker(self, worker: Worker) -> None:
        """Keep the most recent allocation (ties go to the newer import)."""
        if self.worker is None or worker.as_of >= self.worker.as_of:
            self.worker = worker


def _review_sort(review: ReviewDate) -> tuple[date, str]:
    return (review.day, review.kind)


@dataclass(frozen=True)
class Occasion:
    """A social care review date to align with: known (real) or projected from the regulations."""

    kind: str
    day: date
    projected: bool
    basis: str = ""

    @property
    def reason(self) -> str:
        """Human reason for the planner, without anything that identifies the child."""
        label = KIND_LABELS[self.kind]
        if not self.projected:
            return f"{label} on {format_day(self.day)}"
        return f"{label} due by {format_day(self.day)} (projected: {self.basis})"


def format_day(day: date) -> str:
    """``12 Mar 2027``."""
    return f"{day.day} {day:%b %Y}"


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@lru_cache(maxsize=1)
def _bank_holidays() -> Any:
    import holidays  # heavy: only when projecting

    return holidays.country_holidays("GB", subdiv="ENG")


def is_working_day(day: date) -> bool:
    """A weekday that is not an England bank holiday."""
    return day.weekday() < 5 and day not in _bank_holidays()


def add_working_days(day: date, count: int) -> date:
    """The ``count``-th working day after ``day``."""
    current = day
    while count > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            count -= 1
    return current


def last_working_day_on_or_before(day: date) -> date:
    """Move a deadline back to a working day: a review due "within" a period can't be later."""
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def occasions(record: ChildRecord, *, projected_reviews: int = 2) -> list[Occasion]:
    """Known review dates of every kind plus up to ``projected_reviews`` statutory projections.

    CLA (Care Planning, Placement and Case Review (England) Regulations 2010 reg 33): first review
    within 20 working days of becoming looked after, second within 3 months of the first, then at
    most every 6 months. CP review conferences: first within 3 months of the initial conference
    (``period_start``), then at most every 6 months. CIN reviews have no fixed cadence: not
    projected. When the start of the period is unknown, a single known CLA review is taken as a
    later review (6 months), since most are; when it is known (the SSDA903 Episodes table), a
    single review within 3 months of it is the first, so the next is due 3 months later. Nothing
    is projected once the period has ended (the episode's DEC, the plan's end date).
    """
    result = [Occasion(r.kind, r.day, projected=False) for r in record.reviews]
    for kind in ("cla", "cp"):
        result.extend(_project(kind, record, projected_reviews))
    unique = {(o.kind, o.day, o.projected): o for o in result}
    return sorted(unique.values(), key=lambda o: (o.day, o.kind, o.projected))


def _project(kind: str, record: ChildRecord, count: int) -> Iterable[Occasion]:
    start = record.period_start.get(kind)
    end = record.period_end.get(kind)
    if end is not None and (start is None or end >= start):
        return []  # out of care (or off the plan): no statutory reviews to come
    known = sorted(r.day for r in record.reviews if r.kind == kind and (start is None
                                                                           or r.day >= start))
    label = KIND_LABELS[kind]
    if count <= 0 or (not known and start is None):
        return []
    out: list[Occasion] = []
    if known:
        last, held = known[-1], len(known)
        if held == 1 and start is not None and known[0] > add_months(start, 3):
            held = 2  # too late to be the first review: a later one, 6-monthly from here
        last_basis = f"{label} on {format_day(last)}"
    else:
        assert start is not None
        if kind == "cla":
            first = add_working_days(start, 20)
            basis = f"20 working days after becoming looked after on {format_day(start)}"
        else:
            first = last_working_day_on_or_before(add_months(start, 3))
            basis = f"3 months after the initial conference on {format_day(start)}"
        out.append(Occasion(kind, first, projected=True, basis=basis))
        last, held = first, 1
        last_basis = f"projected {label} on {format_day(first)}"
    while len(out) < count:
        months = 3 if kind == "cla" and held == 1 and start is not None else 6
        nxt = last_working_day_on_or_before(add_months(last, months))
        out.append(Occasion(kind, nxt, projected=True,
                            basis=f"{months} months after the {last_basis}"))
        last, held = nxt, held + 1
        last_basis = f"projected {label} on {format_day(nxt)}"
    return out
