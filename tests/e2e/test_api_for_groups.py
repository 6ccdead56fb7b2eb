"""The API at the groups' gateway (``skiff serve --api-for-groups``), with the real az:
a group's managed identity signs in from inside the group and gets exactly what its
role assignment grants; the container's own busybox TLS client gets the same with the
token of the identity endpoint; a deleted virtual network's gateway serves nothing any
more; without the option, the gateway's API port is closed to the groups."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skiff.dns.listening import bind
from skiff.engine.group.supervisor import Supervisor
from skiff.gateway.relay import listen_on
from skiff.testing import az as azcli
from skiff.testing.catalog import BuiltImages
from skiff.testing.registry import free_port
from skiff.testing.server import RunningServer, running_server, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "00000000-0000-0000-0000-00000000a9a9"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/net1"
API = "?api-version=2023-05-01"
READER = "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"
IMDS_TOKEN = ("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
              "&resource=https://management.core.windows.net/")
MARK = "--- skiff test ---"


def group_body(images: BuiltImages, identity: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": {
            "image": images.bb, "command": ["sleep", "600"],
            "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}
    if identity is not None:
        doc["identity"] = identity
    return doc


def skiff_cli(server: RunningServer, *args: str) -> dict[str, Any]:
    """``skiff ARGS`` (JSON output), as the node's admin."""
    env = os.environ | {"SKIFF_URL": server.url, "SKIFF_CA": str(server.ca),
                        "SKIFF_TOKEN": server.token, "SKIFF_SUBSCRIPTION": SUB}
    done = subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return dict(json.loads(done.stdout))


def in_netns(netns: Path, argv: list[str], env: dict[str, str] | None = None,
             timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a program of the host's filesystem) in a group's network namespace."""
    return subprocess.run(["nsenter", f"--net={netns}", *argv], env=env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def run_in(engine: Supervisor, group_id: str, script: str) -> tuple[int | None, str]:
    """Run ``script`` with the shell of the group's container ``c`` (its own busybox);
    its exit code and output."""
    session = engine.exec(group_id, "c", ["sh", "-c", f"exec 2>&1; {script}"])
    try:
        out, _ = session.process.communicate(timeout=120)
    finally:
        session.close()
    return session.process.returncode, out.decode(errors="replace")


def connects(netns: Path, address: str, port: int) -> str:
    """How a TCP connection from inside the group to ``address``:``port`` ends: "open",
    "refused" (something answered: the host guard let it through) or "dropped"."""
    probe = ("import socket, sys\n"
             "try:\n"
             f"    socket.create_connection(({address!r}, {port}), timeout=2).close()\n"
             "    print('open')\n"
             "except ConnectionRefusedError:\n"
             "    print('refused')\n"
             "except OSError:\n"
             "    print('dropped')\n")
    done = in_netns(netns, [sys.executable, "-c", probe], timeout_s=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_groups_identity_calls_the_api_at_its_gateway_with_its_roles(
        tmp_path: Path, images: BuiltImages, az: azcli.Az) -> None:
    """Inside a group's network namespace, the real az (its own configuration, skiff's
    CA) registers the cloud at the gateway, signs in with the group's managed identity,
    lists the group (Reader on its resource group) and is refused a delete; busybox wget
    (another TLS client) lists it with the identity's token. The gateway's other ports
    stay closed."""
    with running_server(tmp_path / "root", allow=images.endpoints,
                        api_for_groups=True) as skiff:
        engine = skiff.server.node
        assert engine is not None  # the local backend
        port = skiff.server.port
        gateway = engine.networks.gateway()
        owner = skiff_cli(skiff, "ad", "sp", "create-for-rbac", "--name", "ops", "--role",
                          "Owner", "--scopes", f"/subscriptions/{SUB}")
        host = az.trusting(skiff.ca)
        host("cloud", "register", "-n", "skiff", "--endpoint-resource-manager", f"{skiff.url}/")
        host("cloud", "set", "-n", "skiff")
        host("login", "--service-principal", "-u", owner["appId"], "-p", owner["password"],
             "--tenant", owner["tenant"])
        host("group", "create", "-n", "rg", "-l", "local")

        http = skiff.client()
        made = http.put(f"{GROUPS}/mi{API}", json=group_body(images, {"type": "SystemAssigned"}))
        assert made.status_code == 201, made.text
        group = settled(http, f"{GROUPS}/mi{API}", timeout_s=60)
        assert group["properties"]["provisioningState"] == "Succeeded", group
        principal = group["identity"]["principalId"]
        record = skiff.server.plane.store.get_group(SUB, "rg", "mi")
        assert record is not None
        attachment = engine.networks.get(record.uid)
        assert attachment is not None
        assert attachment.gateway == gateway
        netns = attachment.netns_path

        inside = azcli.Az(az.executable, tmp_path / "az-inside", skiff.ca)
        env = inside.environment()

        def az_in_group(*args: str) -> subprocess.CompletedProcess[str]:
            return in_netns(netns, [az.executable, *args, "--output", "json"], env)

        registered = az_in_group("cloud", "register", "-n", "skiff",
                                 "--endpoint-resource-manager", f"https://{gateway}:{port}/")
        assert registered.returncode == 0, registered.stderr
        assert az_in_group("cloud", "set", "-n", "skiff").returncode == 0
        # No role yet: the identity signs in to nothing.
        assert az_in_group("login", "--identity").returncode != 0

        assigned = host("role", "assignment", "create", "--assignee-object-id", principal,
                        "--assignee-principal-type", "ServicePrincipal", "--role", "Reader",
                        "--scope", RG)
        assert assigned["roleDefinitionId"].endswith(READER)

        login = az_in_group("login", "--identity")
        assert login.returncode == 0, login.stderr
        accounts = json.loads(login.stdout)
        assert [(a["id"], a["user"]["type"]) for a in accounts] == [(SUB, "servicePrincipal")]
        listed = az_in_group("container", "list", "-g", "rg")
        assert listed.returncode == 0, listed.stderr
        assert [g["name"] for g in json.loads(listed.stdout)] == ["mi"]
        shown = az_in_group("container", "show", "-g", "rg", "-n", "mi")
        assert json.loads(shown.stdout)["identity"]["principalId"] == principal
        refused = az_in_group("container", "delete", "-g", "rg", "-n", "mi", "--yes")
        assert refused.returncode != 0
        assert "AuthorizationFailed" in refused.stderr, refused.stderr
        assert http.get(f"{GROUPS}/mi{API}").status_code == 200  # still there

        # Another client, another TLS: the container's own busybox (no openssl in the
        # image, so busybox's TLS 1.2, which names no signature algorithms) with the token
        # the identity endpoint gives it: the list, and the URLs the API builds name the
        # gateway.
        base = f"https://{gateway}:{port}"
        code, out = run_in(engine, record.uid, f"""
            token=$(wget -q -O- --header 'Metadata: true' '{IMDS_TOKEN}' |
                    sed -n 's/.*"access_token" *: *"\\([^"]*\\)".*/\\1/p')
            [ -n "$token" ] || exit 3
            wget -q -O /tmp/list --no-check-certificate \\
                --header "Authorization: Bearer $token" '{base}{GROUPS}{API}' || exit 4
            wget -q -O /tmp/cloud --no-check-certificate '{base}/metadata/endpoints{API}'
            echo; echo '{MARK}'; cat /tmp/list; echo; echo '{MARK}'; cat /tmp/cloud""")
        assert code == 0, out
        _, listed_json, cloud_json = out.split(MARK)
        assert [g["name"] for g in json.loads(listed_json)["value"]] == ["mi"]
        assert json.loads(cloud_json)["resourceManager"] == f"{base}/"

        assert connects(netns, gateway, port) == "open"
        assert connects(netns, gateway, skiff.server.port + 1) == "dropped"
        assert connects(netns, gateway, 22) == "dropped"


def test_a_deleted_virtual_networks_gateway_serves_nothing_any_more(
        tmp_path: Path, images: BuiltImages) -> None:
    """A group in a virtual network's subnet reaches the API and DNS at its subnet's
    gateway; once the group and the network are deleted, neither listens there any more
    (both ports bind anew), while DNS still listens on the public network's gateway."""
    with running_server(tmp_path / "root", allow=images.endpoints, api_for_groups=True,
                        dns_listen=f"127.0.0.1:{free_port()}") as skiff:
        relay, dns, networks = skiff.server.relay, skiff.server.dns, skiff.server.node.networks
        assert relay is not None
        assert dns is not None
        http = skiff.client()
        made = http.put(f"{VNET}{API}", json={"location": "local", "properties": {
            "addressSpace": {"addressPrefixes": ["10.211.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.211.1.0/24"}}]}})
        assert made.status_code == 201, made.text
        body = group_body(images, None)
        body["properties"] |= {"subnetIds": [{"id": f"{VNET}/subnets/default"}],
                               "ipAddress": {"type": "Private", "ports": [{"port": 80}]}}
        body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
        placed = http.put(f"{GROUPS}/private{API}", json=body)
        assert placed.status_code == 201, placed.text
        group = settled(http, f"{GROUPS}/private{API}", timeout_s=60)
        assert group["properties"]["provisioningState"] == "Succeeded", group
        record = skiff.server.plane.store.get_group(SUB, "rg", "private")
        assert record is not None
        attachment = networks.get(record.uid)
        assert attachment is not None
        gateway = attachment.gateway
        assert gateway == "10.211.1.1"
        assert gateway in relay.gateways
        assert (gateway, 53) in dns.addresses
        assert connects(attachment.netns_path, gateway, skiff.server.port) == "open"

        assert http.delete(f"{GROUPS}/private{API}").status_code in (200, 202)
        eventually(lambda: http.delete(f"{GROUPS}/private{API}").status_code == 204,
                   what="the private group is torn down and forgotten", timeout_s=60)
        deleted = http.delete(f"{VNET}{API}")
        assert deleted.status_code == 200, deleted.text
        eventually(lambda: gateway not in relay.gateways,
                   what="the deleted network's gateway is withdrawn", timeout_s=30)
        assert (gateway, 53) not in dns.addresses
        with listen_on(gateway, skiff.server.port):  # nothing listens there any more
            pass
        bind(socket.AF_INET, gateway, 53, freebind=True).close()
        assert (networks.gateway(), 53) in dns.addresses  # the public network's stays


def test_without_the_option_the_gateway_api_port_is_closed(
        skiff: RunningServer, images: BuiltImages) -> None:
    """By default a group reaches no API at its gateway: the port is dropped by the host
    guard, as every port but DNS."""
    http = skiff.client()
    assert http.put(f"{GROUPS}/plain{API}", json=group_body(images, None)).status_code == 201
    group = settled(http, f"{GROUPS}/plain{API}", timeout_s=60)
    assert group["properties"]["provisioningState"] == "Succeeded", group
    record = skiff.server.plane.store.get_group(SUB, "rg", "plain")
    assert record is not None
    attachment = skiff.server.node.networks.get(record.uid)
    assert attachment is not None
    assert skiff.server.relay is None
    assert connects(attachment.netns_path, attachment.gateway, skiff.server.port) == "dropped"
