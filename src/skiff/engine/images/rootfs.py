"""Container root filesystems: one overlayfs mount per container.

The image's unpacked layers are the lowerdirs, read-only and shared by every
container of that image; each container gets its own upper and work
directory. The mount is a single ``mount(2)`` call (no ``mount`` process):
assembling a rootfs costs well under a millisecond plus the directories.

Mount options must fit in one page. Layers are named through short links
(``l/<20 hex>``) to keep the option string small; an image with so many layers
that even those overflow the page is mounted by a ``mount`` process started
in the links' directory, with relative names (what containers-storage does).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.engine import mounts
from skiff.errors import RootfsError

_PAGE = os.sysconf("SC_PAGE_SIZE")
_FORBIDDEN = frozenset(",:=\n")


@dataclass(frozen=True)
class RootfsRecord:
    """What a container's rootfs is made of, kept beside it on disk."""

    container_id: str
    image: str  # the manifest digest of the image
    layers: tuple[str, ...]  # diff-ids, bottom first


def _mount_overlay(target: Path, options: str, cwd: Path | None = None) -> None:
    if cwd is None:
        err = mounts.mount("overlay", target, "overlay", 0, options)
        if err:
            raise RootfsError(f"cannot mount the rootfs at {target}: {os.strerror(err)}")
        return
    done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
                          cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RootfsError(f"cannot mount the rootfs at {target}: {done.stderr.strip()}")


def unmount(path: Path) -> None:
    """Unmount ``path`` if something is mounted there (mounts may be stacked)."""
    for _ in range(16):  # one layer a round: mounts may be stacked on one point
        if not mounts.is_mounted(path):
            return
        err = mounts.unmount(path)
        if err:
            raise RootfsError(f"cannot unmount {path}: {os.strerror(err)}")
    raise RootfsError(f"cannot unmount {path}: it stays mounted")


class Rootfses:
    """Rootfs directories under ``root/rootfs/<container id>``."""

    def __init__(self, root: Path, links: Path) -> None:
        self.root = root / "rootfs"
        self.links = links
        self.root.mkdir(parents=True, exist_ok=True)
        if _FORBIDDEN & set(str(root)):
            raise RootfsError(f"the data root {root} must not contain any of , : = "
                              "(they separate overlayfs mount options)")

    def _dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise RootfsError(f"invalid container id {container_id!r}")
        return self.root / container_id

    def create(self, record: RootfsRecord, link_names: Sequence[str]) -> Path:
        """Record and mount the rootfs of ``record``; returns the mounted path.

        ``link_names`` are the layers' short link names, bottom first.
        Idempotent: a rootfs that exists already is mounted again if needed.
        """
        base = self._dir(record.container_id)
        merged = base / "merged"
        if merged.exists() and mounts.is_mounted(merged):
            return merged
        for sub in ("upper", "work", "merged"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(base / "upper", 0o755)  # noqa: S103 -- the container's "/" takes the upper dir's mode
        meta = base / "rootfs.json"
        if not meta.exists():
            tmp = base / "rootfs.json.tmp"
            tmp.write_text(json.dumps({"image": record.image, "layers": list(record.layers)}))
            os.replace(tmp, meta)
        self._mount(base, link_names)
        return merged

    def _mount(self, base: Path, link_names: Sequence[str]) -> None:
        tail = f",upperdir={base}/upper,workdir={base}/work"
        lower = ":".join(str(self.links / name) for name in reversed(link_names))
        options = f"lowerdir={lower}{tail}"
        if len(options) < _PAGE:
            _mount_overlay(base / "merged", options)
            return
        options = f"lowerdir={':'.join(reversed(link_names))}{tail}"
        if len(options) >= _PAGE:
            raise RootfsError(f"the image has too many layers ({len(link_names)}) for one "
                              "overlay mount")
        _mount_overlay(base / "merged", options, cwd=self.links)

    def mount(self, container_id: str, link_names: Sequence[str]) -> Path:
        """Mount an existing rootfs again (after a reboot); returns its path."""
        base = self._dir(container_id)
        if not (base / "rootfs.json").exists():
            raise RootfsError(f"container {container_id} has no rootfs")
        merged = base / "merged"
        if not mounts.is_mounted(merged):
            self._mount(base, link_names)
        return merged

    def get(self, container_id: str) -> RootfsRecord | None:
        try:
            doc = json.loads((self._dir(container_id) / "rootfs.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return RootfsRecord(container_id, doc["image"], tuple(doc["layers"]))

    def path(self, container_id: str) -> Path:
        return self._dir(container_id) / "merged"

    def records(self) -> list[RootfsRecord]:
        found = []
        for entry in os.scandir(self.root):
            record = self.get(entry.name)
            if record is not None:
                found.append(record)
        return found

    def remove(self, container_id: str) -> None:
        """Unmount and delete a container's rootfs, upper layer included. Idempotent."""
        base = self._dir(container_id)
        unmount(base / "merged")
        with contextlib.suppress(FileNotFoundError):
            (base / "rootfs.json").unlink()  # first: a half-removed rootfs is no longer in use
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            raise RootfsError(f"cannot remove the rootfs of container {container_id}")
