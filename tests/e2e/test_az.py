"""The real az CLI against skiff, unchanged: cloud register, service principal sign-in,
resource groups, container groups, role assignments, a Reader refused.

az is found in ``SKIFF_AZ``, ``/opt/skiff-az/bin/az`` or ``/tmp/azvenv/bin/az``; the
tests are skipped only when there is none. Each test gives az a configuration
directory of its own (``AZURE_CONFIG_DIR``) and skiff's CA (``REQUESTS_CA_BUNDLE``),
as the README tells a user to. Two servers: the API over the fake engine (no root:
sign-in and access are the API's business), and a real skiff (root: a container runs
and its logs come back).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.inprocess import fake_https
from skiff.testing.server import RunningServer

SUB = "00000000-0000-0000-0000-00000000a2a2"


def find_az() -> str | None:
    for candidate in (os.environ.get("SKIFF_AZ"), "/opt/skiff-az/bin/az", "/tmp/azvenv/bin/az",
                      shutil.which("az")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


AZ = find_az()
pytestmark = pytest.mark.skipif(AZ is None, reason="no az CLI (SKIFF_AZ, /opt/skiff-az)")


@dataclass
class Az:
    """az with its own configuration directory, trusting skiff's CA."""

    env: dict[str, str]

    def run(self, *args: str, ok: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert AZ is not None
        done = subprocess.run([AZ, *args, "--only-show-errors"], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


def make_az(tmp_path: Path, ca: Path, name: str = "az") -> Az:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ARM_"))}
    env |= {"AZURE_CONFIG_DIR": str(tmp_path / name), "REQUESTS_CA_BUNDLE": str(ca),
            "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_NO_COLOR": "true"}
    return Az(env)


def skiff_cli(url: str, ca: Path, token: str, *args: str) -> dict[str, Any]:
    """``skiff ARGS`` (JSON output), as the node's admin."""
    env = os.environ | {"SKIFF_URL": url, "SKIFF_CA": str(ca), "SKIFF_TOKEN": token,
                        "SKIFF_SUBSCRIPTION": SUB}
    done = subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return dict(json.loads(done.stdout))


def sign_in(az: Az, url: str, sp: dict[str, Any]) -> list[dict[str, Any]]:
    """The README's steps: register the cloud, make it active, log in."""
    az.run("cloud", "register", "-n", "skiff", "--endpoint-resource-manager", f"{url}/")
    az.run("cloud", "set", "-n", "skiff")
    accounts = az.json("login", "--service-principal", "-u", sp["appId"], "-p",
                       sp["password"], "--tenant", sp["tenant"])
    return list(accounts)


@dataclass
class Fake:
    url: str
    ca: Path
    admin: str


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Fake]:
    with fake_https(tmp_path / "root") as server:
        _, admin = server.plane.store.create_token(None, "admin")
        yield Fake(server.url, server.ca, admin)


def test_az_signs_in_and_manages_groups_and_roles(fake: Fake, tmp_path: Path) -> None:
    """create-for-rbac → az login; az group create, container create|show|list|restart|
    stop|start|logs|exec|delete;
    az role assignment create for a Reader, who then reads but is refused a create;
    az account shows the node's tenant."""
    owner = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "create-for-rbac",
                      "--name", "ci", "--role", "Owner", "--scopes", f"/subscriptions/{SUB}")
    assert list(owner) == ["appId", "displayName", "password", "tenant"]
    az = make_az(tmp_path, fake.ca)
    accounts = sign_in(az, fake.url, owner)
    assert [(a["id"], a["tenantId"], a["user"]["type"]) for a in accounts] == [
        (SUB, owner["tenant"], "servicePrincipal")]
    assert az.json("group", "create", "-n", "rg1", "-l", "local")["name"] == "rg1"
    assert az.json("group", "exists", "-n", "rg1") is True
    assert az.json("group", "exists", "-n", "absent") is False
    made = az.json("container", "create", "-g", "rg1", "-n", "web", "--image",
                   "registry.test/busybox:1", "--cpu", "0.1", "--memory", "0.1",
                   "--os-type", "Linux", "--restart-policy", "Never")
    assert made["provisioningState"] == "Succeeded"
    assert az.json("container", "show", "-g", "rg1", "-n", "web")["name"] == "web"
    assert [g["name"] for g in az.json("container", "list")] == ["web"]
    for verb in ("restart", "stop", "start"):
        az.run("container", verb, "-g", "rg1", "-n", "web")
    az.run("container", "logs", "-g", "rg1", "-n", "web")
    if shutil.which("script"):  # az container exec wants a terminal: script(1) gives one
        assert AZ is not None
        shown = subprocess.run(
            ["script", "-qc", f"{AZ} container exec -g rg1 -n web --exec-command "
                              "'echo exec-through-az'", "/dev/null"],
            env=az.env | {"WEBSOCKET_CLIENT_CA_BUNDLE": str(fake.ca)}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60, check=False)
        assert "exec-through-az" in shown.stdout, (shown.stdout, shown.stderr)

    reader = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "create-for-rbac",
                       "--name", "viewer")
    object_id = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "show", "--id",
                          reader["appId"])["id"]
    assigned = az.json("role", "assignment", "create", "--assignee-object-id", object_id,
                       "--assignee-principal-type", "ServicePrincipal", "--role", "Reader",
                       "--scope", f"/subscriptions/{SUB}/resourceGroups/rg1")
    assert assigned["roleDefinitionId"].endswith("acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c")
    listed = az.json("role", "assignment", "list", "--scope",
                     f"/subscriptions/{SUB}/resourceGroups/rg1")
    assert [a["principalId"] for a in listed] == [object_id]

    viewer = make_az(tmp_path, fake.ca, "viewer")
    sign_in(viewer, fake.url, reader)
    assert viewer.json("container", "show", "-g", "rg1", "-n", "web")["name"] == "web"
    refused = viewer.run("container", "create", "-g", "rg1", "-n", "other", "--image",
                         "registry.test/busybox:1", "--cpu", "0.1", "--memory", "0.1",
                         "--os-type", "Linux", ok=False)
    assert refused.returncode != 0
    assert "AuthorizationFailed" in refused.stderr
    assert "containerGroups/write" in refused.stderr
    wrong = make_az(tmp_path, fake.ca, "wrong")
    wrong.run("cloud", "register", "-n", "skiff", "--endpoint-resource-manager", f"{fake.url}/")
    wrong.run("cloud", "set", "-n", "skiff")
    failed = wrong.run("login", "--service-principal", "-u", reader["appId"], "-p", "nope",
                       "--tenant", reader["tenant"], ok=False)
    assert failed.returncode != 0
    assert "AADSTS7000215" in failed.stderr

    az.run("container", "delete", "-g", "rg1", "-n", "web", "--yes")
    assert az.json("container", "list") == []


def test_az_runs_a_container_on_a_real_node(skiff: RunningServer, images: BuiltImages,
                                            tmp_path: Path) -> None:
    """On a real skiff: az signs in, creates a group that runs, reads its logs, deletes it."""
    sp = skiff_cli(skiff.url, skiff.ca, skiff.token, "ad", "sp", "create-for-rbac", "--name",
                   "ci", "--role", "Contributor", "--scopes", f"/subscriptions/{SUB}")
    az = make_az(tmp_path, skiff.ca)
    sign_in(az, skiff.url, sp)
    az.run("group", "create", "-n", "rg", "-l", skiff.settings.api.location)
    made = az.json("container", "create", "-g", "rg", "-n", "hello", "--image", images.bb,
                   "--command-line", "echo hello-from-az", "--restart-policy", "Never",
                   "--cpu", "0.1", "--memory", "0.1", "--os-type", "Linux")
    assert made["provisioningState"] == "Succeeded"
    from skiff.testing.waiting import eventually

    eventually(lambda: "hello-from-az" in az.run("container", "logs", "-g", "rg", "-n",
                                                  "hello").stdout,
               what="the container's output in az container logs", timeout_s=60)
    az.run("container", "delete", "-g", "rg", "-n", "hello", "--yes")
