"""skiff's configuration: grouped dataclasses with documented defaults.

Settings are built once (by the CLI or a test) and passed down explicitly;
nothing reads configuration from globals or the environment at import time.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = Path("/var/lib/skiff")

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

    #: The OCI runtime CLI (runc; runsc for gVisor sandboxes).
    runtime: str = "/usr/sbin/runc"
    #: The container monitor.
    conmon: str = "conmon"
    #: Runtime state, sockets and exit files; default /run/skiff-<hash of the
    #: data root>, short because unix socket paths are limited to 108 bytes.
    run_dir: Path | None = None
    #: Output kept per container instance (ACI keeps 4 MB).
    log_max_bytes: int = 4 * 1024 * 1024
    #: Seconds between SIGTERM and SIGKILL when a container is stopped.
    stop_grace_s: float = 10.0
    #: Seconds ``runc create`` may take before the start counts as failed.
    create_timeout_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a skiff node needs to know."""

    #: Where all state lives: images, containers, the store.
    data_root: Path = DEFAULT_DATA_ROOT
    images: ImageSettings = field(default_factory=ImageSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    @property
    def images_root(self) -> Path:
        return self.data_root / "images"
