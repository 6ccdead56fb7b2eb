"""Churn benchmark: one tenant's create while another tenant deletes groups that ignore SIGTERM.

Run as root: ``python3 bench/bench_churn.py [--rounds N] [--groups N] [--grace S]``.
Issue 11's mark: "a create is Running in <= 1 s while another tenant deletes 8
groups that ignore SIGTERM". Everything is local: a docker-registry on
loopback with a busybox-static image, a real skiff server (HTTPS, store,
reconcile loop, engine) on a loopback port with the stop grace given (10 s,
skiff's default), and two tenants, each with a token bound to its own
subscription. Each round, in turn:

- baseline: tenant B creates a group and waits until it runs, with nothing else
  in flight;
- churn: tenant A creates N groups whose PID 1 ignores SIGTERM (not timed), then
  deletes them all; at once, tenant B creates a group and waits until it runs,
  while A's deletes wait out their grace; then A's groups are awaited gone.

"Creates and waits until it runs" is the PUT, its ``Azure-AsyncOperation``
polled in a tight loop until ``Succeeded``, and a GET that shows the container
``Running``. Figures are medians (p50) and p90 over the rounds: B's create with
no deletes (the baseline, measured in the same run) and behind A's deletes, their
ratio, and how long A's N deletes took (target: about one grace, as they wait in
parallel). The client runs in this process. Everything is removed at the end,
also when the benchmark fails: groups, server, registry, the work directory.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from skiff.api.context import PROVIDER
from skiff.testing.images import ImageSpec, Layout, busybox_layer, push
from skiff.testing.registry import running_registry
from skiff.testing.server import RunningServer, running_server

API = "api-version=2023-05-01"
TENANT_A, TENANT_B = "churn-tenant-a", "churn-tenant-b"
# Handles SIGTERM, so that B's own deletes take no grace.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
# PID 1 ignores SIGTERM: its delete waits out the whole grace, then SIGKILL.
STUBBORN = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
TARGET_S = 1.0


def group_body(image: str, command: list[str]) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "restartPolicy": "Never",
        "containers": [{"name": "main", "properties": {
            "image": image, "command": command,
            "resources": {"requests": {"cpu": 0.02, "memoryInGB": 0.05}}}}]}}


class Tenant:
    """A keep-alive HTTPS client holding a token bound to one subscription."""

    def __init__(self, skiff: RunningServer, subscription: str) -> None:
        _, token = skiff.server.plane.store.create_token(subscription, subscription)
        self.subscription = subscription
        self.http = httpx.Client(base_url=skiff.url, timeout=60,
                                 verify=ssl.create_default_context(cafile=skiff.ca),
                                 headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.http.close()

    def path(self, name: str) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/churn/providers/"
                f"{PROVIDER}/containerGroups/{name}?{API}")

    @staticmethod
    def _ok(response: httpx.Response, *codes: int) -> httpx.Response:
        if response.status_code not in codes:
            raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                               f"{response.status_code} {response.text[:300]}")
        return response

    def wait(self, response: httpx.Response, timeout_s: float = 60) -> None:
        """Poll the answer's Azure-AsyncOperation URL until it says Succeeded."""
        url = response.headers["Azure-AsyncOperation"]
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._ok(self.http.get(url), 200).json()
            if status["status"] == "Succeeded":
                return
            if status["status"] != "InProgress":
                raise RuntimeError(f"operation {status['status']}: {status.get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"operation still InProgress after {timeout_s} s")

    def create(self, name: str, body: dict[str, Any]) -> float:
        """PUT, wait for the operation, GET showing the container Running: seconds taken."""
        started = time.perf_counter()
        self.wait(self._ok(self.http.put(self.path(name), json=body), 201))
        props = self._ok(self.http.get(self.path(name)), 200).json()["properties"]
        took = time.perf_counter() - started
        state = props["containers"][0]["properties"]["instanceView"]["currentState"]["state"]
        if props["provisioningState"] != "Succeeded" or state != "Running":
            raise RuntimeError(f"{name}: {props['provisioningState']}, container {state}")
        return took

    def delete(self, name: str) -> httpx.Response:
        return self._ok(self.http.delete(self.path(name)), 200, 202, 204)

    def gone(self, names: list[str], timeout_s: float) -> None:
        """Wait until every group of ``names`` answers 404."""
        deadline = time.monotonic() + timeout_s
        pending = list(names)
        while pending:
            pending = [n for n in pending if self.http.get(self.path(n)).status_code != 404]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} groups still there after {timeout_s} s")
            time.sleep(0.05)


def one_round(a: Tenant, b: Tenant, image: str, groups: int,
              grace_s: float) -> tuple[float, float, float]:
    """(B's create alone, B's create behind A's deletes, A's deletes), in seconds."""
    mine = f"b-{uuid.uuid4().hex[:8]}"
    alone = b.create(mine, group_body(image, SLEEPER))
    b.delete(mine)
    b.gone([mine], timeout_s=30)

    stubborn = [f"a-{uuid.uuid4().hex[:8]}" for _ in range(groups)]
    for name in stubborn:
        a.create(name, group_body(image, STUBBORN))
    deleting = time.perf_counter()
    for name in stubborn:
        a.delete(name)
    mine = f"b-{uuid.uuid4().hex[:8]}"
    behind = b.create(mine, group_body(image, SLEEPER))
    a.gone(stubborn, timeout_s=grace_s * groups + 30)
    deletes = time.perf_counter() - deleting
    b.delete(mine)
    b.gone([mine], timeout_s=30)
    return alone, behind, deletes


def _p(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def report(rows: list[tuple[float, float, float]], groups: int, grace: float) -> None:
    alone = [r[0] for r in rows]
    behind = [r[1] for r in rows]
    deletes = [r[2] for r in rows]
    print(f"\n{'what':<52} {'p50':>9} {'p90':>9}  target")
    p50, p90 = _p(alone)
    print(f"{'B create -> Running, nothing else (baseline)':<52} {p50:>8.3f}s {p90:>8.3f}s")
    p50, p90 = _p(behind)
    verdict = "met" if p50 <= TARGET_S else "MISSED"
    print(f"{f'B create -> Running, A deleting {groups} stubborn':<52} {p50:>8.3f}s "
          f"{p90:>8.3f}s  p50 <= {TARGET_S:.0f} s: {verdict}")
    p50, p90 = _p(deletes)
    print(f"{f'A deletes {groups} (grace {grace:g} s) -> all gone':<52} {p50:>8.2f}s "
          f"{p90:>8.2f}s  about one grace ({grace:g} s), not {groups} in turn")
    print(f"ratio behind/alone (p50): {statistics.median(behind) / statistics.median(alone):.2f}x"
          f" over {len(rows)} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--groups", type=int, default=8,
                        help="tenant A's groups that ignore SIGTERM, deleted at once")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="the server's stop grace in seconds (skiff's default: 10)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C does, through the clean-ups below.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-churn-"))
    rows: list[tuple[float, float, float]] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        layout = Layout(work / "layout")
        layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer])))
        registry = cleanup.enter_context(running_registry(work / "registry"))
        push(work / "layout", "1", registry.host, "bench/busybox")
        image = f"{registry.host}/bench/busybox:1"
        skiff = cleanup.enter_context(running_server(work / "root", pool_size=4,
                                                     stop_grace_s=args.grace,
                                                     allow=(registry.host,)))
        a, b = Tenant(skiff, TENANT_A), Tenant(skiff, TENANT_B)
        cleanup.callback(a.close)
        cleanup.callback(b.close)
        warm = f"b-{uuid.uuid4().hex[:8]}"  # the image pull, caches, the network pool
        b.create(warm, group_body(image, SLEEPER))
        b.delete(warm)
        b.gone([warm], timeout_s=30)
        for i in range(args.rounds):
            rows.append(one_round(a, b, image, args.groups, args.grace))
            print(f"round {i + 1}/{args.rounds}: alone {rows[-1][0]:.3f} s, behind "
                  f"{args.groups} deletes {rows[-1][1]:.3f} s, the deletes {rows[-1][2]:.1f} s",
                  flush=True)
    report(rows, args.groups, args.grace)


if __name__ == "__main__":
    main()
