"""Usage is billed as ACI bills it, through a real `skiff serve`: a group running 10 s bills
10 ± 1 s of its vCPU and GB; stop/start with a SIGKILL of the server in between, and a
SIGKILL while it runs (its containers live on under conmon), are counted right; a reboot
loses at most the meter's period (the crash window, measured)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from skiff.settings import Settings
from skiff.testing.catalog import BuiltImages
from skiff.testing.reboot import reboot
from skiff.testing.waiting import eventually
from tests.e2e.test_crash import API, GROUPS, SUB, Serve, _body, _settled
from tests.e2e.test_crash import serve as serve  # the fixture: a server killed at will

pytestmark = pytest.mark.root

CPU, MEMORY = 0.5, 0.25
QUERY = f"/subscriptions/{SUB}/providers/Microsoft.CostManagement/query?api-version=2023-03-01"


def body(images: BuiltImages) -> dict[str, Any]:
    doc = _body(images)
    doc["properties"]["containers"][0]["properties"]["resources"]["requests"] = {
        "cpu": CPU, "memoryInGB": MEMORY}
    return doc


def billed(client: httpx.Client, name: str) -> tuple[float, float]:
    """The group's vCPU-seconds and GB-seconds from yesterday to tomorrow (UTC), as Cost
    Management's query answers them, grouped by resource and meter."""
    today = datetime.now(UTC).date()
    answer = client.post(QUERY, json={
        "type": "Usage", "timeframe": "Custom",
        "timePeriod": {"from": str(today - timedelta(days=1)),
                       "to": str(today + timedelta(days=1))},
        "dataset": {"granularity": "None",
                    "aggregation": {"q": {"name": "UsageQuantity", "function": "Sum"}},
                    "grouping": [{"type": "Dimension", "name": "ResourceId"},
                                 {"type": "Dimension", "name": "Meter"}]}})
    assert answer.status_code == 200, answer.text
    found = {row[2]: row[0] for row in answer.json()["properties"]["rows"]
             if row[1].endswith(f"/containergroups/{name}")}
    return found.get("vCPU Duration", 0.0), found.get("Memory Duration", 0.0)


def seconds(client: httpx.Client, name: str) -> float:
    """The group's billed seconds, from its vCPU-seconds; its GB-seconds agree."""
    vcpu, gb = billed(client, name)
    assert vcpu / CPU == pytest.approx(gb / MEMORY, abs=1e-3)
    return vcpu / CPU


def run_until(client: httpx.Client, name: str, since: float, wanted_s: float) -> float:
    """Let the group run until ``wanted_s`` after ``since`` (the point of the test is the
    time it runs), stop it (the stop answers once it is done) and say when."""
    time.sleep(max(0.0, since + wanted_s - time.time()))
    assert client.post(f"{GROUPS}/{name}/stop{API}").status_code == 204
    return time.time()


def test_a_group_running_10_s_bills_10_s(serve: Serve, images: BuiltImages) -> None:
    """From the PUT to the end of the stop, 10 s: the cost query bills 10 ± 1 s (never more
    than the wall time) of the group's vCPU and GB; stopped, it accrues nothing more."""
    serve.start()
    client = serve.client()
    begun = time.time()
    assert client.put(f"{GROUPS}/ten{API}", json=body(images)).status_code == 201
    assert _settled(client, "ten")["properties"]["provisioningState"] == "Succeeded"
    ended = run_until(client, "ten", begun, 10)
    first = seconds(client, "ten")
    assert first <= ended - begun
    assert abs(first - 10) <= 1, (first, ended - begun)
    print(f"billed {first:.2f} s of {ended - begun:.2f} s")
    assert seconds(client, "ten") == first  # stopped: no more


def test_stop_start_and_sigkills_are_counted_right(serve: Serve, images: BuiltImages) -> None:
    """Run ≈ 5 s, stop, SIGKILL the server, start it again, start the group, run; SIGKILL
    the server while the group runs, 3 s down (its containers run on under conmon: it
    is billed), start the server, stop the group: billed = the two runs' wall times,
    within 1 s, never more."""
    serve.start()
    client = serve.client()
    begun = time.time()
    assert client.put(f"{GROUPS}/twice{API}", json=body(images)).status_code == 201
    _settled(client, "twice")
    first_end = run_until(client, "twice", begun, 5)
    first = seconds(client, "twice")
    serve.kill()
    serve.start()
    client = serve.client()
    assert seconds(client, "twice") == first  # stopped through the crash: nothing more
    restarted = time.time()
    answer = client.post(f"{GROUPS}/twice/start{API}")
    assert answer.status_code == 202, answer.text
    eventually(lambda: _settled(client, "twice")["properties"]["instanceView"]["state"]
               == "Running", what="the group runs again", timeout_s=60)
    time.sleep(max(0.0, restarted + 3 - time.time()))  # it runs, then the server dies
    serve.kill()
    time.sleep(3)  # 3 s without a server: the containers run on
    serve.start()
    client = serve.client()
    second_end = run_until(client, "twice", restarted, 10)
    total = seconds(client, "twice")
    wall = (first_end - begun) + (second_end - restarted)
    print(f"billed {total:.2f} s of {wall:.2f} s")
    assert total <= wall
    assert wall - total <= 1, (total, wall)


def test_a_reboot_loses_at_most_the_meter_period(serve: Serve, images: BuiltImages) -> None:
    """The crash window, measured: a group runs 8 s, the server is SIGKILLed and the node
    rebooted (its containers die with it). At the next start the group runs again: its
    first span ends at the meter's last round before the kill (lost: at most the meter's
    5 s), a second span begins after the restart, and nothing of the downtime is billed."""
    serve.start()
    client = serve.client()
    begun = time.time()
    assert client.put(f"{GROUPS}/boot{API}", json=body(images)).status_code == 201
    _settled(client, "boot")
    time.sleep(max(0.0, begun + 8 - time.time()))
    serve.kill()
    killed = time.time()
    reboot(Settings(data_root=serve.root))
    serve.start()
    client = serve.client()
    eventually(lambda: _settled(client, "boot")["properties"]["instanceView"]["state"]
               == "Running", what="the group runs again", timeout_s=60)
    ended = run_until(client, "boot", time.time(), 2)
    total = seconds(client, "boot")
    with contextlib.closing(sqlite3.connect(serve.root / "skiff.db")) as db:
        spans = db.execute("SELECT started_at, ended_at FROM usage_spans ORDER BY id").fetchall()
    [(first_start, first_end), (second_start, second_end)] = spans
    lost = killed - first_end
    print(f"crash window: {lost:.2f} s lost of {killed - first_start:.2f} s before the kill; "
          f"down {second_start - killed:.2f} s, not billed")
    assert 0 <= lost <= 5 + 1
    assert first_start >= begun
    assert killed < second_start < second_end <= ended
    assert total == pytest.approx((first_end - first_start) + (second_end - second_start),
                                  abs=1e-3)
