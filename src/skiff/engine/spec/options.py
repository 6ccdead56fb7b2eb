"""The OCI runtime config (``config.json``) of a container, built from small options.

runc takes everything about a container from one JSON document. Writing it in
one big function would tie every concern (user, mounts, limits, hardening)
together; instead, as containerd's ``pkg/oci`` does, the spec starts from a
minimal base and each concern is a :data:`SpecOption`, a function that edits
the document in place. Options compose in order and each is tested alone::

    spec = default_spec(
        with_process(["/bin/sh"], env, uid=uid, gid=gid),
        with_root(rootfs),
        with_resources(cpu_cores=1.0, memory_bytes=1536 << 20, pids_limit=4096),
    )

:func:`default_spec` holds the hardened defaults every skiff container gets
(namespaces, mounts, capabilities, no-new-privileges, seccomp, masked and
read-only paths, rlimits); callers add what is particular to a container.

This module holds the base document, the generic options (process, hostname,
root, namespaces, mounts, paths, resources, cgroups, annotations, rlimits) and
:func:`default_spec`. The options that grant or withhold privilege
(capabilities, seccomp, no-new-privileges, ``privileged``) are in
:mod:`skiff.engine.spec.security`; the user namespace of a remapped container in
:mod:`skiff.engine.spec.userns`; turning an image's ``User`` into ids in
:mod:`skiff.engine.spec.users`.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from skiff.engine.spec.security import (
    with_capabilities,
    with_default_seccomp,
    with_no_new_privileges,
    with_privileged,
)
from skiff.errors import InvalidInput

SpecOption = Callable[[dict[str, Any]], None]

#: The OCI runtime spec version written; runc 1.1 reads 1.0.x.
OCI_VERSION = "1.0.2"

#: Paths hidden from the container (containers-common's list, as Podman uses):
#: kernel memory, keyrings, timing side channels, firmware and host hardware.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/sched_debug",
    "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/dev/block",
    "/sys/devices/virtual/powercap", "/sys/firmware", "/sys/fs/selinux",
)

#: Paths visible but read-only: writing them reconfigures the host's kernel
#: (/proc/sys, /proc/sysrq-trigger reboots it).
READONLY_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

#: The CFS period: the kernel's default, 100 ms, so quota = cores * period.
CFS_PERIOD_US = 100_000
#: The smallest quota the kernel accepts (1 ms).
_CFS_MIN_QUOTA_US = 1_000
#: cpu.shares per core, as Kubernetes maps CPU requests (1024 = one core's weight).
_SHARES_PER_CORE = 1024
#: The kernel refuses cpu.shares below 2.
_MIN_SHARES = 2
#: sethostname(2) refuses names longer than HOST_NAME_MAX.
_HOST_NAME_MAX = 64
#: /dev and /dev/shm sizes, as runc's and Podman's defaults (64 MiB).
_DEV_SIZE = "size=65536k"


def _base() -> dict[str, Any]:
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": False},
        "mounts": [],
        "linux": {
            "namespaces": [],
            # Deny every device in the devices cgroup; runc adds its short list of
            # safe ones (null, zero, full, tty, random, urandom, ptmx) itself. With
            # CAP_MKNOD in the defaults, this is what keeps a container off the
            # host's disks.
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }


def build_spec(*options: SpecOption) -> dict[str, Any]:
    """The minimal base spec with ``options`` applied in order."""
    spec = _base()
    for option in options:
        option(spec)
    return spec


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidInput(f"{what} must be an absolute path, not {path!r}")
    return path


def _put_mount(spec: dict[str, Any], mount: dict[str, Any]) -> None:
    """Add a mount; a later mount on the same destination replaces the earlier one."""
    mounts = [m for m in spec["mounts"] if m["destination"] != mount["destination"]]
    mounts.append(mount)
    spec["mounts"] = mounts


def with_process(args: Sequence[str], env: Sequence[str] | Mapping[str, str], cwd: str = "/",
                 uid: int = 0, gid: int = 0, additional_gids: Iterable[int] = (),
                 terminal: bool = False) -> SpecOption:
    """The command, environment (``K=V`` strings or a mapping), directory and user."""
    if not args:
        raise InvalidInput("a container needs a command (no args, no entrypoint, no cmd)")
    env_list = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
    _absolute(cwd, "the working directory")
    gids = [g for g in dict.fromkeys(additional_gids) if g != gid]

    def apply(spec: dict[str, Any]) -> None:
        process = spec["process"]
        process.update(args=list(args), env=env_list, cwd=cwd, terminal=terminal)
        user: dict[str, Any] = {"uid": uid, "gid": gid}
        if gids:
            user["additionalGids"] = gids
        process["user"] = user

    return apply


def with_hostname(name: str) -> SpecOption:
    """The UTS hostname (needs the uts namespace, which :func:`with_namespaces` gives)."""
    if not name or len(name) > _HOST_NAME_MAX:
        raise InvalidInput(f"a hostname has 1 to {_HOST_NAME_MAX} characters: {name!r}")

    def apply(spec: dict[str, Any]) -> None:
        spec["hostname"] = name

    return apply


def with_root(path: str | os.PathLike[str], readonly: bool = False) -> SpecOption:
    """The root filesystem (absolute, or relative to the bundle)."""

    def apply(spec: dict[str, Any]) -> None:
        spec["root"] = {"path": os.fspath(path), "readonly": readonly}

    return apply


def with_namespaces(network_path: str | None) -> SpecOption:
    """New pid, ipc, uts and mount namespaces; the group's netns if given, else a new one."""
    network: dict[str, str] = {"type": "network"}
    if network_path is not None:
        network["path"] = _absolute(network_path, "a network namespace")

    def apply(spec: dict[str, Any]) -> None:
        spec["linux"]["namespaces"] = [
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, network,
        ]

    return apply


def with_default_mounts() -> SpecOption:
    """proc, /dev and its pts, shm and mqueue, sysfs and the cgroups read-only (runc's set)."""
    nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"]
    defaults = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": nosuid_noexec_nodev},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", _DEV_SIZE]},
        # gid=5 is the tty group of every Debian-like image; ptmxmode lets
        # non-root users open new ptys.
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nosuid_noexec_nodev, "mode=1777", _DEV_SIZE]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": nosuid_noexec_nodev},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*nosuid_noexec_nodev, "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*nosuid_noexec_nodev, "relatime", "ro"]},
    ]

    def apply(spec: dict[str, Any]) -> None:
        for mount in defaults:
            _put_mount(spec, {**mount, "options": list(mount["options"])})

    return apply


def with_bind(source: str | os.PathLike[str], destination: str,
              readonly: bool = False) -> SpecOption:
    """Bind ``source`` (recursively) at ``destination``: nosuid, nodev, and ro if asked.

    ``ro`` applies to the top mount only: mounts below ``source`` stay as they are.
    """
    _absolute(destination, "a mount path")
    options = ["rbind", "rprivate", "nosuid", "nodev", *(["ro"] if readonly else [])]

    def apply(spec: dict[str, Any]) -> None:
        _put_mount(spec, {"destination": destination, "type": "bind",
                          "source": os.fspath(source), "options": list(options)})

    return apply


def with_tmpfs(destination: str, size_bytes: int, mode: int = 0o1777) -> SpecOption:
    """A memory-backed directory of at most ``size_bytes`` (counted in the memory cgroup)."""
    _absolute(destination, "a mount path")
    if size_bytes <= 0:
        raise InvalidInput(f"a tmpfs needs a positive size, not {size_bytes}")
    options = ["nosuid", "nodev", f"size={size_bytes}", f"mode={mode:o}"]

    def apply(spec: dict[str, Any]) -> None:
        _put_mount(spec, {"destination": destination, "type": "tmpfs", "source": "tmpfs",
                          "options": list(options)})

    return apply


def with_masked_paths(paths: Iterable[str] = MASKED_PATHS) -> SpecOption:
    """Paths runc covers (``/dev/null`` on files, an empty read-only tmpfs on dirs)."""
    masked = list(paths)

    def apply(spec: dict[str, Any]) -> None:
        spec["linux"]["maskedPaths"] = list(masked)

    return apply


def with_readonly_paths(paths: Iterable[str] = READONLY_PATHS) -> SpecOption:
    """Paths runc bind-mounts read-only over themselves."""
    readonly = list(paths)

    def apply(spec: dict[str, Any]) -> None:
        spec["linux"]["readonlyPaths"] = list(readonly)

    return apply


def with_resources(cpu_cores: float, memory_bytes: int, pids_limit: int) -> SpecOption:
    """CFS quota (cores * 100 ms of every 100 ms), shares, a memory limit without swap, pids.

    Swap is memory+swap in cgroup v1's terms, so setting it equal to the memory
    limit allows no swap at all: a container that outgrows its memory is
    OOM-killed as in ACI, not slowed down by paging.
    """
    if cpu_cores <= 0:
        raise InvalidInput(f"CPU cores must be positive, not {cpu_cores}")
    if memory_bytes <= 0:
        raise InvalidInput(f"memory must be positive, not {memory_bytes}")
    if pids_limit <= 0:
        raise InvalidInput(f"the pids limit must be positive, not {pids_limit}")
    quota = max(_CFS_MIN_QUOTA_US, round(cpu_cores * CFS_PERIOD_US))
    shares = max(_MIN_SHARES, round(cpu_cores * _SHARES_PER_CORE))

    def apply(spec: dict[str, Any]) -> None:
        resources = spec["linux"].setdefault("resources", {})
        resources["cpu"] = {"quota": quota, "period": CFS_PERIOD_US, "shares": shares}
        resources["memory"] = {"limit": memory_bytes, "swap": memory_bytes}
        resources["pids"] = {"limit": pids_limit}

    return apply


def with_cgroups_path(path: str) -> SpecOption:
    """Where runc puts the container's cgroups, below each hierarchy's root."""
    _absolute(path, "a cgroups path")

    def apply(spec: dict[str, Any]) -> None:
        spec["linux"]["cgroupsPath"] = path

    return apply


def with_annotations(annotations: Mapping[str, str]) -> SpecOption:
    """Add annotations (later values win), e.g. gVisor's sandbox markers."""
    added = dict(annotations)

    def apply(spec: dict[str, Any]) -> None:
        spec.setdefault("annotations", {}).update(added)

    return apply


def with_rlimits(nofile: tuple[int, int] = (1024, 1024)) -> SpecOption:
    """RLIMIT_NOFILE as (soft, hard), lowered to this process's hard limit.

    Without CAP_SYS_RESOURCE (which skiff's hosts lack) runc cannot raise a
    hard limit above its own, and the container would fail to start; so a
    larger request gets what the host allows instead.
    """
    soft, hard = nofile
    if not 0 <= soft <= hard:
        raise InvalidInput(f"an rlimit needs 0 <= soft <= hard, not {nofile}")
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if host_hard != resource.RLIM_INFINITY:
        hard = min(hard, host_hard)
        soft = min(soft, hard)

    def apply(spec: dict[str, Any]) -> None:
        rlimits = [r for r in spec["process"].get("rlimits", ()) if r["type"] != "RLIMIT_NOFILE"]
        rlimits.append({"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft})
        spec["process"]["rlimits"] = rlimits

    return apply


def with_oom_score_adj(score: int) -> SpecOption:
    """The process's oom_score_adj (-1000 never killed … 1000 killed first).

    A score below skiff's own needs CAP_SYS_RESOURCE, which runc lacks here.
    """
    if not -1000 <= score <= 1000:
        raise InvalidInput(f"oom_score_adj ranges from -1000 to 1000, not {score}")

    def apply(spec: dict[str, Any]) -> None:
        spec["process"]["oomScoreAdj"] = score

    return apply


def default_spec(*options: SpecOption, network_path: str | None = None,
                 cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (),
                 arch: str | None = None, privileged: bool = False) -> dict[str, Any]:
    """The hardened spec every skiff container starts from, with ``options`` applied after.

    Namespaces (joining ``network_path`` when given), default mounts, the
    default capabilities adjusted by ``cap_add``/``cap_drop``, no new
    privileges, masked and read-only paths and RLIMIT_NOFILE 1024. The
    seccomp filter is resolved last, for the final bounding set, unless an
    option set one. ``privileged`` applies :func:`with_privileged` before
    ``options`` and sets no seccomp filter.
    """
    spec = build_spec(
        with_namespaces(network_path),
        with_default_mounts(),
        with_capabilities(cap_add, cap_drop),
        with_no_new_privileges(True),
        with_masked_paths(),
        with_readonly_paths(),
        with_rlimits(),
        *((with_privileged(),) if privileged else ()),
        *options,
    )
    if "seccomp" not in spec["linux"] and not privileged:
        with_default_seccomp(arch)(spec)
    return spec

