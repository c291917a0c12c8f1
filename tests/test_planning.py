"""Issue 8's acceptance: a school of 120 plans, social care reviews for 15 children, planned."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from ehcbridge import timeline
from ehcbridge.cli import cli
from ehcbridge.synthetic import HEADER, rows

TODAY = date(2027, 1, 4)
MAX_PER_DAY = 2
HALF_TERM = timeline.ClockOptions(school_holidays=((date(2027, 2, 15), date(2027, 2, 19)),))


def _school(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    plans = []
    for row in rows(120, seed=8, term_start=date(2027, 1, 4), scheduled_share=0.0):
        row["school_urn"] = "100001"
        row["coordinator_email"] = "senco@ashdown-primary.example.org"
        plans.append(row)
    path = tmp_path / "school.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(plans)
    return path, plans


def _run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_school_of_120_plans_aligned_with_social_care_reviews(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{(tmp_path / "db.sqlite3").as_posix()}"\n'
        f"[engine]\nmax_meetings_per_day = {MAX_PER_DAY}\n"
        "[[engine.school_holidays]]\nstart = 2027-02-15\nend = 2027-02-19\n"
        'name = "February half term"\n')
    env = {"EHCBRIDGE_CONFIG": str(config), "EHCBRIDGE_LOAD_PLUGINS": "social_care"}
    school, plans = _school(tmp_path)
    _run(env, "import", "reviews", str(school))

    # Social care reviews for 15 children, each inside that child's window.
    children = {}
    with (tmp_path / "social_care.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["upn", "review_type", "review_date", "social_worker_email", "team"])
        for plan in plans:
            out = json.loads(_run(env, "review", "show", plan["case_id"], "--json"))
            latest = date.fromisoformat(next(m["date"] for m in out["milestones"]
                                             if m["name"] == "meeting_latest"))
            if latest < TODAY + timedelta(days=28) or len(children) == 15:
                continue  # only children whose window is still open
            n = len(children)
            day = max(TODAY + timedelta(days=21), latest - timedelta(days=10 + n))
            while not timeline.is_school_day(day, HALF_TERM) or day > latest:
                day -= timedelta(days=1)
            children[plan["case_id"]] = day
            writer.writerow([plan["upn"], ("cla", "cp", "cin")[n % 3], day.isoformat(),
                             f"sw{n}@council.example.gov.uk", "Disabled Children's Team"])
    assert len(children) == 15
    _run(env, "social-care", "import", str(tmp_path / "social_care.csv"))

    ics = tmp_path / "plan.ics"
    out = json.loads(_run(env, "plan", "--now", f"{TODAY.isoformat()}T09:00", "--json",
                          "--ics", str(ics)))
    proposals = {p["case_id"]: p for p in out["proposals"]}
    assert len(proposals) + len(out["overdue"]) + len(out["unplanned"]) == 120
    # On 4 Jan 2027 the Year 6 transfer reviews (15 Feb 2027) are overdue: their meeting had to
    # leave 4 weeks for the decision and 8 for the amended plan, so be held by 23 Nov 2026.
    assert "2026-11-23" in {o["meeting_latest"] for o in out["overdue"]}
    assert len(proposals) >= 90  # a full diary leaves a few to plan by hand, with reasons
    assert all("no free school day" in u["reason"] for u in out["unplanned"])

    options = HALF_TERM
    per_day: Counter[date] = Counter()
    for case_id, p in proposals.items():
        day = datetime.fromisoformat(p["start"]).date()
        show = json.loads(_run(env, "review", "show", case_id, "--json"))
        latest = date.fromisoformat(next(m["date"] for m in show["milestones"]
                                         if m["name"] == "meeting_latest"))
        assert TODAY + timedelta(days=14) <= day <= latest, (case_id, day, latest)
        assert timeline.is_school_day(day, options), (case_id, day)
        per_day[day] += 1
    assert max(per_day.values()) <= MAX_PER_DAY

    for case_id, sc_day in children.items():
        assert case_id in proposals, (case_id, out["unplanned"], out["overdue"])
        p = proposals[case_id]
        day = datetime.fromisoformat(p["start"]).date()
        assert p["aligned_with"], (case_id, p)
        assert abs((day - sc_day).days) <= 3, (case_id, day, sc_day)
        assert "review" in p["reason"]
        assert not re.search(r"on (\d+ \w+ \d{4}) on \1", p["reason"]), p["reason"]

    from icalendar import Calendar

    calendar = Calendar.from_ical(ics.read_bytes())
    assert len(calendar.walk("VEVENT")) == len(proposals)
    import vobject

    parsed = vobject.readOne(ics.read_text())
    assert len(parsed.vevent_list) == len(proposals)
