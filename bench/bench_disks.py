"""Disk limit benchmark: what a group's own disk costs a group start.

Run as root: ``python3 bench/bench_disks.py [--rounds N] [--steps]``. Three
engines side by side, their rounds interleaved so that they share the machine's
moods:

- no limit (``group_gb=0``): the groups write on the data root's filesystem;
- the limit with its pool (the default): a start renames a disk the pool holds
  mounted and places the mount;
- the limit with an empty pool (``pool_size=0``): a start makes its disk (a
  sparse file and mkfs) and mounts it; what a burst of starts pays once the pool
  is spent.

Each figure is "run group, 1 container" (the container's process running), as
bench_groups.py measures it (target p50 <= 60 ms), on a quiet node: before each
start, every engine's background work is done (the previous group's network
teardown, the network pool's and the disk pool's refills: a node refills its disk
pool once no start was under way for ``refill_delay_s``; three engines on one
machine would otherwise do that work beside each other's starts). The disk's own steps, taking a
ready disk and releasing it, are timed alone at the end. ``--steps`` also times
the steps of each start (preparation, the disk's attach, the rootfs, runc's
create), by wrapping the engines' methods.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_groups import _percentiles, _spec
from skiff.engine.group import preparation
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import DiskSettings, Settings
from skiff.testing.engine import cached_busybox, supervising
from skiff.testing.waiting import eventually

CONFIGS = {
    "no limit": DiskSettings(group_gb=0),
    "limit 10 GB, pool of 2": DiskSettings(),
    "limit 10 GB, empty pool": DiskSettings(pool_size=0),
}


class Steps:
    """Milliseconds per step of the starts of the engine being measured (``current``),
    by wrapping its methods; calls made outside the timed starts are not counted."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def wrap(self, owner: Any, method: str, label: str) -> None:
        inner: Callable[..., Any] = getattr(owner, method)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            current, start = self.current, time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                if current is not None:
                    self.times[current][label].append((time.perf_counter() - start) * 1e3)
        setattr(owner, method, timed)

    def engine(self, engine: Supervisor) -> None:
        self.wrap(engine.volumes, "prepare", "2 volumes.prepare")
        if engine.volumes.disks is not None:
            self.wrap(engine.volumes.disks, "attach", "3 disk attach")
        self.wrap(engine.images, "create_rootfs", "4 create rootfs")
        driver = engine.drivers["container"]
        self.wrap(driver, "create", "5 runc create")
        self.wrap(driver, "start", "6 runc start")

    def report(self) -> None:
        names = list(self.times)
        labels = sorted({label for steps in self.times.values() for label in steps})
        print(f"\n{'steps of a start (p50)':<44}" + "".join(f"{n[:18]:>20}" for n in names))
        for label in labels:
            cells = (self.times[n][label] for n in names)
            print(f"{label:<44}" + "".join(
                f"{statistics.median(c):>18.2f}ms" if c else f"{'-':>20}" for c in cells))


def settle(engines: dict[str, tuple[Supervisor, str]]) -> None:
    """Wait until every engine is quiet again: the networks deleted groups leave torn
    down (a CNI DEL, ≈ 100 ms of iptables in the background, would slow the next
    engine's start by its xtables lock and CPU), the network and disk pools full."""
    for engine, _ in engines.values():
        engine.networks.settle()
        engine.networks.prewarm()
        disks = engine.volumes.disks
        if disks is not None:
            eventually(disks.settled, what="the disk pool refilled", timeout_s=30,
                       interval_s=0.005)


def one_start(engine: Supervisor, image: str) -> float:
    """Milliseconds from run() to the container running; the group deleted after."""
    spec = _spec(image, 1)
    start = time.perf_counter()
    view = engine.run(spec)
    took = (time.perf_counter() - start) * 1e3
    assert all(c.current.state == "Running" for c in view.containers), view
    engine.delete(spec.id)
    return took


def disk_steps(engine: Supervisor, rounds: int) -> tuple[list[float], list[float]]:
    """Milliseconds to attach a ready disk (rename, place its mount), and to release it
    (unmount, unlink), alone."""
    disks = engine.volumes.disks
    assert disks is not None
    attach, release = [], []
    for i in range(rounds):
        disks.prewarm()
        target = engine.volumes.root / f"bench-{i}"
        start = time.perf_counter()
        disks.attach(f"bench-{i}", target)
        attach.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        disks.release(f"bench-{i}", target)
        release.append((time.perf_counter() - start) * 1e3)
        target.rmdir()
    return attach, release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", action="store_true", help="time the steps of each start")
    args = parser.parse_args()
    steps = Steps() if args.steps else None
    if steps is not None:
        steps.wrap(preparation, "prepare", "1 prepare (images, network, volumes)")
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    try:
        with contextlib.ExitStack() as stack:
            engines: dict[str, tuple[Supervisor, str]] = {}
            for i, (name, disks) in enumerate(CONFIGS.items()):
                engine = stack.enter_context(supervising(
                    Settings(data_root=work / f"root{i}", disks=disks), pool_size=4))
                image = stack.enter_context(cached_busybox(engine, work / f"img{i}"))
                if engine.volumes.disks is not None:
                    engine.volumes.disks.prewarm()
                for _ in range(3):  # warm-up: caches, pools, seccomp profile
                    one_start(engine, image)
                engines[name] = (engine, image)
                if steps is not None:
                    steps.engine(engine)
            for _ in range(args.rounds):
                for name, (engine, image) in engines.items():
                    settle(engines)
                    if steps is not None:
                        steps.current = name
                    times[name].append(one_start(engine, image))
                    if steps is not None:
                        steps.current = None
            attach, release = disk_steps(engines["limit 10 GB, pool of 2"][0], args.rounds)
            made = {name: e.volumes.disks.made_on_demand for name, (e, _) in engines.items()
                    if e.volumes.disks is not None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'run group, 1 container':<44} {'p50':>8} {'p90':>8}")
    for name, samples in times.items():
        p50, p90 = _percentiles(samples)
        print(f"{name:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    for what, samples in (("attach a ready disk (rename + place)", attach),
                          ("release a disk (unmount + unlink)", release)):
        p50, p90 = _percentiles(samples)
        print(f"{what:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    print("disks made during starts (pool empty):", made)
    base = statistics.median(times["no limit"])
    pooled = statistics.median(times["limit 10 GB, pool of 2"])
    empty = statistics.median(times["limit 10 GB, empty pool"])
    print(f"p50 with the limit: {pooled - base:+.1f} ms (pooled), {empty - base:+.1f} ms"
          " (made on demand)")
    print(f"p50 ratio with/without the limit: {pooled / base:.3f} (pooled), "
          f"{empty / base:.3f} (made on demand)")
    if steps is not None:
        steps.report()


if __name__ == "__main__":
    main()
