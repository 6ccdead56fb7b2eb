"""skiff's configuration: grouped dataclasses with documented defaults.

Settings are built once (by the CLI or a test) and passed down explicitly;
nothing reads configuration from globals or the environment at import time.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = Path("/var/lib/skiff")
#: The smallest group disk: ext4's journal and metadata take ≈ 5 MiB of a small one.
MIN_GROUP_DISK_BYTES = 32 << 20

# Go's names for machines, as image indexes use them.
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True, kw_only=True)
class Platform:
    """An OCI platform: which manifest of an index this host runs."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def host(cls) -> Platform:
        machine = _platform.machine().lower()
        arch = _GOARCH.get(machine, machine)
        return cls(architecture=arch, variant="v7" if machine == "armv7l" else None)

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """How the image engine reaches registries."""

    #: Registry hosts (``host`` or ``host:port``) reached over plain HTTP or
    #: with unverified TLS. Loopback registries always are, as in Docker.
    insecure_registries: tuple[str, ...] = ()
    #: Seconds a manifest look-up may take before the registry counts as
    #: unreachable. It bounds every call that only fetches a manifest.
    registry_timeout_s: float = 30.0
    #: Seconds a whole pull (every missing blob) may take.
    pull_timeout_s: float = 1800.0
    #: The platform picked from multi-platform images.
    platform: Platform = field(default_factory=Platform.host)
    #: The skopeo program.
    skopeo: str = "skopeo"


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """How containers are run."""

    #: The OCI runtime CLI of groups with ``isolation="container"`` (runc; see ``runsc``).
    runtime: str = "/usr/sbin/runc"
    #: The container monitor.
    conmon: str = "conmon"
    #: gVisor's OCI runtime, for groups with ``isolation="sandbox"``. It runs
    #: with ``--network=host`` inside each group's network namespace (its
    #: netstack refuses to start on these hosts), every call in that namespace.
    runsc: str = "/usr/bin/runsc"
    #: More global runsc flags, e.g. ``("--platform=kvm",)`` or
    #: ``("--debug", "--debug-log=/tmp/runsc/")``. The default platform is ptrace,
    #: which needs no virtualisation (nested KVM hangs on these hosts).
    runsc_flags: tuple[str, ...] = ()
    #: CPU cores a sandbox may use while gVisor boots (its kernel is a Go
    #: program that starts several threads); the group's real limit is set
    #: once the sandbox runs, before any container of the group starts.
    sandbox_startup_cpu: float = 1.0
    #: Runtime state, sockets and exit files; default /run/skiff-<hash of the
    #: data root>, short because unix socket paths are limited to 108 bytes.
    #: skiff mounts a 0700 tmpfs there: the containers' bundles hold their secure
    #: environment values in clear (see skiff.engine.runtime.rundir).
    run_dir: Path | None = None
    #: Bytes the run directory's tmpfs may hold (a container's bundle and runtime state
    #: take tens of KiB); memory is used only for what it holds.
    run_dir_bytes: int = 256 * 1024 * 1024
    #: A container instance's log limit (ACI keeps 4 MB), in bytes of k8s-file log: conmon
    #: cuts its file there (``--log-size-max``) and goes on in a second one, so at any
    #: write rate the newest ``log_max_bytes`` or more are readable and at most twice
    #: that is on disk; a restarted container's previous instance keeps its newest
    #: ``log_max_bytes``. See :mod:`skiff.engine.runtime.logfiles`.
    log_max_bytes: int = 4 * 1024 * 1024
    #: Seconds between SIGTERM and SIGKILL when a container is stopped.
    stop_grace_s: float = 10.0
    #: Seconds ``runc create`` may take before the start counts as failed.
    create_timeout_s: float = 60.0
    #: Allow the 32-bit x86 syscall ABIs (i386, x32) in containers, as Docker
    #: does. Off: the compat layer is attack surface few images need, and each
    #: ABI's seccomp filter costs runc ≈ 5 ms at every container start.
    compat_syscalls: bool = False
    #: Remap users (runc only): ``(first host id, count)``. Each container gets a
    #: user namespace where ids 0..count-1 are host ids first..first+count-1, for
    #: users and groups, so its root is an unprivileged user on the host. The image
    #: layers are shown to it through idmapped mounts (Linux 5.19+). None: no user
    #: namespace, container ids are host ids. Privileged containers never remap.
    userns: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.userns is not None:
            first, count = self.userns
            # Host id 0 would map the container's root to the host's; 2^32-1 is "no id".
            if first <= 0 or count <= 0 or first + count > 2**32 - 1:
                raise ValueError(f"invalid userns range {first}:{count}")


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """How groups are networked."""

    #: IPv4 subnet (CIDR) the groups' addresses come from. None: a /23 in
    #: 10.89.0.0-10.95.255.255 picked by the data root's hash (see skiff.engine.network.networks).
    subnet: str | None = None
    #: Make ``subnet`` a routable public pool on this host interface (``eth0``):
    #: no NAT, and proxy ARP on the interface answers for the groups' addresses,
    #: so other machines on its link reach groups directly. ``subnet`` must then
    #: be a range of that link's addresses no other machine uses. None: the
    #: public network is a NATed bridge reached from this host.
    public_interface: str | None = None
    #: Slots (namespace + CNI ADD done) kept ready for group starts; 0: none.
    pool_size: int = 4
    #: Directory of the CNI plugin programs (``CNI_PATH``).
    cni_path: Path = Path("/usr/lib/cni")
    #: MTU of the groups' interface. None: that of the host's default-route
    #: interface, so that NATed traffic fits the uplink (1400 here, not 1500).
    mtu: int | None = None
    #: Seconds one CNI plugin call may take.
    cni_timeout_s: float = 30.0
    #: Where namespaces are mounted; ``ip netns`` and ``nsenter`` find them here.
    netns_dir: Path = Path("/run/netns")
    #: The host's resolver configuration, the default for the groups'.
    resolv_conf: Path = Path("/etc/resolv.conf")
    #: Endpoints on this node (``HOST:PORT``, an IP address or ``localhost``) that
    #: tenants' image pulls and gitRepo clones may reach: a local registry, say.
    #: Every other address of the node, loopback, link-local and the groups'
    #: networks are out of their reach (see skiff.engine.network.fetching).
    allow_local_endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class VolumeSettings:
    """How volumes are made."""

    #: Bytes a secret volume's tmpfs may hold. 1 MiB is the size limit of a
    #: Kubernetes Secret, ample for keys, certificates and config files.
    secret_size_bytes: int = 1024 * 1024
    #: The git program.
    git: str = "git"
    #: Seconds a gitRepo volume's clone and checkout may take together; a
    #: server that stops answering fails the volume instead of hanging the
    #: group's creation. Generous, for big repositories on slow links.
    git_timeout_s: float = 300.0


@dataclass(frozen=True, kw_only=True)
class DiskSettings:
    """How much of the node's disk one group may write (see skiff.engine.volumes.disks).

    Each group writes its containers' writable layers and its emptyDir volumes
    on a filesystem of its own: a sparse file of this size, loop-mounted, so
    that a write beyond the limit fails inside the container (ENOSPC) and the
    host's disk is spent only where a group wrote.
    """

    #: The writable-layer limit of one group, in GB (10^9 bytes): its containers'
    #: root filesystems and its emptyDir volumes together. ACI documents 50 GB per
    #: group; 10 GB here, since the files are sparse and a node's disk is shared by
    #: every group it runs (a few groups that fill theirs must leave room for the
    #: rest). 0: no limit (groups write on the data root's filesystem, as before).
    group_gb: float = 10.0
    #: Formatted group disks kept ready, held mounted (detached), so that a group
    #: start only renames one and places its mount (≈ 0.2 ms); making one (a sparse
    #: file and mkfs) takes ≈ 20 ms. Each costs ≈ 4 MB of real disk (ext4's metadata)
    #: and, held, a loop device (released when skiff stops).
    pool_size: int = 2
    #: The mkfs program (ext4).
    mkfs: str = "mkfs.ext4"

    def __post_init__(self) -> None:
        if not 0 <= self.group_gb <= 50 or self.pool_size < 0:
            raise ValueError(f"invalid disk settings: {self} (group_gb is at most 50, ACI's "
                             "limit)")
        if 0 < self.group_gb * 1e9 < MIN_GROUP_DISK_BYTES:
            raise ValueError(f"a group disk of {self.group_gb} GB is too small "
                             f"(at least {MIN_GROUP_DISK_BYTES >> 20} MiB)")

    @property
    def group_bytes(self) -> int:
        """The limit in bytes, a whole number of 1 MiB (0: none)."""
        return int(self.group_gb * 1e9) >> 20 << 20


@dataclass(frozen=True, kw_only=True)
class ShareSettings:
    """How the node stores file shares (see skiff.engine.shares).

    Each share is a sparse ext4 image of its quota under ``<data_root>/shares``:
    the host's disk is spent only where files were written. The sum of the
    shares' quotas is held to the data root's free disk (plus what the shares
    already take) times ``overcommit``.
    """

    #: How far the sum of the quotas may pass the disk the shares could use. Azure's
    #: default quota is 5120 GiB and most shares hold a tiny part of it: 256 lets an
    #: ordinary host with 20 GiB free make one default share (20 x 256 = 5120), while a
    #: node whose shares really fill their quotas runs out of disk long before they do
    #: (a full host disk fails the writes, see the engine's docstring). 1: no overcommit.
    overcommit: float = 256.0
    #: The mkfs program (ext4), and the e2fsck and resize2fs ones (a quota's change).
    mkfs: str = "mkfs.ext4"
    e2fsck: str = "e2fsck"
    resize2fs: str = "resize2fs"
    #: The FUSE program of the shares' ownership views (Debian's ``bindfs``).
    bindfs: str = "bindfs"

    def __post_init__(self) -> None:
        if not self.overcommit >= 1:
            raise ValueError(f"the share overcommit is at least 1, not {self.overcommit}")


@dataclass(frozen=True, kw_only=True)
class BackoffSettings:
    """How long a failing container waits before each restart.

    The defaults are Kubernetes' CrashLoopBackOff, which users of containers
    already know, and the ones API-NOTES promises (10 s doubling to 5 min).
    """

    #: Seconds waited before the second restart in a row; the first restart
    #: is immediate, since one crash alone says little.
    initial_s: float = 10.0
    #: Each further restart in a row waits this many times longer.
    factor: float = 2.0
    #: The longest wait: a broken container is still retried every 5 minutes,
    #: so that it recovers by itself once what it depends on comes back.
    max_s: float = 300.0
    #: A container that ran at least this long before it exited had been
    #: healthy: its backoff starts over (its restart count does not).
    reset_after_s: float = 600.0

    def __post_init__(self) -> None:
        # A programming or configuration mistake, caught where it is made.
        if self.initial_s < 0 or self.factor < 1 or self.max_s < self.initial_s \
                or self.reset_after_s <= 0:
            raise ValueError(f"inconsistent backoff settings: {self}")


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """The control plane's server."""

    #: Where the HTTPS API listens. Loopback by default: containers reach the
    #: host through their bridge gateway when it listens there.
    listen: str = "127.0.0.1:8443"
    #: The node's own location name: the default of a resource that names none.
    location: str = "local"
    #: The other location names a resource may be created in, each an alias of this
    #: node (the resource keeps and answers back the name it was given). None: every
    #: public Azure region name (``eastus``, ``westeurope``...), so that bodies written
    #: for Azure are placed here as they are.
    locations: tuple[str, ...] | None = None
    #: Requests may add up to this many times the host's CPUs and memory.
    overcommit: float = 1.0
    #: Container groups per page of a list answer (``nextLink`` for more).
    page_size: int = 100
    #: An operator's certificate and key instead of skiff's own CA's.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Reconcile workers (groups started, stopped or deleted at once).
    workers: int = 4
    #: Admit containers with ``securityContext.privileged`` (every capability, no
    #: seccomp filter, the host's devices: root on the host) and capabilities that
    #: act on the host's kernel (SYS_ADMIN, SYS_MODULE, ...). Off: refused with 400
    #: PrivilegedContainerNotAllowed / CapabilityNotAllowed; turn it on only where
    #: every tenant is trusted with the host.
    allow_privileged: bool = False
    #: The isolation of groups that do not choose one (skiff's extension
    #: ``properties.isolation``): ``Container`` (runc, hardened) or ``Sandbox``
    #: (one gVisor sandbox per group: a user-space kernel between it and the host).
    default_isolation: str = "Container"
    #: Images every tenant may see in ``locations/{l}/cachedImages`` once they are in
    #: the node's cache (e.g. the base images the operator pulls ahead). Any other
    #: cached image is listed only to subscriptions whose groups use it: the cache is
    #: shared, and a reference can tell what another tenant runs.
    public_cached_images: tuple[str, ...] = ()
    #: Let the groups reach the API at their gateway, ``https://<gateway>:<API port>/``
    #: (the public network's and every virtual network subnet's), so that a group's
    #: managed identity can call it (``az login --identity`` inside the group). A relay
    #: per gateway (:mod:`skiff.gateway`) answers there with a certificate of skiff's
    #: own CA (``<data root>/ca.pem``) that names the gateway, and joins each connection
    #: to the API; nothing else of the node opens to the groups. Off: the groups reach
    #: the node only on its DNS port.
    for_groups: bool = False


#: The quotas a subscription has, by ACI's names (``locations/{l}/usages``): the first two
#: and ``StandardSpotCores`` (the cores of Spot groups, a quota of its own in ACI) are
#: ACI's own usage names; ACI publishes the rates but names no usage for them.
QUOTA_NAMES = ("ContainerGroups", "StandardCores", "ContainerGroupCreatesPer5Minutes",
               "ContainerGroupCreatesPerHour", "ContainerGroupDeletesPer5Minutes",
               "ContainerGroupDeletesPerHour", "StandardSpotCores")
#: Each quota's field of :class:`QuotaSettings`, by name.
QUOTA_FIELDS = dict(zip(QUOTA_NAMES, ("container_groups", "standard_cores",
                                      "creates_per_5_minutes", "creates_per_hour",
                                      "deletes_per_5_minutes", "deletes_per_hour",
                                      "spot_cores"), strict=True))


@dataclass(frozen=True, kw_only=True)
class QuotaSettings:
    """What each subscription may hold and do on this node, with ACI's default quotas
    ("Resource availability & quota limits for ACI": 100 Standard container groups and
    100 Standard cores per region per subscription; 100 creates and 100 deletes per 5
    minutes, 300 of each per hour). A skiff node is one region: the location names it
    answers to are aliases, so a subscription's quota covers them all."""

    #: Container groups (every state but being deleted).
    container_groups: int = 100
    #: CPU cores requested by the Regular groups that hold them (running or starting: a
    #: stopped, succeeded or failed group holds none).
    standard_cores: int = 100
    #: The same, of ``priority: Spot`` groups (ACI's ``StandardSpotCores``; an evicted
    #: Spot group holds none). ACI publishes no default: skiff's is Standard's.
    spot_cores: int = 100
    #: Container groups created in any 5 minutes, and in any hour.
    creates_per_5_minutes: int = 100
    creates_per_hour: int = 300
    #: Container groups deleted in any 5 minutes, and in any hour.
    deletes_per_5_minutes: int = 100
    deletes_per_hour: int = 300
    #: One subscription's own limits, over the ones above: (subscription, quota name
    #: from :data:`QUOTA_NAMES`, limit).
    subscriptions: tuple[tuple[str, str, int], ...] = ()

    def __post_init__(self) -> None:
        for name in QUOTA_NAMES:
            if self.default(name) < 0:
                raise ValueError(f"the quota {name} is at least 0, not {self.default(name)}")
        for _, name, limit in self.subscriptions:
            if name not in QUOTA_NAMES:
                raise ValueError(f"no quota is named {name!r}; one of {', '.join(QUOTA_NAMES)}")
            if limit < 0:
                raise ValueError(f"the quota {name} is at least 0, not {limit}")

    def default(self, name: str) -> int:
        """The limit every subscription has for quota ``name``, unless its own is set."""
        limit: int = getattr(self, QUOTA_FIELDS[name])
        return limit

    def limits(self, subscription: str) -> dict[str, int]:
        """Every quota's limit for ``subscription`` (any case), by name."""
        found = {name: self.default(name) for name in QUOTA_NAMES}
        for sub, name, limit in self.subscriptions:
            if sub.lower() == subscription.lower():
                found[name] = limit
        return found


@dataclass(frozen=True, kw_only=True)
class FilesSettings:
    """The Azure Files data plane (skiff.files): its own HTTPS listener, beside the API's,
    with the same certificate. Clients address an account path-style, as Azurite serves
    IP hosts: ``https://HOST:PORT/<account>`` (the account's ``primaryEndpoints.file``)."""

    #: Where it listens (``HOST:PORT``; port 0: a free one). None: no data plane. Use the
    #: API's host (or loopback): the server certificate names that, localhost and 127.0.0.1.
    listen: str | None = "127.0.0.1:8444"
    #: The URL base clients are given (``https://HOST:PORT``); None: from ``listen``
    #: (127.0.0.1 for a wildcard address).
    public_url: str | None = None
    #: Connections served at once from one client address (loopback clients share
    #: 127.0.0.1); beyond, a new one's requests are answered 503 ``ServerBusy``.
    max_connections_per_client: int = 64
    #: Requests handled at once (worker threads doing their file and store I/O).
    workers: int = 16


@dataclass(frozen=True, kw_only=True)
class DnsSettings:
    """The names groups get from their ``dnsNameLabel`` (see skiff.models.labels)."""

    #: Where the authoritative DNS server for name labels listens
    #: (``HOST:PORT``, UDP and TCP). None: no DNS server; groups' FQDNs are
    #: still answered by the API.
    listen: str | None = None
    #: The zone below which groups are named: ``<label>.<location>.<zone>``.
    zone: str = "skiff.internal"
    #: Seconds resolvers may keep an answer, negative ones included: short,
    #: since groups come and go and their addresses change.
    ttl: int = 5
    #: The tenant identity that ``TenantReuse`` labels hash: one tenant per
    #: skiff server. Changing it renames every TenantReuse group.
    tenant: str = "skiff"
    #: TCP connections to the DNS server (clients ask over TCP after a
    #: truncated answer) served at once, each by a thread; beyond, a new one
    #: is closed at once (BIND's ``tcp-clients``).
    max_tcp: int = 256
    #: TCP connections served at once from one client address (a container,
    #: or the host's loopback): beyond, a new one is closed at once, so that no
    #: client can take the others' (unbound's ``tcp-connection-limit``).
    max_tcp_per_client: int = 8
    #: Seconds a TCP connection may go without a whole query (silent, or
    #: sending part of one), counted from its previous answer, before it is
    #: closed; an answer not taken within it closes it too (RFC 7766 §6.2.3).
    tcp_idle_s: float = 5.0


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """Containers' CPU, memory and network metrics (``Microsoft.Insights/metrics``), and
    the operator's Prometheus endpoint."""

    #: Seconds between two samples of every running group (ACI: one a minute at most
    #: is shown; 15 s gives four per PT1M point). 0: no sampling.
    interval_s: float = 15.0
    #: Seconds samples are kept at full resolution.
    full_retention_s: float = 24 * 3600.0
    #: Seconds of one downsampled point (its average, minimum and maximum), kept
    #: :attr:`rollup_retention_s`.
    rollup_s: int = 300
    rollup_retention_s: float = 30 * 24 * 3600.0
    #: Where the Prometheus endpoint (``/metrics``, plain HTTP, no token) listens
    #: (``HOST:PORT``). None: it is served on the API's address only, to the admin token.
    listen: str | None = None


#: What Spot containers save on ACI's regular prices (the default Spot prices).
SPOT_DISCOUNT = 0.70


@dataclass(frozen=True, kw_only=True)
class PriceSheet:
    """What a second of each billed resource costs (:mod:`skiff.control.pricing`).

    The defaults are Azure Container Instances' published pay-as-you-go prices for Linux
    container groups in East US (https://azure.microsoft.com/pricing/details/container-instances/:
    $0.0405 per vCPU-hour and $0.00445 per GB-hour, per second of use); a Spot group's
    (``priority: Spot``) are :data:`SPOT_DISCOUNT` off them, the discount ACI's Spot
    containers documentation states ("up to a 70% discount compared to regular-priority
    ACI containers"); an operator sets their own (``skiff serve --prices FILE``)."""

    currency: str = "USD"
    #: The region the defaults are from (shown beside costs; any text of the operator's).
    region: str = "eastus"
    vcpu_second: float = 0.0405 / 3600
    gb_second: float = 0.00445 / 3600
    #: ACI's GPU SKUs are retired; a node with GPUs sets its own price.
    gpu_second: float = 0.0
    #: A Spot group's prices (Spot groups have no GPUs).
    spot_vcpu_second: float = 0.0405 / 3600 * (1 - SPOT_DISCOUNT)
    spot_gb_second: float = 0.00445 / 3600 * (1 - SPOT_DISCOUNT)


@dataclass(frozen=True, kw_only=True)
class UsageSettings:
    """Metering container groups' usage as ACI bills it, and pricing it."""

    #: Seconds between two advances of the open usage spans in the store: the most a
    #: crash of the server can leave uncounted of a group that does not outlive it. 0: no
    #: meter thread (spans still open and close with the groups' lifecycle).
    interval_s: float = 5.0
    prices: PriceSheet = field(default_factory=PriceSheet)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a skiff node needs to know."""

    #: Where all state lives: images, containers, the store.
    data_root: Path = DEFAULT_DATA_ROOT
    #: The node key that seals the secrets in the store (see skiff.store.sealing), made
    #: at the first start. None: ``<data_root>/keys/node.key``. A backup of the store
    #: without this key has lost its secrets; kept apart, a copy of the store alone
    #: reveals none.
    node_key: Path | None = None
    images: ImageSettings = field(default_factory=ImageSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    volumes: VolumeSettings = field(default_factory=VolumeSettings)
    disks: DiskSettings = field(default_factory=DiskSettings)
    shares: ShareSettings = field(default_factory=ShareSettings)
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    files: FilesSettings = field(default_factory=FilesSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    usage: UsageSettings = field(default_factory=UsageSettings)

    @property
    def shares_root(self) -> Path:
        """Where the file shares' images and mount points live."""
        return self.data_root / "shares"

    @property
    def images_root(self) -> Path:
        return self.data_root / "images"
