"""Synthetic review lists (no real names) for the demo, tests and benchmarks."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ehcbridge.formats.upn import check_letter

FORENAMES = ("Alex", "Bailey", "Casey", "Devon", "Eden", "Finley", "Harley", "Jordan", "Kai",
             "Logan", "Morgan", "Nico", "Parker", "Quinn", "Riley", "Sage", "Taylor", "Wren")
SURNAMES = ("Ashdown", "Brookfield", "Carrow", "Dunmore", "Elmsworth", "Fernlea", "Greyholt",
            "Hollins", "Ivybridge", "Kestrel", "Larkwood", "Millbeck", "Northam", "Oakridge")
SCHOOLS = ("100001", "100002", "100003", "100004", "100005")
COORDINATORS = ("senco@ashdown-primary.example.org", "senco@brookfield-academy.example.org",
                "caseworker1@council.example.gov.uk", "caseworker2@council.example.gov.uk")
HEADER = ["case_id", "upn", "forename", "surname", "dob", "nc_year", "school_urn", "plan_issued",
          "last_review", "meeting_start", "meeting_end", "location", "online",
          "coordinator_email", "parent_name", "parent_email", "setting_email",
          "sen_officer_email"]


def make_upn(rng: random.Random, la: str = "999") -> str:
    """A valid synthetic UPN (LA 999 is not a real authority)."""
    body = la + f"{rng.randrange(10000):04d}" + f"{rng.randrange(100):02d}" + \
        f"{rng.randrange(1000):03d}"
    return check_letter(body) + body


def rows(count: int, *, seed: int = 2027, term_start: date = date(2027, 1, 4),
         term_weeks: int = 12, scheduled_share: float = 0.7,
         coordinators: int | None = None) -> Iterator[dict[str, str]]:
    """Deterministic synthetic review-list rows; most have a meeting inside the term.

    ``coordinators`` spreads the plans over that many caseworkers (a large council has about
    one per 200 plans); by default four shared addresses are used.
    """
    rng = random.Random(seed)
    people = COORDINATORS if coordinators is None else tuple(
        f"caseworker{n:03d}@council.example.gov.uk" for n in range(coordinators))
    for n in range(1, count + 1):
        nc_year = rng.choice([-1, 0, 1, 2, 3, 4, 5, 6, 6, 7, 8, 8, 9, 10, 11, 11, 12, 13])
        age = nc_year + 5 if nc_year >= 0 else 4
        dob = date(term_start.year - age - 1, rng.randint(9, 12), rng.randint(1, 28))
        meeting = term_start + timedelta(days=rng.randrange(term_weeks * 7))
        while meeting.weekday() >= 5:
            meeting += timedelta(days=1)
        # The review deadline falls some weeks after the meeting; the period started a year
        # before it, at the plan's issue (first review) or at the last review's decision.
        deadline = meeting + timedelta(weeks=rng.randint(5, 14))
        period_start = deadline.replace(year=deadline.year - 1) + timedelta(days=1)
        if rng.random() < 0.3:
            issued, last_review = period_start, ""
        else:
            years = rng.randint(1, 3)
            issued = (period_start - timedelta(days=rng.randint(0, 20))).replace(
                year=period_start.year - years)
            last_review = period_start.isoformat()
        has_meeting = rng.random() < scheduled_share
        start = datetime.combine(meeting, time(rng.choice([9, 10, 11, 13, 14]), 0))
        forename, surname = rng.choice(FORENAMES), rng.choice(SURNAMES)
        school = rng.choice(SCHOOLS)
        online = rng.random() < 0.5
        yield {
            "case_id": f"EHC-{n:05d}",
            "upn": make_upn(rng),
            "forename": forename,
            "surname": surname,
            "dob": dob.strftime("%d/%m/%Y"),
            "nc_year": str(nc_year) if nc_year >= 0 else "",
            "school_urn": school,
            "plan_issued": issued.isoformat(),
            "last_review": last_review,
            "meeting_start": start.isoformat(timespec="minutes") if has_meeting else "",
            "meeting_end": (start + timedelta(hours=1)).isoformat(timespec="minutes")
            if has_meeting else "",
            "location": "" if online else f"School {school}, meeting room",
            "online": "true" if online else "false",
            "coordinator_email": rng.choice(people),
            "parent_name": f"Parent of {forename[0]}.{surname[0]}.",
            "parent_email": f"parent{n:05d}@family.example.net",
            "setting_email": f"senco@school{school}.example.org",
            "sen_officer_email": "sen.team@council.example.gov.uk",
        }


def write_csv(path: Path, count: int, **kwargs: object) -> Path:
    """Write ``count`` synthetic rows as a review list CSV."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        for row in rows(count, **kwargs):  # type: ignore[arg-type]
            writer.writerow(row)
    return path
