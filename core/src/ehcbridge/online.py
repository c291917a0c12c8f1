"""Online meetings without a provider: the flag the engine raises and the line doctor shows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from ehcbridge.events import CheckResult

if TYPE_CHECKING:
    from ehcbridge.app import App

PROVIDER_HOOK = "provide_online_meeting"
NO_PROVIDER_FLAG = "no_online_provider"


def no_provider_detail(why: str) -> str:
    """What ``review show`` says about an online meeting that has no provider to link it."""
    return (f"online meeting without an online meeting provider ({why}); invitations say the "
            "joining link will follow, and an update brings it once a provider is configured")


def provider_check(app: App) -> CheckResult | None:
    """Doctor's line about online meetings: a warning while some have no link for want of a
    provider, or when the configured provider is not loaded; None when there is nothing to say."""
    provider = app.settings.engine.online_meetings
    if provider and provider not in app.plugins.implementers(PROVIDER_HOOK):
        return CheckResult("online meetings", "warning",
                           f"engine.online_meetings is {provider!r} but no loaded plugin of that "
                           "name provides online meetings")
    waiting = len(app.store.list_reviews(flag=NO_PROVIDER_FLAG))
    if not waiting:
        return None
    if provider:
        return CheckResult("online meetings", "ok",
                           f"{waiting} review(s) flagged {NO_PROVIDER_FLAG} get a link from "
                           f"{provider} on the next run")
    return CheckResult("online meetings", "warning",
                       f"{waiting} review(s) flagged {NO_PROVIDER_FLAG}: their online meetings "
                       "have no joining link; set engine.online_meetings to teams or zoom and "
                       "configure that plugin, and an update with the link goes out")


def demo_line(app: App) -> str:
    """The demo's line about online meetings that went out without a joining link."""
    flagged = app.store.flag_count(NO_PROVIDER_FLAG)
    return (f"  online meetings without a provider: {flagged} review(s) flagged "
            f"{NO_PROVIDER_FLAG} (invitations say the joining link will follow)")


def online_wanted(path: Path) -> set[str]:
    """Case ids whose row in the demo's list asks for an online meeting, so the demo books the
    planner's proposals for them online (as ``plan --apply --online`` would)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["case_id"] for row in csv.DictReader(fh)
                if (row.get("online") or "").strip().lower() == "true"}
