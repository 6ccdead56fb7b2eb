"""One container's OCI spec, from its group's definition and what was prepared for it.

:mod:`skiff.engine.spec.options` knows the OCI format and its small options; this
module knows a group: which image config, environment, user, hostname,
network files, volumes and limits a container of it gets. What depends on the
runtime the group runs on is its driver's
(:class:`~skiff.engine.runtime.driver.RuntimeDriver`): the container's cgroup,
whether it runs in a user namespace, and the driver's part of the spec (a
gVisor sandbox's member, its limits the sandbox's). Plain functions of what
they need, so the supervisor only decides *when* a container starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skiff.core.spec import CONFIG_MAP_ROOT, AzureFileVolume, Container, GroupSpec
from skiff.engine.group.record import Group, container_id
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.spec import options as oci
from skiff.engine.spec.nvidia import with_gpus
from skiff.engine.spec.security import security_options, without_compat_syscalls
from skiff.engine.spec.userns import with_user_namespace
from skiff.engine.spec.users import resolve_run_as
from skiff.errors import InvalidGroupSpec
from skiff.settings import Settings

#: Processes per container: generous for real programs, fatal to fork bombs.
PIDS_LIMIT = 4096
#: CPU cores a container may use while runc prepares it (its seccomp filter is
#: compiled in the container's cgroup); the real limit applies before it starts.
STARTUP_CPU_CORES = 1.0


def volume_owner(driver: RuntimeDriver, spec: GroupSpec) -> int | None:
    """The host id that owns the group's volumes: its remapped containers' root."""
    remapped = [driver.user_namespace(spec, c)
                for c in (*spec.init_containers, *spec.containers)]
    return next((u[0] for u in remapped if u is not None), None)


def container_spec(settings: Settings, group: Group, container: Container, rootfs: Path,
                   driver: RuntimeDriver) -> dict[str, Any]:
    """The OCI spec of ``container`` of ``group``, its rootfs at ``rootfs``, as the
    group's ``driver`` runs it."""
    image = group.images[container.name]
    config = image.config
    args = list(container.command) if container.command else [*config.entrypoint,
                                                               *config.cmd]
    env = merge_env(config.env, [(e.name, e.value) for e in container.env])
    security = container.security
    if security.privileged and not settings.api.allow_privileged:
        # The API refuses it; a body stored before the setting changed gets here.
        raise InvalidGroupSpec(f"container {container.name} is privileged, which this "
                               "node does not allow (skiff serve --allow-privileged)")
    uid, gid, gids = resolve_run_as(rootfs, config.user, security.run_as_user,
                                    security.run_as_group)
    attachment = group.attachment
    assert attachment is not None
    options = [
        oci.with_process(args, env, cwd=config.working_dir or "/", uid=uid, gid=gid,
                         additional_gids=gids),
        oci.with_root(rootfs),
        oci.with_hostname(hostname(group.spec.name)),
        oci.with_bind(attachment.hosts_file, "/etc/hosts", readonly=True),
        oci.with_bind(attachment.hostname_file, "/etc/hostname", readonly=True),
        oci.with_bind(attachment.resolv_conf, "/etc/resolv.conf", readonly=True),
        # At least a core while runc sets up (see cgroups.py); the runc driver
        # tightens it before the container starts (a sandbox's member has none).
        oci.with_resources(max(container.resources.effective_cpu, STARTUP_CPU_CORES),
                           container.resources.effective_memory_bytes, PIDS_LIMIT),
        oci.with_cgroups_path(driver.container_cgroup(group.spec.id, cid(group, container))),
    ]
    # A bind of a read-only mount is read-write unless it says so: an azureFile volume's
    # own readOnly holds in every container that mounts it.
    shared_ro = {v.name for v in group.spec.volumes
                 if isinstance(v.source, AzureFileVolume) and v.source.read_only}
    for mount in container.volume_mounts:
        options.append(oci.with_bind(group.volume_paths[mount.name], mount.mount_path,
                                     readonly=mount.read_only or mount.name in shared_ro))
    if container.config_map is not None:  # after the volumes: none hides it
        options.append(oci.with_bind(group.config_map_paths[container.name],
                                     f"{CONFIG_MAP_ROOT}/{container.name}", readonly=True))
    userns = driver.user_namespace(group.spec, container)
    if userns is not None:
        for what, value in (("user", uid), ("group", gid), ("group", max(gids, default=0))):
            if value >= userns[1]:
                raise InvalidGroupSpec(f"container {container.name} runs as {what} "
                                       f"{value}, beyond the {userns[1]} ids its user "
                                       "namespace maps")
        options.append(with_user_namespace(*userns))
    options.extend(security_options(security))
    gpus = group.gpu_parts.get(container.name)
    if container.resources.gpu_count:
        if gpus is None:  # the supervisor picks them before any container is made
            raise InvalidGroupSpec(f"container {container.name} asks for GPUs but was "
                                   "given none")
        options.append(with_gpus(gpus))
    spec = oci.default_spec(*options, network_path=str(attachment.netns_path),
                            cap_add=security.cap_add, cap_drop=security.cap_drop,
                            privileged=security.privileged)
    if not settings.runtime.compat_syscalls:
        without_compat_syscalls(spec)
    return driver.adapt_spec(group.spec, spec)


def cid(group: Group, container: Container) -> str:
    """The runtime id of ``container`` of ``group``."""
    view = group.view.container(container.name)
    return view.cid if view is not None else container_id(group.spec.id, container.name)


def hostname(name: str) -> str:
    return name[:63]


def merge_env(image_env: tuple[str, ...], extra: list[tuple[str, str]]) -> list[str]:
    """The image's environment, then the group's: a later name replaces an earlier one."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for key, value in extra:
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]
