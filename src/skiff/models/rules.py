"""ACI's rules for a container group, checked on a body whose types are already right.

Each rule raises :class:`~skiff.errors.ArmError` (400) with ACI's code where
the real service's is known, a name in the same style otherwise (all listed
in :mod:`skiff.models`), and ``target``: the JSON path of the offending value,
such as ``properties.containers[1].properties.ports[0].port``. Messages name
fields and names, never values that may be secret.

The rules run in the order a reader checks a body: the group, its
containers, then what refers to them (volumes, ports, credentials), so the
first error reported is the one to fix first. Some rules normalize as they
go (the location's spelling); nothing else is changed here.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Sequence
from typing import NoReturn

from skiff.engine.images.reference import parse as parse_reference
from skiff.errors import ArmError, InvalidReference
from skiff.models.body import (
    IP_ADDRESS_TYPES,
    LABEL_SCOPES,
    OS_TYPES,
    PRIORITIES,
    PROTOCOLS,
    RESTART_POLICIES,
    SKUS,
    Container,
    ContainerGroupBody,
    ContainerProbe,
    EnvironmentVariable,
    GroupProperties,
    InitContainer,
    Volume,
    VolumeMount,
)

# ACI's published limits per container group.
MAX_CONTAINERS = 60
MAX_VOLUMES = 20
MAX_IP_PORTS = 5

# A DNS label (RFC 1123) without '--': container group, container and volume names.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")
_DNS_LABEL = re.compile(r"[a-z][a-z0-9-]{3,61}[a-z0-9]")
_GIT_SCHEMES = ("http://", "https://", "git://")


def fail(code: str, message: str, target: str | None = None) -> NoReturn:
    raise ArmError(400, code, message, target)


def _is_name(text: str) -> bool:
    return bool(_NAME.fullmatch(text)) and "--" not in text


_NAME_RULE = ("1 to 63 lowercase letters, digits and '-', starting and ending with a letter or "
              "digit, without '--'")


def check_group_name(name: str) -> None:
    if not _is_name(name):
        fail("InvalidContainerGroupName",
             f"The container group name {name[:80]!r} is invalid: use {_NAME_RULE}.", "name")


def check_location(body: ContainerGroupBody, known_locations: Collection[str]) -> None:
    """The location must be one this skiff serves; ARM's spelling rules apply
    (``West Europe`` is ``westeurope``), and the known spelling is kept."""
    def key(text: str) -> str:
        return text.replace(" ", "").lower()

    for known in known_locations:
        if key(known) == key(body.location):
            body.location = known
            return
    fail("LocationNotAvailableForResourceType",
         f"The provided location {body.location[:80]!r} is not available for resource type "
         f"'Microsoft.ContainerInstance/containerGroups'. List of available regions for the "
         f"resource type is '{','.join(sorted(known_locations))}'.", "location")


def check_body(body: ContainerGroupBody, known_locations: Collection[str]) -> None:
    """Every rule of the group, in reading order."""
    check_location(body, known_locations)
    props = body.properties
    _check_enums(props)
    if props.subnet_ids:
        fail("SubnetNotSupported", "Virtual network deployment (subnetIds) is not supported "
             "by this skiff host yet.", "properties.subnetIds")
    _check_containers(props)
    _check_volumes(props)
    _check_ports(props)
    _check_credentials(props)
    if props.dns_config is not None and not props.dns_config.name_servers:
        fail("InvalidDnsConfig", "dnsConfig.nameServers must name at least one DNS server.",
             "properties.dnsConfig.nameServers")


def _enum(value: str | None, choices: tuple[str, ...], code: str, what: str, target: str) -> None:
    if value not in choices:
        fail(code, f"The {what} {str(value)[:40]!r} is invalid: use one of "
             f"{', '.join(choices)}.", target)


def _check_enums(props: GroupProperties) -> None:
    if props.os_type == "Windows":
        fail("InvalidOsType", "This skiff host runs Linux containers only: set osType to "
             "'Linux'.", "properties.osType")
    _enum(props.os_type, OS_TYPES, "InvalidOsType", "osType", "properties.osType")
    _enum(props.restart_policy, RESTART_POLICIES, "InvalidRestartPolicy", "restartPolicy",
          "properties.restartPolicy")
    _enum(props.sku, SKUS, "InvalidSku", "sku", "properties.sku")
    if props.priority is not None:
        _enum(props.priority, PRIORITIES, "InvalidPriority", "priority", "properties.priority")


# --- containers ------------------------------------------------------------------------------


def _check_containers(props: GroupProperties) -> None:
    if not props.containers:
        fail("ContainerGroupContainersRequired", "A container group needs at least one "
             "container in properties.containers.", "properties.containers")
    count = len(props.containers) + len(props.init_containers)
    if count > MAX_CONTAINERS:
        fail("ContainerGroupTooManyContainers", f"A container group has at most "
             f"{MAX_CONTAINERS} containers (init containers included); this one has {count}.",
             "properties.containers")
    seen: set[str] = set()
    entries: list[tuple[str, Container | InitContainer]] = [
        *((f"properties.initContainers[{i}]", c) for i, c in enumerate(props.init_containers)),
        *((f"properties.containers[{i}]", c) for i, c in enumerate(props.containers)),
    ]
    for where, container in entries:
        if not _is_name(container.name):
            fail("InvalidContainerName", f"The container name {container.name[:80]!r} is "
                 f"invalid: use {_NAME_RULE}.", f"{where}.name")
        if container.name in seen:
            fail("DuplicateContainerName", f"The container name {container.name!r} is used "
                 "more than once (containers and initContainers share one namespace).",
                 f"{where}.name")
        seen.add(container.name)
        _check_image(container.properties.image, f"{where}.properties.image")
        _check_env(container.properties.environment_variables or [], f"{where}.properties")
        _check_mounts(container.properties.volume_mounts or [], f"{where}.properties")
    total_cpu = sum(c.properties.resources.requests.cpu for c in props.containers)
    total_mem = sum(c.properties.resources.requests.memory_in_gb for c in props.containers)
    for i, container in enumerate(props.containers):
        where = f"properties.containers[{i}].properties"
        _check_resources(container, where, total_cpu, total_mem)
        for kind, probe in (("livenessProbe", container.properties.liveness_probe),
                            ("readinessProbe", container.properties.readiness_probe)):
            if probe is not None:
                _check_probe(probe, f"{where}.{kind}")


def _check_image(image: str, target: str) -> None:
    if not image.strip():
        fail("ContainerImageRequired", "Every container needs an image.", target)
    try:
        parse_reference(image)
    except InvalidReference as exc:
        fail("InvalidImageReference", exc.message, target)


def _check_env(env: Sequence[EnvironmentVariable], where: str) -> None:
    for j, var in enumerate(env):
        target = f"{where}.environmentVariables[{j}]"
        if not _ENV_NAME.fullmatch(var.name):
            fail("InvalidEnvironmentVariableName", f"The environment variable name "
                 f"{var.name[:80]!r} is invalid: use 1 to 63 letters, digits and '_'.",
                 f"{target}.name")
        if (var.value is None) == (var.secure_value is None):
            fail("InvalidEnvironmentVariable", f"The environment variable {var.name!r} needs "
                 "exactly one of value and secureValue.", target)


def _check_mounts(mounts: Sequence[VolumeMount], where: str) -> None:
    paths: set[str] = set()
    for j, mount in enumerate(mounts):
        target = f"{where}.volumeMounts[{j}]"
        path = mount.mount_path
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            fail("InvalidVolumeMountPath", f"The mount path {path[:120]!r} of volume "
                 f"{mount.name!r} must be an absolute path without '..'.", f"{target}.mountPath")
        normal = "/" + "/".join(p for p in path.split("/") if p and p != ".")
        if normal in paths:
            fail("DuplicateVolumeMountPath", f"Two volumes are mounted at {path[:120]!r} in "
                 "one container.", f"{target}.mountPath")
        paths.add(normal)


def _check_resources(container: Container, where: str, total_cpu: float,
                     total_mem: float) -> None:
    resources = container.properties.resources
    requests, limits = resources.requests, resources.limits
    target = f"{where}.resources"
    if requests.gpu is not None or (limits is not None and limits.gpu is not None):
        fail("GpuNotSupported", "GPU resources are not available on this skiff host.",
             f"{target}.{'requests' if requests.gpu is not None else 'limits'}.gpu")
    for field, value in (("cpu", requests.cpu), ("memoryInGB", requests.memory_in_gb)):
        if value <= 0:
            fail("ResourceRequestsNotSpecified", f"The container {container.name!r} must "
                 "request a positive cpu and memoryInGB.", f"{target}.requests.{field}")
    if limits is None:
        return
    for field, limit, request, total in (
        ("cpu", limits.cpu, requests.cpu, total_cpu),
        ("memoryInGB", limits.memory_in_gb, requests.memory_in_gb, total_mem),
    ):
        if limit is None:
            continue
        if limit < request:
            fail("ContainerLimitLessThanRequest", f"The {field} limit ({limit:g}) of container "
                 f"{container.name!r} is less than its request ({request:g}).",
                 f"{target}.limits.{field}")
        if limit > total:
            fail("ContainerLimitGreaterThanContainerGroupTotalRequest", f"The {field} limit "
                 f"({limit:g}) of container {container.name!r} is greater than the container "
                 f"group's total request ({total:g}).", f"{target}.limits.{field}")


def _check_probe(probe: ContainerProbe, target: str) -> None:
    if (probe.exec_ is None) == (probe.http_get is None):
        fail("InvalidProbe", "A probe needs exactly one of exec and httpGet.", target)
    if probe.exec_ is not None and not probe.exec_.command:
        fail("InvalidProbe", "An exec probe needs a non-empty command.", f"{target}.exec.command")
    if probe.http_get is not None:
        _check_port(probe.http_get.port, f"{target}.httpGet.port")
        scheme = probe.http_get.scheme
        if scheme is not None and scheme not in ("http", "https"):
            fail("InvalidProbe", "httpGet.scheme must be http or https.",
                 f"{target}.httpGet.scheme")
    for field, value, least in (
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("failureThreshold", probe.failure_threshold, 1),
        ("successThreshold", probe.success_threshold, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
    ):
        if value is not None and value < least:
            fail("InvalidProbe", f"{field} must be at least {least}.", f"{target}.{field}")


# --- volumes ---------------------------------------------------------------------------------


def _check_volumes(props: GroupProperties) -> None:
    if len(props.volumes) > MAX_VOLUMES:
        fail("ContainerGroupTooManyVolumes", f"A container group has at most {MAX_VOLUMES} "
             f"volumes; this one has {len(props.volumes)}.", "properties.volumes")
    names: set[str] = set()
    for i, volume in enumerate(props.volumes):
        where = f"properties.volumes[{i}]"
        if not _is_name(volume.name):
            fail("InvalidVolumeName", f"The volume name {volume.name[:80]!r} is invalid: use "
                 f"{_NAME_RULE}.", f"{where}.name")
        if volume.name in names:
            fail("DuplicateVolumeName", f"The volume name {volume.name!r} is used more than "
                 "once.", f"{where}.name")
        names.add(volume.name)
        _check_volume(volume, where)
    entries: list[tuple[str, Container | InitContainer]] = [
        *((f"properties.initContainers[{i}]", c) for i, c in enumerate(props.init_containers)),
        *((f"properties.containers[{i}]", c) for i, c in enumerate(props.containers)),
    ]
    for where, container in entries:
        for j, mount in enumerate(container.properties.volume_mounts or []):
            if mount.name not in names:
                fail("VolumeMountNameNotFound", f"The container {container.name!r} mounts "
                     f"volume {mount.name[:80]!r}, which properties.volumes does not define.",
                     f"{where}.properties.volumeMounts[{j}].name")


def _check_volume(volume: Volume, where: str) -> None:
    kinds = [k for k, v in (("azureFile", volume.azure_file), ("emptyDir", volume.empty_dir),
                            ("secret", volume.secret), ("gitRepo", volume.git_repo))
             if v is not None]
    if len(kinds) != 1:
        fail("InvalidVolume", f"The volume {volume.name!r} needs exactly one of azureFile, "
             f"emptyDir, secret and gitRepo; it has {len(kinds) or 'none'}.", where)
    if volume.azure_file is not None:
        fail("AzureFileVolumeNotSupported", f"The volume {volume.name!r} is an Azure file "
             "share: this skiff host cannot mount azureFile volumes yet (use emptyDir, secret "
             "or gitRepo).", f"{where}.azureFile")
    if volume.secret is not None:
        for fname, content in volume.secret.items():
            target = f"{where}.secret.{fname[:80]}"
            if (not fname or "/" in fname or "\0" in fname or fname in (".", "..")
                    or len(fname.encode()) > 255):
                fail("InvalidSecretVolume", f"The secret volume {volume.name!r} has a file "
                     "name that is not a plain file name.", target)
            if not _is_base64(content):
                fail("InvalidSecretVolume", f"The content of file {fname[:80]!r} of secret "
                     f"volume {volume.name!r} is not valid base64.", target)
    repo = volume.git_repo
    if repo is not None:
        if not repo.repository.startswith(_GIT_SCHEMES) or re.search(r"\s", repo.repository):
            fail("InvalidGitRepoVolume", f"The gitRepo volume {volume.name!r} needs a "
                 "repository URL starting with http://, https:// or git://.",
                 f"{where}.gitRepo.repository")
        if repo.directory is not None and (
                not repo.directory or repo.directory.startswith("/")
                or ".." in repo.directory.split("/")):
            fail("InvalidGitRepoVolume", f"The directory of gitRepo volume {volume.name!r} "
                 "must be '.' or a relative path without '..'.", f"{where}.gitRepo.directory")


def _is_base64(content: str) -> bool:
    # The caller raises outside this function: a decoder's error may quote the secret.
    if not content.isascii():
        return False
    try:
        base64.b64decode(re.sub(r"\s", "", content), validate=True)
    except binascii.Error:
        return False
    return True


# --- ports and the IP address ----------------------------------------------------------------


def _check_port(port: int, target: str) -> None:
    if not 1 <= port <= 65535:
        fail("InvalidPort", f"The port {port} is out of range 1-65535.", target)


def _check_ports(props: GroupProperties) -> None:
    exposed: set[tuple[int, str]] = set()
    for i, container in enumerate(props.containers):
        for j, port in enumerate(container.properties.ports or []):
            target = f"properties.containers[{i}].properties.ports[{j}]"
            _check_port(port.port, f"{target}.port")
            _enum(port.protocol, PROTOCOLS, "InvalidProtocol", "protocol", f"{target}.protocol")
            if (port.port, port.protocol) in exposed:
                fail("DuplicateContainerPorts", f"The port {port.port}/{port.protocol} is "
                     "exposed by more than one container (containers share one network).",
                     f"{target}.port")
            exposed.add((port.port, port.protocol))
    ip = props.ip_address
    if ip is None:
        return
    _enum(ip.type, IP_ADDRESS_TYPES, "InvalidIpAddressType", "ipAddress type",
          "properties.ipAddress.type")
    if not ip.ports:
        fail("MissingIpAddressPorts", "The IP address of the container group needs at least "
             "one port.", "properties.ipAddress.ports")
    if len(ip.ports) > MAX_IP_PORTS:
        fail("IpAddressTooManyPorts", f"An IP address has at most {MAX_IP_PORTS} ports; this "
             f"one has {len(ip.ports)}.", "properties.ipAddress.ports")
    on_ip: set[tuple[int, str]] = set()
    for j, port in enumerate(ip.ports):
        target = f"properties.ipAddress.ports[{j}]"
        _check_port(port.port, f"{target}.port")
        _enum(port.protocol, PROTOCOLS, "InvalidProtocol", "protocol", f"{target}.protocol")
        if (port.port, port.protocol) in on_ip:
            fail("DuplicateIpAddressPorts", f"The port {port.port}/{port.protocol} is given "
                 "twice on the IP address.", f"{target}.port")
        on_ip.add((port.port, port.protocol))
        if (port.port, port.protocol) not in exposed:
            fail("UnreferencedIpAddressPorts", f"The port {port.port}/{port.protocol} of the "
                 "IP address is not exposed by any container.", f"{target}.port")
    if ip.dns_name_label is not None and not _DNS_LABEL.fullmatch(ip.dns_name_label):
        fail("InvalidDnsNameLabel", f"The DNS name label {ip.dns_name_label[:80]!r} is "
             "invalid: use 5 to 63 letters, digits and '-', starting with a letter and ending "
             "with a letter or digit.", "properties.ipAddress.dnsNameLabel")
    if ip.auto_generated_domain_name_label_scope is not None:
        _enum(ip.auto_generated_domain_name_label_scope, LABEL_SCOPES,
              "InvalidAutoGeneratedDomainNameLabelScope", "autoGeneratedDomainNameLabelScope",
              "properties.ipAddress.autoGeneratedDomainNameLabelScope")


def _check_credentials(props: GroupProperties) -> None:
    creds = props.image_registry_credentials
    if len(creds) > len(props.containers) + len(props.init_containers):
        fail("MoreImageRegistryCredentialsThanContainers", f"The container group has "
             f"{len(creds)} image registry credentials, more than its containers.",
             "properties.imageRegistryCredentials")
    for i, cred in enumerate(creds):
        target = f"properties.imageRegistryCredentials[{i}]"
        for field, value in (("server", cred.server), ("username", cred.username),
                             ("password", cred.password)):
            if not value:
                fail("InvalidImageRegistryCredential", f"An image registry credential needs "
                     f"a {field} (managed identities are not supported).", f"{target}.{field}")
