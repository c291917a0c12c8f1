"""Shared fixtures: a memory store with pupils that have open reviews, and a context over it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from ehcbridge.events import HookContext, PupilRecord
from ehcbridge.models import LONDON, Pupil, Review
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_social_care.settings import SocialCareSettings

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=LONDON)
UPN_A = "P823000000011"
UPN_B = "R823000000022"
UPN_C = "U823000000033"
UPN_NO_REVIEW = "W823000000044"
DOB_A = date(2014, 5, 2)
DOB_B = date(2012, 1, 30)
DOB_C = date(2015, 9, 9)


class CountingStore(MemoryPluginStore):
    """A memory store that counts bulk writes (one per import is the contract)."""

    bulk_writes: int = 0

    def set_state_many(self, items: dict[str, Any]) -> None:
        """Store many keys and count the call."""
        self.bulk_writes += 1
        super().set_state_many(items)


def add_pupil(store: MemoryPluginStore, upn: str, case_id: str, due_by: date) -> None:
    """Give ``upn`` an open review ``case_id`` due by ``due_by``."""
    store.pupils.setdefault(upn, {}).setdefault("case_ids", []).append(case_id)
    store.reviews[case_id] = Review(case_id=case_id, due_by=due_by)


@pytest.fixture
def store() -> CountingStore:
    """Three pupils with open reviews; UPN_NO_REVIEW has none."""
    s = CountingStore(plugin="social_care")
    add_pupil(s, UPN_A, "EHC-A", date(2027, 6, 30))
    add_pupil(s, UPN_B, "EHC-B", date(2027, 6, 30))
    add_pupil(s, UPN_C, "EHC-C", date(2027, 6, 30))
    return s


def context(store: MemoryPluginStore, settings: SocialCareSettings | None = None, *,
            lookup: Callable[[str], PupilRecord | None] | None = None,
            now: datetime = NOW) -> HookContext:
    """A social_care context over ``store``, optionally with the lead's lookup_pupil extra."""
    ctx = make_context("social_care", settings or SocialCareSettings(), now=now, store=store)
    if lookup is not None:
        ctx = dataclasses.replace(ctx, extras={"lookup_pupil": lookup})
    return ctx


def lookup_from(dobs: dict[str, date]) -> Callable[[str], PupilRecord | None]:
    """A lookup_pupil answering from a UPN -> DOB table."""

    def lookup(upn: str) -> PupilRecord | None:
        if upn not in dobs:
            return None
        return PupilRecord(pupil=Pupil(upn=upn, forename="X", surname="Y", dob=dobs[upn]))

    return lookup


@pytest.fixture
def ctx(store: CountingStore) -> HookContext:
    """Context with default settings and no lookup_pupil."""
    return context(store)
