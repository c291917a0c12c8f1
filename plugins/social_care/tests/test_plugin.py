"""The plugin as the core loads it: entry point, hook names, settings, doctor checks."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from ehcbridge.events import CheckResult
from ehcbridge.plugins import PluginManager
from ehcbridge_social_care import FEED_CRON, check, poll_feed, register_schedules
from ehcbridge_social_care.importers import import_source
from ehcbridge_social_care.settings import SocialCareSettings
from pydantic import SecretStr

from .conftest import NOW, UPN_A, CountingStore, context


def test_core_loads_the_plugin_and_validates_its_settings(tmp_path: Path) -> None:
    manager = PluginManager(plugin_settings={"social_care": {
        "mapping_file": str(tmp_path / "map.csv"), "weight_real": 4, "projected_reviews": 1}})
    record = manager.load()["social_care"]
    manager.configure()
    assert record.status == "loaded", record.reason
    assert {"meeting_constraints", "register_commands", "register_settings", "check",
            "register_schedules"} <= set(record.hooks)
    assert isinstance(record.settings, SocialCareSettings)
    assert record.settings.weight_real == 4 and record.settings.projected_reviews == 1


def test_unknown_setting_fails_the_plugin() -> None:
    manager = PluginManager(plugin_settings={"social_care": {"weight_rael": 4}})
    manager.configure()
    record = manager.load()["social_care"]
    assert record.status == "failed" and "weight_rael" in record.reason


def test_schedule_registration() -> None:
    got: list[tuple[str, str, object]] = []
    register_schedules(register=lambda name, cron, func: got.append((name, cron, func)))
    assert got == [("social_care_feed", FEED_CRON, poll_feed)]


def by_name(results: list[CheckResult]) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in results}


def test_check_before_and_after_imports(tmp_path: Path, store: CountingStore) -> None:
    assert by_name(check(context(store))) == {"social_care dates": (
        "not configured", "nothing imported yet: ehcbridge social-care import FILE")}
    assert by_name(check(context(store, SocialCareSettings(enabled=False)))) == {
        "social_care": ("not configured", "disabled in settings")}
    path = tmp_path / "x.csv"
    path.write_text(f"upn,review_type,review_date\n{UPN_A},cla,2027-03-12\n")
    import_source(context(store), str(path))
    status, detail = by_name(check(context(store)))["social_care dates"]
    assert status == "ok" and detail.startswith("1 pupil(s) with social care review dates")
    later = context(store, now=NOW + timedelta(days=60))
    assert by_name(check(later))["social_care dates"][0] == "warning"


def test_check_reports_a_bad_mapping_file(tmp_path: Path, store: CountingStore) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("social_care_id,upn\nLA1,bad\n")
    results = by_name(check(context(store, SocialCareSettings(mapping_file=mapping))))
    status, detail = results["social_care mapping"]
    assert status == "failed" and "row 2, column upn" in detail
    mapping.write_text(f"social_care_id,upn\nLA1,{UPN_A}\n")
    results = by_name(check(context(store, SocialCareSettings(mapping_file=mapping))))
    assert results["social_care mapping"] == ("ok", f"{mapping}: 1 social care ids")


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers /ok with an empty calendar and everything else with 503."""

    def do_GET(self) -> None:
        if self.path.startswith("/ok"):
            body = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nEND:VCALENDAR\r\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(503)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_check_fetches_the_feed(server: str, store: CountingStore) -> None:
    ok = SocialCareSettings(feed_url=SecretStr(f"{server}/ok?token=s3cret"))
    assert by_name(check(context(store, ok)))["social_care feed"] == (
        "ok", f"{server}: 0 review events")
    bad = SocialCareSettings(feed_url=SecretStr(f"{server}/down?token=s3cret"))
    status, detail = by_name(check(context(store, bad)))["social_care feed"]
    assert status == "failed" and detail == f"{server}: the feed answered HTTP 503"
