"""Network benchmark: what a group's network adds to its start and its delete.

Run as root: ``python3 bench/bench_network.py [--rounds N]``. Everything is
local: a data root in a temporary directory, its own bridge, namespaces that
are removed at the end. Figures are medians (p50) and p90 over N rounds.

- start, public group: a slot from the warm pool, then its filters (what
  ``Supervisor`` does before the containers start): target <= 30 ms;
- start, private group in a virtual network's subnet: its slot from the subnet's
  pool of one (made once a group was placed there): target <= 30 ms;
- delete: ``teardown(wait=False)`` (the group's network is gone; CNI DEL runs in
  the background), beside the synchronous CNI DEL it replaces: target <= 30 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from skiff.core.spec import Port, SubnetPlacement
from skiff.engine.network import firewall
from skiff.engine.network.networks import Networks
from skiff.settings import NetworkSettings

PORTS = [Port(80)]
SUBNET = SubnetPlacement("bench-vnet", "default", "10.231.0.0/24")


def _ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{name:<44} p50 {statistics.median(samples):7.1f} ms   p90 {p90:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="skiff-bench-net-")) / "root"
    net = Networks(root, NetworkSettings(pool_size=4))
    results: dict[str, list[float]] = {k: [] for k in (
        "public start (pool + filters)", "private start (subnet pool + filters)",
        "delete, background CNI DEL (skiff)", "delete, synchronous CNI DEL (before)")}
    try:
        net.prewarm()
        for i in range(args.rounds):
            net.prewarm()  # full pools, as between group starts on a quiet node
            if i:  # the subnet's pool exists once a group was placed there
                net.prewarm(SUBNET)
            public, private = f"pub{i}", f"priv{i}"

            def start_public(g: str = public) -> None:
                net.protect(net.setup(g, g), PORTS)

            def start_private(g: str = private) -> None:
                net.protect(net.setup(g, g, subnet=SUBNET), PORTS, SUBNET)

            results["public start (pool + filters)"].append(_ms(start_public))
            results["delete, background CNI DEL (skiff)"].append(
                _ms(partial(net.teardown, public, wait=False)))
            net.settle()
            results["private start (subnet pool + filters)"].append(_ms(start_private))
            results["delete, synchronous CNI DEL (before)"].append(
                _ms(partial(net.teardown, private)))
    finally:
        with contextlib.suppress(Exception):
            for group in net.list():
                net.teardown(group)
        net.drain_pool()
        net.remove_vnet(SUBNET.vnet)
        net.close()
        firewall.remove_host_guard(net.bridge)
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
    print(f"{args.rounds} rounds")
    for name, samples in results.items():
        print(_summary(name, samples))
    before = statistics.median(results["delete, synchronous CNI DEL (before)"])
    after = statistics.median(results["delete, background CNI DEL (skiff)"])
    print(f"delete: {after:.1f} ms vs {before:.1f} ms synchronous ({after / before:.3f}x)")


if __name__ == "__main__":
    main()
