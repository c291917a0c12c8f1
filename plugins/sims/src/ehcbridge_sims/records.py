"""What the plugin keeps of a MIS pupil: only the fields the review cycle needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ehcbridge.events import PupilRecord
from ehcbridge.formats import DEFAULT_LIMITS, Limits, field_problem
from ehcbridge.formats import parse_date as _parse_date
from ehcbridge.formats import parse_nc_year as _parse_nc_year
from ehcbridge.models import Contact, Pupil

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PROVISIONS = frozenset({"N", "K", "E"})


@dataclass(frozen=True)
class MisContact:
    """A pupil's contact as the MIS has it."""

    order: int | None = None
    title: str | None = None
    forename: str | None = None
    surname: str | None = None
    relationship: str | None = None
    parental_responsibility: bool = False
    email: str | None = None
    phone: str | None = None

    @property
    def display_name(self) -> str | None:
        """Title, forename and surname as one name, or None when the MIS has none."""
        name = " ".join(p for p in (self.title, self.forename, self.surname) if p)
        return name or None

    def data(self) -> dict[str, Any]:
        """JSON-able fields (written out: ``dataclasses.asdict`` deep-copies and is slow)."""
        return {
            "order": self.order, "title": self.title, "forename": self.forename,
            "surname": self.surname, "relationship": self.relationship,
            "parental_responsibility": self.parental_responsibility, "email": self.email,
            "phone": self.phone,
        }

    def to_model(self) -> Contact:
        """The core Contact model."""
        return Contact(**self.data())


@dataclass(frozen=True)
class MisPupil:
    """One pupil as read from a CTF or the aggregator API (already validated)."""

    upn: str
    forename: str
    surname: str
    dob: str | None = None  # ISO date
    sex: str | None = None
    nc_year: int | None = None
    school_urn: str | None = None
    sen_provision: str | None = None
    needs: tuple[str, ...] = ()
    contacts: tuple[MisContact, ...] = field(default_factory=tuple)
    preferred_forename: str | None = None
    preferred_surname: str | None = None
    looked_after: bool | None = None  # CTF LookedAfter/InCare; None when the MIS does not say
    leaving_date: str | None = None  # ISO date the pupil left the school that sent the data

    def data(self) -> dict[str, Any]:
        """The JSON-able snapshot that is stored and compared between syncs."""
        data = {
            "upn": self.upn, "forename": self.forename, "surname": self.surname,
            "dob": self.dob, "sex": self.sex, "nc_year": self.nc_year,
            "school_urn": self.school_urn, "sen_provision": self.sen_provision,
            "needs": list(self.needs), "contacts": [c.data() for c in self.contacts],
        }
        # Newer fields only when set, so snapshots stored before they existed still compare equal.
        for name in ("preferred_forename", "preferred_surname", "looked_after", "leaving_date"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> MisPupil:
        """Rebuild from a stored snapshot."""
        values = dict(data)
        values["needs"] = tuple(values.get("needs") or ())
        values["contacts"] = tuple(MisContact(**c) for c in values.get("contacts") or ())
        return cls(**values)

    def core_fields(self) -> dict[str, Any]:
        """The fields the core Pupil keeps, for ``store.update_pupil``.

        A field the MIS left out (no URN in the header, no year group) is not sent: missing
        data never clears what the core already knows.
        """
        fields = {
            "forename": self.forename,
            "surname": self.surname,
            "dob": self.dob,
            "nc_year": self.nc_year,
            "school_urn": self.school_urn,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def parent_emails(self) -> dict[str, MisContact]:
        """Contacts with parental responsibility and an email, by lower-cased email."""
        return {
            c.email.lower(): c for c in self.contacts if c.parental_responsibility and c.email
        }

    def to_record(self, source: str) -> PupilRecord:
        """The PupilRecord that ``lookup_pupil`` returns."""
        pupil = Pupil(
            upn=self.upn,
            forename=self.forename,
            surname=self.surname,
            dob=date.fromisoformat(self.dob) if self.dob else None,
            nc_year=self.nc_year,
            school_urn=self.school_urn,
        )
        contacts = tuple(c.to_model() for c in sorted(self.contacts, key=_contact_order))
        return PupilRecord(
            pupil=pupil,
            contacts=contacts,
            sen_provision=self.sen_provision,
            needs=self.needs,
            source=source,
        )


def _contact_order(contact: MisContact) -> int:
    return contact.order if contact.order is not None else 99


class FieldError(ValueError):
    """A field value that cannot be read; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def parse_nc_year(value: str | int | None, field_name: str = "NCyearActual") -> int | None:
    """National curriculum year as a number (the core's codes: R 0, N2/E2 -1, N1/E1 -2, X None)."""
    try:
        return _parse_nc_year(value)
    except ValueError as exc:
        raise FieldError(field_name, str(exc)) from None


def parse_date(value: str | None, field_name: str) -> str | None:
    """An ISO date string from any form the core accepts (ISO in the CTF schema, UK forms)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > 10 and text[10] in "T " and text[4:5] == "-":
        text = text[:10]  # an ISO date-time: the CTF's DOB is a date
    try:
        return _parse_date(text).isoformat()
    except ValueError as exc:
        raise FieldError(field_name, str(exc)) from None


def check_field(value: str | None, field_name: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """FieldError when a text value is too long to keep or holds a NUL character."""
    if value is not None:
        problem = field_problem(value, limits)
        if problem is not None:
            raise FieldError(field_name, problem)


def parse_bool(value: str | bool | None) -> bool:
    """CTF and JSON booleans: true/false, 1/0, Y/N."""
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in {"true", "1", "y", "yes"}


def clean_email(value: str | None) -> str | None:
    """A plausible email address, or None (a malformed one is dropped, never guessed)."""
    if not value:
        return None
    text = value.strip()
    return text if _EMAIL.match(text) else None


def clean_text(value: str | None) -> str | None:
    """Stripped text or None."""
    if value is None:
        return None
    text = " ".join(value.split())
    return text or None
