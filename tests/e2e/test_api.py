"""The API's other resources and rules, over HTTPS against a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "api-test"
API = "?api-version=2023-05-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
LOCATION = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/local"


def body(images: BuiltImages, cpu: float = 0.1, script: str = "sleep 300") -> dict[str, Any]:
    """A one-container group tagged team a."""
    return {**one_container_group(images.bb, script, cpu=cpu), "tags": {"team": "a"}}


def settle(http: httpx.Client, name: str, timeout_s: float = 30) -> dict[str, Any]:
    return settled(http, f"{GROUPS}/{name}{API}", timeout_s)


def start_time(group: dict[str, Any]) -> str:
    view = group["properties"]["containers"][0]["properties"]["instanceView"]
    value: str = view["currentState"]["startTime"]
    return value


def test_group_larger_than_the_host_is_refused(skiff: RunningServer, images: BuiltImages) -> None:
    """A group asking more CPU than the host has left gets ACI's capacity error; nothing stays."""
    http = skiff.client()
    cpu = skiff.server.plane.engine.capacity().cpu_cores + 1
    if cpu > 100:
        pytest.skip("the node has more CPUs than a subscription's default core quota")
    answer = http.put(f"{GROUPS}/huge{API}", json=body(images, cpu=cpu))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "ServiceUnavailable"
    assert http.get(f"{GROUPS}/huge{API}").status_code == 404


def test_tags_apply_in_place_and_other_changes_redeploy(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """PATCH and PUT with new tags keep the containers; a new command redeploys them."""
    http = skiff.client()
    assert http.put(f"{GROUPS}/g{API}", json=body(images)).status_code == 201
    first = settle(http, "g")
    patched = http.patch(f"{GROUPS}/g{API}", json={"tags": {"team": "b"}})
    assert patched.json()["tags"] == {"team": "b"}
    retagged = body(images)
    retagged["tags"] = {"team": "c"}
    again = http.put(f"{GROUPS}/g{API}", json=retagged)
    assert again.status_code == 200
    assert "Azure-AsyncOperation" not in again.headers
    assert start_time(settle(http, "g")) == start_time(first)
    changed = body(images, script="echo new; sleep 300")
    answer = http.put(f"{GROUPS}/g{API}", json=changed)
    assert "Azure-AsyncOperation" in answer.headers
    eventually(lambda: start_time(settle(http, "g")) != start_time(first),
               what="the new command redeploys the container (a new start time)", timeout_s=30)


def test_resource_groups_and_their_deletion(skiff: RunningServer, images: BuiltImages) -> None:
    """A group PUT creates its resource group; deleting the resource group deletes its groups."""
    http = skiff.client()
    assert http.put(f"{GROUPS}/g{API}", json=body(images)).status_code == 201
    settle(http, "g")
    rg = http.get(f"{RG}{API}").json()
    assert (rg["name"], rg["location"]) == ("rg", "local")
    assert http.delete(f"{RG}{API}").status_code == 202
    assert http.get(f"{RG}{API}").status_code == 404
    eventually(lambda: not skiff.server.plane.engine.group_ids(),
               what="the resource group's container groups are deleted", timeout_s=30)
    eventually(lambda: http.get(f"{GROUPS}/g{API}").status_code == 404,
               what="the deleted group answers 404 once the store forgets it")


def test_location_resources_and_operations_list(skiff: RunningServer, images: BuiltImages) -> None:
    """usages, capabilities, cachedImages and the operations list answer in ACI's shapes."""
    http = skiff.client()
    assert http.put(f"{GROUPS}/g{API}", json=body(images, cpu=0.5)).status_code == 201
    settle(http, "g")
    usages = {u["name"]["value"]: u for u in http.get(f"{LOCATION}/usages{API}").json()["value"]}
    assert usages["ContainerGroups"]["currentValue"] == 1
    assert usages["StandardCores"]["currentValue"] == 0.5
    caps = http.get(f"{LOCATION}/capabilities{API}").json()["value"][0]
    assert caps["osType"] == "Linux"
    assert caps["capabilities"]["maxCpu"] >= 1
    cached = http.get(f"{LOCATION}/cachedImages{API}").json()["value"]
    assert images.bb in [c["image"] for c in cached]
    ops = http.get(f"/providers/Microsoft.ContainerInstance/operations{API}").json()["value"]
    assert "Microsoft.ContainerInstance/containerGroups/read" in [o["name"] for o in ops]
    assert http.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/"
                    f"mars/usages{API}").status_code == 404


def test_a_volume_failure_is_the_groups_detail_status(skiff: RunningServer,
                                                      images: BuiltImages) -> None:
    """A gitRepo volume whose repository cannot be fetched (a host that no resolver
    knows, so it fails wherever git may connect): the group is Failed, and its
    instanceView.detailStatus, not only its operation, says which volume and why."""
    http = skiff.client()
    doc = body(images)
    doc["properties"]["volumes"] = [{"name": "src", "gitRepo": {
        "repository": "git://nonexistent.invalid/repo.git"}}]
    doc["properties"]["containers"][0]["properties"]["volumeMounts"] = [
        {"name": "src", "mountPath": "/src"}]
    made = http.put(f"{GROUPS}/gitless{API}", json=doc)
    assert made.status_code == 201, made.text
    group = settle(http, "gitless")
    assert group["properties"]["provisioningState"] == "Failed"
    detail = group["properties"]["instanceView"]["detailStatus"]
    assert "volumes could not be prepared" in detail
    assert "nonexistent.invalid" in detail
    operation = http.get(made.headers["Azure-AsyncOperation"]).json()
    assert operation["status"] == "Failed"
    assert "nonexistent.invalid" in operation["error"]["message"]
