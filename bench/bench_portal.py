"""Portal benchmark: what the groups list page costs the server with many groups stored.

Run: ``python3 bench/bench_portal.py [--rounds N] [--stored N]`` (no root: the API and
the portal serve the FakeEngine over real HTTPS on loopback,
``skiff.testing.inprocess.fake_https``, groups seeded in the store as a PUT leaves
them). A client in a process of its own, signed in to the portal (its session cookie),
times over one keep-alive connection, each a median (p50) and p90 over N rounds:

- a static file of the portal (``portal.css``): the baseline of a request's cost;
- the API's list of every group (every ``nextLink`` page of the node's page size, as az
  reads it; the list page asks ``$top=1000``, one page);
- the list page (HTML, its first page: the list, filter, sort, the shown page's 50 groups
  read in one batched request), and sorted by CPU, and filtered;

so the page's cost shows beside the baseline and the list it is made from (ratios to the
baseline). This is the server's share of a page; ``bench_portal_browser.py`` times the
first load in Chromium (navigation timing).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import ssl
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from skiff.portal import mount
from skiff.server import settle_heap
from skiff.testing.inprocess import fake_https

API = "api-version=2023-05-01"
SUB = "many"


def group_body(cpu: float) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "containers": [{"name": "main", "properties": {
            "image": "registry.test/app:1", "command": ["sh", "-c", "sleep 3600"],
            "resources": {"requests": {"cpu": cpu, "memoryInGB": 0.5}}}}]}}


def client_times(url: str, ca: str, token: str, count: int, rounds: int
                 ) -> dict[str, list[float]]:
    """Sign in, then time each request ``rounds`` times: ms each, by what it was."""
    targets = {
        "static file (portal.css)": "/portal/static/portal.css",
        f"API list of {count} groups (every page)": "",
        f"list page, {count} groups": "/portal/groups",
        f"list page, {count} groups, by CPU descending": "/portal/groups?sort=cpu&order=desc",
        f"list page, {count} groups, filtered": "/portal/groups?q=rg-3",
    }
    times: dict[str, list[float]] = {what: [] for what in targets}
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca),
                      timeout=60) as http:
        signed = http.post("/portal/signin", data={"token": token},
                           headers={"Origin": url})
        if signed.status_code != 303:
            raise RuntimeError(f"sign-in answered {signed.status_code}")
        for _ in range(rounds):
            for what, path in targets.items():
                begun = time.perf_counter()
                if path:
                    answer = http.get(path)
                    if answer.status_code != 200 or (path.startswith("/portal/groups")
                                                     and "group" not in answer.text):
                        raise RuntimeError(f"{path} answered {answer.status_code}")
                else:
                    found, link = 0, f"/subscriptions/{SUB}/providers/Microsoft." \
                                     f"ContainerInstance/containerGroups?{API}"
                    while link:
                        doc = http.get(link, headers={"Authorization": f"Bearer {token}"}
                                       ).json()
                        found += len(doc["value"])
                        link = doc.get("nextLink")
                    if found != count:
                        raise RuntimeError(f"listed {found} groups, not {count}")
                times[what].append((time.perf_counter() - begun) * 1000)
    return times


def _row(what: str, samples: list[float], baseline: float) -> str:
    ordered = sorted(samples)
    p50, p90 = statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                       int(len(ordered) * 0.9))]
    return f"{what:<52} {p50:>8.1f}ms {p90:>8.1f}ms  {p50 / baseline:>7.1f}x"


def measure(rounds: int, stored: int) -> dict[str, list[float]]:
    """Serve the portal over ``stored`` seeded groups; the client's times, by request."""
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="skiff-bench-")))
        server = stack.enter_context(fake_https(work / "root"))
        client = stack.enter_context(
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))
        mount(server.app)
        store = server.plane.store
        token = store.create_token(SUB, "bench")[1]
        for i in range(stored):
            store.put_group(SUB, f"rg-{i % 10}", f"g-{i:05d}", "westeurope",
                            group_body(0.01 * (i % 7 + 1)), {})
        settle_heap()  # as skiff serve does once started
        found: dict[str, list[float]] = client.submit(
            client_times, server.url, str(server.ca), token, stored, rounds).result()
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="requests of each kind")
    parser.add_argument("--stored", type=int, default=1000, help="groups seeded")
    options = parser.parse_args()
    times = measure(options.rounds, options.stored)
    baseline = statistics.median(next(iter(times.values())))
    print(f"{'what':<52} {'p50':>10} {'p90':>10}  {'p50/static':>8}")
    for what, samples in times.items():
        print(_row(what, samples, baseline))


if __name__ == "__main__":
    main()
