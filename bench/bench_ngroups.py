"""NGroups benchmark: what one round of the NGroups controller costs once its NGroups
have settled, the work `skiff serve` does every second for them.

Run: ``python3 bench/bench_ngroups.py [--rounds N] [--ngroups N] [--members N]`` (no
root: a fake plane, real SQLite store, the FakeEngine). Figures are medians and p90 over
N rounds of :meth:`skiff.control.ngroups.NGroups.run_round`:

- the baseline: a round with no NGroup stored (one store read);
- a round with ``--ngroups`` NGroups of ``--members`` running members each (each member's
  group read from the store and its view from the engine), and the ratio to the baseline.

A settled round must stay far below the controller's 1 s interval.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from skiff.control.ngroups import NGroups
from skiff.testing.inprocess import fake_plane

PROFILE = ("/subscriptions/bench/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
           "containerGroupProfiles/p")


def profile(subscription: str, profile_id: str, revision: int | None) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": {
            "image": "registry.test/app:1", "command": ["sh", "-c", "sleep 3600"],
            "resources": {"requests": {"cpu": 0.01, "memoryInGB": 0.01}}}}]}}


def ngroup(members: int) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "elasticProfile": {"desiredCount": members},
        "containerGroupProfiles": [{"resource": {"id": PROFILE}, "revision": 1}]}}


def timed(controller: NGroups, rounds: int) -> list[float]:
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        controller.run_round()
        runs.append((time.perf_counter() - started) * 1000)
    return runs


def report(what: str, runs: list[float]) -> float:
    median = statistics.median(runs)
    p90 = statistics.quantiles(runs, n=10)[-1]
    print(f"{what}: median {median:.2f} ms, p90 {p90:.2f} ms")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--members", type=int, default=10)
    args = parser.parse_args()
    from skiff.models.ngroups import parse_ngroup

    with tempfile.TemporaryDirectory() as root, fake_plane(Path(root)) as plane:
        controller = plane.ngroups
        assert controller is not None
        controller.profiles = profile
        plane.engine.node_capacity = type(plane.engine.node_capacity)(  # type: ignore[attr-defined]
            cpu_cores=1000.0, memory_gb=4000.0)
        base = report("round, no NGroup", timed(controller, args.rounds))
        for i in range(args.ngroups):
            body = parse_ngroup(ngroup(args.members), subscription="bench", name=f"ng{i}",
                                default_location="westeurope")
            plane.store.put_ngroup("bench", "rg", f"ng{i}", "westeurope", body, {})
        deadline = time.monotonic() + 120
        while any(r.provisioning_state != "Succeeded" for r in plane.store.list_ngroups()):
            controller.run_round()
            if time.monotonic() > deadline:
                raise SystemExit("the NGroups did not settle in 2 minutes")
            time.sleep(0.05)
        settled = report(f"round, {args.ngroups} NGroups x {args.members} members settled",
                         timed(controller, args.rounds))
        print(f"ratio to the baseline: {settled / base:.0f}x; per member: "
              f"{(settled - base) / (args.ngroups * args.members):.3f} ms")


if __name__ == "__main__":
    main()
