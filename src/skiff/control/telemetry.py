"""The operator's Prometheus metrics: how the node and its control plane are doing.

One :class:`Telemetry` per control plane, with a registry of its own (no
process-wide default registry: two planes in one test process keep their
counts apart), exposed by :mod:`skiff.api.prometheus` at ``/metrics`` (the
admin token) or on ``MetricsSettings.listen``:

- ``skiff_container_groups{provisioning_state, desired}``: the stored groups by
  state, counted in the store at each scrape;
- ``skiff_group_starts_total`` and ``skiff_group_start_failures_total``: the reconcile
  loop's runs and starts of groups, and those that failed;
- ``skiff_group_start_seconds``: how long a group took from the engine's run (or
  start) to its first containers started;
- ``skiff_api_request_seconds{method, route, code}``: every API answer's latency;
- ``skiff_pool_size{pool}``: ready slots in the node's warm pools;
- ``skiff_container_cpu_millicores`` and ``skiff_container_memory_working_set_bytes``
  ``{subscription, resource_group, group, container}``: the sampler's last round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from skiff.store import Store

if TYPE_CHECKING:
    from skiff.control.sampling import Sampler

#: Seconds: a group start is ≈ 0.1 s warm and tens of seconds with a pull.
START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Seconds: most API answers take milliseconds.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    """The control plane's Prometheus metrics, in :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.starts = Counter("skiff_group_starts", "Container group runs and starts by the "
                              "reconcile loop.", registry=self.registry)
        self.failures = Counter("skiff_group_start_failures",
                                "Container group runs and starts that failed.",
                                registry=self.registry)
        self.start_seconds = Histogram("skiff_group_start_seconds",
                                       "Seconds from a group's run or start to its first "
                                       "containers started.", buckets=START_BUCKETS,
                                       registry=self.registry)
        self.api_seconds = Histogram("skiff_api_request_seconds",
                                     "Seconds the API took to answer a request.",
                                     ["method", "route", "code"], buckets=API_BUCKETS,
                                     registry=self.registry)

    def started(self, seconds: float, *, failed: bool) -> None:
        """A group's run or start ended (``failed``: with the group failed)."""
        self.starts.inc()
        if failed:
            self.failures.inc()
        else:
            self.start_seconds.observe(seconds)

    def watch_node(self, store: Store, sampler: Sampler | None,
                   pools: Callable[[], dict[str, int]] | None = None) -> None:
        """Add the node's gauges: groups by state, pool sizes, containers' usage."""
        self.registry.register(NodeCollector(store, sampler, pools))


class NodeCollector(Collector):
    """Gauges read at each scrape: from the store, the sampler and the engine's pools."""

    def __init__(self, store: Store, sampler: Sampler | None,
                 pools: Callable[[], dict[str, int]] | None) -> None:
        self.store = store
        self.sampler = sampler
        self.pools = pools

    def describe(self) -> list[Metric]:
        return []  # unchecked: its families are read at each scrape

    def collect(self) -> Iterator[Metric]:
        groups = GaugeMetricFamily("skiff_container_groups", "Stored container groups by "
                                   "provisioning state and desired state.",
                                   labels=["provisioning_state", "desired"])
        names: dict[str, tuple[str, str, str]] = {}
        with self.store.read() as conn:
            for state, desired, count in conn.execute(
                    "SELECT provisioning_state, desired, count(*) FROM container_groups "
                    "GROUP BY provisioning_state, desired"):
                groups.add_metric([state, desired], count)
            if self.sampler is not None and self.sampler.latest:
                for uid, sub, rg, name in conn.execute(
                        "SELECT uid, subscription, resource_group, name FROM container_groups"):
                    names[uid] = (sub, rg, name)
        yield groups
        if self.pools is not None:
            pools = GaugeMetricFamily("skiff_pool_size", "Ready slots in the node's warm "
                                      "pools.", labels=["pool"])
            for pool, size in self.pools().items():
                pools.add_metric([pool], size)
            yield pools
        if self.sampler is None:
            return
        labels = ["subscription", "resource_group", "group", "container"]
        cpu = GaugeMetricFamily("skiff_container_cpu_millicores", "A container's CPU use in "
                                "millicores, over the last sampling period.", labels=labels)
        memory = GaugeMetricFamily("skiff_container_memory_working_set_bytes",
                                   "A container's memory working set.", labels=labels)
        for (uid, container), (millicores, memory_bytes) in self.sampler.latest.items():
            where = names.get(uid)
            if where is None:
                continue  # deleted since
            if millicores is not None:
                cpu.add_metric([*where, container], millicores)
            if memory_bytes is not None:
                memory.add_metric([*where, container], memory_bytes)
        yield cpu
        yield memory
