"""The domain model: immutable pydantic objects shared by the core and every plugin."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator

LONDON = ZoneInfo("Europe/London")


class Frozen(BaseModel):
    """Base for immutable domain objects."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    """Why someone is invited to a review meeting."""

    PARENT = "parent"
    YOUNG_PERSON = "young_person"
    SETTING = "setting"
    LA_SEN_OFFICER = "la_sen_officer"
    HEALTH = "health"
    SOCIAL_CARE = "social_care"
    OTHER = "other"


# SEND Regulations 2014 reg 20(2): people the setting must invite (parent *or* young person).
REQUIRED_ROLES: frozenset[Role] = frozenset(
    {
        Role.PARENT,
        Role.YOUNG_PERSON,
        Role.SETTING,
        Role.LA_SEN_OFFICER,
        Role.HEALTH,
        Role.SOCIAL_CARE,
    }
)


class ReviewKind(StrEnum):
    """What kind of review this is."""

    ANNUAL = "annual"
    EARLY = "early"
    PHASE_TRANSFER = "phase_transfer"
    UNDER_FIVE = "under_five"


class ReviewStatus(StrEnum):
    """Where a review is in its cycle."""

    DUE = "due"
    SCHEDULED = "scheduled"
    HELD = "held"
    DECIDED = "decided"
    CANCELLED = "cancelled"


class MeetingStatus(StrEnum):
    """State of a meeting."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    HELD = "held"


class Outcome(StrEnum):
    """The LA's decision after a review (reg 20(10))."""

    MAINTAIN = "maintain"
    AMEND = "amend"
    CEASE = "cease"


class Pupil(Frozen):
    """A child or young person with a plan; only what the review cycle needs."""

    upn: str | None = None
    forename: str
    surname: str
    dob: date | None = None
    nc_year: int | None = None
    school_urn: str | None = None

    @property
    def initials(self) -> str:
        """Initials, the privacy-safe way to name a child in calendars."""
        return "".join(part[0].upper() for part in (self.forename, self.surname) if part)


class Plan(Frozen):
    """An EHC plan (kept generic so other plan types fit)."""

    case_id: str
    issued_on: date
    last_review_decision: date | None = None
    plan_type: str = "ehcp"
    post16_move: date | None = None
    """When a young person is to move to another post-16 institution outside the usual
    transfers: the plan must be reviewed and amended 5 months before (reg 18(2))."""
    no_setting: bool = False
    """The child or young person attends no school or other institution (educated at home,
    not in education): the LA arranges the review and invites no setting (reg 21)."""


class Meeting(Frozen):
    """A review meeting; start and end are Europe/London aware datetimes."""

    id: int | None = None
    start: datetime
    end: datetime
    location: str | None = None
    online: bool = False
    join_url: str | None = None
    provider: str | None = None
    external_id: str | None = None
    organiser: str | None = None
    status: MeetingStatus = MeetingStatus.SCHEDULED
    sequence: int = 0

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=LONDON)
        return value.astimezone(LONDON)


class Invitee(Frozen):
    """Someone invited to the review meeting, usually through their team."""

    role: Role
    name: str | None = None
    email: str | None = None
    team: str | None = None
    source: str = "manual"
    response: str | None = None
    # For a family without email: a letter goes to the postal address (lines joined by newlines),
    # and a text reminder to the mobile when the council sends texts.
    address: str | None = None
    mobile: str | None = None

    @property
    def required(self) -> bool:
        """True for the roles reg 20(2) says must be invited."""
        return self.role in REQUIRED_ROLES


class Views(Frozen):
    """Advice or views requested from, or received from, a contributor (kept with the review)."""

    contributor: str
    requested: date | None = None
    due: date | None = None
    received: date | None = None
    id: int | None = None
    role: str | None = None
    files: tuple[str, ...] = ()  # file names kept with the review


class Decision(Frozen):
    """The LA's decision after the review meeting."""

    outcome: Outcome
    reason: str
    decided_on: date


class Milestone(Frozen):
    """One date on the statutory clock, with the rule it comes from."""

    name: str
    date: date
    kind: str  # "statutory" or "good_practice"
    rule: str
    warnings: tuple[str, ...] = ()


class Review(Frozen):
    """One review of a plan."""

    id: int | None = None
    case_id: str
    kind: ReviewKind = ReviewKind.ANNUAL
    due_by: date
    status: ReviewStatus = ReviewStatus.DUE
    preparing_for_adulthood: bool = False
    coordinator_email: str | None = None
    flags: tuple[str, ...] = ()
    # The DfE's "last review date" is the decision date; the meeting and the report (reg 20(7))
    # have their own dates.
    report_sent_on: date | None = None


class DutyStatus(StrEnum):
    """Where a statutory or good-practice duty stands."""

    PENDING = "pending"
    MET = "met"
    LATE = "late"
    AT_RISK = "at_risk"
    MISSED = "missed"
    NOT_APPLICABLE = "not_applicable"


class Duty(Frozen):
    """One duty of a review: what is owed, by whom, to whom, by when, and whether it was met."""

    name: str
    rule: str
    kind: str  # "statutory" or "good_practice"
    due: date | None
    owed_by: str  # "setting" | "la" | "health" | "social_care"
    owed_to: tuple[str, ...]  # Role values
    status: DutyStatus = DutyStatus.PENDING
    met_on: date | None = None
    evidence: str | None = None  # what met it, e.g. "review report --on 2027-03-01"


class Contact(Frozen):
    """A pupil's contact from the MIS (a parent or carer)."""

    order: int | None = None
    title: str | None = None
    forename: str | None = None
    surname: str | None = None
    relationship: str | None = None
    parental_responsibility: bool = False
    email: str | None = None
    phone: str | None = None
