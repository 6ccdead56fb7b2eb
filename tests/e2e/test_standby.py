"""Standby pools on the real engine: a pool keeps a busybox httpd group ready, a group PUT
naming the pool is answered Running, and the group's port answers at once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "sub-1"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
POOL = f"{RG}/providers/Microsoft.StandbyPool/standbyContainerGroupPools/pool"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
POOL_API = "?api-version=2025-03-01"
ACI_API = "?api-version=2025-09-01"


def web(images: BuiltImages) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", "ipAddress": {"type": "Public", "ports": [{"port": 8080}]},
        "containers": [{"name": "web", "properties": {
            "image": images.bb, "ports": [{"port": 8080}],
            # Its server listens a second after the container started, as an
            # application that loads first: a member Running is not yet serving.
            "command": ["sh", "-c", "mkdir -p /www; echo ready > /www/index.html; "
                                    "sleep 1; exec httpd -f -p 8080 -h /www"],
            "resources": {"requests": {"cpu": 0.05, "memoryInGB": 0.05}}}}]}}


def test_a_claimed_group_answers_its_port_within_the_put(skiff: RunningServer,
                                                         images: BuiltImages) -> None:
    """A pool of one ready member; a claim PUT answers 201 Running (from the pool), its
    port answers the first GET right after the PUT's answer (no retry), and the pool
    makes a new member."""
    client = skiff.client()
    profile = f"{RG}/providers/Microsoft.ContainerInstance/containerGroupProfiles/web"
    made = client.put(f"{profile}{ACI_API}", json=web(images))
    assert made.status_code == 201, made.text
    made = client.put(f"{POOL}{POOL_API}", json={"location": "local", "properties": {
        "elasticityProfile": {"maxReadyCapacity": 1},
        "containerGroupProperties": {"containerGroupProfile": {"id": profile}}}})
    assert made.status_code == 201, made.text

    def ready() -> int:
        view = client.get(f"{POOL}/runtimeViews/latest{POOL_API}").json()
        counts = view["properties"]["instanceCountSummary"][0]["instanceCountsByState"]
        running: int = next(c["count"] for c in counts if c["state"] == "Running")
        return running

    eventually(ready, until=lambda n: n == 1, what="one member ready", timeout_s=60)
    answer = client.put(f"{GROUPS}/mine{ACI_API}", json={"location": "local", "properties": {
        "containers": [{"name": "web", "properties": {}}],
        "standbyPoolProfile": {"id": POOL}}})
    assert answer.status_code == 201, answer.text
    group = answer.json()["properties"]
    assert group["isCreatedFromStandbyPool"] is True
    assert group["instanceView"]["state"] == "Running"
    assert group["provisioningState"] == "Succeeded"
    # A member is claimable only once its declared port answered: the first GET does.
    first = httpx.get(f"http://{group['ipAddress']['ip']}:8080/", timeout=2)
    assert (first.status_code, first.text) == (200, "ready\n")
    eventually(ready, until=lambda n: n == 1, what="the pool refilled", timeout_s=60)
    assert [g["name"] for g in client.get(f"{GROUPS}{ACI_API}").json()["value"]] == ["mine"]
    assert client.delete(f"{POOL}{POOL_API}").status_code == 202
