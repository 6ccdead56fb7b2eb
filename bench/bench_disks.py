"""Disk limit benchmark: what a group's own disk costs a group start.

Run as root: ``python3 bench/bench_disks.py [--rounds N]``. Three engines side
by side, their rounds interleaved so that they share the machine's moods:

- no limit (``group_gb=0``): the groups write on the data root's filesystem;
- the limit with its pool (the default): a start renames a formatted disk and
  mounts it;
- the limit with an empty pool (``pool_size=0``): a start makes its disk (a
  sparse file and mkfs) first; what a burst of starts pays once the pool is spent.

Each figure is "run group, 1 container" (the container's process running), as
bench_groups.py measures it (target p50 <= 60 ms); the disk's own steps, taking
and mounting it and releasing it, are timed alone at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_groups import _percentiles, _spec
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import DiskSettings, Settings
from skiff.testing.engine import cached_busybox, supervising

CONFIGS = {
    "no limit": DiskSettings(group_gb=0),
    "limit 10 GB, pool of 2": DiskSettings(),
    "limit 10 GB, empty pool": DiskSettings(pool_size=0),
}


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
    """Milliseconds to attach a pooled disk, and to release it, alone."""
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
    args = parser.parse_args()
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
            for _ in range(args.rounds):
                for name, (engine, image) in engines.items():
                    times[name].append(one_start(engine, image))
            attach, release = disk_steps(engines["limit 10 GB, pool of 2"][0], args.rounds)
            made = {name: e.volumes.disks.made_on_demand for name, (e, _) in engines.items()
                    if e.volumes.disks is not None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'run group, 1 container':<44} {'p50':>8} {'p90':>8}")
    for name, samples in times.items():
        p50, p90 = _percentiles(samples)
        print(f"{name:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    for what, samples in (("attach a pooled disk (rename + mount)", attach),
                          ("release a disk (unmount + unlink)", release)):
        p50, p90 = _percentiles(samples)
        print(f"{what:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    print("disks made during starts (pool empty):", made)
    base = statistics.median(times["no limit"])
    print(f"p50 with the limit: {statistics.median(times['limit 10 GB, pool of 2']) - base:+.1f} ms"
          f" (pooled), {statistics.median(times['limit 10 GB, empty pool']) - base:+.1f} ms"
          " (made on demand)")


if __name__ == "__main__":
    main()
