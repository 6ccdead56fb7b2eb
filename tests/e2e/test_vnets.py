"""Virtual networks end to end: Microsoft.Network's API, and private groups placed in subnets.

A real server, real groups (busybox httpd) and real traffic: the node (the
test process) reaches a private group; a public group's container does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from skiff.engine.network import subnets
from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
NET = "providers/Microsoft.Network/virtualNetworks"
ACI = "providers/Microsoft.ContainerInstance/containerGroups"
RG = "/subscriptions/sub-1/resourceGroups/rg"


def vnet_body(space: str = "10.210.0.0/16", **subnets_: str) -> dict[str, Any]:
    return {"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": [space]},
        "subnets": [{"name": n, "properties": {"addressPrefix": p}}
                    for n, p in subnets_.items()]}}


def subnet_id(vnet: str, subnet: str) -> str:
    return f"{RG}/{NET}/{vnet}/subnets/{subnet}"


def group_body(images: BuiltImages, subnet: str | None, command: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "osType": "Linux", "restartPolicy": "Never",
        "ipAddress": {"type": "Private" if subnet else "Public", "ports": [{"port": 80}]},
        "containers": [{"name": "c", "properties": {
            "image": images.bb, "command": ["sh", "-c", command], "ports": [{"port": 80}],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}
    if subnet:
        props["subnetIds"] = [{"id": subnet}]
    return {"location": "local", "properties": props}


def error(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["error"]["code"])


def test_virtual_networks_are_resources_with_arm_rules(skiff: RunningServer) -> None:
    """PUT/GET/list/DELETE of networks and subnets, with Azure's refusals."""
    http = skiff.client()
    made = http.put(f"{RG}/{NET}/net1{API}", json=vnet_body(default="10.210.1.0/24"))
    assert made.status_code == 201, made.text
    doc = made.json()
    assert doc["id"] == f"{RG}/{NET}/net1"
    assert doc["type"] == "Microsoft.Network/virtualNetworks"
    assert doc["properties"]["provisioningState"] == "Succeeded"
    assert doc["properties"]["subnets"][0]["id"] == subnet_id("net1", "default")
    assert http.get(f"{RG}/{NET}/NET1{API}").json()["name"] == "net1"  # names ignore case
    sub = http.put(f"{RG}/{NET}/net1/subnets/more{API}",
                   json={"properties": {"addressPrefix": "10.210.2.0/24"}})
    assert sub.status_code == 201, sub.text
    assert [s["name"] for s in http.get(f"{RG}/{NET}/net1/subnets{API}").json()["value"]] == [
        "default", "more"]
    assert [v["name"] for v in http.get(f"{RG}/{NET}{API}").json()["value"]] == ["net1"]
    # Azure's rules.
    assert error(http.put(f"{RG}/{NET}/net1/subnets/out{API}", json={
        "properties": {"addressPrefix": "10.99.0.0/24"}})) == "NetcfgSubnetRangeOutsideVnet"
    assert error(http.put(f"{RG}/{NET}/net1/subnets/lap{API}", json={
        "properties": {"addressPrefix": "10.210.1.128/25"}})) == "NetcfgSubnetRangesOverlap"
    assert error(http.put(f"{RG}/{NET}/net1/subnets/tiny{API}", json={
        "properties": {"addressPrefix": "10.210.3.0/30"}})) == "NetcfgInvalidSubnet"
    assert error(http.put(f"{RG}/{NET}/bad{API}", json=vnet_body("10.1.2.3/16"))
                 ) == "InvalidAddressPrefix"
    # The node's own rules: no overlap with another network or the public one.
    assert error(http.put(f"{RG}/{NET}/net2{API}", json=vnet_body("10.210.128.0/17"))
                 ) == "VirtualNetworkAddressSpaceConflict"
    public = skiff.server.node.networks.subnet
    assert error(http.put(f"{RG}/{NET}/net3{API}", json=vnet_body(public))
                 ) == "VirtualNetworkAddressSpaceConflict"
    assert http.get(f"{RG}/{NET}/net2{API}").status_code == 404
    assert http.delete(f"{RG}/{NET}/net1/subnets/more{API}").status_code == 200
    assert http.delete(f"{RG}/{NET}/net1{API}").status_code == 200
    assert http.delete(f"{RG}/{NET}/net1{API}").status_code == 204
    assert http.get(f"{RG}/{NET}/net1{API}").status_code == 404


def test_a_private_group_runs_in_its_subnet_and_holds_it(
    skiff: RunningServer, images: BuiltImages, tmp_path: Path
) -> None:
    """A group with subnetIds gets the subnet's 5th address, serves the node, is
    unreachable from a public group, and keeps its subnet and network from being
    deleted until it is gone; then the node is clean."""
    http = skiff.client()
    assert http.put(f"{RG}/{NET}/net1{API}",
                    json=vnet_body(default="10.210.1.0/24")).status_code == 201
    missing = http.put(f"{RG}/{ACI}/priv{API}", json=group_body(
        images, subnet_id("net1", "nope"), "true"))
    assert error(missing) == "SubnetNotFound"
    assert http.get(f"{RG}/{ACI}/priv{API}").status_code == 404

    serve = "mkdir -p /www && echo private > /www/index.html && httpd -f -p 80 -h /www"
    made = http.put(f"{RG}/{ACI}/priv{API}",
                    json=group_body(images, subnet_id("net1", "default"), serve))
    assert made.status_code == 201, made.text
    group = settled(http, f"{RG}/{ACI}/priv{API}")
    assert group["properties"]["provisioningState"] == "Succeeded", group
    ip = group["properties"]["ipAddress"]["ip"]
    assert ip == "10.210.1.4"
    assert group["properties"]["ipAddress"]["type"] == "Private"
    assert group["properties"]["subnetIds"] == [{"id": subnet_id("net1", "default")}]
    page = eventually(lambda: httpx.get(f"http://{ip}/", timeout=2).text,  # as probes do
                      what=f"the node reaches {ip}", timeout_s=10, ignore=(httpx.TransportError,))
    assert page == "private\n"

    fetch = f"timeout 3 wget -q -O - http://{ip}/ && echo reached || echo blocked"
    public = http.put(f"{RG}/{ACI}/pub{API}", json=group_body(images, None, fetch))
    assert public.status_code == 201, public.text
    logs: str = eventually(
        lambda: http.get(f"{RG}/{ACI}/pub/containers/c/logs{API}").json().get("content", ""),
        until=lambda content: "blocked" in content or "reached" in content,
        what="the public group's fetch ends", timeout_s=30)
    assert "blocked" in logs, logs
    assert "reached" not in logs, logs

    assert error(http.delete(f"{RG}/{NET}/net1{API}")) == "InUseSubnetCannotBeDeleted"
    assert error(http.delete(f"{RG}/{NET}/net1/subnets/default{API}")
                 ) == "InUseSubnetCannotBeDeleted"
    assert error(http.put(f"{RG}/{NET}/net1{API}", json=vnet_body(other="10.210.2.0/24"))
                 ) == "InUseSubnetCannotBeDeleted"
    assert error(http.put(f"{RG}/{NET}/net1{API}", json=vnet_body(default="10.210.1.0/25"))
                 ) == "InUseSubnetCannotBeUpdated"

    assert http.delete(f"{RG}/{ACI}/priv{API}").status_code in (200, 202)
    eventually(lambda: http.delete(f"{RG}/{ACI}/priv{API}").status_code == 204,
               what="the private group is torn down and forgotten", timeout_s=30)
    deleted = http.delete(f"{RG}/{NET}/net1{API}")
    assert deleted.status_code == 200, deleted.text
    prefix = subnets.vnet_prefix(skiff.settings.data_root, f"{RG}/{NET}/net1".lower())
    assert not any(d.name.startswith(prefix) for d in Path("/sys/class/net").iterdir())
    assert not subnets.isolation_installed(prefix)


def test_another_subscriptions_subnet_is_refused_over_https(skiff: RunningServer,
                                                            images: BuiltImages) -> None:
    """A token of another subscription cannot place a group in sub-1's subnet, however it
    spells the subscription: 403 LinkedAuthorizationFailed, nothing created, and sub-1's
    network stays its own to delete."""
    admin = skiff.client()
    assert admin.put(f"{RG}/{NET}/net1{API}",
                     json=vnet_body(default="10.210.1.0/24")).status_code == 201
    _, secret = skiff.server.plane.store.create_token("sub-2", "intruder")
    bob = skiff.client()
    bob.headers["Authorization"] = f"Bearer {secret}"
    mine = "/subscriptions/sub-2/resourceGroups/rg"
    for spelling in (subnet_id("net1", "default"),
                     subnet_id("net1", "default").replace("sub-1", "SUB-1")):
        refused = bob.put(f"{mine}/{ACI}/intruder{API}",
                          json=group_body(images, spelling, "true"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "LinkedAuthorizationFailed"
    assert bob.get(f"{mine}/{ACI}/intruder{API}").status_code == 404
    assert admin.delete(f"{RG}/{NET}/net1{API}").status_code == 200
