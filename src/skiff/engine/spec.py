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

:func:`resolve_user` turns an image's ``User`` into numeric ids by reading
the image's own ``/etc/passwd`` and ``/etc/group``. The rootfs is untrusted:
those files may be symlinks aimed at the host's, so paths are resolved one
component at a time with ``O_NOFOLLOW`` and symlinks are followed by hand,
never leaving the rootfs (what runc's securejoin does).
"""

from __future__ import annotations

import errno
import os
import resource
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from skiff.engine.model import SecurityContext
from skiff.engine.seccomp import convert as convert_seccomp
from skiff.engine.seccomp import default_seccomp, goarch, kernel_version
from skiff.errors import InvalidInput, UserNotFound
from skiff.settings import Platform

SpecOption = Callable[[dict[str, Any]], None]

#: The OCI runtime spec version written; runc 1.1 reads 1.0.x.
OCI_VERSION = "1.0.2"

#: Docker's default capabilities without CAP_NET_RAW: raw sockets allow ARP
#: and DNS spoofing on the group bridge, and ping works without them through
#: ICMP datagram sockets. Podman dropped NET_RAW from its defaults likewise.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

#: Every capability Linux 6.x defines, by number (the order of ``CapBnd`` bits).
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

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
#: Ids are unsigned 32-bit, and -1 (4294967295) means "unchanged" to the kernel.
_MAX_ID = 2**31 - 1
#: The longest /etc/passwd or /etc/group read: an image could plant a huge
#: file to exhaust our memory. Real ones are a few kilobytes.
_MAX_ID_FILE = 4 << 20
#: Symlinks followed while resolving one path, Linux's own limit (MAXSYMLINKS).
_MAX_SYMLINKS = 40
#: clone(2)'s and unshare(2)'s flag for a new user namespace (linux/sched.h).
_CLONE_NEWUSER = 0x10000000




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


def _cap_name(name: str) -> str:
    upper = name.upper()
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in ALL_CAPABILITIES:
        raise InvalidInput(f"unknown capability {name!r}")
    return full


def capability_set(add: Iterable[str] = (), drop: Iterable[str] = ()) -> list[str]:
    """Docker's rule: the defaults, less ``drop``, plus ``add``; ``ALL`` works in either.

    Names may omit ``CAP_`` and any case is accepted.
    """
    adds = [a.upper() for a in add]
    drops = [d.upper() for d in drop]
    caps = [] if "ALL" in drops else list(DEFAULT_CAPABILITIES)
    removed = {_cap_name(d) for d in drops if d != "ALL"}
    caps = [c for c in caps if c not in removed]
    for name in ALL_CAPABILITIES if "ALL" in adds else (_cap_name(a) for a in adds):
        if name not in caps:
            caps.append(name)
    return caps


def with_capabilities(add: Iterable[str] = (), drop: Iterable[str] = ()) -> SpecOption:
    """The bounding, effective and permitted sets (see :func:`capability_set`).

    The inheritable and ambient sets stay empty for every user: runc then gives
    a non-root process no capabilities after exec, and no set leaks to the
    programs it runs (CVE-2022-24769, which moby and containerd fixed alike).
    """
    caps = capability_set(add, drop)

    def apply(spec: dict[str, Any]) -> None:
        spec["process"]["capabilities"] = {
            "bounding": list(caps), "effective": list(caps), "permitted": list(caps),
        }

    return apply


def with_no_new_privileges(enabled: bool = True) -> SpecOption:
    """PR_SET_NO_NEW_PRIVS: setuid binaries and file capabilities gain nothing."""

    def apply(spec: dict[str, Any]) -> None:
        spec["process"]["noNewPrivileges"] = enabled

    return apply


def with_seccomp(profile: Mapping[str, Any]) -> SpecOption:
    """``linux.seccomp``, already in OCI form (see :mod:`skiff.engine.seccomp`)."""

    def apply(spec: dict[str, Any]) -> None:
        spec["linux"]["seccomp"] = profile

    return apply


def without_new_user_namespaces(seccomp: dict[str, Any]) -> None:
    """Make a resolved filter refuse new user namespaces: ``clone`` and ``unshare``
    with CLONE_NEWUSER fail with EPERM, ``clone3`` (whose flags seccomp cannot
    read) with ENOSYS, so that libcs fall back to ``clone``.

    containers-common's profile allows all three to everyone (Podman nests
    rootless containers), but a user namespace hands its creator every
    capability over the kernel code it reaches (new mounts, netfilter, cgroup
    and filesystem parsers): the road most container escapes of recent years
    took (CVE-2022-0185, CVE-2022-0492, CVE-2023-0386). Docker's and
    containerd's default profiles refuse them unless the container holds
    CAP_SYS_ADMIN; so does skiff's, through :func:`with_default_seccomp`.
    """
    syscalls = []
    for rule in seccomp.get("syscalls", ()):
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            names = [n for n in rule["names"] if n not in ("clone", "clone3", "unshare")]
            if not names:
                continue
            rule = {**rule, "names": names}
        syscalls.append(rule)
    # clone's flags are its second argument on s390, its first elsewhere.
    s390 = any(a.startswith("SCMP_ARCH_S390") for a in seccomp.get("architectures", ()))
    for name, index in (("clone", 1 if s390 else 0), ("unshare", 0)):
        for value, action in ((0, {"action": "SCMP_ACT_ALLOW"}),
                              (_CLONE_NEWUSER, {"action": "SCMP_ACT_ERRNO",
                                                "errnoRet": errno.EPERM})):
            syscalls.append({"names": [name], **action, "args": [
                {"index": index, "value": _CLONE_NEWUSER, "valueTwo": value,
                 "op": "SCMP_CMP_MASKED_EQ"}]})
    syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    seccomp["syscalls"] = syscalls


def with_default_seccomp(arch: str | None = None) -> SpecOption:
    """containers-common's profile, resolved for the bounding set the spec has *now*;
    without CAP_SYS_ADMIN in it, no new user namespaces (see
    :func:`without_new_user_namespaces`)."""

    def apply(spec: dict[str, Any]) -> None:
        caps = spec["process"].get("capabilities", {}).get("bounding", ())
        seccomp = default_seccomp(caps, arch)
        if "CAP_SYS_ADMIN" not in caps:
            without_new_user_namespaces(seccomp)
        spec["linux"]["seccomp"] = seccomp

    return apply


def with_custom_seccomp(profile: Mapping[str, Any], arch: str | None = None) -> SpecOption:
    """A Docker-format ``profile`` (a securityContext's) in place of the default one,
    resolved like it for the bounding set the spec has *now*."""
    doc = dict(profile)

    def apply(spec: dict[str, Any]) -> None:
        caps = spec["process"].get("capabilities", {}).get("bounding", ())
        spec["linux"]["seccomp"] = convert_seccomp(
            doc, caps=caps, arch=goarch(arch or Platform.host().architecture),
            kernel=kernel_version())

    return apply


def with_user_namespace(host_id: int, size: int) -> SpecOption:
    """A new user namespace: ids 0..size-1 inside are ``host_id``.. outside, for users
    and groups alike, so the container's root is an unprivileged user on the host.

    The rootfs and every mount source must be reachable by those host ids (see
    :mod:`skiff.engine.idmap`); runc itself bind-mounts the default devices, which a
    user namespace may not create.

    Apply it after :func:`with_namespaces` and the bind mounts, which it gives the flags
    of their sources' mounts (see :func:`_keep_locked_flags`). A new sysfs can be
    mounted only by the owner of the network namespace, and a joined one (a group's)
    belongs to the host: /sys then becomes a read-only recursive bind of the host's
    sysfs (a non-recursive one would uncover what the host's submounts hide, which the
    kernel refuses in a user namespace). It shows the host's network interfaces in
    /sys/class/net where a sysfs of its own shows the group's, as with rootless Podman;
    the submounts stay writable only to their owners, the host's root, and
    /sys/fs/cgroup is covered by the container's own.
    """
    if host_id <= 0 or size <= 0 or host_id + size > 2**32 - 1:
        raise InvalidInput(f"a user namespace needs host ids above 0, not {host_id}+{size}")
    mapping = [{"containerID": 0, "hostID": host_id, "size": size}]

    def apply(spec: dict[str, Any]) -> None:
        namespaces = [n for n in spec["linux"].get("namespaces", []) if n["type"] != "user"]
        spec["linux"]["namespaces"] = [*namespaces, {"type": "user"}]
        spec["linux"]["uidMappings"] = [dict(m) for m in mapping]
        spec["linux"]["gidMappings"] = [dict(m) for m in mapping]
        joined = any(n["type"] == "network" and n.get("path") for n in namespaces)
        for mount in spec["mounts"]:
            if joined and mount["destination"] == "/sys" and mount["type"] == "sysfs":
                mount.update(type="bind", source="/sys",
                             options=["rbind", "nosuid", "noexec", "nodev", "ro"])
            elif mount["type"] == "bind":
                _keep_locked_flags(mount)

    return apply


#: statvfs flags that a user namespace may not clear from a bind of a mount that
#: has them (the kernel locks them), with the OCI option that keeps them.
_LOCKED_FLAGS = ((os.ST_RDONLY, "ro"), (os.ST_NOSUID, "nosuid"), (os.ST_NODEV, "nodev"),
                 (os.ST_NOEXEC, "noexec"))


def _keep_locked_flags(mount: dict[str, Any]) -> None:
    """Add to a bind mount's options the flags its source's mount has (a secret
    volume's ro and noexec): runc 1.1 remounts binds with only the flags asked for,
    and inside a user namespace the kernel refuses (EPERM) to clear locked ones."""
    try:
        flags = os.statvfs(mount["source"]).f_flag
    except OSError:
        return  # runc reports a missing source better than we could
    options = mount.setdefault("options", [])
    for flag, option in _LOCKED_FLAGS:
        if flags & flag and option not in options:
            options.append(option)


def host_devices(root: Path = Path("/dev")) -> list[dict[str, Any]]:
    """The host's device nodes under ``root`` as OCI ``linux.devices`` entries.

    What Docker gives a privileged container: every char and block device,
    subdirectories included, except those a container has of its own (its pts
    instance, shm, mqueue) and the console.
    """
    skip = {"pts", "shm", "mqueue", "console", "ptmx"}
    found: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in sorted((*filenames, *dirnames)):
            if rel == "." and name in skip:
                continue
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # gone meanwhile
            kind = "c" if stat.S_ISCHR(info.st_mode) else "b" if stat.S_ISBLK(info.st_mode) else ""
            if kind:
                found.append({"path": path if root == Path("/dev") else
                              "/dev/" + os.path.relpath(path, root),
                              "type": kind, "major": os.major(info.st_rdev),
                              "minor": os.minor(info.st_rdev),
                              "fileMode": stat.S_IMODE(info.st_mode),
                              "uid": info.st_uid, "gid": info.st_gid})
    return found


def host_capabilities(status: Path = Path("/proc/self/status")) -> list[str]:
    """The capabilities in this process's bounding set: all a container can be given
    (a host that is itself a container may lack some, such as CAP_SYS_RESOURCE)."""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return [c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1]
    return list(ALL_CAPABILITIES)


def with_privileged(devices: Iterable[Mapping[str, Any]] | None = None) -> SpecOption:
    """What Docker's ``--privileged`` gives: every capability the host has, the host's
    devices (all allowed in the devices cgroup), /sys and the cgroups writable, no
    masked or read-only paths and no seccomp filter (:func:`default_spec` with
    ``privileged=True`` leaves them out). Root in such a container is root on the host.
    """
    nodes = [dict(d) for d in (host_devices() if devices is None else devices)]
    caps = host_capabilities()

    def apply(spec: dict[str, Any]) -> None:
        spec["process"]["capabilities"] = {
            "bounding": list(caps), "effective": list(caps), "permitted": list(caps),
        }
        spec["linux"]["devices"] = [dict(d) for d in nodes]
        spec["linux"].setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
        for key in ("maskedPaths", "readonlyPaths", "seccomp"):
            spec["linux"].pop(key, None)
        for mount in spec["mounts"]:
            if mount["destination"] in ("/sys", "/sys/fs/cgroup"):
                mount["options"] = [o for o in mount["options"] if o != "ro"]

    return apply


def without_compat_syscalls(spec: dict[str, Any]) -> None:
    """Keep the seccomp filter to the native syscall ABI (x86_64), dropping the
    32-bit ones (i386, x32) Docker's profile also allows.

    Applied after the filter is resolved. The compat syscall layer is kernel
    attack surface few containers need, and runc compiles a filter per ABI:
    this takes runc's create from ≈ 35 to ≈ 26 ms here. 32-bit programs then
    get ENOSYS-like refusals for every syscall.
    """
    seccomp = spec["linux"].get("seccomp")
    if seccomp and seccomp.get("architectures"):
        seccomp["architectures"] = seccomp["architectures"][:1]


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


def security_options(context: SecurityContext, arch: str | None = None) -> list[SpecOption]:
    """The options a securityContext adds to :func:`default_spec` (whose ``cap_add``,
    ``cap_drop`` and ``privileged`` take the rest): no-new-privileges lifted only
    when ``allowPrivilegeEscalation`` is true, and a custom seccomp profile in
    place of the default one (none at all when privileged)."""
    options: list[SpecOption] = []
    if context.allow_privilege_escalation or context.privileged:
        options.append(with_no_new_privileges(False))
    if context.seccomp_profile is not None and not context.privileged:
        options.append(with_custom_seccomp(context.seccomp_profile, arch))
    return options


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


# --- users ---------------------------------------------------------------------------------


def _open_in_root(root_fd: int, path: str) -> int | None:
    """Open ``path`` for reading as if ``root_fd`` were ``/``, or None if it is absent.

    Each component is opened with O_NOFOLLOW relative to the previous one;
    symlinks are read and followed by hand, absolute targets and ``..``
    stopping at the root, so nothing outside the rootfs is ever opened.
    Anything but a regular file counts as absent (a FIFO would block us).
    """
    pending = [c for c in reversed(path.split("/")) if c]
    dirs = [root_fd]  # the open directories from the root down; dirs[0] is not ours to close
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == ".":
                continue
            if name == "..":
                if len(dirs) > 1:
                    os.close(dirs.pop())
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirs[-1])
            except (FileNotFoundError, NotADirectoryError):
                return None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink("", dir_fd=fd)  # the link we hold, not a new lookup
                finally:
                    os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, f"too many symlinks resolving {path}")
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                pending.extend(c for c in reversed(target.split("/")) if c)
                continue
            if pending:
                if not stat.S_ISDIR(mode):
                    os.close(fd)
                    return None
                dirs.append(fd)
                continue
            os.close(fd)
            if not stat.S_ISREG(mode):
                return None
            # Reopen the same name for reading; O_NONBLOCK so that a FIFO swapped in
            # meanwhile cannot block, checked again below.
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                              dir_fd=dirs[-1])
            if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                os.close(file_fd)
                return None
            return file_fd
        return None
    finally:
        for fd in dirs[1:]:
            os.close(fd)


def _read_in_root(rootfs: Path, path: str) -> str | None:
    """The text of ``path`` inside ``rootfs``, or None where it does not exist."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserNotFound(f"cannot open the rootfs {rootfs}: {exc.strerror}") from exc
    try:
        fd = _open_in_root(root_fd, path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_ID_FILE + 1)
    except OSError as exc:
        raise UserNotFound(f"cannot read {path} in the image: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
    if len(data) > _MAX_ID_FILE:
        raise UserNotFound(f"{path} in the image is larger than {_MAX_ID_FILE >> 20} MiB")
    return data.decode("utf-8", errors="replace")


def _entries(text: str | None, min_fields: int) -> list[list[str]]:
    """The colon-separated lines of a passwd or group file, comments and blanks skipped."""
    if text is None:
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= min_fields and _is_decimal(fields[2]):
            rows.append(fields)
    return rows


def _is_decimal(text: str) -> bool:
    # ASCII only: str.isdigit() is also true of "١٢" or "²", which int() would take.
    return text.isascii() and text.isdigit()


def _numeric(text: str) -> int | None:
    if not _is_decimal(text):
        return None
    value = int(text)
    if value > _MAX_ID:
        raise UserNotFound(f"id {value} is out of range (0 to {_MAX_ID})")
    return value


def resolve_run_as(rootfs: Path, image_user: str, run_as_user: int | None = None,
                   run_as_group: int | None = None) -> tuple[int, int, tuple[int, ...]]:
    """The image's user with a securityContext's ``runAsUser``/``runAsGroup`` in place.

    ``runAsUser`` replaces the image's ``User`` as a numeric ``--user`` would (its
    group and supplementary groups from the image's files, gid 0 without an
    entry); ``runAsGroup`` then replaces the primary group.
    """
    if run_as_user is None:
        uid, gid, extra = resolve_user(rootfs, image_user)
    elif run_as_user <= _MAX_ID:
        uid, gid, extra = resolve_user(rootfs, str(run_as_user))
    else:  # beyond what passwd files hold: the id as given
        uid, gid, extra = run_as_user, 0, ()
    if run_as_group is not None:
        gid = run_as_group
        extra = tuple(g for g in extra if g != gid)
    return uid, gid, extra


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, tuple[int, ...]]:
    """(uid, gid, additional gids) for an image's ``User``, as runc's GetExecUser reads it.

    ``user`` is ``""`` (root), ``name``, ``uid``, ``name:group`` or ``uid:gid``
    (either side numeric or a name). A numeric user with no passwd entry keeps
    gid 0; a matched user's gid comes from passwd and, unless a group is
    given, its supplementary groups from /etc/group. A name that the image's
    files do not hold raises :class:`UserNotFound`; missing files leave only
    numeric ids usable.
    """
    user_part, _, group_part = user.partition(":")
    uid_arg = _numeric(user_part)
    gid_arg = _numeric(group_part)
    passwd = _entries(_read_in_root(rootfs, "/etc/passwd"), 4)

    uid, gid, name = 0, 0, ""
    if user_part == "":
        matches = [e for e in passwd if int(e[2]) == 0]
    elif uid_arg is not None:
        matches = [e for e in passwd if int(e[2]) == uid_arg]
    else:
        matches = [e for e in passwd if e[0] == user_part]
    if matches:
        entry = matches[0]  # first match wins, as in runc
        name, uid = entry[0], int(entry[2])
        gid = int(entry[3]) if _is_decimal(entry[3]) else 0
    elif uid_arg is not None:
        uid = uid_arg
    elif user_part:
        raise UserNotFound(f"user {user_part!r} is not in the image's /etc/passwd")

    extra: list[int] = []
    if group_part or name:
        groups = _entries(_read_in_root(rootfs, "/etc/group"), 3)
        if group_part:
            if gid_arg is not None:
                gid = gid_arg
            else:
                found = [g for g in groups if g[0] == group_part]
                if not found:
                    raise UserNotFound(f"group {group_part!r} is not in the image's /etc/group")
                gid = int(found[0][2])
        else:
            # Supplementary groups only in the implicit form, as runc does.
            for g in groups:
                members = g[3].split(",") if len(g) > 3 else []
                if name in members:
                    extra.append(int(g[2]))
    return uid, gid, tuple(g for g in dict.fromkeys(extra) if g != gid)
