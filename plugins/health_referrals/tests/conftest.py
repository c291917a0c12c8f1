"""Shared fixtures: a realistic routing table of a dozen rules and contexts over a memory store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from ehcbridge.events import HookContext, PupilRecord
from ehcbridge.models import LONDON, Pupil, Review, ReviewStatus
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_health_referrals.settings import HealthReferralsSettings

DCO = "dco.bristol@nhs.net"

# Specific and general rules, health and social care, as a council would write them.
RULES: list[dict[str, Any]] = [
    {"name": "salt", "role": "health", "service": "SALT", "team": "Bristol SALT",
     "mailbox": "salt.bristol@nhs.net"},
    {"name": "salt-north", "role": "health", "service": "SALT",
     "postcode_district": ["BS5", "BS7"], "team": "North Bristol SALT",
     "mailbox": "salt.north@nhs.net"},
    {"name": "salt-south", "role": "health", "service": "SALT",
     "postcode_district": "BS3;BS4", "team": "South Bristol SALT",
     "mailbox": "salt.south@nhs.net"},
    {"name": "salt-north-autism", "role": "health", "service": "SALT",
     "postcode_district": ["BS5", "BS7"], "need": "ASD", "team": "North SALT autism pathway",
     "mailbox": "salt.north.asd@nhs.net"},
    {"name": "ot", "role": "health", "service": "OT", "team": "Children's OT",
     "mailbox": "ot.children@nhs.net"},
    {"name": "physio", "role": "health", "service": "physiotherapy",
     "team": "Children's physiotherapy", "mailbox": "physio.children@nhs.net"},
    {"name": "camhs", "role": "health", "service": "CAMHS", "team": "Bristol CAMHS",
     "mailbox": "camhs.spa@nhs.net", "portal_url": "https://camhs.example.nhs.uk/advice",
     "data_level": "needs"},
    {"name": "paeds-primary", "role": "health", "service": "community paediatrics",
     "nc_year": "R-6", "team": "Community paediatrics (under 11)",
     "mailbox": "paeds.primary@nhs.net"},
    {"name": "paeds-secondary", "role": "health", "service": "community paediatrics",
     "nc_year": [7, 14], "team": "Community paediatrics (11 and over)",
     "mailbox": "paeds.secondary@nhs.net"},
    {"name": "nursing-special", "role": "health", "service": "school nursing",
     "school_urn": "100002", "team": "Special schools nursing",
     "mailbox": "nursing.special@nhs.net"},
    {"name": "social-care", "role": "social_care", "team": "Children's social care",
     "mailbox": "csc.ehcp@bristol.gov.uk"},
    {"name": "disabled-children", "role": "social_care", "need": ["PD", "PMLD", "MSI"],
     "team": "Disabled children's service", "mailbox": "dcs@bristol.gov.uk"},
    {"name": "educational-psychology", "role": "others", "service": "educational psychology",
     "team": "Educational psychology", "mailbox": "eps@bristol.gov.uk"},
]

NOW = datetime(2026, 1, 27, 9, 0, tzinfo=LONDON)  # six weeks before the 10 March meeting


@pytest.fixture
def rules() -> list[dict[str, Any]]:
    """A fresh copy of the dozen-rule table."""
    return [dict(r) for r in RULES]


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., HealthReferralsSettings]:
    """Build settings with the table, a DCO and an outbox in tmp_path; keywords override."""

    def build(**overrides: Any) -> HealthReferralsSettings:
        values: dict[str, Any] = {
            "rules": [dict(r) for r in RULES], "dco_mailbox": DCO, "la_code": "801",
            "transport": "outbox", "outbox_dir": tmp_path / "outbox",
            "from_address": "ehcp-reviews@bristol.gov.uk",
            "setting_names": {"100001": "Example Academy"},
        }
        values.update(overrides)
        return HealthReferralsSettings.model_validate(values)

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., HealthReferralsSettings]) -> HealthReferralsSettings:
    """The default test settings (outbox mode)."""
    return settings_factory()


@pytest.fixture
def store() -> MemoryPluginStore:
    """A memory store holding the review of EHC-0001."""
    s = MemoryPluginStore(plugin="health_referrals")
    s.reviews["EHC-0001"] = Review(id=1, case_id="EHC-0001", due_by=date(2026, 4, 1),
                                   status=ReviewStatus.SCHEDULED,
                                   coordinator_email="senco@school.example.org")
    return s


@pytest.fixture
def context(store: MemoryPluginStore,
            settings: HealthReferralsSettings) -> Callable[..., HookContext]:
    """A context factory: needs for the MIS lookup (None: no lookup), the time, the settings."""

    def build(needs: tuple[str, ...] | None = None, *, now: datetime = NOW,
              settings_: HealthReferralsSettings | None = None,
              lookup: Callable[[str], PupilRecord | None] | None = None) -> HookContext:
        ctx = make_context("health_referrals", settings_ or settings, now=now, store=store)
        if lookup is not None:
            return dataclasses.replace(ctx, extras={"lookup_pupil": lookup})
        if needs is None:
            return ctx

        def fake_lookup(upn: str) -> PupilRecord:
            return PupilRecord(pupil=Pupil(upn=upn, forename="Sam", surname="Example"),
                               needs=needs, sen_provision="E", source="test")

        return dataclasses.replace(ctx, extras={"lookup_pupil": fake_lookup})

    return build
