"""``/metrics``: deliveries by status and plugin, duties at risk and missed, engine tick age.

Read from the store at scrape time by a custom collector in a registry of the app's own, so
several apps in one process (tests) never clash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ehcbridge.web.app import Dashboard


def migrations_head() -> str | None:
    """The newest migration the code knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from ehcbridge.store import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


class StoreCollector(Collector):
    """Gauges computed from the store on each scrape."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the current figures."""
        from ehcbridge.web.data import ATTENTION, acting_facts, last_tick

        store = self.dash.app.store
        deliveries = GaugeMetricFamily("ehcbridge_deliveries",
                                       "Deliveries in the ledger by status and plugin",
                                       labels=["status", "plugin"])
        by: Counter[tuple[str, str]] = Counter()
        for (_hook, plugin, status), n in store.delivery_counts().items():
            by[(status, plugin)] += n
        for (status, plugin), n in sorted(by.items()):
            deliveries.add_metric([status, plugin], n)
        yield deliveries
        # The duties the dashboard lists for action: a missed duty of a review concluded
        # since is history (the figures report it), so an alert on this gauge can clear.
        duties = GaugeMetricFamily("ehcbridge_duties",
                                   "Duties at risk or missed that still call for action",
                                   labels=["status"])
        found = Counter(d.status for d in acting_facts(self.dash.app, ATTENTION))
        for status in ATTENTION:
            duties.add_metric([status.value], found[status.value])
        yield duties
        tick = last_tick(self.dash.app, self.dash.engine_state)
        age = GaugeMetricFamily("ehcbridge_engine_last_tick_age_seconds",
                                "Seconds since the engine last ticked (NaN when unknown)")
        age.add_metric([], (self.dash.now() - tick).total_seconds() if tick else float("nan"))
        yield age


def registry_for(dash: Dashboard) -> CollectorRegistry:
    """A registry holding the store collector of one dashboard."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(dash))
    return registry


def render(dash: Dashboard) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(dash.registry), CONTENT_TYPE_LATEST
