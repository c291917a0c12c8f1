"""``ehcbridge review views`` and the report's sending: the command-line side of notices."""

from __future__ import annotations

import mimetypes
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ehcbridge.app import App

# Views and reports are documents, not archives: refuse anything larger than a big report.
MAX_FILE_BYTES = 25 * 1024 * 1024


def _date(app: App, value: str | None, hint: str) -> date:
    from ehcbridge.formats import parse_date

    try:
        return parse_date(value) if value else app.clock.now().date()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} {exc}", param_hint=hint) from None


def read_files(paths: tuple[Path, ...]) -> list[tuple[str, str, bytes]]:
    """(name, content type, bytes) of each file, or a clear error naming the one that fails."""
    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"{path}: {exc.strerror or exc}",
                                     param_hint="--file") from None
        if len(data) > MAX_FILE_BYTES:
            raise click.BadParameter(f"{path}: {len(data) // (1024 * 1024)} MB is over the "
                                     f"{MAX_FILE_BYTES // (1024 * 1024)} MB a file may be",
                                     param_hint="--file")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        out.append((path.name, kind, data))
    return out


@click.command("views")
@click.argument("case")
@click.option("--from", "sender", required=True,
              help="Email (or name) of who sent the views, as invited.")
@click.option("--on", "on", help="Date received (default today).")
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A document sent with the views (repeat for more).")
def review_views(case: str, sender: str, on: str | None, files: tuple[Path, ...]) -> None:
    """Record views or advice received, keeping its files with the review."""
    from ehcbridge.cli import _store_call
    from ehcbridge.invocation import get_app

    app = get_app()
    received = _date(app, on, "--on")
    documents = read_files(files)  # all read before anything is stored
    current = _store_call(app.store.case, case)
    key = sender.strip().lower()
    invitee = next((i for i in current.invitees
                    if key in {(i.email or "").lower(), (i.name or "").lower()}), None)
    role = invitee.role.value if invitee is not None else None
    _store_call(app.store.add_views, case, contributor=sender.strip(), role=role,
                received_on=received, files=documents, now=app.clock.now())
    who = role.replace("_", " ") if role else "someone not invited"
    click.echo(f"{case}: views from {who} recorded for {received:%d %b %Y}"
               + (f" with {len(documents)} file(s)" if documents else ""))


def send_report(app: App, case: str, documents: list[tuple[str, str, bytes]]) -> int:
    """Keep the report with the review and queue it to everyone invited; the notices queued.
    (The report's date and duty are recorded by the lifecycle transition before this.)"""
    from ehcbridge.notices.delivery import queue_report

    file_id = None
    if documents:
        name, kind, data = documents[0]
        file_id = app.store.add_file(case, kind="report", filename=name, content_type=kind,
                                     data=data, now=app.clock.now())
    app.start_plugins()
    return queue_report(app, case, file_id, app.clock.now())


def notices_json(app: App, case: object) -> dict[str, object]:
    """The views received and the notices of a review, for ``review show --json``."""
    review_id = getattr(getattr(case, "review", None), "id", None)
    if review_id is None:
        return {"views": [], "notices": []}
    views = [{"contributor": v.contributor, "role": v.role,
              "received": v.received.isoformat() if v.received else None,
              "files": list(v.files)} for v in app.store.views(review_id=review_id)]
    notices = [{"kind": r["kind"], "duty": r["duty"], "role": r["role"],
                "channel": r["channel"], "plugin": r["plugin"], "status": r["status"],
                "reference": r["reference"], "detail": r["detail"],
                "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None}
               for r in app.store.notices(review_id=review_id)]
    return {"views": views, "notices": notices}


def print_notices(console: Any, data: dict[str, Any]) -> None:
    """The views and notices tables of ``review show``."""
    from rich.table import Table

    if data.get("views"):
        table = Table("from", "role", "received", "files", title="Views received")
        for v in data["views"]:
            table.add_row(v["contributor"], v["role"] or "", v["received"] or "",
                          ", ".join(v["files"]))
        console.print(table)
    if data.get("notices"):
        table = Table("notice", "to", "by", "status", "duty", title="Notices")
        for n in data["notices"]:
            table.add_row(n["kind"], n["role"] or "", f"{n['channel']} ({n['plugin'] or '-'})",
                          n["status"], n["duty"] or "")
        console.print(table)
