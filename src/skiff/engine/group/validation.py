"""The engine's own checks of a group definition, before anything is created.

The API validates what ACI validates (:mod:`skiff.models`); the engine does
not trust its caller to have done so. A definition that cannot run (no
container, an isolation no runtime driver runs, two containers of one name, a
mount of a volume the group does not define, two volumes at one path) is
refused here with :class:`~skiff.errors.InvalidGroupSpec`, before a pull, a
network namespace or a volume is spent on it.
"""

from __future__ import annotations

import os

from skiff.core.spec import GroupSpec
from skiff.engine.runtime.registry import ISOLATIONS
from skiff.errors import InvalidGroupSpec


def validate(spec: GroupSpec) -> None:
    """Refuse definitions that cannot run, before anything is created."""
    if not spec.containers:
        raise InvalidGroupSpec("a container group needs at least one container")
    if spec.isolation not in ISOLATIONS:
        raise InvalidGroupSpec(f"unknown isolation {spec.isolation!r} "
                               f"({' or '.join(ISOLATIONS)})")
    if spec.isolation == "sandbox" and any(c.resources.gpu_count for c in spec.containers):
        raise InvalidGroupSpec("GPUs cannot be given to a gVisor sandbox on this node (its "
                               "runsc predates gVisor's GPU support)")
    volumes = {v.name for v in spec.volumes}
    names: set[str] = set()
    for container in (*spec.init_containers, *spec.containers):
        if container.name in names:
            raise InvalidGroupSpec(f"two containers are named {container.name!r}")
        names.add(container.name)
        paths: set[str] = set()
        for mount in container.volume_mounts:
            if mount.name not in volumes:
                raise InvalidGroupSpec(f"container {container.name} mounts volume "
                                       f"{mount.name!r}, which the group does not define")
            path = os.path.normpath(mount.mount_path)
            if not mount.mount_path.startswith("/"):
                raise InvalidGroupSpec(f"container {container.name}: mount path "
                                       f"{mount.mount_path!r} is not absolute")
            if path in paths:
                raise InvalidGroupSpec(f"container {container.name} mounts two volumes at "
                                       f"{mount.mount_path}")
            paths.add(path)

