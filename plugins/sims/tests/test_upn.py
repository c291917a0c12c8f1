"""The DfE UPN check-letter rule."""

from __future__ import annotations

import pytest
from ehcbridge_sims.upn import InvalidUPN, is_valid_upn, make_upn, validate_upn


@pytest.mark.parametrize(
    "upn",
    [
        "B801200005001",  # the DfE guidance example
        "b801200005001 ",  # case and spaces do not matter
        "A123456789012",  # LA number unknown to python-stdnum's 2011 list: still valid
        make_upn("94012340001A"),  # temporary UPN (letter last), newer LA (West Northants)
    ],
)
def test_valid(upn: str) -> None:
    assert validate_upn(upn) == upn.strip().upper()


@pytest.mark.parametrize(
    ("upn", "reason"),
    [
        ("A801200005001", "check letter"),
        ("B80120000500", "13 characters"),
        ("B8012000050012", "13 characters"),
        ("X80120000A001", "digits"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_invalid(upn: str | None, reason: str) -> None:
    with pytest.raises(InvalidUPN, match=reason):
        validate_upn(upn)
    assert not is_valid_upn(upn)


def test_check_letter_is_weighted_sum_mod_23() -> None:
    # Characters 2-13 weighted 2..13, sum mod 23 indexes A-Z without I, O and S.
    body = "801200005001"
    total = sum(w * int(c) for w, c in zip(range(2, 14), body, strict=True))
    assert make_upn(body)[0] == "ABCDEFGHJKLMNPQRTUVWXYZ"[total % 23]


@pytest.mark.parametrize("upn", ["B838200121009", "I838200005001", "9000000000000"])
def test_the_plugin_no_longer_accepts_unknown_las_with_any_letter(upn: str) -> None:
    # python-stdnum raised InvalidComponent for LA numbers it did not know, and that was taken
    # as valid; the plugin now uses the core's DfE rule, which knows every LA number.
    assert not is_valid_upn(upn)
    assert is_valid_upn("P838200121009")


def test_wrong_check_letters_from_newer_las_are_all_refused() -> None:
    import random

    rng = random.Random(838)
    for _ in range(300):
        body = rng.choice(["838", "839", "940", "941", "942", "943"]) + "".join(
            rng.choice("0123456789") for _ in range(9))
        right = make_upn(body)
        wrong = rng.choice([c for c in "ABCDEFGHJKLMNPQRTUVWXYZ" if c != right[0]]) + body
        assert is_valid_upn(right) and not is_valid_upn(wrong)
