"""CTFs as schools send them (DfE CTF element names): partial and leavers files, SchoolHistory
leaving dates, preferred names, looked-after status, early-years codes and oversized values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ctfgen import pupil, upn_for, write_ctf
from ehcbridge.formats import Limits
from ehcbridge.testing import MemoryPluginStore
from ehcbridge_sims.ctf import CtfError, read_ctf
from ehcbridge_sims.sync import FLAG_LAC, lookup, sync_files


def roll(tmp_path: Path, ctx: Any, count: int = 5) -> None:
    report = sync_files([write_ctf(tmp_path / "roll.xml", count)], ctx)
    assert report.added == count


def test_e1_e2_and_nursery_pupils_are_kept(tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "ey.xml", [pupil(0, nc_year="E2"), pupil(1, nc_year="E1"),
                                           pupil(2, nc_year="N2"), pupil(3, nc_year="R"),
                                           pupil(4, nc_year="X")])
    ctf = read_ctf(path)
    assert ctf.problems == []
    assert [p.nc_year for p in ctf.pupils] == [-1, -2, -1, 0, None]


def test_a_partial_ctf_never_marks_absent_pupils_as_left(tmp_path: Path, ctx: Any) -> None:
    roll(tmp_path, ctx)
    partial = write_ctf(tmp_path / "partial.xml", [pupil(0), pupil(1)], qualifier="partial")
    report = sync_files([partial], ctx)
    assert (report.left, report.unchanged) == (0, 2)
    assert lookup(upn_for(4), ctx) is not None


def test_a_leavers_ctf_marks_only_its_leavers_as_left(tmp_path: Path, ctx: Any) -> None:
    roll(tmp_path, ctx)
    # A leavers file is often qualified "full" (all the data of the pupils in it): its contents
    # (every pupil has a leaving date) say it is not the roll.
    leavers = write_ctf(tmp_path / "leavers.xml", [pupil(3, leaving_date="2026-07-22"),
                                                   pupil(4, leaving_date="2026-07-22")])
    report = sync_files([leavers], ctx)
    assert report.left == 2
    assert sorted(c.upn for c in report.changes if c.kind == "left") == [upn_for(3), upn_for(4)]
    assert lookup(upn_for(3), ctx) is None and lookup(upn_for(4), ctx) is None
    assert all(lookup(upn_for(n), ctx) is not None for n in (0, 1, 2))


def test_a_school_history_leaving_date_takes_the_pupil_off_roll(tmp_path: Path,
                                                                 ctx: Any) -> None:
    roll(tmp_path, ctx)
    # The whole roll again, one pupil with a LeavingDate at the sending school (801/2000); the
    # earlier school's leaving date (every pupil has one) does not count.
    pupils = [pupil(n) for n in range(4)] + [pupil(4, leaving_date="2026-12-18")]
    report = sync_files([write_ctf(tmp_path / "roll2.xml", pupils)], ctx)
    assert (report.left, report.unchanged) == (1, 4)
    assert lookup(upn_for(4), ctx) is None and lookup(upn_for(0), ctx) is not None
    assert read_ctf(tmp_path / "roll2.xml").pupils[4].leaving_date == "2026-12-18"


def test_preferred_names_and_looked_after_status(tmp_path: Path, ctx: Any,
                                                 store: MemoryPluginStore) -> None:
    path = write_ctf(tmp_path / "a.xml", [
        pupil(0, preferred_forename="Sammy", in_care=True),
        pupil(1, preferred_surname="Known-As", in_care=False),
    ])
    first, second = read_ctf(path).pupils
    assert (first.preferred_forename, first.looked_after) == ("Sammy", True)
    assert (second.preferred_surname, second.looked_after) == ("Known-As", False)
    report = sync_files([path], ctx)
    assert [flag for flag, _ in report.changes[0].flags] == [FLAG_LAC]
    assert "looked after" in store.flags["EHC-0000"][FLAG_LAC]
    assert "EHC-0001" not in store.flags
    again = sync_files([write_ctf(tmp_path / "b.xml", [pupil(0, preferred_forename="Sammy",
                                                              in_care=True)],
                                  qualifier="partial")], ctx)
    assert again.flags_raised == 0  # raised once, when the status first appears


def test_an_oversized_surname_is_refused_not_stored(tmp_path: Path, ctx: Any,
                                                    store: MemoryPluginStore) -> None:
    path = write_ctf(tmp_path / "big.xml", [pupil(0, surname="X" * 1_000_000), pupil(1)])
    report = sync_files([path], ctx)
    assert report.added == 1 and report.skipped == 1
    problem = report.problems[0]
    assert (problem.row, problem.column) == (1, "Surname")
    assert "1,000,000 characters long, over the limit of 4,000" in str(problem)
    assert len(str(problem)) < 300
    assert all(len(str(v)) < 10_000 for v in store.state.values())


def test_a_ctf_over_the_file_limit_is_refused_before_reading(tmp_path: Path,
                                                             ctx: Any) -> None:
    path = write_ctf(tmp_path / "roll.xml", 20)
    small = dataclasses.replace(ctx, extras={**ctx.extras, "limits": Limits(max_file_bytes=4096)})
    try:
        sync_files([path], small)
    except CtfError as exc:
        assert "over the limit of 4,096 bytes" in str(exc) and "nothing was imported" in str(exc)
    else:
        raise AssertionError("not refused")
    assert ctx.store.state_items("pupil:") == []


def test_a_wrong_check_letter_from_a_newer_la_is_skipped(tmp_path: Path) -> None:
    path = write_ctf(tmp_path / "a.xml", [pupil(0, upn="B838200121009"),
                                          pupil(1, upn="P838200121009")])
    ctf = read_ctf(path)
    assert [p.upn for p in ctf.pupils] == ["P838200121009"]
    assert "check letter does not match" in str(ctf.problems[0])


def test_names_longer_than_the_core_keeps_and_a_bad_urn(tmp_path: Path) -> None:
    ctf = read_ctf(write_ctf(tmp_path / "a.xml", [pupil(0, forename="A" * 101), pupil(1)]))
    assert [p.upn for p in ctf.pupils] == [upn_for(1)]
    assert "Forename: is longer than 100 characters" in str(ctf.problems[0])
    try:
        read_ctf(write_ctf(tmp_path / "b.xml", 1, urn="123456789012"))
    except CtfError as exc:
        assert "URN is not a school URN" in str(exc)
    else:
        raise AssertionError("not refused")
