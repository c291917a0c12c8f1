"""ehcbridge plugin: outlook. Calendar invitations by email (iCalendar iTIP/iMIP) for any calendar.

Hook bodies live in ``service`` and import icalendar lazily, so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl

# Settings (pydantic) and the mail transport load when first needed, so listing commands
# (`ehcbridge --help`) stays fast.


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    from ehcbridge_outlook.settings import OutlookSettings

    register(OutlookSettings)


# trylast: in invite = "uninvited" mode the other calendar plugins must have recorded their
# invitations for this event before this plugin decides who is left.
@hookimpl(trylast=True)
def on_review_scheduled(event: Any, ctx: Any) -> None:
    """Send iTIP REQUEST (new or moved meeting) or CANCEL to the invitees this plugin reaches."""
    from ehcbridge_outlook import service

    service.on_review_scheduled(event, ctx)


@hookimpl
def on_views_due(event: Any, ctx: Any) -> None:
    """Send the coordinator all-day reminders for the views request and views due dates."""
    from ehcbridge_outlook import service

    service.on_deadlines(event, ctx)


@hookimpl
def on_meeting_held(event: Any, ctx: Any) -> None:
    """Send the coordinator all-day reminders for the report and decision deadlines."""
    from ehcbridge_outlook import service

    service.on_deadlines(event, ctx)


@hookimpl
def on_decision(event: Any, ctx: Any) -> None:
    """Cancel the meeting (and its reminders) when the LA decides to cease before it is held."""
    from ehcbridge_outlook import service

    service.on_decision(event, ctx)


@hookimpl
def forget_cases(case_ids: Any, ctx: Any) -> None:
    """Erased cases: forget their meetings, reminders and the copies sent to each address."""
    from ehcbridge_outlook import service

    service.forget(ctx, case_ids)


@hookimpl
def export_case(case_id: Any, ctx: Any) -> Any:
    """A subject access request: the case's meetings, reminders, copies sent and feed entries."""
    from ehcbridge_outlook import service

    return [{"key": key, "value": value} for key, value in service.held(ctx, [case_id])] or None


@hookimpl
def deliver_notice(notice: Any, ctx: Any) -> Any:
    """Send a notice (views request, advice pack, report, decision) by email."""
    from ehcbridge_outlook import notices

    return notices.deliver_notice(notice, ctx)


@hookimpl
def on_deadline(event: Any, ctx: Any) -> None:
    """Email the coordinator when a review duty is at risk; coordinator and LA SEN officer when
    it is missed (once each)."""
    from ehcbridge_outlook import deadlines

    deadlines.on_deadline(event, ctx)


@hookimpl
def check(ctx: Any) -> Any:
    """Doctor: settings and the mail transport (SMTP handshake and login, nothing sent)."""
    from ehcbridge.events import CheckResult
    from ehcbridge.plugin_settings import settings_of

    from ehcbridge_outlook import service
    from ehcbridge_outlook.settings import OutlookSettings

    settings = settings_of(ctx, OutlookSettings, require=False)
    who = {"uninvited": "invitations to everyone no other calendar plugin invited",
           "all": "invitations to every invitee", "none": "no invitations"}[settings.invite]
    reminders = "deadline reminders to the coordinator" if settings.reminders \
        else "no deadline reminders"
    results = [CheckResult("outlook invitations", "ok",
                           f"{who} (invite = {settings.invite}); {reminders}")]
    results.append(service.check_transport(settings))
    return results


@hookimpl
def register_schedules(register: Any) -> None:
    """Nightly, forget the state of meetings and deadlines long past."""
    register("outlook-prune", "40 3 * * *", _prune)
    register("outlook-mailbox", "*/10 * * * *", _mailbox)


def _mailbox(ctx: Any) -> None:
    from ehcbridge import NotConfigured

    from ehcbridge_outlook.mailbox import read_mailbox
    from ehcbridge_outlook.service import settings_of

    try:
        read_mailbox(ctx, settings_of(ctx))
    except NotConfigured:  # no imap_host: nothing to read
        return


def _prune(ctx: Any) -> None:
    from ehcbridge_outlook import service

    service.prune(ctx)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``ehcbridge outlook ...``."""
    from ehcbridge_outlook.cli import outlook

    cli.add_command(outlook)
