"""Metrics benchmark: what sampling costs the node, and how fast a day of metrics reads.

Run as root: ``python3 bench/bench_metrics.py [--groups 200] [--window 60] [--hours 24]``.

- Sampling and metering: N single-container groups run on this node's engine (runc,
  busybox sleepers), each deployed through the meter's hooks with a usage span in a real
  store (SQLite). For ``--window`` seconds the process runs with sampling and metering
  off (the baseline), then as long with the sampler on at its default 15 s and the meter
  at its default 5 s (plus rounds back to back, to time one round of each well).
  Reported: one round's CPU time of each (its thread's own, median), their sum as a
  share of one core at their intervals (target <= 2 %), the process's CPU share in each
  window, and its RSS after each (the difference: target <= 20 MB).
- Query: a time-series file holding ``--hours`` of 15 s samples for the N groups
  (one container each, and their network), read through the real API route in
  process: ``Microsoft.Insights/metrics`` over the last 24 h at PT1M, CpuUsage and
  MemoryUsage split by container (target p50 <= 50 ms), beside a GET of the group
  itself in the same run (the baseline).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from skiff.control.metering import Meter
from skiff.control.sampling import Sampler
from skiff.core.spec import Container, GroupSpec, Resources
from skiff.store import Store
from skiff.store.timeseries import MetricsFile, Point

SLEEPER = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _p(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def sampling(groups: int, window_s: float) -> None:
    from skiff.settings import Settings
    from skiff.testing.engine import cached_busybox, supervising

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-metrics-"))
    try:
        with (supervising(Settings(data_root=work / "root"), pool_size=4) as engine,
              cached_busybox(engine, work) as image, Store(work / "skiff.db") as store):
            store.put_resource_group("bench", "rg", "local", {})
            meter = Meter(store, engine, interval_s=5.0)
            ids = []
            for i in range(groups):
                record, _ = store.put_group("bench", "rg", f"m{i}", "local", {
                    "location": "local", "properties": {"containers": [{"name": "c",
                        "properties": {"resources": {"requests": {"cpu": 0.01,
                                                                  "memoryInGB": 0.02}}}}]}}, {})
                spec = GroupSpec(id=record.uid, name=record.name,
                                 containers=(Container(name="c", image=image, command=SLEEPER,
                                                       resources=Resources(cpu=0.01,
                                                                           memory_gb=0.02)),))
                meter.began(record)
                meter.observed(record, engine.run(spec))
                ids.append(spec.id)
            series = MetricsFile(work / "metrics.db")
            sampler = Sampler(engine, series, interval_s=15.0)
            try:
                cpu0, t0 = _cpu_s(), time.monotonic()
                time.sleep(window_s)
                off_share = (_cpu_s() - cpu0) / (time.monotonic() - t0)
                rss_off = _rss_mb()
                rounds: list[float] = []
                ticks: list[float] = []
                points = [0]

                def timed() -> None:
                    for _ in range(20):
                        begun = time.thread_time()
                        points[0] = len(sampler.sample_once())
                        rounds.append(time.thread_time() - begun)
                        begun = time.thread_time()
                        meter.tick()
                        ticks.append(time.thread_time() - begun)

                worker = threading.Thread(target=timed)
                worker.start()
                worker.join()
                cpu1, t1 = _cpu_s(), time.monotonic()
                sampler.start()
                meter.start()
                time.sleep(window_s)
                on_share = (_cpu_s() - cpu1) / (time.monotonic() - t1)
                sampler.stop()
                meter.stop()
                rss_on = _rss_mb()
                metered = len(store.open_spans())
            finally:
                series.close()
            sampled = len({p for p in ids if any(s.group_id == p for s in engine.samples())})
            for gid in ids:
                engine.delete(gid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p50, p90 = _p(rounds)
    m50, m90 = _p(ticks)
    print(f"sampling and metering {groups} running groups ({sampled} sampled, {points[0]} "
          f"points a round; {metered} metered)")
    print(f"  one round, sampler thread CPU: p50 {p50 * 1e3:.1f} ms, p90 {p90 * 1e3:.1f} ms"
          f" -> {p50 / 15.0 * 100:.2f} % of one core at 15 s")
    print(f"  one round, meter thread CPU: p50 {m50 * 1e3:.1f} ms, p90 {m90 * 1e3:.1f} ms"
          f" -> {m50 / 5.0 * 100:.2f} % of one core at 5 s")
    print(f"  both: {(p50 / 15.0 + m50 / 5.0) * 100:.2f} % of one core (target <= 2 %)")
    print(f"  process CPU share: sampling and metering off {off_share * 100:.2f} %, on "
          f"{on_share * 100:.2f} % of one core (ratio {on_share / max(off_share, 1e-9):.2f}x,"
          f" difference {(on_share - off_share) * 100:+.2f} points)")
    print(f"  RSS: off {rss_off:.1f} MB, on {rss_on:.1f} MB "
          f"(difference {rss_on - rss_off:+.1f} MB, target <= 20 MB)")


def query(groups: int, hours: float, rounds: int) -> None:
    from anyio.from_thread import start_blocking_portal

    from skiff.api.app import create_app
    from skiff.testing.inprocess import InProcessClient, fake_plane
    from skiff.testing.waiting import eventually

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-query-"))
    sub, rg = "bench", "rg"
    group = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/" \
            "Microsoft.ContainerInstance/containerGroups/g"
    try:
        with fake_plane(work) as plane, start_blocking_portal() as portal:
            assert plane.metrics is not None
            _, token = plane.store.create_token(sub, "bench")
            http = InProcessClient(portal, create_app(plane), token)
            body = {"location": "local", "properties": {"osType": "Linux", "containers": [
                {"name": "c", "properties": {"image": "registry.test/busybox:1",
                                             "command": ["sleep", "3600"],
                                             "resources": {"requests": {"cpu": 0.5,
                                                                        "memoryInGB": 0.5}}}}]}}
            assert http.put(f"{group}?api-version=2023-05-01", json=body).status_code == 201
            eventually(lambda: plane.store.get_group(sub, rg, "g") is not None,
                       what="the group is stored")
            record = plane.store.get_group(sub, rg, "g")
            assert record is not None
            uids = [record.uid, *(uuid.uuid4().hex for _ in range(groups - 1))]
            now = int(time.time())
            steps = int(hours * 3600 / 15)
            begun = time.perf_counter()
            for i in range(steps):
                t = now - (steps - i) * 15
                plane.metrics.record(t, [p for uid in uids for p in (
                    Point(uid, "c", 100.0 + i % 7, 5e6 + i), Point(uid, "", 10.0, 20.0))])
            filled = time.perf_counter() - begun
            size = os.path.getsize(work / "metrics.db") / 1e6
            url = (f"{group}/providers/Microsoft.Insights/metrics?api-version=2018-01-01"
                   "&timespan=P1D&interval=PT1M&metricnames=CpuUsage,MemoryUsage"
                   "&aggregation=Average,Maximum&$filter=containerName eq '*'")
            answer = http.get(url)
            assert answer.status_code == 200, answer.text
            data = answer.json()["value"][0]["timeseries"][0]["data"]
            assert sum("average" in p for p in data) >= min(1400, hours * 58), answer.text[:600]
            times, base = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                http.get(f"{group}?api-version=2023-05-01")
                base.append((time.perf_counter() - start) * 1e3)
                start = time.perf_counter()
                http.get(url)
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q50, q90 = _p(times)
    b50, b90 = _p(base)
    print(f"query: {groups} groups x {hours:g} h of 15 s samples ({steps * groups * 2} rows, "
          f"{size:.0f} MB, written in {filled:.0f} s)")
    print(f"  24 h at PT1M, CpuUsage+MemoryUsage by container: p50 {q50:.1f} ms, p90 "
          f"{q90:.1f} ms (target p50 <= 50 ms)")
    print(f"  baseline GET of the group: p50 {b50:.1f} ms, p90 {b90:.1f} ms "
          f"(ratio {q50 / b50:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--part", choices=("all", "sampling", "query"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "sampling"):
        if os.geteuid() != 0:
            sys.exit("sampling needs root (real groups); --part query does not")
        sampling(args.groups, args.window)
    if args.part in ("all", "query"):
        query(args.groups, args.hours, args.rounds)


if __name__ == "__main__":
    main()
