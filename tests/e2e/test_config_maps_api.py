"""Config maps through the API, raw ARM calls at api-version 2025-09-01 (no Python SDK
release both speaks it and fits the project's pin): a PUT changing only a container's
``configMap`` updates its files in place, on runc and in a gVisor sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.groups import needs_runsc
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2025-09-01"
GROUPS = ("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
          "containerGroups")
#: The container's own process rereads its configuration, as an application would.
WATCH = "while true; do echo \"seen=$(cat /mnt/configmap/app/greeting)\"; sleep 0.2; done"


def body(images: BuiltImages, isolation: str, greeting: str) -> dict[str, Any]:
    return {"location": "local", "properties": {"isolation": isolation, "containers": [
        {"name": "app", "properties": {
            "image": images.bb, "command": ["sh", "-c", WATCH],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.25}},
            "configMap": {"keyValuePairs": {"greeting": greeting}}}}]}}


def sees(http: httpx.Client, path: str, value: str) -> None:
    """Wait until the container printed ``value`` as the file's content."""
    eventually(lambda: str(http.get(f"{path}/containers/app/logs{API}").json()
                           .get("content", "")),
               until=lambda text: f"seen={value}\n" in text, what=f"the app sees {value}",
               timeout_s=30)


def instance(group: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = group["properties"]["containers"][0]["properties"]["instanceView"]
    return view


@pytest.mark.parametrize("isolation", ["Container", pytest.param("Sandbox", marks=needs_runsc)])
def test_a_put_changing_a_config_map_updates_the_file_without_a_restart(
    skiff: RunningServer, images: BuiltImages, isolation: str
) -> None:
    """/mnt/configmap/app/greeting holds the value; a PUT changing it answers 200 with an
    operation, the group settles Succeeded, the running process reads the new value, and
    the container keeps its start time and restart count; GET answers the new map."""
    http = skiff.client()
    path = f"{GROUPS}/cm-{isolation.lower()}"
    made = http.put(f"{path}{API}", json=body(images, isolation, "hello"))
    assert made.status_code == 201, made.text
    group = settled(http, f"{path}{API}")
    assert group["properties"]["provisioningState"] == "Succeeded", group
    sees(http, path, "hello")
    before = instance(http.get(f"{path}{API}").json())

    updated = http.put(f"{path}{API}", json=body(images, isolation, "bonjour"))
    assert updated.status_code == 200, updated.text
    assert "Azure-AsyncOperation" in updated.headers
    group = settled(http, f"{path}{API}")
    assert group["properties"]["provisioningState"] == "Succeeded", group
    sees(http, path, "bonjour")
    group = http.get(f"{path}{API}").json()
    after = instance(group)
    assert after["restartCount"] == before["restartCount"] == 0
    assert after["currentState"]["startTime"] == before["currentState"]["startTime"]
    assert "ConfigMapUpdated" in [e["name"] for e in after["events"]]
    assert group["properties"]["containers"][0]["properties"]["configMap"] == {
        "keyValuePairs": {"greeting": "bonjour"}}

    bad = http.put(f"{path}{API}", json=body(images, isolation, "x") | {"properties": {
        "containers": [{"name": "app", "properties": {
            "image": images.bb, "configMap": {"keyValuePairs": {"../../etc/passwd": "x"}}}}]}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "InvalidConfigMapKey"
    assert http.delete(f"{path}{API}").status_code in (200, 202)
