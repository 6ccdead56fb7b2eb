"""Unit tests for ``skiff container ...``: the az-style commands against a fake API
(httpx.MockTransport), their request shapes, waiting, output formats and errors."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import suppress
from copy import deepcopy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from click.testing import CliRunner, Result
from websockets.sync.server import Server, ServerConnection, serve

from skiff.cli.common import Progress
from skiff.cli.main import main
from skiff.cli.output import emit
from skiff.cli.views import az_view, group_table
from skiff.client import API_VERSION, SkiffClient
from skiff.documents import group_body
from skiff.testing.fakearm import BASE, PROVIDER, SUB, FakeArm, failed, ok


def run(arm: Any, *args: str, input: str | None = None) -> Result:
    """``skiff container ARGS`` against ``arm`` (a MockTransport handler)."""
    def factory() -> SkiffClient:
        return SkiffClient(BASE, "tok", subscription=SUB, transport=httpx.MockTransport(arm))

    return CliRunner().invoke(main, ["container", *args], obj=factory, input=input)


def nginx_group(**container: Any) -> dict[str, Any]:
    """A group body as the CLI would PUT it: one nginx on a public IP with ports 80 and 443."""
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}]
    return {"location": "westeurope", "properties": {
        "containers": [{"name": "web", "properties": {
            "image": "nginx", "ports": ports,
            "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}}, **container}}],
        "osType": "Linux", "restartPolicy": "Always",
        "ipAddress": {"ports": ports, "type": "Public", "dnsNameLabel": "web"}}}


@pytest.fixture
def arm() -> FakeArm:
    """A fake API holding the group rg/web."""
    fake = FakeArm()
    fake.add("rg", "web", nginx_group())
    return fake


# --- create --------------------------------------------------------------------------------------


def test_create_from_flags_puts_az_body_and_prints_the_group() -> None:
    """Every flag lands where az puts it (secure env, registry credentials, shlex'd command,
    space-separated lists, the resource group's location) and the group is printed."""
    arm = FakeArm()
    result = ok(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx:1.25",
                    "--cpu", "2", "--memory", "3.5", "--ports", "80", "443",
                    "--ip-address", "public", "--dns-name-label", "web-label",
                    "--restart-policy", "onfailure",
                    "--command-line", "/bin/sh -c 'echo hello world'",
                    "-e", "A=1", "B=x=y", "--secure-environment-variables", "PASSWORD=hunter2",
                    "--registry-login-server", "reg.example:5000", "--registry-username", "bob",
                    "--registry-password", "s3cret-reg"))
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}]
    assert arm.bodies("PUT") == [{"location": "westeurope", "properties": {
        "containers": [{"name": "web", "properties": {
            "image": "nginx:1.25", "resources": {"requests": {"cpu": 2.0, "memoryInGB": 3.5}},
            "command": ["/bin/sh", "-c", "echo hello world"],
            "environmentVariables": [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"},
                                     {"name": "PASSWORD", "secureValue": "hunter2"}],
            "ports": ports}}],
        "osType": "Linux", "restartPolicy": "OnFailure",
        "ipAddress": {"ports": ports, "type": "Public", "dnsNameLabel": "web-label"},
        "imageRegistryCredentials": [{"server": "reg.example:5000", "username": "bob",
                                      "password": "s3cret-reg"}]}}]
    put = next(r for r in arm.requests if r.method == "PUT")
    assert put.url.path == f"/subscriptions/{SUB}/resourceGroups/rg{PROVIDER}/containerGroups/web"
    assert put.url.params["api-version"] == API_VERSION
    assert put.headers["Authorization"] == "Bearer tok"
    shown = json.loads(result.stdout)
    assert shown["provisioningState"] == "Succeeded"
    assert shown["ipAddress"]["fqdn"] == "web-label.local.test"
    for secret in ("hunter2", "s3cret-reg"):
        assert secret not in result.output


def test_create_defaults_match_az() -> None:
    """Without flags: 1 core, 1.5 GB, Linux, Always, no IP address (so no container ports),
    and no location when the resource group has none."""
    arm = FakeArm()
    arm.rg_location = None
    ok(run(arm, "create", "-g", "rg", "-n", "job", "--image", "busybox"))
    assert arm.bodies("PUT") == [{"properties": {
        "containers": [{"name": "job", "properties": {
            "image": "busybox", "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}}}}],
        "osType": "Linux", "restartPolicy": "Always"}}]


def test_create_priority_and_sku_as_az_sends_them() -> None:
    """--priority and --sku (any case) are the group's priority and sku, as az's."""
    arm = FakeArm()
    ok(run(arm, "create", "-g", "rg", "-n", "job", "--image", "busybox", "--priority", "spot",
           "--sku", "standard", "-o", "none"))
    props = arm.bodies("PUT")[0]["properties"]
    assert (props["priority"], props["sku"]) == ("Spot", "Standard")
    assert run(arm, "create", "-g", "rg", "-n", "job", "--image", "busybox",
               "--priority", "low").exit_code == 2


def test_create_registry_server_is_inferred_from_the_image() -> None:
    """--registry-username without a server uses the image's registry, as az does for ACR."""
    arm = FakeArm()
    ok(run(arm, "create", "-g", "rg", "-n", "a", "--image", "myreg.example/app:1",
           "--registry-username", "u", "--registry-password", "p", "-o", "none"))
    creds = arm.bodies("PUT")[0]["properties"]["imageRegistryCredentials"]
    assert creds == [{"server": "myreg.example", "username": "u", "password": "p"}]


def test_create_waits_through_in_progress_polls() -> None:
    """create polls the operation until Succeeded, then GETs the group; no noise on stderr."""
    arm = FakeArm(polls=3)
    result = ok(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx"))
    methods = [m for m, p in arm.calls() if "/operations/" in p]
    assert len(methods) == 3
    assert arm.calls()[-1] == ("GET", f"/subscriptions/{SUB}/resourceGroups/rg{PROVIDER}/"
                                      "containerGroups/web")
    assert result.stderr == ""


def test_create_failed_deployment_exits_1_with_the_error() -> None:
    """A Failed operation prints ERROR: (code) message and exits 1, without a traceback."""
    arm = FakeArm(outcome="Failed")
    line = failed(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx:nope"))
    assert line == "ERROR: (InaccessibleImage) The image 'nginx:nope' could not be pulled."


def test_create_no_wait_neither_polls_nor_prints() -> None:
    """--no-wait sends the PUT and returns."""
    arm = FakeArm()
    result = ok(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx", "--no-wait"))
    assert [m for m, _ in arm.calls()] == ["GET", "PUT"]  # the resource group, the PUT
    assert result.stdout == ""


def test_create_error_never_prints_a_secret() -> None:
    """An error message that echoes a secret value is printed with the secret masked."""
    arm = FakeArm()
    arm.put_error = (400, {"error": {"code": "InvalidEnvironmentVariable",
                                     "message": "bad value 'hunter2' for PASSWORD"}})
    line = failed(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx",
                      "--secure-environment-variables", "PASSWORD=hunter2"))
    assert line == "ERROR: (InvalidEnvironmentVariable) bad value '***' for PASSWORD"


def test_create_rejects_env_without_equals() -> None:
    """-e FOO (no '=') is a usage error (exit 2) before any request."""
    arm = FakeArm()
    result = run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx", "-e", "FOO")
    assert result.exit_code == 2
    assert "key=value" in result.stderr
    assert arm.requests == []


def test_create_needs_image_or_file() -> None:
    """Without --image or --file, create is a usage error."""
    result = run(FakeArm(), "create", "-g", "rg", "-n", "web")
    assert result.exit_code == 2
    assert "--image" in result.stderr


@pytest.mark.parametrize(("args", "why"), [
    (["--ip-address", "Private"], "--ip-address Private places the group in a virtual network"),
    (["--vnet", "v"], "usage error: --vnet NAME --subnet NAME"),
    (["--subnet", "s"], "usage error: --vnet NAME --subnet NAME"),
    (["--vnet", "v", "--subnet", "s", "--dns-name-label", "web"],
     "--dns-name-label cannot be used with --subnet"),
    (["--vnet", "v", "--subnet", "s", "--ip-address", "Public"],
     "--ip-address Public cannot be used with --subnet"),
])
def test_create_network_flags_that_cannot_work_are_usage_errors(args: list[str],
                                                                why: str) -> None:
    """A private address without a subnet, a subnet without its network, a DNS label or a
    public address in a subnet: usage errors (exit 2) that say why, before any request."""
    arm = FakeArm()
    result = run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx", *args)
    assert result.exit_code == 2
    assert why in " ".join(result.stderr.split())
    assert arm.requests == []


@pytest.mark.parametrize("args", [[], ["--ip-address", "Public"]])
@pytest.mark.parametrize(("ports", "why"), [
    (["0"], "Invalid value for '--ports': 0 is not in the range 1<=x<=65535."),
    (["65536"], "Invalid value for '--ports': 65536 is not in the range 1<=x<=65535."),
    (["80", "80"], "--ports lists the port 80 more than once."),
])
def test_create_refuses_invalid_and_duplicate_ports(args: list[str], ports: list[str],
                                                    why: str) -> None:
    """A port out of range or given twice is a usage error (exit 2) that says so, with or
    without an IP address, before any request: never dropped in silence."""
    arm = FakeArm()
    result = run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx", *args,
                 "--ports", *ports)
    assert result.exit_code == 2
    assert why in " ".join(result.stderr.split())
    assert arm.requests == []


def test_create_ports_without_an_ip_address_are_not_opened_and_said_so() -> None:
    """--ports without an IP address sends az's body (no ports) and warns that none is open."""
    arm = FakeArm()
    result = ok(run(arm, "create", "-g", "rg", "-n", "web", "--image", "nginx",
                    "--ports", "8080", "9090"))
    container = arm.bodies("PUT")[0]["properties"]["containers"][0]["properties"]
    assert "ports" not in container
    assert "ipAddress" not in arm.bodies("PUT")[0]["properties"]
    assert result.stderr.startswith("WARNING: --ports 8080 9090 not opened: the group has no "
                                    "IP address")


def test_create_file_refuses_subnet_flags(tmp_path: Path) -> None:
    """--vnet/--subnet with --file is refused (the file names its subnet), not ignored."""
    (tmp_path / "g.yaml").write_text(ACI_YAML)
    arm = FakeArm()
    result = run(arm, "create", "-g", "rg", "-f", str(tmp_path / "g.yaml"), "--vnet", "v",
                 "--subnet", "s")
    assert result.exit_code == 2
    assert "properties.subnetIds" in result.stderr
    assert arm.requests == []


def test_group_body_in_a_subnet_is_private_with_ports() -> None:
    """group_body with a subnet id: subnetIds holds it, the address is Private with the
    ports (also opened on the container), and there is no DNS name label."""
    subnet = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/"
              "virtualNetworks/v/subnets/s")
    props = group_body(name="web", image="nginx", ports=(80, 443), subnet_id=subnet)[
        "properties"]
    ports = [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 443}]
    assert props["subnetIds"] == [{"id": subnet}]
    assert props["ipAddress"] == {"ports": ports, "type": "Private"}
    assert props["containers"][0]["properties"]["ports"] == ports
    assert "subnetIds" not in group_body(name="web", image="nginx")["properties"]


def test_create_help_documents_the_network_flags() -> None:
    """create --help names --vnet, --subnet and their prefixes with az's defaults."""
    result = CliRunner().invoke(main, ["container", "create", "--help"])
    text = " ".join(result.output.split())
    for flag in ("--vnet TEXT", "--subnet TEXT", "--vnet-address-prefix PREFIX",
                 "--subnet-address-prefix PREFIX", "[default: 10.0.0.0/16]",
                 "[default: 10.0.0.0/24]"):
        assert flag in text


ACI_YAML = """\
apiVersion: 2019-12-01
location: eastus
name: securetest
properties:
  containers:
  - name: mycontainer
    properties:
      environmentVariables:
        - name: 'NOTSECRET'
          value: 'my-exposed-value'
        - name: 'SECRET'
          secureValue: 'my-secret-value'
      image: mcr.microsoft.com/azuredocs/aci-helloworld
      ports: []
      resources:
        requests:
          cpu: 1.0
          memoryInGB: 1.5
  osType: Linux
  restartPolicy: Always
tags: null
type: Microsoft.ContainerInstance/containerGroups
"""


def test_create_from_yaml_file(tmp_path: Path) -> None:
    """An ACI YAML file becomes the PUT body (apiVersion and null tags dropped), named by
    the file, and its secure value is never printed."""
    spec = tmp_path / "group.yaml"
    spec.write_text(ACI_YAML)
    arm = FakeArm()
    result = ok(run(arm, "create", "-g", "rg", "--file", str(spec)))
    expected = yaml.safe_load(ACI_YAML)
    del expected["apiVersion"], expected["tags"]
    assert arm.bodies("PUT") == [expected]
    assert next(r for r in arm.requests if r.method == "PUT").url.path.endswith("/securetest")
    assert not any("/resourcegroups/" in p for _, p in arm.calls())  # the file has a location
    assert "my-secret-value" not in result.output


def test_create_from_yaml_name_must_match(tmp_path: Path) -> None:
    """-n that differs from the file's name is refused, as az refuses it."""
    spec = tmp_path / "group.yaml"
    spec.write_text(ACI_YAML)
    line = failed(run(FakeArm(), "create", "-g", "rg", "-n", "other", "-f", str(spec)))
    assert "must match" in line


def test_create_from_a_yaml_file_not_a_group_is_one_error_line(tmp_path: Path) -> None:
    """A YAML file that is no container group is one ERROR line, not a traceback."""
    spec = tmp_path / "group.yaml"
    spec.write_text("- just a list\n")
    assert "properties" in failed(run(FakeArm(), "create", "-g", "rg", "-f", str(spec)))


def test_create_from_broken_yaml_shows_where_as_pyyaml_does(tmp_path: Path) -> None:
    """A YAML syntax error names the line and column on the ERROR line, then PyYAML's report
    as it words it: the line itself, a caret under the column, the file's name."""
    spec = tmp_path / "group.yaml"
    spec.write_text("name: web\nproperties:\n  containers: [\n  osType: Linux\n")
    result = run(FakeArm(), "create", "-g", "rg", "-f", str(spec))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0] == (f"ERROR: (InvalidArgumentValue) Error while parsing yaml file {spec} "
                        "(line 5, column 1): expected ',' or ']', but got '<stream end>'")
    assert lines[1:5] == ["while parsing a flow sequence",
                          f'  in "{spec}", line 3, column 15:',
                          "      containers: [",
                          "                  ^"]


def test_create_from_missing_file(tmp_path: Path) -> None:
    """A file that is not there is one ERROR line."""
    line = failed(run(FakeArm(), "create", "-g", "rg", "-f", str(tmp_path / "nope.yaml")))
    assert line.startswith("ERROR: (InvalidArgumentValue) cannot read")


# --- show, list: output formats ------------------------------------------------------------------


def test_show_json_is_the_sdk_model_flattened(arm: FakeArm) -> None:
    """-o json: camelCase SDK attribute names, no properties wrapper, containers flattened,
    resourceGroup added, times as az prints them, keys sorted."""
    result = ok(run(arm, "show", "-g", "rg", "-n", "web"))
    shown = json.loads(result.stdout)
    assert "properties" not in shown
    assert shown["resourceGroup"] == "rg"
    assert shown["provisioningState"] == "Succeeded"
    assert shown["instanceView"]["state"] == "Running"
    container = shown["containers"][0]
    assert "properties" not in container
    assert container["instanceView"]["currentState"]["state"] == "Running"
    assert container["instanceView"]["currentState"]["startTime"] == "2024-05-01T10:00:00+00:00"
    assert container["resources"]["requests"] == {"cpu": 1.0, "memoryInGb": 1.5}
    assert shown["ipAddress"]["fqdn"] == "web.local.test"
    assert "additionalProperties" not in result.stdout
    assert "null" not in result.stdout
    keys = re.findall(r'^  "(\w+)":', result.stdout, re.M)
    assert keys == sorted(keys)


def test_show_never_prints_secrets_a_server_echoes(arm: FakeArm) -> None:
    """Even a server that echoes secureValue and registry passwords gets them masked out."""
    arm.echo_secrets = True
    arm.add("rg", "sec", nginx_group(environmentVariables=[{"name": "P", "secureValue": "zz9"}]))
    arm.groups[("rg", "sec")]["properties"]["imageRegistryCredentials"] = [
        {"server": "r.example", "username": "u", "password": "pw-zz8"}]
    result = ok(run(arm, "show", "-g", "rg", "-n", "sec"))
    assert "zz9" not in result.stdout
    assert "pw-zz8" not in result.stdout
    assert json.loads(result.stdout)["containers"][0]["environmentVariables"] == [{"name": "P"}]


def test_show_missing_group_exits_3(arm: FakeArm) -> None:
    """A 404 prints ERROR: (ResourceNotFound) ... and exits 3, as az does."""
    line = failed(run(arm, "show", "-g", "rg", "-n", "nope"), 3)
    assert line == "ERROR: (ResourceNotFound) The Resource 'nope' was not found."


def test_show_yaml(arm: FakeArm) -> None:
    """-o yaml is the same data as -o json."""
    as_json = json.loads(ok(run(arm, "show", "-g", "rg", "-n", "web")).stdout)
    as_yaml = yaml.safe_load(ok(run(arm, "show", "-g", "rg", "-n", "web", "-o", "yaml")).stdout)
    assert as_yaml == as_json


def test_show_table_is_az_container_table(arm: FakeArm) -> None:
    """-o table prints az's columns for a container group."""
    lines = ok(run(arm, "show", "-g", "rg", "-n", "web", "-o", "table")).stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["Name", "ResourceGroup", "Status", "Image",
                                             "IP:ports", "Network", "CPU/Memory", "OsType",
                                             "Location"]
    assert set(lines[1]) == {"-", " "}
    assert re.split(r"\s{2,}", lines[2]) == ["web", "rg", "Running", "nginx", "10.0.0.5:80,443",
                                             "Public", "1.0 core/1.5 gb", "Linux", "westeurope"]


def test_query_then_tsv_keeps_the_query_order(arm: FakeArm) -> None:
    """--query is applied before -o tsv; a multiselect hash keeps its order."""
    result = ok(run(arm, "show", "-g", "rg", "-n", "web", "--query",
                    "{z: name, a: osType, n: containers[0].instanceView.currentState.state}",
                    "-o", "tsv"))
    assert result.stdout == "web\tLinux\tRunning\n"


def test_tsv_of_an_object_sorts_keys_and_counts_lists(capsys: pytest.CaptureFixture[str]) -> None:
    """-o tsv of an object: values by sorted key, a list as its length, an object empty,
    and a top-level boolean in lower case."""
    emit([{"name": "web", "containers": [{}, {}], "ip": {"ip": "10.0.0.5"}}, True], "tsv")
    assert capsys.readouterr().out == "2\t\tweb\ntrue\n"


def test_query_scalar_json(arm: FakeArm) -> None:
    """--query of one value prints that JSON value."""
    result = ok(run(arm, "show", "-g", "rg", "-n", "web", "--query", "ipAddress.fqdn"))
    assert result.stdout == '"web.local.test"\n'


def test_query_with_table_uses_the_query_columns(arm: FakeArm) -> None:
    """With --query, -o table shows the query's fields, not az's group columns."""
    result = ok(run(arm, "list", "--query", "[].{Name: name, State: provisioningState}",
                    "-o", "table"))
    assert [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()] == [
        ["Name", "State"], ["------", "---------"], ["web", "Succeeded"]]


def test_invalid_query_is_a_usage_error(arm: FakeArm) -> None:
    """A malformed JMESPath is refused with exit 2, before any request."""
    result = run(arm, "show", "-g", "rg", "-n", "web", "--query", "[?")
    assert result.exit_code == 2
    assert arm.requests == []


def test_output_none_prints_nothing(arm: FakeArm) -> None:
    """-o none prints nothing."""
    assert ok(run(arm, "show", "-g", "rg", "-n", "web", "-o", "none")).stdout == ""


def test_list_follows_pages_and_scopes(arm: FakeArm) -> None:
    """list follows nextLink; -g lists the resource group, no -g the subscription."""
    arm.page_size = 1
    arm.add("rg", "db", nginx_group())
    arm.add("other", "cache", nginx_group())
    everything = json.loads(ok(run(arm, "list")).stdout)
    assert sorted(g["name"] for g in everything) == ["cache", "db", "web"]
    assert {g["resourceGroup"] for g in everything} == {"rg", "other"}
    arm.requests.clear()
    in_rg = json.loads(ok(run(arm, "list", "-g", "rg", "--query", "[].name")).stdout)
    assert in_rg == ["db", "web"]
    assert all(p.startswith(f"/subscriptions/{SUB}/resourceGroups/rg/") for _, p in arm.calls())
    assert len(arm.requests) == 2


def test_list_table(arm: FakeArm) -> None:
    """list -o table prints a header, a rule and one row per group."""
    arm.add("rg", "db", nginx_group())
    lines = ok(run(arm, "list", "-o", "table")).stdout.splitlines()
    assert len(lines) == 4
    assert [line.split()[0] for line in lines[2:]] == ["db", "web"]


# --- delete, start, stop, restart, export ------------------------------------------------------


def test_delete_yes_waits_until_gone(arm: FakeArm) -> None:
    """delete --yes sends DELETE and polls its operation to the end."""
    result = ok(run(arm, "delete", "-g", "rg", "-n", "web", "--yes"))
    assert ("DELETE", f"/subscriptions/{SUB}/resourceGroups/rg{PROVIDER}/containerGroups/web") \
        in arm.calls()
    assert sum("/operations/" in p for _, p in arm.calls()) == 2
    assert ("rg", "web") not in arm.groups
    assert result.stdout == ""


def test_delete_without_yes_and_no_tty_refuses(arm: FakeArm) -> None:
    """Without --yes and without a terminal to ask on, nothing is deleted."""
    line = failed(run(arm, "delete", "-g", "rg", "-n", "web"))
    assert "--yes" in line
    assert arm.requests == []


@pytest.mark.parametrize(("command", "polls"), [("start", 2), ("restart", 2), ("stop", 0)])
def test_actions_post_and_wait(arm: FakeArm, command: str, polls: int) -> None:
    """start and restart POST and wait for the operation; stop POSTs only."""
    ok(run(arm, command, "-g", "rg", "-n", "web"))
    assert arm.calls()[0] == ("POST", f"/subscriptions/{SUB}/resourceGroups/rg{PROVIDER}/"
                                      f"containerGroups/web/{command}")
    assert len(arm.requests) == 1 + polls


def test_start_no_wait(arm: FakeArm) -> None:
    """start --no-wait does not poll."""
    ok(run(arm, "start", "-g", "rg", "-n", "web", "--no-wait"))
    assert len(arm.requests) == 1


def test_export_writes_aci_yaml_without_secrets(arm: FakeArm, tmp_path: Path) -> None:
    """export writes the ARM body as YAML with apiVersion, without state or secrets (a
    comment says where they were); the file creates the same group again."""
    arm.echo_secrets = True
    arm.add("rg", "sec", nginx_group(environmentVariables=[{"name": "P", "secureValue": "zz9"}]))
    arm.groups[("rg", "sec")]["properties"]["imageRegistryCredentials"] = [
        {"server": "r.example", "username": "u", "password": "pw-zz8"}]
    out = tmp_path / "sec.yaml"
    ok(run(arm, "export", "-g", "rg", "-n", "sec", "-f", str(out)))
    text = out.read_text()
    for word in ("zz9", "pw-zz8", "instanceView", "provisioningState", "/subscriptions/",
                 "10.0.0.5", "fqdn"):
        assert word not in text
    assert text.startswith(
        "# Secrets are not exported. Put them back before `skiff container create --file`:\n"
        "#   properties.containers[0].properties.environmentVariables[0].secureValue (P)\n"
        "#   properties.imageRegistryCredentials[0].password (r.example)\n")
    exported = yaml.safe_load(text)
    assert exported["apiVersion"] == API_VERSION
    assert exported["name"] == "sec"
    assert exported["properties"]["containers"][0]["properties"]["environmentVariables"] == [
        {"name": "P"}]
    assert exported["properties"]["imageRegistryCredentials"] == [
        {"server": "r.example", "username": "u"}]
    arm.requests.clear()
    ok(run(arm, "create", "-g", "rg2", "-f", str(out), "-o", "none"))
    del exported["apiVersion"]
    assert arm.bodies("PUT") == [exported]


# --- logs, exec, attach --------------------------------------------------------------------------


def test_logs_of_the_first_container(arm: FakeArm) -> None:
    """Without --container-name the first container's logs are printed as they are."""
    result = ok(run(arm, "logs", "-g", "rg", "-n", "web"))
    assert result.stdout == "line 1\nline 2\n"
    assert arm.calls()[-1][1].endswith("/containerGroups/web/containers/web/logs")


def test_logs_tail_previous_timestamps(arm: FakeArm) -> None:
    """--tail, --previous and --timestamps become the logs request's query."""
    ok(run(arm, "logs", "-g", "rg", "-n", "web", "--container-name", "side", "--tail", "5",
           "--previous", "--timestamps"))
    request = arm.requests[-1]
    assert request.url.path.endswith("/containers/side/logs")
    assert dict(request.url.params) == {"tail": "5", "previous": "true", "timestamps": "true",
                                        "api-version": API_VERSION}


def test_logs_follow_refuses_tail() -> None:
    """--follow with --tail is a usage error."""
    result = run(FakeArm(), "logs", "-g", "rg", "-n", "web", "--follow", "--tail", "3")
    assert result.exit_code == 2


@pytest.fixture
def ws_server() -> Iterator[tuple[str, list[Any]]]:
    """A loopback websocket server playing a container: greets, echoes input upper-cased,
    and closes at end-of-input (Ctrl-D)."""
    received: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        received.append(ws.recv())
        ws.send(b"hello from the container\r\n")
        if received[0] == "attach-pw":
            return
        if received[0] == "quiet-pw":  # record whatever comes within half a second
            with suppress(TimeoutError):
                received.append(ws.recv(timeout=0.5))
            return
        for message in ws:
            received.append(message)
            if message == "\x04":
                return
            ws.send(str(message).upper())

    server: Server
    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", received
        server.shutdown()
        thread.join(5)


def test_exec_streams_stdin_and_output(arm: FakeArm, ws_server: tuple[str, list[Any]]) -> None:
    """exec posts the command, sends the password first, then stdin and end-of-input, and
    copies the output to stdout."""
    arm.ws_uri, received = ws_server
    result = ok(run(arm, "exec", "-g", "rg", "-n", "web", "--exec-command", "/bin/sh",
                    input="echo hi\n"))
    assert result.stdout_bytes == b"hello from the container\r\nECHO HI\n"
    assert received == ["pw", "echo hi\n", "\x04"]
    exec_request = next(r for r in arm.requests if r.url.path.endswith("/exec"))
    assert exec_request.url.path.endswith("/containers/web/exec")
    assert json.loads(exec_request.content) == {"command": "/bin/sh",
                                                "terminalSize": {"rows": 20, "cols": 80}}


def test_exec_without_input_sends_no_end_of_input(arm: FakeArm,
                                                  ws_server: tuple[str, list[Any]]) -> None:
    """With nothing on stdin only the password is sent: no Ctrl-D for the terminal to echo."""
    arm.ws_uri, received = ws_server
    original = arm.__call__

    def quick_exit(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.url.path.endswith("/exec"):
            return httpx.Response(200, json={"webSocketUri": arm.ws_uri, "password": "quiet-pw"})
        return response

    result = ok(run(quick_exit, "exec", "-g", "rg", "-n", "web", "--exec-command", "hostname"))
    assert result.stdout_bytes == b"hello from the container\r\n"
    assert received == ["quiet-pw"]


def test_logs_follow_streams_attach(arm: FakeArm, ws_server: tuple[str, list[Any]]) -> None:
    """logs --follow attaches and prints the stream until the server closes it."""
    uri, received = ws_server
    arm.ws_uri = uri
    original = arm.__call__

    def attach_password(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.url.path.endswith("/attach"):
            return httpx.Response(200, json={"webSocketUri": uri, "password": "attach-pw"})
        return response

    result = ok(run(attach_password, "logs", "-g", "rg", "-n", "web", "--follow"))
    assert result.stdout_bytes == b"hello from the container\r\n"
    assert received == ["attach-pw"]
    assert arm.requests[-1].url.path.endswith("/containers/web/attach")


def test_exec_needs_container_name_for_several(arm: FakeArm) -> None:
    """exec on a group of two containers without --container-name is refused."""
    two = nginx_group()
    two["properties"]["containers"].append(deepcopy(two["properties"]["containers"][0]))
    two["properties"]["containers"][1]["name"] = "side"
    arm.add("rg", "two", two)
    line = failed(run(arm, "exec", "-g", "rg", "-n", "two", "--exec-command", "sh"))
    assert "--container-name required" in line


def test_stream_refused_is_one_error_line(arm: FakeArm) -> None:
    """A websocket nobody answers is ERROR: (ConnectionFailed), not a traceback."""
    line = failed(run(arm, "attach", "-g", "rg", "-n", "web"))
    assert line.startswith("ERROR: (ConnectionFailed)")


# --- errors, configuration, help -----------------------------------------------------------------


def test_connection_failure_is_one_line() -> None:
    """An unreachable API is ERROR: (ConnectionFailed) ... and exit 1."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    line = failed(run(refuse, "list"))
    assert line.startswith("ERROR: (ConnectionFailed) cannot reach https://skiff.test:8443")


def test_unexpected_answer_is_one_line() -> None:
    """An answer the CLI cannot read is one ERROR line, not a traceback."""

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    assert failed(run(garbage, "show", "-g", "rg", "-n", "web")).startswith(
        "ERROR: (InvalidResponse)")


def test_env_defaults_without_a_token(tmp_path: Path) -> None:
    """With no client passed in, the CLI reads SKIFF_*; no token anywhere is one clear line."""
    result = CliRunner().invoke(main, ["container", "list"],
                                env={"SKIFF_DATA_ROOT": str(tmp_path), "SKIFF_TOKEN": ""})
    line = failed(result)
    assert line.startswith("ERROR: (InvalidClientConfiguration) no API token: set SKIFF_TOKEN")


def test_env_defaults_read_the_data_root_token(tmp_path: Path) -> None:
    """The token file of SKIFF_DATA_ROOT is enough to reach SKIFF_URL."""
    (tmp_path / "admin.token").write_text("t0k\n")
    result = CliRunner().invoke(main, ["container", "list"],
                                env={"SKIFF_DATA_ROOT": str(tmp_path), "SKIFF_TOKEN": "",
                                     "SKIFF_CA": "", "SKIFF_URL": "http://127.0.0.1:9"})
    assert failed(result).startswith("ERROR: (ConnectionFailed) cannot reach http://127.0.0.1:9")


@pytest.mark.parametrize("command", ["create", "show", "list", "delete", "logs", "exec",
                                     "attach", "start", "stop", "restart", "export"])
def test_every_command_has_help(command: str) -> None:
    """--help works for every command and shows its az description."""
    result = CliRunner().invoke(main, ["container", command, "--help"])
    assert result.exit_code == 0
    assert f"Usage: main container {command}" in result.output


def test_image_commands_still_registered() -> None:
    """The node's image commands sit beside the container commands."""
    result = CliRunner().invoke(main, ["--help"])
    assert "container" in result.output
    assert "image" in result.output


# --- pieces ---------------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_spins_on_a_terminal_only() -> None:
    """The progress display writes a spinner and the status to a terminal, nothing elsewhere."""
    tty, pipe = _Tty(), io.StringIO()
    for stream in (Progress(tty), Progress(pipe)):
        stream("InProgress")
        stream.done()
    assert tty.getvalue().startswith("\r| Running .. 0s InProgress\x1b[K")
    assert tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


def test_jsonc_off_a_terminal_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    """-o jsonc is plain JSON when stdout is not a terminal, as in az."""
    emit({"b": 1, "a": [True, None]}, "jsonc")
    assert capsys.readouterr().out == '{\n  "a": [\n    true,\n    null\n  ],\n  "b": 1\n}\n'


def test_az_view_falls_back_when_the_sdk_cannot_read_the_body() -> None:
    """A body the SDK refuses is still flattened by hand, with its resourceGroup."""
    body = {"id": f"/subscriptions/{SUB}/resourceGroups/rg{PROVIDER}/containerGroups/x",
            "name": "x", "properties": {"containers": [{"name": "c", "properties": {
                "resources": {"requests": {"cpu": "lots"}}}}]}}
    view = az_view(body)
    assert view["resourceGroup"] == "rg"
    assert view["containers"][0]["resources"]["requests"]["cpu"] == "lots"


def test_group_body_carries_the_isolation_asked_for() -> None:
    """--isolation sandbox sets skiff's properties.isolation; without it the server decides."""
    assert group_body(name="web", image="nginx", isolation="sandbox")["properties"][
        "isolation"] == "Sandbox"
    assert "isolation" not in group_body(name="web", image="nginx")["properties"]


def test_table_sums_of_cores_and_memory_have_at_most_two_decimals() -> None:
    """0.1 + 0.2 cores show as 0.3 core, not 0.30000000000000004; a whole sum as az does."""
    def container(cpu: float, memory: float) -> dict[str, Any]:
        return {"name": f"c{cpu}", "image": "busybox",
                "resources": {"requests": {"cpu": cpu, "memoryInGb": memory}}}

    small = {"name": "g", "containers": [container(0.1, 0.1), container(0.2, 0.2)]}
    whole = {"name": "h", "containers": [container(0.5, 1.0), container(0.5, 0.5)]}
    rows = group_table([small, whole])
    assert [row["CPU/Memory"] for row in rows] == ["0.3 core/0.3 gb", "1.0 core/1.5 gb"]


def test_azure_file_flags_make_az_s_volume_and_mount() -> None:
    """The four --azure-file-volume-* flags give az's body: a volume named azurefile with
    the share, account and key, mounted in the container at the path; some without the
    others are refused as az refuses them."""
    from skiff.cli.bodies import azure_file_flags
    from skiff.cli.common import InvalidArgument
    from skiff.documents import group_body

    flags = azure_file_flags(share="data", account="acct", key="k3y", mount_path="/mnt/data")
    body = group_body(name="app", image="bb", azure_file=flags)
    props = body["properties"]
    assert props["volumes"] == [{"name": "azurefile", "azureFile": {
        "shareName": "data", "storageAccountName": "acct", "storageAccountKey": "k3y"}}]
    assert props["containers"][0]["properties"]["volumeMounts"] == [
        {"name": "azurefile", "mountPath": "/mnt/data"}]
    assert azure_file_flags(share=None, account=None, key=None, mount_path=None) is None
    assert "volumes" not in group_body(name="app", image="bb")["properties"]
    with pytest.raises(InvalidArgument, match="--azure-file-volume-account-key"):
        azure_file_flags(share="data", account="acct", key=None, mount_path="/m")
    with pytest.raises(InvalidArgument, match="--azure-file-volume-mount-path"):
        azure_file_flags(share="data", account="acct", key="k", mount_path=None)


def test_secrets_and_gitrepo_flags_put_az_s_volumes_and_mounts() -> None:
    """--secrets (space-separated, base64 of each value, a later key winning) at
    --secrets-mount-path and the --gitrepo-* flags give az's body: volumes named
    secrets and gitrepo after azurefile, each mounted at its path; no secret value is
    printed."""
    arm = FakeArm()
    result = ok(run(arm, "create", "-g", "rg", "-n", "app", "--image", "alpine",
                    "--secrets", "token=s3cr=t", "empty=", "note=héllo", "token=hunter22",
                    "--secrets-mount-path", "/mnt/secrets",
                    "--gitrepo-url", "https://example.test/repo.git", "--gitrepo-dir", "repo",
                    "--gitrepo-revision", "0123abc", "--gitrepo-mount-path", "/src",
                    "--azure-file-volume-share-name", "data",
                    "--azure-file-volume-account-name", "acct",
                    "--azure-file-volume-account-key", "k3y",
                    "--azure-file-volume-mount-path", "/data"))
    props = arm.bodies("PUT")[0]["properties"]
    assert props["volumes"] == [
        {"name": "azurefile", "azureFile": {"shareName": "data", "storageAccountName": "acct",
                                            "storageAccountKey": "k3y"}},
        {"name": "secrets", "secret": {"token": "aHVudGVyMjI=", "empty": "",
                                       "note": "aMOpbGxv"}},
        {"name": "gitrepo", "gitRepo": {"repository": "https://example.test/repo.git",
                                        "directory": "repo", "revision": "0123abc"}}]
    assert props["containers"][0]["properties"]["volumeMounts"] == [
        {"name": "azurefile", "mountPath": "/data"},
        {"name": "secrets", "mountPath": "/mnt/secrets"},
        {"name": "gitrepo", "mountPath": "/src"}]
    assert "hunter22" not in result.output
    arm = FakeArm()
    ok(run(arm, "create", "-g", "rg", "-n", "app", "--image", "alpine", "--gitrepo-url",
           "https://example.test/repo.git", "-o", "none"))
    props = arm.bodies("PUT")[0]["properties"]
    assert props["volumes"] == [{"name": "gitrepo", "gitRepo": {
        "repository": "https://example.test/repo.git"}}]
    assert "volumeMounts" not in props["containers"][0]["properties"]


@pytest.mark.parametrize(("args", "message"), [
    (["--secrets", "a=1"], "Please specify --secrets --secrets-mount-path to enable secrets "
                           "volume mount."),
    (["--secrets-mount-path", "/s"], "Please specify --secrets --secrets-mount-path"),
    (["--secrets", "novalue", "--secrets-mount-path", "/s"],
     "Secrets need to be specified in key=value format."),
    (["--secrets", "a=1", "--secrets-mount-path", "C:/s"],
     "The volume mount path cannot contain ':'"),
    (["--gitrepo-mount-path", "/src"], "Please specify --gitrepo-url (--gitrepo-dir "
                                       "--gitrepo-revision) to enable Git Repo volume mount."),
    (["--gitrepo-dir", "d"], "Please specify --gitrepo-url"),
    (["--gitrepo-url", "https://x.test/r.git", "--gitrepo-dir", "a/../b"],
     "The git repo directory cannot contain '..'"),
    (["--gitrepo-url", "https://x.test/r.git", "--gitrepo-mount-path", "/a:b"],
     "The volume mount path cannot contain ':'"),
])
def test_secrets_and_gitrepo_flags_refused_as_az_refuses_them(args: list[str],
                                                              message: str) -> None:
    """Each incomplete or bad volume flag is one error line, before any request, and never
    shows a secret's value."""
    arm = FakeArm()
    result = run(arm, "create", "-g", "rg", "-n", "app", "--image", "alpine", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert arm.requests == []


def test_create_help_names_the_secret_and_gitrepo_flags() -> None:
    """--help documents every new flag as az words it."""
    result = CliRunner().invoke(main, ["container", "create", "--help"])
    for flag in ("--secrets KEY=VALUE", "--secrets-mount-path", "--gitrepo-url",
                 "--gitrepo-dir", "--gitrepo-revision", "--gitrepo-mount-path"):
        assert flag in result.output
