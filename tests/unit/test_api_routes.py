"""The ACI routes in process: the app over a real store, a running reconcile loop and the
FakeEngine, through httpx's ASGI transport (no sockets, no TLS, no root).

What the SDK's poller and the CLI rely on: the status codes, the operation
header and its polling, the instance view, auth's 401 and 404, and ARM error
bodies for bad input, never a 500.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from skiff.api import groups as groups_api
from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.errors import ImageNotFound
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from skiff.testing.waiting import eventually

SUB = "sub-1"
API = "?api-version=2023-05-01"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
NETS = f"{RG}/providers/Microsoft.Network/virtualNetworks"
IMAGE = "registry.test/busybox:1"


Client = InProcessClient  # the short name these tests use


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane over the fake engine, its reconcile loop running."""
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def app(plane: ControlPlane) -> FastAPI:
    return create_app(plane)


@pytest.fixture
def http(plane: ControlPlane, app: FastAPI, portal: BlockingPortal) -> Client:
    """A client holding a token of subscription ``SUB``."""
    _, secret = plane.store.create_token(SUB, "tests")
    return Client(portal, app, secret)


def engine_of(plane: ControlPlane) -> FakeEngine:
    assert isinstance(plane.engine, FakeEngine)
    return plane.engine


def body(script: str = "echo hello; sleep 300", image: str = IMAGE,
         **props: Any) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "osType": "Linux", **props, "containers": [{"name": "c", "properties": {
            "image": image, "command": ["sh", "-c", script],
            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}


def finished(http: Client, answer: httpx.Response) -> dict[str, Any]:
    """Poll the answer's Azure-AsyncOperation until it is no longer InProgress."""
    url = answer.headers["Azure-AsyncOperation"]
    assert url.startswith(BASE)

    def status() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(url).json()
        return None if doc["status"] == "InProgress" else doc

    done = eventually(status, what=f"the operation {url} to end")
    assert done is not None
    return done


def instance(http: Client, name: str = "g") -> dict[str, Any]:
    doc: dict[str, Any] = http.get(f"{GROUPS}/{name}{API}").json()
    return doc


def container_view(group: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = group["properties"]["containers"][0]["properties"]["instanceView"]
    return view


def create(http: Client, name: str = "g", **fields: Any) -> dict[str, Any]:
    answer = http.put(f"{GROUPS}/{name}{API}", json=body(**fields))
    assert answer.status_code == 201, answer.text
    return finished(http, answer)


def test_put_answers_201_and_its_operation_succeeds(http: Client) -> None:
    """PUT → 201 with Azure-AsyncOperation; the operation ends Succeeded and GET shows the
    group Succeeded and Running, its container Running."""
    answer = http.put(f"{GROUPS}/g{API}", json=body())
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "g"
    assert answer.headers["Retry-After"] == "1"
    assert finished(http, answer)["status"] == "Succeeded"
    group = instance(http)
    assert group["properties"]["provisioningState"] == "Succeeded"
    assert group["properties"]["instanceView"]["state"] == "Running"
    assert container_view(group)["currentState"]["state"] == "Running"
    assert [e["name"] for e in container_view(group)["events"]] == [
        "Pulling", "Pulled", "Created", "Started"]
    again = http.put(f"{GROUPS}/g{API}", json=body())  # the same definition: no operation
    assert again.status_code == 200
    assert "Azure-AsyncOperation" not in again.headers


def test_list_and_logs(http: Client) -> None:
    """Groups are listed in their resource group and subscription; logs show the output."""
    create(http, "g")
    create(http, "h", script="echo other; sleep 300")
    names = [g["name"] for g in http.get(f"{GROUPS}{API}").json()["value"]]
    assert names == ["g", "h"]
    every = http.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/"
                     f"containerGroups{API}").json()["value"]
    assert [g["name"] for g in every] == ["g", "h"]
    assert http.get(f"{GROUPS}/h/containers/c/logs{API}").json() == {"content": "other\n"}
    missing = http.get(f"{GROUPS}/h/containers/nope/logs{API}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ContainerNotFound"


def test_stop_start_and_restart(http: Client) -> None:
    """stop → 204 and Stopped; start → 202 and an operation back to Running; restart → 204
    and an operation after which the container is a new instance."""
    create(http)
    assert http.post(f"{GROUPS}/g/stop{API}").status_code == 204
    assert instance(http)["properties"]["instanceView"]["state"] == "Stopped"
    started = http.post(f"{GROUPS}/g/start{API}")
    assert started.status_code == 202
    assert finished(http, started)["status"] == "Succeeded"
    assert instance(http)["properties"]["instanceView"]["state"] == "Running"
    before = container_view(instance(http))
    restarted = http.post(f"{GROUPS}/g/restart{API}")
    assert restarted.status_code == 204
    assert finished(http, restarted)["status"] == "Succeeded"
    after = container_view(instance(http))
    assert after["currentState"]["state"] == "Running"
    def killings(view: dict[str, Any]) -> int:
        return sum(e["count"] for e in view["events"] if e["name"] == "Killing")

    assert killings(after) == killings(before) + 1


def test_delete_removes_the_group(http: Client, plane: ControlPlane) -> None:
    """DELETE → 200 with the group as it was, once it is gone (ACI's answer, which the SDKs'
    begin_delete().result() returns): no operation to poll; then 404, and a second DELETE
    answers 204."""
    create(http)
    answer = http.delete(f"{GROUPS}/g{API}")
    assert answer.status_code == 200
    assert "Azure-AsyncOperation" not in answer.headers
    deleted = answer.json()
    assert deleted["name"] == "g"
    assert deleted["type"] == "Microsoft.ContainerInstance/containerGroups"
    assert deleted["properties"]["provisioningState"] == "Succeeded"
    assert deleted["properties"]["containers"][0]["properties"]["image"] == IMAGE
    assert "instanceView" not in deleted["properties"]
    assert engine_of(plane).group_ids() == []
    assert http.get(f"{GROUPS}/g{API}").status_code == 404
    assert http.delete(f"{GROUPS}/g{API}").status_code == 204


def test_a_slow_delete_is_answered_with_an_operation(http: Client, plane: ControlPlane,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A teardown longer than the DELETE waits: 202 with Azure-AsyncOperation (ACI's other
    answer) and the group; the operation ends Succeeded once the group is gone."""
    monkeypatch.setattr(groups_api, "DELETE_WAIT_S", 0.2)
    create(http)
    release = threading.Event()
    engine_of(plane).before_stop = lambda _uid: release.wait(10)
    try:
        answer = http.delete(f"{GROUPS}/g{API}")
        assert answer.status_code == 202
        assert answer.json()["name"] == "g"
        assert http.get(f"{GROUPS}/g{API}").json()["properties"]["provisioningState"] \
            == "Deleting"
    finally:
        release.set()
    assert finished(http, answer)["status"] == "Succeeded"
    assert engine_of(plane).group_ids() == []
    eventually(lambda: http.get(f"{GROUPS}/g{API}").status_code == 404,
               what="a GET of the forgotten group answered 404")


def test_an_image_that_cannot_be_pulled_fails_the_operation(http: Client,
                                                            plane: ControlPlane) -> None:
    """A failed pull ends the operation Failed with an error, and the group Failed."""
    engine_of(plane).pull_errors["registry.test/nope:1"] = ImageNotFound("manifest unknown")
    answer = http.put(f"{GROUPS}/g{API}", json=body(image="registry.test/nope:1"))
    assert answer.status_code == 201
    done = finished(http, answer)
    assert done["status"] == "Failed"
    assert "manifest unknown" in done["error"]["message"]
    assert instance(http)["properties"]["provisioningState"] == "Failed"


def test_auth(plane: ControlPlane, http: Client, app: FastAPI, portal: BlockingPortal) -> None:
    """No token or a wrong one: 401; another subscription's token: 403 AuthorizationFailed,
    as ARM answers a caller without a role there."""
    create(http)
    bare = Client(portal, app, None)
    answer = bare.get(f"{GROUPS}/g{API}")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"
    wrong = bare.get(f"{GROUPS}/g{API}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    _, other = plane.store.create_token("sub-2", "other")
    foreign = bare.get(f"{GROUPS}/g{API}", headers={"Authorization": f"Bearer {other}"})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "AuthorizationFailed"
    _, admin = plane.store.create_token(None, "admin")
    assert bare.get(f"{GROUPS}/g{API}",
                    headers={"Authorization": f"Bearer {admin}"}).status_code == 200


@pytest.mark.parametrize("content", [
    b"", b"{not json", b"[]", b'{"location": "local"}', b'{"properties": {"containers": 7}}',
    b'{"properties": {"containers": [{"name": "c"}]}}',
    b'{"properties": {"containers": [{"name": "c", "properties": {"image": "x",'
    b' "resources": {"requests": {"cpu": "lots", "memoryInGB": 1}}}}]}}',
    b"\xff\xfe",
])
def test_a_bad_body_gets_an_arm_400(http: Client, content: bytes) -> None:
    """Malformed or invalid bodies answer 400 with an ARM error body, never a 500, and
    nothing is created."""
    answer = http.put(f"{GROUPS}/g{API}", content=content,
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"]
    assert error["message"]
    assert http.get(f"{GROUPS}/g{API}").status_code == 404


def test_a_missing_api_version_is_refused(http: Client) -> None:
    """Every route needs ?api-version=, as ARM's."""
    answer = http.get(f"{GROUPS}/g")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "MissingApiVersionParameter"


def vnet_body() -> dict[str, Any]:
    return {"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": ["10.210.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.210.1.0/24"}}]}}


def private(script: str = "sleep 300") -> dict[str, Any]:
    doc = body(script, restartPolicy="Never",
               ipAddress={"type": "Private", "ports": [{"port": 80}]},
               subnetIds=[{"id": f"{NETS}/net/subnets/default"}])
    doc["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    return doc


def test_deleting_a_virtual_network_clears_the_node_before_answering(
    http: Client, plane: ControlPlane
) -> None:
    """A network in use is refused (400); once its group is gone, DELETE answers 200 with the
    node already rid of it (through the reconcile loop), then 204."""
    engine = engine_of(plane)
    assert http.put(f"{NETS}/net{API}", json=vnet_body()).status_code == 201
    made = http.put(f"{GROUPS}/priv{API}", json=private())
    assert made.status_code == 201, made.text
    assert finished(http, made)["status"] == "Succeeded"
    assert instance(http, "priv")["properties"]["ipAddress"]["ip"] == "10.210.1.4"
    key = f"{NETS}/net".lower()
    assert engine.vnets() == [key]
    refused = http.delete(f"{NETS}/net{API}")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "InUseSubnetCannotBeDeleted"
    assert http.delete(f"{GROUPS}/priv{API}").status_code == 200
    assert http.delete(f"{GROUPS}/priv{API}").status_code == 204
    deleted = http.delete(f"{NETS}/net{API}")
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert engine.vnets() == []
    assert plane.store.vnet_teardowns() == []
    assert http.delete(f"{NETS}/net{API}").status_code == 204


def test_deleting_a_resource_group_takes_its_groups_and_networks(
    http: Client, plane: ControlPlane
) -> None:
    """DELETE of the resource group → 202; its groups go, then its network leaves the node
    after its last group."""
    engine = engine_of(plane)
    assert http.put(f"{NETS}/net{API}", json=vnet_body()).status_code == 201
    assert finished(http, http.put(f"{GROUPS}/priv{API}", json=private()))["status"] == \
        "Succeeded"
    assert http.delete(f"{RG}{API}").status_code == 202
    assert http.get(f"{RG}{API}").status_code == 404
    eventually(lambda: not engine.group_ids() and not engine.vnets()
               and not plane.store.vnet_teardowns(),
               what="the groups and the network gone from the node")
    assert http.get(f"{NETS}/net{API}").status_code == 404


def test_a_list_shows_each_groups_ip_address(http: Client) -> None:
    """A list answers each group's ipAddress.ip, as ARM's list does (no instance view)."""
    ports = [{"protocol": "TCP", "port": 80}]
    public = body(ipAddress={"type": "Public", "ports": ports})
    public["properties"]["containers"][0]["properties"]["ports"] = ports
    answer = http.put(f"{GROUPS}/web{API}", json=public)
    assert answer.status_code == 201, answer.text
    finished(http, answer)
    ip = instance(http, "web")["properties"]["ipAddress"]["ip"]
    assert ip
    for url in (f"{GROUPS}{API}",
                f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups{API}"):
        [listed] = http.get(url).json()["value"]
        assert listed["properties"]["ipAddress"]["ip"] == ip
        assert "instanceView" not in listed["properties"]


def with_config_map(greeting: str) -> dict[str, Any]:
    """``body()`` whose container has a config map (api-version 2024-05-01-preview on)."""
    doc = body()
    doc["properties"]["containers"][0]["properties"]["configMap"] = {
        "keyValuePairs": {"greeting": greeting}}
    return doc


def test_a_put_changing_only_a_config_map_restarts_nothing(http: Client,
                                                            plane: ControlPlane) -> None:
    """A PUT changing only a configMap is an update (200, an operation that succeeds): the
    container keeps its start time and restart count, its events say ConfigMapUpdated,
    GET answers the new map, the engine's files hold it; a bad key is an ARM 400."""
    path = f"{GROUPS}/g?api-version=2025-09-01"
    made = http.put(path, json=with_config_map("hello"))
    assert made.status_code == 201, made.text
    assert finished(http, made)["status"] == "Succeeded"
    before = container_view(http.get(path).json())
    assert before["currentState"]["state"] == "Running"
    updated = http.put(path, json=with_config_map("bonjour"))
    assert updated.status_code == 200, updated.text
    assert finished(http, updated)["status"] == "Succeeded"
    group = http.get(path).json()
    props = group["properties"]["containers"][0]["properties"]
    assert props["configMap"] == {"keyValuePairs": {"greeting": "bonjour"}}
    after = props["instanceView"]
    assert after["restartCount"] == before["restartCount"] == 0
    assert after["currentState"]["startTime"] == before["currentState"]["startTime"]
    assert "ConfigMapUpdated" in [e["name"] for e in after["events"]]
    record = plane.store.get_group(SUB, "rg", "g")
    assert record is not None
    assert engine_of(plane).config_map_files(record.uid) == {"c": {"greeting": "bonjour"}}
    bad = http.put(path, json=body() | {"properties": {**body()["properties"], "containers": [
        {"name": "c", "properties": {"image": IMAGE, "configMap": {
            "keyValuePairs": {"../x": "y"}}}}]}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "InvalidConfigMapKey"
