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
import json
import re
from collections.abc import Collection, Sequence
from typing import Any, NoReturn

from skiff.core.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from skiff.core.gpus import canonical as canonical_sku
from skiff.core.identity import METADATA_LISTEN_PORT
from skiff.core.reference import parse as parse_reference
from skiff.core.seccomp import convert as convert_seccomp
from skiff.errors import ArmError, InvalidReference, SeccompProfileError
from skiff.models.body import (
    IP_ADDRESS_TYPES,
    ISOLATIONS,
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
    SecurityContext,
    Volume,
    VolumeMount,
)
from skiff.models.regions import Locations

# ACI's published limits per container group.
MAX_CONTAINERS = 60
MAX_VOLUMES = 20
MAX_IP_PORTS = 5
#: skiff's own bounds where ACI publishes none: environment variables per container,
#: the bytes of a secret volume's files (Kubernetes' bound on a Secret, which ACI's
#: secret volumes are), and a secret file's name (a Kubernetes Secret key).
MAX_ENV_VARS = 1000
MAX_SECRET_VOLUME_BYTES = 1024 * 1024
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
#: Config maps, where ACI publishes no bound: Kubernetes' bound on a ConfigMap (1 MiB of
#: keys and values, UTF-8) for all of a group's, and files per group. A key is a file
#: name, under the same rule as a secret file's.
MAX_CONFIG_MAP_BYTES = 1024 * 1024
MAX_CONFIG_MAP_KEYS = 1000
#: Mount paths that would hide what a container needs from its runtime: the root, the
#: kernel's interfaces, the device nodes (``/dev/shm`` and the like stay allowed).
_RESERVED_MOUNTS = ("/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/mqueue")

# A DNS label (RFC 1123) without '--': container group, container and volume names.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")
_DNS_LABEL = re.compile(r"[a-z][a-z0-9-]{3,61}[a-z0-9]")
_GIT_SCHEMES = ("http://", "https://", "git://")
#: runAsUser/runAsGroup: unsigned 32-bit ids, less 2^32-1, which the kernel reads as "none".
MAX_RUN_AS_ID = 2**32 - 2
#: The longest base64 seccompProfile: Docker's default profile is ~25 KB of JSON.
MAX_SECCOMP_PROFILE = 256 * 1024
#: Capabilities a container may add without ``--allow-privileged``: the defaults, and
#: those whose power stops at the container's own namespaces and cgroups (its network,
#: locked memory, scheduling). The others (SYS_ADMIN, SYS_MODULE, SYS_PTRACE,
#: DAC_READ_SEARCH, BPF, ...) act on the host's kernel: adding one is as good as
#: ``privileged``, so it is allowed only where privileged containers are.
UNPRIVILEGED_CAPABILITIES = frozenset({
    *DEFAULT_CAPABILITIES, "CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_NET_BROADCAST",
    "CAP_IPC_LOCK", "CAP_SYS_NICE", "CAP_LEASE", "CAP_AUDIT_READ",
})


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


def check_location(body: ContainerGroupBody,
                   known_locations: Collection[str] | Locations) -> None:
    """The location must be one this skiff serves; ARM's spelling rules apply
    (``West Europe`` is ``westeurope``), and the known spelling is kept."""
    locations = (known_locations if isinstance(known_locations, Locations)
                 else Locations(None, known_locations))
    body.location = locations.place(body.location, "Microsoft.ContainerInstance/containerGroups")


def check_body(body: ContainerGroupBody, known_locations: Collection[str] | Locations, *,
               allow_privileged: bool = False, name: str = "") -> None:
    """Every rule of the group (``name``, for the messages that name it), in reading
    order; ``allow_privileged`` admits ``securityContext.privileged`` and the host-level
    capabilities."""
    check_location(body, known_locations)
    props = body.properties
    _check_enums(props, name)
    _check_spot(props)
    _check_sku(body)
    _check_subnets(props)
    _check_containers(props, allow_privileged=allow_privileged)
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


def _check_enums(props: GroupProperties, name: str) -> None:
    if props.os_type == "Windows":
        fail("InvalidOsType", "This skiff host runs Linux containers only: set osType to "
             "'Linux'.", "properties.osType")
    _enum(props.os_type, OS_TYPES, "InvalidOsType", "osType", "properties.osType")
    _enum(props.restart_policy, RESTART_POLICIES, "InvalidRestartPolicy", "restartPolicy",
          "properties.restartPolicy")
    _enum(props.sku, SKUS, "InvalidSku", "sku", "properties.sku")
    if props.priority is not None and props.priority not in PRIORITIES:
        # ACI's code and words ("Error codes for Spot container creation").
        fail("PriorityNotSpecified", f"The 'Priority' must be one of "
             f"'{','.join(PRIORITIES)}' for container group '{name}'.", "properties.priority")
    if props.isolation is not None:
        _enum(props.isolation, ISOLATIONS, "InvalidIsolation", "isolation",
              "properties.isolation")


#: The most a Spot group may ask for ("Resource availability & quota limits for ACI",
#: Spot container resources).
MAX_SPOT_CPU = 4.0
MAX_SPOT_MEMORY_GB = 16.0


def _check_spot(props: GroupProperties) -> None:
    """ACI's rules of a ``priority: Spot`` group, with its codes and words: the Standard
    sku only, no inbound connectivity (an IP address, a virtual network), no GPU, and at
    most 4 CPUs and 16 GB."""
    if props.priority != "Spot":
        return
    if props.sku != "Standard":
        fail("SpotPriorityContainerGroupNotSupportedInSku",
             f"Spot Priority Container Group is not supported in '{props.sku}' Sku. Only the "
             "Standard sku runs Spot container groups.", "properties.sku")
    if props.ip_address is not None or props.subnet_ids:
        fail("SpotPriorityContainerGroupNotSupportedForInboundConnectivity",
             "Spot Priority is not supported for container groups with inbound "
             "connectivity. Remove properties.ipAddress and properties.subnetIds.",
             "properties.ipAddress" if props.ip_address is not None
             else "properties.subnetIds")
    for i, container in enumerate(props.containers):
        resources = container.properties.resources
        if resources.requests.gpu is not None or (resources.limits is not None
                                                  and resources.limits.gpu is not None):
            fail("SpotPriorityContainerGroupWithGPUResourcesNotSupported",
                 "Spot Priority Container Groups that include containers requesting GPU "
                 "resources are not supported.",
                 f"properties.containers[{i}].properties.resources")
    cpu = sum(c.properties.resources.requests.cpu for c in props.containers)
    memory = sum(c.properties.resources.requests.memory_in_gb for c in props.containers)
    if cpu > MAX_SPOT_CPU or memory > MAX_SPOT_MEMORY_GB:
        fail("SpotPriorityContainerGroupResourcesExceeded",
             f"A Spot container group asks for at most {MAX_SPOT_CPU:g} CPU and "
             f"{MAX_SPOT_MEMORY_GB:g} GB of memory in all; this one asks for {cpu:g} CPU and "
             f"{memory:g} GB.", "properties.containers")


def _check_sku(body: ContainerGroupBody) -> None:
    """``Confidential`` is refused on every node, in ACI's words for a resource a region
    has not (409 ``ServiceUnavailable``): ACI runs such a group in a utility VM of its
    own, an AMD SEV-SNP guest that enforces the group's ``ccePolicy`` and attests it;
    skiff has no such VM, and running the group as an ordinary one would promise an
    isolation it does not give."""
    if body.properties.sku != "Confidential":
        return
    raise ArmError(409, "ServiceUnavailable",
                   f"The requested resource is not available in the location "
                   f"'{body.location}' at this moment. Please retry with a different "
                   f"resource request or in another location. Resource requested: "
                   f"'Confidential' sku: skiff runs no confidential container groups (each "
                   f"needs a utility VM with an AMD SEV-SNP guest enforcing its ccePolicy, "
                   f"which skiff does not have). Use the Standard or Dedicated sku.",
                   "properties.sku")


# --- containers ------------------------------------------------------------------------------


def _check_containers(props: GroupProperties, *, allow_privileged: bool) -> None:
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
        _check_command(container.properties.command, f"{where}.properties.command")
        _check_env(container.properties.environment_variables or [], container.name,
                   f"{where}.properties")
        _check_mounts(container.properties.volume_mounts or [], f"{where}.properties")
        _check_config_map(container, f"{where}.properties")
        if container.properties.security_context is not None:
            _check_security(container.properties.security_context, container.name,
                            f"{where}.properties.securityContext",
                            allow_privileged=allow_privileged)
    _check_config_map_size(props)
    total_cpu = sum(c.properties.resources.requests.cpu for c in props.containers)
    total_mem = sum(c.properties.resources.requests.memory_in_gb for c in props.containers)
    for i, container in enumerate(props.containers):
        where = f"properties.containers[{i}].properties"
        _check_resources(container, where, total_cpu, total_mem)
        _check_gpu(container, f"{where}.resources", props.isolation)
        for kind, probe in (("livenessProbe", container.properties.liveness_probe),
                            ("readinessProbe", container.properties.readiness_probe)):
            if probe is not None:
                _check_probe(probe, f"{where}.{kind}")


def _check_config_map(container: Container | InitContainer, where: str) -> None:
    """A config map's keys are file names; an init container has none (ACI's API gives
    init containers no configMap)."""
    if isinstance(container, InitContainer):
        extra = container.properties.model_extra or {}
        if any(key.lower() == "configmap" for key in extra):
            fail("ConfigMapNotSupportedForInitContainer", f"The init container "
                 f"{container.name!r} has a configMap: only containers have config maps.",
                 f"{where}.configMap")
        return
    config_map = container.properties.config_map
    for key in (config_map.key_value_pairs or {}) if config_map is not None else {}:
        if not _SECRET_KEY.fullmatch(key) or key.startswith("..") or key == ".":
            fail("InvalidConfigMapKey", f"The config map of container {container.name!r} has "
                 "a key that is not 1 to 253 letters, digits, '-', '_' and '.' (not '.', nor "
                 "starting with '..'): each key is a file name.",
                 f"{where}.configMap.keyValuePairs.{key[:80]}")


def _check_config_map_size(props: GroupProperties) -> None:
    pairs = [(i, key, value) for i, c in enumerate(props.containers)
             if c.properties.config_map is not None
             for key, value in (c.properties.config_map.key_value_pairs or {}).items()]
    if len(pairs) > MAX_CONFIG_MAP_KEYS:
        fail("ConfigMapTooLarge", f"The config maps of a container group have at most "
             f"{MAX_CONFIG_MAP_KEYS} keys in all; this one has {len(pairs)}.",
             f"properties.containers[{pairs[MAX_CONFIG_MAP_KEYS][0]}].properties.configMap")
    size = 0
    for i, key, value in pairs:
        target = f"properties.containers[{i}].properties.configMap.keyValuePairs.{key[:80]}"
        try:
            size += len(key.encode()) + len(value.encode())
        except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in JSON): no file holds it
            fail("InvalidConfigMapValue", f"The value of config map key {key!r} is not "
                 "valid Unicode text.", target)
        if size > MAX_CONFIG_MAP_BYTES:
            fail("ConfigMapTooLarge", f"The config maps of a container group hold at most "
                 f"{MAX_CONFIG_MAP_BYTES // 1024} KiB of keys and values in all.", target)


def _check_image(image: str, target: str) -> None:
    if not image.strip():
        fail("ContainerImageRequired", "Every container needs an image.", target)
    try:
        parse_reference(image)
    except InvalidReference as exc:
        fail("InvalidImageReference", exc.message, target)


def _check_command(command: Sequence[str] | None, target: str) -> None:
    """A command's words become C strings: none may hold a NUL."""
    for k, word in enumerate(command or []):
        if "\0" in word:
            fail("InvalidCommand", "A command word contains a NUL character.", f"{target}[{k}]")


def _check_env(env: Sequence[EnvironmentVariable], container: str, where: str) -> None:
    if len(env) > MAX_ENV_VARS:
        fail("TooManyEnvironmentVariables", f"A container has at most {MAX_ENV_VARS} "
             f"environment variables; this one has {len(env)}.",
             f"{where}.environmentVariables")
    for j, var in enumerate(env):
        target = f"{where}.environmentVariables[{j}]"
        if not _ENV_NAME.fullmatch(var.name):
            fail("InvalidEnvironmentVariableName", f"The environment variable name "
                 f"{var.name[:80]!r} is invalid: use 1 to 63 letters, digits and '_'.",
                 f"{target}.name")
        if (var.value is None) == (var.secure_value is None):
            # ACI's words; and the usual cause: az container export writes a secure
            # variable by its name alone, so that its file cannot be created as it is.
            fail("InvalidEnvironmentVariable", f"The environment variable {var.name!r} in "
                 f"container {container!r} is invalid. One and only one property of 'value' "
                 "and 'secureValue' can be specified in an environment variable (an export "
                 "leaves secure values out: give each secureValue again).", target)
        if "\0" in (var.value or var.secure_value or ""):
            fail("InvalidEnvironmentVariable", f"The value of environment variable "
                 f"{var.name!r} contains a NUL character.", target)


def _check_mounts(mounts: Sequence[VolumeMount], where: str) -> None:
    paths: set[str] = set()
    for j, mount in enumerate(mounts):
        target = f"{where}.volumeMounts[{j}]"
        path = mount.mount_path
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            fail("InvalidVolumeMountPath", f"The mount path {path[:120]!r} of volume "
                 f"{mount.name!r} must be an absolute path without '..'.", f"{target}.mountPath")
        normal = "/" + "/".join(p for p in path.split("/") if p and p != ".")
        if normal in _RESERVED_MOUNTS or normal.startswith(("/proc/", "/sys/")):
            fail("InvalidVolumeMountPath", f"Volume {mount.name!r} cannot be mounted at "
                 f"{normal[:120]!r}: the runtime needs it (/, /proc, /sys, /dev).",
                 f"{target}.mountPath")
        if normal in paths:
            fail("DuplicateVolumeMountPath", f"Two volumes are mounted at {path[:120]!r} in "
                 "one container.", f"{target}.mountPath")
        paths.add(normal)


def _check_resources(container: Container, where: str, total_cpu: float,
                     total_mem: float) -> None:
    resources = container.properties.resources
    requests, limits = resources.requests, resources.limits
    target = f"{where}.resources"
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


#: The most GPUs one container may ask for: a node has at most 16 NVIDIA GPUs on a
#: board (an HGX has 8); more is a typo, refused before admission.
MAX_GPU_COUNT = 16


def gpu_request(value: Any) -> tuple[int, str] | None:
    """A valid ``resources.requests.gpu`` (or ``limits.gpu``) as (count, sku as
    written); None when absent. For a body the rules passed."""
    if value is None:
        return None
    if not isinstance(value, dict):
        value = {"count": getattr(value, "count", None), "sku": getattr(value, "sku", None)}
    return int(value["count"]), str(value["sku"])


def _gpu_shape(value: Any, target: str) -> tuple[int, str]:
    if not isinstance(value, dict):
        fail("InvalidGpuResource", "A GPU resource is an object with a count and a sku "
             "({\"count\": 1, \"sku\": \"V100\"}).", target)
    count, sku = value.get("count"), value.get("sku")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GPU_COUNT:
        fail("InvalidGpuResource", f"The GPU count must be a whole number from 1 to "
             f"{MAX_GPU_COUNT}, not {str(count)[:40]!r}.", f"{target}.count")
    if not isinstance(sku, str) or not sku.strip() or len(sku) > 64:
        fail("InvalidGpuResource", "The GPU sku must name the GPU model (the node's SKUs are "
             "listed by the capabilities API: K80, V100, H100, ...).", f"{target}.sku")
    return count, sku


def _check_gpu(container: Container, target: str, isolation: str | None) -> None:
    """A GPU request's shape (whether the node has such GPUs free is admission's), a
    limit that matches it, and no GPUs in a gVisor sandbox."""
    resources = container.properties.resources
    limit_value = resources.limits.gpu if resources.limits is not None else None
    if resources.requests.gpu is None and limit_value is None:
        return
    if resources.requests.gpu is None:
        fail("InvalidGpuResource", f"The container {container.name!r} has a GPU limit "
             "without a GPU request: ask for GPUs in resources.requests.gpu.",
             f"{target}.limits.gpu")
    count, sku = _gpu_shape(resources.requests.gpu, f"{target}.requests.gpu")
    if limit_value is not None:
        limit, limit_sku = _gpu_shape(limit_value, f"{target}.limits.gpu")
        if limit < count:
            fail("ContainerLimitLessThanRequest", f"The GPU limit ({limit}) of container "
                 f"{container.name!r} is less than its request ({count}).",
                 f"{target}.limits.gpu.count")
        if canonical_sku(limit_sku) != canonical_sku(sku):
            fail("InvalidGpuResource", f"The GPU limit's sku {limit_sku!r} of container "
                 f"{container.name!r} is not its request's ({sku!r}).",
                 f"{target}.limits.gpu.sku")
    if (isolation or "").lower() == "sandbox":
        # runsc's GPU proxy (nvproxy) came after the gVisor release Debian ships (2022).
        fail("GpuNotSupportedInSandbox", f"The container {container.name!r} asks for GPUs, "
             "which a gVisor sandbox (isolation: Sandbox) cannot give on this node: its "
             "runsc predates gVisor's GPU support. Use isolation Container (revisit when "
             "runsc is newer).", f"{target}.requests.gpu")


def _check_probe(probe: ContainerProbe, target: str) -> None:
    if (probe.exec_ is None) == (probe.http_get is None):
        fail("InvalidProbe", "A probe needs exactly one of exec and httpGet.", target)
    if probe.exec_ is not None and not probe.exec_.command:
        fail("InvalidProbe", "An exec probe needs a non-empty command.", f"{target}.exec.command")
    if probe.exec_ is not None:
        _check_command(probe.exec_.command, f"{target}.exec.command")
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


def _check_security(context: SecurityContext, name: str, target: str, *,
                    allow_privileged: bool) -> None:
    if context.privileged and not allow_privileged:
        fail("PrivilegedContainerNotAllowed", f"The container {name!r} asks to run privileged, "
             "which this skiff host does not allow (see skiff serve --allow-privileged).",
             f"{target}.privileged")
    caps = context.capabilities
    for kind, names in (("add", caps.add if caps else None),
                        ("drop", caps.drop if caps else None)):
        for j, cap in enumerate(names or []):
            where = f"{target}.capabilities.{kind}[{j}]"
            upper = cap.upper()
            full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
            if upper != "ALL" and full not in ALL_CAPABILITIES:
                fail("InvalidCapability", f"The capability {cap[:40]!r} of container "
                     f"{name!r} is unknown: use names such as NET_ADMIN (with or without "
                     "CAP_), or ALL.", where)
            if (kind == "add" and not allow_privileged
                    and (upper == "ALL" or full not in UNPRIVILEGED_CAPABILITIES)):
                fail("CapabilityNotAllowed", f"The container {name!r} asks for capability "
                     f"{cap[:40]!r}, which acts on the host's kernel: this skiff host allows it "
                     "only with privileged containers (see skiff serve --allow-privileged).",
                     where)
    for field, value in (("runAsUser", context.run_as_user),
                         ("runAsGroup", context.run_as_group)):
        if value is not None and not 0 <= value <= MAX_RUN_AS_ID:
            fail("InvalidRunAsId", f"The {field} of container {name!r} must be an id from 0 "
                 f"to {MAX_RUN_AS_ID}.", f"{target}.{field}")
    if context.seccomp_profile is not None:
        problem = seccomp_profile_problem(context.seccomp_profile)
        if problem is not None:
            fail("InvalidSeccompProfile", f"The seccompProfile of container {name!r} {problem}.",
                 f"{target}.seccompProfile")


def decode_seccomp_profile(encoded: str) -> dict[str, object] | None:
    """The JSON object a base64 ``seccompProfile`` holds, or None if it holds none."""
    if len(encoded) > MAX_SECCOMP_PROFILE or not _is_base64(encoded):
        return None
    try:
        doc = json.loads(base64.b64decode(re.sub(r"\s", "", encoded)))
    except ValueError:  # not UTF-8 or not JSON
        return None
    return doc if isinstance(doc, dict) else None


def seccomp_profile_problem(encoded: str) -> str | None:
    """What is wrong with a base64 ``seccompProfile`` (a phrase), or None if nothing is.

    It must decode to a Docker-format profile: an object with a string
    ``defaultAction``, and ``syscalls`` (if any) a list of rules, each naming its
    syscalls (``names`` or ``name``) and a string ``action``.
    """
    if len(encoded) > MAX_SECCOMP_PROFILE:
        return f"is longer than {MAX_SECCOMP_PROFILE // 1024} KiB"
    doc = decode_seccomp_profile(encoded)
    if doc is None:
        return "is not base64 of a JSON object"
    if not isinstance(doc.get("defaultAction"), str):
        return "has no defaultAction (a string such as SCMP_ACT_ERRNO)"
    syscalls = doc.get("syscalls")
    if syscalls is None:
        return None
    if not isinstance(syscalls, list):
        return "has syscalls that are not a list"
    for k, rule in enumerate(syscalls):
        if not isinstance(rule, dict):
            return f"has a rule (syscalls[{k}]) that is not an object"
        names = rule.get("names") if rule.get("names") is not None else [rule.get("name")]
        if (not isinstance(names, list) or not names
                or not all(isinstance(n, str) and n for n in names)):
            return f"has a rule (syscalls[{k}]) without syscall names"
        if not isinstance(rule.get("action"), str):
            return f"has a rule (syscalls[{k}]) without an action"
        args = rule.get("args")
        if args is not None and not (isinstance(args, list)
                                     and all(isinstance(a, dict) for a in args)):
            return f"has a rule (syscalls[{k}]) whose args are not a list of objects"
        for key in ("includes", "excludes"):
            if rule.get(key) is not None and not isinstance(rule[key], dict):
                return f"has a rule (syscalls[{k}]) whose {key} is not an object"
    arch_map = doc.get("archMap")
    if arch_map is not None and not (isinstance(arch_map, list)
                                     and all(isinstance(e, dict) for e in arch_map)):
        return "has an archMap that is not a list of objects"
    for key in ("architectures", "flags"):
        if doc.get(key) is not None and not isinstance(doc[key], list):
            return f"has {key} that are not a list"
    try:  # what the engine will do with it, for any capability set and kernel
        convert_seccomp(doc, caps=(), arch="amd64", kernel=(6, 1))
    except (SeccompProfileError, TypeError, ValueError, AttributeError, KeyError):
        return "is not a seccomp profile skiff can read (see Docker's format)"
    return None


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
        _check_azure_file(volume.name, volume.azure_file, f"{where}.azureFile")
    if volume.secret is not None:
        size = 0
        for fname, content in volume.secret.items():
            target = f"{where}.secret.{fname[:80]}"
            if (not _SECRET_KEY.fullmatch(fname) or fname.startswith("..")
                    or fname == "."):
                fail("InvalidSecretVolume", f"The secret volume {volume.name!r} has a file "
                     "name that is not 1 to 253 letters, digits, '-', '_' and '.' (not "
                     "'.', nor starting with '..').", target)
            if not _is_base64(content):
                fail("InvalidSecretVolume", f"The content of file {fname[:80]!r} of secret "
                     f"volume {volume.name!r} is not valid base64.", target)
            size += _decoded_size(content)
            if size > MAX_SECRET_VOLUME_BYTES:
                fail("InvalidSecretVolume", f"The files of secret volume {volume.name!r} hold "
                     f"more than {MAX_SECRET_VOLUME_BYTES // 1024} KiB.", target)
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


def azure_file_field(share: dict[str, Any], name: str) -> Any:
    """A property of an azureFile volume (a loose object: names in any case, as ARM)."""
    for key, value in share.items():
        if isinstance(key, str) and key.lower() == name.lower():
            return value
    return None


def _check_azure_file(name: str, share: dict[str, Any], where: str) -> None:
    """shareName and storageAccountName required (ACI's schema), and the key (ACI
    mounts with it: without one it could not); readOnly a boolean."""
    for field_name in ("shareName", "storageAccountName", "storageAccountKey"):
        value = azure_file_field(share, field_name)
        if not isinstance(value, str) or not value.strip():
            fail("InvalidAzureFileVolume", f"The azureFile volume {name!r} needs a "
                 f"{field_name}.", f"{where}.{field_name}")
    if not isinstance(azure_file_field(share, "readOnly"), bool | None):
        fail("InvalidAzureFileVolume", f"The readOnly of azureFile volume {name!r} must be "
             "a boolean.", f"{where}.readOnly")


def _decoded_size(content: str) -> int:
    """The bytes a valid base64 text decodes to, without decoding it."""
    clean = re.sub(r"\s", "", content)
    return len(clean) * 3 // 4 - clean[-2:].count("=")


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
    exposed: dict[tuple[int, str], str] = {}  # port and protocol → the container exposing it
    for i, container in enumerate(props.containers):
        for j, port in enumerate(container.properties.ports or []):
            target = f"properties.containers[{i}].properties.ports[{j}]"
            _check_port(port.port, f"{target}.port")
            if port.port == METADATA_LISTEN_PORT:
                fail("InvalidPort", f"The port {port.port} is reserved: the identity endpoint "
                     "inside every container group listens on it.", f"{target}.port")
            _enum(port.protocol, PROTOCOLS, "InvalidProtocol", "protocol", f"{target}.protocol")
            other = exposed.get((port.port, port.protocol))
            if other == container.name:
                fail("DuplicateContainerPorts", f"The port {port.port}/{port.protocol} is "
                     f"given twice in the ports of the container '{container.name}'.",
                     f"{target}.port")
            if other is not None:
                fail("DuplicateContainerPorts", f"The port {port.port}/{port.protocol} is "
                     f"exposed by more than one container ('{other}' and "
                     f"'{container.name}'; containers share one network).", f"{target}.port")
            exposed[(port.port, port.protocol)] = container.name
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


_SUBNET_ID = re.compile(r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                        r"Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+/?",
                        re.IGNORECASE)


def subnet_key(props: GroupProperties) -> str | None:
    """The key of the subnet a private group is placed in: its ARM id in lower case."""
    if not props.subnet_ids:
        return None
    return str(props.subnet_ids[0].get("id", "")).rstrip("/").lower()


def _check_subnets(props: GroupProperties) -> None:
    """subnetIds: one subnet, by ARM id; the group is then private (no public IP, no
    DNS name label), and a Private IP needs a subnet."""
    ip = props.ip_address
    if not props.subnet_ids:
        if ip is not None and ip.type == "Private":
            fail("PrivateIpAddressRequiresSubnet", "A Private IP address needs a virtual "
                 "network subnet in properties.subnetIds.", "properties.ipAddress.type")
        return
    if len(props.subnet_ids) > 1:
        fail("InvalidSubnetId", "A container group is placed in one subnet: give one "
             "subnetIds entry.", "properties.subnetIds")
    subnet_id = props.subnet_ids[0].get("id") if isinstance(props.subnet_ids[0], dict) else None
    if not isinstance(subnet_id, str) or not _SUBNET_ID.fullmatch(subnet_id):
        fail("InvalidSubnetId", f"The subnet id {str(subnet_id)[:200]!r} is not a subnet's "
             "resource id (/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network"
             "/virtualNetworks/{vnet}/subnets/{subnet}).", "properties.subnetIds[0].id")
    if ip is not None and ip.type != "Private":
        fail("PublicIpAddressNotSupportedInSubnet", "A container group in a virtual network "
             "has a Private IP address: set ipAddress.type to 'Private'.",
             "properties.ipAddress.type")
    if ip is not None and ip.dns_name_label:
        fail("DnsNameLabelNotSupportedInSubnet", "A container group in a virtual network "
             "has no DNS name label: remove ipAddress.dnsNameLabel.",
             "properties.ipAddress.dnsNameLabel")


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
