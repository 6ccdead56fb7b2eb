"""A container group's ARM body as pydantic models, in the 2023-05-01 wire shape.

These models say what *types* a PUT body may hold; ACI's rules (names,
limits, references between fields) live in :mod:`skiff.models.rules`, so a
stored body can be read back without running them again.

Three habits of ARM are kept on purpose:

- Property names are matched case-insensitively (ARM's JSON reader does, and
  Microsoft's own YAML examples write ``memoryInGb``); the canonical spelling
  is what is stored and answered.
- Numbers are accepted for strings and numeric strings for numbers, as ARM's
  reader coerces them (``value: 8080`` in a YAML file).
- Unknown properties are kept (``extra="allow"``) and answered back, so a
  client's ``identity``, ``diagnostics`` or a field of a later api-version
  round-trips even though skiff does nothing with it.

Read-only properties a client may send back from a GET (``provisioningState``,
``instanceView``, ``fqdn``, ``ip``, ``id`` ...) are dropped on input: skiff
reports its own.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from skiff.errors import ArmError

# Canonical spellings of ACI's enumerations; input is matched case-insensitively.
OS_TYPES = ("Linux", "Windows")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
SKUS = ("Standard", "Dedicated", "Confidential")
PRIORITIES = ("Regular", "Spot")
PROTOCOLS = ("TCP", "UDP")
IP_ADDRESS_TYPES = ("Public", "Private")
LABEL_SCOPES = ("Unsecure", "TenantReuse", "SubscriptionReuse", "ResourceGroupReuse", "Noreuse")
HTTP_SCHEMES = ("http", "https")
ISOLATIONS = ("Container", "Sandbox")


def canonical(value: Any, choices: tuple[str, ...]) -> Any:
    """``value`` spelled as in ``choices`` when it matches one ignoring case, else as is."""
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    return value


@cache
def _aliases(cls: type[BaseModel]) -> dict[str, str]:
    """Lower-cased property name → canonical property name, for one model."""
    return {(f.alias or name).lower(): f.alias or name for name, f in cls.model_fields.items()}


class ArmModel(BaseModel):
    """The base of every ARM model: camelCase names, extras kept, no NaN or infinity."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
    )

    #: Properties the service computes; dropped from input (lower case).
    _read_only: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _canonical_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        aliases = _aliases(cls)
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                out[str(key)] = value
                continue
            if key.lower() in cls._read_only:
                continue
            name = aliases.get(key.lower(), key)
            if name != key and name in data:
                continue  # both spellings given: the exact one wins
            out[name] = value
        return out


class Port(ArmModel):
    """A port, of a container or of the group's IP address."""

    port: int
    protocol: str = "TCP"

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return "TCP" if value is None else canonical(value, PROTOCOLS)


class EnvironmentVariable(ArmModel):
    name: str
    value: str | None = None
    secure_value: str | None = Field(default=None, repr=False)


class ResourceRequests(ArmModel):
    cpu: float
    memory_in_gb: float = Field(alias="memoryInGB")
    #: ``{"count": n, "sku": ...}``; loosely typed so that a bad one is reported by the
    #: rules with ARM's words (:func:`skiff.models.rules.gpu_request` reads a valid one).
    gpu: Any = None


class ResourceLimits(ArmModel):
    cpu: float | None = None
    memory_in_gb: float | None = Field(default=None, alias="memoryInGB")
    gpu: Any = None


class ResourceRequirements(ArmModel):
    requests: ResourceRequests
    limits: ResourceLimits | None = None


class VolumeMount(ArmModel):
    name: str
    mount_path: str
    read_only: bool | None = None


class ContainerExec(ArmModel):
    command: list[str] | None = None


class HttpHeader(ArmModel):
    name: str | None = None
    value: str | None = None


class ContainerHttpGet(ArmModel):
    path: str | None = None
    port: int
    scheme: str | None = None
    http_headers: list[HttpHeader] | None = None

    @field_validator("scheme", mode="before")
    @classmethod
    def _scheme(cls, value: Any) -> Any:
        return canonical(value, HTTP_SCHEMES)


class ContainerProbe(ArmModel):
    exec_: ContainerExec | None = Field(default=None, alias="exec")
    http_get: ContainerHttpGet | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    failure_threshold: int | None = None
    success_threshold: int | None = None
    timeout_seconds: int | None = None


class SecurityContextCapabilities(ArmModel):
    """Capabilities added to and dropped from the default set (``NET_ADMIN``, ``ALL``)."""

    add: list[str] | None = None
    drop: list[str] | None = None


class SecurityContext(ArmModel):
    """A container's ``securityContext``; the rules check its values, convert maps them."""

    privileged: bool | None = None
    allow_privilege_escalation: bool | None = None
    capabilities: SecurityContextCapabilities | None = None
    run_as_group: int | None = None
    run_as_user: int | None = None
    #: A seccomp profile (Docker's JSON format), base64-encoded as in ACI.
    seccomp_profile: str | None = Field(default=None, repr=False)


class ConfigMap(ArmModel):
    """A container's config map (api-version 2024-05-01-preview on): key → file content."""

    key_value_pairs: dict[str, str] | None = None


class InitContainerProperties(ArmModel):
    """What an init container may say: no ports, resources nor probes."""

    _read_only = frozenset({"instanceview"})

    image: str
    command: list[str] | None = None
    environment_variables: list[EnvironmentVariable] | None = None
    volume_mounts: list[VolumeMount] | None = None
    security_context: SecurityContext | None = None


class ContainerProperties(InitContainerProperties):
    ports: list[Port] | None = None
    resources: ResourceRequirements
    liveness_probe: ContainerProbe | None = None
    readiness_probe: ContainerProbe | None = None
    config_map: ConfigMap | None = None


class InitContainer(ArmModel):
    name: str
    properties: InitContainerProperties


class Container(ArmModel):
    name: str
    properties: ContainerProperties


class ImageRegistryCredential(ArmModel):
    server: str
    username: str
    password: str = Field(repr=False)


class IpAddress(ArmModel):
    #: skiff assigns the address and its name: what a client sends back is ignored.
    _read_only = frozenset({"ip", "fqdn"})

    ports: list[Port]
    type: str
    dns_name_label: str | None = None
    auto_generated_domain_name_label_scope: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return canonical(value, IP_ADDRESS_TYPES)

    @field_validator("auto_generated_domain_name_label_scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        return canonical(value, LABEL_SCOPES)

    @field_validator("dns_name_label", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # DNS ignores case


class GitRepoVolume(ArmModel):
    repository: str
    directory: str | None = None
    revision: str | None = None


class Volume(ArmModel):
    name: str
    #: Refused by the rules for now; loosely typed, its key is never answered.
    azure_file: dict[str, Any] | None = None
    empty_dir: dict[str, Any] | None = None
    #: file name → base64 content.
    secret: dict[str, str] | None = Field(default=None, repr=False)
    git_repo: GitRepoVolume | None = None


class DnsConfiguration(ArmModel):
    name_servers: list[str]
    #: Space-separated, as in the SDK (a list is accepted and joined).
    search_domains: str | None = None
    options: str | None = None

    @field_validator("search_domains", mode="before")
    @classmethod
    def _search(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return " ".join(value)
        return value


class GroupProperties(ArmModel):
    #: ``isCreatedFromStandbyPool`` is the service's to say (a claim from a standby pool
    #: records it in the stored body, where the answer reads it).
    _read_only = frozenset({"provisioningstate", "instanceview", "iscreatedfromstandbypool"})

    os_type: str
    restart_policy: str = "Always"
    sku: str = "Standard"
    priority: str | None = None
    containers: list[Container]
    init_containers: list[InitContainer] = Field(default_factory=list)
    image_registry_credentials: list[ImageRegistryCredential] = Field(default_factory=list)
    ip_address: IpAddress | None = None
    volumes: list[Volume] = Field(default_factory=list)
    dns_config: DnsConfiguration | None = None
    subnet_ids: list[dict[str, Any]] | None = None
    diagnostics: dict[str, Any] | None = None
    extensions: list[dict[str, Any]] | None = None
    encryption_properties: dict[str, Any] | None = None
    confidential_compute_properties: dict[str, Any] | None = None
    #: skiff's extension: ``Sandbox`` (a gVisor sandbox for the whole group) or
    #: ``Container`` (runc); absent: the server's default (``--default-isolation``).
    isolation: str | None = None

    @field_validator("isolation", mode="before")
    @classmethod
    def _isolation(cls, value: Any) -> Any:
        return canonical(value, ISOLATIONS)

    @field_validator("init_containers", "image_registry_credentials", "volumes", mode="before")
    @classmethod
    def _no_list(cls, value: Any) -> Any:
        return [] if value is None else value  # null means none, as absence does

    @field_validator("os_type", mode="before")
    @classmethod
    def _os(cls, value: Any) -> Any:
        return canonical(value, OS_TYPES)

    @field_validator("restart_policy", mode="before")
    @classmethod
    def _restart(cls, value: Any) -> Any:
        return "Always" if value is None else canonical(value, RESTART_POLICIES)

    @field_validator("sku", mode="before")
    @classmethod
    def _sku(cls, value: Any) -> Any:
        return "Standard" if value is None else canonical(value, SKUS)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        return canonical(value, PRIORITIES)


class ContainerGroupBody(ArmModel):
    """A container group as a client defines it: what is stored, validated once."""

    _read_only = frozenset({"id", "name", "type", "systemdata", "etag"})

    location: str
    tags: dict[str, str] | None = None
    identity: dict[str, Any] | None = None
    zones: list[str] | None = None
    properties: GroupProperties

    def to_stored(self) -> dict[str, Any]:
        """The whole definition as JSON, secrets included: for the store, never for answers."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_stored(cls, doc: dict[str, Any]) -> ContainerGroupBody:
        """Read back what :meth:`to_stored` wrote; the rules are not run again."""
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            # Only a corrupted store gets here; the message names the place, never a value.
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            raise ArmError(500, "InternalServerError",
                           f"a stored container group is unreadable at {where!r}") from None
