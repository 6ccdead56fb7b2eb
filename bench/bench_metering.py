"""Metering benchmark: what the meter's round costs for N running groups, and how fast a
month of usage is priced by the cost query. No root: the fake engine, a real store.

Run: ``python3 bench/bench_metering.py [--groups 200] [--rounds 50] [--days 30]``.

- Meter: N groups deployed through the reconcile loop's hooks (each with an open span in
  a real SQLite store); one meter round (the engine's phases, the open spans read, one
  transaction advancing them all) timed ``--rounds`` times (thread CPU and wall, median),
  as a share of one core at the default 5 s interval (target: with the sampler, <= 2 %;
  see bench_metrics.py for the real engine). Baseline in the same run: one round of the
  metrics sampler over the same groups (the fake engine's counters).
- Query: ``--days`` of spans (each group stopped and started every 6 h) priced by the real
  ``Microsoft.CostManagement/query`` route in process, by day and resource, beside a GET of
  one group in the same run (the baseline).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from skiff.control.metering import Meter
from skiff.control.sampling import Sampler
from skiff.core.spec import Container, GroupSpec, Resources
from skiff.store import Store
from skiff.store.timeseries import MetricsFile
from skiff.testing.fake import FakeEngine

SUB, RG = "bench", "rg"


def _body(cpu: float) -> dict[str, object]:
    return {"location": "local", "properties": {"osType": "Linux", "containers": [
        {"name": "c", "properties": {"image": "registry.test/busybox:1",
                                     "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": cpu,
                                                                "memoryInGB": 0.5}}}}]}}


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def metering(groups: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-metering-"))
    try:
        engine = FakeEngine()
        with Store(work / "skiff.db") as store:
            store.put_resource_group(SUB, RG, "local", {})
            meter = Meter(store, engine, interval_s=0)
            for i in range(groups):
                record, _ = store.put_group(SUB, RG, f"g{i}", "local", _body(0.01), {})
                meter.began(record)
                view = engine.run(GroupSpec(id=record.uid, name=record.name, containers=(
                    Container(name="c", image="registry.test/busybox:1",
                              command=("sleep", "3600"),
                              resources=Resources(cpu=0.01, memory_gb=0.5)),)))
                meter.observed(record, view)
            assert len(store.open_spans()) == groups
            series = MetricsFile(work / "metrics.db")
            sampler = Sampler(engine, series, interval_s=0)
            sampler.sample_once()
            tick_cpu, tick_wall, sample_cpu = [], [], []
            for _ in range(rounds):
                begun, wall = time.thread_time(), time.perf_counter()
                meter.tick()
                tick_cpu.append(time.thread_time() - begun)
                tick_wall.append(time.perf_counter() - wall)
                begun = time.thread_time()
                sampler.sample_once()
                sample_cpu.append(time.thread_time() - begun)
            series.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tick, wall, sample = (_median_ms(tick_cpu), _median_ms(tick_wall),
                          _median_ms(sample_cpu))
    print(f"meter: {groups} running groups, {rounds} rounds")
    print(f"  one round: CPU p50 {tick:.2f} ms (wall {wall:.2f} ms) -> "
          f"{tick / 5000 * 100:.3f} % of one core at 5 s")
    print(f"  baseline, one sampler round (fake engine): CPU p50 {sample:.2f} ms "
          f"(meter/sampler {tick / max(sample, 1e-9):.2f}x)")


def query(groups: int, days: int, rounds: int) -> None:
    from anyio.from_thread import start_blocking_portal

    from skiff.api.app import create_app
    from skiff.testing.inprocess import InProcessClient, fake_plane

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-costs-"))
    try:
        with fake_plane(work) as plane, start_blocking_portal() as portal:
            _, token = plane.store.create_token(SUB, "bench")
            http = InProcessClient(portal, create_app(plane), token)
            plane.store.put_resource_group(SUB, RG, "local", {})
            now = time.time()
            start = now - days * 86400
            begun = time.perf_counter()
            for i in range(groups):
                record, _ = plane.store.put_group(SUB, RG, f"g{i}", "local", _body(0.5), {})
                at = start
                while at < now:  # 5 h running, 1 h stopped
                    plane.store.open_span(record, at)
                    plane.store.close_span(record.uid, min(now, at + 5 * 3600))
                    at += 6 * 3600
            filled = time.perf_counter() - begun
            spans = len(plane.store.spans_between(SUB, 0, now + 1))
            body = {"type": "Usage", "timeframe": "Custom", "timePeriod": {
                "from": time.strftime("%Y-%m-%d", time.gmtime(start)),
                "to": time.strftime("%Y-%m-%d", time.gmtime(now))}, "dataset": {
                "granularity": "Daily",
                "aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"}},
                "grouping": [{"type": "Dimension", "name": "ResourceId"}]}}
            url = f"/subscriptions/{SUB}/providers/Microsoft.CostManagement/query" \
                  "?api-version=2023-03-01"
            answer = http.post(url, json=body)
            assert answer.status_code == 200, answer.text
            rows = len(answer.json()["properties"]["rows"])
            group = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/" \
                    "Microsoft.ContainerInstance/containerGroups/g0?api-version=2023-05-01"
            times, base = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                http.get(group)
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                http.post(url, json=body)
                times.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q, b = _median_ms(times), _median_ms(base)
    print(f"cost query: {groups} groups x {days} days ({spans} spans, written in "
          f"{filled:.1f} s), daily by resource: {rows} rows")
    print(f"  p50 {q:.1f} ms; baseline GET of a group p50 {b:.1f} ms (ratio {q / b:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    metering(args.groups, args.rounds)
    query(args.groups, args.days, min(args.rounds, 20))


if __name__ == "__main__":
    main()
