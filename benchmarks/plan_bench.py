"""``ehcbridge plan`` over 20,000 reviews without a meeting, with every installed plugin asked for
date constraints. Target on the 2-core reference machine: under 10 s.
Usage: uv run python benchmarks/plan_bench.py [--plans N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from ehcbridge.synthetic import write_csv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plans", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ehcbridge-plan-bench-"))
    # About 200 plans per caseworker, as in large councils.
    csv = write_csv(work / "reviews.csv", args.plans, seed=11, term_start=date(2027, 1, 4),
                    scheduled_share=0.0, coordinators=max(1, args.plans // 200))
    env = {**os.environ, "EHCBRIDGE_STORE__URL": f"sqlite:///{work / 'bench.sqlite3'}"}
    cli = [sys.executable, "-m", "ehcbridge.cli"]
    subprocess.run([*cli, "import", "reviews", str(csv)], env=env, check=True,
                   capture_output=True)
    started = time.perf_counter()
    out = subprocess.run([*cli, "plan", "--now", "2026-11-02T09:00", "--json", "--ics",
                          str(work / "plan.ics")], env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    result = json.loads(out.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"reviews without a meeting: {args.plans}")
    print(f"ehcbridge plan (whole command, all plugins loaded): {elapsed:.2f} s "
          f"(target < 10 s); {args.plans / elapsed:,.0f} reviews/s")
    print(f"proposals {len(result['proposals'])}, overdue {len(result['overdue'])}, "
          f"cannot plan {len(result['unplanned'])}")
    print(f"peak memory of the command: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
