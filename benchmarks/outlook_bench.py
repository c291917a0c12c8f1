"""Time the outlook plugin: invitations written to an outbox, and feeds of many reviews.

A large council has ~20,000 plans, so ~20,000 meetings a year with ~6 invitees each (~120,000
messages a year, a few hundred on a busy day). Targets on the 2-core reference machine: under
50 ms per message; one coordinator's feed from 20,000 reviews' entries under 1 s; a feed of
everything under 5 ms per entry. Measured there: ~17 ms per message, 0.1-0.4 s, ~1.1 ms.
Usage: uv run python benchmarks/outlook_bench.py [--reviews N] [--feed N]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import ehcbridge_outlook
from ehcbridge.models import LONDON
from ehcbridge.testing import MemoryPluginStore, make_context, make_event
from ehcbridge_outlook import service
from ehcbridge_outlook.settings import OutlookSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reviews", type=int, default=1_000)
    parser.add_argument("--feed", type=int, default=20_000)
    args = parser.parse_args()
    outbox = Path(tempfile.mkdtemp(prefix="ehcbridge-outlook-bench-"))
    settings = OutlookSettings(outbox_dir=outbox, invite="all")
    store = MemoryPluginStore(plugin="outlook")
    ctx = make_context("outlook", settings, store=store)
    base = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
    events = [make_event(case_id=f"EHC-{i:05d}", start=base + timedelta(hours=i % 400),
                         join_url=f"https://teams.example/join/{i}",
                         coordinator=f"caseworker{i % 100}@council.example.gov.uk")
              for i in range(args.reviews)]
    started = time.perf_counter()
    for event in events:
        ehcbridge_outlook.on_review_scheduled(event, ctx)
    took = time.perf_counter() - started
    sent = len(list(outbox.glob("*.eml")))
    print(f"invitations: {args.reviews} reviews, {sent} messages in {took:.2f} s "
          f"({took / max(sent, 1) * 1000:.2f} ms per message)")

    # The feed works from stored state: copy the entries to reach the requested size.
    items = store.state_items("feed:")
    copies = max(1, args.feed // max(args.reviews, 1))
    many = [(f"{key}-{n}", value) for n in range(copies) for key, value in items]
    started = time.perf_counter()
    one = service.build_feed(many, now=ctx.clock.now(),
                             coordinator="caseworker1@council.example.gov.uk")
    print(f"feed of one coordinator from {len(many)} entries: {len(one) // 1024} KiB in "
          f"{time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    everything = service.build_feed(many, now=ctx.clock.now())
    print(f"feed of every review ({len(many)} entries): {len(everything) // 1024} KiB in "
          f"{time.perf_counter() - started:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
