"""Client for an MIS aggregator API shaped like Wonde's ``/schools/{id}/students`` endpoint.

Requests carry ``Authorization: Bearer <token>``; a list response is ``{"data": [...], "meta":
{"pagination": {"next": <url or null>}}}`` and the client follows ``next`` until it is empty.
429 and 5xx answers (and connection errors) are retried with backoff, honouring Retry-After,
by the core HTTP kit (``ehcbridge.http``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from ehcbridge.http import HttpClient, HttpError, ServiceUnavailable

from .ctf import Problem
from .records import (
    FieldError,
    MisContact,
    MisPupil,
    clean_email,
    clean_text,
    parse_bool,
    parse_date,
    parse_nc_year,
)
from .upn import InvalidUPN, validate_upn

INCLUDE = "contacts,extended_details"
UPDATED_AFTER_FORMAT = "%Y-%m-%d %H:%M:%S"


class ApiError(Exception):
    """The aggregator refused the request or kept failing; the message never holds the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# A sync is a batch job, not an engine delivery: it may wait a few minutes in-process.
MAX_INLINE_WAIT = 300.0


@dataclass
class AggregatorClient:
    """Reads students page by page; ``wait``/``sleep`` are injectable so tests never sleep."""

    api_url: str
    token: str
    page_size: int = 100
    timeout: float = 30.0
    max_attempts: int = 5
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    now: Callable[[], datetime] | None = None  # the engine's clock, for Retry-After dates

    def __post_init__(self) -> None:
        # The core HTTP kit: 429/5xx and lost connections retried with backoff, honouring
        # Retry-After (seconds or a date); a static token, so a 401 is final.
        self._http = HttpClient(
            self.api_url, service="the MIS API", timeout=self.timeout, transport=self.transport,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            attempts=self.max_attempts, max_inline_wait=MAX_INLINE_WAIT, now=self.now,
            sleep=self.sleep,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> AggregatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request("GET", url, params=params)
        except ServiceUnavailable as exc:
            if exc.status is None:
                raise ApiError(f"cannot reach the MIS API ({str(exc).rpartition('(')[2]}"
                               ) from None
            raise ApiError(
                f"the MIS API kept answering HTTP {exc.status} after {self.max_attempts} "
                "attempts; try again later"
            ) from None
        except HttpError as exc:
            if exc.status in (401, 403):
                raise ApiError(
                    f"the MIS API refused the token (HTTP {exc.status}); check "
                    "the plugins.sims token and that the school has approved the app"
                ) from None
            raise ApiError(f"the MIS API answered HTTP {exc.status} for {url}",
                           status=exc.status) from None
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"the MIS API answered {url} with something that is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError("the MIS API answer is not a JSON object")
        return body

    def school(self, school_id: str) -> dict[str, Any]:
        """The school object (``data``), used for its URN; empty when unavailable."""
        try:
            body = self._get(f"{self.api_url.rstrip('/')}/schools/{school_id}")
        except ApiError as exc:
            if exc.status in (404, 405):  # an aggregator without the school endpoint
                return {}
            raise
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def ping(self, school_id: str) -> None:
        """Read one student of the school; raises ApiError when that fails."""
        url = f"{self.api_url.rstrip('/')}/schools/{school_id}/students"
        self._get(url, {"per_page": 1})

    def students(
        self, school_id: str, updated_after: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every student of the school (changed since ``updated_after`` when given)."""
        url: str | None = f"{self.api_url.rstrip('/')}/schools/{school_id}/students"
        params: dict[str, Any] | None = {"include": INCLUDE, "per_page": self.page_size}
        if updated_after is not None and params is not None:
            params["updated_after"] = updated_after.strftime(UPDATED_AFTER_FORMAT)
        pages = 0
        while url:
            body = self._get(url, params)
            params = None  # the next URL already carries the query
            data = body.get("data")
            if not isinstance(data, list):
                raise ApiError("the MIS API answer has no 'data' list")
            yield from (s for s in data if isinstance(s, dict))
            pages += 1
            if pages > 100_000:
                raise ApiError("the MIS API pagination does not end")
            meta = body.get("meta") or {}
            pagination = meta.get("pagination") if isinstance(meta, dict) else None
            url = pagination.get("next") if isinstance(pagination, dict) else None


def _unwrap(value: Any) -> Any:
    """Wonde wraps included objects in ``{"data": ...}``; accept both forms."""
    if isinstance(value, dict) and "data" in value and isinstance(value["data"], dict | list):
        return value["data"]
    return value


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return clean_text(str(value))


_PROVISION_WORDS = (("EHC", "E"), ("STATEMENT", "E"), ("SUPPORT", "K"), ("NO ", "N"), ("NONE", "N"))


def parse_sen_status(value: Any) -> str | None:
    """N, K or E from a code or the words an MIS uses ("EHC Plan", "SEN Support", "No SEN")."""
    text = (_str(value) or "").upper()
    if text in {"N", "K", "E"}:
        return text
    for word, code in _PROVISION_WORDS:
        if word in text + " ":
            return code
    return None


def _year(student: dict[str, Any], education: dict[str, Any]) -> int | None:
    year = _unwrap(student.get("year"))
    if isinstance(year, dict):
        year = year.get("code") or year.get("name")
    if year is None:
        year = education.get("current_nc_year")
    text = _str(year)
    return parse_nc_year(text, "year") if text else None


def _needs(extended: dict[str, Any]) -> tuple[str, ...]:
    raw = _unwrap(extended.get("sen_needs")) or []
    ranked: list[tuple[int, int, str]] = []
    for position, need in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(need, dict):
            kind = _str(need.get("type") or need.get("code"))
            try:
                rank = int(need.get("rank") or 99)
            except (TypeError, ValueError):
                rank = 99
        else:
            kind, rank = _str(need), 99
        if kind:
            ranked.append((rank, position, kind.upper()))
    return tuple(dict.fromkeys(kind for _, _, kind in sorted(ranked)))


def _contact(raw: dict[str, Any]) -> tuple[MisContact, str | None]:
    rel = _unwrap(raw.get("relationship")) or {}
    if not isinstance(rel, dict):
        rel = {"relationship": rel}
    details = _unwrap(raw.get("contact_details")) or {}
    emails = _unwrap(details.get("emails")) if isinstance(details, dict) else None
    phones = _unwrap(details.get("telephones")) if isinstance(details, dict) else None
    raw_email = None
    if isinstance(emails, dict):
        raw_email = _str(emails.get("email") or emails.get("primary") or emails.get("home"))
    phone = None
    if isinstance(phones, dict):
        phone = _str(phones.get("phone") or phones.get("mobile") or phones.get("home"))
    priority = rel.get("priority")
    return MisContact(
        order=priority if isinstance(priority, int) else None,
        title=_str(raw.get("title")),
        forename=_str(raw.get("forename")),
        surname=_str(raw.get("surname")),
        relationship=_str(rel.get("relationship")),
        parental_responsibility=parse_bool(rel.get("parental_responsibility")),
        email=clean_email(raw_email),
        phone=phone,
    ), raw_email


def student_to_pupil(
    student: dict[str, Any], source: str, number: int, school_urn: str | None
) -> list[MisPupil | Problem]:
    """Map one student object to a pupil, or to the problem that makes it skipped."""
    education = _unwrap(student.get("education_details")) or {}
    education = education if isinstance(education, dict) else {}
    raw_upn = _str(student.get("upn")) or _str(education.get("upn"))
    try:
        upn = validate_upn(raw_upn)
    except InvalidUPN as exc:
        return [Problem(source, number, "upn", str(exc), upn=raw_upn)]
    forename = _str(student.get("forename")) or _str(student.get("legal_forename"))
    surname = _str(student.get("surname")) or _str(student.get("legal_surname"))
    if not forename or not surname:
        return [Problem(source, number, "forename" if not forename else "surname", "is missing",
                        upn=upn)]
    extended = _unwrap(student.get("extended_details")) or {}
    extended = extended if isinstance(extended, dict) else {}
    dob_raw = _unwrap(student.get("date_of_birth"))
    dob_text = _str(dob_raw.get("date")) if isinstance(dob_raw, dict) else _str(dob_raw)
    try:
        dob = parse_date(dob_text[:10] if dob_text else None, "date_of_birth")
        nc_year = _year(student, education)
    except FieldError as exc:
        return [Problem(source, number, exc.field, str(exc).split(": ", 1)[1], upn=upn)]
    out: list[MisPupil | Problem] = []
    contacts = []
    for raw in _unwrap(student.get("contacts")) or []:
        if not isinstance(raw, dict):
            continue
        contact, raw_email = _contact(raw)
        if raw_email and contact.email is None:
            out.append(Problem(source, number, "contacts.email", "is not an email address",
                               upn=upn, skipped=False))
        contacts.append(contact)
    pupil = MisPupil(
        upn=upn,
        forename=forename,
        surname=surname,
        dob=dob,
        sex=_str(student.get("gender")),
        nc_year=nc_year,
        school_urn=school_urn,
        sen_provision=parse_sen_status(extended.get("sen_status")),
        needs=_needs(extended),
        contacts=tuple(contacts),
    )
    return [pupil, *out]
