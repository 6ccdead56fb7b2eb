"""The official Azure SDK against a real skiff: the whole lifecycle of a group, and errors."""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ContainerGroupIdentity,
    EnvironmentVariable,
    ResourceRequests,
    ResourceRequirements,
    UserAssignedIdentities,
)

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "11111111-2222-3333-4444-555555555555"
API = "?api-version=2023-05-01"


class StaticToken:
    """A credential handing the SDK a skiff token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def sdk(skiff: RunningServer, token: str | None = None) -> ContainerInstanceManagementClient:
    return ContainerInstanceManagementClient(
        StaticToken(token or skiff.token), SUB, base_url=skiff.url,
        connection_verify=str(skiff.ca), polling_interval=0.2)


def raw(skiff: RunningServer, token: str | None = "") -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token or skiff.token}"}
    return httpx.Client(base_url=skiff.url, verify=ssl.create_default_context(cafile=skiff.ca),
                        headers=headers, timeout=30)


def group_model(images: BuiltImages, script: str = "echo hello; sleep 300") -> ContainerGroup:
    return ContainerGroup(
        location="local", os_type="Linux", restart_policy="Always",
        containers=[Container(
            name="main", image=images.bb, command=["sh", "-c", script],
            resources=ResourceRequirements(requests=ResourceRequests(cpu=0.5, memory_in_gb=0.5)),
            environment_variables=[EnvironmentVariable(name="SECRET", secure_value="hush-42")])])


def test_sdk_lifecycle(skiff: RunningServer, images: BuiltImages) -> None:
    """The SDK creates, reads, lists, logs, restarts, stops, starts and deletes a group."""
    client = sdk(skiff)
    created = client.container_groups.begin_create_or_update("rg1", "web", group_model(images)) \
        .result()
    assert created.provisioning_state == "Succeeded"
    got = client.container_groups.get("rg1", "web")
    assert got.containers[0].instance_view.current_state.state == "Running"
    assert got.containers[0].environment_variables[0].secure_value is None
    assert [g.name for g in client.container_groups.list_by_resource_group("rg1")] == ["web"]
    assert [g.name for g in client.container_groups.list()] == ["web"]
    eventually(lambda: client.containers.list_logs("rg1", "web", "main").content or "",
               until=lambda content: "hello" in content, what="the container's output",
               timeout_s=10)
    client.container_groups.begin_restart("rg1", "web").result()
    after = client.container_groups.get("rg1", "web")
    assert after.containers[0].instance_view.current_state.state == "Running"
    client.container_groups.stop("rg1", "web")
    assert client.container_groups.get("rg1", "web").instance_view.state == "Stopped"
    client.container_groups.begin_start("rg1", "web").result()
    assert client.container_groups.get("rg1", "web").instance_view.state == "Running"
    client.container_groups.begin_delete("rg1", "web").result()
    with pytest.raises(ResourceNotFoundError):
        client.container_groups.get("rg1", "web")
    assert skiff.server.plane.engine.group_ids() == []


def test_requests_without_a_valid_token_are_refused(skiff: RunningServer) -> None:
    """No token or a wrong one: 401 AuthenticationFailed (the SDK's ClientAuthenticationError)."""
    with pytest.raises(ClientAuthenticationError):
        sdk(skiff, token="skf_not-a-token").container_groups.get("rg1", "x")
    answer = raw(skiff, token=None).get(f"/subscriptions/{SUB}/resourceGroups/rg1/providers/"
                                        f"Microsoft.ContainerInstance/containerGroups/x{API}")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"


def test_bad_input_gets_arm_errors_never_500(skiff: RunningServer) -> None:
    """Malformed JSON, a missing api-version, an unknown path: ARM error bodies."""
    client = raw(skiff)
    path = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/" \
           "containerGroups/bad"
    answer = client.put(path + API, content=b"{not json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "InvalidRequestContent")
    answer = client.get(path)
    assert answer.json()["error"]["code"] == "MissingApiVersionParameter"
    answer = client.put(path + API, json={"location": "local", "properties": {
        "osType": "Windows", "containers": []}})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"]
    assert client.get("/nowhere" + API).status_code == 404


def test_subscription_tokens_see_only_their_subscription(
    skiff: RunningServer, images: BuiltImages
) -> None:
    """A token bound to subscription B gets 403 AuthorizationFailed for A's groups (ARM's
    answer to a caller without a role there) and never lists them."""
    store = skiff.server.plane.store
    _, token_a = store.create_token("sub-a", "a")
    _, token_b = store.create_token("sub-b", "b")
    body = {"location": "local", "properties": {"osType": "Linux", "containers": [{
        "name": "c", "properties": {"image": images.bb, "command": ["sleep", "300"],
                                    "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}
    path = "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
           "containerGroups/only-a" + API
    assert raw(skiff, token_a).put(path.format("sub-a"), json=body).status_code == 201
    assert raw(skiff, token_b).get(path.format("sub-a")).status_code == 403
    listed = raw(skiff, token_b).get(
        f"/subscriptions/sub-b/providers/Microsoft.ContainerInstance/containerGroups{API}")
    assert listed.json()["value"] == []
    assert raw(skiff, token_b).get(
        f"/subscriptions/sub-a/providers/Microsoft.ContainerInstance/containerGroups{API}"
    ).status_code == 403


def test_case_insensitive_paths(skiff: RunningServer, images: BuiltImages) -> None:
    """Paths are case-insensitive as in ARM."""
    client = sdk(skiff)
    client.container_groups.begin_create_or_update("MyRG", "web", group_model(images)).result()
    answer = raw(skiff).get(f"/SUBSCRIPTIONS/{SUB}/resourcegroups/myrg/providers/"
                            f"microsoft.containerinstance/CONTAINERGROUPS/web{API}")
    assert answer.status_code == 200
    assert answer.json()["name"] == "web"


def test_failed_image_pull_fails_provisioning(skiff: RunningServer, images: BuiltImages) -> None:
    """An image nobody has ends the create as provisioningState Failed, with a reason."""
    model = group_model(images)
    model.containers[0].image = f"{images.public.host}/nothing/here:1"
    with pytest.raises(HttpResponseError) as failed:
        sdk(skiff).container_groups.begin_create_or_update("rg1", "nope", model).result()
    assert "nothing/here" in str(failed.value)


def test_what_real_clients_found(skiff: RunningServer, images: BuiltImages) -> None:
    """Issue 14's compatibility items through the SDK: a group in ``eastus`` (an alias of the
    node, kept and answered back), its outboundNetworkDependenciesEndpoints (an empty list),
    its location's usages and capabilities, and begin_delete().result() giving the deleted
    group, as on ACI (None for a group that does not exist: ACI's 204)."""
    client = sdk(skiff)
    model = group_model(images)
    model.location = "eastus"
    created = client.container_groups.begin_create_or_update("rg1", "east", model).result()
    assert created.location == "eastus"
    assert created.provisioning_state == "Succeeded"
    assert client.container_groups.get_outbound_network_dependencies_endpoints(
        "rg1", "east") == []
    usages = {u.name.value: u.current_value for u in client.location.list_usage("eastus")}
    assert usages["ContainerGroups"] == 1
    assert [c.location for c in client.location.list_capabilities("eastus")] == ["eastus"]
    doubled = raw(skiff).get(f"/subscriptions/{SUB}/resourceGroups/rg1/providers/"
                             f"Microsoft.ContainerInstance//containerGroups/east{API}")
    assert doubled.status_code == 200
    assert doubled.json()["location"] == "eastus"
    deleted = client.container_groups.begin_delete("rg1", "east").result()
    assert isinstance(deleted, ContainerGroup)
    assert deleted.name == "east"
    assert deleted.location == "eastus"
    assert deleted.containers[0].image == images.bb
    with pytest.raises(ResourceNotFoundError):
        client.container_groups.get("rg1", "east")
    assert skiff.server.plane.engine.group_ids() == []
    assert client.container_groups.begin_delete("rg1", "east").result() is None


def test_a_body_as_az_sends_it_without_os_type_or_resources(skiff: RunningServer,
                                                           images: BuiltImages) -> None:
    """api-version 2024-05-01-preview (az 2.91's) and a body without osType and resources:
    a Linux group whose container runs with 1 CPU and 1.5 GB."""
    http = raw(skiff)
    url = (f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ContainerInstance/"
           f"containerGroups/bare?api-version=2024-05-01-preview")
    made = http.put(url, json={"location": "westeurope", "properties": {"containers": [
        {"name": "main", "properties": {"image": images.bb,
                                        "command": ["sh", "-c", "sleep 300"]}}]}})
    assert made.status_code == 201, made.text
    eventually(lambda: http.get(url).json()["properties"].get("instanceView", {}).get("state"),
               until=lambda state: state == "Running", what="the bare group running",
               timeout_s=60)
    got = http.get(url).json()
    assert got["location"] == "westeurope"
    assert got["properties"]["osType"] == "Linux"
    assert got["properties"]["containers"][0]["properties"]["resources"] == {
        "requests": {"cpu": 1.0, "memoryInGB": 1.5}}


def test_sdk_reads_a_groups_identities(skiff: RunningServer, images: BuiltImages) -> None:
    """The SDK's ContainerGroupIdentity round-trips: the system identity's principal and
    tenant, a user-assigned identity's principal and client, as ACI answers them."""
    uai = (f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/"
           "userAssignedIdentities/worker")
    with raw(skiff) as http:
        made = http.put(f"{uai}?api-version=2023-01-31", json={"location": "local"})
    assert made.status_code == 201, made.text
    model = group_model(images)
    model.identity = ContainerGroupIdentity(
        type="SystemAssigned, UserAssigned",
        user_assigned_identities={uai: UserAssignedIdentities()})
    created = sdk(skiff).container_groups.begin_create_or_update("rg1", "who", model).result()
    identity = created.identity
    assert identity is not None
    assert identity.type == "SystemAssigned, UserAssigned"
    assert identity.principal_id
    assert identity.tenant_id
    assigned = identity.user_assigned_identities[uai]
    assert assigned.principal_id == made.json()["properties"]["principalId"]
    assert assigned.client_id == made.json()["properties"]["clientId"]
    sdk(skiff).container_groups.begin_delete("rg1", "who").result()
