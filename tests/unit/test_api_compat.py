"""What real clients found (issue 14), in process over the FakeEngine: empty path segments,
outboundNetworkDependenciesEndpoints, bodies without osType or resources under the newer
api-versions, and Azure region names as aliases of the node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.settings import ApiSettings, Settings
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from skiff.testing.waiting import eventually

SUB = "sub-1"
API = "?api-version=2023-05-01"
PREVIEW = "?api-version=2024-05-01-preview"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
PROVIDER = "providers/Microsoft.ContainerInstance"
GROUPS = f"{RG}/{PROVIDER}/containerGroups"
LOCATIONS = f"/subscriptions/{SUB}/{PROVIDER}/locations"
NETS = f"{RG}/providers/Microsoft.Network/virtualNetworks"
ACCOUNTS = f"{RG}/providers/Microsoft.Storage/storageAccounts"
IMAGE = "registry.test/busybox:1"


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


def plane_with(tmp_path: Path, **api: Any) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path, Settings(data_root=tmp_path, api=ApiSettings(**api))) as running:
        yield running


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    yield from plane_with(tmp_path)


def client(plane: ControlPlane, portal: BlockingPortal, sub: str = SUB) -> InProcessClient:
    _, secret = plane.store.create_token(sub, "tests")
    return InProcessClient(portal, create_app(plane), secret)


@pytest.fixture
def http(plane: ControlPlane, portal: BlockingPortal) -> InProcessClient:
    return client(plane, portal)


def group_body(location: str | None = "local", **props: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"image": IMAGE, "command": ["sleep", "300"],
                                 "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}
    body: dict[str, Any] = {"properties": {"osType": "Linux", "containers": [
        {"name": "c", "properties": container}], **props}}
    if location is not None:
        body["location"] = location
    return body


def succeeded(http: InProcessClient, answer: httpx.Response) -> dict[str, Any]:
    url = answer.headers["Azure-AsyncOperation"]
    assert url.startswith(BASE)
    done = eventually(lambda: (doc if (doc := http.get(url).json())["status"] != "InProgress"
                               else None), what="the operation to end")
    assert done is not None
    assert done["status"] == "Succeeded", done
    return dict(done)


def error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text
    return str(answer.json()["error"]["message"])


# ---- paths --------------------------------------------------------------------------------


def test_empty_path_segments_are_dropped_as_arm_drops_them(http: InProcessClient) -> None:
    """az container export and create --file send ``Microsoft.ContainerInstance//containerGroups``:
    the same routes answer, for PUT and GET alike."""
    double = f"{RG}/{PROVIDER}//containerGroups/g{API}"
    made = http.put(double, json=group_body())
    assert made.status_code == 201, made.text
    succeeded(http, made)
    got = http.get(double)
    assert got.status_code == 200
    assert got.json()["id"] == f"{RG}/{PROVIDER}/containerGroups/g"
    assert http.get(f"/subscriptions//{SUB}///resourceGroups/rg/{PROVIDER}/containerGroups/g"
                    f"{API}").status_code == 200


# ---- outboundNetworkDependenciesEndpoints -------------------------------------------------


def test_outbound_network_dependencies_is_an_empty_array(
        http: InProcessClient, plane: ControlPlane, portal: BlockingPortal) -> None:
    """An existing group: 200 ``[]`` (ACI's answer is a JSON array of strings). No such
    group: 404; another subscription's: 403 AuthorizationFailed; no token: 401."""
    succeeded(http, http.put(f"{GROUPS}/g{API}", json=group_body()))
    path = "outboundNetworkDependenciesEndpoints"
    answer = http.get(f"{GROUPS}/g/{path}{API}")
    assert answer.status_code == 200
    assert answer.json() == []
    assert http.get(f"{GROUPS}/g/outboundnetworkdependenciesendpoints{API}").json() == []
    missing = error(http.get(f"{GROUPS}/nope/{path}{API}"), 404, "ResourceNotFound")
    assert "nope" in missing
    other = client(plane, portal, "sub-2")
    error(other.get(f"{GROUPS}/g/{path}{API}"), 403, "AuthorizationFailed")
    theirs = f"/subscriptions/sub-2/resourceGroups/rg/{PROVIDER}/containerGroups/g/{path}{API}"
    error(other.get(theirs), 404, "ResourceNotFound")
    anonymous = InProcessClient(portal, create_app(plane), None)
    assert anonymous.get(f"{GROUPS}/g/{path}{API}").status_code == 401


# ---- api-versions: osType and resources ---------------------------------------------------


def bare_body() -> dict[str, Any]:
    """What az 2.91 sends without --os-type, --cpu and --memory."""
    return {"location": "local", "properties": {"containers": [
        {"name": "c", "properties": {"image": IMAGE, "command": ["sleep", "300"]}}]}}


def test_a_body_without_os_type_or_resources_gets_aci_defaults(http: InProcessClient) -> None:
    """api-version 2024-05-01-preview (az 2.91's): a Linux group, the container 1 CPU and
    1.5 GB; the group answers them back."""
    made = http.put(f"{GROUPS}/g{PREVIEW}", json=bare_body())
    assert made.status_code == 201, made.text
    succeeded(http, made)
    got = http.get(f"{GROUPS}/g{PREVIEW}").json()["properties"]
    assert got["osType"] == "Linux"
    assert got["containers"][0]["properties"]["resources"] == {
        "requests": {"cpu": 1.0, "memoryInGB": 1.5}}
    assert got["instanceView"]["state"] == "Running"


@pytest.mark.parametrize("version", ["2023-05-01", "2021-10-01"])
def test_older_api_versions_still_require_os_type_and_resources(http: InProcessClient,
                                                                version: str) -> None:
    """Before 2024-05-01-preview ACI's specification requires both: its errors."""
    no_os = bare_body()
    no_os["properties"]["containers"][0]["properties"]["resources"] = {
        "requests": {"cpu": 1, "memoryInGB": 1}}
    error(http.put(f"{GROUPS}/g?api-version={version}", json=no_os), 400, "InvalidOsType")
    no_resources = bare_body()
    no_resources["properties"]["osType"] = "Linux"
    error(http.put(f"{GROUPS}/g?api-version={version}", json=no_resources), 400,
          "ResourceRequestsNotSpecified")


# ---- locations ----------------------------------------------------------------------------


def test_an_azure_region_is_an_alias_of_the_node(http: InProcessClient) -> None:
    """``eastus`` (as Microsoft's samples have it) is placed here and kept: the group answers
    it, its operation URL and FQDN carry it; ``West Europe`` is ``westeurope``."""
    labelled = group_body("eastus", ipAddress={"type": "Public", "dnsNameLabel": "webapp",
                                               "ports": [{"port": 80}]})
    labelled["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    made = http.put(f"{GROUPS}/g{API}", json=labelled)
    assert made.status_code == 201, made.text
    assert made.json()["location"] == "eastus"
    assert f"/{PROVIDER}/locations/eastus/operations/" in made.headers["Azure-AsyncOperation"]
    succeeded(http, made)
    got = http.get(f"{GROUPS}/g{API}").json()
    assert got["location"] == "eastus"
    assert got["properties"]["ipAddress"]["fqdn"].startswith("webapp.eastus.")
    spaced = http.put(f"{GROUPS}/h{API}", json=group_body("West Europe"))
    assert spaced.status_code == 201, spaced.text
    assert spaced.json()["location"] == "westeurope"
    assert http.put(f"{GROUPS}/i{API}", json=group_body(None)).json()["location"] == "local"
    # One place or not, a resource stays in the location it was created in, as in ARM.
    error(http.put(f"{GROUPS}/g{API}", json=group_body("westus")), 409,
          "InvalidResourceLocation")
    assert http.put(f"{GROUPS}/g{API}", json=group_body("East US")).status_code == 200


def test_an_unknown_location_gets_arms_error(http: InProcessClient) -> None:
    """Neither an Azure region nor the node's name: 400 LocationNotAvailableForResourceType,
    naming the resource type and the regions it is available in."""
    message = error(http.put(f"{GROUPS}/g{API}", json=group_body("atlantis")), 400,
                    "LocationNotAvailableForResourceType")
    assert "'atlantis'" in message
    assert "Microsoft.ContainerInstance/containerGroups" in message
    assert "eastus" in message
    assert "local" in message


def test_location_routes_answer_for_every_alias(http: InProcessClient) -> None:
    """usages, capabilities and cachedImages under an Azure region's name; capabilities
    names the location asked for. An unknown location: 404."""
    succeeded(http, http.put(f"{GROUPS}/g{API}", json=group_body("eastus")))
    usages = http.get(f"{LOCATIONS}/eastus/usages{API}")
    assert usages.status_code == 200
    counts = {u["name"]["value"]: u["currentValue"] for u in usages.json()["value"]}
    assert counts["ContainerGroups"] == 1
    assert counts["StandardCores"] == 0.5
    capabilities = http.get(f"{LOCATIONS}/EastUS/capabilities{API}")
    assert capabilities.status_code == 200
    assert capabilities.json()["value"][0]["location"] == "eastus"
    assert http.get(f"{LOCATIONS}/eastus/cachedImages{API}").status_code == 200
    assert http.get(f"{LOCATIONS}/local/usages{API}").status_code == 200
    for route in ("usages", "capabilities", "cachedImages"):
        error(http.get(f"{LOCATIONS}/atlantis/{route}{API}"), 404,
              "LocationNotAvailableForResourceType")


def test_other_resource_types_take_region_names_too(http: InProcessClient) -> None:
    """Resource groups, virtual networks and storage accounts: an Azure region is accepted
    and answered back; an unknown location gets ARM's error for the type."""
    rg = http.put(f"{RG}{API}", json={"location": "East US"})
    assert rg.status_code == 201, rg.text
    assert rg.json()["location"] == "eastus"
    error(http.put(f"/subscriptions/{SUB}/resourceGroups/rg2{API}",
                   json={"location": "atlantis"}), 400, "LocationNotAvailableForResourceGroup")
    vnet = {"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.210.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.210.1.0/24"}}]}}
    made = http.put(f"{NETS}/net{API}", json=vnet)
    assert made.status_code == 201, made.text
    assert http.get(f"{NETS}/net{API}").json()["location"] == "westeurope"
    message = error(http.put(f"{NETS}/net2{API}", json={**vnet, "location": "atlantis"}),
                    400, "LocationNotAvailableForResourceType")
    assert "Microsoft.Network/virtualNetworks" in message
    account = {"location": "eastus2", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    made = http.put(f"{ACCOUNTS}/acct1{API}", json=account)
    assert made.status_code == 200, made.text
    assert made.json()["location"] == "eastus2"
    assert made.json()["properties"]["primaryLocation"] == "eastus2"
    message = error(http.put(f"{ACCOUNTS}/acct2{API}", json={**account, "location": "atlantis"}),
                    400, "LocationNotAvailableForResourceType")
    assert "Microsoft.Storage/storageAccounts" in message


def test_the_operator_may_restrict_locations(tmp_path: Path, portal: BlockingPortal) -> None:
    """``--locations westeurope``: that name and the node's own are served, no other."""
    for restricted in plane_with(tmp_path, location="edge-1", locations=("westeurope",)):
        http = client(restricted, portal)
        message = error(http.put(f"{GROUPS}/g{API}", json=group_body("eastus")), 400,
                        "LocationNotAvailableForResourceType")
        assert "'edge-1,westeurope'" in message
        assert http.put(f"{GROUPS}/g{API}", json=group_body("WestEurope")).json()[
            "location"] == "westeurope"
        assert http.put(f"{GROUPS}/h{API}", json=group_body("EDGE-1")).json()[
            "location"] == "edge-1"
        assert http.put(f"{GROUPS}/i{API}", json=group_body(None)).json()[
            "location"] == "edge-1"
        error(http.put(f"{RG}2{API}", json={"location": "eastus"}), 400,
              "LocationNotAvailableForResourceGroup")
        error(http.get(f"{LOCATIONS}/eastus/usages{API}"), 404,
              "LocationNotAvailableForResourceType")
