"""The metrics sampler: the running groups' usage, every ``interval_s``, into the series file.

A thread asks the engine for its groups' counters (:meth:`Engine.samples`:
CPU time, memory working set, network bytes) and turns two successive readings
into what ACI's metrics show: CPU in millicores (CPU-ns used per second of wall
time / 10⁶), memory in bytes as read, network bytes received and sent per
second. A container's first reading, and one whose counter went backwards (it
restarted: a new cgroup), gives no rate yet; its memory is recorded all the same.
Each round is one transaction of the time-series file
(:class:`~skiff.store.timeseries.MetricsFile`); every ``PRUNE_EVERY_S`` what
aged out of its retention is dropped.

The last round's values stay in memory (:attr:`Sampler.latest`) for the
Prometheus endpoint's per-container gauges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skiff.control.periodic import Periodic
from skiff.core.engine import Engine
from skiff.core.metrics import GroupSample
from skiff.store.timeseries import MetricsFile, Point

log = logging.getLogger(__name__)

#: Seconds between two prunes of the time-series file.
PRUNE_EVERY_S = 600.0


def rate(now: int | None, before: int | None, seconds: float) -> float | None:
    """Units per second from two readings of a counter; None when either is missing, no
    time passed, or the counter went backwards (reset)."""
    if now is None or before is None or seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


class Sampler(Periodic[list[Point]]):
    """Samples ``engine`` into ``series`` every ``interval_s`` (in a thread once
    :meth:`start` ed; :meth:`sample_once` for a caller's own pace)."""

    thread_name = "skiff-sampler"
    doing = "sampling the groups' usage"

    def __init__(self, engine: Engine, series: MetricsFile, *, interval_s: float = 15.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval_s)
        self.engine = engine
        self.series = series
        self.clock = clock
        #: (group, container) → (millicores or None, memory bytes or None) of the last
        #: round, for every container sampled in it.
        self.latest: dict[tuple[str, str], tuple[float | None, int | None]] = {}
        self._last: dict[str, GroupSample] = {}
        self._pruned = 0.0

    def sample_once(self) -> list[Point]:
        """One round: read, turn into rates, write; returns the points written."""
        return self.run_round()

    def _round(self) -> list[Point]:
        samples = self.engine.samples()
        now = self.clock()
        points: list[Point] = []
        latest: dict[tuple[str, str], tuple[float | None, int | None]] = {}
        last, self._last = self._last, {s.group_id: s for s in samples}
        for sample in samples:
            before = last.get(sample.group_id)
            seconds = sample.at - before.at if before is not None else 0.0
            earlier = {c.name: c for c in before.containers} if before is not None else {}
            for container in sample.containers:
                previous = earlier.get(container.name)
                per_s = rate(container.cpu_ns, previous.cpu_ns if previous else None, seconds)
                millicores = None if per_s is None else per_s / 1e6
                points.append(Point(sample.group_id, container.name, millicores,
                                    container.memory_bytes))
                latest[(sample.group_id, container.name)] = (millicores,
                                                             container.memory_bytes)
            rx = rate(sample.rx_bytes, before.rx_bytes if before else None, seconds)
            tx = rate(sample.tx_bytes, before.tx_bytes if before else None, seconds)
            if rx is not None or tx is not None:
                points.append(Point(sample.group_id, "", rx, tx))
        self.latest = latest
        if points:
            self.series.record(int(now), points)
        if now - self._pruned >= PRUNE_EVERY_S:
            self.series.prune(now)
            self._pruned = now
        return points
