"""Termly lists as notices: each head gets their school's list, the ICB and social care the whole
list, two weeks before each term, once, through the delivery ledger like any other notice."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ehcbridge.app import App
    from ehcbridge.lists import ListEntry, TermlyLists
    from ehcbridge.notices.model import Attachment, Notice
    from ehcbridge.schools import School
    from ehcbridge.terms import Term

log = logging.getLogger("ehcbridge.lists")
KIND = "termly_list"
STATE_PLUGIN = "_engine"


def _attachments(title: str, stem: str, entries: list[ListEntry]) -> tuple[Attachment, ...]:
    from ehcbridge.lists import to_csv, to_pdf
    from ehcbridge.notices.model import Attachment

    return (Attachment.inline(f"{stem}.csv", to_csv(entries).encode("utf-8"), "text/csv"),
            Attachment.inline(f"{stem}.pdf", to_pdf(title, entries), "application/pdf"))


def _wording(app: App, lists: TermlyLists, entries: list[ListEntry], whose: str,
             school: str) -> tuple[str, tuple[str, ...]]:
    """Subject and paragraphs from the ``termly_list`` template (a council may replace it)."""
    from ehcbridge.notices.build import long_date
    from ehcbridge.notices.render import environment, render

    config = app.settings.config_path
    env = environment(app.settings.notices, config.parent if config is not None else None)
    subject, paragraphs, _ = render(env, KIND, {
        "whose": whose, "school": school, "count": len(entries),
        "phase_transfer": sum(e.phase_transfer for e in entries),
        "preparing_for_adulthood": sum(e.preparing_for_adulthood for e in entries),
        "due_from": long_date(lists.due_from), "due_to": long_date(lists.due_to)})
    return subject, paragraphs


def build_notices(app: App, lists: TermlyLists, term: Term | None,
                  directory: dict[str, School] | None) -> list[Notice]:
    """One notice per school with a recipient in the directory, plus the whole list to health
    and social care (when their addresses are set)."""
    from ehcbridge.notices.model import EMAIL, LETTER, Notice, NoticeRecipient

    engine = app.settings.engine
    stem = term.slug if term else f"{lists.due_from.isoformat()}-{lists.due_to.isoformat()}"
    sender = app.settings.notices.council_name
    out: list[Notice] = []
    # Every school in the directory hears, even with nothing due: "none this term" is news too.
    for urn in sorted(set(lists.by_school) | set(directory or {})):
        school = (directory or {}).get(urn)
        if school is None:
            continue  # reported by the caller: no one to send it to
        entries = lists.by_school.get(urn, [])
        recipient = NoticeRecipient(role="headteacher",
                                    name=school.headteacher_name or f"Headteacher, {school.name}",
                                    email=school.headteacher_email, address=school.address)
        title = f"{lists.title} - {school.name} ({urn})"
        subject, paragraphs = _wording(app, lists, entries, f"pupils at {school.name}",
                                       school.name)
        out.append(Notice(
            key=f"{KIND}:{stem}:{urn}", kind=KIND,
            channel=EMAIL if school.headteacher_email else LETTER, recipient=recipient,
            subject=subject, paragraphs=paragraphs,
            attachments=_attachments(title, f"{stem}-{urn}", entries),
            sender=sender))
    whole = lists.entries
    for role, address, name in (("health", engine.lists_health_email, "ICB health services"),
                                ("social_care", engine.lists_social_care_email,
                                 "Social care")):
        if not address:
            continue
        subject, paragraphs = _wording(app, lists, whole,
                                       "children and young people in every school", "")
        out.append(Notice(
            key=f"{KIND}:{stem}:{role}", kind=KIND, channel=EMAIL,
            recipient=NoticeRecipient(role=role, name=name, email=address),
            subject=subject, paragraphs=paragraphs,
            attachments=_attachments(f"{lists.title} - all schools", f"{stem}-all",
                                     whole),
            sender=sender))
    return out


def queue_lists(app: App, lists: TermlyLists, term: Term | None, start: date, end: date,
                now: datetime | None = None) -> int:
    """Queue a window's list notices (each key once, ever); returns how many were new."""
    from ehcbridge.invite_rules import load_directory_setting
    from ehcbridge.notices.delivery import queue

    notices = build_notices(app, lists, term, load_directory_setting(app))
    return queue(app, notices, now or app.clock.now())


def queue_due_lists(app: App, now: datetime) -> int:
    """The engine's termly job: in the fortnight (``engine.lists_days_before_term``) before a
    configured term starts, queue its lists once; returns how many notices were queued."""
    from ehcbridge.lists import build, due_window
    from ehcbridge.terms import TermError, from_settings

    engine = app.settings.engine
    if not engine.terms and engine.term_dates_ics is None:
        return 0
    try:
        terms = from_settings(engine)[0]
    except (TermError, OSError) as exc:
        log.error("termly lists: %s", exc)
        return 0
    today = now.date()
    queued = 0
    for term in terms:
        if not term.start - timedelta(days=engine.lists_days_before_term) <= today < term.start:
            continue
        key = f"lists:{term.slug}"
        if app.store.get_state(STATE_PLUGIN, key) is not None:
            continue
        from ehcbridge.invite_rules import load_directory_setting

        start, end = due_window(term, terms)
        directory = load_directory_setting(app)
        lists = build(app.store, title=f"{term.name}: reviews due", due_from=start, due_to=end,
                      as_of=today, directory=directory,
                      infant_schools=frozenset(engine.infant_schools))
        for urn in lists.missing_schools:
            log.warning("termly lists: school %s is not in the schools directory", urn)
        queued += queue_lists(app, lists, term, start, end, now)
        app.store.set_state_many(STATE_PLUGIN, {key: {
            "queued_at": now.isoformat(), "missing_schools": lists.missing_schools}})
    return queued
