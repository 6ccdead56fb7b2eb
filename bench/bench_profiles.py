"""Profiles benchmark: a group made from a container group profile, and answers shaped
for an older api-version, against their baselines measured in the same run.

Run: ``python3 bench/bench_profiles.py [--rounds N] [--stored N]`` (no root: the app
serves the FakeEngine over real HTTPS on loopback, ``skiff.testing.inprocess.fake_https``;
the timing client runs in a process of its own, with a keep-alive connection). Figures
are medians (p50) and p90 over N rounds:

- PUT of a new group naming a profile revision → 201, against the PUT of the same
  definition written out (the baseline): what finding the revision, unsealing it and
  laying the group's fields over it cost;
- a group's GET at 2023-05-01 (its newer fields left out) against 2025-09-01 (the
  baseline, nothing but the profile-only fields to leave out);
- listing ``--stored`` groups, every page, the first time (every group rendered) and
  again (kept renders), at 2023-05-01 against 2025-09-01.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench_admission import PROVIDER, _client, _row, group_body
from skiff.testing.inprocess import fake_https

NEW, OLD = "api-version=2025-09-01", "api-version=2023-05-01"
SUB = "bench"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}"
PROFILE = f"{RG}/containerGroupProfiles/web"


def timed(url: str, ca: str, token: str, method: str, paths: list[str],
          body: dict[str, Any] | None, expect: int) -> list[float]:
    """``method`` on each of ``paths`` in turn (after one unmeasured request to the first
    of them): ms from each request to its answer, which must be ``expect``."""
    times: list[float] = []
    with _client(url, ca, token) as http:
        http.get(paths[0])  # the connection, warm
        for path in paths:
            begun = time.perf_counter()
            answer = http.request(method, path, json=body)
            times.append((time.perf_counter() - begun) * 1000)
            if answer.status_code != expect:
                raise RuntimeError(f"{method} answered {answer.status_code}: {answer.text}")
    return times


def puts(url: str, ca: str, token: str, prefix: str, body: dict[str, Any],
         rounds: int) -> list[float]:
    """``rounds`` PUTs of new groups of ``body``."""
    return timed(url, ca, token, "PUT", [f"{RG}/containerGroups/{prefix}-{i:04d}?{NEW}"
                                         for i in range(rounds)], body, 201)


def gets(url: str, ca: str, token: str, path: str, rounds: int) -> list[float]:
    return timed(url, ca, token, "GET", [path] * rounds, None, 200)


def lists(url: str, ca: str, token: str, version: str, rounds: int) -> list[float]:
    """``rounds`` listings of the subscription's groups, every page: ms each."""
    times: list[float] = []
    with _client(url, ca, token) as http:
        for _ in range(rounds):
            begun = time.perf_counter()
            link: str | None = f"/subscriptions/{SUB}/providers/{PROVIDER}/containerGroups?" \
                               f"{version}"
            while link:
                page = http.get(link).json()
                link = page.get("nextLink")
            times.append((time.perf_counter() - begun) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="at most 45 (creates quota)")
    parser.add_argument("--stored", type=int, default=1000)
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as work, \
            fake_https(Path(work) / "root") as server, \
            ProcessPoolExecutor(1, mp_context=spawn) as client:
        store, ca = server.plane.store, str(server.ca)
        token = store.create_token(SUB, "bench")[1]

        def remote(fn: Any, *fn_args: Any) -> Any:
            return client.submit(fn, server.url, ca, token, *fn_args).result()

        definition = group_body(0.001)
        with _client(server.url, ca, token) as http:
            made = http.put(f"{PROFILE}?{NEW}", json=definition)
            assert made.status_code == 201, made.text
        from_profile = {"location": definition["location"], "properties": {
            "containerGroupProfile": {"id": PROFILE, "revision": 1}}}
        remote(puts, "warm", definition, 3)
        written, made_from = [], []
        for half in range(2):  # interleaved, so that drift falls on both alike
            written += remote(puts, f"plain{half}", definition, args.rounds // 2)
            made_from += remote(puts, f"profile{half}", from_profile, args.rounds // 2)
        group = f"{RG}/containerGroups/profile0-0000"
        get_new = remote(gets, f"{group}?{NEW}", args.rounds)
        get_old = remote(gets, f"{group}?{OLD}", args.rounds)
        for i in range(args.stored):
            store.put_group(SUB, f"rg-{i % 10}", f"many-{i:05d}", "westeurope",
                            {**from_profile, "properties": {
                                **definition["properties"], **from_profile["properties"]}},
                            {})
        cold_new, cold_old = remote(lists, NEW, 1), remote(lists, OLD, 1)
        warm_new, warm_old = remote(lists, NEW, args.rounds), remote(lists, OLD, args.rounds)

    def ratio(after: list[float], before: list[float]) -> str:
        return f"ratio (p50): {statistics.median(after) / statistics.median(before):.2f}x"

    print(f"{'what':<52} {'p50':>10} {'p90':>10}")
    print(_row("PUT → 201, the definition written out (baseline)", written))
    print(_row("PUT → 201, from a profile revision", made_from, ratio(made_from, written)))
    print(_row("GET at 2025-09-01 (baseline)", get_new))
    print(_row("GET at 2023-05-01 (newer fields left out)", get_old, ratio(get_old, get_new)))
    print(_row(f"list {args.stored}, first time, 2025-09-01", cold_new))
    print(_row(f"list {args.stored}, first time, 2023-05-01", cold_old, ratio(cold_old, cold_new)))
    print(_row(f"list {args.stored}, kept renders, 2025-09-01", warm_new))
    print(_row(f"list {args.stored}, kept renders, 2023-05-01", warm_old,
               ratio(warm_old, warm_new)))


if __name__ == "__main__":
    main()
