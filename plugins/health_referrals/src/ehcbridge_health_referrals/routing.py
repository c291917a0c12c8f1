"""Deciding which team an invitee goes to, and keeping that decision on the record."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from ehcbridge.events import HookContext, Route
from ehcbridge.models import Invitee, Pupil, Review

from .rules import (
    MATCH_FIELDS,
    RoutingRule,
    RoutingTable,
    YearRange,
    known_service,
    normalise_district,
    service_label,
)
from .settings import HealthReferralsSettings

# Families are invited as themselves; every professional role may be routed to a team.
ROUTED_ROLES = frozenset({"health", "social_care", "other", "setting", "la_sen_officer"})
DCO_RULE = "dco-fallback"
UNROUTED_FLAG = "unrouted_invite"
_NO_NEED = 10_000  # sorts after any real need rank


@dataclass(frozen=True)
class Case:
    """What routing looks at for one invitee: role, service and the pupil's facts."""

    role: str
    service: str | None = None
    needs: tuple[str, ...] = ()  # CTF SEN types, primary need first
    la_code: str | None = None
    postcode_district: str | None = None
    school_urn: str | None = None
    nc_year: int | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """The facts routing used, in words, without naming the child."""
        parts = [f"role={self.role}"]
        for name in ("service", "la_code", "postcode_district", "school_urn", "nc_year"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        if self.needs:  # how many, not which: needs are kept only when a rule used them
            parts.append(f"{len(self.needs)} recorded need(s)")
        return ", ".join(parts)


def _matches(rule: RoutingRule, case: Case) -> tuple[bool, int]:
    """Whether ``rule`` matches ``case`` and, if it tests needs, the rank of the best need."""
    need_rank = _NO_NEED
    for f in MATCH_FIELDS:
        allowed = getattr(rule, f)
        if allowed is None:
            continue
        if f == "need":
            ranks = [i for i, need in enumerate(case.needs) if need in allowed]
            if not ranks:
                return False, 0
            need_rank = ranks[0]
        elif f == "nc_year":
            assert isinstance(allowed, YearRange)
            if case.nc_year not in allowed:
                return False, 0
        elif getattr(case, f) not in allowed:
            return False, 0
    return True, need_rank


@dataclass(frozen=True)
class Decision:
    """The outcome of routing one case: the winning rule (None for the DCO fallback)."""

    rule: RoutingRule | None
    reason: str
    matched: dict[str, str]
    candidates: int


def decide(table: RoutingTable, case: Case) -> Decision:
    """Pick the most specific matching rule; among equally specific ones (which the load-time
    check allows only when they test different needs), the one matching the higher-ranked need."""
    best: tuple[int, int, int] | None = None
    winner: RoutingRule | None = None
    candidates = 0
    for position, rule in enumerate(table.rules):
        ok, need_rank = _matches(rule, case)
        if not ok:
            continue
        candidates += 1
        key = (-rule.specificity, need_rank, position)
        if best is None or key < best:
            best, winner = key, rule
    if winner is None:
        return Decision(None, f"no rule matched {case.describe()}", {}, 0)
    matched = winner.conditions()
    if "need" in matched:
        matched["need"] = next(n for n in case.needs if n in (winner.need or ()))
    why = ", ".join(f"{k}={v}" for k, v in matched.items()) or "no conditions (catch-all)"
    reason = f"rule {winner.name!r} matched on {why} (specificity {winner.specificity}"
    if candidates > 1:
        reason += f", most specific of {candidates} matching rules"
    reason += ")"
    return Decision(winner, reason, matched, candidates)


def invitee_service(invitee: Invitee) -> str | None:
    """The service an invitee stands for: its team label, or its name when that names a known
    service (``SALT team``); a person's name is never used as a label."""
    if invitee.team:
        return service_label(invitee.team)
    return known_service(invitee.name)


def pupil_needs(pupil: Pupil, ctx: HookContext) -> tuple[tuple[str, ...], str | None]:
    """The pupil's CTF need codes from the MIS via ``ctx.extras['lookup_pupil']`` (primary
    first), and a note when they could not be fetched."""
    lookup = ctx.extras.get("lookup_pupil")
    if lookup is None or not pupil.upn:
        return (), None
    try:
        record = lookup(pupil.upn)
    except Exception as exc:  # the MIS being down must not stop invitations going out
        ctx.logger.warning("MIS lookup for routing failed: %s", type(exc).__name__)
        return (), "needs unavailable: MIS lookup failed"
    if record is None:
        return (), None
    return tuple(str(n).strip().upper() for n in record.needs if str(n).strip()), None


def area_key(case_id: str) -> str:
    """State key of the area facts (postcode district, LA) recorded for a case."""
    return f"area:{case_id}"


def build_case(invitee: Invitee, pupil: Pupil, review: Review, ctx: HookContext,
               settings: HealthReferralsSettings) -> Case:
    """Gather the routing facts for one invitee of one review."""
    # Ask the MIS only when some rule tests needs: no lookup, no needs held.
    uses_needs = any(rule.need for rule in settings.table.rules)
    needs, note = pupil_needs(pupil, ctx) if uses_needs else ((), None)
    area = ctx.store.get_state(area_key(review.case_id), {}) or {}
    district = area.get("postcode_district")
    return Case(
        role=str(invitee.role.value),
        service=invitee_service(invitee),
        needs=needs,
        la_code=area.get("la_code") or settings.la_code,
        postcode_district=normalise_district(district) if district else None,
        school_urn=pupil.school_urn,
        nc_year=pupil.nc_year,
        notes=(note,) if note else (),
    )


def review_token(review: Review) -> str:
    """Identifies one review of a case (a case is reviewed every year under the same id)."""
    return str(review.id) if review.id is not None else review.due_by.isoformat()


def route_key(review: Review, invitee: Invitee) -> str:
    """State key of the route record for one invitee of a review."""
    label = invitee_service(invitee) or (invitee.email or invitee.name or "-").casefold()
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    return f"route:{review.case_id}:{review_token(review)}:{invitee.role.value}:{digest}"


def route_for(invitee: Invitee, pupil: Pupil, review: Review, ctx: HookContext,
              settings: HealthReferralsSettings) -> Route | None:
    """Route one invitee, record the decision (state and audit), flag the review when it fell
    through to the DCO. None for roles this plugin does not route."""
    role = str(invitee.role.value)
    if role not in ROUTED_ROLES:
        return None
    again = _already_routed(invitee, review, ctx, settings)
    if again is not None:
        return again
    case = build_case(invitee, pupil, review, ctx, settings)
    decision = decide(settings.table, case)
    reason = decision.reason + "".join(f"; {n}" for n in case.notes)
    if decision.rule is not None:
        rule = decision.rule
        route = Route(team=rule.team, email=rule.mailbox, rule=rule.name, reason=reason,
                      portal_url=rule.portal_url, data_level=rule.data_level)
    elif role in settings.fallback_roles and settings.dco_mailbox:
        route = Route(team=settings.dco_team, email=settings.dco_mailbox, rule=DCO_RULE,
                      reason=f"{reason}; sent to the DCO service", flagged=True,
                      portal_url=settings.dco_portal_url)
    else:
        ctx.store.audit(review.case_id, "route", {
            "role": role, "service": case.service, "rule": None, "reason": reason,
            "outcome": "left as it is",
        })
        return None
    record = _record(route, case, invitee, ctx)
    record["review"] = review_token(review)
    ctx.store.set_state(route_key(review, invitee), record)
    ctx.store.audit(review.case_id, "route", record)
    refresh_unrouted(ctx, review)
    return route


def _already_routed(invitee: Invitee, review: Review, ctx: HookContext,
                    settings: HealthReferralsSettings) -> Route | None:
    """The same Route again for an invitee that already carries a routed team and mailbox, so
    asking twice never re-routes a team name as if it were a service."""
    if not invitee.email or not invitee.team:
        return None
    email, team = invitee.email.casefold(), invitee.team.casefold()
    for record in routes_of(ctx, review.case_id, review_token(review)):
        if record["mailbox"].casefold() == email and record["team"].casefold() == team:
            ctx.store.audit(review.case_id, "route", {
                "role": invitee.role.value, "team": record["team"],
                "mailbox": record["mailbox"], "rule": record["rule"],
                "outcome": "already routed"})
            return Route(team=record["team"], email=record["mailbox"], rule=record["rule"],
                         reason=record["reason"], portal_url=record.get("portal_url"),
                         data_level=record.get("data_level", "minimal"),
                         flagged=bool(record.get("flagged")))
    known = [(r.team, r.mailbox, r.name, r.portal_url, r.data_level)
             for r in settings.table.rules]
    if settings.dco_mailbox:
        known.append((settings.dco_team, settings.dco_mailbox, DCO_RULE,
                      settings.dco_portal_url, "minimal"))
    for team_name, mailbox, rule, portal, level in known:
        if mailbox.casefold() == email and team_name.casefold() == team:
            route = Route(team=team_name, email=mailbox, rule=rule, portal_url=portal,
                          data_level=level,
                          reason=f"already addressed to {team_name}'s mailbox (rule {rule!r})")
            record = asdict(route)
            record["mailbox"] = record.pop("email")
            record.update(role=invitee.role.value, service=None, invitee=invitee.team,
                          routed_at=ctx.clock.now().isoformat(), review=review_token(review))
            ctx.store.set_state(route_key(review, invitee), record)
            ctx.store.audit(review.case_id, "route", record)
            return route
    return None


def refresh_unrouted(ctx: HookContext, review: Review) -> None:
    """Raise ``unrouted_invite`` while any invitee of the review fell through to the DCO; clear
    it (if this plugin raised it) once none does."""
    case_id, token = review.case_id, review_token(review)
    marker = f"unrouted:{case_id}:{token}"
    flagged = sorted({
        f"{r['role']}{' ' + r['service'] if r.get('service') else ''}"
        for r in routes_of(ctx, case_id, token) if r.get("flagged")
    })
    if flagged:
        ctx.store.flag_review(case_id, UNROUTED_FLAG, "no routing rule for " + ", ".join(flagged)
                              + " (sent to the DCO service)")
        ctx.store.set_state(marker, True)
    elif ctx.store.get_state(marker):
        ctx.store.clear_flag(case_id, UNROUTED_FLAG)
        ctx.store.delete_state(marker)


def _record(route: Route, case: Case, invitee: Invitee, ctx: HookContext) -> dict[str, Any]:
    record = asdict(route)
    record["mailbox"] = record.pop("email")
    record.update(
        role=case.role,
        service=case.service,
        invitee=invitee.team or invitee.name or invitee.email,
        routed_at=ctx.clock.now().isoformat(),
    )
    return record


def routes_of(ctx: HookContext, case_id: str, token: str | None = None) -> list[dict[str, Any]]:
    """The route records of one review of a case (``token``), or of all its reviews."""
    prefix = f"route:{case_id}:" + (f"{token}:" if token is not None else "")
    return [value for _key, value in ctx.store.state_items(prefix)]


def asks_key(review: Review, mailbox: str) -> str:
    """State key of this plugin's word to the core that it asks ``mailbox`` for advice on a
    review itself (the Route's ``advice_by``)."""
    digest = hashlib.sha256(mailbox.strip().casefold().encode()).hexdigest()[:12]
    return f"asks:{review.case_id}:{review_token(review)}:{digest}"


def record_asks(ctx: HookContext, review: Review, route: Route) -> None:
    """Remember that the core was told this plugin asks the route's mailbox itself: the core's
    notices leave it to us from then on, so it is asked even if a later route of the same
    service goes to another team (while the review still invites it)."""
    key = asks_key(review, route.email)
    if ctx.store.get_state(key) is not None:
        return
    ctx.store.set_state(key, {
        "team": route.team, "mailbox": route.email, "rule": route.rule, "reason": route.reason,
        "portal_url": route.portal_url, "data_level": route.data_level,
        "flagged": route.flagged, "review": review_token(review),
        "at": ctx.clock.now().isoformat()})


def teams_of(ctx: HookContext, review: Review,
             invited: set[str] | None = None) -> list[dict[str, Any]]:
    """The distinct teams (by mailbox) a review's invitees were routed to, and any mailbox this
    plugin told the core it asks that a later route replaced (with ``invited``, the mailboxes
    the review invites in lower case, only those still invited)."""
    seen: dict[str, dict[str, Any]] = {}
    token = review_token(review)
    for record in routes_of(ctx, review.case_id, token):
        seen.setdefault(record["mailbox"].casefold(), record)
    for _key, record in ctx.store.state_items(f"asks:{review.case_id}:{token}:"):
        mailbox = record["mailbox"].casefold()
        if mailbox not in seen and (invited is None or mailbox in invited):
            seen[mailbox] = record
    return sorted(seen.values(), key=lambda r: (r["team"].casefold(), r["mailbox"]))
