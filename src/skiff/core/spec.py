"""What the engine is asked to run: a container group, in the engine's own terms.

The control plane validates ACI's JSON and maps it to these frozen values;
the engine never sees the API's shapes. Field names follow ACI's where one
exists, so the mapping is obvious.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = field(default="", repr=False)
    #: A ``secureValue``: never logged, never echoed back.
    secure: bool = False


@dataclass(frozen=True)
class Port:
    port: int
    protocol: str = "TCP"  # TCP | UDP


@dataclass(frozen=True)
class Resources:
    """CPU cores (fractional) and memory in GB; a limit of None means the request.
    GPUs: ``gpu_count`` whole NVIDIA GPUs of SKU ``gpu_sku`` (its canonical name,
    :func:`skiff.core.gpus.canonical`), given to this container alone."""

    cpu: float = 1.0
    memory_gb: float = 1.5
    cpu_limit: float | None = None
    memory_limit_gb: float | None = None
    gpu_count: int = 0
    gpu_sku: str = ""

    @property
    def effective_cpu(self) -> float:
        return self.cpu_limit if self.cpu_limit is not None else self.cpu

    @property
    def effective_memory_bytes(self) -> int:
        gb = self.memory_limit_gb if self.memory_limit_gb is not None else self.memory_gb
        return int(gb * 1024**3)


@dataclass(frozen=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True)
class HttpGetAction:
    port: int
    path: str = "/"
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Probe:
    action: ExecAction | HttpGetAction
    initial_delay_s: float = 0
    period_s: float = 10
    timeout_s: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass(frozen=True)
class SecurityContext:
    """ACI's ``securityContext``: how far a container departs from skiff's hardened defaults.

    The defaults (every field absent) are what a container gets without one:
    the default capabilities, no-new-privileges, the default seccomp profile
    and the image's user.
    """

    #: Every capability, no seccomp filter, no masked paths, the host's devices.
    privileged: bool = False
    #: None or False: no-new-privileges (setuid binaries gain nothing); True lifts it.
    allow_privilege_escalation: bool | None = None
    #: Capability names (``NET_ADMIN`` or ``CAP_NET_ADMIN``, or ``ALL``) added to and
    #: dropped from the default set.
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    #: Numeric ids replacing the image's ``User`` (None: the image's).
    run_as_user: int | None = None
    run_as_group: int | None = None
    #: A Docker-format seccomp profile replacing the default one (decoded JSON).
    seccomp_profile: Mapping[str, Any] | None = field(default=None, repr=False, hash=False,
                                                      compare=False)
    #: SHA-256 of the profile's canonical JSON: equal profiles compare equal, and a
    #: changed one changes the group's fingerprint (its repr), so it redeploys.
    seccomp_digest: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.seccomp_profile is not None:
            text = json.dumps(self.seccomp_profile, sort_keys=True, separators=(",", ":"))
            object.__setattr__(self, "seccomp_digest", hashlib.sha256(text.encode()).hexdigest())


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    #: ACI's ``command``: replaces the image's Entrypoint and Cmd when given.
    command: tuple[str, ...] | None = None
    env: tuple[EnvVar, ...] = ()
    resources: Resources = field(default_factory=Resources)
    ports: tuple[Port, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    liveness: Probe | None = None
    readiness: Probe | None = None
    security: SecurityContext = field(default_factory=SecurityContext)
    #: ACI's ``configMap.keyValuePairs``, sorted by key: a file per key in the container's
    #: ``/mnt/configmap/<name>/``, read-only. None: no config map (nothing mounted); a
    #: change of its pairs alone is made in place (see :func:`deployed`).
    config_map: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class EmptyDirVolume:
    pass


@dataclass(frozen=True)
class SecretVolume:
    #: file name → base64 content (as in ACI); never logged.
    files: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class GitRepoVolume:
    repository: str
    directory: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class AzureFileVolume:
    """An Azure Files share of the node (see skiff.core.shares), mounted into the group."""

    account: str
    share: str
    #: The account key as the group presents it: a secret, never logged nor answered.
    key: str = field(default="", repr=False)
    read_only: bool = False


@dataclass(frozen=True)
class Volume:
    name: str
    source: EmptyDirVolume | SecretVolume | GitRepoVolume | AzureFileVolume


@dataclass(frozen=True)
class RegistryCredentialSpec:
    server: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class DnsConfig:
    name_servers: tuple[str, ...] = ()
    search_domains: tuple[str, ...] = ()
    options: str = ""


@dataclass(frozen=True)
class SubnetPlacement:
    """The virtual network subnet a group is placed in (ACI's ``subnetIds``).

    ``vnet`` and ``subnet`` are stable keys (the resources' ids, lowercased):
    the engine derives its bridge and rule names from them. Groups of one
    virtual network reach each other (on their declared ports); nothing else
    on the node reaches them but the node itself.
    """

    vnet: str
    subnet: str
    #: The subnet's range (``10.1.0.0/24``); groups get addresses from its 5th on,
    #: as in Azure, which keeps the first four and the last.
    prefix: str


@dataclass(frozen=True)
class GroupSpec:
    """A container group as the engine runs it.

    ``id`` is unique on the node and safe in file names (letters, digits,
    ``_.-``): the control plane gives each group one (a UUID); ``name`` is
    the group's name, its containers' hostname.
    """

    id: str
    name: str
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    volumes: tuple[Volume, ...] = ()
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    #: ``"container"``: each container on runc, as ACI's default; ``"sandbox"``: the
    #: group in one gVisor sandbox (a user-space kernel between its containers and the
    #: host; limits then hold for the group as a whole, see skiff.engine.runtime.sandbox).
    isolation: str = "container"
    credentials: tuple[RegistryCredentialSpec, ...] = ()
    dns: DnsConfig | None = None
    #: ``ipAddress.ports``: the only ports reachable from outside the group.
    ip_ports: tuple[Port, ...] = ()
    #: ``subnetIds``: a private group in a virtual network; None: the public network.
    subnet: SubnetPlacement | None = None
    #: Seconds a container has between SIGTERM and SIGKILL when it is stopped (a
    #: profile's ``shutdownGracePeriod``); None: the node's ``stop_grace_s``.
    stop_grace_s: float | None = None


#: Where a container's config map appears in it: ``<CONFIG_MAP_ROOT>/<container>/<key>``
#: (ACI's place on Linux).
CONFIG_MAP_ROOT = "/mnt/configmap"


def deployed(spec: GroupSpec) -> GroupSpec:
    """``spec`` without its config maps' pairs: what an engine deploys. Two specs whose
    ``deployed`` forms are equal differ at most in config maps' pairs, which an engine
    changes in place (the files rewritten, nothing restarted), as ACI does; whether a
    container has a config map at all is kept (it is a mount)."""
    def bare(containers: tuple[Container, ...]) -> tuple[Container, ...]:
        return tuple(c if not c.config_map else replace(c, config_map=())
                     for c in containers)

    return replace(spec, containers=bare(spec.containers),
                   init_containers=bare(spec.init_containers))


def served_ports(spec: GroupSpec) -> tuple[int, ...]:
    """The TCP ports the group declares (its containers' ``ports`` and its
    ``ipAddress.ports``), sorted, each once: those a group answers on once it serves
    (:meth:`skiff.core.engine.Engine.serving`). UDP ports are left out: nothing tells
    whether a UDP server listens without its protocol."""
    ports = [*(p for c in spec.containers for p in c.ports), *spec.ip_ports]
    return tuple(sorted({p.port for p in ports if p.protocol.upper() == "TCP"}))


def config_maps(spec: GroupSpec) -> dict[str, dict[str, str]]:
    """Container name → its config map's pairs, for each container that has one."""
    return {c.name: dict(c.config_map) for c in (*spec.init_containers, *spec.containers)
            if c.config_map is not None}


def changed_keys(old: Mapping[str, Mapping[str, str]],
                 new: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Container name → the keys of its config map that differ between ``old`` and ``new``
    (added, changed or removed), sorted; containers without a change are left out."""
    found = {}
    for name, pairs in new.items():
        before = old.get(name, {})
        keys = sorted(k for k in {*before, *pairs} if before.get(k) != pairs.get(k))
        if keys:
            found[name] = keys
    return found
