"""The API at the groups' gateway (``skiff serve --api-for-groups``), with the real az:
a group's managed identity signs in from inside the group and gets exactly what its
role assignment grants; busybox's TLS client gets the same; without
the option, the gateway's API port is closed to the groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skiff.testing import az as azcli
from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, running_server, settled

pytestmark = pytest.mark.root

SUB = "00000000-0000-0000-0000-00000000a9a9"
RG = f"/subscriptions/{SUB}/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
API = "?api-version=2023-05-01"
READER = "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c"


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

        # Another client, another TLS (busybox's own TLS 1.2), with the identity's token
        # as az holds it: the list, and the URLs the API builds name the gateway.
        token = json.loads(az_in_group("account", "get-access-token").stdout)["accessToken"]
        base = f"https://{gateway}:{port}"
        fetched = in_netns(netns, ["busybox", "wget", "-q", "-O-", "--no-check-certificate",
                                   "--header", f"Authorization: Bearer {token}",
                                   f"{base}{GROUPS}{API}"])
        assert fetched.returncode == 0, fetched.stderr
        assert [g["name"] for g in json.loads(fetched.stdout)["value"]] == ["mi"]
        cloud = in_netns(netns, ["busybox", "wget", "-q", "-O-", "--no-check-certificate",
                                 f"{base}/metadata/endpoints"])
        assert json.loads(cloud.stdout)["resourceManager"] == f"{base}/"

        assert connects(netns, gateway, port) == "open"
        assert connects(netns, gateway, skiff.server.port + 1) == "dropped"
        assert connects(netns, gateway, 22) == "dropped"


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
