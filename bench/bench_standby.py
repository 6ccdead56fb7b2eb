"""Standby pool benchmark: a group PUT that claims a ready member, against a normal create
and ``podman run -d``, in one run.

Run as root: ``python3 bench/bench_standby.py [--rounds N]``. The set-up is
bench_api.py's: a docker-registry on loopback with a busybox image, a real skiff server
(HTTPS, store, reconcile loop, engine) in this process, the timing client in a process
of its own, podman with its own configuration and storage for the baseline. Here the
server also has a standby pool (``Microsoft.StandbyPool``, api-version 2025-03-01) of
``--ready`` members of a 1-container container group profile. Figures are p50 and p90
over N rounds:

- claim: a group PUT naming the pool (``standbyPoolProfile``), to its answer, which
  must say ``Succeeded`` and ``Running`` (the answer *is* PUT → Running): target p50
  <= 15 ms. Between rounds (untimed) the pool is let refill, and the group is deleted;
- PUT → Running of the same group without a pool (PUT, the operation polled, a GET), as
  bench_api.py measures it;
- ``podman run -d --rm IMAGE sleep 3600``, before and after.

Everything is removed at the end, also when the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any

from bench_api import (
    SUB,
    Api,
    _client,
    _load,
    _name,
    client_creates,
    group_body,
    local_bench,
)
from benchkit import percentiles

TARGET_MS = 15.0
POOL = (f"/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.StandbyPool/"
        f"standbyContainerGroupPools/pool")
POOL_API = "api-version=2025-03-01"
ACI_API = "api-version=2025-09-01"


def _ready(api: Api) -> int:
    view = api.http.get(f"{POOL}/runtimeViews/latest?{POOL_API}").json()
    counts = view["properties"]["instanceCountSummary"][0]["instanceCountsByState"]
    return int(next(c["count"] for c in counts if c["state"] == "Running"))


def _wait_ready(api: Api, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _ready(api) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pool has not {count} ready members after {timeout_s} s")
        time.sleep(0.05)


def client_claims(rounds: int, ready: int) -> list[float]:
    """A claim PUT, ``rounds`` times, each with a full pool; each group deleted after."""
    api: Api = _client["api"]
    times = []
    for _ in range(rounds):
        _wait_ready(api, ready)
        name = _name("claim")
        body = {"location": "local", "properties": {
            "containers": [{"name": "main", "properties": {}}],
            "standbyPoolProfile": {"id": POOL}}}
        start = time.perf_counter()
        answer = api.http.put(f"{api.group_path('bench', name)}?{ACI_API}", json=body)
        elapsed = (time.perf_counter() - start) * 1e3
        props: dict[str, Any] = answer.json().get("properties", {})
        if answer.status_code != 201 or not props.get("isCreatedFromStandbyPool") \
                or props.get("instanceView", {}).get("state") != "Running":
            raise RuntimeError(f"claim {name}: {answer.status_code} {answer.text[:300]}")
        times.append(elapsed)
        api.delete("bench", name)
    return times


def _row(what: str, samples: list[float], target: str = "") -> str:
    p50, p90 = percentiles(samples)
    return f"{what:<44} {p50:>8.1f}ms {p90:>8.1f}ms  {target}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--ready", type=int, default=2, help="the pool's maxReadyCapacity")
    args = parser.parse_args()
    with local_bench() as bench, contextlib.ExitStack() as cleanup:
        image, podman, remote = bench.image, bench.podman, bench.remote
        load_before = bench.load_before
        api = Api(bench.endpoint)
        cleanup.callback(api.close)
        profile = (f"/subscriptions/{SUB}/resourceGroups/bench/providers/"
                   f"Microsoft.ContainerInstance/containerGroupProfiles/sleeper")
        made = api.http.put(f"{profile}?{ACI_API}", json=group_body(image))
        if made.status_code != 201:
            raise RuntimeError(f"profile: {made.status_code} {made.text[:300]}")
        made = api.http.put(f"{POOL}?{POOL_API}", json={"location": "local", "properties": {
            "elasticityProfile": {"maxReadyCapacity": args.ready},
            "containerGroupProperties": {"containerGroupProfile": {"id": profile}}}})
        if made.status_code != 201:
            raise RuntimeError(f"pool: {made.status_code} {made.text[:300]}")
        cleanup.callback(lambda: api.http.delete(f"{POOL}?{POOL_API}"))
        remote(client_claims, 3, args.ready)  # warm-up of the claim path
        podman_before = podman.runs(image, args.rounds)
        claims = remote(client_claims, args.rounds, args.ready)
        creates = remote(client_creates, image, args.rounds)
        podman_after = podman.runs(image, args.rounds)
        load_after = _load()

    claim_p50 = statistics.median(claims)
    podman_p50 = statistics.median(podman_before + podman_after)
    create_p50 = statistics.median(creates)
    print(f"{'what':<44} {'p50':>10} {'p90':>10}  target")
    print(_row("podman run -d --rm (baseline, before)", podman_before))
    print(_row("claim PUT → Running (standby pool)", claims,
               f"p50 <= {TARGET_MS:.0f} ms: {'met' if claim_p50 <= TARGET_MS else 'MISSED'}"))
    print(_row("PUT → Running, normal create", creates))
    print(_row("podman run -d --rm (baseline, after)", podman_after))
    print(f"claim vs normal create (p50): {claim_p50 / create_p50:.3f}x; "
          f"claim vs podman run -d (p50): {claim_p50 / podman_p50:.3f}x")
    print(f"machine: before, {load_before}; after, {load_after}")


if __name__ == "__main__":
    main()
