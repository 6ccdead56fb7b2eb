"""The options of a spec that grant or withhold privilege.

What a process in a container may do to the kernel is decided by a few parts
of the spec that belong together: the capability sets, no-new-privileges,
the seccomp filter (resolved for the final bounding set, and refusing new user
namespaces to containers without CAP_SYS_ADMIN), and Docker's ``--privileged``,
which lifts them all and hands over the host's devices. Kept apart from the
generic options of :mod:`skiff.engine.spec.options`, they can be read and reviewed as
one security surface; :func:`~skiff.engine.spec.options.default_spec` applies the
defaults, :func:`security_options` what a securityContext adds.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.core.capabilities import ALL_CAPABILITIES, DEFAULT_CAPABILITIES
from skiff.core.seccomp import convert as convert_seccomp
from skiff.core.seccomp import goarch, kernel_version
from skiff.core.spec import SecurityContext
from skiff.engine.spec.seccomp import default_seccomp
from skiff.errors import InvalidInput
from skiff.settings import Platform

if TYPE_CHECKING:  # spec imports this module for default_spec
    from skiff.engine.spec.options import SpecOption

#: clone(2)'s and unshare(2)'s flag for a new user namespace (linux/sched.h).
_CLONE_NEWUSER = 0x10000000


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
    """``linux.seccomp``, already in OCI form (see :mod:`skiff.engine.spec.seccomp`)."""

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
    masked or read-only paths and no seccomp filter
    (:func:`~skiff.engine.spec.options.default_spec` with ``privileged=True`` leaves them
    out). Root in such a container is root on the host.
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


def security_options(context: SecurityContext, arch: str | None = None) -> list[SpecOption]:
    """The options a securityContext adds to :func:`~skiff.engine.spec.options.default_spec`
    (whose ``cap_add``, ``cap_drop`` and ``privileged`` take the rest):
    no-new-privileges lifted only when ``allowPrivilegeEscalation`` is true, and a
    custom seccomp profile in place of the default one (none at all when privileged)."""
    options: list[SpecOption] = []
    if context.allow_privilege_escalation or context.privileged:
        options.append(with_no_new_privileges(False))
    if context.seccomp_profile is not None and not context.privileged:
        options.append(with_custom_seccomp(context.seccomp_profile, arch))
    return options
