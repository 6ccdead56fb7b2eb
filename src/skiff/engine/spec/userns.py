"""The user namespace of a remapped container (``--userns-remap``).

A user namespace changes more of the spec than its own entry: the id
mappings, the flags of every bind mount (the kernel locks a source mount's
ro, nosuid, nodev and noexec for a user namespace, and runc 1.1 would try to
clear them), and /sys where the group's network namespace is joined. One
option, :func:`with_user_namespace`, makes all of these changes together;
the rootfs side (idmapped layers) is :mod:`skiff.engine.idmap`'s.
"""

from __future__ import annotations

import os
from typing import Any

from skiff.engine.spec.options import SpecOption
from skiff.errors import InvalidInput


def with_user_namespace(host_id: int, size: int) -> SpecOption:
    """A new user namespace: ids 0..size-1 inside are ``host_id``.. outside, for users
    and groups alike, so the container's root is an unprivileged user on the host.

    The rootfs and every mount source must be reachable by those host ids (see
    :mod:`skiff.engine.idmap`); runc itself bind-mounts the default devices, which a
    user namespace may not create.

    Apply it after :func:`~skiff.engine.spec.options.with_namespaces` and the bind mounts,
    which it gives the flags of their sources' mounts (see :func:`_keep_locked_flags`).
    A new sysfs can be mounted only by the owner of the network namespace, and a
    joined one (a group's) belongs to the host: /sys then becomes a read-only
    recursive bind of the host's sysfs (a non-recursive one would uncover what the
    host's submounts hide, which the kernel refuses in a user namespace). It shows the
    host's network interfaces in /sys/class/net where a sysfs of its own shows the
    group's, as with rootless Podman; the submounts stay writable only to their owners,
    the host's root, and /sys/fs/cgroup is covered by the container's own.
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
