"""Invitee routing: professionals are invited through their team, via the ``route_invite`` hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ehcbridge import transitions
from ehcbridge.events import Route
from ehcbridge.models import Invitee, Role
from ehcbridge.store import CaseView, StoreError

if TYPE_CHECKING:
    from ehcbridge.app import App

# Families are invited as themselves; everyone else may be routed to a team.
UNROUTED_ROLES = frozenset({Role.PARENT, Role.YOUNG_PERSON})
# Roles reg 20(2) requires that a school cannot fill in itself: a router finds the team.
TEAM_ROLES = (Role.HEALTH, Role.SOCIAL_CARE)
# Where the core keeps, per review and mailbox, the plugin a Route said asks for advice itself.
ADVICE_STATE = "_engine"
ADVICE_HOOK = "on_views_due"  # the hook such a plugin sends its own request and reminder from


def advice_prefix(review_id: int | None = None) -> str:
    """The state key prefix of the advice markers of one review (or of every review)."""
    return "advice_by:" if review_id is None else f"advice_by:{review_id}:"


def _remember_advice_by(app: App, review_id: int | None, found: Route) -> None:
    """Keep what a Route says about who asks its mailbox for advice (``advice_by``), for the
    notices; a later Route to the same mailbox without it hands the asking back to the core."""
    if review_id is None or not found.email:
        return
    key = advice_prefix(review_id) + found.email.strip().lower()
    if found.advice_by:
        if app.store.get_state(ADVICE_STATE, key) != found.advice_by:
            app.store.set_state_many(ADVICE_STATE, {key: found.advice_by})
    elif app.store.get_state(ADVICE_STATE, key) is not None:
        app.store.delete_state(ADVICE_STATE, key)


def advice_markers(app: App, review_id: int | None = None) -> dict[str, str]:
    """Every answer kept about who asks for advice: ``mailbox -> plugin`` for one review (an
    empty plugin: the core asks), or ``"<review id>:<mailbox>" -> plugin`` for all reviews."""
    prefix = advice_prefix(review_id)
    return {key[len(prefix):]: str(plugin)
            for key, plugin in app.store.state_items(ADVICE_STATE, prefix)}


def advice_asked_by(app: App, review_id: int) -> dict[str, str]:
    """The mailboxes of a review (lower case) that a loaded plugin asks for advice itself, with
    the plugin's name. A plugin no longer loaded (or without ``on_views_due``) asks no one, so
    the core's notices ask its mailboxes again."""
    asking = set(app.plugins.implementers(ADVICE_HOOK))
    if not asking:  # nobody asks for advice itself: no need to read the markers
        return {}
    return {mailbox: plugin for mailbox, plugin in advice_markers(app, review_id).items()
            if plugin in asking}


def route(app: App, case_id: str, invitee: Invitee, case: CaseView | None = None
          ) -> Route | None:
    """Ask the routing plugins where this invitee's invitation goes (None: as given), keeping
    the route's ``advice_by`` for the notices; ``case`` saves loading the case again when the
    caller has it."""
    if invitee.role in UNROUTED_ROLES:
        return None
    case = case or app.store.case(case_id)
    result = app.plugins.call_first("route_invite", review=case.review, pupil=case.pupil,
                                    invitee=invitee, ctx=app.plugin_context)
    if not isinstance(result, Route):
        return None
    _remember_advice_by(app, case.review.id, result)
    return result


def ensure_advice_routes(app: App, case: CaseView) -> None:
    """Before the core asks for advice: ask the routers about professionals none has answered
    for on this review (a routing plugin enabled after the meeting was set and invited), so a
    team a plugin asks itself is not asked by the notices as well."""
    review_id = case.review.id
    if review_id is None or not app.plugins.implementers("route_invite"):
        return
    known = advice_markers(app, review_id)
    for invitee in case.invitees:
        address = (invitee.email or "").strip().lower()
        if (invitee.role in UNROUTED_ROLES or not address or invitee.source == "routed"
                or address in known):
            continue
        found = route(app, case.plan.case_id, invitee, case)
        # The invitee keeps its own address (it was invited already): the answer is kept under
        # it too, empty when the core asks this one itself, so it is asked once, not per stage.
        answer = (found.advice_by or "") if found is not None else ""
        app.store.set_state_many(ADVICE_STATE, {advice_prefix(review_id) + address: answer})


def route_and_add(app: App, case_id: str, invitee: Invitee, *, require_email: bool = True
                  ) -> bool:
    """Add an invitee, replacing the address with the team's when a router answers; True when
    someone new was added."""
    found = route(app, case_id, invitee)
    if found is None:
        if not invitee.email and require_email and not (
                invitee.address and invitee.role in UNROUTED_ROLES):
            raise StoreError(f"{case_id}: a {invitee.role.value} invitee needs an email address"
                             + (" or a postal address" if invitee.role in UNROUTED_ROLES else
                                " (no routing plugin found a team for it)"))
        return transitions.add_invitee(app.store, case_id, invitee)
    # An invitee added by an invitation rule keeps the rule as its source once routed.
    source = invitee.source if invitee.source.startswith("rule:") else "routed"
    routed = invitee.model_copy(update={"email": found.email, "team": found.team,
                                        "name": invitee.name or found.team,
                                        "source": source})
    return transitions.add_invitee(app.store, case_id, routed, routed_from=invitee.email or "")


def ensure_family_invitees(app: App, case_id: str, case: CaseView | None = None) -> bool:
    """Invite the parents the MIS knows (with parental responsibility and an email address)
    when the review has no parent or young person invitee yet (reg 20(2)(a)); True when
    someone was added."""
    case = case or app.store.case(case_id)
    if not case.pupil.upn or any(i.role in UNROUTED_ROLES for i in case.invitees):
        return False
    changed = False
    record = app.plugins.call_first("lookup_pupil", upn=case.pupil.upn, ctx=app.plugin_context)
    for contact in getattr(record, "contacts", ()) or ():
        if getattr(contact, "parental_responsibility", False) and getattr(contact, "email", None):
            name = " ".join(p for p in (contact.forename, contact.surname) if p) or None
            transitions.add_invitee(app.store, case_id, Invitee(
                role=Role.PARENT, name=name, email=contact.email, source="mis"))
            changed = True
    return changed


def ensure_team_invitees(app: App, case_id: str, case: CaseView | None = None) -> bool:
    """Before anyone is invited: route every professional, and find a team for each reg 20(2)
    role (health, social care) that has no invitee yet; True when an invitee changed."""
    case = case or app.store.case(case_id)
    changed = False
    present = {i.role for i in case.invitees}
    for invitee in case.invitees:
        if invitee.role in UNROUTED_ROLES or invitee.source == "routed":
            continue
        found = route(app, case_id, invitee, case)
        if found is not None and (found.email != invitee.email or found.team != invitee.team):
            routed = invitee.model_copy(update={"email": found.email, "team": found.team,
                                                "source": "routed"})
            transitions.add_invitee(app.store, case_id, routed,
                                    routed_from=invitee.email or "", replace_email=invitee.email)
            changed = True
    for role in TEAM_ROLES:
        if role not in present:
            placeholder = Invitee(role=role, source="required")
            found = route(app, case_id, placeholder, case)
            if found is not None:
                transitions.add_invitee(app.store, case_id, Invitee(
                    role=role, name=found.team, email=found.email, team=found.team,
                    source="routed"))
                changed = True
    return changed
