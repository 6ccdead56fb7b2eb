"""Group engine benchmark: how fast a group starts, and how many run at once.

Run as root: ``python3 bench/bench_groups.py [--rounds N] [--groups N]``.
Everything is local: a docker-registry on loopback, a busybox-static image
already cached, a warm network pool. Figures are medians (p50) and p90 over
N rounds, beside the floor measured in the same run: a bare ``runc run -d``
of a prepared bundle (no image check, no network, no monitor).

- "run group" → the container's process running, 1 container: target p50 <= 60 ms;
- the same for a 3-container group: target p50 <= 120 ms;
- N single-container groups running at once: skiff's own RSS (target
  <= 150 MB with 200 groups), conmon's RSS reported separately.
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


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _conmon_rss_kb() -> tuple[int, int]:
    pids = subprocess.run(["pgrep", "-x", "conmon"], capture_output=True, text=True).stdout.split()
    return len(pids), sum(_rss_kb(int(p)) for p in pids)


def _spec(image: str, containers: int) -> GroupSpec:
    name = "b" + uuid.uuid4().hex[:8]
    return GroupSpec(id=uuid.uuid4().hex, name=name, containers=tuple(
        Container(name=f"c{i}", image=image, command=SLEEPER,
                  resources=Resources(cpu=0.1, memory_gb=0.05)) for i in range(containers)))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def bare_runc(work: Path, rounds: int) -> list[float]:
    """The floor: ``runc run -d`` of a prepared busybox bundle."""
    bundle = Path(tempfile.mkdtemp(dir=work, prefix="bundle-"))
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "sh").symlink_to("busybox")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/busybox", "sleep", "3600"])
    (bundle / "config.json").write_text(json.dumps(spec))
    times = []
    for i in range(rounds):
        cid = f"floor{i}-{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1e3)
        subprocess.run(["runc", "delete", "-f", cid], check=False, capture_output=True)
    return times


def group_starts(engine: Supervisor, image: str, containers: int, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        spec = _spec(image, containers)
        start = time.perf_counter()
        view = engine.run(spec)
        times.append((time.perf_counter() - start) * 1e3)
        assert all(c.current.state == "Running" for c in view.containers), view
        engine.delete(spec.id)
    return times


def many_groups(engine: Supervisor, image: str, count: int) -> dict[str, float]:
    ids = []
    start = time.perf_counter()
    for _ in range(count):
        spec = _spec(image, 1)
        engine.run(spec)
        ids.append(spec.id)
    took = time.perf_counter() - start
    running = sum(1 for gid in ids if engine.view(gid).state == "Running")
    conmons, conmon_kb = _conmon_rss_kb()
    skiff_kb = _rss_kb(int(Path("/proc/self/stat").read_text().split()[0]))
    start = time.perf_counter()
    for gid in ids:
        engine.delete(gid)
    return {"groups": count, "running": running, "start_all_s": took,
            "delete_all_s": time.perf_counter() - start, "skiff_rss_mb": skiff_kb / 1024,
            "conmons": conmons, "conmon_rss_mb": conmon_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--groups", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    try:
        with (supervising(Settings(data_root=work / "root"), pool_size=4) as engine,
              cached_busybox(engine, work) as image):
            group_starts(engine, image, 1, 3)  # warm-up: caches, pool, seccomp profile
            floor = bare_runc(work, args.rounds)
            one = group_starts(engine, image, 1, args.rounds)
            three = group_starts(engine, image, 3, args.rounds)
            floor_after = bare_runc(work, args.rounds)
            crowd = many_groups(engine, image, args.groups) if args.groups else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':<44} {'p50':>8} {'p90':>8}")
    for what, samples in (("bare runc run -d (floor, before)", floor),
                          ("run group, 1 container", one),
                          ("run group, 3 containers", three),
                          ("bare runc run -d (floor, after)", floor_after)):
        p50, p90 = _percentiles(samples)
        print(f"{what:<44} {p50:>6.1f}ms {p90:>6.1f}ms")
    floor_p50 = statistics.median(floor + floor_after)
    print(f"ratio to the floor (p50): 1 container {statistics.median(one) / floor_p50:.2f}x, "
          f"3 containers {statistics.median(three) / floor_p50:.2f}x")
    if crowd:
        print(json.dumps(crowd, indent=2))


if __name__ == "__main__":
    main()
