"""Usage samples of real groups: a busy loop held to half a core reads ≈ 500 millicores,
on runc and in a gVisor sandbox; memory and the namespace's bytes are read too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skiff.control.sampling import Sampler
from skiff.core.spec import Resources
from skiff.engine.group.supervisor import Supervisor
from skiff.store.timeseries import MetricsFile
from skiff.testing.catalog import BuiltImages
from skiff.testing.groups import GroupMaker, box
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: Seconds between the two readings: long enough that a CFS period (100 ms) is noise.
WINDOW_S = 3.0


def test_a_busy_loop_reads_as_its_cpu_limit(engine: Supervisor, images: BuiltImages,
                                             group: GroupMaker, tmp_path: Path) -> None:
    """``while :; do :; done`` with cpu 0.5: CpuUsage ≈ 500 millicores (the quota holds it
    there; bounds leave room for a busy 2-core host), a working set above zero, and the
    group's network counters readable through a process of the group."""
    spin_box = box(images, "spin", "while :; do :; done")
    assert spin_box.resources == Resources(cpu=0.5, memory_gb=0.25)
    spec = group(spin_box)
    engine.run(spec)
    eventually(lambda: any(s.group_id == spec.id for s in engine.samples()),
               what="the busy loop is sampled")
    series = MetricsFile(tmp_path / "metrics.db")
    sampler = Sampler(engine, series, interval_s=0)
    try:
        sampler.sample_once()
        time.sleep(WINDOW_S)  # the measuring window itself, not a wait for a condition
        points = [p for p in sampler.sample_once() if p.group == spec.id]
    finally:
        series.close()
    spin = next(p for p in points if p.container == "spin")
    assert spin.a is not None
    assert 380 <= spin.a <= 560, f"CpuUsage {spin.a:.0f} millicores for a 0.5 limit"
    assert spin.b is not None
    assert 0 < spin.b < 256 << 20
    [sample] = [s for s in engine.samples() if s.group_id == spec.id]
    assert sample.rx_bytes is not None
    assert sample.tx_bytes is not None
