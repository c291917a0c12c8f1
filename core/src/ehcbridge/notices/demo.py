"""The notices part of ``ehcbridge demo``: one family without email, and what everyone heard."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from ehcbridge.models import Invitee, Role

if TYPE_CHECKING:
    from ehcbridge.app import App

POSTAL_PARENT = Invitee(role=Role.PARENT, name="Ms A Parent",
                        address="1 Example Row\nDemoton\nDE1 1AA", source="demo")
# Invited by mistake (no parental responsibility), by letter; a caseworker takes him off later.
RELATIVE = Invitee(role=Role.OTHER, name="Mr B Relative", address="2 Example Row\nDemoton\nDE1 1AB",
                   source="demo")


def demo_notices(app: App, work: Path, day: date) -> list[str]:
    """On the demo's first day: give the first review with a meeting a parent who has only a
    postal address. Afterwards: summary lines of the notices sent and the print packs."""
    from ehcbridge.demo import START

    store = app.store
    if day == START:
        for row in store.list_reviews():
            if row["status"] == "scheduled":
                store.add_invitee(row["case_id"], POSTAL_PARENT)
                store.add_invitee(row["case_id"], RELATIVE)
                break
        return []
    rows = store.notices()
    kinds: Counter[str] = Counter(f"{r['kind']} by {r['channel']}" for r in rows)
    statuses: Counter[str] = Counter(r["status"] for r in rows)
    folder = app.plugin_settings("letters")
    letters = Path(getattr(folder, "folder", work / "letters"))
    packs = sorted(letters.glob("print-pack-*.pdf")) if letters.exists() else []
    from ehcbridge.routing import advice_markers

    asked = Counter(plugin for plugin in advice_markers(app).values() if plugin)
    lines = [
        "Notices: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"),
        *[f"  {n} team mailbox(es) asked for advice by {plugin} itself: no second request from "
          "the notices, and their reminder only circulates the advice"
          for plugin, n in sorted(asked.items())],
        "Notices by status: " + (", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
                                 or "none"),
        f"Print packs: {len(packs)} in {letters}"
        + (f" (latest {packs[-1].name})" if packs else ""),
    ]
    return lines


def remove_relative(app: App) -> int:
    """A caseworker takes the relative invited by mistake off the review (as `ehcbridge review
    uninvite CASE --name ...`): he was posted the meeting, so a letter tells him he is no
    longer invited. Returns how many such letters were queued."""
    from ehcbridge import transitions
    from ehcbridge.notices.delivery import after_withdrawal

    for row in app.store.list_reviews():
        if any(i.name == RELATIVE.name for i in app.store.case(row["case_id"]).invitees):
            done = transitions.uninvite(app.store, row["case_id"], name=RELATIVE.name,
                                        now=app.clock.now())
            return after_withdrawal(app, done.review_id, done.duties, done.removed).letters
    return 0
