"""Portal benchmark in the browser: each page's first load, as Chromium times it, with
1,000 container groups stored.

Run: ``python3 bench/bench_portal_browser.py --rounds 20`` (no root; ``--stored N``
groups, 1,000 by default; ``--pages list,console``: only those pages, beside the static
baseline; about two minutes on an idle 2-core machine, most of it the 1,000 PUTs). The
API and the portal serve the FakeEngine over real HTTPS on loopback,
``skiff.testing.inprocess.fake_https``, its quotas and its node raised so that the
groups, made by PUTs to the API, all run). A process of its own drives Debian's
Chromium (``/usr/bin/chromium``, through Playwright: nothing downloaded) and signs in
through the portal's sign-in page; then, over N rounds (one more before them, not
counted: the server's templates compiled, Chromium's own first start), each page is
loaded in a new browser context (the session's cookie, an empty cache, a new
connection) and its navigation timing read (``performance.getEntriesByType
('navigation')[0]``, milliseconds from the navigation's start):

- a static page (a few lines of HTML with the portal's stylesheet, as every portal page
  links it), served from files by the same server: the baseline of a first load;
- the sign-in page; the groups list (its first page, sorted by CPU, filtered); a group's
  page; the create page; a container's console.

For each, the median (p50) and p90 of the response's first byte (``responseStart``),
``domInteractive``, ``domContentLoadedEventEnd`` and ``loadEventEnd``, and the load's
ratio to the static page's, against issue 17's targets: any page's first load (the end
of its navigation's load event) in ≤ 300 ms, the list interactive (``domInteractive``)
in ≤ 1 s, each judged at the p50 and at the p90. The machine's load average, before and
after, is printed beside them: on a shared machine, compare a page with the static page
of the same run rather than with the targets alone. ``bench_portal.py`` times the
server's share of the same pages with an HTTP client.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import ssl
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.staticfiles import StaticFiles

from benchkit import lean_client, percentiles
from skiff.core.engine import NodeCapacity
from skiff.portal import mount
from skiff.server import settle_heap
from skiff.settings import QuotaSettings, Settings
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import fake_https
from skiff.testing.waiting import eventually

CHROMIUM = "/usr/bin/chromium"
API = "api-version=2023-05-01"
SUB = "many"
GROUPS = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
#: The group whose pages are loaded (made as the others, so as busy).
SHOWN = ("rg-1", "g-00001")
#: Where the baseline page is served (by Starlette's StaticFiles, as the portal's files).
STATIC = "/bench-static"
BASELINE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>static · skiff</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/portal/static/portal.css">
</head><body><main><h1>A static page</h1><p>The baseline of a first load.</p></main>
</body></html>
"""
#: What navigation timing tells, in the order shown.
MARKS = ("responseStart", "domInteractive", "domContentLoadedEventEnd", "loadEventEnd")
#: Issue 17's targets, ms: every page's first load; the list interactive.
FIRST_LOAD_MS = 300.0
INTERACTIVE_MS = 1000.0


@dataclass(frozen=True)
class Target:
    """A page loaded each round: what it is, its path, a text it must show."""

    key: str
    what: str
    path: str
    shows: str
    #: Whether it is the list (held to the interactive target, too).
    listing: bool = False


def targets(count: int, keys: frozenset[str] | None = None) -> list[Target]:
    """The pages loaded (``keys``: only those, beside the static page; None: all)."""
    rg, name = SHOWN
    group = f"/portal/groups/{SUB}/{rg}/{name}"
    every = [
        Target("static", "static page (baseline)", f"{STATIC}/static.html", "A static page"),
        Target("signin", "sign-in page", "/portal/signin", "Token"),
        Target("list", f"list, {count} groups (first page)", "/portal/groups",
               f"{count} groups", listing=True),
        Target("sorted", f"list, {count} groups, by CPU descending",
               "/portal/groups?sort=cpu&order=desc", f"{count} groups", listing=True),
        Target("filtered", f"list, {count} groups, filtered", "/portal/groups?q=rg-3",
               f"{count // 10} groups", listing=True),
        Target("group", "a group's page", group, name),
        Target("create", "create page", "/portal/create", "Create container group"),
        Target("console", "a container's console", f"{group}/containers/main/console",
               "Console: main"),
    ]
    return [t for t in every if keys is None or t.key == "static" or t.key in keys]


#: The pages' keys, for ``--pages``.
PAGES = tuple(t.key for t in targets(0))


def group_body(cpu: float) -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "containers": [{"name": "main", "properties": {
            "image": "registry.test/app:1", "command": ["sh", "-c", "sleep 3600"],
            "resources": {"requests": {"cpu": cpu, "memoryInGB": 0.5}}}}]}}


def raised(stored: int) -> Settings:
    """A node whose subscriptions may hold and create ``stored`` groups (and more)."""
    room = 2 * stored
    return Settings(quotas=QuotaSettings(
        container_groups=room, standard_cores=room, creates_per_5_minutes=room,
        creates_per_hour=room))


def seed(url: str, ca: Path, token: str, stored: int) -> None:
    """``stored`` groups PUT through the API (in 10 resource groups, of 7 sizes); back
    once every one runs."""
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca)),
                      headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        for i in range(stored):
            path = f"/subscriptions/{SUB}/resourceGroups/rg-{i % 10}/providers/" \
                   f"Microsoft.ContainerInstance/containerGroups/g-{i:05d}?{API}"
            made = http.put(path, json=group_body(0.01 * (i % 7 + 1)))
            if made.status_code not in (200, 201):
                raise RuntimeError(f"PUT g-{i:05d} answered {made.status_code}: {made.text}")

        def running() -> int:
            found, link = 0, f"{GROUPS}?{API}"
            while link:
                doc = http.get(link).json()
                found += sum(1 for g in doc["value"]
                             if g["properties"]["provisioningState"] == "Succeeded")
                link = doc.get("nextLink")
            return found

        eventually(running, until=lambda n: n == stored, what=f"{stored} groups run",
                   timeout_s=600, interval_s=1)


def browser_times(url: str, token: str, count: int, rounds: int,
                  keys: frozenset[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """Sign in through the sign-in page, then load each page (of ``keys``) in a new
    context each round: its navigation timing (ms), by page and mark."""
    from playwright.sync_api import sync_playwright

    lean_client()
    pages = targets(count, keys)
    times: dict[str, dict[str, list[float]]] = {t.what: {mark: [] for mark in MARKS}
                                                for t in pages}
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM,
                                          args=["--no-sandbox", "--disable-gpu"])
        try:
            signing = chromium.new_context(ignore_https_errors=True, base_url=url)
            page = signing.new_page()
            page.goto("/portal/signin")
            page.get_by_label("Token").fill(token)
            with page.expect_navigation(wait_until="load"):
                page.get_by_role("button", name="Sign in", exact=True).click()
            if not page.url.endswith("/portal/groups"):
                raise RuntimeError(f"signing in led to {page.url}")
            state = signing.storage_state()
            signing.close()
            for round_ in range(rounds + 1):
                for target in pages:
                    found = _load(chromium, url, state, target)
                    if round_:  # the first round warms up
                        for mark in MARKS:
                            times[target.what][mark].append(found[mark])
        finally:
            chromium.close()
    return times


#: How Playwright words a navigation Chromium aborted because the host's network changed
#: (another process adding interfaces): the error, or the navigation replaced by a retry.
_NETWORK_CHANGED = ("ERR_NETWORK_CHANGED", "is interrupted by another navigation to")
#: How long a load is tried again while the host's network keeps changing.
_RETRY_S = 30.0


def _load(chromium: Any, url: str, state: Any, target: Target) -> dict[str, float]:
    """``target`` loaded in a new context of the session: its navigation timing. A load
    Chromium aborted because the host's network changed is made again, in a new context
    (still a first load), for up to :data:`_RETRY_S`."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + _RETRY_S
    while True:
        try:
            return _load_once(chromium, url, state, target)
        except Error as exc:
            if not any(sign in str(exc) for sign in _NETWORK_CHANGED) \
                    or time.monotonic() > deadline:
                raise


def _load_once(chromium: Any, url: str, state: Any, target: Target) -> dict[str, float]:
    context = chromium.new_context(ignore_https_errors=True, base_url=url,
                                   storage_state=state, viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        answer = page.goto(target.path, wait_until="load")
        if answer is None or answer.status != 200 or not page.url.endswith(target.path):
            raise RuntimeError(f"{target.path} answered {answer and answer.status} at "
                               f"{page.url}")
        if target.shows not in page.inner_text("body"):
            raise RuntimeError(f"{target.path} does not show {target.shows!r}")
        # Playwright reports the load as its event starts; loadEventEnd is set after.
        page.wait_for_function(
            "performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
        found: dict[str, float] = page.evaluate(
            "marks => { const n = performance.getEntriesByType('navigation')[0];"
            " return Object.fromEntries(marks.map(m => [m, n[m]])); }", list(MARKS))
        errors = [e for e in errors if "ERR_NETWORK_CHANGED" not in e]
        if errors:
            raise RuntimeError(f"{target.path}: {errors}")
        return found
    finally:
        context.close()


def measure(rounds: int, stored: int, keys: frozenset[str] | None = None
            ) -> dict[str, dict[str, list[float]]]:
    """Serve the portal over ``stored`` running groups; each page's timings, by mark."""
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="skiff-bench-")))
        server = stack.enter_context(fake_https(work / "root", settings=raised(stored)))
        engine = server.plane.engine
        assert isinstance(engine, FakeEngine)
        engine.node_capacity = NodeCapacity(cpu_cores=stored, memory_gb=stored)
        mount(server.app)
        (work / "static").mkdir()
        (work / "static" / "static.html").write_text(BASELINE_HTML)
        server.app.mount(STATIC, StaticFiles(directory=work / "static"), name="bench-static")
        token = server.plane.store.create_token(SUB, "bench")[1]
        seed(server.url, server.ca, token, stored)
        settle_heap()  # as skiff serve does once started (its groups adopted)
        client = stack.enter_context(
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))
        found: dict[str, dict[str, list[float]]] = client.submit(
            browser_times, server.url, token, stored, rounds, keys).result()
        return found


def report(times: dict[str, dict[str, list[float]]], stored: int) -> list[str]:
    """The table's lines, and a verdict per page against the targets."""
    listing = {t.what for t in targets(stored) if t.listing}
    baseline = percentiles(next(iter(times.values()))["loadEventEnd"])[0]
    lines = [f"{'page':<40} " + " ".join(f"{m.replace('EventEnd', ''):>17}" for m in MARKS)
             + f" {'load/static':>11}  targets (p50, p90)",
             f"{'':<40} " + " ".join(f"{'p50 / p90 ms':>17}" for _ in MARKS)]
    for what, marks in times.items():
        cells = []
        for mark in MARKS:
            p50, p90 = percentiles(marks[mark])
            cells.append(f"{p50:>8.1f} /{p90:>7.1f}")
        verdict = f"load ≤ {FIRST_LOAD_MS:.0f}: " + _verdict(marks["loadEventEnd"],
                                                             FIRST_LOAD_MS)
        if what in listing:
            verdict += f"; interactive ≤ {INTERACTIVE_MS:.0f}: " + _verdict(
                marks["domInteractive"], INTERACTIVE_MS)
        ratio = percentiles(marks["loadEventEnd"])[0] / baseline
        lines.append(f"{what:<40} " + " ".join(cells) + f" {ratio:>10.1f}x  {verdict}")
    return lines


def _verdict(samples: list[float], target: float) -> str:
    """Whether the p50 and the p90 of ``samples`` meet ``target``, in words."""
    return ", ".join("met" if p <= target else "MISSED" for p in percentiles(samples))


def _load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="loads of each page")
    parser.add_argument("--stored", type=int, default=1000, help="groups made")
    parser.add_argument("--pages", default=",".join(PAGES[1:]),
                        help=f"the pages loaded, comma-separated, of {', '.join(PAGES[1:])} "
                             "(the static page always is: the baseline)")
    options = parser.parse_args()
    keys = frozenset(k.strip() for k in options.pages.split(",") if k.strip())
    if not keys <= set(PAGES):
        parser.error(f"--pages takes {', '.join(PAGES[1:])}, not {options.pages}")
    if shutil.which(CHROMIUM) is None:
        parser.error(f"needs Debian's chromium at {CHROMIUM} (.ci/install installs it)")
    before = _load_average()
    times = measure(options.rounds, options.stored, keys)
    print(f"{options.rounds} rounds; load average (1 / 5 / 15 min) {before} at the start, "
          f"{_load_average()} at the end")
    print("\n".join(report(times, options.stored)))


if __name__ == "__main__":
    main()
