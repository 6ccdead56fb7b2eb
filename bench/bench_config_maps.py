"""Config maps benchmark: what an update of a config map costs, against the redeploy it
replaces.

Run as root: ``python3 bench/bench_config_maps.py [--rounds N] [--keys K]``. Everything is
local: a docker-registry on loopback, a busybox-static image already cached, a warm
network pool. One running group (runc, then a gVisor sandbox), container ``c`` with a
config map of K keys; timed, alternating, N rounds each, on the same engine:

- "in place": ``Supervisor.run`` of a spec whose config map's values changed (one key
  rewritten): the files rewritten, nothing restarted (this change);
- "redeploy": ``Supervisor.run`` of a spec whose command changed (what any change of a
  config map cost before: the containers stopped, made again and started);
- "resync": ``Supervisor.run`` of the same spec again (what the reconcile loop's periodic
  resync costs a group with a config map: its files read and compared), beside
  "resync, no map": the same of a group without one (the baseline).

Figures are medians (p50) and p90; the ratio is redeploy over in place (p50).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import uuid
from dataclasses import replace

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.group.supervisor import Supervisor
from skiff.settings import RuntimeSettings
from skiff.testing.engine import bench_node

# Handles SIGTERM (PID 1 ignores it otherwise), so redeploys need no grace period.
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def _spec(group: GroupSpec, *, tag: int, value: int, keys: int) -> GroupSpec:
    pairs = tuple(sorted((f"key{k}", f"value-{value if k == 0 else 0}\n" * 8)
                         for k in range(keys)))
    container = replace(group.containers[0], command=("sh", "-c", f"{SLEEPER} # {tag}"),
                        config_map=pairs)
    return replace(group, containers=(container,))


def measure(engine: Supervisor, image: str, isolation: str, rounds: int,
            keys: int) -> dict[str, list[float]]:
    base = GroupSpec(id=uuid.uuid4().hex, name="b" + uuid.uuid4().hex[:8],
                     isolation=isolation, containers=(Container(
                         name="c", image=image, resources=Resources(cpu=0.5,
                                                                    memory_gb=0.25)),))
    found: dict[str, list[float]] = {"in place": [], "redeploy": [], "resync": [],
                                     "resync, no map": []}
    tag = value = 0
    spec = _spec(base, tag=tag, value=value, keys=keys)
    assert engine.run(spec).state == "Running"
    plain = replace(base, id=uuid.uuid4().hex, containers=(replace(
        base.containers[0], command=("sh", "-c", SLEEPER)),))
    assert engine.run(plain).state == "Running"
    try:
        for _ in range(rounds):
            for what in found:
                if what == "resync, no map":
                    began = time.perf_counter()
                    engine.run(plain)
                    found[what].append((time.perf_counter() - began) * 1000)
                    continue
                if what == "in place":
                    value += 1
                elif what == "redeploy":
                    tag += 1
                spec = _spec(base, tag=tag, value=value, keys=keys)
                began = time.perf_counter()
                view = engine.run(spec)
                found[what].append((time.perf_counter() - began) * 1000)
                assert view.containers[0].current.state == "Running", view
    finally:
        engine.delete(base.id)
        engine.delete(plain.id)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keys", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with bench_node(runtime=RuntimeSettings(stop_grace_s=1)) as (engine, image):
        for isolation in ("container", "sandbox"):
            if isolation == "sandbox" and shutil.which("runsc") is None:
                continue
            results[isolation] = measure(engine, image, isolation, args.rounds, args.keys)
    print(f"{args.keys} keys, {args.rounds} rounds")
    print(f"{'what':<28} {'p50':>9} {'p90':>9}")
    for isolation, found in results.items():
        for what, samples in found.items():
            p50, p90 = _percentiles(samples)
            print(f"{isolation + ': ' + what:<28} {p50:>7.2f}ms {p90:>7.2f}ms")
        ratio = statistics.median(found["redeploy"]) / statistics.median(found["in place"])
        print(f"{isolation}: redeploy / in place (p50): {ratio:.0f}x")


if __name__ == "__main__":
    main()
