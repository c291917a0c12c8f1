"""How long ``ehcbridge --help`` takes with every first-party plugin installed (target < 0.5 s).
Usage: uv run python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("ehcbridge") or sys.executable
    command = [exe, "--help"] if exe != sys.executable else [exe, "-m", "ehcbridge.cli", "--help"]
    subprocess.run(command, check=True, capture_output=True)  # warm the bytecode cache
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    baseline = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - started)
    print(f"ehcbridge --help: median {statistics.median(times) * 1000:.0f} ms, "
          f"best {min(times) * 1000:.0f} ms over {args.runs} runs (target < 500 ms)")
    print(f"bare interpreter start: median {statistics.median(baseline) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
