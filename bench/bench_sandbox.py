"""Sandbox benchmark: how fast a group starts in a gVisor sandbox.

Run as root: ``python3 bench/bench_sandbox.py [--rounds N]``. Everything is
local: a docker-registry on loopback, a busybox-static image already cached,
a warm network pool. Figures are medians (p50) and p90 over N rounds, beside
the floor measured in the same run: a bare ``runsc run --detach`` of a
prepared bundle inside a network namespace with ``--network=host`` (how
skiff must run runsc here), without conmon, holder, image check or CNI.

- "run group" → the container's process running, 1 container, sandboxed:
  target p50 <= 350 ms. skiff's path is longer than the floor's: the holder
  (the sandbox's first container) is created and started, then the app
  container is created in the sandbox and started, each under conmon.

The group asks for 1 core: a sandbox's CPU limit is the group's, and gVisor's
kernel does the container's start-up work inside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import Settings
from skiff.testing.engine import cached_busybox, supervising

# Handles SIGTERM (PID 1 ignores it otherwise), so deletes need no grace period.
SLEEPER = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


def _spec(image: str) -> GroupSpec:
    return GroupSpec(id=uuid.uuid4().hex, name="b" + uuid.uuid4().hex[:8], isolation="sandbox",
                     containers=(Container(name="c0", image=image, command=SLEEPER,
                                           resources=Resources(cpu=1.0, memory_gb=0.25)),))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def bare_runsc(work: Path, netns: Path, rounds: int) -> list[float]:
    """The floor: ``runsc --network=host run --detach`` of a busybox bundle in ``netns``."""
    bundle = Path(tempfile.mkdtemp(dir=work, prefix="bundle-"))
    root = Path(tempfile.mkdtemp(dir="/run", prefix="skiff-bench-runsc-"))
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    subprocess.run(["runsc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/busybox", "sleep", "3600"])
    (bundle / "config.json").write_text(json.dumps(spec))
    runsc = ["nsenter", f"--net={netns}", "runsc", f"--root={root}", "--network=host"]
    times = []
    try:
        for i in range(rounds):
            cid = f"floor{i}-{uuid.uuid4().hex[:6]}"
            start = time.perf_counter()
            subprocess.run([*runsc, "run", "--detach", "--bundle", str(bundle), cid],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            times.append((time.perf_counter() - start) * 1e3)
            subprocess.run([*runsc, "delete", "--force", cid], check=False, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times


def group_starts(engine: Supervisor, image: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        spec = _spec(image)
        start = time.perf_counter()
        view = engine.run(spec)
        times.append((time.perf_counter() - start) * 1e3)
        assert all(c.current.state == "Running" for c in view.containers), view
        engine.delete(spec.id)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    try:
        with (supervising(Settings(data_root=work / "root"), pool_size=4) as engine,
              cached_busybox(engine, work) as image):
            floor_netns = engine.networks.setup("bench-floor", "bench-floor").netns_path
            try:
                group_starts(engine, image, 3)  # warm-up: caches, pool, the holder's rootfs
                floor = bare_runsc(work, floor_netns, args.rounds)
                one = group_starts(engine, image, args.rounds)
                floor_after = bare_runsc(work, floor_netns, args.rounds)
            finally:
                engine.networks.teardown("bench-floor")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':<48} {'p50':>8} {'p90':>8}")
    for what, samples in (("bare runsc run --detach in a netns (floor, before)", floor),
                          ("run sandboxed group, 1 container", one),
                          ("bare runsc run --detach in a netns (floor, after)", floor_after)):
        p50, p90 = _percentiles(samples)
        print(f"{what:<48} {p50:>6.1f}ms {p90:>6.1f}ms")
    floor_p50 = statistics.median(floor + floor_after)
    print(f"ratio to the floor (p50): {statistics.median(one) / floor_p50:.2f}x")


if __name__ == "__main__":
    main()
