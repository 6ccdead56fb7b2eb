"""Unit tests for skiff.client: request shapes, long-running operations, paging,
errors and configuration, with httpx.MockTransport standing in for the API."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.server import Server, ServerConnection, serve

from skiff.client import (
    API_VERSION,
    DEFAULT_SUBSCRIPTION,
    DEFAULT_URL,
    ApiError,
    ClientConfigError,
    Operation,
    OperationFailed,
    SkiffClient,
    WebSocketTarget,
)
from skiff.errors import SkiffError

BASE = "https://skiff.test:8443"
SUB = "11111111-2222-3333-4444-555555555555"
GROUP_PATH = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
              "Microsoft.ContainerInstance/containerGroups/web")
OP_URL = f"{BASE}/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/local/operations/op1?api-version={API_VERSION}"  # noqa: E501

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kwargs: Any) -> SkiffClient:
    """A client whose every request goes to ``handler``."""
    return SkiffClient(BASE, "tok-123", subscription=SUB, transport=httpx.MockTransport(handler),
                       **kwargs)


def group(state: str = "Succeeded", **props: Any) -> dict[str, Any]:
    """A group body as the API answers it."""
    return {"id": GROUP_PATH, "name": "web", "location": "local",
            "type": "Microsoft.ContainerInstance/containerGroups",
            "properties": {"provisioningState": state, "osType": "Linux", "containers": [
                {"name": "web", "properties": {"image": "nginx", "resources": {
                    "requests": {"cpu": 1.0, "memoryInGB": 1.5}}}}], **props}}


class Recorder:
    """Answers from a table of (method, path) → list of responses, recording requests."""

    def __init__(self, routes: dict[tuple[str, str], list[httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get((request.method, request.url.path))
        if not answers:
            return httpx.Response(404, json={"error": {"code": "NoRoute",
                                                       "message": request.url.path}})
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


def accepted(status: int = 201, body: dict[str, Any] | None = None,
             url: str = OP_URL) -> httpx.Response:
    """A long-running answer: body, Azure-AsyncOperation, Retry-After 0 (tests do not wait)."""
    return httpx.Response(status, json=body, headers={"Azure-AsyncOperation": url,
                                                       "Retry-After": "0"})


def op(status: str, error: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"id": "op1", "name": "op1", "status": status}
    if error:
        body["error"] = error
    return httpx.Response(200, json=body, headers={"Retry-After": "0"})


OP_PATH = httpx.URL(OP_URL).path


# --- requests ----------------------------------------------------------------------------------


def test_get_sends_bearer_api_version_and_arm_path() -> None:
    """A GET carries the bearer token, api-version 2023-05-01 and the ARM path of the group."""
    rec = Recorder({("GET", GROUP_PATH): [httpx.Response(200, json=group())]})
    assert client_for(rec).get("rg", "web")["name"] == "web"
    (request,) = rec.requests
    assert request.url.host == "skiff.test"
    assert request.url.port == 8443
    assert request.url.params["api-version"] == API_VERSION
    assert request.headers["Authorization"] == "Bearer tok-123"


def test_names_are_quoted_in_paths() -> None:
    """A name with a slash cannot reach another path."""
    rec = Recorder({})
    with pytest.raises(ApiError):
        client_for(rec).get("rg", "a/b")
    assert rec.requests[0].url.raw_path.startswith(
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
        "containerGroups/a%2Fb?".encode())


def test_create_or_update_without_wait_puts_the_body_once() -> None:
    """wait=False PUTs the body as given and answers the accepted group, without polling."""
    rec = Recorder({("PUT", GROUP_PATH): [accepted(201, group("Creating"))]})
    body = {"location": "local", "properties": {"containers": []}}
    answer = client_for(rec).create_or_update("rg", "web", body, wait=False)
    assert answer["properties"]["provisioningState"] == "Creating"
    assert rec.calls() == [("PUT", GROUP_PATH)]
    assert json.loads(rec.requests[0].content) == body
    assert rec.requests[0].headers["Content-Type"] == "application/json"


def test_create_or_update_polls_until_succeeded_then_gets_the_group() -> None:
    """InProgress, InProgress, Succeeded: each status reported, then the group fetched."""
    rec = Recorder({("PUT", GROUP_PATH): [accepted(201, group("Creating"))],
                    ("GET", OP_PATH): [op("InProgress"), op("InProgress"), op("Succeeded")],
                    ("GET", GROUP_PATH): [httpx.Response(200, json=group("Succeeded"))]})
    seen: list[str] = []
    answer = client_for(rec).create_or_update("rg", "web", {}, progress=seen.append)
    assert answer["properties"]["provisioningState"] == "Succeeded"
    assert seen == ["InProgress", "InProgress", "Succeeded"]
    assert rec.calls() == [("PUT", GROUP_PATH), *[("GET", OP_PATH)] * 3, ("GET", GROUP_PATH)]
    # The operation URL already names its api-version: it is not added twice.
    assert rec.requests[1].url.params.get_list("api-version") == [API_VERSION]


def test_failed_operation_raises_its_error() -> None:
    """A Failed operation raises OperationFailed with the operation's code and message."""
    rec = Recorder({("PUT", GROUP_PATH): [accepted(201, group("Creating"))],
                    ("GET", OP_PATH): [op("Failed", {"code": "InaccessibleImage",
                                                     "message": "no such image: nginx:nope"})]})
    with pytest.raises(OperationFailed) as info:
        client_for(rec).create_or_update("rg", "web", {})
    assert (info.value.code, info.value.message) == ("InaccessibleImage",
                                                     "no such image: nginx:nope")
    assert isinstance(info.value, ApiError)
    assert isinstance(info.value, SkiffError)


def test_canceled_operation_without_error_says_so() -> None:
    """A Canceled operation with no error body raises code Canceled."""
    rec = Recorder({("PUT", GROUP_PATH): [accepted(200, group("Updating"))],
                    ("GET", OP_PATH): [op("Canceled")]})
    with pytest.raises(OperationFailed, match="Canceled") as info:
        client_for(rec).create_or_update("rg", "web", {})
    assert info.value.code == "Canceled"


def test_group_failed_after_operation_raises_with_its_event() -> None:
    """An operation that succeeds on a group whose provisioningState is Failed still fails,
    with the last warning event as the message."""
    failed = group("Failed", instanceView={"events": [
        {"type": "Normal", "message": "pulling"},
        {"type": "Warning", "message": "Failed to pull image nginx:nope"}]})
    rec = Recorder({("PUT", GROUP_PATH): [accepted(201, group("Creating"))],
                    ("GET", OP_PATH): [op("Succeeded")],
                    ("GET", GROUP_PATH): [httpx.Response(200, json=failed)]})
    with pytest.raises(OperationFailed, match="Failed to pull image nginx:nope"):
        client_for(rec).create_or_update("rg", "web", {})


def test_without_operation_header_the_provisioning_state_is_polled() -> None:
    """A PUT answered with no operation URL is followed through the group's provisioningState."""
    rec = Recorder({("PUT", GROUP_PATH): [httpx.Response(201, json=group("Creating"),
                                                         headers={"Retry-After": "0"})],
                    ("GET", GROUP_PATH): [httpx.Response(200, json=group("Creating")),
                                          httpx.Response(200, json=group("Succeeded"))]})
    seen: list[str] = []
    client = client_for(rec)
    operation = client.begin_create_or_update("rg", "web", {})
    assert operation.async_url is None
    assert client.wait(operation, progress=seen.append) == {"status": "Succeeded"}
    assert seen == ["Creating", "Succeeded"]


def test_wait_takes_an_operation_url() -> None:
    """wait() accepts a bare Azure-AsyncOperation URL."""
    rec = Recorder({("GET", OP_PATH): [op("Succeeded")]})
    assert client_for(rec).wait(OP_URL)["status"] == "Succeeded"


def test_location_header_is_polled_until_not_202() -> None:
    """Without Azure-AsyncOperation, a Location header is polled until it stops answering 202."""
    loc = f"{BASE}/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/locations/l/x"
    rec = Recorder({("GET", "/subscriptions/" + SUB + "/providers/Microsoft.ContainerInstance/"
                     "locations/l/x"): [httpx.Response(202, headers={"Retry-After": "0"}),
                                        httpx.Response(204)]})
    operation = Operation(method="DELETE", resource_url=GROUP_PATH, status_code=202, body={},
                          location_url=loc, retry_after=0)
    assert client_for(rec).wait(operation) == {"status": "Succeeded"}
    assert len(rec.requests) == 2


def test_polling_survives_a_transient_failure() -> None:
    """A 503 while polling is tried again rather than failing the wait."""
    rec = Recorder({("GET", OP_PATH): [httpx.Response(503, headers={"Retry-After": "0"}),
                                       op("Succeeded")]})
    assert client_for(rec).wait(OP_URL)["status"] == "Succeeded"


def test_polling_gives_up_on_a_client_error() -> None:
    """A 404 on the operation is not transient: it is raised at once."""
    rec = Recorder({})
    with pytest.raises(ApiError) as info:
        client_for(rec).wait(OP_URL)
    assert info.value.status == 404
    assert len(rec.requests) == 1


def test_wait_timeout() -> None:
    """An operation that never ends is abandoned after the timeout, as OperationTimedOut."""
    slow = httpx.Response(200, json={"status": "InProgress"}, headers={"Retry-After": "0.05"})
    rec = Recorder({("GET", OP_PATH): [slow]})
    operation = Operation(method="PUT", resource_url=GROUP_PATH, status_code=201, body={},
                          async_url=OP_URL, retry_after=0.05)
    with pytest.raises(ApiError) as info:
        client_for(rec).wait(operation, timeout=0.2)
    assert info.value.code == "OperationTimedOut"


def test_operation_link_to_another_host_is_rerooted_on_the_api() -> None:
    """A link naming another origin is followed on the API's own origin: the token stays home."""
    elsewhere = f"https://evil.example{OP_PATH}?api-version={API_VERSION}"
    rec = Recorder({("GET", OP_PATH): [op("Succeeded")]})
    client_for(rec).wait(elsewhere)
    assert rec.requests[0].url.host == "skiff.test"


# --- list, delete, actions ---------------------------------------------------------------------


def test_list_follows_next_link() -> None:
    """Pages are followed through nextLink until there is none."""
    path = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
            "Microsoft.ContainerInstance/containerGroups")
    page1 = {"value": [group()], "nextLink": f"{BASE}{path}?api-version={API_VERSION}&page=2"}
    page2 = {"value": [{**group(), "name": "db"}]}
    rec = Recorder({("GET", path): [httpx.Response(200, json=page1),
                                    httpx.Response(200, json=page2)]})
    assert [g["name"] for g in client_for(rec).list("rg")] == ["web", "db"]
    assert rec.requests[1].url.params["page"] == "2"


def test_list_without_resource_group_lists_the_subscription() -> None:
    """list(None) asks for every group of the subscription."""
    path = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
    rec = Recorder({("GET", path): [httpx.Response(200, json={"value": []})]})
    assert client_for(rec).list() == []
    assert rec.calls() == [("GET", path)]


def test_list_stops_on_a_repeated_next_link() -> None:
    """A server that hands out the same nextLink forever does not loop the client forever."""
    path = f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/containerGroups"
    page = {"value": [group()], "nextLink": f"{BASE}{path}?page=2"}
    rec = Recorder({("GET", path): [httpx.Response(200, json=page)]})
    assert len(client_for(rec).list()) == 2


def test_delete_waits_for_its_operation() -> None:
    """DELETE answered 202 with an operation is waited for; nothing to show afterwards."""
    rec = Recorder({("DELETE", GROUP_PATH): [accepted(202)],
                    ("GET", OP_PATH): [op("InProgress"), op("Succeeded")]})
    assert client_for(rec).delete("rg", "web") is None
    assert rec.calls() == [("DELETE", GROUP_PATH), ("GET", OP_PATH), ("GET", OP_PATH)]


def test_delete_without_wait_does_not_poll() -> None:
    """delete(wait=False) sends the DELETE only."""
    rec = Recorder({("DELETE", GROUP_PATH): [accepted(202)]})
    client_for(rec).delete("rg", "web", wait=False)
    assert rec.calls() == [("DELETE", GROUP_PATH)]


def test_delete_answered_200_returns_the_group() -> None:
    """A synchronous delete (200 with the group) answers the group."""
    rec = Recorder({("DELETE", GROUP_PATH): [httpx.Response(200, json=group())]})
    deleted = client_for(rec).delete("rg", "web")
    assert deleted is not None
    assert deleted["name"] == "web"


def test_delete_202_without_operation_polls_until_gone() -> None:
    """A bare 202 is followed by GETs of the group until it answers 404."""
    rec = Recorder({("DELETE", GROUP_PATH): [httpx.Response(202, headers={"Retry-After": "0"})],
                    ("GET", GROUP_PATH): [httpx.Response(200, json=group("Deleting")),
                                          httpx.Response(404, json={"error": {
                                              "code": "ResourceNotFound", "message": "gone"}})]})
    client_for(rec).delete("rg", "web")
    assert rec.calls() == [("DELETE", GROUP_PATH), ("GET", GROUP_PATH), ("GET", GROUP_PATH)]


def test_start_restart_wait_and_stop_does_not() -> None:
    """start and restart are long-running (POST + operation); stop is a plain POST."""
    rec = Recorder({("POST", GROUP_PATH + "/start"): [accepted(202)],
                    ("POST", GROUP_PATH + "/restart"): [accepted(202)],
                    ("POST", GROUP_PATH + "/stop"): [httpx.Response(204)],
                    ("GET", OP_PATH): [op("Succeeded")]})
    client = client_for(rec)
    client.start("rg", "web")
    client.restart("rg", "web")
    client.stop("rg", "web")
    assert rec.calls() == [("POST", GROUP_PATH + "/start"), ("GET", OP_PATH),
                           ("POST", GROUP_PATH + "/restart"), ("GET", OP_PATH),
                           ("POST", GROUP_PATH + "/stop")]


def test_update_tags_patches() -> None:
    """update_tags PATCHes {tags}."""
    rec = Recorder({("PATCH", GROUP_PATH): [httpx.Response(200, json=group())]})
    client_for(rec).update_tags("rg", "web", {"env": "test"})
    assert json.loads(rec.requests[0].content) == {"tags": {"env": "test"}}


# --- containers --------------------------------------------------------------------------------


def test_logs_passes_tail_timestamps_and_previous() -> None:
    """logs() sends tail, timestamps and skiff's previous as query parameters."""
    path = GROUP_PATH + "/containers/web/logs"
    rec = Recorder({("GET", path): [httpx.Response(200, json={"content": "a\nb\n"})]})
    client = client_for(rec)
    assert client.logs("rg", "web", "web", tail=2, timestamps=True, previous=True) == "a\nb\n"
    assert client.logs("rg", "web", "web") == "a\nb\n"
    first, plain = rec.requests
    assert dict(first.url.params) == {"tail": "2", "timestamps": "true", "previous": "true",
                                      "api-version": API_VERSION}
    assert dict(plain.url.params) == {"api-version": API_VERSION}


def test_exec_posts_command_and_terminal_size() -> None:
    """exec() posts {command, terminalSize} and answers (webSocketUri, password)."""
    path = GROUP_PATH + "/containers/web/exec"
    rec = Recorder({("POST", path): [httpx.Response(200, json={
        "webSocketUri": "wss://skiff.test:8443/ws/1", "password": "pw"})]})
    uri, password = client_for(rec).exec("rg", "web", "web", "/bin/sh", rows=30, cols=120)
    assert (uri, password) == ("wss://skiff.test:8443/ws/1", "pw")
    assert json.loads(rec.requests[0].content) == {
        "command": "/bin/sh", "terminalSize": {"rows": 30, "cols": 120}}


def test_attach_answers_a_target_and_rejects_a_bad_answer() -> None:
    """attach() answers the stream's target; an answer without one is InvalidResponse."""
    path = GROUP_PATH + "/containers/web/attach"
    rec = Recorder({("POST", path): [
        httpx.Response(200, json={"webSocketUri": "wss://x/ws", "password": "p"}),
        httpx.Response(200, json={"nothing": True})]})
    client = client_for(rec)
    assert client.attach("rg", "web", "web") == WebSocketTarget("wss://x/ws", "p")
    with pytest.raises(ApiError, match="webSocketUri") as info:
        client.attach("rg", "web", "web")
    assert info.value.code == "InvalidResponse"


def test_resource_group_location() -> None:
    """The resource group's location when skiff has it; None when it does not."""
    path = f"/subscriptions/{SUB}/resourcegroups/rg"
    rec = Recorder({("GET", path): [httpx.Response(200, json={"location": "westeurope"}),
                                    httpx.Response(404, json={"error": {
                                        "code": "ResourceGroupNotFound", "message": "no"}})]})
    client = client_for(rec)
    assert client.resource_group_location("rg") == "westeurope"
    assert client.resource_group_location("rg") is None


# --- virtual networks and subnets --------------------------------------------------------------

NET = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks"
VNET_PATH = f"{NET}/vnet1"
SUBNET_PATH = f"{VNET_PATH}/subnets/sub1"


def vnet(state: str = "Succeeded", *subnets: dict[str, Any]) -> dict[str, Any]:
    """A virtual network as the API answers it."""
    return {"id": VNET_PATH, "name": "vnet1", "type": "Microsoft.Network/virtualNetworks",
            "location": "local", "properties": {
                "provisioningState": state, "subnets": list(subnets),
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}


def subnet(state: str = "Succeeded") -> dict[str, Any]:
    """A subnet as the API answers it."""
    return {"id": SUBNET_PATH, "name": "sub1", "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {"provisioningState": state, "addressPrefix": "10.0.0.0/24"}}


def test_vnet_put_answered_at_once_is_the_network() -> None:
    """A PUT skiff answers Succeeded at once is the network: no poll, no second GET; the
    body, path and api-version are ARM's."""
    rec = Recorder({("PUT", VNET_PATH): [httpx.Response(201, json=vnet())]})
    body = {"location": "local", "properties": {"addressSpace": {
        "addressPrefixes": ["10.0.0.0/16"]}}}
    assert client_for(rec).create_or_update_vnet("rg", "vnet1", body)["name"] == "vnet1"
    (request,) = rec.requests
    assert json.loads(request.content) == body
    assert request.url.params["api-version"] == API_VERSION


def test_vnet_put_with_an_operation_waits_then_reads_the_network() -> None:
    """A PUT answered with Azure-AsyncOperation (as Azure's network API does) is polled
    until it ends, and the network is read again."""
    rec = Recorder({("PUT", VNET_PATH): [accepted(201, vnet("Updating"))],
                    ("GET", OP_PATH): [op("InProgress"), op("Succeeded")],
                    ("GET", VNET_PATH): [httpx.Response(200, json=vnet())]})
    got = client_for(rec).create_or_update_vnet("rg", "vnet1", {"properties": {}})
    assert got["properties"]["provisioningState"] == "Succeeded"
    assert rec.calls() == [("PUT", VNET_PATH), ("GET", OP_PATH), ("GET", OP_PATH),
                           ("GET", VNET_PATH)]


def test_vnet_put_answered_failed_raises() -> None:
    """A network answered provisioningState Failed is OperationFailed, not a success."""
    rec = Recorder({("PUT", VNET_PATH): [httpx.Response(200, json=vnet("Failed"))]})
    with pytest.raises(OperationFailed):
        client_for(rec).create_or_update_vnet("rg", "vnet1", {"properties": {}})


def test_vnet_get_list_and_delete_paths() -> None:
    """get/list/delete of networks reach the network's, the resource group's and the
    subscription's ARM paths; list follows nextLink."""
    all_path = f"/subscriptions/{SUB}/providers/Microsoft.Network/virtualNetworks"
    page1 = {"value": [vnet()], "nextLink": f"{BASE}{NET}?api-version={API_VERSION}&page=2"}
    rec = Recorder({("GET", VNET_PATH): [httpx.Response(200, json=vnet())],
                    ("GET", NET): [httpx.Response(200, json=page1),
                                   httpx.Response(200, json={"value": [vnet()]})],
                    ("GET", all_path): [httpx.Response(200, json={"value": []})],
                    ("DELETE", VNET_PATH): [httpx.Response(200)]})
    client = client_for(rec)
    assert client.get_vnet("rg", "vnet1")["id"] == VNET_PATH
    assert len(client.list_vnets("rg")) == 2
    assert client.list_vnets() == []
    client.delete_vnet("rg", "vnet1")
    assert rec.calls() == [("GET", VNET_PATH), ("GET", NET), ("GET", NET), ("GET", all_path),
                           ("DELETE", VNET_PATH)]


def test_subnet_put_get_list_delete_paths() -> None:
    """Subnets live under their network's path: PUT, GET, list and DELETE reach them."""
    rec = Recorder({("PUT", SUBNET_PATH): [httpx.Response(201, json=subnet())],
                    ("GET", SUBNET_PATH): [httpx.Response(200, json=subnet())],
                    ("GET", f"{VNET_PATH}/subnets"): [httpx.Response(200, json={
                        "value": [subnet()]})],
                    ("DELETE", SUBNET_PATH): [httpx.Response(204)]})
    client = client_for(rec)
    body = {"properties": {"addressPrefix": "10.0.0.0/24"}}
    assert client.create_or_update_subnet("rg", "vnet1", "sub1", body)["name"] == "sub1"
    assert json.loads(rec.requests[0].content) == body
    assert client.get_subnet("rg", "vnet1", "sub1")["id"] == SUBNET_PATH
    assert [s["name"] for s in client.list_subnets("rg", "vnet1")] == ["sub1"]
    client.delete_subnet("rg", "vnet1", "sub1")
    assert [m for m, _ in rec.calls()] == ["PUT", "GET", "GET", "DELETE"]


def test_subnet_id_is_the_arm_id_and_paths_are_quoted() -> None:
    """subnet_id is the ARM id a group's subnetIds holds; names in paths are quoted."""
    rec = Recorder({})
    client = client_for(rec)
    assert client.subnet_id("rg", "vnet1", "sub1") == SUBNET_PATH
    with pytest.raises(ApiError):
        client.get_subnet("rg", "v/x", "s")
    assert rec.requests[0].url.raw_path.startswith(f"{NET}/v%2Fx/subnets/s?".encode())
    with pytest.raises(ValueError, match="resource group"):
        client.vnet_url(None, "vnet1")


@pytest.mark.parametrize(("method", "code", "target"), [
    ("DELETE", "InUseSubnetCannotBeDeleted", None),
    ("PUT", "NetcfgSubnetRangeOutsideVnet", "properties.addressPrefix"),
])
def test_network_errors_become_api_errors(method: str, code: str, target: str | None) -> None:
    """The API's network refusals (a subnet in use, a subnet outside its network) become
    ApiError with their status, ARM code and target."""
    error = {"code": code, "message": "refused", **({"target": target} if target else {})}
    rec = Recorder({(method, SUBNET_PATH): [httpx.Response(400, json={"error": error})]})
    client = client_for(rec)
    def call() -> None:
        if method == "DELETE":
            client.delete_subnet("rg", "vnet1", "sub1")
        else:
            client.create_or_update_subnet("rg", "vnet1", "sub1", {"properties": {}})

    with pytest.raises(ApiError) as info:
        call()
    assert (info.value.status, info.value.code, info.value.target) == (400, code, target)


# --- errors ------------------------------------------------------------------------------------


def test_arm_error_body_becomes_api_error() -> None:
    """{"error": {code, message, target}} with its status becomes ApiError."""
    rec = Recorder({("GET", GROUP_PATH): [httpx.Response(404, json={"error": {
        "code": "ResourceNotFound", "message": "The Resource 'web' was not found.",
        "target": "web"}})]})
    with pytest.raises(ApiError) as info:
        client_for(rec).get("rg", "web")
    err = info.value
    assert (err.status, err.code, err.message, err.target) == (
        404, "ResourceNotFound", "The Resource 'web' was not found.", "web")
    assert str(err) == "(ResourceNotFound) The Resource 'web' was not found."


def test_non_json_error_uses_the_status_line() -> None:
    """A proxy's HTML 502 becomes ApiError(502, "BadGateway", ...) with the text, on one line."""
    rec = Recorder({("GET", GROUP_PATH): [httpx.Response(502, text="<h1>bad\ngateway</h1>")]})
    with pytest.raises(ApiError) as info:
        client_for(rec).get("rg", "web")
    assert (info.value.status, info.value.code) == (502, "BadGateway")
    assert "\n" not in info.value.message
    assert "bad gateway" in info.value.message


def test_success_that_is_not_json_is_invalid_response() -> None:
    """A 200 whose body is not JSON is InvalidResponse, not a JSON traceback."""
    rec = Recorder({("GET", GROUP_PATH): [httpx.Response(200, text="hello")]})
    with pytest.raises(ApiError) as info:
        client_for(rec).get("rg", "web")
    assert info.value.code == "InvalidResponse"


@pytest.mark.parametrize("exc", [httpx.ConnectError("Connection refused"),
                                 httpx.ReadError("reset by peer"),
                                 httpx.RemoteProtocolError("garbage")])
def test_transport_errors_become_connection_failed(exc: httpx.HTTPError) -> None:
    """httpx's exceptions never leak: they are ApiError(0, "ConnectionFailed") with the cause."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(ApiError) as info:
        client_for(fail).get("rg", "web")
    assert (info.value.status, info.value.code) == (0, "ConnectionFailed")
    assert BASE in info.value.message
    assert info.value.__cause__ is exc


def test_timeout_says_how_long() -> None:
    """A timeout is ConnectionFailed naming the timeout."""

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(ApiError, match="within 7 s") as info:
        client_for(slow, timeout=7).get("rg", "web")
    assert info.value.code == "ConnectionFailed"


def test_refused_connection_on_a_real_socket() -> None:
    """Nothing listening: a real connect fails as ConnectionFailed, not an httpx error."""
    client = SkiffClient("http://127.0.0.1:9", "tok", timeout=2)
    with pytest.raises(ApiError) as info:
        client.get("rg", "web")
    assert info.value.code == "ConnectionFailed"


# --- configuration -----------------------------------------------------------------------------


def _ca_pem(path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Write a self-signed CA certificate named "skiff test CA" to ``path``; its key and cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _server_tls(tmp_path: Path) -> ssl.SSLContext:
    """A CA in tmp_path/ca.pem and a server context for 127.0.0.1 signed by it."""
    ca_key, ca_cert = _ca_pem(tmp_path / "ca.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    return context


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({**group(), "auth": self.headers["Authorization"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def https_api(tmp_path: Path) -> Iterator[str]:
    """A real HTTPS server on loopback with a certificate of a test CA (tmp_path/ca.pem)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.socket = _server_tls(tmp_path).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_tls_verified_with_the_ca_file(https_api: str, tmp_path: Path) -> None:
    """With skiff's CA file the client reaches an HTTPS API and sends its bearer token."""
    client = SkiffClient(https_api, "tls-token", ca=str(tmp_path / "ca.pem"), timeout=5)
    assert client.get("rg", "web")["auth"] == "Bearer tls-token"


def test_tls_without_the_ca_says_to_set_skiff_ca(https_api: str) -> None:
    """Without the CA the certificate is refused, as one ConnectionFailed naming SKIFF_CA."""
    with pytest.raises(ApiError, match="SKIFF_CA") as info:
        SkiffClient(https_api, "tok", timeout=5).get("rg", "web")
    assert info.value.code == "ConnectionFailed"


def _trusts_test_ca(client: SkiffClient) -> bool:
    return any(("commonName", "skiff test CA") in rdn
               for cert in client.ssl_context.get_ca_certs() for rdn in cert["subject"])


def test_from_env_defaults_read_the_data_root(tmp_path: Path) -> None:
    """Without SKIFF_TOKEN/SKIFF_CA the token and CA come from the data root; URL and
    subscription have their defaults."""
    (tmp_path / "admin.token").write_text("root-token\n")
    _ca_pem(tmp_path / "ca.pem")
    rec = Recorder({})
    client = SkiffClient.from_env({"SKIFF_DATA_ROOT": str(tmp_path)},
                                  transport=httpx.MockTransport(rec))
    assert str(client.base_url) == DEFAULT_URL
    assert client.subscription == DEFAULT_SUBSCRIPTION
    assert _trusts_test_ca(client)
    with pytest.raises(ApiError):
        client.list()
    assert rec.requests[0].headers["Authorization"] == "Bearer root-token"
    assert rec.requests[0].url.path.startswith(f"/subscriptions/{DEFAULT_SUBSCRIPTION}/")


def test_from_env_explicit_settings_win(tmp_path: Path) -> None:
    """SKIFF_URL, SKIFF_TOKEN, SKIFF_CA and SKIFF_SUBSCRIPTION override the defaults."""
    (tmp_path / "admin.token").write_text("root-token")
    _ca_pem(tmp_path / "mine.pem")
    rec = Recorder({})
    client = SkiffClient.from_env({"SKIFF_DATA_ROOT": str(tmp_path / "nowhere"),
                                   "SKIFF_URL": "https://api.example:9443/",
                                   "SKIFF_TOKEN": "env-token", "SKIFF_SUBSCRIPTION": SUB,
                                   "SKIFF_CA": str(tmp_path / "mine.pem")},
                                  transport=httpx.MockTransport(rec))
    assert _trusts_test_ca(client)
    with pytest.raises(ApiError):
        client.get("rg", "web")
    (request,) = rec.requests
    assert (request.url.host, request.url.port) == ("api.example", 9443)
    assert request.url.path == GROUP_PATH
    assert request.headers["Authorization"] == "Bearer env-token"


def test_from_env_without_a_token_is_a_clear_error(tmp_path: Path) -> None:
    """No SKIFF_TOKEN and no readable admin.token: ClientConfigError naming both."""
    with pytest.raises(ClientConfigError, match="SKIFF_TOKEN") as info:
        SkiffClient.from_env({"SKIFF_DATA_ROOT": str(tmp_path)})
    assert str(tmp_path / "admin.token") in info.value.message


def test_unreadable_ca_is_a_clear_error(tmp_path: Path) -> None:
    """A CA file that is not a certificate: ClientConfigError naming it."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ClientConfigError, match=r"ca\.pem"):
        SkiffClient.from_env({"SKIFF_TOKEN": "t", "SKIFF_CA": str(bad)})


# --- websockets --------------------------------------------------------------------------------


@pytest.fixture
def ws_server() -> Iterator[tuple[Server, list[Any]]]:
    """A websocket server on loopback that records what it receives and echoes it upper-cased."""
    received: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        received.append(ws.recv())
        ws.send(b"ready\n")
        for message in ws:
            received.append(message)
            ws.send(str(message).upper())
            if message == "bye":
                return

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server, received
        server.shutdown()
        thread.join(5)


def test_websocket_sends_the_password_first(ws_server: tuple[Server, list[Any]]) -> None:
    """The password is the first message; then the stream is the caller's."""
    server, received = ws_server
    port = server.socket.getsockname()[1]
    client = SkiffClient(BASE, "tok")
    with client.websocket(WebSocketTarget(f"ws://127.0.0.1:{port}/", "s3cret")) as ws:
        assert ws.recv() == b"ready\n"
        ws.send("bye")
        assert ws.recv() == "BYE"
    assert received == ["s3cret", "bye"]


def test_websocket_failure_is_connection_failed() -> None:
    """No server behind the URI: ApiError ConnectionFailed, not a websockets exception."""
    client = SkiffClient(BASE, "tok", timeout=2)
    with pytest.raises(ApiError) as info, client.websocket(
            WebSocketTarget("ws://127.0.0.1:9/", "pw")):
        pytest.fail("connected to nothing")
    assert info.value.code == "ConnectionFailed"


def test_wss_is_verified_with_the_same_ca(tmp_path: Path) -> None:
    """A wss:// stream is verified with the client's CA file, password first."""
    received: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        received.append(ws.recv())
        ws.send("out")

    with serve(handler, "127.0.0.1", 0, ssl=_server_tls(tmp_path)) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        uri = f"wss://127.0.0.1:{server.socket.getsockname()[1]}/"
        client = SkiffClient(BASE, "tok", ca=str(tmp_path / "ca.pem"), timeout=30)
        with client.websocket(WebSocketTarget(uri, "pw")) as ws:
            assert ws.recv() == "out"
        with pytest.raises(ApiError, match="SKIFF_CA"), SkiffClient(BASE, "tok").websocket(
                WebSocketTarget(uri, "pw")):
            pytest.fail("an unknown CA was trusted")
        server.shutdown()
        thread.join(5)
    assert received == ["pw"]
