"""A sandboxed group through the API: skiff's ``properties.isolation`` extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
GROUPS = ("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
          "containerGroups")


def body(images: BuiltImages, isolation: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {"osType": "Linux", "containers": [{"name": "c", "properties": {
        "image": images.bb, "command": ["sh", "-c", "uname -r; echo ready; sleep 300"],
        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.25}}}}]}
    if isolation is not None:
        props["isolation"] = isolation
    return {"location": "local", "properties": props}


def logs(http: httpx.Client, name: str) -> str:
    """The container's logs, once it printed ready."""
    return eventually(
        lambda: str(http.get(f"{GROUPS}/{name}/containers/c/logs{API}").json().get("content", "")),
        until=lambda text: "ready" in text, what=f"{name} prints ready", timeout_s=30)


def test_a_group_asking_for_a_sandbox_runs_on_gvisor(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """isolation Sandbox runs the group under gVisor's kernel (uname says 4.4.0, not the
    host's), answered back; without it the server's default, Container, is stored."""
    http = skiff.client()
    made = http.put(f"{GROUPS}/boxed{API}", json=body(images, "sandbox"))
    assert made.status_code == 201, made.text
    group = settled(http, f"{GROUPS}/boxed{API}")
    assert group["properties"]["provisioningState"] == "Succeeded", group
    assert group["properties"]["isolation"] == "Sandbox"
    host_kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
    boxed = logs(http, "boxed")
    assert boxed.splitlines()[0] != host_kernel
    assert boxed.startswith("4.4.0")  # gVisor's Linux
    plain = http.put(f"{GROUPS}/plain{API}", json=body(images, None))
    assert plain.status_code == 201, plain.text
    assert settled(http, f"{GROUPS}/plain{API}")["properties"]["isolation"] == "Container"
    assert logs(http, "plain").splitlines()[0] == host_kernel
    bad = http.put(f"{GROUPS}/bad{API}", json=body(images, "vm"))
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "InvalidIsolation"
