"""The real az CLI against skiff, unchanged: cloud register, service principal sign-in,
resource groups, container groups (export, create --file of an export and of a YAML
file in the shape of Microsoft's samples, attach), role assignments (the root scope
too), a Reader refused.

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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.inprocess import FakeHttps, fake_https
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually

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


@dataclass
class AzWithGroup:
    """az signed in as an Owner of ``SUB`` (a principal the admin made), on the API over
    the fake engine, and the container group ``rg1/web`` that az created."""

    server: FakeHttps
    admin: str
    owner: dict[str, Any]
    az: Az
    #: ``az container create``'s answer.
    made: dict[str, Any]


@pytest.fixture
def az_with_group(tmp_path: Path) -> Iterator[AzWithGroup]:
    """The README's path to a first group: create-for-rbac, az login, az group create,
    az container create (a busybox of 0.5 CPU and 0.5 GB)."""
    with fake_https(tmp_path / "root") as server:
        _, admin = server.plane.store.create_token(None, "admin")
        owner = skiff_cli(server.url, server.ca, admin, "ad", "sp", "create-for-rbac",
                          "--name", "ci", "--role", "Owner", "--scopes", f"/subscriptions/{SUB}")
        az = make_az(tmp_path, server.ca)
        sign_in(az, server.url, owner)
        az.run("group", "create", "-n", "rg1", "-l", "local")
        made = az.json("container", "create", "-g", "rg1", "-n", "web", "--image",
                       "registry.test/busybox:1", "--cpu", "0.5", "--memory", "0.5",
                       "--os-type", "Linux")
        yield AzWithGroup(server, admin, owner, az, made)


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


def signed_in_owner(fake: Fake, tmp_path: Path) -> Az:
    """az signed in as a new Owner of the subscription, a resource group rg1 made."""
    owner = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "create-for-rbac",
                      "--name", "owner", "--role", "Owner", "--scopes", f"/subscriptions/{SUB}")
    az = make_az(tmp_path, fake.ca)
    sign_in(az, fake.url, owner)
    az.run("group", "create", "-n", "rg1", "-l", "eastus")
    return az


#: A container group as Microsoft's secure-values YAML sample writes one (an unquoted
#: date as apiVersion, ``memoryInGb``, ``type``), with a public port (``tcp`` in lower
#: case) as its multi-container sample has; its name in lower case (ACI takes no other:
#: MicrosoftDocs azure-docs issue #57266) and its image the test registry's.
DOCS_YAML = """\
apiVersion: 2018-10-01
location: eastus
name: {name}
properties:
  containers:
  - name: mycontainer
    properties:
      image: registry.test/busybox:1
      resources:
        requests:
          cpu: 1.0
          memoryInGb: 1.5
      ports:
      - port: 80
      environmentVariables:
      - name: 'MinLength'
        value: '8'
      - name: 'SECRET'
        secureValue: 'my-secret-value'
  osType: Linux
  restartPolicy: OnFailure
  ipAddress:
    type: Public
    ports:
    - protocol: tcp
      port: 80
tags: {{exampleTag: tutorial}}
type: Microsoft.ContainerInstance/containerGroups
"""


def test_az_exports_a_group_and_creates_groups_from_yaml_files(fake: Fake,
                                                               tmp_path: Path) -> None:
    """az container export writes the group's YAML (no id, state or secret: a secure
    variable by its name alone); create --file of it under a new name is refused as ACI
    refuses a variable with neither value nor secureValue (InvalidEnvironmentVariable),
    and succeeds once the secret is given again; a file in the shape of Microsoft's
    samples creates its group; a name in capitals is refused (ACI's lower-case rule)."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    az = signed_in_owner(fake, tmp_path)
    az.json("container", "create", "-g", "rg1", "-n", "web", "--image",
            "registry.test/busybox:1", "--cpu", "0.5", "--memory", "0.5", "--os-type",
            "Linux", "--restart-policy", "Never", "--ports", "80", "--ip-address", "Public",
            "--dns-name-label", "web-label", "--environment-variables", "MODE=test",
            "--secure-environment-variables", "TOKEN=s3cret-value")
    exported = tmp_path / "web.yaml"
    az.run("container", "export", "-g", "rg1", "-n", "web", "-f", str(exported))
    text = exported.read_text()
    assert "s3cret-value" not in text
    doc = yaml.safe_load(text)
    assert (doc["name"], doc["type"], doc["location"]) == (
        "web", "Microsoft.ContainerInstance/containerGroups", "eastus")
    assert "id" not in doc
    assert {"instanceView", "provisioningState"} & set(doc["properties"]) == set()
    [container] = doc["properties"]["containers"]
    assert "instanceView" not in container["properties"]
    assert container["properties"]["environmentVariables"] == [
        {"name": "MODE", "value": "test"}, {"name": "TOKEN"}]

    doc["name"] = "web-copy"
    doc["properties"]["ipAddress"]["dnsNameLabel"] = "web-copy-label"
    copy = tmp_path / "web-copy.yaml"
    copy.write_text(yaml.safe_dump(doc))
    refused = az.run("container", "create", "-g", "rg1", "-f", str(copy), ok=False)
    assert refused.returncode != 0
    assert "(InvalidEnvironmentVariable)" in refused.stderr
    assert "environment variable 'TOKEN' in container 'web' is invalid" in refused.stderr
    assert "give each secureValue again" in refused.stderr
    assert [g["name"] for g in az.json("container", "list")] == ["web"]
    container["properties"]["environmentVariables"][1]["secureValue"] = "again"
    copy.write_text(yaml.safe_dump(doc))
    made = az.json("container", "create", "-g", "rg1", "-f", str(copy))  # a resource's shape
    assert (made["name"], made["properties"]["provisioningState"]) == ("web-copy", "Succeeded")
    shown = az.json("container", "show", "-g", "rg1", "-n", "web-copy")
    assert shown["ipAddress"]["fqdn"].startswith("web-copy-label.")
    assert [(v["name"], v["value"], v["secureValue"]) for v in
            shown["containers"][0]["environmentVariables"]] == [
                ("MODE", "test", None), ("TOKEN", None, None)]

    sample = tmp_path / "sample.yaml"
    sample.write_text(DOCS_YAML.format(name="mycontainergroup"))
    made = az.json("container", "create", "-g", "rg1", "-f", str(sample))
    assert (made["name"], made["location"], made["properties"]["provisioningState"]) == (
        "mycontainergroup", "eastus", "Succeeded")
    shown = az.json("container", "show", "-g", "rg1", "-n", "mycontainergroup")
    [container] = shown["containers"]
    assert (container["name"], container["resources"]["requests"]["memoryInGb"]) == (
        "mycontainer", 1.5)
    assert [(v["name"], v["value"]) for v in container["environmentVariables"]] == [
        ("MinLength", "8"), ("SECRET", None)]
    assert [(p["port"], p["protocol"]) for p in shown["ipAddress"]["ports"]] == [(80, "TCP")]
    assert (shown["restartPolicy"], shown["tags"]) == ("OnFailure", {"exampleTag": "tutorial"})
    assert "my-secret-value" not in json.dumps(shown)
    sample.write_text(DOCS_YAML.format(name="myContainerGroup"))
    capitals = az.run("container", "create", "-g", "rg1", "-f", str(sample), ok=False)
    assert capitals.returncode != 0
    assert "(InvalidContainerGroupName)" in capitals.stderr


def test_az_role_assignments_at_the_root_scope(fake: Fake, tmp_path: Path) -> None:
    """A subscription's Owner is refused ``--scope /`` (create and list: 403
    AuthorizationFailed); a principal the admin made Owner at '/' assigns there, sees the
    assignment inherited under the subscription, and deletes it."""
    az = signed_in_owner(fake, tmp_path)
    reader = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "create-for-rbac",
                       "--name", "reader")
    object_id = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "show", "--id",
                          reader["appId"])["id"]
    assign = ("role", "assignment", "create", "--assignee-object-id", object_id,
              "--assignee-principal-type", "ServicePrincipal", "--role", "Reader",
              "--scope", "/")
    for refused in (az.run(*assign, ok=False),
                    az.run("role", "assignment", "list", "--scope", "/", ok=False)):
        assert refused.returncode != 0
        assert "AuthorizationFailed" in refused.stderr
        assert "over scope '/'" in refused.stderr

    root = skiff_cli(fake.url, fake.ca, fake.admin, "ad", "sp", "create-for-rbac", "--name",
                     "root-owner", "--role", "Owner", "--scopes", "/")
    admin_az = make_az(tmp_path, fake.ca, "root")
    sign_in(admin_az, fake.url, root)
    made = admin_az.json(*assign)
    assert (made["scope"], made["principalId"]) == ("/", object_id)
    assert made["id"].startswith("/providers/Microsoft.Authorization/roleAssignments/")
    at_root = admin_az.json("role", "assignment", "list", "--scope", "/")
    assert made["id"] in [a["id"] for a in at_root]
    inherited = admin_az.json("role", "assignment", "list", "--assignee", object_id,
                              "--include-inherited")
    assert [(a["scope"], a["roleDefinitionName"]) for a in inherited] == [("/", "Reader")]
    assert inherited[0]["roleDefinitionId"].startswith(f"/subscriptions/{SUB}/providers/")
    admin_az.run("role", "assignment", "delete", "--ids", made["id"])
    assert made["id"] not in [a["id"] for a in admin_az.json("role", "assignment", "list",
                                                             "--scope", "/")]


class Clock:
    """The fake engine's clock: it moves when the test says."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def attach(az: Az, resource_group: str, group: str, out: Path) -> subprocess.Popen[bytes]:
    """``az container attach`` in the background, its output (unbuffered) into ``out``."""
    assert AZ is not None
    with out.open("wb") as sink:
        return subprocess.Popen([AZ, "container", "attach", "-g", resource_group, "-n", group,
                                 "--only-show-errors"], env=az.env | {"PYTHONUNBUFFERED": "1"},
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)


def test_az_attach_streams_a_containers_output_until_it_ends(tmp_path: Path) -> None:
    """az container attach (on the fake engine, its time the test's): the container's
    state, then its output while it runs; az ends by itself once the container has
    exited (az polls every 10 s)."""
    clock = Clock()
    with fake_https(tmp_path / "root", clock=clock) as server:
        _, admin = server.plane.store.create_token(None, "admin")
        az = signed_in_owner(Fake(server.url, server.ca, admin), tmp_path)
        az.json("container", "create", "-g", "rg1", "-n", "talker", "--image",
                "registry.test/busybox:1", "--cpu", "0.1", "--memory", "0.1", "--os-type",
                "Linux", "--restart-policy", "Never", "--command-line",
                "sh -c 'echo attach-hello; sleep 3600; echo attach-bye'")
        out = tmp_path / "attach.out"
        running = attach(az, "rg1", "talker", out)
        try:
            eventually(lambda: "attach-hello" in out.read_text(),
                       what="the container's output in az container attach", timeout_s=60)
            assert running.poll() is None  # the container runs: az keeps streaming
            clock.now += 3600  # the container prints its last line and exits
            assert running.wait(timeout=60) == 0, out.read_text()
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
    shown = out.read_text()
    assert "Container 'talker' is in state 'Running'" in shown, shown
    assert "Start streaming logs:" in shown
    assert shown.index("Start streaming logs:") < shown.index("attach-hello")


def test_az_runs_a_container_on_a_real_node(skiff: RunningServer, images: BuiltImages,
                                            tmp_path: Path) -> None:
    """On a real skiff: az signs in, creates a group that runs, reads its logs, deletes it;
    az container attach streams a running container's output and ends when it stops."""
    sp = skiff_cli(skiff.url, skiff.ca, skiff.token, "ad", "sp", "create-for-rbac", "--name",
                   "ci", "--role", "Contributor", "--scopes", f"/subscriptions/{SUB}")
    az = make_az(tmp_path, skiff.ca)
    sign_in(az, skiff.url, sp)
    az.run("group", "create", "-n", "rg", "-l", skiff.settings.api.location)
    made = az.json("container", "create", "-g", "rg", "-n", "hello", "--image", images.bb,
                   "--command-line", "echo hello-from-az", "--restart-policy", "Never",
                   "--cpu", "0.1", "--memory", "0.1", "--os-type", "Linux")
    assert made["provisioningState"] == "Succeeded"
    eventually(lambda: "hello-from-az" in az.run("container", "logs", "-g", "rg", "-n",
                                                  "hello").stdout,
               what="the container's output in az container logs", timeout_s=60)
    az.run("container", "delete", "-g", "rg", "-n", "hello", "--yes")

    az.json("container", "create", "-g", "rg", "-n", "talker", "--image", images.bb,
            "--command-line", "sh -c 'echo attach-hello; sleep 300'", "--restart-policy",
            "Never", "--cpu", "0.1", "--memory", "0.1", "--os-type", "Linux")
    out = tmp_path / "attach.out"
    running = attach(az, "rg", "talker", out)
    try:
        eventually(lambda: "attach-hello" in out.read_text(),
                   what="the container's output in az container attach", timeout_s=60)
        assert running.poll() is None
        az.run("container", "stop", "-g", "rg", "-n", "talker")  # its container ends
        assert running.wait(timeout=60) == 0, out.read_text()
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert "Container 'talker' is in state 'Running'" in out.read_text()
    az.run("container", "delete", "-g", "rg", "-n", "talker", "--yes")
