"""A container group's volumes on the host, ready to be bind-mounted into its containers.

Each volume of a group is one directory, ``<data root>/volumes/<group id>/<volume
name>``, which the runtime bind-mounts (read-only when a ``volumeMount`` says
so: that is the runtime's job, not this module's). The group directory is
mode 0700: containers reach their volumes through bind mounts made by root,
and no other user of the host can look in. Under ``--userns-remap`` runc makes
those mounts as the container's root, a mapped host id: the group directory
then belongs to that id (still 0700), the volumes' root lets it through
(0711), and a gitRepo clone is given to it, to be as writable as without.

Each kind of volume source is a driver (see :mod:`skiff.engine.volumes.driver`),
looked up by the source's type:

- ``emptyDir``, here: a directory that lives as long as the group, writable by
  any user of any container (mode 0777, as in Kubernetes).
- ``secret``: a read-only tmpfs of decoded files (:mod:`skiff.engine.volumes.secret`).
- ``gitRepo``: a clone by a git that trusts nothing of the repository's
  (:mod:`skiff.engine.volumes.gitrepo`).

Containers' config maps are no volumes in ACI's API, but files the same way:
:attr:`Volumes.config_maps` (:mod:`skiff.engine.volumes.configmaps`), off the
group's disk, removed by :meth:`Volumes.cleanup` with the rest.

:meth:`Volumes.prepare` checks every volume before it touches the disk, so bad
input leaves nothing behind; a failure half-way removes what that call made.
:meth:`Volumes.cleanup` needs no driver and no spec: it unmounts whatever is
mounted below the group's directory and deletes it, so a group is cleaned up
even after a crash lost its spec. Calls for one group must not overlap: the
supervisor serialises a group's lifecycle.

With a disk limit (:class:`~skiff.settings.DiskSettings`), the group's directory
is the mount point of the group's own filesystem (:mod:`skiff.engine.volumes.disks`):
its emptyDir volumes and its containers' writable layers (:meth:`Volumes.layers`,
``.layers`` below it, a name no volume can have) count against one limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from skiff.core.spec import AzureFileVolume, EmptyDirVolume, GitRepoVolume, SecretVolume, Volume
from skiff.engine.volumes.configmaps import ConfigMaps
from skiff.engine.volumes.disks import LAYERS, GroupDisks
from skiff.engine.volumes.driver import VolumeDriver, is_mount_point, remove_tree
from skiff.engine.volumes.gitrepo import GitRepoDriver
from skiff.engine.volumes.secret import SecretDriver
from skiff.errors import InvalidVolume, SkiffError, UnsupportedVolumeType, VolumeError
from skiff.settings import VolumeSettings


class EmptyDirDriver:
    """A plain directory, writable by every user of every container."""

    def check(self, name: str, source: EmptyDirVolume) -> None:
        pass

    def ready(self, path: Path, source: EmptyDirVolume) -> bool:
        return path.is_dir() and not path.is_symlink() and not is_mount_point(path)

    def create(self, name: str, path: Path, source: EmptyDirVolume) -> None:
        path.mkdir()
        # Containers may run as any user; host users are kept out by the group dir.
        os.chmod(path, 0o777)  # noqa: S103


def default_drivers(settings: VolumeSettings, *,
                    confine: Callable[[Sequence[str]], list[str]] | None = None,
                    ) -> dict[type[Any], VolumeDriver[Any]]:
    """The drivers of every volume source skiff knows, by source type; ``confine``
    makes the fetches of gitRepo volumes run in the node's fetch namespace."""
    return {
        EmptyDirVolume: EmptyDirDriver(),
        SecretVolume: SecretDriver(settings.secret_size_bytes),
        GitRepoVolume: GitRepoDriver(settings.git, settings.git_timeout_s, confine=confine),
    }


def _check_component(kind: str, value: str) -> None:
    """A group id or volume name is one plain path component (dot names are ours)."""
    if not value or "/" in value or "\0" in value or value.startswith(".") or len(value) > 255:
        raise InvalidVolume(f"invalid {kind} {value[:80]!r}")


def _chown_tree(path: Path, owner: int) -> None:
    """Give ``path`` and everything below it to ``owner`` (user and group), links not followed."""
    os.chown(path, owner, owner, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), owner, owner, follow_symlinks=False)


class Volumes:
    """The volumes of every group, under ``<data_root>/volumes/<group id>/<volume name>``."""

    def __init__(self, data_root: Path, settings: VolumeSettings | None = None, *,
                 drivers: Mapping[type[Any], VolumeDriver[Any]] | None = None,
                 confine: Callable[[Sequence[str]], list[str]] | None = None,
                 disks: GroupDisks | None = None) -> None:
        self.root = data_root / "volumes"
        self.settings = settings or VolumeSettings()
        #: Source type → driver; ``drivers`` adds or replaces kinds (file shares).
        self.drivers = {**default_drivers(self.settings, confine=confine), **(drivers or {})}
        #: The groups' disks, when what a group writes is limited; None: no limit.
        self.disks = disks
        #: The containers' config maps (files changed in place), beside the volumes.
        self.config_maps = ConfigMaps(data_root)

    def _group_dir(self, group_id: str) -> Path:
        _check_component("group id", group_id)
        return self.root / group_id

    def _driver(self, volume: Volume) -> VolumeDriver[Any]:
        driver = self.drivers.get(type(volume.source))
        if driver is None:
            raise UnsupportedVolumeType(f"volume {volume.name!r}: volumes of type "
                                        f"{type(volume.source).__name__} are not supported")
        return driver

    def prepare(self, group_id: str, volumes: Sequence[Volume], *,
                owner: int | None = None) -> dict[str, Path]:
        """Make the group's volumes; returns volume name → host directory.

        ``owner``: the host id of the group's containers' root when they run in a
        user namespace (see the module's docstring).

        Idempotent: a volume already in place is kept as it is (an emptyDir's
        files, a clone), one that is not (half made, or of another kind) is
        made anew. Every volume is checked first; on a failure, whatever this
        call made is removed again and the error raised.
        """
        group = self._group_dir(group_id)
        plan: list[tuple[Volume, VolumeDriver[Any]]] = []
        for volume in volumes:
            _check_component("volume name", volume.name)
            if any(volume.name == seen.name for seen, _ in plan):
                raise InvalidVolume(f"volume {volume.name!r} is given twice")
            driver = self._driver(volume)
            driver.check(volume.name, volume.source)
            plan.append((volume, driver))

        fresh_group = not group.exists()
        made: list[Path] = []
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.disks is not None:
                self.disks.attach(group_id, group)
            group.mkdir(mode=0o700, exist_ok=True)
            os.chmod(group, 0o700)  # whatever the umask: host users stay out
            for volume, driver in plan:
                path = group / volume.name
                # A share's view is its owner's (see skiff.engine.volumes.azurefile).
                mine = {"owner": owner} if isinstance(volume.source, AzureFileVolume) else {}
                if driver.ready(path, volume.source, **mine):
                    continue
                remove_tree(path)
                made.append(path)
                driver.create(volume.name, path, volume.source, **mine)
                if owner is not None and isinstance(volume.source, GitRepoVolume):
                    _chown_tree(path, owner)
            if owner is not None:
                os.chmod(self.root, 0o711)  # noqa: S103 -- traversable, not readable
                os.chown(group, owner, owner)
        except BaseException as exc:
            for path in [*reversed(made), *([group] if fresh_group else [])]:
                with contextlib.suppress(SkiffError):  # the first error is the one to report
                    remove_tree(path)
            if fresh_group and self.disks is not None:
                with contextlib.suppress(SkiffError):
                    self.disks.release(group_id, group)
            if isinstance(exc, OSError):
                raise VolumeError(f"cannot prepare the volumes of group {group_id}: "
                                  f"{exc.strerror or exc}") from exc
            raise
        return {volume.name: group / volume.name for volume, _ in plan}

    def paths(self, group_id: str) -> dict[str, Path]:
        """Volume name → host directory of the group's volumes on disk (none: empty)."""
        group = self._group_dir(group_id)
        try:
            entries = sorted(os.scandir(group), key=lambda e: e.name)
        except FileNotFoundError:
            return {}
        return {e.name: group / e.name for e in entries
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)}

    def layers(self, group_id: str) -> Path | None:
        """Where the group's containers' writable layers go: on the group's disk (once
        :meth:`prepare` mounted it), or None without a disk limit (beside their rootfs)."""
        return None if self.disks is None else self._group_dir(group_id) / LAYERS

    def ids(self) -> list[str]:
        """The groups with volumes or a disk on this node."""
        groups = set(self.disks.ids()) if self.disks is not None else set()
        groups.update(self.config_maps.ids())
        with contextlib.suppress(FileNotFoundError):
            groups.update(e.name for e in os.scandir(self.root)
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        return sorted(groups)

    def cleanup(self, group_id: str) -> None:
        """Unmount and delete every volume of the group, its directory and its disk, and
        its config maps. Idempotent."""
        group = self._group_dir(group_id)
        remove_tree(group)
        self.config_maps.cleanup(group_id)
        if self.disks is not None:
            self.disks.release(group_id, group)

    def starting(self) -> contextlib.AbstractContextManager[None]:
        """Mark a group start under way, for its ``with`` block: the disks that starts
        take from the pool are made again in the background once the node is quiet,
        so that making them slows no start."""
        return self.disks.starting() if self.disks is not None else contextlib.nullcontext()

    def close(self) -> None:
        """Stop making disks in the background."""
        if self.disks is not None:
            self.disks.close()
