"""Sampling without root: the cgroup reader over fake cgroup trees (v1 hybrid, v2) and
/proc, the sampler's rates over the fake engine, and the time-series file's rounds,
rollups and retention."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.control.sampling import Sampler, rate
from skiff.core.metrics import ContainerSample, GroupSample
from skiff.engine.group.sampling import CgroupReader
from skiff.store.timeseries import MetricsFile, Point

NET_DEV = "\n".join([
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
    "errs drop fifo colls carrier compressed",
    "    lo:  900000     10    0    0    0     0          0         0   900000      10    "
    "0    0    0     0       0          0",
    "  eth0:    1500      3    0    0    0     0          0         0     2500       4    "
    "0    0    0     0       0          0", ""])

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v1_tree(root: Path, cgroup: str, *, cpu_ns: int, usage: int, inactive: int,
            pid: int | None = None) -> None:
    write(root / "cpuacct" / cgroup / "cpuacct.usage", f"{cpu_ns}\n")
    write(root / "memory" / cgroup / "memory.usage_in_bytes", f"{usage}\n")
    write(root / "memory" / cgroup / "memory.stat",
          f"cache 10\ninactive_file 1\ntotal_cache 99\ntotal_inactive_file {inactive}\n")
    write(root / "memory" / cgroup / "cgroup.procs", f"{pid}\n" if pid else "")


def test_v1_reader_takes_cpuacct_and_the_working_set(tmp_path: Path) -> None:
    """cgroup v1: CPU from cpuacct.usage, memory as usage less total_inactive_file."""
    root = tmp_path / "cgroup"
    v1_tree(root, "skiff-x/g/c1", cpu_ns=123_456_789, usage=50_000, inactive=8_000)
    reader = CgroupReader(root, tmp_path / "proc")
    assert not reader.unified
    assert reader.cpu_ns("/skiff-x/g/c1") == 123_456_789
    assert reader.working_set("/skiff-x/g/c1") == 42_000
    assert reader.cpu_ns("/skiff-x/g/absent") is None
    assert reader.working_set("/skiff-x/g/absent") is None


def test_v2_reader_takes_cpu_stat_and_memory_current(tmp_path: Path) -> None:
    """cgroup v2: usage_usec (as ns), memory.current less inactive_file."""
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory pids\n")
    write(root / "g" / "c" / "cpu.stat", "usage_usec 2500\nuser_usec 2000\n")
    write(root / "g" / "c" / "memory.current", "9000\n")
    write(root / "g" / "c" / "memory.stat", "anon 10\ninactive_file 1000\n")
    reader = CgroupReader(root, tmp_path / "proc")
    assert reader.unified
    assert reader.cpu_ns("/g/c") == 2_500_000
    assert reader.working_set("/g/c") == 8000


def test_network_bytes_leave_loopback_out(tmp_path: Path) -> None:
    """/proc/<pid>/net/dev: every interface but lo, received and transmitted."""
    write(tmp_path / "proc" / "77" / "net" / "dev", NET_DEV)
    reader = CgroupReader(tmp_path / "cgroup", tmp_path / "proc")
    assert reader.net_bytes(77) == (1500, 2500)
    assert reader.net_bytes(78) is None


def test_containers_read_a_shared_cgroup_once_and_the_network_through_a_pid(
        tmp_path: Path) -> None:
    """A gVisor group's members share the sandbox's cgroup: it counts once, under the
    first; the network comes from the first cgroup that holds a process."""
    root = tmp_path / "cgroup"
    v1_tree(root, "n/g/sandbox", cpu_ns=5, usage=100, inactive=0, pid=77)
    write(tmp_path / "proc" / "77" / "net" / "dev", NET_DEV)
    reader = CgroupReader(root, tmp_path / "proc")
    samples, net = reader.containers([("web", "/n/g/sandbox"), ("side", "/n/g/sandbox")])
    assert samples == [ContainerSample("web", 5, 100)]
    assert net == (1500, 2500)


def test_rate_refuses_resets_and_missing_readings() -> None:
    """A counter that went backwards (a restarted container) gives no rate."""
    assert rate(300, 100, 2.0) == 100.0
    assert rate(50, 100, 2.0) is None
    assert rate(None, 100, 2.0) is None
    assert rate(300, 100, 0.0) is None


class Counters:
    """An engine whose samples a test writes."""

    def __init__(self) -> None:
        self.next: list[GroupSample] = []

    def samples(self) -> list[GroupSample]:
        return self.next


def test_sampler_turns_counters_into_millicores_and_bytes_per_second(tmp_path: Path) -> None:
    """Two readings 10 s apart: 5 CPU-seconds is 500 millicores; memory as read; the
    network's bytes per second. The first reading has no CPU rate yet."""
    engine = Counters()
    series = MetricsFile(tmp_path / "m.db")
    now = [1_000_000.0]
    sampler = Sampler(engine, series, clock=lambda: now[0])  # type: ignore[arg-type]
    engine.next = [GroupSample("g", 100.0, (ContainerSample("c", 1_000_000_000, 4096),),
                               1000, 2000)]
    first = sampler.sample_once()
    assert first == [Point("g", "c", None, 4096)]
    now[0] += 10
    engine.next = [GroupSample("g", 110.0, (ContainerSample("c", 6_000_000_000, 8192),),
                               11_000, 2000)]
    second = sampler.sample_once()
    assert second == [Point("g", "c", 500.0, 8192), Point("g", "", 1000.0, 0.0)]
    assert sampler.latest == {("g", "c"): (500.0, 8192)}
    buckets = series.query("g", 1_000_000, 1_000_060, 60, now[0], containers=["c"])
    assert len(buckets) == 1
    assert buckets[0].avg_a == 500.0
    assert buckets[0].max_b == 8192
    assert buckets[0].min_b == 4096
    series.close()


@pytest.fixture
def series(tmp_path: Path) -> MetricsFile:
    return MetricsFile(tmp_path / "m.db", full_retention_s=3600, rollup_s=300,
                       rollup_retention_s=86400)


def test_buckets_average_and_bound_each_container(series: MetricsFile) -> None:
    """Four samples a minute: a PT1M bucket's average, minimum and maximum."""
    t0 = 1_700_000_040  # a minute boundary
    for i, cpu in enumerate((100.0, 200.0, 300.0, 400.0)):
        series.record(t0 + 15 * i, [Point("g", "a", cpu, 10.0 * (i + 1)),
                                    Point("g", "b", 50.0, None)])
    now = t0 + 100
    split = series.query("g", t0, t0 + 60, 60, now)
    assert [(b.container, b.avg_a, b.min_a, b.max_a) for b in split] == [
        ("a", 250.0, 100.0, 400.0), ("b", 50.0, 50.0, 50.0)]
    assert split[0].avg_b == 25.0
    assert split[1].avg_b is None
    combined = series.query("g", t0, t0 + 60, 60, now, combined=True)
    assert [(b.avg_a, b.min_a, b.max_a) for b in combined] == [(300.0, 150.0, 450.0)]
    assert series.query("g", t0, t0 + 60, 60, now, network=True) == []
    assert series.containers("g") == ["a", "b"]


def test_older_queries_read_the_rollups_and_prune_drops_what_aged_out(
        series: MetricsFile) -> None:
    """Beyond the full retention the 5-minute rollups answer (same averages and bounds);
    prune drops samples, then rollups, past their retentions."""
    t0 = 1_700_000_100
    for i, cpu in enumerate((10.0, 20.0, 60.0)):
        series.record(t0 + 60 * i, [Point("g", "a", cpu, 1.0)])
    later = t0 + 7200  # past the hour of full resolution
    rolled = series.query("g", t0 - t0 % 300, later, 300, later)
    assert [(b.avg_a, b.min_a, b.max_a) for b in rolled] == [(30.0, 10.0, 60.0)]
    series.prune(later)
    assert series.query("g", t0 - 100, t0 + 200, 60, t0 + 200) == []  # samples gone
    assert len(series.query("g", t0 - t0 % 300, later, 300, later)) == 1
    series.prune(t0 + 86400 + 400)
    assert series.query("g", t0 - t0 % 300, later, 300, t0 + 86400 + 400) == []
    assert series.containers("g") == []
