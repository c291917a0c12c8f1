"""``ehcbridge deliveries`` pages through a large ledger and says how many rows it left out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ehcbridge.store import Store

ROWS = 2845  # the ledger the issue found cut to 1,000 without a word


def test_deliveries_pages_and_says_how_many_more(store: Store, scheduled_case: str,
                                                 cli: Any) -> None:
    (event,) = store.undispatched_events()
    store.dispatch(event.id, [f"plugin{n:04d}" for n in range(ROWS)], event.hook,
                   datetime(2027, 1, 4, tzinfo=UTC))
    first = cli.quick("deliveries", "--json")
    assert first.returncode == 0, first.stderr
    assert len(json.loads(first.stdout)) == 1000
    assert "showing rows 1-1000 of 2845; 1845 more: use --offset 1000" in first.stderr

    second = cli.quick("deliveries", "--json", "--offset", "1000", "--limit", "2000")
    rows = json.loads(second.stdout)
    assert len(rows) == 1845 and "more" not in second.stderr
    assert rows[0]["plugin"] == "plugin1000" and rows[-1]["plugin"] == "plugin2844"

    table = cli.quick("deliveries", "--limit", "10", "--status", "pending")
    assert table.stdout.count("plugin00") == 10
    assert "showing rows 1-10 of 2845; 2835 more: use --offset 10" in table.stderr

    everything = cli.quick("deliveries", "--json", "--limit", "0")
    assert len(json.loads(everything.stdout)) == ROWS and everything.stderr == ""

    small = cli.quick("deliveries", "--json", "--status", "dead")
    assert json.loads(small.stdout) == [] and small.stderr == ""
