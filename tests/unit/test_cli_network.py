"""Unit tests for ``skiff network vnet ...`` and ``skiff container create --vnet/--subnet``:
the az-style commands against a fake API (httpx.MockTransport) that applies the network
rules of skiff's API, their request shapes, output formats and errors."""

from __future__ import annotations

import ipaddress
import json
import re
from copy import deepcopy
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.cli.network import default_subnet_prefix, vnet_body
from skiff.client import API_VERSION, SkiffClient
from skiff.testing.fakearm import BASE, SUB, FakeArm, failed, ok

NETWORK = "/providers/Microsoft.Network/virtualNetworks"
_VNETS = re.compile(rf"^/subscriptions/([^/]+)(?:/resourceGroups/([^/]+))?{NETWORK}$")
_VNET = re.compile(rf"^/subscriptions/([^/]+)/resourceGroups/([^/]+){NETWORK}/([^/]+)"
                   r"(?:/subnets(?:/([^/]+))?)?$")
ACI = "Microsoft.ContainerInstance/containerGroups"


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def vnet_id(rg: str, name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}{NETWORK}/{name}"


class FakeNetwork:
    """skiff's Microsoft.Network routes in memory, with the API's rules: a subnet inside its
    network's address space, /29 or larger, overlapping no other; a subnet a group is in
    cannot be deleted (nor its network); answers at once, provisioningState Succeeded."""

    def __init__(self) -> None:
        # (rg, vnet) -> {"location", "prefixes", "subnets": {name: properties}}
        self.vnets: dict[tuple[str, str], dict[str, Any]] = {}
        #: Subnet ids (lower case) that container groups are placed in.
        self.in_use: set[str] = set()
        self.requests: list[httpx.Request] = []

    def add(self, rg: str, name: str, prefixes: list[str],
            subnets: dict[str, dict[str, Any]] | None = None) -> None:
        self.vnets[(rg, name)] = {"location": "westeurope", "prefixes": prefixes,
                                  "subnets": deepcopy(subnets or {})}

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]

    def subnet_view(self, rg: str, vnet: str, name: str) -> dict[str, Any]:
        props = self.vnets[(rg, vnet)]["subnets"][name]
        return {"id": f"{vnet_id(rg, vnet)}/subnets/{name}", "name": name, "etag": 'W/"1"',
                "type": "Microsoft.Network/virtualNetworks/subnets",
                "properties": {**deepcopy(props), "provisioningState": "Succeeded"}}

    def view(self, rg: str, name: str) -> dict[str, Any]:
        record = self.vnets[(rg, name)]
        return {"id": vnet_id(rg, name), "name": name, "etag": 'W/"1"',
                "type": "Microsoft.Network/virtualNetworks", "location": record["location"],
                "tags": {}, "properties": {
                    "addressSpace": {"addressPrefixes": list(record["prefixes"])},
                    "provisioningState": "Succeeded", "resourceGuid": "guid-1",
                    "subnets": [self.subnet_view(rg, name, s) for s in record["subnets"]]}}

    def exists(self, subnet_id: str) -> bool:
        m = _VNET.match(subnet_id)
        return bool(m and m[4] and (m[2], m[3]) in self.vnets
                    and m[4] in self.vnets[(m[2], m[3])]["subnets"])

    def _check(self, prefixes: list[str], subnets: dict[str, dict[str, Any]]) -> str | None:
        """The API's subnet rules: the first broken one's code, or None."""
        space = [ipaddress.IPv4Network(p) for p in prefixes]
        seen: list[ipaddress.IPv4Network] = []
        for props in subnets.values():
            text = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
            if text is None:
                return "NetcfgInvalidSubnet"
            net = ipaddress.IPv4Network(text)
            if net.prefixlen > 29:
                return "NetcfgInvalidSubnet"
            if not any(net.subnet_of(s) for s in space):
                return "NetcfgSubnetRangeOutsideVnet"
            if any(net.overlaps(other) for other in seen):
                return "NetcfgSubnetRangesOverlap"
            seen.append(net)
        return None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        if m := _VNETS.match(path):
            keys = sorted(k for k in self.vnets if m[2] is None or k[0] == m[2])
            return httpx.Response(200, json={"value": [self.view(*k) for k in keys]})
        m = _VNET.match(path)
        if m is None:
            return _error(404, "NoRoute", path)
        rg, name, subnet = m[2], m[3], m[4]
        is_subnet = path.endswith("/subnets") or subnet is not None
        key = (rg, name)
        if not is_subnet:
            return self._vnet(request, key)
        if key not in self.vnets:
            return (httpx.Response(204) if method == "DELETE" else
                    _error(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/"
                           f"virtualNetworks/{name}' was not found."))
        subnets = self.vnets[key]["subnets"]
        if subnet is None:
            return httpx.Response(200, json={"value": [self.subnet_view(rg, name, s)
                                                       for s in subnets]})
        if method == "GET":
            if subnet not in subnets:
                return _error(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/"
                              f"virtualNetworks/{name}/subnets/{subnet}' was not found.")
            return httpx.Response(200, json=self.subnet_view(rg, name, subnet))
        if method == "DELETE":
            if f"{vnet_id(rg, name)}/subnets/{subnet}".lower() in self.in_use:
                return _error(400, "InUseSubnetCannotBeDeleted", f"Subnet {subnet} is in use.")
            return httpx.Response(200 if subnets.pop(subnet, None) is not None else 204)
        props = {k: v for k, v in json.loads(request.content)["properties"].items()
                 if k != "provisioningState"}
        code = self._check(self.vnets[key]["prefixes"], {**subnets, subnet: props})
        if code:
            return _error(400, code, f"Subnet '{subnet}' is refused.")
        created = subnet not in subnets
        subnets[subnet] = props
        return httpx.Response(201 if created else 200, json=self.subnet_view(rg, name, subnet))

    def _vnet(self, request: httpx.Request, key: tuple[str, str]) -> httpx.Response:
        if request.method == "GET":
            if key not in self.vnets:
                return _error(404, "ResourceNotFound", f"The Resource 'Microsoft.Network/"
                              f"virtualNetworks/{key[1]}' was not found.")
            return httpx.Response(200, json=self.view(*key))
        if request.method == "DELETE":
            if any(i.startswith(vnet_id(*key).lower() + "/") for i in self.in_use):
                return _error(400, "InUseSubnetCannotBeDeleted", "A subnet is in use.")
            return httpx.Response(200 if self.vnets.pop(key, None) is not None else 204)
        body = json.loads(request.content)
        props = body["properties"]
        prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
        if not prefixes:
            return _error(400, "InvalidAddressPrefix", "No address space.")
        subnets = {s["name"]: s.get("properties", {}) for s in props.get("subnets", [])}
        code = self._check(prefixes, subnets)
        if code:
            return _error(400, code, "A subnet is refused.")
        created = key not in self.vnets
        self.vnets[key] = {"location": body.get("location", "local"), "prefixes": prefixes,
                           "subnets": subnets}
        return httpx.Response(201 if created else 200, json=self.view(*key))


class FakeApi:
    """Groups (FakeArm) and networks (FakeNetwork) behind one transport, with the API's
    rules for a group in a subnet: one subnetIds entry naming a subnet that exists, a
    Private IP address (or none), no DNS name label; Private needs a subnet."""

    def __init__(self) -> None:
        self.arm, self.net = FakeArm(polls=1), FakeNetwork()
        self.requests: list[httpx.Request] = []

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "/providers/Microsoft.Network/" in request.url.path:
            return self.net(request)
        if request.method == "PUT" and "/containerGroups/" in request.url.path:
            props = json.loads(request.content)["properties"]
            refused = self._group_rule(props)
            if refused:
                return _error(400, refused, "The group is refused.")
            if props.get("subnetIds"):
                self.net.in_use.add(props["subnetIds"][0]["id"].lower())
        return self.arm(request)

    def _group_rule(self, props: dict[str, Any]) -> str | None:
        ip, subnets = props.get("ipAddress"), props.get("subnetIds")
        if not subnets:
            return "PrivateIpAddressRequiresSubnet" if ip and ip["type"] == "Private" else None
        if len(subnets) != 1:
            return "InvalidSubnetId"
        if not self.net.exists(subnets[0]["id"]):
            return "SubnetNotFound"
        if ip and ip["type"] != "Private":
            return "PublicIpAddressNotSupportedInSubnet"
        if ip and "dnsNameLabel" in ip:
            return "DnsNameLabelNotSupportedInSubnet"
        return None


def run(api: Any, *args: str) -> Result:
    """``skiff ARGS`` against ``api`` (a MockTransport handler)."""
    def factory() -> SkiffClient:
        return SkiffClient(BASE, "tok", subscription=SUB, transport=httpx.MockTransport(api))

    return CliRunner().invoke(main, list(args), obj=factory)


@pytest.fixture
def api() -> FakeApi:
    """A fake API whose resource group rg holds vnet1 (10.0.0.0/16) with subnet default."""
    fake = FakeApi()
    fake.net.add("rg", "vnet1", ["10.0.0.0/16"],
                 {"default": {"addressPrefix": "10.0.0.0/24"}})
    return fake


def net_bodies(api: FakeApi, method: str = "PUT") -> list[tuple[str, Any]]:
    return [(r.url.path, json.loads(r.content)) for r in api.net.requests
            if r.method == method]


# --- vnet create -------------------------------------------------------------------------------


def test_vnet_create_defaults_match_az(api: FakeApi) -> None:
    """Without flags the network is 10.0.0.0/16, without subnets, in the resource group's
    location; it prints {"newVNet": ...} flattened with its resourceGroup."""
    result = ok(run(api, "network", "vnet", "create", "-g", "rg", "-n", "v2"))
    assert net_bodies(api) == [(vnet_id("rg", "v2"), {"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}})]
    put = next(r for r in api.requests if r.method == "PUT")
    assert put.url.params["api-version"] == API_VERSION
    shown = json.loads(result.stdout)["newVNet"]
    assert shown["addressSpace"] == {"addressPrefixes": ["10.0.0.0/16"]}
    assert shown["provisioningState"] == "Succeeded"
    assert shown["resourceGroup"] == "rg"
    assert "properties" not in shown


def test_vnet_create_with_subnet_name_defaults_its_prefix(api: FakeApi) -> None:
    """--subnet-name alone gets 10.0.0.0/24, as in az; --location wins over the group's."""
    ok(run(api, "network", "vnet", "create", "-g", "rg", "-n", "v2", "--subnet-name", "s1",
           "-l", "local", "-o", "none"))
    assert net_bodies(api)[0][1] == {"location": "local", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "s1", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}


def test_vnet_create_takes_space_separated_prefixes(api: FakeApi) -> None:
    """--address-prefixes and --subnet-prefixes take several values after one flag."""
    ok(run(api, "network", "vnet", "create", "-g", "rg", "-n", "v2", "--address-prefixes",
           "10.1.0.0/16", "10.2.0.0/16", "--subnet-name", "s1", "--subnet-prefixes",
           "10.2.1.0/24", "-o", "none"))
    props = net_bodies(api)[0][1]["properties"]
    assert props["addressSpace"]["addressPrefixes"] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert props["subnets"] == [{"name": "s1", "properties": {"addressPrefix": "10.2.1.0/24"}}]


@pytest.mark.parametrize(("vnet", "subnet"), [
    ("10.0.0.0/16", "10.0.0.0/24"), ("192.168.0.0/16", "192.168.0.0/24"),
    ("172.16.4.0/26", "172.16.4.0/26"),
])
def test_default_subnet_prefix_is_azs(vnet: str, subnet: str) -> None:
    """The default subnet is the network's first address with a /24 mask, or the
    network's own mask when it is narrower (az's rule)."""
    assert default_subnet_prefix(vnet) == subnet


def test_vnet_body_without_subnet_has_no_subnets() -> None:
    """vnet_body's defaults are az's: one 10.0.0.0/16 prefix, no subnet, no location."""
    assert vnet_body() == {"properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}


def test_vnet_create_subnet_prefixes_need_a_subnet_name(api: FakeApi) -> None:
    """--subnet-prefixes without --subnet-name is a usage error, before any request."""
    result = run(api, "network", "vnet", "create", "-g", "rg", "-n", "v2",
                 "--subnet-prefixes", "10.0.0.0/24")
    assert result.exit_code == 2
    assert "--subnet-name NAME" in result.stderr
    assert api.requests == []


def test_vnet_create_refused_subnet_is_one_error_line(api: FakeApi) -> None:
    """A subnet outside the address space is the API's 400, printed as one line."""
    result = run(api, "network", "vnet", "create", "-g", "rg", "-n", "v2", "--address-prefixes",
                 "10.1.0.0/16", "--subnet-name", "s1", "--subnet-prefixes", "10.9.0.0/24")
    assert failed(result).startswith("ERROR: (NetcfgSubnetRangeOutsideVnet) ")


# --- vnet show, list, delete ---------------------------------------------------------------------


def test_vnet_show_is_flattened_with_subnets(api: FakeApi) -> None:
    """show prints the network as az does: properties lifted, its subnets' too, with their
    resourceGroup."""
    shown = json.loads(ok(run(api, "network", "vnet", "show", "-g", "rg", "-n",
                              "vnet1")).stdout)
    assert shown["id"] == vnet_id("rg", "vnet1")
    assert shown["resourceGuid"] == "guid-1"
    (subnet,) = shown["subnets"]
    assert subnet["addressPrefix"] == "10.0.0.0/24"
    assert subnet["resourceGroup"] == "rg"
    assert "properties" not in subnet


def test_vnet_show_missing_exits_3(api: FakeApi) -> None:
    """A network that is not there is ResourceNotFound, exit 3 as in az, one line."""
    line = failed(run(api, "network", "vnet", "show", "-g", "rg", "-n", "nope"), 3)
    assert line.startswith("ERROR: (ResourceNotFound) ")


def test_vnet_list_table_is_azs(api: FakeApi) -> None:
    """list -o table has az's vnet columns: name, group, location, subnets, prefixes."""
    api.net.add("rg", "vnet2", ["10.1.0.0/16", "10.2.0.0/16"])
    out = ok(run(api, "network", "vnet", "list", "-g", "rg", "-o", "table")).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["Name", "ResourceGroup", "Location", "NumSubnets", "Prefixes",
                                "DnsServers"]
    assert lines[2].split() == ["vnet1", "rg", "westeurope", "1", "10.0.0.0/16"]
    assert lines[3].split() == ["vnet2", "rg", "westeurope", "0", "10.1.0.0/16,",
                                "10.2.0.0/16"]


def test_vnet_list_without_group_is_the_subscriptions(api: FakeApi) -> None:
    """list without -g asks for every network of the subscription."""
    api.net.add("other", "vnet9", ["10.9.0.0/16"])
    out = ok(run(api, "network", "vnet", "list", "--query", "[].name", "-o", "tsv")).stdout
    assert sorted(out.split()) == ["vnet1", "vnet9"]
    assert api.calls() == [("GET", f"/subscriptions/{SUB}{NETWORK}")]


def test_vnet_show_yaml_and_none(api: FakeApi) -> None:
    """-o yaml prints the same view as json; -o none prints nothing."""
    shown = yaml.safe_load(ok(run(api, "network", "vnet", "show", "-g", "rg", "-n", "vnet1",
                                  "-o", "yaml")).stdout)
    assert shown["name"] == "vnet1"
    assert ok(run(api, "network", "vnet", "show", "-g", "rg", "-n", "vnet1",
                  "-o", "none")).stdout == ""


def test_vnet_delete_and_delete_in_use(api: FakeApi) -> None:
    """delete removes the network and prints nothing; a network a group is in is refused
    with the API's InUseSubnetCannotBeDeleted on one line."""
    api.net.add("rg", "busy", ["10.5.0.0/16"], {"s": {"addressPrefix": "10.5.0.0/24"}})
    api.net.in_use.add(f"{vnet_id('rg', 'busy')}/subnets/s".lower())
    assert ok(run(api, "network", "vnet", "delete", "-g", "rg", "-n", "vnet1")).stdout == ""
    assert ("rg", "vnet1") not in api.net.vnets
    line = failed(run(api, "network", "vnet", "delete", "-g", "rg", "-n", "busy"))
    assert line.startswith("ERROR: (InUseSubnetCannotBeDeleted) ")
    assert ("rg", "busy") in api.net.vnets


# --- subnets ------------------------------------------------------------------------------------


def test_subnet_create_puts_its_prefix_and_delegations(api: FakeApi) -> None:
    """subnet create PUTs addressPrefix (and az-named delegations) under its network and
    prints the subnet flattened."""
    result = ok(run(api, "network", "vnet", "subnet", "create", "-g", "rg", "--vnet-name",
                    "vnet1", "-n", "s2", "--address-prefixes", "10.0.1.0/24",
                    "--delegations", ACI))
    assert net_bodies(api) == [(f"{vnet_id('rg', 'vnet1')}/subnets/s2", {"properties": {
        "addressPrefix": "10.0.1.0/24",
        "delegations": [{"name": "0", "properties": {"serviceName": ACI}}]}})]
    shown = json.loads(result.stdout)
    assert shown["addressPrefix"] == "10.0.1.0/24"
    assert shown["delegations"] == [{"name": "0", "serviceName": ACI}]
    assert shown["resourceGroup"] == "rg"


@pytest.mark.parametrize(("prefix", "code"), [
    ("10.1.0.0/24", "NetcfgSubnetRangeOutsideVnet"),
    ("10.0.0.128/25", "NetcfgSubnetRangesOverlap"),
    ("10.0.9.0/30", "NetcfgInvalidSubnet"),
])
def test_subnet_create_refusals_are_one_line(api: FakeApi, prefix: str, code: str) -> None:
    """The API's subnet rules (inside the space, no overlap, /29 or larger) reach the user
    as one ERROR line with the API's code."""
    result = run(api, "network", "vnet", "subnet", "create", "-g", "rg", "--vnet-name", "vnet1",
                 "-n", "s2", "--address-prefixes", prefix)
    assert failed(result).startswith(f"ERROR: ({code}) ")


def test_subnet_create_needs_address_prefixes(api: FakeApi) -> None:
    """--address-prefixes is required, as in az."""
    result = run(api, "network", "vnet", "subnet", "create", "-g", "rg", "--vnet-name", "vnet1",
                 "-n", "s2")
    assert result.exit_code == 2
    assert api.requests == []


def test_subnet_show_list_delete(api: FakeApi) -> None:
    """show and list print subnets flattened; delete removes one; a missing one exits 3."""
    shown = json.loads(ok(run(api, "network", "vnet", "subnet", "show", "-g", "rg",
                              "--vnet-name", "vnet1", "-n", "default")).stdout)
    assert (shown["name"], shown["addressPrefix"]) == ("default", "10.0.0.0/24")
    listed = ok(run(api, "network", "vnet", "subnet", "list", "-g", "rg", "--vnet-name", "vnet1",
                    "--query", "[].addressPrefix", "-o", "tsv")).stdout
    assert listed == "10.0.0.0/24\n"
    ok(run(api, "network", "vnet", "subnet", "delete", "-g", "rg", "--vnet-name", "vnet1",
           "-n", "default"))
    assert api.net.vnets[("rg", "vnet1")]["subnets"] == {}
    failed(run(api, "network", "vnet", "subnet", "show", "-g", "rg", "--vnet-name", "vnet1",
               "-n", "default"), 3)


def test_subnet_delete_in_use_is_refused(api: FakeApi) -> None:
    """A subnet a group is in cannot be deleted: the API's 400 on one line, exit 1."""
    api.net.in_use.add(f"{vnet_id('rg', 'vnet1')}/subnets/default".lower())
    line = failed(run(api, "network", "vnet", "subnet", "delete", "-g", "rg", "--vnet-name",
                      "vnet1", "-n", "default"))
    assert line.startswith("ERROR: (InUseSubnetCannotBeDeleted) ")


@pytest.mark.parametrize("command", [
    ["network"], ["network", "vnet"], ["network", "vnet", "create"], ["network", "vnet", "show"],
    ["network", "vnet", "list"], ["network", "vnet", "delete"], ["network", "vnet", "subnet"],
    ["network", "vnet", "subnet", "create"], ["network", "vnet", "subnet", "show"],
    ["network", "vnet", "subnet", "list"], ["network", "vnet", "subnet", "delete"],
])
def test_every_network_command_has_help(command: list[str]) -> None:
    """--help works for every network command and describes it."""
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: main {' '.join(command)}" in result.output
    assert len(result.output.splitlines()) > 4


# --- container create --vnet/--subnet ----------------------------------------------------------


def create(api: FakeApi, *args: str) -> Result:
    return run(api, "container", "create", "-g", "rg", "-n", "web", "--image", "nginx",
               "-o", "none", *args)


def group_put(api: FakeApi) -> dict[str, Any]:
    (body,) = api.arm.bodies("PUT")
    return dict(body)


def test_create_in_a_new_vnet_makes_it_then_its_subnet(api: FakeApi) -> None:
    """As az: a missing network is made with --vnet-address-prefix in the group's location,
    then the subnet with --subnet-address-prefix and ACI's delegation, then the group is
    PUT with the subnet's id, a Private address with its ports, no DNS label."""
    ok(create(api, "--vnet", "v2", "--subnet", "s1", "--vnet-address-prefix", "10.8.0.0/16",
              "--subnet-address-prefix", "10.8.1.0/24", "--ports", "80", "8080"))
    subnet_path = f"{vnet_id('rg', 'v2')}/subnets/s1"
    assert net_bodies(api) == [
        (vnet_id("rg", "v2"), {"location": "westeurope", "properties": {
            "addressSpace": {"addressPrefixes": ["10.8.0.0/16"]}}}),
        (subnet_path, {"properties": {"addressPrefix": "10.8.1.0/24", "delegations": [
            {"name": ACI, "properties": {"serviceName": ACI}}]}})]
    props = group_put(api)["properties"]
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 8080}]
    assert props["subnetIds"] == [{"id": subnet_path}]
    assert props["ipAddress"] == {"ports": ports, "type": "Private"}
    assert props["containers"][0]["properties"]["ports"] == ports
    group_at = api.calls().index(("PUT", f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                                         "Microsoft.ContainerInstance/containerGroups/web"))
    assert group_at > api.calls().index(("PUT", subnet_path))


def test_create_defaults_the_new_network_and_subnet_as_az(api: FakeApi) -> None:
    """Without prefixes the new network is 10.0.0.0/16 and its subnet 10.0.0.0/24; the
    group opens az's default port 80 privately."""
    ok(create(api, "--vnet", "v2", "--subnet", "s1"))
    assert [b for _, b in net_bodies(api)] == [
        {"location": "westeurope", "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}},
        {"properties": {"addressPrefix": "10.0.0.0/24", "delegations": [
            {"name": ACI, "properties": {"serviceName": ACI}}]}}]
    assert group_put(api)["properties"]["ipAddress"] == {
        "ports": [{"protocol": "TCP", "port": 80}], "type": "Private"}


def test_create_in_an_existing_vnet_adds_only_the_subnet(api: FakeApi) -> None:
    """An existing network is not PUT again: only the missing subnet is made."""
    ok(create(api, "--vnet", "vnet1", "--subnet", "s2", "--subnet-address-prefix",
              "10.0.2.0/24"))
    assert [p for p, _ in net_bodies(api)] == [f"{vnet_id('rg', 'vnet1')}/subnets/s2"]


def test_create_in_an_existing_subnet_delegates_it_once(api: FakeApi) -> None:
    """An existing subnet without delegation gets ACI's (its prefix kept); one already
    delegated to ACI is used as it is, with no PUT."""
    ok(create(api, "--vnet", "vnet1", "--subnet", "default"))
    assert net_bodies(api) == [(f"{vnet_id('rg', 'vnet1')}/subnets/default", {"properties": {
        "addressPrefix": "10.0.0.0/24",
        "delegations": [{"name": ACI, "properties": {"serviceName": ACI}}]}})]
    api.net.requests.clear()
    ok(run(api, "container", "create", "-g", "rg", "-n", "web2", "--image", "nginx",
           "--vnet", "vnet1", "--subnet", "default", "-o", "none"))
    assert net_bodies(api) == []


def test_create_refuses_a_subnet_delegated_elsewhere(api: FakeApi) -> None:
    """A subnet delegated to another service cannot hold a group: one error line, and
    no group PUT."""
    api.net.add("rg", "v3", ["10.3.0.0/16"], {"s": {"addressPrefix": "10.3.0.0/24",
        "delegations": [{"name": "0", "properties": {"serviceName": "Microsoft.Web/x"}}]}})
    line = failed(create(api, "--vnet", "v3", "--subnet", "s"))
    assert "delegations other than" in line
    assert "Microsoft.Web/x" in line
    assert api.arm.bodies("PUT") == []


def test_create_with_a_subnet_id_uses_it(api: FakeApi) -> None:
    """--subnet ID is used as given, in its own resource group (not -g), without --vnet."""
    api.net.add("netrg", "shared", ["10.4.0.0/16"], {"s": {"addressPrefix": "10.4.0.0/24",
        "delegations": [{"name": "aci", "properties": {"serviceName": ACI}}]}})
    subnet_id = f"{vnet_id('netrg', 'shared')}/subnets/s"
    ok(create(api, "--subnet", subnet_id))
    assert group_put(api)["properties"]["subnetIds"] == [{"id": subnet_id}]
    assert api.net.calls() == [("GET", subnet_id)]


def test_create_with_a_vnet_id_and_subnet_name(api: FakeApi) -> None:
    """--vnet ID names the network (and its resource group); --subnet NAME a subnet in it."""
    ok(create(api, "--vnet", vnet_id("netrg", "v5"), "--subnet", "s"))
    assert [p for p, _ in net_bodies(api)] == [vnet_id("netrg", "v5"),
                                               f"{vnet_id('netrg', 'v5')}/subnets/s"]
    assert group_put(api)["properties"]["subnetIds"] == [
        {"id": f"{vnet_id('netrg', 'v5')}/subnets/s"}]


@pytest.mark.parametrize(("args", "why"), [
    (["--subnet", f"{vnet_id('rg', 'vnet1', '99999999-0000-0000-0000-000000000000')}"
                  "/subnets/default"], "is in subscription"),
    (["--subnet", "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/nope"],
     "is not a subnet's resource id"),
    (["--vnet", "/subscriptions/x/nope", "--subnet", "s"], "is not a virtual network's"),
])
def test_create_bad_subnet_ids_are_one_line(api: FakeApi, args: list[str], why: str) -> None:
    """A subnet id of another subscription or of the wrong shape is one error line, before
    anything is made."""
    assert why in failed(create(api, *args))
    assert api.requests == []


def test_create_refused_subnet_prefix_makes_no_group(api: FakeApi) -> None:
    """A --subnet-address-prefix outside the existing network is the API's error, and no
    group is PUT."""
    line = failed(create(api, "--vnet", "vnet1", "--subnet", "s9", "--subnet-address-prefix",
                         "192.168.0.0/24"))
    assert line.startswith("ERROR: (NetcfgSubnetRangeOutsideVnet) ")
    assert api.arm.bodies("PUT") == []


def test_create_no_wait_still_makes_the_subnet_first(api: FakeApi) -> None:
    """--no-wait skips waiting for the group, not making its subnet before the PUT."""
    result = create(api, "--vnet", "v2", "--subnet", "s1", "--no-wait")
    assert ok(result).stdout == ""
    assert [m for m, _ in api.net.calls()] == ["GET", "GET", "PUT", "PUT"]
    assert group_put(api)["properties"]["subnetIds"] == [
        {"id": f"{vnet_id('rg', 'v2')}/subnets/s1"}]


def test_private_group_output_shows_its_subnet(api: FakeApi) -> None:
    """The printed group carries its subnetIds and Private address, as az prints them."""
    result = ok(run(api, "container", "create", "-g", "rg", "-n", "web", "--image", "nginx",
                    "--vnet", "vnet1", "--subnet", "default"))
    shown = json.loads(result.stdout)
    assert shown["subnetIds"][0]["id"] == f"{vnet_id('rg', 'vnet1')}/subnets/default"
    assert shown["ipAddress"]["type"] == "Private"
