"""Who else is invited: council rules that add invitees beyond the statutory five.

Council guidance names people who should be invited besides those reg 20(2) requires: the
preparing-for-adulthood team and the CSW group from Year 9, a representative of the next school
or college when the child is about to move, the teams responsible for outcomes in the plan, and
always the LA SEN officer's team (the invitation is how the LA learns the review is going ahead).
Each rule lives in ``[[engine.invitation_rules]]``; each invitee it adds records the rule in its
``source`` (``rule:<name>``), which ``review show`` prints. The rule check itself is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ehcbridge.models import Invitee, Pupil, Review, ReviewKind, Role

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ehcbridge.app import App
    from ehcbridge.schools import School
    from ehcbridge.store import CaseView, Store

SOURCE_PREFIX = "rule:"
LA_ATTENDANCE_FLAG = "la_attendance_suggested"
_EMAIL = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$")
_URN = re.compile(r"^\d{6,7}$")


class InvitationRule(BaseModel):
    """``[[engine.invitation_rules]]``: add an invitee when the review matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$",
                      description="Short stable name, shown as rule:<name> on the invitee")
    invite: Literal["fixed", "receiving_school", "outcome_services"] = "fixed"
    role: Role = Role.OTHER
    team: str | None = None
    email: str | None = None
    from_nc_year: int | None = Field(default=None, ge=-2, le=14,
                                     description="Only pupils in this NC year or later")
    phase_transfer_only: bool = False
    no_setting_only: bool = False
    """Only a child at no school or college, whose review the LA arranges (reg 21): the LA's
    elective home education team, say."""

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("is not an email address")
        return value

    def matches(self, review: Review, pupil: Pupil, transfer: bool,
                no_setting: bool = False) -> bool:
        """True when this review meets the rule's conditions."""
        if self.from_nc_year is not None and (pupil.nc_year is None
                                              or pupil.nc_year < self.from_nc_year):
            return False
        if self.no_setting_only and not no_setting:
            return False
        return not (self.phase_transfer_only and not transfer)


@dataclass(frozen=True)
class PlanDetails:
    """What a review list may say beyond the plan itself, for the rules."""

    receiving_school: str | None = None  # URN or email address of the next school or college
    outcome_services: tuple[str, ...] = ()  # teams responsible for outcomes (SALT, OT, ...)


def parse_services(text: str) -> tuple[str, ...]:
    """``SALT; OT, Physio`` -> ("SALT", "OT", "Physio")."""
    return tuple(s.strip() for s in re.split(r"[;,]", text) if s.strip())


def check_receiving_school(value: str) -> str | None:
    """None when the value is a URN or an email address, else what is wrong."""
    if _URN.match(value) or _EMAIL.match(value):
        return None
    return "is not a school URN or an email address"


def is_transfer(review: Review, pupil: Pupil, infant_school: bool) -> bool:
    """A phase-transfer review: by kind, or the pupil is in a year that ends in a move."""
    years = {6, 11} | ({2} if infant_school else set())
    return review.kind == ReviewKind.PHASE_TRANSFER or (pupil.nc_year is not None
                                                        and pupil.nc_year in years)


def rule_invitees(rules: list[InvitationRule], review: Review, pupil: Pupil,
                  details: PlanDetails, directory: dict[str, School] | None,
                  infant_school: bool = False, no_setting: bool = False) -> list[Invitee]:
    """The invitees the rules add for this review (pure; routing happens later);
    ``no_setting``: the child attends no school or college (reg 21)."""
    transfer = is_transfer(review, pupil, infant_school)
    out: list[Invitee] = []
    for rule in rules:
        if not rule.matches(review, pupil, transfer, no_setting):
            continue
        source = (SOURCE_PREFIX + rule.name)[:40]
        if rule.invite == "fixed":
            out.append(Invitee(role=rule.role, name=rule.team, email=rule.email,
                               team=rule.team, source=source))
        elif rule.invite == "receiving_school" and details.receiving_school:
            school = (directory or {}).get(details.receiving_school)
            email = details.receiving_school if school is None else (
                school.senco_email or school.headteacher_email)
            if email and _EMAIL.match(email):
                out.append(Invitee(role=rule.role, email=email, source=source,
                                   name=school.name if school else "Receiving school or college",
                                   team=school.name if school else None))
        elif rule.invite == "outcome_services":
            for service in details.outcome_services:
                role = Role.SOCIAL_CARE if "social" in service.lower() else Role.HEALTH
                out.append(Invitee(role=role, team=service, name=service, source=source))
    return out


def la_attendance_reason(review: Review, pupil: Pupil, details: PlanDetails) -> str | None:
    """Why an LA case officer should attend (a Year 6 transfer, a change of placement), or None."""
    if pupil.nc_year == 6 and is_transfer(review, pupil, False):
        return "Year 6 phase transfer review"
    if details.receiving_school:
        return "a change of school or college is proposed"
    return None


# Storage of the details (a table of its own: the review list's optional columns) -------------


def save_details(conn: Connection, details: dict[str, PlanDetails]) -> None:
    """Replace the stored details of these cases (inside the import's transaction)."""
    from sqlalchemy import delete, insert

    from ehcbridge.store import schema as t

    if not details:
        return
    keys = list(details)
    for i in range(0, len(keys), 500):
        conn.execute(delete(t.plan_details).where(t.plan_details.c.case_id.in_(keys[i:i + 500])))
    rows = [{"case_id": k, "receiving_school": d.receiving_school,
             "outcome_services": ";".join(d.outcome_services) or None,
             "updated_at": datetime.now(UTC)}
            for k, d in details.items() if d.receiving_school or d.outcome_services]
    if rows:
        conn.execute(insert(t.plan_details), rows)


def details_for(store: Store, case_id: str) -> PlanDetails:
    """The stored details of one case (empty when the list said nothing)."""
    from sqlalchemy import select

    from ehcbridge.store import schema as t

    with store.engine.connect() as conn:
        r = conn.execute(select(t.plan_details).where(t.plan_details.c.case_id == case_id)).first()
    if r is None:
        return PlanDetails()
    return PlanDetails(receiving_school=r.receiving_school,
                       outcome_services=parse_services(r.outcome_services or ""))


def details_by_case(store: Store, case_ids: list[str]) -> dict[str, PlanDetails]:
    """The stored details of many cases, in one query a chunk (cases without are left out)."""
    from sqlalchemy import select

    from ehcbridge.store import schema as t

    out: dict[str, PlanDetails] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(case_ids), 500):
            for r in conn.execute(select(t.plan_details).where(
                    t.plan_details.c.case_id.in_(case_ids[i:i + 500]))):
                out[r.case_id] = PlanDetails(
                    receiving_school=r.receiving_school,
                    outcome_services=parse_services(r.outcome_services or ""))
    return out


def ensure_rule_invitees(app: App, case_id: str, case: CaseView | None = None,
                         details: PlanDetails | None = None) -> int:
    """Add the invitees the council's rules call for (routing each professional through the
    routing plugins) and raise ``la_attendance_suggested``; returns how many were added.
    ``case`` and ``details`` as already read, when the caller has them (None: read here;
    a caller that read details and found none passes ``PlanDetails()``)."""
    from ehcbridge.routing import route_and_add
    from ehcbridge.store import StoreError

    engine = app.settings.engine
    if case is None:
        case = app.store.case(case_id)
    if details is None:
        details = details_for(app.store, case_id)
    reason = la_attendance_reason(case.review, case.pupil, details)
    if reason is not None and LA_ATTENDANCE_FLAG not in case.flags:
        app.store.flag_review(case_id, LA_ATTENDANCE_FLAG, reason, raised_by="invitation_rules")
    if not engine.invitation_rules:
        return 0
    directory = load_directory_setting(app)
    # Someone already invited (by the list, by hand or by the rule before) is not added again.
    have = {(i.role, (i.email or "").casefold()) for i in case.invitees if i.email}
    have_teams = {(i.source, i.team) for i in case.invitees}
    added = 0
    for invitee in rule_invitees(engine.invitation_rules, case.review, case.pupil, details,
                                 directory, case.pupil.school_urn in engine.infant_schools,
                                 case.plan.no_setting):
        if invitee.email and (invitee.role, invitee.email.casefold()) in have:
            continue
        if invitee.email is None and (invitee.source, invitee.team) in have_teams:
            continue
        try:
            added += int(route_and_add(app, case_id, invitee))
        except StoreError:
            # No address and no router found a team: say so on the review, invite the rest.
            app.store.flag_review(case_id, "invitation_rule_unrouted",
                                  f"{invitee.source}: no team found for {invitee.team}",
                                  raised_by="invitation_rules")
    return added


def load_directory_setting(app: App) -> dict[str, School] | None:
    """The schools directory named in settings (cached on the app), or None when not set."""
    from ehcbridge.schools import load_directory

    path = app.settings.engine.schools_directory
    if path is None:
        return None
    cache: dict[str, Any] = app.__dict__.setdefault("_schools_cache", {})
    if str(path) not in cache:
        cache[str(path)] = load_directory(path)
    return cache[str(path)]  # type: ignore[no-any-return]
