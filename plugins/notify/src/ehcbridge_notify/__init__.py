"""ehcbridge plugin: notify. Notices through GOV.UK Notify: email and text messages from the
council's templates, letters posted as precompiled PDFs. The client loads on first use."""

from __future__ import annotations

from typing import Any

from ehcbridge import hookimpl


@hookimpl
def register_settings(register: Any) -> None:
    """Register this plugin's settings model."""
    from ehcbridge_notify.settings import NotifySettings

    register(NotifySettings)


@hookimpl
def deliver_notice(notice: Any, ctx: Any) -> Any:
    """Send a notice by Notify (email, text message or posted letter)."""
    from ehcbridge_notify.service import deliver_notice as deliver

    return deliver(notice, ctx)


@hookimpl
def forget_cases(case_ids: Any, ctx: Any) -> None:
    """Erased cases: forget the notifications sent for them (kept by Notify's id, which the
    core cannot tie to a case), so the status poll no longer asks about them."""
    from ehcbridge_notify.service import forget

    forget(ctx, case_ids)


@hookimpl
def export_case(case_id: Any, ctx: Any) -> Any:
    """A subject access request: the notifications sent for the case, with their status."""
    from ehcbridge_notify.service import held

    return [{"key": key, "value": value} for key, value in held(ctx, [case_id])] or None


@hookimpl
def register_schedules(register: Any) -> None:
    """Every 15 minutes, read back the status of notifications not yet final."""
    register("notify-status", "*/15 * * * *", _poll)


def _poll(ctx: Any) -> None:
    from ehcbridge import NotConfigured

    from ehcbridge_notify.service import poll

    try:
        poll(ctx)
    except NotConfigured:
        return


@hookimpl
def check(ctx: Any) -> Any:
    """Doctor: is a key set, and does Notify accept it (lists the templates, sends nothing)?"""
    from ehcbridge import PermanentError, RetryLater
    from ehcbridge.events import CheckResult

    from ehcbridge_notify.service import _call, client
    from ehcbridge_notify.settings import NotifySettings

    settings = ctx.settings if isinstance(ctx.settings, NotifySettings) else NotifySettings()
    if not settings.configured:
        return CheckResult("notify", "not configured", "set api_key in [plugins.notify]")
    try:
        templates = _call(client(settings).get_all_templates).get("templates", [])
    except (PermanentError, RetryLater) as exc:
        return CheckResult("notify", "failed", str(exc))
    ids = {t.get("id") for t in templates}
    missing = [name for name in ("email_template_id", "sms_template_id")
               if getattr(settings, name) and getattr(settings, name) not in ids]
    if missing:
        return CheckResult("notify", "warning", f"{', '.join(missing)} not among the service's "
                                                f"{len(ids)} template(s)")
    return CheckResult("notify", "ok", f"key accepted; {len(ids)} template(s)")


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``ehcbridge notify ...``."""
    from ehcbridge_notify.cli import notify

    cli.add_command(notify)
