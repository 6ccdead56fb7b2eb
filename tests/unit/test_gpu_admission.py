"""GPUs through the API, in process (the app over a real store, the reconcile loop and the
FakeEngine with GPUs of its own): admission counts them per SKU as it counts cores, a
request the node cannot give is ACI's 409 ServiceUnavailable naming what the node has,
and the capabilities API lists the node's GPU SKUs beside the "None" entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.core.engine import NodeCapacity
from skiff.settings import Settings
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import InProcessClient, fake_plane

SUB = "sub-1"
API = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"
CAPABILITIES = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/" \
               f"westeurope/capabilities{API}"


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


def _node(tmp_path: Path, portal: BlockingPortal,
          gpus: dict[str, int]) -> Iterator[tuple[ControlPlane, InProcessClient]]:
    context = fake_plane(tmp_path, Settings(data_root=tmp_path))
    plane = context.__enter__()
    try:
        assert isinstance(plane.engine, FakeEngine)
        plane.engine.node_capacity = NodeCapacity(cpu_cores=16, memory_gb=64,
                                                  gpus=sum(gpus.values()), gpu_skus=gpus)
        _, secret = plane.store.create_token(SUB, "tests")
        yield plane, InProcessClient(portal, create_app(plane), secret)
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def two_h100(tmp_path: Path, portal: BlockingPortal) -> Iterator[InProcessClient]:
    """A node with two H100s."""
    for _, http in _node(tmp_path, portal, {"H100": 2}):
        yield http


@pytest.fixture
def no_gpus(tmp_path: Path, portal: BlockingPortal) -> Iterator[InProcessClient]:
    """A node without GPUs."""
    for _, http in _node(tmp_path, portal, {}):
        yield http


def body(count: int = 1, sku: str = "H100") -> dict[str, Any]:
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "containers": [{
            "name": "c", "properties": {
                "image": "registry.test/cuda:12", "command": ["nvidia-smi", "-L"],
                "resources": {"requests": {"cpu": 1, "memoryInGB": 1.0,
                                           "gpu": {"count": count, "sku": sku}}}}}]}}


def put(http: InProcessClient, name: str, doc: dict[str, Any]) -> httpx.Response:
    return http.put(f"{GROUPS}/{name}{API}", json=doc)


def refusal(answer: httpx.Response) -> str:
    assert answer.status_code == 409, answer.text
    found: dict[str, Any] = answer.json()["error"]
    assert found["code"] == "ServiceUnavailable", found
    return str(found["message"])


def test_a_node_without_gpus_says_so(no_gpus: InProcessClient) -> None:
    """A GPU request on a node without GPUs: 409 ServiceUnavailable in ACI's words, naming
    the request's GPUs and that the node has none; no group is created."""
    message = refusal(put(no_gpus, "g", body(1, "K80")))
    assert "Resource requested: '1' CPU '1' GB memory 'Linux' OS '1' 'K80' GPU" in message
    assert message.endswith("This node has no GPUs.")
    assert no_gpus.get(f"{GROUPS}/g{API}").status_code == 404


def test_gpus_are_counted_per_sku(two_h100: InProcessClient) -> None:
    """Two H100s: one group takes one (its sku in any case), a second takes the other, a
    third is refused naming what the node has; deleting one frees its GPU."""
    assert put(two_h100, "a", body(1, "h100")).status_code == 201
    assert put(two_h100, "b", body(1, "H100")).status_code == 201
    message = refusal(put(two_h100, "c", body(1)))
    assert "'1' 'H100' GPU" in message
    assert message.endswith("This node has 2 H100.")
    assert two_h100.delete(f"{GROUPS}/a{API}").status_code in (200, 202, 204)
    assert put(two_h100, "c", body(1)).status_code == 201


def test_more_than_the_node_has(two_h100: InProcessClient) -> None:
    """A group asking three H100s of a node with two is refused at once."""
    assert "This node has 2 H100." in refusal(put(two_h100, "big", body(3)))


def test_an_unknown_sku_names_what_the_node_has(two_h100: InProcessClient) -> None:
    """A sku the node does not have (ACI's V100 on an H100 node) is refused, naming the
    node's."""
    message = refusal(put(two_h100, "v", body(1, "V100")))
    assert "'1' 'V100' GPU" in message
    assert "This node has 2 H100." in message


def test_stop_frees_and_start_is_admitted_again(two_h100: InProcessClient) -> None:
    """A stopped group holds no GPU; its start, once the GPUs are taken, is refused."""
    assert put(two_h100, "a", body(2)).status_code == 201
    assert two_h100.post(f"{GROUPS}/a/stop{API}").status_code == 204
    assert put(two_h100, "b", body(2)).status_code == 201
    refusal(two_h100.post(f"{GROUPS}/a/start{API}"))


def test_capabilities_list_the_node_skus(two_h100: InProcessClient) -> None:
    """capabilities: the "None" entry as before, then one per SKU with its count."""
    entries = two_h100.get(CAPABILITIES).json()["value"]
    assert [(e["gpu"], e["capabilities"]["maxGpuCount"]) for e in entries] == [
        ("None", 0), ("H100", 2)]
    assert {e["osType"] for e in entries} == {"Linux"}


def test_capabilities_without_gpus(no_gpus: InProcessClient) -> None:
    """A node without GPUs lists the "None" entry alone."""
    entries = no_gpus.get(CAPABILITIES).json()["value"]
    assert [e["gpu"] for e in entries] == ["None"]
