"""Invitee routing: professionals are invited through their team, via the ``route_invite`` hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ehcbridge.events import Route
from ehcbridge.models import Invitee, Role
from ehcbridge.store import CaseView, StoreError

if TYPE_CHECKING:
    from ehcbridge.app import App

# Families are invited as themselves; everyone else may be routed to a team.
UNROUTED_ROLES = frozenset({Role.PARENT, Role.YOUNG_PERSON})
# Roles reg 20(2) requires that a school cannot fill in itself: a router finds the team.
TEAM_ROLES = (Role.HEALTH, Role.SOCIAL_CARE)


def route(app: App, case_id: str, invitee: Invitee, case: CaseView | None = None
          ) -> Route | None:
    """Ask the routing plugins where this invitee's invitation goes (None: as given); ``case``
    saves loading the case again when the caller has it."""
    if invitee.role in UNROUTED_ROLES:
        return None
    case = case or app.store.case(case_id)
    result = app.plugins.call_first("route_invite", review=case.review, pupil=case.pupil,
                                    invitee=invitee, ctx=app.plugin_context)
    return result if isinstance(result, Route) else None


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
        return app.store.add_invitee(case_id, invitee)
    # An invitee added by an invitation rule keeps the rule as its source once routed.
    source = invitee.source if invitee.source.startswith("rule:") else "routed"
    routed = invitee.model_copy(update={"email": found.email, "team": found.team,
                                        "name": invitee.name or found.team,
                                        "source": source})
    return app.store.add_invitee(case_id, routed, routed_from=invitee.email or "")


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
            app.store.add_invitee(case_id, Invitee(role=Role.PARENT, name=name,
                                                   email=contact.email, source="mis"))
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
            app.store.add_invitee(case_id, routed, routed_from=invitee.email or "",
                                  replace_email=invitee.email)
            changed = True
    for role in TEAM_ROLES:
        if role not in present:
            placeholder = Invitee(role=role, source="required")
            found = route(app, case_id, placeholder, case)
            if found is not None:
                app.store.add_invitee(case_id, Invitee(role=role, name=found.team,
                                                       email=found.email, team=found.team,
                                                       source="routed"))
                changed = True
    return changed
