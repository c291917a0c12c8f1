"""GOV.UK Notify against a loopback fake that checks the JWT, the endpoints and the shapes."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import ehcbridge_notify
import pytest
from ehcbridge import PermanentError, RetryLater
from ehcbridge.engine import Engine
from ehcbridge.models import LONDON, Invitee, Plan, Pupil, ReviewKind, Role
from ehcbridge.notices import Attachment, Notice, NoticeRecipient
from ehcbridge.store import Store
from ehcbridge.testing import MemoryPluginStore, make_app, make_context
from ehcbridge_notify.service import poll
from ehcbridge_notify.settings import NotifySettings
from pypdf import PdfReader

NOW = datetime(2027, 2, 24, 9, 0, tzinfo=LONDON)


def _settings(fake: Any, **extra: Any) -> NotifySettings:
    return NotifySettings(api_key=extra.pop("api_key", fake.api_key), base_url=fake.url,
                          email_template_id=fake.email_template,
                          sms_template_id=fake.sms_template, **extra)


def _notice(channel: str = "email", **extra: Any) -> Notice:
    values: dict[str, Any] = dict(
        key=f"EHC-1/r1/notice/advice_reminder/abc123/{channel}", kind="advice_reminder",
        channel=channel,
        recipient=NoticeRecipient(role="parent", name="Ms R Example", professional=False,
                                  email="parent@example.net", mobile="07700 900123",
                                  address=("12 Mill Lane", "Oakfield", "OK1 2AB")),
        subject="Reminder: Sam's annual review meeting on 10 Mar 2027",
        paragraphs=("The meeting is on Wednesday 10 March 2027.",),
        attachments=(Attachment.inline("salt-advice.pdf", b"%PDF-1.4", "application/pdf"),),
        links=("https://ehchub.example.gov.uk",), sender="Oakshire SEN Team", case_id="EHC-1")
    values.update(extra)
    return Notice.model_validate(values)


def test_email_goes_once_through_the_template_with_subject_and_body(notify: Any) -> None:
    store = MemoryPluginStore(plugin="notify")
    ctx = make_context("notify", _settings(notify), now=NOW, store=store)
    receipt = ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)
    again = ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)  # a retry
    assert again.reference == receipt.reference
    [sent] = notify.of_type("email")
    assert sent["id"] == receipt.reference and sent["email_address"] == "parent@example.net"
    assert sent["reference"] == "EHC-1/r1/notice/advice_reminder/abc123/email"
    assert sent["personalisation"]["subject"].startswith("Reminder: Sam's annual review")
    body = sent["personalisation"]["body"]
    assert "Dear Ms R Example" in body and "10 March 2027" in body
    assert "available on the EHC Hub: https://ehchub.example.gov.uk" in body
    assert len([r for r in notify.requests if r[0] == "POST"]) == 1


def test_an_erased_case_is_forgotten_and_no_longer_polled(notify: Any) -> None:
    store = MemoryPluginStore(plugin="notify")
    ctx = make_context("notify", _settings(notify), now=NOW, store=store)
    ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)
    other = _notice(key="EHC-10/r1/notice/advice_reminder/abc123/email", case_id="EHC-10")
    ehcbridge_notify.deliver_notice(notice=other, ctx=ctx)
    sent = {v["case_id"] for _k, v in store.state_items("sent:")}
    assert sent == {"EHC-1", "EHC-10"}
    # A subject access request for EHC-1 is given its notification, not EHC-10's.
    [given] = ehcbridge_notify.export_case(case_id="EHC-1", ctx=ctx)
    assert given["value"]["case_id"] == "EHC-1" and given["key"].startswith("sent:")
    ehcbridge_notify.forget_cases(case_ids=["EHC-1"], ctx=ctx)
    assert ehcbridge_notify.export_case(case_id="EHC-1", ctx=ctx) is None
    assert [v["case_id"] for _k, v in store.state_items("sent:")] == ["EHC-10"]


def test_documents_go_as_notify_file_links_when_the_template_has_placeholders(
        notify: Any) -> None:
    settings = _settings(notify, file_placeholders=2, file_retention_weeks=12).model_copy(
        update={"email_template_id": notify.files_template})
    ctx = make_context("notify", settings, now=NOW, store=MemoryPluginStore(plugin="notify"))
    report = Attachment.inline("camhs-advice.docx", b"PK\x03\x04 advice", "application/msword")
    ehcbridge_notify.deliver_notice(notice=_notice(attachments=(
        Attachment.inline("salt-advice.pdf", b"%PDF-1.4 salt", "application/pdf"), report)),
        ctx=ctx)
    [sent] = notify.of_type("email")
    assert sent["files"] == {"file_1": b"%PDF-1.4 salt", "file_2": b"PK\x03\x04 advice"}
    first = sent["personalisation"]["file_1"]
    assert (first["filename"], first["confirm_email_before_download"],
            first["retention_period"]) == ("salt-advice.pdf", True, "12 weeks")
    body = sent["personalisation"]["body"]
    assert "The documents are at the links below" in body and "available on" not in body
    # One file: the second placeholder is sent empty (Notify refuses a missing one).
    ehcbridge_notify.deliver_notice(notice=_notice(key="EHC-1/r1/notice/x/one/email"), ctx=ctx)
    one = notify.of_type("email")[-1]
    assert one["personalisation"]["file_2"] == "" and set(one["files"]) == {"file_1"}
    # Three files, or one Notify cannot take (too large, or a type it refuses): none is sent,
    # every placeholder is empty and the body points to the Hub, so nothing is half-sent.
    big = Attachment.inline("scan.pdf", b"%PDF" + b"0" * (2 * 1024 * 1024), "application/pdf")
    exe = Attachment.inline("advice.exe", b"MZ", "application/octet-stream")
    for n, files in enumerate(((report,) * 3, (big,), (exe,))):
        ehcbridge_notify.deliver_notice(
            notice=_notice(key=f"EHC-1/r1/notice/x/{n}/email", attachments=files), ctx=ctx)
        last = notify.of_type("email")[-1]
        assert last["files"] == {} and last["personalisation"]["file_1"] == ""
        assert "available on the EHC Hub: https://ehchub.example.gov.uk" in (
            last["personalisation"]["body"])


def test_the_fake_refuses_files_as_notify_does(notify: Any) -> None:
    settings = _settings(notify, file_placeholders=2).model_copy(
        update={"email_template_id": notify.files_template})
    ctx = make_context("notify", settings, now=NOW, store=MemoryPluginStore(plugin="notify"))
    notice = _notice(attachments=(Attachment.inline("a.pdf", b"%PDF", "application/pdf"),))
    # Without the placeholders set, the template's ((file_N)) are missing: a clear refusal.
    plain = make_context("notify", _settings(notify).model_copy(
        update={"email_template_id": notify.files_template}), now=NOW)
    with pytest.raises(PermanentError, match="Missing personalisation: file_1, file_2"):
        ehcbridge_notify.deliver_notice(notice=notice, ctx=plain)
    assert ehcbridge_notify.deliver_notice(notice=notice, ctx=ctx) is not None


def test_text_reminder_goes_to_the_mobile(notify: Any) -> None:
    ctx = make_context("notify", _settings(notify), now=NOW)
    notice = _notice("sms", kind="text_reminder",
                     paragraphs=("Oakshire: Sam's review meeting is on 10 Mar 2027.",))
    ehcbridge_notify.deliver_notice(notice=notice, ctx=ctx)
    [sent] = notify.of_type("sms")
    assert sent["phone_number"] == "07700 900123"
    assert sent["personalisation"] == {"body": "Oakshire: Sam's review meeting is on 10 Mar 2027."}


def test_a_letter_is_posted_as_the_letters_plugins_pdf(notify: Any) -> None:
    ctx = make_context("notify", _settings(notify, postage="first"), now=NOW)
    ehcbridge_notify.deliver_notice(notice=_notice("letter", attachments=()), ctx=ctx)
    [sent] = notify.of_type("letter")
    assert sent["postage"] == "first"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(sent["pdf"])).pages)
    assert "12 Mill Lane" in text and "OK1 2AB" in text and "24 February 2027" in text


def test_notify_errors_are_retried_or_permanent_and_never_show_the_key(notify: Any) -> None:
    ctx = make_context("notify", _settings(notify), now=NOW)
    notify.fail_next("POST", "/v2/notifications/email", 429, "RateLimitError",
                     "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
                     {"Retry-After": "20"})
    with pytest.raises(RetryLater, match="429") as caught:
        ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)
    assert caught.value.retry_after == 20  # type: ignore[attr-defined]
    notify.fail_next("POST", "/v2/notifications/email", 500, "Exception", "Internal server error")
    with pytest.raises(RetryLater, match="500"):
        ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)
    bad_mobile = _notice("sms", recipient=NoticeRecipient(role="parent", mobile="01234 567890"))
    with pytest.raises(PermanentError, match="ValidationError: phone_number Not a UK mobile"):
        ehcbridge_notify.deliver_notice(notice=bad_mobile, ctx=ctx)
    wrong = f"ehcbridge_live-{notify.api_key[-73:-37]}-00000000-0000-4000-8000-000000000000"
    ctx = make_context("notify", _settings(notify, api_key=wrong), now=NOW)
    with pytest.raises(PermanentError, match="403: AuthError: Invalid token") as denied:
        ehcbridge_notify.deliver_notice(notice=_notice(), ctx=ctx)
    assert "00000000-0000-4000" not in str(denied.value)
    assert notify.of_type("email") == []


def test_a_key_that_is_not_a_notify_key_is_refused_by_settings() -> None:
    with pytest.raises(ValueError, match=r"not a GOV\.UK Notify API key"):
        NotifySettings(api_key="not-a-key")


def test_check_lists_templates_and_spots_a_missing_one(notify: Any) -> None:
    ok = ehcbridge_notify.check(ctx=make_context("notify", _settings(notify), now=NOW))
    assert ok.status == "ok" and "3 template(s)" in ok.detail
    other = _settings(notify).model_copy(
        update={"sms_template_id": "11111111-2222-4333-8444-555555555555"})
    warn = ehcbridge_notify.check(ctx=make_context("notify", other, now=NOW))
    assert warn.status == "warning" and "sms_template_id" in warn.detail
    none = ehcbridge_notify.check(ctx=make_context("notify", NotifySettings(), now=NOW))
    assert none.status == "not configured"


def test_through_the_engine_statuses_come_back_and_a_failure_is_flagged(
        notify: Any, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    meeting = datetime(2027, 3, 10, 10, 0, tzinfo=LONDON)
    with store.begin() as conn:
        store.upsert_case(conn, pupil=Pupil(forename="Sam", surname="Example", nc_year=7,
                                            dob=date(2014, 5, 2)),
                          plan=Plan(case_id="EHC-1", issued_on=date(2026, 4, 1)),
                          coordinator_email="officer@council.example.gov.uk",
                          review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
    store.add_invitee("EHC-1", Invitee(role=Role.PARENT, name="Ms R Example",
                                       address="12 Mill Lane\nOK1 2AB", mobile="07700900123"))
    store.add_invitee("EHC-1", Invitee(role=Role.SETTING, name="SENCO",
                                       email="senco@school.example.org"))
    store.schedule_meeting("EHC-1", start=meeting, end=meeting + timedelta(hours=1),
                           location="Oakfield School", now=NOW - timedelta(days=60))
    settings = {"notices": {"email_via": "notify", "letter_via": "notify", "text_via": "notify"},
                "plugins": {"notify": {"api_key": notify.api_key, "base_url": notify.url,
                                       "email_template_id": notify.email_template,
                                       "sms_template_id": notify.sms_template}}}
    app = make_app(store, {"notify": ehcbridge_notify}, settings=settings, now=NOW)
    Engine(app).run_once(NOW)
    # The meeting by letter to the parent (no email: no calendar invitation), the views request
    # (email + letter) and the reminder (email + letter + a text to the parent).
    assert (len(notify.of_type("email")), len(notify.of_type("letter")),
            len(notify.of_type("sms"))) == (2, 3, 1)
    ledger = store.notices(case_id="EHC-1")
    assert {r["reference"] for r in ledger} == set(notify.sent)
    letter = notify.of_type("letter")[0]
    letter["status"] = "received"
    for sent in notify.of_type("email"):
        sent["status"] = "delivered"
    notify.of_type("sms")[0]["status"] = "permanent-failure"
    counts = poll(app.plugin_context("notify"))
    assert counts["delivered"] == 2 and counts["permanent-failure"] == 1
    statuses = {r["reference"]: r["status"] for r in store.notices(case_id="EHC-1")}
    assert statuses[letter["id"]] == "delivered"
    assert statuses[notify.of_type("sms")[0]["id"]] == "failed"
    flag = store.case("EHC-1").flags["notify_failed"]
    assert "text_reminder by sms: Notify reports permanent-failure" in flag
    assert "Sam" not in flag and "07700" not in flag
    # Finals are not asked again: the two letters still in the virus check are.
    assert poll(app.plugin_context("notify")) == {"pending-virus-check": 2}
    store.close()


def test_notify_status_command_without_a_key_says_so(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from ehcbridge_notify.cli import notify

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(notify, ["status"], env={
        "EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert result.exit_code == 1 and "notify: api_key is not set" in result.output
