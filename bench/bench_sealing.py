"""Sealing benchmark: what sealing a group's secrets in the store costs a PUT and a GET.

Run as any user: ``python3 bench/bench_sealing.py [--rounds N] [--secrets N]``. A store
on a temporary directory; a body with N secure environment values (default 4: a few
secure values, a registry password and a secret file are what groups carry). Figures
are medians (p50) and p90 in microseconds:

- ``seal_body`` and ``unseal_body`` alone (the work sealing adds to each write and read);
- ``Store.put_group`` of a changed body (each an fsynced commit) and ``Store.get_group``,
  with sealing and with it replaced by a copy (what the same calls cost without it).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from skiff.store import Store
from skiff.store import sqlite as store_sqlite
from skiff.store.bodysecrets import seal_body, unseal_body
from skiff.store.sealing import Sealer

SUB = "00000000-0000-0000-0000-000000000001"


def body(secrets: int, tag: str) -> dict[str, Any]:
    env = [{"name": f"S{i}", "secureValue": f"secret-{i}-{uuid.uuid4().hex}"}
           for i in range(secrets)]
    env.append({"name": "TAG", "value": tag})
    return {"location": "local", "properties": {"osType": "Linux", "containers": [
        {"name": "c", "properties": {"image": "busybox", "environmentVariables": env,
                                     "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}


def timed(rounds: int, call: Callable[[int], object]) -> tuple[float, float]:
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.9))]


def store_calls(root: Path, rounds: int, secrets: int) -> tuple[tuple[float, float], ...]:
    with Store(root / "skiff.db") as store:
        put = timed(rounds, lambda i: store.put_group(SUB, "rg", "g", "local",
                                                       body(secrets, str(i)), {}))
        get = timed(rounds, lambda i: store.get_group(SUB, "rg", "g"))
    return put, get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--secrets", type=int, default=4)
    args = parser.parse_args()
    sealer = Sealer(bytes(32))
    doc = body(args.secrets, "x")
    sealed = seal_body(doc, sealer, "uid")
    rows = [
        ("seal_body", timed(args.rounds, lambda i: seal_body(doc, sealer, "uid"))),
        ("unseal_body", timed(args.rounds,
                              lambda i: unseal_body(copy.deepcopy(sealed), sealer, "uid"))),
    ]
    with tempfile.TemporaryDirectory() as work:
        put, get = store_calls(Path(work) / "sealed", args.rounds, args.secrets)
        with mock.patch.object(store_sqlite, "seal_body",
                               lambda b, s, u: copy.deepcopy(dict(b))), \
                mock.patch.object(store_sqlite, "unseal_body", lambda b, s, u: b):
            plain_put, plain_get = store_calls(Path(work) / "plain", args.rounds, args.secrets)
    rows += [("put_group sealed", put), ("put_group unsealed", plain_put),
             ("get_group sealed", get), ("get_group unsealed", plain_get)]
    print(f"{args.secrets} secure values, {args.rounds} rounds; microseconds")
    for name, (p50, p90) in rows:
        print(f"  {name:<20} p50 {p50:8.1f}  p90 {p90:8.1f}")


if __name__ == "__main__":
    main()
