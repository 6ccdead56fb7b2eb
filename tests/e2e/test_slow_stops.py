"""Deletes of groups whose PID 1 ignores SIGTERM, on a real server with a 10 s grace: they
wait out their grace in parallel, apart from creates (issue 11, items 8 and 16)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import running_server, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
GROUPS = ("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
          "containerGroups")
STUBBORN = "trap '' TERM; while :; do sleep 1; done"


def test_slow_deletes_run_in_parallel_and_hold_no_create(tmp_path: Path,
                                                         images: BuiltImages) -> None:
    """8 groups ignoring SIGTERM deleted at once (twice the workers): they show Deleting,
    another tenant's create is Running meanwhile within seconds, and all 8 are gone in
    about one grace (10 s), not two."""
    with running_server(tmp_path / "root", stop_grace_s=10, allow=images.endpoints) as skiff:
        http = skiff.client()
        alice = GROUPS.format(sub="alice")
        for i in range(8):
            answer = http.put(f"{alice}/g{i}{API}",
                              json=one_container_group(images.bb, STUBBORN, cpu=0.1))
            assert answer.status_code == 201, answer.text
        for i in range(8):
            assert settled(http, f"{alice}/g{i}{API}")["properties"][
                "provisioningState"] == "Succeeded"
        deleted = time.monotonic()
        # A DELETE answers once its group is gone (200, as ACI), so the 8 are sent at once.
        with ThreadPoolExecutor(max_workers=8) as pool:
            deletes = [pool.submit(http.delete, f"{alice}/g{i}{API}") for i in range(8)]
            eventually(lambda: all(http.get(f"{alice}/g{i}{API}").json()["properties"][
                "provisioningState"] == "Deleting" for i in range(8)),
                       what="the 8 groups Deleting", timeout_s=5, interval_s=0.1)

            mine = f"{GROUPS.format(sub='bob')}/mine{API}"
            started = time.monotonic()
            answer = http.put(mine, json=one_container_group(images.bb, "sleep 300", cpu=0.1))
            assert answer.status_code == 201, answer.text
            group = settled(http, mine)
            took = time.monotonic() - started
            state = group["properties"]["containers"][0]["properties"]["instanceView"]
            assert state["currentState"]["state"] == "Running"
            assert took < 5, f"a create took {took:.1f} s behind 8 slow deletes"

            assert [d.result(timeout=40).status_code for d in deletes] == [200] * 8
        eventually(lambda: all(http.get(f"{alice}/g{i}{API}").status_code == 404
                               for i in range(8)),
                   what="the 8 groups gone", timeout_s=40, interval_s=0.2)
        gone = time.monotonic() - deleted
        assert gone < 17, f"8 deletes with a 10 s grace took {gone:.1f} s"
        print(f"create behind 8 slow deletes: {took:.2f} s; the 8 deletes: {gone:.1f} s")
