"""Online meetings without a provider: the flag the engine raises and the line doctor shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ehcbridge.events import CheckResult

if TYPE_CHECKING:
    from ehcbridge.app import App

PROVIDER_HOOK = "provide_online_meeting"
NO_PROVIDER_FLAG = "no_online_provider"
NO_PROVIDER = ("the meeting is online but no online meeting provider is configured "
               "(engine.online_meetings): invitations say the joining link will follow")


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
