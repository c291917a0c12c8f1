"""Kill the engine with SIGKILL mid-run and restart it: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PLUGIN = '''\
"""A plugin that honours the idempotency key, like a remote API with de-duplication."""
import fcntl, json, os, time
from ehcbridge import hookimpl

NAME = __name__.split("_", 1)[1]


def _deliver(event):
    path = os.path.join(os.environ["CRASH_DIR"], NAME + ".jsonl")
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        seen = [json.loads(line)["key"] for line in fh if line.strip()]
        calls = os.path.join(os.environ["CRASH_DIR"], NAME + ".calls")
        with open(calls, "a") as c:
            c.write(event.idempotency_key + "\\n")
        if event.idempotency_key not in seen:  # the "remote" applies each key once
            time.sleep(0.02)
            fh.write(json.dumps({"key": event.idempotency_key}) + "\\n")
            fh.flush()
            os.fsync(fh.fileno())


@hookimpl
def on_review_scheduled(event, ctx):
    _deliver(event)


@hookimpl
def on_views_due(event, ctx):
    _deliver(event)
'''


def _install_fake_plugins(site: Path) -> None:
    """Two plugins made visible through a .dist-info folder on PYTHONPATH."""
    for name in ("alpha", "beta"):
        (site / f"crashtest_{name}.py").write_text(PLUGIN)
        info = site / f"crashtest_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: crashtest-{name}\n"
                                       "Version: 1.0\n")
        (info / "entry_points.txt").write_text(f"[ehcbridge]\n{name} = crashtest_{name}\n")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHCBRIDGE_")}
    env.update(PYTHONPATH=str(tmp_path / "site"), CRASH_DIR=str(tmp_path),
               EHCBRIDGE_LOAD_PLUGINS="alpha,beta",
               EHCBRIDGE_STORE__URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    return env


def _engine(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ehcbridge.cli", "run", "--once", "--now",
                             "2027-02-20T09:00"], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _applied(tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line]


def test_sigkill_mid_run_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    _install_fake_plugins(tmp_path / "site")
    csv = tmp_path / "list.csv"
    rows = [f"EHC-{n:03d},Sam,Example,2026-04-01,2027-03-{10 + n % 15:02d}T10:00\n"
            for n in range(40)]
    csv.write_text("case_id,forename,surname,plan_issued,meeting_start\n" + "".join(rows))
    subprocess.run([sys.executable, "-m", "ehcbridge.cli", "import", "reviews", str(csv)],
                   env=_env(tmp_path), cwd=tmp_path, check=True, capture_output=True)

    first = _engine(tmp_path)
    deadline = time.monotonic() + 60
    while len(_applied(tmp_path, "alpha")) + len(_applied(tmp_path, "beta")) < 15:
        assert first.poll() is None, first.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "engine made no progress"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    partly = len(_applied(tmp_path, "alpha")) + len(_applied(tmp_path, "beta"))
    assert partly < 160, "the engine finished before it was killed; nothing was tested"

    second = _engine(tmp_path)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()[-2000:]

    # 40 meetings scheduled, and by 20 Feb every meeting's six-week views request is due.
    expected = {f"EHC-{n:03d}/r{n + 1}/m{n + 1}/scheduled/0" for n in range(40)} | \
               {f"EHC-{n:03d}/r{n + 1}/views/request" for n in range(40)}
    for name in ("alpha", "beta"):
        applied = _applied(tmp_path, name)
        assert len(applied) == len(set(applied)), f"{name} applied a key twice"
        assert set(applied) == expected, f"{name} lost deliveries"
    ledger = subprocess.run([sys.executable, "-m", "ehcbridge.cli", "deliveries", "--json"],
                            env=_env(tmp_path), cwd=tmp_path, capture_output=True, check=True)
    rows_out = json.loads(ledger.stdout)
    assert len(rows_out) == 160
    assert {r["status"] for r in rows_out} == {"delivered"}
