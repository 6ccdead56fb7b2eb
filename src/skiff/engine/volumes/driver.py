"""What a kind of volume source is to the volumes manager, and how any volume goes.

Each kind of volume source is a small driver behind :class:`VolumeDriver`,
looked up by the source's type, so that file shares (``azureFile``) come later
as one more driver: ``emptyDir`` is in :mod:`skiff.engine.volumes.manager`, ``secret``
in :mod:`skiff.engine.volumes.secret`, ``gitRepo`` in :mod:`skiff.engine.volumes.gitrepo`.
The contract and what every driver shares live here, below all of them, so
that a driver's module needs nothing from the manager that looks it up.

Removal needs no driver and no spec: :func:`remove_tree` unmounts whatever is
mounted at or below a path and deletes it, whatever made it, so that a group
is cleaned up even after a crash lost its spec.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol, TypeVar

from skiff.engine import mounts
from skiff.errors import VolumeError


def is_mount_point(path: Path) -> bool:
    """Whether ``path`` is itself a mount point (a secret's tmpfs, not a plain directory)."""
    return path.resolve() in mounts.mount_points()


def _unmount(point: Path) -> None:
    """Unmount ``point``; lazily when it is busy (a process has its cwd there)."""
    err = mounts.unmount(point)
    if err:
        raise VolumeError(f"cannot unmount {point}: {os.strerror(err)}")


def remove_tree(path: Path) -> None:
    """Unmount everything at or below ``path``, then delete it. Idempotent.

    Mounts go first, deepest first, so that deleting never reaches into a
    mounted filesystem; ``rmtree`` does not follow symbolic links.
    """
    for _ in range(64):  # mounts may be stacked on one point; each round peels one layer
        points = mounts.mounts_below(path)
        if not points:
            break
        for point in points:
            _unmount(point)
    else:
        raise VolumeError(f"cannot unmount everything below {path}")
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise VolumeError(f"cannot remove {path}: {exc.strerror}") from exc


S_contra = TypeVar("S_contra", contravariant=True)


class VolumeDriver(Protocol[S_contra]):
    """One kind of volume source. Removal needs no driver (see :func:`remove_tree`)."""

    def check(self, name: str, source: S_contra) -> None:
        """Refuse a bad source (an :class:`InvalidVolume`) before the disk is touched."""

    def ready(self, path: Path, source: S_contra) -> bool:
        """Whether ``path`` already holds this volume, so preparing it again does nothing."""

    def create(self, name: str, path: Path, source: S_contra) -> None:
        """Make the volume at ``path``, which does not exist; leave nothing on failure."""
