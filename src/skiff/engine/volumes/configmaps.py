"""ACI config maps: a file per key, changed in place while the containers run.

A container with a config map sees ``/mnt/configmap/<container>/<key>``
(:data:`skiff.core.spec.CONFIG_MAP_ROOT`), a read-only bind of the host
directory ``<data root>/configmaps/<group id>/<container>``. The directories
are the node's, off the group's disk: what a tenant writes cannot fill them
(nor make an update fail), and the API bounds what they hold (1 MiB a group).

A new value reaches a running container without a restart, as in ACI: each
changed key is written to a temporary name in the same directory
(``..<random>.tmp``: a key never starts with ``..``) and renamed over the old
file, so a reader sees the old content or the new one, never half of either;
a key no longer in the map is unlinked. Because the directory itself is the
bind's source, a rename in it is seen through the mount, by runc's containers
and by gVisor's gofer alike (runsc's volumes use ``--file-access-mounts=shared``,
its default: the sentry revalidates what it cached against the host).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from skiff.engine.volumes.driver import remove_tree
from skiff.errors import InvalidVolume, VolumeError

#: A key is one file name (the API's rule is stricter: 1-253 of ``[-._a-zA-Z0-9]``).
_MAX_KEY = 253


def _check(container: str, pairs: Mapping[str, str]) -> None:
    for name in (container, *pairs):
        if (not name or "/" in name or "\0" in name or name.startswith("..")
                or name == "." or len(name.encode()) > _MAX_KEY):
            raise InvalidVolume(f"config map of container {container[:80]!r}: "
                                f"{name[:80]!r} is not a plain file name")


def _content(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _write(directory: Path, pairs: Mapping[str, str]) -> list[str]:
    """Make ``directory`` hold exactly ``pairs``; the keys changed (added, rewritten or
    removed), sorted."""
    directory.mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)  # noqa: S103 -- read by the container's users, any of them
    changed = []
    present = set(os.listdir(directory))
    for name in present:
        if name.startswith(".."):  # a temporary file a crash left
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
        elif name not in pairs:
            os.unlink(directory / name)
            changed.append(name)
    for key, value in pairs.items():
        data = value.encode()
        if key in present and _content(directory / key) == data:
            continue
        temporary = directory / f"..{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o444)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o444)
                f.write(data)
            os.rename(temporary, directory / key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        changed.append(key)
    return sorted(changed)


class ConfigMaps:
    """The config maps of every group, under ``<data_root>/configmaps/<group id>/``."""

    def __init__(self, data_root: Path) -> None:
        self.root = data_root / "configmaps"

    def _group_dir(self, group_id: str) -> Path:
        if not group_id or "/" in group_id or "\0" in group_id or group_id.startswith("."):
            raise InvalidVolume(f"invalid group id {group_id[:80]!r}")
        return self.root / group_id

    def write(self, group_id: str, maps: Mapping[str, Mapping[str, str]],
              ) -> tuple[dict[str, Path], dict[str, list[str]]]:
        """Make the group's config maps hold ``maps`` (container name → key → value).
        Returns each container's directory, and the keys that changed in each (a new
        directory's keys included). A container left out loses its directory."""
        for container, pairs in maps.items():
            _check(container, pairs)
        group = self._group_dir(group_id)
        try:
            if not maps and not group.exists():
                return {}, {}
            # Traversable, not listable: under --userns-remap runc binds a directory
            # as the container's root, a host id of its own.
            self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
            group.mkdir(mode=0o711, exist_ok=True)
            os.chmod(self.root, 0o711)  # noqa: S103
            os.chmod(group, 0o711)  # noqa: S103
            for entry in os.listdir(group):
                if entry not in maps:
                    remove_tree(group / entry)
            changed = {name: _write(group / name, pairs) for name, pairs in maps.items()}
        except OSError as exc:
            raise VolumeError(f"cannot write the config maps of group {group_id}: "
                              f"{exc.strerror or exc}") from exc
        return {name: group / name for name in maps}, {n: c for n, c in changed.items() if c}

    def ids(self) -> list[str]:
        """The groups with config maps on this node."""
        with contextlib.suppress(FileNotFoundError):
            return sorted(e.name for e in os.scandir(self.root)
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        return []

    def cleanup(self, group_id: str) -> None:
        """Remove the group's config maps. Idempotent."""
        remove_tree(self._group_dir(group_id))
