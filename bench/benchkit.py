"""What the benchmarks share: their percentiles, a running group to time requests against,
and a timing client process that measures the server, not its own collector.

Not a benchmark itself: the ``bench_*.py`` scripts import it (run from anywhere, a script's
folder comes first on ``sys.path``).
"""

from __future__ import annotations

import gc
import statistics
from typing import Any

import httpx

from skiff.testing.waiting import eventually


def percentiles(samples: list[float]) -> tuple[float, float]:
    """The median (p50) and the p90 of ``samples`` (nearest rank, no interpolation)."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def running_group(http: httpx.Client, group: str, body: dict[str, Any], api: str) -> None:
    """Make the container group ``group`` (its ARM id) of ``body``, and its resource group,
    through ``http`` (a client of the API with a token that may); back once it runs."""
    resource_group = group.split("/providers/", 1)[0]
    made = http.put(resource_group + api, json={"location": body["location"]})
    assert made.status_code in (200, 201), made.text
    made = http.put(group + api, json=body)
    assert made.status_code == 201, made.text
    eventually(lambda: http.get(group + api).json()["properties"]["provisioningState"]
               == "Succeeded", what="the group runs")


def lean_client() -> None:
    """For a timing client process, once its imports are done: what it imported is moved
    out of the cyclic collector's reach (:func:`gc.freeze`).

    A client spawned by a benchmark imports the benchmark's module, and with it the whole
    server (store, engine, app): a heap many times a real client's, which each full
    collection walks. Decoding a list of 1,000 groups makes enough objects to trigger one
    every few listings, a pause of 50-80 ms that was the list's p90 (the server's time
    measured with the client's own collector). After this, a collection walks only what
    the client made since."""
    gc.collect()
    gc.freeze()
