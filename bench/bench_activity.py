"""Activity log benchmark: what recording a write costs the write.

Run: ``python3 bench/bench_activity.py [--rounds N]`` (no root: the API over the fake
engine, served over real HTTPS on a loopback port, :func:`skiff.testing.inprocess.
fake_https`). The timing client is a keep-alive httpx client in a process of its own.
Two writes are timed, each with the activity log as it is and then with the recording
(:meth:`skiff.api.tracing.Tracing._record`) replaced by a no-op, the same server,
alternating chunks of rounds so that drift hits both alike:

- a PUT of a resource group (a new tag each time): the cheapest write, where the
  log's share is largest;
- a PUT of a container group that changes its tags only (200, a store write, no
  operation).

Figures are medians (p50) and p90 over N rounds each; target: the log adds at most
1 ms (p50) to a write (its own transaction, not fsynced, off the event loop).
Also: the events recorded, and a listing of 1,000 events (five pages of
``eventtypes/management/values``) timed in process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchkit import lean_client, percentiles, running_group

SUB = "00000000-0000-0000-0000-0000000000ac"
RG = f"/subscriptions/{SUB}/resourceGroups/bench"
GROUP = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups/g"
API = "?api-version=2023-05-01"
BODY: dict[str, Any] = {"location": "local", "properties": {
    "osType": "Linux", "containers": [{"name": "c", "properties": {
        "image": "registry.test/busybox:1", "command": ["sleep", "9"],
        "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}


def client_main(conn: Connection, url: str, ca: str, token: str) -> None:
    """The timing client: ``(what, n)`` → n timed PUTs of ``what`` (rg | group)."""
    import httpx

    lean_client()
    headers = {"Authorization": f"Bearer {token}"}
    count = 0
    with httpx.Client(base_url=url, verify=ca, timeout=30, headers=headers) as http:
        while True:
            command = conn.recv()
            if command == "stop":
                return
            what, rounds = command
            samples = []
            for _ in range(rounds):
                count += 1
                tags = {"n": str(count)}
                if what == "rg":
                    path, body = RG, {"location": "local", "tags": tags}
                else:
                    path, body = GROUP, {**BODY, "tags": tags}
                start = time.perf_counter()
                answer = http.put(path + API, json=body)
                samples.append((time.perf_counter() - start) * 1000)
                assert answer.status_code in (200, 201), answer.text
            conn.send(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()

    import httpx

    from skiff.api import tracing
    from skiff.models.activity import iso, parse_filter
    from skiff.testing.inprocess import fake_https

    with tempfile.TemporaryDirectory() as tmp, fake_https(Path(tmp)) as server:
        plane = server.plane
        _, token = plane.store.create_token(SUB, "bench")
        with httpx.Client(base_url=server.url, verify=str(server.ca),
                          headers={"Authorization": f"Bearer {token}"}) as http:
            running_group(http, GROUP, BODY, API)
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=client_main, args=(theirs, server.url, str(server.ca), token))
        child.start()
        real = tracing.Tracing.__dict__["_record"]  # the staticmethod itself

        async def no_record(*_: Any) -> None:
            return None

        samples: dict[tuple[str, bool], list[float]] = {}
        try:
            for what in ("rg", "group"):
                ours.send((what, 50))  # warm
                ours.recv()
            chunk = 50
            for _ in range(max(1, args.rounds // chunk)):
                for what in ("rg", "group"):
                    for logged in (True, False):
                        setattr(tracing.Tracing, "_record",  # noqa: B010
                                real if logged else staticmethod(no_record))
                        ours.send((what, chunk))
                        samples.setdefault((what, logged), []).extend(ours.recv())
            ours.send("stop")
        finally:
            setattr(tracing.Tracing, "_record", real)  # noqa: B010
            child.join(timeout=30)
        recorded = plane.store.count_events(SUB)
        now = time.time()
        query = parse_filter(f"eventTimestamp ge '{iso(now - 3600)}'", now + 5)
        start = time.perf_counter()
        after, listed = None, 0
        for _ in range(5):
            page, after = plane.store.list_events(SUB, query, after=after, limit=200)
            listed += len(page)
        list_ms = (time.perf_counter() - start) * 1000

    report: dict[str, str] = {}
    worst = 0.0
    for what, label in (("rg", "PUT resource group"), ("group", "PUT container group tags")):
        on50, on90 = percentiles(samples[(what, True)])
        off50, off90 = percentiles(samples[(what, False)])
        worst = max(worst, on50 - off50)
        report[f"{label}, logged"] = f"p50 {on50:.3f} ms, p90 {on90:.3f} ms"
        report[f"{label}, not logged"] = f"p50 {off50:.3f} ms, p90 {off90:.3f} ms"
        report[f"{label}, added by the log"] = (f"{on50 - off50:+.3f} ms p50 "
                                                f"(x{on50 / off50:.2f})")
    report["events recorded"] = str(recorded)
    report[f"listing {listed} events (5 pages)"] = f"{list_ms:.1f} ms"
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    sys.exit(0 if worst <= 1.0 else 1)


if __name__ == "__main__":
    main()
