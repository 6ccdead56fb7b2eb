"""What the engine is asked to run: a container group, in the engine's own terms.

The control plane validates ACI's JSON and maps it to these frozen values;
the engine never sees the API's shapes. Field names follow ACI's where one
exists, so the mapping is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
    """CPU cores (fractional) and memory in GB; a limit of None means the request."""

    cpu: float = 1.0
    memory_gb: float = 1.5
    cpu_limit: float | None = None
    memory_limit_gb: float | None = None

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
class Volume:
    name: str
    source: EmptyDirVolume | SecretVolume | GitRepoVolume


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
    credentials: tuple[RegistryCredentialSpec, ...] = ()
    dns: DnsConfig | None = None
    #: ``ipAddress.ports``: the only ports reachable from outside the group.
    ip_ports: tuple[Port, ...] = ()
