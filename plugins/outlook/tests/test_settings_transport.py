"""Settings, doctor checks, TLS transport, plugin wiring and the time zone definition."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import ehcbridge.hookspecs
import ehcbridge_outlook
import pluggy
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from ehcbridge import NotConfigured, RetryLater
from ehcbridge.testing import make_event
from ehcbridge_outlook import ical
from ehcbridge_outlook.settings import OutlookSettings
from icalendar import Calendar
from pydantic import SecretStr, ValidationError

PASSWORD = "s3cret-Passw0rd"


def test_defaults_write_to_an_outbox_and_map_onto_core_mail_settings() -> None:
    settings = OutlookSettings()
    assert settings.transport == "outbox" and settings.outbox_dir == Path("outbox")
    assert settings.invite == "uninvited" and settings.reminders and settings.alarm_days_before == 1
    assert settings.summary_template == "EHCP annual review: {initials} ({case_id})"
    mail = OutlookSettings(transport="smtp", smtp_host="mail.example", smtp_port=465,
                           smtp_security="tls", smtp_username="u",
                           smtp_password=PASSWORD).mail()  # type: ignore[arg-type]
    assert (mail.smtp_host, mail.smtp_port, mail.smtp_security) == ("mail.example", 465, "tls")
    assert mail.smtp_password is not None and mail.smtp_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(OutlookSettings(smtp_password=PASSWORD))  # type: ignore[arg-type]


@pytest.mark.parametrize(("values", "message"), [
    ({"summary_template": "Review for {full_name}"}, "include_names"),
    ({"summary_template": "Review {needs}"}, r"unknown field\(s\) needs"),
    ({"reminder_template": "{forename}: {milestone}"}, "include_names"),
    ({"alarm_days_before": -1}, "between 0 and 60"),
    ({"invite": "everyone"}, "invite"),
    ({"smtp_hostname": "typo"}, "smtp_hostname"),
])
def test_bad_settings_are_refused_with_the_key_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OutlookSettings(**values)


def test_names_only_when_a_setting_asks_for_them(tools: Any, smtp_server: Any) -> None:
    named = OutlookSettings(**(tools.settings.model_dump() | {
        "include_names": True, "summary_template": "Annual review: {full_name}",
        "smtp_password": None}))
    ehcbridge_outlook.on_review_scheduled(make_event(), tools.ctx(settings=named))
    assert str(tools.vevent(smtp_server.handler.messages[0].message)["SUMMARY"]) == \
        "Annual review: Sam Example"


def test_smtp_without_a_host_is_not_configured(tools: Any) -> None:
    settings = OutlookSettings(transport="smtp")
    with pytest.raises(NotConfigured):
        ehcbridge_outlook.on_review_scheduled(make_event(), tools.ctx(settings=settings))
    results = ehcbridge_outlook.check(tools.ctx(settings=settings))
    assert [r.status for r in results] == ["ok", "not configured"]


def test_doctor_reports_outbox_and_smtp(tools: Any, tmp_path: Path) -> None:
    outbox = OutlookSettings(outbox_dir=tmp_path / "out")
    statuses = [(r.name, r.status) for r in ehcbridge_outlook.check(tools.ctx(settings=outbox))]
    assert statuses == [("outlook invitations", "ok"), ("outlook transport", "ok")]
    # Said in words: "uninvited" is a setting's value, not people removed from a review.
    detail = ehcbridge_outlook.check(tools.ctx(settings=outbox))[0].detail
    assert detail == ("invitations to everyone no other calendar plugin invited "
                      "(invite = uninvited); deadline reminders to the coordinator")
    smtp = ehcbridge_outlook.check(tools.ctx())[1]
    assert smtp.status == "ok" and "none, no login" in smtp.detail
    down = tools.settings.model_copy(update={"smtp_port": tools.free_port()})
    assert ehcbridge_outlook.check(tools.ctx(settings=down))[1].status == "failed"


# TLS --------------------------------------------------------------------------------------------


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bridge" \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(params=["starttls", "tls"])
def tls_server(tools: Any, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[tuple[Any, Path, int, str]]:
    """An SMTP server with a certificate from a throwaway CA: STARTTLS or implicit TLS, login."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = tools.Handler()
    port = tools.free_port()
    mode = request.param
    kwargs: dict[str, Any] = {"authenticator": _authenticator, "auth_required": True}
    if mode == "starttls":
        kwargs |= {"tls_context": server_ctx, "require_starttls": True}
    else:
        # aiosmtpd cannot see that an implicit TLS socket is encrypted; AUTH must be allowed.
        kwargs |= {"ssl_context": server_ctx, "auth_require_tls": False}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield handler, ca_file, port, mode
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_tls_and_login(tools: Any, tls_server: tuple[Any, Path, int, str]) -> None:
    handler, ca_file, port, mode = tls_server
    settings = OutlookSettings(
        transport="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_security=mode,
        smtp_username="bridge", smtp_password=PASSWORD,  # type: ignore[arg-type]
        ca_bundle=ca_file, smtp_timeout=5, retry_wait=0,
        from_address="reviews@council.example.gov.uk")
    ehcbridge_outlook.on_review_scheduled(make_event(), tools.ctx(settings=settings))
    assert len(handler.messages) == 6
    assert ehcbridge_outlook.check(tools.ctx(settings=settings))[1].status == "ok"
    wrong = settings.model_copy(update={"smtp_password": SecretStr("wrong")})
    result = ehcbridge_outlook.check(tools.ctx(settings=wrong))[1]
    assert result.status == "failed" and "login" in result.detail
    assert PASSWORD not in result.detail and "wrong" not in result.detail
    # Without the CA the server's certificate is not trusted: nothing is sent.
    untrusted = settings.model_copy(update={"ca_bundle": None, "send_attempts": 1})
    with pytest.raises(RetryLater):
        ehcbridge_outlook.on_review_scheduled(make_event(case_id="EHC-0009"),
                                              tools.ctx(settings=untrusted))


# Wiring -----------------------------------------------------------------------------------------


def test_plugin_registers_with_the_core_hookspecs() -> None:
    pm = pluggy.PluginManager("ehcbridge")
    pm.add_hookspecs(ehcbridge.hookspecs)
    pm.register(ehcbridge_outlook, name="outlook")
    pm.check_pending()
    registered: list[type] = []
    pm.hook.register_settings(register=registered.append)
    assert registered == [OutlookSettings]
    cli = click.Group("ehcbridge")
    pm.hook.register_commands(cli=cli)
    assert "feed" in cli.commands["outlook"].commands  # type: ignore[attr-defined]


def test_loading_the_plugin_does_not_import_icalendar() -> None:
    code = ("import sys, ehcbridge_outlook; "
            "print(sorted(m for m in ('icalendar', 'tenacity', 'vobject') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Time zone --------------------------------------------------------------------------------------


def test_vtimezone_agrees_with_the_tz_database() -> None:
    tz = ical.london_timezone()
    parsed = Calendar.from_ical(b"BEGIN:VCALENDAR\r\n" + tz.to_ical() + b"END:VCALENDAR\r\n")
    ours = parsed.walk("VTIMEZONE")[0].to_tz(lookup_tzid=False)
    london = ZoneInfo("Europe/London")
    checked = 0
    for year in range(2000, 2040):
        for month in (3, 10):
            last_sunday = max(date(year, month, d) for d in range(25, 32)
                              if date(year, month, d).weekday() == 6)
            for delta in (-1, 0, 1):
                for hour in (0, 3, 12, 23):
                    moment = datetime.combine(last_sunday + timedelta(days=delta),
                                              datetime.min.time()).replace(hour=hour)
                    assert moment.replace(tzinfo=ours).utcoffset() == \
                        moment.replace(tzinfo=london).utcoffset(), moment
                    checked += 1
    assert checked == 40 * 2 * 3 * 4


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, info in OutlookSettings.model_fields.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")),
                   None)
        assert row is not None, f"README lacks a row for {name}"
        default = info.default
        shown = "none" if default is None else (
            str(default).lower() if isinstance(default, bool) else str(default))
        assert shown in row, f"README row for {name} does not show its default {shown!r}"
