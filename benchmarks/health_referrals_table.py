"""How long a large routing table takes to load (validation and the ambiguity check) and to
route with: a council-wide table of per-school rules, as a spreadsheet would hold it.

Run: uv run python benchmarks/health_referrals_table.py [SCHOOLS]
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

from ehcbridge_health_referrals.routing import Case, decide
from ehcbridge_health_referrals.settings import HealthReferralsSettings

SERVICES = ["SALT", "OT", "physiotherapy", "school nursing", "CAMHS"]


def write_table(path: Path, schools: int) -> int:
    """A general rule per service, a rule per school and service, and one for social care."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["name", "role", "service", "school_urn", "nc_year", "team", "mailbox"])
        for service in SERVICES:
            slug = service.replace(" ", "-").lower()
            out.writerow([f"{slug}", "health", service, "", "", f"{service} team",
                          f"{slug}@nhs.example.net"])
            rows += 1
            for n in range(schools):
                urn = f"{100000 + n}"
                out.writerow([f"{slug}-{urn}", "health", service, urn, "",
                              f"{service} at {urn}", f"{slug}.{urn}@nhs.example.net"])
                rows += 1
        out.writerow(["social-care", "social_care", "", "", "", "Social care",
                      "csc@council.example.gov.uk"])
    return rows + 1


def main() -> None:
    """Print load and routing times."""
    schools = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routing.csv"
        rows = write_table(path, schools)
        started = time.perf_counter()
        settings = HealthReferralsSettings(dco_mailbox="dco@nhs.example.net", rules_csv=path)
        loaded = time.perf_counter() - started
        table = settings.table
        case = Case(role="health", service="ot", school_urn=f"{100000 + schools // 2}",
                    nc_year=8)
        started = time.perf_counter()
        for _ in range(1000):
            decision = decide(table, case)
        routed = (time.perf_counter() - started) / 1000
    print(f"rules: {rows}")
    print(f"load (CSV, validation, ambiguity check): {loaded:.2f} s")
    winner = decision.rule.name if decision.rule else None
    print(f"route one invitee: {routed * 1000:.2f} ms (winner: {winner})")


if __name__ == "__main__":
    main()
