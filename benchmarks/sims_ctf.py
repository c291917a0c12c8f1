"""Benchmark of the sims plugin's CTF import: speed for a school, flat memory for a huge file.

    uv run python benchmarks/sims_ctf.py [--small 2000] [--big 50000] [--no-tracemalloc]

Prints figures; targets: a 2,000-pupil CTF parsed and synced in under 2 s, and reading a
50,000-pupil CTF with the same peak memory as a 2,000-pupil one (the XML is streamed and each
pupil dropped once read). Memory is measured in a fresh child process per file so one run's peak
cannot hide another's. All data is synthetic (plugins/sims/tests/ctfgen.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "sims" / "tests"))

from ctfgen import pupil, upn_for, write_ctf
from ehcbridge.models import Review
from ehcbridge.testing import MemoryPluginStore, make_context
from ehcbridge_sims import SimsSettings
from ehcbridge_sims.ctf import iter_ctf
from ehcbridge_sims.sync import sync_files


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports KB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def measure_stream(path: str, trace: bool) -> dict[str, float]:
    """Child process: read every pupil of ``path`` without keeping them."""
    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in iter_ctf(path))
    seconds = time.perf_counter() - started
    out = {"pupils": count, "seconds": seconds, "cpu": time.process_time() - cpu,
           "rss_mb": peak_rss_mb()}
    if trace:
        out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    return out


def child(path: Path, trace: bool) -> dict[str, float]:
    """Run measure_stream in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--measure", str(path)] + (["--trace"] if trace else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def timed(func: Any) -> tuple[Any, float, float]:
    """Result, wall seconds and CPU seconds of ``func()``."""
    started, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - started, time.process_time() - cpu


def sync_figures(folder: Path, pupils: int) -> None:
    """Time first, repeated and changed syncs of one school's file."""
    store = MemoryPluginStore(plugin="sims")
    for i in range(0, pupils, 10):  # one pupil in ten has an open review
        case = f"EHC-{i:05d}"
        store.reviews[case] = Review(case_id=case, due_by=date(2026, 6, 1))
        store.pupils[upn_for(i)] = {"case_ids": [case]}
    ctx = make_context("sims", SimsSettings(), store=store)
    path = write_ctf(folder / f"school-{pupils}.xml", pupils)
    size = path.stat().st_size / 1e6

    first, first_s, first_cpu = timed(lambda: sync_files([path], ctx))
    again, again_s, again_cpu = timed(lambda: sync_files([path], ctx))
    changed = write_ctf(folder / f"school-{pupils}-b.xml",
                        (pupil(i, nc_year="9") if i % 7 == 0 else pupil(i)
                         for i in range(pupils)))
    third, third_s, third_cpu = timed(lambda: sync_files([changed], ctx))

    verdict = "PASS" if first_s < 2.0 and third_s < 2.0 else "FAIL"
    print(f"{pupils:,}-pupil CTF ({size:.1f} MB) parsed and synced, target < 2 s: {verdict}")
    print(f"  first sync      {first_s:6.2f} s ({first_cpu:.2f} s CPU)  {first.summary()}; "
          f"{first.invitees_added} parent invitees")
    print(f"  same file again {again_s:6.2f} s ({again_cpu:.2f} s CPU)  {again.summary()}")
    print(f"  changed file    {third_s:6.2f} s ({third_cpu:.2f} s CPU)  {third.summary()}; "
          f"{third.flags_raised} review flags")


def real_store_figures(folder: Path, pupils: int) -> None:
    """The same syncs against the core's own store (SQLite), one case per ten pupils."""
    try:
        from ehcbridge.models import Plan, Pupil, ReviewKind
        from ehcbridge.store import Store
        from ehcbridge.testing import make_app
    except ImportError:
        print("core store not available: skipped")
        return
    import ehcbridge_sims

    store = Store(f"sqlite:///{folder / 'bench.sqlite3'}")
    with store.begin() as conn:
        for i in range(0, pupils, 10):
            store.upsert_case(conn, pupil=Pupil(upn=upn_for(i), forename="S", surname="E",
                                                nc_year=8),
                              plan=Plan(case_id=f"EHC-{i:05d}", issued_on=date(2026, 4, 1)),
                              coordinator_email="senco@school.example.org",
                              review_due=date(2027, 3, 31), kind=ReviewKind.ANNUAL, pfa=False)
    ctx = make_app(store, {"sims": ehcbridge_sims}).plugin_context("sims")
    path = write_ctf(folder / f"real-{pupils}.xml", pupils)
    changed = write_ctf(folder / f"real-{pupils}-b.xml",
                        (pupil(i, nc_year="9") if i % 7 == 0 else pupil(i)
                         for i in range(pupils)))
    print(f"Same {pupils:,}-pupil files against the core's SQLite store "
          f"({pupils // 10} cases):")
    for label, file in (("first sync", path), ("same file again", path),
                        ("changed file", changed)):
        report, wall, cpu = timed(lambda file=file: sync_files([file], ctx))
        print(f"  {label:<15} {wall:6.2f} s ({cpu:.2f} s CPU)  {report.summary()}")
    store.close()


def memory_figures(folder: Path, small: int, big: int, trace: bool) -> None:
    """Peak memory reading a small and a big file, each in its own process."""
    rows = []
    for pupils in (small, big):
        path = write_ctf(folder / f"stream-{pupils}.xml", pupils)
        figures = child(path, trace=False)
        if trace:
            figures["traced_peak_mb"] = child(path, trace=True)["traced_peak_mb"]
        rows.append((pupils, path.stat().st_size / 1e6, figures))
        path.unlink()
    print("Streaming read (each pupil dropped once read):")
    for pupils, size, f in rows:
        traced = f" tracemalloc peak {f['traced_peak_mb']:6.2f} MB" if "traced_peak_mb" in f else ""
        print(f"  {pupils:>7,} pupils {size:7.1f} MB file: {f['seconds']:6.2f} s "
              f"({f['cpu']:.2f} s CPU), "
              f"peak RSS {f['rss_mb']:6.1f} MB{traced}")
    (_, small_size, s), (_, big_size, b) = rows
    growth = b["rss_mb"] / s["rss_mb"]
    verdict = "PASS" if growth < 1.25 else "FAIL"
    print(f"  file {big_size / small_size:.0f}x larger, peak RSS x{growth:.2f} (flat: {verdict})")


def main() -> None:
    """Parse arguments and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--big", type=int, default=50000)
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_stream(args.measure, args.trace)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sync_figures(folder, args.small)
        real_store_figures(folder, args.small)
        memory_figures(folder, args.small, args.big, trace=not args.no_tracemalloc)


if __name__ == "__main__":
    main()
