"""Advice requests to routed teams: sent once per review and stage, reminded once, tracked."""

from __future__ import annotations

import hashlib
import html
from datetime import date, timedelta
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any

from ehcbridge import mail
from ehcbridge.events import HookContext, LifecycleEvent
from ehcbridge.models import LONDON, Meeting, Review

from .routing import (
    ROUTED_ROLES,
    pupil_needs,
    review_token,
    route_for,
    route_key,
    teams_of,
)
from .settings import HealthReferralsSettings

ADVICE_NOTICE = timedelta(days=14)  # reg 20(4): advice circulated two weeks before the meeting
OVERDUE_FLAG = "advice_overdue"


def _mailbox_key(mailbox: str) -> str:
    return mailbox.strip().casefold()


def sent_key(case_id: str, token: str, stage: str, mailbox: str) -> str:
    """State key set once a stage's message has gone to a team."""
    return f"sent:{case_id}:{token}:{stage}:{_mailbox_key(mailbox)}"


def received_key(case_id: str, token: str, mailbox: str) -> str:
    """State key set when a team's advice is recorded as returned."""
    return f"received:{case_id}:{token}:{_mailbox_key(mailbox)}"


def advice_due(meeting: Meeting) -> date:
    """The day advice must be in: two weeks before the meeting."""
    return (meeting.start.astimezone(LONDON) - ADVICE_NOTICE).date()


def message_id(idempotency_key: str, mailbox: str, domain: str) -> str:
    """A Message-ID that is the same on every retry of the same delivery to the same team."""
    digest = hashlib.sha256(f"{idempotency_key}|{_mailbox_key(mailbox)}".encode()).hexdigest()
    return f"<{digest[:40]}.advice@{domain}>"


def _long_date(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _kind(review: Review) -> str:
    return {"annual": "annual review", "early": "early review",
            "phase_transfer": "phase transfer review",
            "under_five": "under-fives review"}.get(str(review.kind.value), "review")


def setting_names(ctx: HookContext, settings: HealthReferralsSettings) -> dict[str, str]:
    """School names by URN: the council's schools directory (``engine.schools_directory``,
    which the termly lists use too), with this plugin's ``setting_names`` taking precedence."""
    names: dict[str, str] = {}
    path = ctx.engine_settings.schools_directory if ctx.engine_settings is not None else None
    if path is not None:
        try:
            names = _directory_names(str(path), Path(path).stat().st_mtime_ns)
        except (ValueError, OSError):
            names = {}  # doctor reports the directory; the request still goes, with the URN
    return {**names, **settings.setting_names}


@lru_cache(maxsize=4)
def _directory_names(path: str, mtime_ns: int) -> dict[str, str]:
    """The directory's names by URN, read once per version of the file (a catch-up run sends
    thousands of requests)."""
    from ehcbridge.schools import load_directory

    return {urn: school.name for urn, school in load_directory(Path(path)).items()}


def build_message(event: LifecycleEvent, team: dict[str, Any],
                  settings: HealthReferralsSettings, *, reminder: bool = False,
                  needs: tuple[str, ...] = (), names: dict[str, str] | None = None
                  ) -> EmailMessage:
    """The advice request (or its reminder) for one team, as plain text and HTML (``names``:
    school names by URN, by default this plugin's ``setting_names``)."""
    meeting = event.meeting
    if meeting is None:
        raise ValueError("an advice request needs a meeting")
    review, pupil = event.review, event.pupil
    due = advice_due(meeting)
    start, end = meeting.start.astimezone(LONDON), meeting.end.astimezone(LONDON)
    urn = pupil.school_urn
    names = settings.setting_names if names is None else names
    setting = (f"{names[urn]} (URN {urn})" if urn and urn in names
               else f"URN {urn}" if urn else "not recorded")
    facts: list[tuple[str, str, str | None]] = [
        ("Case reference", review.case_id, None),
        ("Initials", pupil.initials, None),
        ("Date of birth", pupil.dob.strftime("%d/%m/%Y") if pupil.dob else "not recorded", None),
        ("Setting", setting, None),
        ("Meeting", f"{_long_date(start.date())}, {start:%H:%M} to {end:%H:%M}", None),
    ]
    if meeting.join_url:
        facts.append(("Join online", meeting.join_url, meeting.join_url))
    if meeting.location and (not meeting.online or meeting.location.casefold() != "online"):
        facts.append(("Location", meeting.location, None))
    facts.append(("Advice due by", _long_date(due), None))
    if team.get("data_level") == "needs" and needs:
        facts.append(("Recorded needs (CTF)", ", ".join(needs), None))
    how = settings.return_instructions
    portal = team.get("portal_url")
    contact = settings.reply_to or review.coordinator_email

    lead = (f"This is a reminder: we have not yet recorded advice from {team['team']} for this "
            f"{_kind(review)}." if reminder else
            f"{team['team']} is invited to contribute advice to the EHC plan {_kind(review)} "
            f"below (SEND Regulations 2014, regulation 20).")
    ask = (f"Please send your advice by {_long_date(due)}, two weeks before the meeting, so that "
           f"it can be circulated to everyone invited.")

    text = [lead, "", ask, ""]
    text += [f"{label}: {value}" for label, value, _link in facts]
    text += ["", f"How to return your advice: {how}"]
    if portal:
        text.append(f"Upload it at: {portal}")
    if contact:
        text.append(f"Questions: {contact}")
    text += ["", "Please do not forward this message outside your team."]

    def cell(value: str, link: str | None) -> str:
        safe = html.escape(value)
        return f'<a href="{html.escape(link, quote=True)}">{safe}</a>' if link else safe

    rows = "".join(f"<tr><th align=\"left\">{html.escape(label)}</th><td>{cell(value, link)}"
                   f"</td></tr>" for label, value, link in facts)
    body = [f"<p>{html.escape(lead)}</p>", f"<p><strong>{html.escape(ask)}</strong></p>",
            f"<table>{rows}</table>",
            f"<p>How to return your advice: {html.escape(how)}</p>"]
    if portal:
        body.append(f"<p>Upload it at: {cell(portal, portal)}</p>")
    if contact:
        body.append(f"<p>Questions: {cell(contact, 'mailto:' + contact)}</p>")
    body.append("<p>Please do not forward this message outside your team.</p>")

    message = EmailMessage()
    # Short enough not to be folded (Python folds a long Subject right after the colon).
    message["Subject"] = (
        f"Reminder: advice due {due.day} {due:%b %Y} for {review.case_id}" if reminder
        else f"Advice request: {review.case_id} {_kind(review)}, {start.day} {start:%b %Y}")
    message["To"] = team["mailbox"]
    message["From"] = settings.from_address
    if contact:
        message["Reply-To"] = contact
    message.set_content("\n".join(text) + "\n")
    message.add_alternative("<html><body>" + "".join(body) + "</body></html>", subtype="html")
    return message


def _ensure_routes(event: LifecycleEvent, ctx: HookContext,
                   settings: HealthReferralsSettings) -> list[dict[str, Any]]:
    invited = {i.email.strip().casefold() for i in event.invitees if i.email}
    teams = teams_of(ctx, event.review, invited)
    if teams:
        return teams
    # route_invite was not consulted for this case: route the event's invitees now, keeping
    # the team of any invitee another router already routed.
    for invitee in event.invitees:
        if invitee.role.value not in ROUTED_ROLES:
            continue
        if invitee.source == "routed" and invitee.email:
            team = invitee.team or invitee.name or invitee.email
            ctx.store.set_state(route_key(event.review, invitee), {
                "team": team, "mailbox": invitee.email, "rule": "routed elsewhere",
                "reason": "already routed to its team before this plugin saw it",
                "portal_url": None, "data_level": "minimal", "flagged": False,
                "role": invitee.role.value, "service": None, "invitee": team,
                "routed_at": ctx.clock.now().isoformat(), "review": review_token(event.review),
            })
        else:
            route_for(invitee, event.pupil, event.review, ctx, settings)
    return teams_of(ctx, event.review, invited)


def _send(event: LifecycleEvent, ctx: HookContext, settings: HealthReferralsSettings,
          team: dict[str, Any], *, stage: str, reminder: bool, needs: tuple[str, ...]) -> None:
    case_id, token = event.review.case_id, review_token(event.review)
    message = build_message(event, team, settings, reminder=reminder, needs=needs,
                            names=setting_names(ctx, settings))
    domain = settings.from_address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = message_id(event.idempotency_key, team["mailbox"], domain)
    sent_id = mail.send(message, settings.mail_settings())
    now = ctx.clock.now().isoformat()
    ctx.store.set_state(sent_key(case_id, token, stage, team["mailbox"]),
                        {"at": now, "message_id": sent_id, "team": team["team"]})
    # Not an invitation record: those say who was invited to the *meeting*, and a calendar
    # plugin reading one for this mailbox would take the team as invited already and skip it.
    ctx.store.audit(case_id, f"advice_{'reminder' if reminder else 'request'}", {
        "team": team["team"], "mailbox": team["mailbox"], "rule": team.get("rule"),
        "message_id": sent_id, "advice_due": advice_due(event.meeting).isoformat()
        if event.meeting else None,
    })


def handle_views_due(event: LifecycleEvent, ctx: HookContext,
                     settings: HealthReferralsSettings) -> dict[str, list[str]]:
    """Send what this stage calls for: requests to every routed team not yet asked; at
    ``reminder``/``due``, one reminder to teams asked earlier that have not replied; at ``due``,
    flag the review with the teams whose advice is overdue. Returns team names by what happened."""
    outcome: dict[str, list[str]] = {"requested": [], "reminded": [], "overdue": []}
    if event.meeting is None:
        ctx.logger.warning("views stage %s for a review without a meeting: nothing sent",
                           event.stage)
        return outcome
    case_id, token = event.review.case_id, review_token(event.review)
    teams = _ensure_routes(event, ctx, settings)
    needs: tuple[str, ...] = ()
    if any(t.get("data_level") == "needs" for t in teams):
        needs, _note = pupil_needs(event.pupil, ctx)
    store = ctx.store
    today = ctx.clock.now().astimezone(LONDON).date().isoformat()
    returned = returned_in_review(ctx, event.review)
    for team in teams:
        mailbox = team["mailbox"]
        if received(ctx, event.review, team, returned):
            continue
        asked = store.get_state(sent_key(case_id, token, "request", mailbox))
        if asked is None:
            _send(event, ctx, settings, team, stage="request", reminder=False, needs=needs)
            outcome["requested"].append(team["team"])
        # A team asked today (a meeting booked late, all stages firing at once) is not
        # reminded straight away: its request already gives the due date.
        asked_before = asked is not None and str(asked["at"])[:10] < today
        if event.stage in ("reminder", "due"):
            if event.stage == "due":
                outcome["overdue"].append(team["team"])
            if asked_before and store.get_state(
                    sent_key(case_id, token, "reminder", mailbox)) is None:
                _send(event, ctx, settings, team, stage="reminder", reminder=True, needs=needs)
                outcome["reminded"].append(team["team"])
    if event.stage == "due":
        refresh_overdue(ctx, event.review, overdue_stage_reached=True)
    return outcome


def _is_current(ctx: HookContext, review: Review) -> bool:
    current = ctx.store.review(review.case_id)
    return current is not None and current.id == review.id


def _names(team: dict[str, Any]) -> set[str]:
    """How the core may have recorded a team's advice: its mailbox or its name, case-folded."""
    return {str(team["mailbox"]).strip().casefold(), str(team.get("team", "")).strip().casefold()}


def returned_in_review(ctx: HookContext, review: Review) -> dict[str, date | None]:
    """Who the core has recorded views or advice from for this review (``review views``, a
    reply read from a mailbox), case-folded (an address or a name), with the first date."""
    if not _is_current(ctx, review):
        return {}  # the core keeps views for the current review only
    found: dict[str, date | None] = {}
    for views in ctx.store.views(review.case_id):
        found.setdefault(views.contributor.strip().casefold(), views.received)
    return found


def received(ctx: HookContext, review: Review, team: dict[str, Any],
             returned: dict[str, date | None] | None = None) -> bool:
    """Whether the team's advice is in: recorded here (``health-referrals received``) or with
    the review in the core, from the team's mailbox or under its name."""
    if ctx.store.get_state(received_key(review.case_id, review_token(review),
                                        team["mailbox"])) is not None:
        return True
    found = returned if returned is not None else returned_in_review(ctx, review)
    return bool(_names(team) & found.keys())


def outstanding(ctx: HookContext, review: Review) -> list[dict[str, Any]]:
    """Teams asked for advice on this review that have not returned it."""
    token = review_token(review)
    returned = returned_in_review(ctx, review)
    return [t for t in teams_of(ctx, review)
            if ctx.store.get_state(sent_key(review.case_id, token, "request", t["mailbox"]))
            is not None and not received(ctx, review, t, returned)]


def refresh_overdue(ctx: HookContext, review: Review, *,
                    overdue_stage_reached: bool | None = None) -> None:
    """Raise, update or clear the ``advice_overdue`` flag from what is still outstanding."""
    token = review_token(review)
    marker = f"overdue:{review.case_id}:{token}"
    if overdue_stage_reached:
        ctx.store.set_state(marker, True)
    if not ctx.store.get_state(marker):
        return
    late = outstanding(ctx, review)
    if late:
        ctx.store.flag_review(review.case_id, OVERDUE_FLAG,
                              ", ".join(sorted(t["team"] for t in late)))
    else:
        ctx.store.clear_flag(review.case_id, OVERDUE_FLAG)


def refresh_all_overdue(ctx: HookContext) -> int:
    """Bring every ``advice_overdue`` flag up to date with advice recorded since (with the
    review, or here); returns how many reviews still have advice outstanding. A review whose
    advice is all in, or that is no longer its case's current one, is not looked at again."""
    still = 0
    for key, marked in ctx.store.state_items("overdue:"):
        case_id, _, token = key.removeprefix("overdue:").rpartition(":")
        review = ctx.store.review(case_id)
        if not marked or review is None or review_token(review) != token:
            ctx.store.delete_state(key)  # next year's review has its own marker
            continue
        refresh_overdue(ctx, review)
        if outstanding(ctx, review):
            still += 1
        else:
            ctx.store.delete_state(key)
    return still


class UnknownTeam(LookupError):
    """``received`` named a team that was not asked for advice on this review."""


def record_received(ctx: HookContext, review: Review, team_name: str,
                    on: date | None = None) -> dict[str, Any]:
    """Record a team's advice as returned (matched by team name or mailbox, any case) and
    update the overdue flag. Raises UnknownTeam listing the review's teams."""
    wanted = team_name.strip().casefold()
    teams = teams_of(ctx, review)
    team = next((t for t in teams
                 if wanted in (t["team"].casefold(), t["mailbox"].casefold())), None)
    if team is None:
        known = ", ".join(t["team"] for t in teams) or "none routed yet"
        raise UnknownTeam(f"no team {team_name!r} on review {review.case_id} (teams: {known})")
    day = on or ctx.clock.now().astimezone(LONDON).date()
    record = {"on": day.isoformat(), "team": team["team"], "mailbox": team["mailbox"],
              "recorded_at": ctx.clock.now().isoformat()}
    ctx.store.set_state(received_key(review.case_id, review_token(review), team["mailbox"]),
                        record)
    if _is_current(ctx, review) and not (_names(team) & returned_in_review(ctx, review).keys()):
        # The review's own record of advice received (`review show`, the circulation of reg
        # 20(4)) learns of it too, without files: those come through `review views`.
        ctx.store.record_views(review.case_id, team["mailbox"], day, [])
    ctx.store.audit(review.case_id, "advice_received", record)
    refresh_overdue(ctx, review)
    return record


def status_of(ctx: HookContext, case_id: str, record: dict[str, Any]) -> str:
    """Where a routed team's advice stands: not requested, requested, reminded or received."""
    token, mailbox = str(record.get("review", "")), record["mailbox"]
    got = ctx.store.get_state(received_key(case_id, token, mailbox))
    if got:
        return f"advice received {got['on']}"
    review = ctx.store.review(case_id)
    if review is not None and review_token(review) == token:
        returned = returned_in_review(ctx, review)
        days = [returned[name] for name in _names(record) if name in returned]
        if days:
            day = min((d for d in days if d is not None), default=None)
            return f"advice received {day.isoformat() if day else ''}".rstrip()
    reminded = ctx.store.get_state(sent_key(case_id, token, "reminder", mailbox))
    if reminded:
        return f"reminded {reminded['at'][:10]}"
    asked = ctx.store.get_state(sent_key(case_id, token, "request", mailbox))
    if asked:
        return f"advice requested {asked['at'][:10]}"
    return "advice not yet requested"
