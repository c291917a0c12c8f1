"""Operating ehcbridge: doctor's exit codes and JSON, run --once --json, warnings, progress,
quiet migrations and private files."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from ehcbridge import operations
from ehcbridge.cli import cli


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_doctor_json_lists_every_check_with_exit_code_0() -> None:
    code, out, _ = run("doctor", "--json")
    data = json.loads(out)
    assert code == data["exit_code"] == operations.EXIT_OK
    rows = {(r["plugin"], r["check"]): r for r in data["checks"]}
    assert rows[("core", "store")]["status"] == "ok"
    assert rows[("core", "engine")]["status"] == "not run"
    assert all(set(r) == {"plugin", "check", "status", "detail"} for r in data["checks"])


def test_doctor_with_the_store_unreachable_fails_with_code_3_and_no_traceback() -> None:
    env = {"EHCBRIDGE_STORE__URL": "postgresql://ehc@127.0.0.1:1/nowhere"}
    code, out, err = run("doctor", "--json", env=env)
    assert code == operations.EXIT_STORE == 3
    data = json.loads(out)
    store = next(r for r in data["checks"] if r["check"] == "store")
    assert store["status"] == "failed" and "cannot open the store" in store["detail"]
    assert "Traceback" not in out + err
    code, out, err = run("doctor", env=env)
    assert code == 3 and "failed" in out and "Traceback" not in out + err


def test_doctor_exits_1_when_a_check_fails(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text('[plugins.teams]\nallow_new_time_proposals = "sometimes"\n')
    code, out, _ = run("--config", str(config), "doctor", "--json")
    assert code == operations.EXIT_CHECK_FAILED == 1
    teams = [r for r in json.loads(out)["checks"] if r["plugin"] == "teams"]
    assert teams[0]["status"] == "failed"


def test_a_misspelt_plugin_section_is_a_warning_naming_file_and_plugins(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"
    config.write_text('[plugins.outlok]\ntransport = "outbox"\n')
    code, _, err = run("--config", str(config), "plugins", "--json")
    assert code == 0
    assert f"warning: {config}: [plugins.outlok] matches no installed plugin" in err
    assert "outlook" in err.split("installed:")[1]


def test_run_once_json_and_the_last_pass_in_doctor(tmp_path: Path) -> None:
    code, out, _ = run("run", "--once", "--json", "--now", "2027-01-04T09:00")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"worker", "timers_fired", "deadlines", "events_dispatched", "deliveries",
                         "seconds"}
    assert data["deliveries"] == {} and data["timers_fired"] == 0
    _, out, _ = run("doctor", "--json")
    engine = next(r for r in json.loads(out)["checks"] if r["check"] == "engine")
    assert engine["status"] == "ok" and engine["detail"].startswith("last pass ")


def test_migrations_log_nothing_at_v_and_only_at_vv(tmp_path: Path) -> None:
    import logging

    env = {"EHCBRIDGE_STORE__URL": f"sqlite:///{tmp_path / 'v.sqlite3'}"}
    run("-v", "review", "list", env=env)
    assert logging.getLogger("alembic").level == logging.WARNING
    run("-vv", "review", "list", env=env)
    assert logging.getLogger("alembic").level == logging.DEBUG
    operations.quiet_alembic(0)


def test_the_database_and_its_folder_are_private(tmp_path: Path) -> None:
    from ehcbridge.store import Store

    data = tmp_path / "new" / "data"
    store = Store(f"sqlite:///{data / 'ehcbridge.sqlite3'}")
    store.close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "ehcbridge.sqlite3").stat().st_mode) == 0o600
    for extra in data.glob("ehcbridge.sqlite3-*"):
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_outbox_messages_are_private(tmp_path: Path) -> None:
    from email.message import EmailMessage

    from ehcbridge.mail import MailSettings, send

    message = EmailMessage()
    message["To"] = "parent@example.net"
    message.set_content("hello")
    outbox = tmp_path / "outbox"
    send(message, MailSettings(transport="outbox", outbox_dir=outbox,
                               from_address="ehc@la.example.gov.uk"))
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    [eml] = outbox.glob("*.eml")
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_on_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(n) for n in range(0, 1000, 3))
    monkeypatch.setattr(operations.time, "monotonic", lambda: next(clock))
    plain = io.StringIO()
    bar = operations.Progress("importing", 100, plain)
    bar.start()
    for done in range(0, 101, 10):
        bar.update(done)
    bar.stop()
    lines = plain.getvalue().splitlines()
    assert lines and all(line.startswith("importing: ") for line in lines)
    assert lines[-1].startswith("importing: 100/100")
    tty = _Tty()
    bar = operations.Progress("delivering", 10, tty)
    bar.start()
    bar.update(10)
    bar.stop()
    assert "delivering" in tty.getvalue() and "10/10" in tty.getvalue()
    quiet = operations.Progress("silent", 10, None)
    quiet.start()
    quiet.update(10)
    quiet.stop()


def test_long_listings_are_plain_aligned_columns() -> None:
    out: list[str] = []
    rows = [(f"EHC-{n:04d}", "annual" if n % 2 else "under_five") for n in range(201)]
    assert operations.echo_columns(("case", "kind"), rows, out.append)
    lines = out[0].splitlines()
    assert lines[0] == "case      kind" and lines[1] == "--------  ----------"
    assert lines[2] == "EHC-0000  under_five" and len(lines) == 203
    assert not operations.echo_columns(("case", "kind"), rows[:200], out.append)


def test_doctor_reads_the_councils_notice_templates(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"

    def doctor(**files: str) -> tuple[int, dict[str, str]]:
        for kind, text in files.items():
            (tmp_path / f"{kind}.j2").write_text(text, encoding="utf-8")
        config.write_text("[notices.templates]\n" + "".join(
            f'{kind} = "{kind}.j2"\n' for kind in files), encoding="utf-8")
        code, out, _ = run("--config", str(config), "doctor", "--json")
        row = next(r for r in json.loads(out)["checks"] if r["check"] == "notice templates")
        return code, row

    code, row = doctor(decision='{% extends "default/decision.j2" %}\n{% block body %}\n'
                                "{{ super() }}\nCall us.\n{% endblock %}\n")
    assert (code, row["status"]) == (0, "ok") and "1 council template(s)" in row["detail"]
    # A chase the council wrote into its own reminder would reach teams a plugin chases itself.
    code, row = doctor(advice_reminder="@@subject\nReminder\n@@body\nPlease send your advice.\n")
    assert (code, row["status"]) == (0, "warning")
    assert "advice_reminder.j2 does not use `chase`" in row["detail"]
    code, row = doctor(advice_reminder="@@subject\nReminder\n@@body\n"
                                       "{% if chase %}Please send your advice.{% endif %}\n")
    assert row["status"] == "ok"
    # A template that does not parse: doctor fails, naming the file and line, before the engine
    # meets it while sending.
    code, row = doctor(views_request="@@subject\nViews\n@@body\n{% if %}\n")
    assert (code, row["status"]) == (operations.EXIT_CHECK_FAILED, "failed")
    assert "views_request.j2 line 4" in row["detail"]


def test_doctor_warns_when_replies_to_notices_have_nowhere_to_go(tmp_path: Path) -> None:
    config = tmp_path / "ehcbridge.toml"

    def replies(text: str) -> dict[str, str] | None:
        config.write_text(text, encoding="utf-8")
        code, out, _ = run("--config", str(config), "doctor", "--json")
        assert code == operations.EXIT_OK  # a warning, not a failure
        return next((r for r in json.loads(out)["checks"] if r["check"] == "notice replies"),
                    None)

    row = replies("")
    assert row is not None and row["status"] == "warning"
    assert "notices.council_email is not set" in row["detail"]
    assert replies('[notices]\ncouncil_email = "sen@council.example.gov.uk"\n') is None
