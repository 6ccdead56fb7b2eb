"""Container root filesystems: one overlayfs mount per container.

The image's unpacked layers are the lowerdirs, read-only and shared by every
container of that image; each container gets its own upper and work
directory. The mount is a single ``mount(2)`` call (no ``mount`` process):
assembling a rootfs costs well under a millisecond plus the directories.

Mount options must fit in one page. Layers are named through short links
(``l/<20 hex>``) to keep the option string small; an image with so many layers
that even those overflow the page is mounted by a ``mount`` process started
in the links' directory, with relative names (what containers-storage does).

What a container writes lands in its upper directory, on the host's disk:
the directories above it are root's alone (``rootfs/`` and ``rootfs/<id>/`` are
0700), so that no local user reads what a container wrote, nor its merged view.
A remapped container's rootfs (``idmap``: its user namespace's first host id
and count) takes its layers from an idmapped view of the image store (see
:mod:`skiff.engine.idmap`), one per mapping, shared; its upper directory
belongs to the mapped root, and the directories down to it can be traversed
by others (0711, as Docker's userns-remap root) since runc mounts it from
inside the user namespace; they still cannot be listed.

Under a disk limit, a container's upper and work directories live elsewhere:
on its group's disk (``writable``, kept in ``rootfs.json``, see
:mod:`skiff.engine.volumes.disks`), so that what it writes counts against its
group's limit; the merged directory and the record stay here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.engine import idmap as idmapped
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
    #: (first host id, count) of a remapped container's user namespace, else None.
    idmap: tuple[int, int] | None = None
    #: The directory of its upper and work directories when not beside the merged
    #: one (on its group's disk), else None.
    writable: str | None = None


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


def _is_mount_point(path: Path) -> bool:
    """Whether something is mounted at ``path``, by mountinfo: an idmapped bind of the
    store shares its device, which :func:`mounts.is_mounted` compares."""
    return path.resolve() in mounts.mount_points()


def _traversable(directory: Path) -> None:
    """Let others through ``directory`` (o+x), not read it: a remapped root is "other"."""
    mode = directory.stat().st_mode
    if not mode & 0o001:
        os.chmod(directory, (mode & 0o7777) | 0o001)


class Rootfses:
    """Rootfs directories under ``root/rootfs/<container id>``."""

    def __init__(self, root: Path, links: Path) -> None:
        self.root = root / "rootfs"
        self.links = links
        self.views = root / "idmapped"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # what containers write is below (a remapped one adds o+x)
        self._views_lock = threading.Lock()
        if _FORBIDDEN & set(str(root)):
            raise RootfsError(f"the data root {root} must not contain any of , : = "
                              "(they separate overlayfs mount options)")

    def _dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise RootfsError(f"invalid container id {container_id!r}")
        return self.root / container_id

    def _writable(self, base: Path, record: RootfsRecord | None) -> Path:
        """The directory of the rootfs's upper and work directories."""
        return Path(record.writable) if record is not None and record.writable else base

    def create(self, record: RootfsRecord, link_names: Sequence[str]) -> Path:
        """Record and mount the rootfs of ``record``; returns the mounted path.

        ``link_names`` are the layers' short link names, bottom first.
        Idempotent: a rootfs that exists already is mounted again if needed.
        """
        base = self._dir(record.container_id)
        merged = base / "merged"
        if merged.exists() and mounts.is_mounted(merged):
            return merged
        writable = self._writable(base, record)
        if _FORBIDDEN & set(str(writable)):
            raise RootfsError(f"invalid directory {writable} for a rootfs's upper layer")
        merged.mkdir(parents=True, exist_ok=True)
        os.chmod(base, 0o700)  # no local user reads what the container writes
        for sub in ("upper", "work"):
            (writable / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(writable / "upper", 0o755)  # noqa: S103 -- the container's "/" takes the upper dir's mode
        if record.idmap is not None:
            os.chown(writable / "upper", record.idmap[0], record.idmap[0])
            for directory in (self.root.parent, self.root, base):
                _traversable(directory)
        meta = base / "rootfs.json"
        if not meta.exists():
            tmp = base / "rootfs.json.tmp"
            doc: dict[str, object] = {"image": record.image, "layers": list(record.layers)}
            if record.idmap is not None:
                doc["idmap"] = list(record.idmap)
            if record.writable is not None:
                doc["writable"] = record.writable
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, meta)
        self._mount(base, link_names, record.idmap, writable)
        return merged

    def _mount(self, base: Path, link_names: Sequence[str],
               idmap: tuple[int, int] | None = None, writable: Path | None = None) -> None:
        links = self.links if idmap is None else self._view(idmap) / self.links.name
        writable = writable or base
        tail = f",upperdir={writable}/upper,workdir={writable}/work"
        lower = ":".join(str(links / name) for name in reversed(link_names))
        options = f"lowerdir={lower}{tail}"
        if len(options) < _PAGE:
            _mount_overlay(base / "merged", options)
            return
        options = f"lowerdir={':'.join(reversed(link_names))}{tail}"
        if len(options) >= _PAGE:
            raise RootfsError(f"the image has too many layers ({len(link_names)}) for one "
                              "overlay mount")
        _mount_overlay(base / "merged", options, cwd=links)

    def _view(self, idmap: tuple[int, int]) -> Path:
        """The store's root as ids ``idmap`` see it (mounted on first use, then kept):
        the layers' links resolve inside it, so lowerdirs taken from it are idmapped."""
        view = self.views / f"{idmap[0]}-{idmap[1]}"
        with self._views_lock:
            if not _is_mount_point(view):
                view.mkdir(parents=True, exist_ok=True)
                idmapped.bind_idmapped(self.root.parent, view, *idmap)
        return view

    def unmount_views(self) -> None:
        """Unmount every idmapped view (rootfses mounted from one keep it alive)."""
        with self._views_lock:
            if not self.views.is_dir():
                return
            for entry in os.scandir(self.views):
                view = Path(entry.path)
                for _ in range(16):  # one a round: views may be stacked
                    if not _is_mount_point(view):
                        break
                    err = mounts.detach(view)
                    if err:
                        raise RootfsError(f"cannot unmount {view}: {os.strerror(err)}")

    def mount(self, container_id: str, link_names: Sequence[str]) -> Path:
        """Mount an existing rootfs again (after a reboot); returns its path."""
        base = self._dir(container_id)
        if not (base / "rootfs.json").exists():
            raise RootfsError(f"container {container_id} has no rootfs")
        merged = base / "merged"
        if not mounts.is_mounted(merged):
            record = self.get(container_id)
            self._mount(base, link_names, record.idmap if record is not None else None,
                        self._writable(base, record))
        return merged

    def get(self, container_id: str) -> RootfsRecord | None:
        try:
            doc = json.loads((self._dir(container_id) / "rootfs.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        found = doc.get("idmap")
        idmap = (int(found[0]), int(found[1])) if found else None
        return RootfsRecord(container_id, doc["image"], tuple(doc["layers"]), idmap,
                            doc.get("writable"))

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
        record = self.get(container_id)
        if record is not None and record.writable:  # on its group's disk, if still there
            shutil.rmtree(record.writable, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (base / "rootfs.json").unlink()  # first: a half-removed rootfs is no longer in use
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            raise RootfsError(f"cannot remove the rootfs of container {container_id}")
