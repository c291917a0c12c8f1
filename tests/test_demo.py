"""The README's main command: a term of synthetic reviews through the installed plugins."""

from __future__ import annotations

import csv
import email
import json
import os
import re
import shlex
import subprocess
from email import policy
from importlib import resources
from pathlib import Path

from ehcbridge.demo import run_demo


def test_demo_fires_every_hook_and_leaves_readable_invitations(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = run_demo(tmp_path / "demo", echo=lines.append)
    hooks = summary["hooks"]
    assert isinstance(hooks, dict)
    for hook in ("on_review_scheduled", "on_views_due", "on_meeting_held", "on_decision"):
        assert hooks.get(hook, 0) > 0, hook
    deliveries = summary["deliveries"]
    assert isinstance(deliveries, dict)
    assert deliveries.get("dead", 0) == 0 and deliveries["delivered"] > 100
    plugins = summary["plugins"]
    assert isinstance(plugins, dict)
    assert set(plugins["teams"]) == {"skipped"}  # no credentials: reported, not retried
    text = "\n".join(lines)
    assert "Deliveries by status:" in text and "Outbox:" in text
    assert "Dashboard: ehcbridge --config" in text and " serve --now " in text
    # Duties of every review, checked by the lifecycle: some met, some late, some missed.
    duties = next(line for line in lines if line.startswith("Duties: "))
    counts = {k: int(n) for n, k in (part.split(" ") for part in duties[8:].split(", "))}
    assert counts["met"] > 100 and counts["late"] > 0 and counts["missed"] > 0
    assert hooks.get("on_deadline", 0) > 0
    assert "Your own plugin: ehcbridge plugin new hello" in text
    assert (Path(str(summary["plugin_package"])) / "tests" / "test_hello.py").is_file()
    assert ("the same list as an Excel workbook (sheet 'Reviews'): 50 plans unchanged, "
            "50 UPNs passed the DfE check letter, 0 warning(s)") in text
    # Online meetings with no usable provider are flagged, not silent (issue 16).
    online = sum(1 for r in _demo_rows() if r["online"].strip().lower() == "true")
    assert online == 29  # booked ones and the planner's proposals alike
    assert online > 0
    assert f"online meetings without a provider: {online} review(s) flagged " \
        "no_online_provider" in text

    with resources.files("ehcbridge").joinpath("data/demo_reviews.csv").open() as fh:
        names = [(r["forename"], r["surname"]) for r in csv.DictReader(fh)]
    outbox = summary["outbox"]
    assert isinstance(outbox, list) and len(outbox) > 50
    methods = set()
    for path in outbox:
        message = email.message_from_bytes(Path(path).read_bytes(), policy=policy.default)
        assert message["To"] and message["Subject"]
        raw = Path(path).read_text(errors="replace")
        for forename, surname in names:
            assert f"{forename} {surname}" not in raw, path
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                methods.add(part.get_param("method"))
    assert {"REQUEST", "CANCEL"} <= methods
    # Notices (issue 13): everyone heard, and the family without email got letters in print packs.
    assert "Notices by status:" in text and "views_request by letter" in text
    # A relative reached by letter and taken off a review is told so by letter.
    assert "1 removed by hand (a relative invited by mistake" in text
    assert "1 meeting_withdrawn by letter" in text
    # Everyone invited to a meeting got the calendar invitation, the teams health_referrals
    # asks for advice included (its advice requests were once taken for invitations, and a
    # team asked first was never invited; it happened in most runs).
    import sqlite3

    with sqlite3.connect(Path(str(summary["workspace"])) / "ehcbridge.sqlite3") as db:
        uninvited = db.execute(
            "select count(*) from invitees iv join meetings m on m.review_id = iv.review_id "
            "where iv.email is not null and not exists (select 1 from invitations i where "
            "i.review_id = iv.review_id and lower(i.email) = lower(iv.email) "
            "and i.plugin = 'outlook' and i.status = 'sent')").fetchone()[0]
    assert uninvited == 0
    # A team health_referrals asks itself is not asked again by the notices.
    assert "team mailbox(es) asked for advice by health_referrals itself" in text
    # A meeting set after the review's due date and moved back has no flag left.
    assert "set late and moved back into time (meeting_late cleared)" in text
    assert "0 meeting_late" in text
    # Next year's reviews already know whom to invite (they once started with nobody).

    opened = re.search(r"Next reviews opened by a decision: (\d+), starting with (\d+) invitees",
                       text)
    assert opened is not None and int(opened[1]) > 0 and int(opened[2]) >= int(opened[1])
    packs = sorted((Path(str(summary["workspace"])) / "letters").glob("print-pack-*.pdf"))
    assert packs and "Print packs: " in text
    from pypdf import PdfReader

    first = "\n".join(p.extract_text() for p in PdfReader(packs[0]).pages)
    assert "Ms A Parent" in first and "DE1 1AA" in first

    # The plan that ceased (the family moved away) is listed for erasure by the command shown,
    # run as printed; without --yes nothing is erased.
    [retention] = [line for line in lines if line.startswith("Retention: ")]
    assert "1 plan(s) ceased" in retention, retention
    erase = shlex.split(retention.split("has passed, ", 1)[1].split(" lists them")[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    listed = subprocess.run(erase, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert listed.returncode == 0 and "Would erase 1 case(s)" in listed.stdout, listed.stderr
    again = subprocess.run(erase, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert "Would erase 1 case(s)" in again.stdout  # still there: listing erased nothing
    [access] = [line for line in lines if line.startswith("Subject access: ")]
    export = shlex.split(access.split("; ", 1)[1].split(" gives them")[0])
    given = subprocess.run(export, env=env, cwd=tmp_path, capture_output=True, text=True)
    held = int(access.split(" rows in ")[0].rsplit(" ", 1)[1])
    document = json.loads(given.stdout)
    tables = document["tables"]
    assert sum(len(rows) for rows in tables.values()) == held and export[-1] in given.stdout
    # What the plugins keep about the case is given too, as the line says.
    for count, plugin in re.findall(r" and (\d+) records of the (\w+) plugin", access):
        assert len(document["plugins"][plugin]) == int(count)
    assert " records of the outlook plugin" in access  # the meeting invitations it sent


def _demo_rows() -> list[dict[str, str]]:
    with resources.files("ehcbridge").joinpath("data/demo_reviews.csv").open() as fh:
        return list(csv.DictReader(fh))
