"""Unit tests for skiff.models.to_engine_spec: an ARM body in the engine's terms."""

from __future__ import annotations

import pytest

from skiff.core import spec as engine
from skiff.core.secrets import secrets_of
from skiff.errors import ArmError, UnsupportedVolumeType
from skiff.models import ContainerGroupBody, to_engine_spec
from skiff.testing.documents import (
    REGISTRY_PASSWORD,
    SECRET_B64,
    SECURE_VALUE,
    group_body,
    parse,
)


def spec() -> engine.GroupSpec:
    """The test body's spec."""
    return to_engine_spec(parse(group_body()), group_id="uuid-1", name="mygroup")


def test_group_fields_map() -> None:
    """id, name, restart policy and registry credentials reach the spec."""
    s = spec()
    assert (s.id, s.name, s.restart_policy) == ("uuid-1", "mygroup", engine.RestartPolicy.ALWAYS)
    assert s.credentials == (engine.RegistryCredentialSpec("registry.example.com", "me",
                                                           REGISTRY_PASSWORD),)
    assert s.dns is None


def test_containers_map() -> None:
    """command, env (secure flagged), resources, ports, mounts and probes map one to one."""
    web, sidecar = spec().containers
    assert (web.name, web.image) == ("web", "nginx:1.25")
    assert web.command == ("nginx", "-g", "daemon off;")
    assert web.env == (engine.EnvVar("MODE", "prod"),
                       engine.EnvVar("TOKEN", SECURE_VALUE, secure=True))
    assert web.resources == engine.Resources(cpu=1.0, memory_gb=1.5)
    assert web.ports == (engine.Port(80, "TCP"),)
    assert web.volume_mounts == (engine.VolumeMount("data", "/data", False),)
    assert web.liveness == engine.Probe(engine.HttpGetAction(port=80, path="/healthz"),
                                        period_s=5)
    assert web.readiness is None
    assert sidecar.resources == engine.Resources(cpu=0.5, memory_gb=0.5, cpu_limit=1.5,
                                                 memory_limit_gb=1.0)
    assert sidecar.ports == (engine.Port(9000, "UDP"),)
    assert sidecar.volume_mounts == (engine.VolumeMount("secrets", "/etc/secrets", True),)
    assert sidecar.readiness == engine.Probe(engine.ExecAction(("cat", "/tmp/ready")))


def test_init_containers_get_the_group_size() -> None:
    """An init container has no resources in ACI: it gets the sum of the containers' requests."""
    (init,) = spec().init_containers
    assert (init.name, init.image, init.command) == ("init", "busybox", ("true",))
    assert init.resources == engine.Resources(cpu=1.5, memory_gb=2.0)
    assert init.volume_mounts == (engine.VolumeMount("repo", "/repo", False),)


def test_volumes_map() -> None:
    """emptyDir, secret and gitRepo volumes become the engine's volume sources."""
    assert spec().volumes == (
        engine.Volume("data", engine.EmptyDirVolume()),
        engine.Volume("secrets", engine.SecretVolume((("key.txt", SECRET_B64),))),
        engine.Volume("repo", engine.GitRepoVolume("https://example.com/x/y.git", None, "main")),
    )


def test_optional_fields_and_defaults() -> None:
    """No command is None, an empty command too; dnsConfig and probe fields map with defaults."""
    body = group_body()
    p = body["properties"]
    p["restartPolicy"] = "Never"
    p["dnsConfig"] = {"nameServers": ["10.0.0.2", "10.0.0.3"], "searchDomains": "a.b c.d",
                      "options": "ndots:2"}
    web = p["containers"][0]["properties"]
    web.pop("command")
    web["livenessProbe"] = {"httpGet": {"port": 8080, "path": "ready", "scheme": "https",
                                        "httpHeaders": [{"name": "X-A", "value": "1"}]},
                            "initialDelaySeconds": 3, "timeoutSeconds": 2,
                            "failureThreshold": 5, "successThreshold": 2, "periodSeconds": 7}
    p["containers"][1]["properties"]["command"] = []
    s = to_engine_spec(parse(body), group_id="g", name="mygroup")
    assert s.restart_policy is engine.RestartPolicy.NEVER
    assert s.dns == engine.DnsConfig(("10.0.0.2", "10.0.0.3"), ("a.b", "c.d"), "ndots:2")
    assert s.containers[0].command is None
    assert s.containers[1].command is None
    assert s.containers[0].liveness == engine.Probe(
        engine.HttpGetAction(port=8080, path="/ready", scheme="https", headers=(("X-A", "1"),)),
        initial_delay_s=3, period_s=7, timeout_s=2, failure_threshold=5, success_threshold=2)


def test_ip_address_ports_map_and_no_ip_address_means_no_ports() -> None:
    """ipAddress.ports become the spec's ip_ports; a group without ipAddress has none."""
    assert spec().ip_ports == (engine.Port(80, "TCP"),)
    body = group_body()
    body["properties"].pop("ipAddress")
    assert to_engine_spec(parse(body), group_id="g", name="mygroup").ip_ports == ()


def test_an_azure_file_volume_converts_with_its_key_and_read_only() -> None:
    """azureFile becomes the engine's AzureFileVolume (names in any case, as ARM's); its
    key is kept for the mount but never shown in the spec's repr."""
    body = group_body()
    body["properties"]["volumes"].append({"name": "share", "azureFile": {
        "shareName": "data", "STORAGEACCOUNTNAME": "acct", "storageAccountKey": "s3cr3tkey",
        "readOnly": True}})
    spec = to_engine_spec(parse(body), group_id="g", name="mygroup")
    source = next(v.source for v in spec.volumes if v.name == "share")
    assert source == engine.AzureFileVolume(account="acct", share="data", key="s3cr3tkey",
                                            read_only=True)
    assert "s3cr3tkey" not in repr(spec)
    assert "s3cr3tkey" in secrets_of(spec)


def test_a_stored_volume_without_a_source_is_refused() -> None:
    """A stored volume of no kind raises rather than quietly becoming an emptyDir."""
    stored = parse(group_body()).to_stored()
    stored["properties"]["volumes"].append({"name": "share"})
    with pytest.raises(UnsupportedVolumeType):
        to_engine_spec(ContainerGroupBody.from_stored(stored), group_id="g", name="mygroup")


def test_the_spec_survives_a_store_round_trip() -> None:
    """A body read back from the store gives the same spec as the parsed one."""
    body = parse(group_body())
    again = ContainerGroupBody.from_stored(body.to_stored())
    assert to_engine_spec(again, group_id="g", name="n") == to_engine_spec(body, group_id="g",
                                                                           name="n")


def test_isolation_maps_and_is_checked() -> None:
    """properties.isolation (any case) picks the engine's isolation; Container without
    it; another value is 400 InvalidIsolation."""
    assert spec().isolation == "container"
    body = group_body()
    body["properties"]["isolation"] = "sandbox"
    parsed = parse(body)
    assert parsed.properties.isolation == "Sandbox"
    assert to_engine_spec(parsed, group_id="u", name="g").isolation == "sandbox"
    body["properties"]["isolation"] = "vm"
    with pytest.raises(ArmError) as exc:
        parse(body)
    assert exc.value.code == "InvalidIsolation"


def test_a_gpu_request_maps_with_its_canonical_sku() -> None:
    """requests.gpu reaches the container's resources, its sku upper-cased; init
    containers (the group's size) get none; a stored body gives the same."""
    body = group_body()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["gpu"] = {
        "count": 2, "sku": "h100"}
    parsed = parse(body)
    web, sidecar = to_engine_spec(parsed, group_id="g", name="n").containers
    assert (web.resources.gpu_count, web.resources.gpu_sku) == (2, "H100")
    assert (sidecar.resources.gpu_count, sidecar.resources.gpu_sku) == (0, "")
    (init,) = to_engine_spec(parsed, group_id="g", name="n").init_containers
    assert init.resources.gpu_count == 0
    again = ContainerGroupBody.from_stored(parsed.to_stored())
    assert to_engine_spec(again, group_id="g", name="n").containers[0].resources == \
        web.resources
