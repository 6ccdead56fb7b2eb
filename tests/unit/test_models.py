"""Unit tests for skiff.models' parsing: every ACI rule with its code and target, and extras."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from skiff.errors import ArmError
from skiff.models import ContainerGroupBody
from skiff.testing.documents import (
    LOCATIONS,
    REGISTRY_PASSWORD,
    SECRET_B64,
    SECRET_FILE,
    SECURE_VALUE,
    Body,
    group_body,
    parse,
    props,
    web,
)

SUBNET = ("/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/"
          "vnet/subnets/default")


def refused(body: Any, name: str = "mygroup") -> ArmError:
    """The ArmError parsing ``body`` raises."""
    with pytest.raises(ArmError) as info:
        parse(body, name)
    assert info.value.status == 400
    return info.value


def sidecar(b: Body) -> Body:
    return props(b)["containers"][1]["properties"]  # type: ignore[no-any-return]


def spot(b: Body) -> Body:
    """Make ``b`` a Spot group without inbound connectivity."""
    props(b).update(priority="Spot")
    props(b).pop("ipAddress")
    return b


def many_containers(n: int) -> list[Body]:
    return [{"name": f"c{i}", "properties": {
        "image": "busybox", "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}
        for i in range(n)]


C0 = "properties.containers[0].properties"
C1 = "properties.containers[1].properties"

# (what to break, the code ACI or skiff answers, the target)
CASES: list[tuple[str, Callable[[Body], object], str, str | None]] = [
    ("no properties", lambda b: b.pop("properties"), "InvalidRequestContent", "properties"),
    ("no containers", lambda b: props(b).pop("containers"),
     "ContainerGroupContainersRequired", "properties.containers"),
    ("empty containers", lambda b: props(b).update(containers=[]),
     "ContainerGroupContainersRequired", "properties.containers"),
    ("61 containers", lambda b: props(b).update(containers=many_containers(60)),
     "ContainerGroupTooManyContainers", "properties.containers"),
    ("no osType", lambda b: props(b).pop("osType"), "InvalidOsType", "properties.osType"),
    ("Windows", lambda b: props(b).update(osType="Windows"), "InvalidOsType",
     "properties.osType"),
    ("unknown osType", lambda b: props(b).update(osType="Plan9"), "InvalidOsType",
     "properties.osType"),
    ("restartPolicy", lambda b: props(b).update(restartPolicy="Sometimes"),
     "InvalidRestartPolicy", "properties.restartPolicy"),
    ("sku", lambda b: props(b).update(sku="Premium"), "InvalidSku", "properties.sku"),
    ("priority", lambda b: props(b).update(priority="Low"), "PriorityNotSpecified",
     "properties.priority"),
    ("spot sku", lambda b: props(b).update(priority="spot", sku="Dedicated"),
     "SpotPriorityContainerGroupNotSupportedInSku", "properties.sku"),
    ("spot ip", lambda b: props(b).update(priority="Spot"),
     "SpotPriorityContainerGroupNotSupportedForInboundConnectivity", "properties.ipAddress"),
    ("spot subnet", lambda b: props(spot(b)).update(subnetIds=[{"id": SUBNET}]),
     "SpotPriorityContainerGroupNotSupportedForInboundConnectivity", "properties.subnetIds"),
    ("spot gpu", lambda b: sidecar(spot(b))["resources"]["limits"].update(gpu={"count": 1}),
     "SpotPriorityContainerGroupWithGPUResourcesNotSupported", f"{C1}.resources"),
    ("spot cpu", lambda b: web(spot(b))["resources"]["requests"].update(cpu=3.75),
     "SpotPriorityContainerGroupResourcesExceeded", "properties.containers"),
    ("subnetIds", lambda b: props(b).update(subnetIds=[{"id": "/subscriptions/x/subnets/y"}]),
     "InvalidSubnetId", "properties.subnetIds[0].id"),
    ("two subnetIds", lambda b: props(b).update(subnetIds=[{"id": SUBNET}, {"id": SUBNET}]),
     "InvalidSubnetId", "properties.subnetIds"),
    ("public IP in a subnet", lambda b: props(b).update(subnetIds=[{"id": SUBNET}]),
     "PublicIpAddressNotSupportedInSubnet", "properties.ipAddress.type"),
    ("private IP without subnet", lambda b: props(b)["ipAddress"].update(type="Private"),
     "PrivateIpAddressRequiresSubnet", "properties.ipAddress.type"),
    ("label in a subnet", lambda b: (props(b).update(subnetIds=[{"id": SUBNET}]),
                                     props(b)["ipAddress"].update(type="Private",
                                                                  dnsNameLabel="hello-web")),
     "DnsNameLabelNotSupportedInSubnet", "properties.ipAddress.dnsNameLabel"),
    ("container name", lambda b: props(b)["containers"][0].update(name="Web"),
     "InvalidContainerName", "properties.containers[0].name"),
    ("container name --", lambda b: props(b)["containers"][0].update(name="a--b"),
     "InvalidContainerName", "properties.containers[0].name"),
    ("no container name", lambda b: props(b)["containers"][0].pop("name"),
     "InvalidContainerName", "properties.containers[0].name"),
    ("duplicate name", lambda b: props(b)["containers"][1].update(name="web"),
     "DuplicateContainerName", "properties.containers[1].name"),
    ("init container duplicate", lambda b: props(b)["initContainers"][0].update(name="web"),
     "DuplicateContainerName", "properties.containers[0].name"),
    ("no image", lambda b: web(b).pop("image"), "ContainerImageRequired", f"{C0}.image"),
    ("empty image", lambda b: web(b).update(image=" "), "ContainerImageRequired",
     f"{C0}.image"),
    ("bad image", lambda b: web(b).update(image="Nginx"), "InvalidImageReference",
     f"{C0}.image"),
    ("init image", lambda b: props(b)["initContainers"][0]["properties"].pop("image"),
     "ContainerImageRequired", "properties.initContainers[0].properties.image"),
    ("no resources", lambda b: web(b).pop("resources"), "ResourceRequestsNotSpecified",
     f"{C0}.resources"),
    ("no requests", lambda b: web(b)["resources"].pop("requests"),
     "ResourceRequestsNotSpecified", f"{C0}.resources.requests"),
    ("no cpu", lambda b: web(b)["resources"]["requests"].pop("cpu"),
     "ResourceRequestsNotSpecified", f"{C0}.resources.requests.cpu"),
    ("null memory", lambda b: web(b)["resources"]["requests"].update(memoryInGB=None),
     "ResourceRequestsNotSpecified", f"{C0}.resources.requests.memoryInGB"),
    ("zero memory", lambda b: web(b)["resources"]["requests"].update(memoryInGB=0),
     "ResourceRequestsNotSpecified", f"{C0}.resources.requests.memoryInGB"),
    ("negative cpu", lambda b: web(b)["resources"]["requests"].update(cpu=-1),
     "ResourceRequestsNotSpecified", f"{C0}.resources.requests.cpu"),
    ("limit < request", lambda b: sidecar(b)["resources"]["limits"].update(cpu=0.25),
     "ContainerLimitLessThanRequest", f"{C1}.resources.limits.cpu"),
    ("limit > group", lambda b: sidecar(b)["resources"]["limits"].update(memoryInGB=2.5),
     "ContainerLimitGreaterThanContainerGroupTotalRequest", f"{C1}.resources.limits.memoryInGB"),
    ("gpu not an object", lambda b: web(b)["resources"]["requests"].update(gpu=1),
     "InvalidGpuResource", f"{C0}.resources.requests.gpu"),
    ("gpu count 0", lambda b: web(b)["resources"]["requests"].update(
        gpu={"count": 0, "sku": "K80"}), "InvalidGpuResource",
     f"{C0}.resources.requests.gpu.count"),
    ("gpu count text", lambda b: web(b)["resources"]["requests"].update(
        gpu={"count": "1", "sku": "K80"}), "InvalidGpuResource",
     f"{C0}.resources.requests.gpu.count"),
    ("gpu count 17", lambda b: web(b)["resources"]["requests"].update(
        gpu={"count": 17, "sku": "H100"}), "InvalidGpuResource",
     f"{C0}.resources.requests.gpu.count"),
    ("gpu no sku", lambda b: web(b)["resources"]["requests"].update(gpu={"count": 1}),
     "InvalidGpuResource", f"{C0}.resources.requests.gpu.sku"),
    ("gpu limit alone", lambda b: sidecar(b)["resources"]["limits"].update(
        gpu={"count": 1, "sku": "K80"}), "InvalidGpuResource", f"{C1}.resources.limits.gpu"),
    ("gpu limit < request", lambda b: (
        sidecar(b)["resources"]["requests"].update(gpu={"count": 2, "sku": "H100"}),
        sidecar(b)["resources"]["limits"].update(gpu={"count": 1, "sku": "h100"})),
     "ContainerLimitLessThanRequest", f"{C1}.resources.limits.gpu.count"),
    ("gpu limit other sku", lambda b: (
        sidecar(b)["resources"]["requests"].update(gpu={"count": 1, "sku": "H100"}),
        sidecar(b)["resources"]["limits"].update(gpu={"count": 1, "sku": "A100"})),
     "InvalidGpuResource", f"{C1}.resources.limits.gpu.sku"),
    ("gpu in a sandbox", lambda b: (props(b).update(isolation="Sandbox"), web(b)["resources"][
        "requests"].update(gpu={"count": 1, "sku": "H100"})),
     "GpuNotSupportedInSandbox", f"{C0}.resources.requests.gpu"),
    ("env name", lambda b: web(b)["environmentVariables"][0].update(name="BAD-NAME"),
     "InvalidEnvironmentVariableName", f"{C0}.environmentVariables[0].name"),
    ("env name long", lambda b: web(b)["environmentVariables"][0].update(name="X" * 64),
     "InvalidEnvironmentVariableName", f"{C0}.environmentVariables[0].name"),
    ("env name empty", lambda b: web(b)["environmentVariables"][0].update(name=""),
     "InvalidEnvironmentVariableName", f"{C0}.environmentVariables[0].name"),
    ("env both", lambda b: web(b)["environmentVariables"][1].update(value="v"),
     "InvalidEnvironmentVariable", f"{C0}.environmentVariables[1]"),
    ("env neither", lambda b: web(b)["environmentVariables"][0].pop("value"),
     "InvalidEnvironmentVariable", f"{C0}.environmentVariables[0]"),
    ("port 0", lambda b: web(b)["ports"][0].update(port=0), "InvalidPort", f"{C0}.ports[0].port"),
    ("port 65536", lambda b: sidecar(b)["ports"][0].update(port=65536), "InvalidPort",
     f"{C1}.ports[0].port"),
    ("no port", lambda b: web(b)["ports"][0].pop("port"), "InvalidPort", f"{C0}.ports[0].port"),
    ("the identity endpoint's port", lambda b: web(b)["ports"][0].update(port=64254),
     "InvalidPort", f"{C0}.ports[0].port"),
    ("protocol", lambda b: web(b)["ports"][0].update(protocol="SCTP"), "InvalidProtocol",
     f"{C0}.ports[0].protocol"),
    ("duplicate ports", lambda b: sidecar(b)["ports"].append({"port": 80}),
     "DuplicateContainerPorts", f"{C1}.ports[1].port"),
    ("ip without ports", lambda b: props(b)["ipAddress"].pop("ports"), "MissingIpAddressPorts",
     "properties.ipAddress.ports"),
    ("ip empty ports", lambda b: props(b)["ipAddress"].update(ports=[]),
     "MissingIpAddressPorts", "properties.ipAddress.ports"),
    ("ip without type", lambda b: props(b)["ipAddress"].pop("type"), "InvalidIpAddressType",
     "properties.ipAddress.type"),
    ("ip type", lambda b: props(b)["ipAddress"].update(type="Internal"),
     "InvalidIpAddressType", "properties.ipAddress.type"),
    ("ip port unexposed", lambda b: props(b)["ipAddress"]["ports"].append({"port": 8080}),
     "UnreferencedIpAddressPorts", "properties.ipAddress.ports[1].port"),
    ("ip port wrong protocol", lambda b: props(b)["ipAddress"]["ports"][0].update(protocol="UDP"),
     "UnreferencedIpAddressPorts", "properties.ipAddress.ports[0].port"),
    ("ip port twice", lambda b: props(b)["ipAddress"]["ports"].append({"port": 80}),
     "DuplicateIpAddressPorts", "properties.ipAddress.ports[1].port"),
    ("ip port range", lambda b: props(b)["ipAddress"]["ports"][0].update(port=-80),
     "InvalidPort", "properties.ipAddress.ports[0].port"),
    ("6 ip ports", lambda b: props(b)["ipAddress"].update(
        ports=[{"port": p} for p in range(1, 7)]),
     "IpAddressTooManyPorts", "properties.ipAddress.ports"),
    ("dns label short", lambda b: props(b)["ipAddress"].update(dnsNameLabel="abcd"),
     "InvalidDnsNameLabel", "properties.ipAddress.dnsNameLabel"),
    ("dns label digit", lambda b: props(b)["ipAddress"].update(dnsNameLabel="1abcde"),
     "InvalidDnsNameLabel", "properties.ipAddress.dnsNameLabel"),
    ("dns label long", lambda b: props(b)["ipAddress"].update(dnsNameLabel="a" * 64),
     "InvalidDnsNameLabel", "properties.ipAddress.dnsNameLabel"),
    ("label scope", lambda b: props(b)["ipAddress"].update(autoGeneratedDomainNameLabelScope="x"),
     "InvalidAutoGeneratedDomainNameLabelScope",
     "properties.ipAddress.autoGeneratedDomainNameLabelScope"),
    ("21 volumes", lambda b: props(b)["volumes"].extend(
        {"name": f"v{i}", "emptyDir": {}} for i in range(18)),
     "ContainerGroupTooManyVolumes", "properties.volumes"),
    ("volume name", lambda b: props(b)["volumes"][0].update(name="Data"), "InvalidVolumeName",
     "properties.volumes[0].name"),
    ("volume name --", lambda b: props(b)["volumes"][0].update(name="da--ta"),
     "InvalidVolumeName", "properties.volumes[0].name"),
    ("volume twice", lambda b: props(b)["volumes"].append({"name": "data", "emptyDir": {}}),
     "DuplicateVolumeName", "properties.volumes[3].name"),
    ("volume two kinds", lambda b: props(b)["volumes"][0].update(secret={}), "InvalidVolume",
     "properties.volumes[0]"),
    ("volume no kind", lambda b: props(b)["volumes"][0].pop("emptyDir"), "InvalidVolume",
     "properties.volumes[0]"),
    ("azureFile no share", lambda b: props(b)["volumes"].append({"name": "share", "azureFile": {
        "storageAccountName": "a", "storageAccountKey": "k"}}),
     "InvalidAzureFileVolume", "properties.volumes[3].azureFile.shareName"),
    ("azureFile no account", lambda b: props(b)["volumes"].append({"name": "share",
        "azureFile": {"shareName": "s", "storageAccountKey": "k"}}),
     "InvalidAzureFileVolume", "properties.volumes[3].azureFile.storageAccountName"),
    ("azureFile no key", lambda b: props(b)["volumes"].append({"name": "share", "azureFile": {
        "shareName": "s", "storageAccountName": "a", "storageAccountKey": " "}}),
     "InvalidAzureFileVolume", "properties.volumes[3].azureFile.storageAccountKey"),
    ("azureFile readOnly", lambda b: props(b)["volumes"].append({"name": "share", "azureFile": {
        "shareName": "s", "storageAccountName": "a", "storageAccountKey": "k",
        "readOnly": "yes"}}),
     "InvalidAzureFileVolume", "properties.volumes[3].azureFile.readOnly"),
    ("secret not base64", lambda b: props(b)["volumes"][1]["secret"].update(
        {"key.txt": "not base64!"}), "InvalidSecretVolume", "properties.volumes[1].secret.key.txt"),
    ("secret null", lambda b: props(b)["volumes"][1]["secret"].update({"key.txt": None}),
     "InvalidSecretVolume", "properties.volumes[1].secret.key.txt"),
    ("secret file name", lambda b: props(b)["volumes"][1]["secret"].update({"..": SECRET_B64}),
     "InvalidSecretVolume", "properties.volumes[1].secret..."),
    ("git no repository", lambda b: props(b)["volumes"][2]["gitRepo"].pop("repository"),
     "InvalidGitRepoVolume", "properties.volumes[2].gitRepo.repository"),
    ("git ssh", lambda b: props(b)["volumes"][2]["gitRepo"].update(repository="ssh://h/r"),
     "InvalidGitRepoVolume", "properties.volumes[2].gitRepo.repository"),
    ("git directory", lambda b: props(b)["volumes"][2]["gitRepo"].update(directory="../x"),
     "InvalidGitRepoVolume", "properties.volumes[2].gitRepo.directory"),
    ("mount unknown", lambda b: web(b)["volumeMounts"][0].update(name="nope"),
     "VolumeMountNameNotFound", f"{C0}.volumeMounts[0].name"),
    ("init mount unknown", lambda b: props(b)["volumes"].pop(2), "VolumeMountNameNotFound",
     "properties.initContainers[0].properties.volumeMounts[0].name"),
    ("mount relative", lambda b: web(b)["volumeMounts"][0].update(mountPath="data"),
     "InvalidVolumeMountPath", f"{C0}.volumeMounts[0].mountPath"),
    ("mount no path", lambda b: web(b)["volumeMounts"][0].pop("mountPath"),
     "InvalidVolumeMountPath", f"{C0}.volumeMounts[0].mountPath"),
    ("two mounts one path", lambda b: web(b)["volumeMounts"].append(
        {"name": "repo", "mountPath": "/data/"}),
     "DuplicateVolumeMountPath", f"{C0}.volumeMounts[1].mountPath"),
    ("probe both", lambda b: web(b)["livenessProbe"].update(exec={"command": ["true"]}),
     "InvalidProbe", f"{C0}.livenessProbe"),
    ("probe neither", lambda b: web(b)["livenessProbe"].pop("httpGet"), "InvalidProbe",
     f"{C0}.livenessProbe"),
    ("probe empty exec", lambda b: sidecar(b)["readinessProbe"]["exec"].update(command=[]),
     "InvalidProbe", f"{C1}.readinessProbe.exec.command"),
    ("probe http no port", lambda b: web(b)["livenessProbe"]["httpGet"].pop("port"),
     "InvalidProbe", f"{C0}.livenessProbe.httpGet.port"),
    ("probe scheme", lambda b: web(b)["livenessProbe"]["httpGet"].update(scheme="ftp"),
     "InvalidProbe", f"{C0}.livenessProbe.httpGet.scheme"),
    ("probe period", lambda b: web(b)["livenessProbe"].update(periodSeconds=0),
     "InvalidProbe", f"{C0}.livenessProbe.periodSeconds"),
    ("probe delay", lambda b: web(b)["livenessProbe"].update(initialDelaySeconds=-1),
     "InvalidProbe", f"{C0}.livenessProbe.initialDelaySeconds"),
    ("too many credentials", lambda b: props(b)["imageRegistryCredentials"].extend(
        [{"server": f"r{i}.example.com", "username": "u", "password": "p"} for i in range(3)]),
     "MoreImageRegistryCredentialsThanContainers", "properties.imageRegistryCredentials"),
    ("credential password", lambda b: props(b)["imageRegistryCredentials"][0].pop("password"),
     "InvalidImageRegistryCredential", "properties.imageRegistryCredentials[0].password"),
    ("credential username", lambda b: props(b)["imageRegistryCredentials"][0].update(username=""),
     "InvalidImageRegistryCredential", "properties.imageRegistryCredentials[0].username"),
    ("dns servers", lambda b: props(b).update(dnsConfig={"nameServers": []}),
     "InvalidDnsConfig", "properties.dnsConfig.nameServers"),
    ("dns no servers", lambda b: props(b).update(dnsConfig={"options": "ndots:2"}),
     "InvalidDnsConfig", "properties.dnsConfig.nameServers"),
    ("unknown location", lambda b: b.update(location="mars"),
     "LocationNotAvailableForResourceType", "location"),
    ("containers a string", lambda b: props(b).update(containers="web"),
     "InvalidRequestContent", "properties.containers"),
    ("container a number", lambda b: props(b)["containers"].append(5),
     "InvalidRequestContent", "properties.containers[2]"),
    ("cpu a word", lambda b: web(b)["resources"]["requests"].update(cpu="lots"),
     "InvalidRequestContent", f"{C0}.resources.requests.cpu"),
    ("cpu NaN", lambda b: web(b)["resources"]["requests"].update(cpu=float("nan")),
     "InvalidRequestContent", f"{C0}.resources.requests.cpu"),
    ("tags a list", lambda b: b.update(tags=["a"]), "InvalidRequestContent", "tags"),
    ("identity a string", lambda b: b.update(identity="SystemAssigned"),
     "InvalidRequestContent", "identity"),
    ("port fractional", lambda b: web(b)["ports"][0].update(port=80.5),
     "InvalidRequestContent", f"{C0}.ports[0].port"),
]


@pytest.mark.parametrize(("case", "breaks", "code", "target"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_rule_answers_its_code_and_target(
    case: str, breaks: Callable[[Body], object], code: str, target: str | None
) -> None:
    """A body broken in one way is refused with that rule's code and the JSON path of the value."""
    body = group_body()
    breaks(body)
    error = refused(body)
    assert (error.code, error.target) == (code, target), error.message
    assert error.message


def test_a_port_twice_says_whether_one_container_or_two_list_it() -> None:
    """A port twice in one container's ports says so, naming it; a port in two containers
    names both: never "more than one container" for one."""
    body = group_body()
    web(body)["ports"].append({"port": 80})
    error = refused(body)
    assert (error.code, error.target) == ("DuplicateContainerPorts", f"{C0}.ports[1].port")
    assert error.message == ("The port 80/TCP is given twice in the ports of the container "
                             "'web'.")
    body = group_body()
    sidecar(body)["ports"].append({"port": 80})
    assert "exposed by more than one container ('web' and " in refused(body).message


def test_the_valid_body_passes() -> None:
    """The body the rule tests break is valid as it stands."""
    assert parse(group_body()).properties.containers[0].name == "web"


def test_a_gpu_request_passes_the_rules() -> None:
    """A GPU request of any sku passes the rules (whether the node has it is admission's),
    read back as (count, sku as written)."""
    from skiff.models.rules import gpu_request

    body = group_body()
    web(body)["resources"]["requests"]["gpu"] = {"count": 2, "sku": "h100"}
    sidecar(body)["resources"]["limits"]["gpu"] = None
    parsed = parse(body)
    assert gpu_request(parsed.properties.containers[0].properties.resources.requests.gpu) \
        == (2, "h100")
    assert gpu_request(parsed.properties.containers[1].properties.resources.requests.gpu) \
        is None


@pytest.mark.parametrize("name", ["", "-a", "a-", "a--b", "Group", "a_b", "a.b", "x" * 64])
def test_group_names_are_dns_labels(name: str) -> None:
    """A group name must be 1-63 lowercase letters, digits and '-', not at an end, no '--'."""
    error = refused(group_body(), name)
    assert (error.code, error.target) == ("InvalidContainerGroupName", "name")


@pytest.mark.parametrize("name", ["a", "0", "a-b", "x" * 63, "web-1-2"])
def test_good_group_names_pass(name: str) -> None:
    """Names at the edges of the rule are accepted."""
    assert parse(group_body(), name).properties.os_type == "Linux"


def test_the_limit_of_containers_counts_init_containers() -> None:
    """59 containers and one init container make 60: allowed."""
    body = group_body()
    props(body).update(containers=many_containers(59), ipAddress=None, volumes=[],
                       imageRegistryCredentials=[])
    props(body)["initContainers"][0]["properties"].pop("volumeMounts")
    assert len(parse(body).properties.containers) == 59


def test_windows_is_refused_with_a_clear_message() -> None:
    """Windows groups are refused, saying that this host runs Linux only."""
    body = group_body()
    props(body)["osType"] = "windows"
    assert "Linux" in refused(body).message


def test_unknown_location_lists_the_known_ones() -> None:
    """An unknown location is refused naming the locations this skiff serves."""
    body = group_body()
    body["location"] = "mars"
    message = refused(body).message
    assert all(loc in message for loc in LOCATIONS)


def test_location_defaults_and_is_spelled_as_known() -> None:
    """No location means the default; 'West Europe' is westeurope."""
    body = group_body()
    del body["location"]
    assert parse(body).location == "westeurope"
    body["location"] = "East US"
    assert parse(body).location == "eastus"
    body["location"] = None
    assert parse(body).location == "westeurope"


def test_enumerations_are_normalized() -> None:
    """Enumerations match in any case and are stored as ACI spells them; defaults filled in."""
    body = group_body()
    props(body).update(osType="linux", sku="dedicated")
    props(body)["ipAddress"].update(type="public", dnsNameLabel="MyWeb")
    props(body)["ipAddress"]["ports"][0]["protocol"] = "tcp"
    sidecar(body)["ports"][0]["protocol"] = "udp"
    web(body)["livenessProbe"]["httpGet"]["scheme"] = "HTTPS"
    p = parse(body).properties
    assert (p.os_type, p.sku, p.restart_policy) == ("Linux", "Dedicated", "Always")
    assert p.ip_address is not None
    assert (p.ip_address.type, p.ip_address.dns_name_label) == ("Public", "myweb")
    assert p.ip_address.ports[0].protocol == "TCP"
    assert p.containers[0].properties.ports is not None
    assert p.containers[0].properties.ports[0].protocol == "TCP"  # the default
    assert p.containers[1].properties.ports is not None
    assert p.containers[1].properties.ports[0].protocol == "UDP"
    probe = p.containers[0].properties.liveness_probe
    assert probe is not None
    assert probe.http_get is not None
    assert probe.http_get.scheme == "https"
    props(body)["restartPolicy"] = "onfailure"
    assert parse(body).properties.restart_policy == "OnFailure"


def test_property_names_match_in_any_case() -> None:
    """ARM reads property names case-insensitively: memoryInGb and OSTYPE are understood."""
    body = group_body()
    web(body)["resources"]["requests"] = {"cpu": 1, "memoryInGb": 2}
    props(body)["OSTYPE"] = props(body).pop("osType")
    parsed = parse(body)
    assert parsed.properties.containers[0].properties.resources.requests.memory_in_gb == 2
    stored = parsed.to_stored()
    assert stored["properties"]["osType"] == "Linux"
    assert "OSTYPE" not in stored["properties"]
    assert "memoryInGB" in stored["properties"]["containers"][0]["properties"]["resources"][
        "requests"]


def test_numbers_and_numeric_strings_are_coerced_as_arm_does() -> None:
    """An env value 8080 is the string '8080'; a cpu '0.5' is the number 0.5."""
    body = group_body()
    web(body)["environmentVariables"][0]["value"] = 8080
    sidecar(body)["resources"]["requests"]["cpu"] = "0.5"
    p = parse(body).properties
    env = p.containers[0].properties.environment_variables
    assert env is not None
    assert env[0].value == "8080"
    assert p.containers[1].properties.resources.requests.cpu == 0.5


def test_extras_round_trip() -> None:
    """Properties skiff does not model are kept, stored and read back unchanged."""
    body = group_body()
    extras: Body = {
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/sub/x": {}}},
        "zones": ["1"],
        "futureTopLevel": {"a": [1, 2]},
    }
    prop_extras: Body = {
        "diagnostics": {"logAnalytics": {"workspaceId": "w", "workspaceKey": "k"}},
        "priority": "Regular",
        "confidentialComputeProperties": {"ccePolicy": "cGF0"},
        "encryptionProperties": {"vaultBaseUrl": "https://v", "keyName": "k",
                                 "keyVersion": "1"},
        "extensions": [{"name": "kube-proxy", "properties": {"extensionType": "kube-proxy",
                                                             "version": "1.0"}}],
        "futureProperty": 42,
    }
    body.update(extras)
    props(body).update(prop_extras)
    web(body)["securityContext"] = {"privileged": False, "capabilities": {"drop": ["ALL"]}}
    web(body)["futureContainerField"] = "x"
    web(body)["environmentVariables"][0]["futureEnvField"] = True
    stored = parse(body).to_stored()
    for key, value in extras.items():
        assert stored[key] == value
    for key, value in prop_extras.items():
        assert stored["properties"][key] == value
    container = stored["properties"]["containers"][0]["properties"]
    assert container["securityContext"] == web(body)["securityContext"]
    assert container["futureContainerField"] == "x"
    assert container["environmentVariables"][0]["futureEnvField"] is True
    again = ContainerGroupBody.from_stored(json.loads(json.dumps(stored)))
    assert again.to_stored() == stored


def test_stored_body_keeps_secrets() -> None:
    """The stored form is complete: the engine needs the secrets to run the group."""
    text = json.dumps(parse(group_body()).to_stored())
    assert SECURE_VALUE in text
    assert REGISTRY_PASSWORD in text
    assert SECRET_B64 in text


def test_read_only_properties_are_dropped() -> None:
    """What a client copies from a GET (id, provisioningState, instanceView, ip) is not stored."""
    body = group_body()
    body.update(id="/subscriptions/x", name="other", type="Microsoft.ContainerInstance/x")
    props(body).update(provisioningState="Succeeded", instanceView={"state": "Running"})
    props(body)["ipAddress"].update(ip="1.2.3.4", fqdn="myweb.example")
    web(body)["instanceView"] = {"restartCount": 3}
    stored = parse(body).to_stored()
    assert not {"id", "name", "type"} & stored.keys()
    assert not {"provisioningState", "instanceView"} & stored["properties"].keys()
    assert not {"ip", "fqdn"} & stored["properties"]["ipAddress"].keys()
    assert "instanceView" not in stored["properties"]["containers"][0]["properties"]


def test_from_stored_runs_no_rules() -> None:
    """A stored body is read back even if today's rules would refuse it."""
    stored = parse(group_body()).to_stored()
    stored["properties"]["volumes"].append({"name": "share", "azureFile": {"shareName": "s"}})
    assert len(ContainerGroupBody.from_stored(stored).properties.volumes) == 4


def test_from_stored_on_garbage_is_an_arm_error() -> None:
    """A corrupted stored body is an internal ArmError, not a pydantic error."""
    with pytest.raises(ArmError) as info:
        ContainerGroupBody.from_stored({"location": "x", "properties": "garbage"})
    assert info.value.status == 500


def test_messages_never_quote_secret_values() -> None:
    """A secret of the wrong type or a bad secret file is refused without quoting it."""
    body = group_body()
    web(body)["environmentVariables"][1]["secureValue"] = {"nested": SECURE_VALUE}
    error = refused(body)
    assert error.code == "InvalidRequestContent"
    assert SECURE_VALUE not in error.message
    assert SECURE_VALUE not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    body = group_body()
    props(body)["volumes"][1]["secret"]["key.txt"] = SECRET_FILE + "!"
    error = refused(body)
    assert error.code == "InvalidSecretVolume"
    assert SECRET_FILE not in error.message


@pytest.mark.parametrize("body", [None, [], "text", 5, [group_body()]])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    """A body that is not a JSON object is InvalidRequestContent."""
    assert refused(body).code == "InvalidRequestContent"


def test_searchdomains_list_is_joined() -> None:
    """dnsConfig.searchDomains is a string in the SDK; a list is accepted and joined."""
    body = group_body()
    props(body)["dnsConfig"] = {"nameServers": ["10.0.0.2"], "searchDomains": ["a.b", "c.d"]}
    dns = parse(body).properties.dns_config
    assert dns is not None
    assert dns.search_domains == "a.b c.d"


def test_null_means_absent() -> None:
    """null for optional lists and settings is read as their absence."""
    body = group_body()
    props(body).update(initContainers=None, imageRegistryCredentials=None, restartPolicy=None,
                       sku=None, ipAddress=None, dnsConfig=None)
    props(body)["volumes"] = None
    for c in props(body)["containers"]:
        c["properties"]["volumeMounts"] = None
        c["properties"]["ports"] = None
    p = parse(body).properties
    assert (p.init_containers, p.image_registry_credentials, p.volumes) == ([], [], [])
    assert (p.restart_policy, p.sku, p.ip_address) == ("Always", "Standard", None)


def test_long_keys_are_cut_in_targets() -> None:
    """A huge key in a path is cut, so an error stays readable."""
    body = group_body()
    props(body)["volumes"][1]["secret"] = {"k" * 5000: ["not", "a", "string"]}
    error = refused(body)
    assert error.code == "InvalidRequestContent"
    assert error.target is not None
    assert len(error.target) < 200


def test_a_spot_group_without_inbound_connectivity_is_valid() -> None:
    """A Spot group of the Standard sku with no ipAddress parses (its containers' ports
    open nothing inbound: az's ``--priority Spot`` sends port 80 there), at up to 4 CPU;
    a Regular group is held to none of the Spot rules."""
    body = group_body()
    spot(body)
    web(body)["resources"]["requests"].update(cpu=3.5)
    assert parse(body).properties.priority == "Spot"
    regular = group_body()
    props(regular).update(priority="regular", sku="dedicated")
    web(regular)["resources"]["requests"].update(cpu=8)
    parsed = parse(regular).properties
    assert (parsed.priority, parsed.sku) == ("Regular", "Dedicated")
