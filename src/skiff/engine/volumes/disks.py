"""Group disks: each group writes on a filesystem of its own, of the limit's size.

ACI limits what a group may write (50 GB per group); without a limit one
container with 0.1 GB of memory wrote 1 GB into its rootfs on the host's disk.
Here each group gets an ext4 in a sparse file (:mod:`skiff.engine.volumes.loopdisk`),
mounted at the group's volumes directory: its emptyDir volumes live on it, and
its containers' writable layers (the overlays' upper directories) below
``.layers``. A write beyond the limit fails inside the container with ENOSPC;
the host's disk holds no more than the limit for the group.

A group start must not wait for mkfs (≈ 20 ms), so formatted files are made
ahead, as the network's warm pool makes namespaces ahead: ``pool/`` keeps
``pool_size`` of them, refilled by a background thread once a start that took
one is done (:meth:`GroupDisks.kick`). A start renames one to
``groups/<group id>.img`` and mounts it (≈ 2 ms alone, 4-6 ms in a busy start);
with the pool empty, it makes one itself. Pooled files are not mounted and hold
no loop device: a loop device exists only while a group's disk is mounted.

Everything is found again by name after a restart of skiff: a group's file is
``groups/<group id>.img``; :meth:`GroupDisks.attach` mounts it again if it is
not (after a reboot) and adopts it if it is (containers keep running across
restarts of skiff); pooled files of another size than the setting's are
deleted when met; ``work/`` holds only files being made and is emptied at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Protocol

from skiff.engine.volumes.loopdisk import LoopDisks
from skiff.errors import VolumeError
from skiff.settings import DiskSettings, Settings

_log = logging.getLogger(__name__)

#: What ext4 makes in a new filesystem's root, which is not a volume.
_LOST_FOUND = "lost+found"


class Filesystems(Protocol):
    """How a disk is made and mounted (:class:`~skiff.engine.volumes.loopdisk.LoopDisks`)."""

    def make(self, path: Path, size_bytes: int) -> None: ...

    def mount(self, image: Path, target: Path) -> None: ...

    def unmount(self, target: Path) -> None: ...

    def mounted(self, target: Path) -> bool: ...


class GroupDisks:
    """The groups' disks and the pool of ready ones, under ``<data root>/disks``. Thread
    safe; calls for one group must not overlap (the supervisor serialises a group)."""

    def __init__(self, data_root: Path, settings: DiskSettings, *,
                 filesystems: Filesystems | None = None) -> None:
        self.settings = settings
        self.size_bytes = settings.group_bytes
        self.root = data_root / "disks"
        self.pool = self.root / "pool"
        self.groups = self.root / "groups"
        self._work = self.root / "work"
        self._fs = filesystems or LoopDisks(settings.mkfs)
        for directory in (self.root, self.pool, self.groups):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.rmtree(self._work, ignore_errors=True)  # files a crash left half made
        self._work.mkdir(mode=0o700)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Disks made during a start because the pool was empty (for benchmarks).
        self.made_on_demand = 0
        #: The last failure of a background refill, for diagnostics.
        self.error: Exception | None = None

    def image(self, group_id: str) -> Path:
        """The file holding the group's disk."""
        return self.groups / f"{group_id}.img"

    def ids(self) -> list[str]:
        """The groups that have a disk on this node."""
        return sorted(name.removesuffix(".img") for name in os.listdir(self.groups)
                      if name.endswith(".img"))

    def attach(self, group_id: str, target: Path) -> None:
        """Mount the group's disk at ``target``: adopted if mounted there already,
        mounted again if the group has one (a reboot unmounted it), else taken from
        the pool (or made, if the pool is empty). Idempotent."""
        if self._fs.mounted(target):
            return
        image = self.image(group_id)
        if not image.exists():
            self._take(image)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fs.mount(image, target)
        with contextlib.suppress(OSError):  # not empty, or gone: not ours to worry about
            os.rmdir(target / _LOST_FOUND)

    def release(self, group_id: str, target: Path) -> None:
        """Unmount the group's disk (its loop device goes with it) and delete it.
        Idempotent."""
        self._fs.unmount(target)
        try:
            self.image(group_id).unlink(missing_ok=True)
        except OSError as exc:
            raise VolumeError(f"cannot delete the disk of group {group_id}: "
                              f"{exc.strerror or exc}") from exc

    # ---- the pool --------------------------------------------------------------------

    def pooled(self) -> int:
        """How many disks are ready in the pool."""
        return sum(1 for name in os.listdir(self.pool) if name.endswith(".img"))

    def _take(self, image: Path) -> None:
        """Give ``image`` a ready disk: one of the pool's by a rename, else a new one.
        The pool is refilled later (:meth:`kick`), once the group's start is done."""
        for name in sorted(os.listdir(self.pool)):
            pooled = self.pool / name
            try:
                if pooled.stat().st_size != self.size_bytes:  # made for another setting
                    pooled.unlink()
                    continue
                os.rename(pooled, image)
            except FileNotFoundError:
                continue  # taken meanwhile by another start
            return
        self._make(image)
        with self._lock:
            self.made_on_demand += 1

    def _make(self, dest: Path) -> None:
        """Make a disk in ``work/`` and rename it to ``dest`` (never half made there)."""
        tmp = self._work / f"{uuid.uuid4().hex}.img"
        self._fs.make(tmp, self.size_bytes)
        try:
            os.rename(tmp, dest)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def _wanted(self) -> bool:
        with self._lock:
            if self._closed or self.pooled() >= self.settings.pool_size:
                self._thread = None
                return False
            return True

    def _refill(self) -> None:
        # The refill runs while the start that emptied the pool goes on: at the lowest
        # priority (this thread's and so mkfs's, CPU and, derived from it, I/O), so that
        # starts come first on a busy node.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            while self._wanted():
                self._make(self.pool / f"{uuid.uuid4().hex}.img")
        except Exception as exc:  # the thread must not die silently; the next start retries
            _log.warning("the disk pool cannot be refilled: %s", exc)
            self.error = exc
            with self._lock:
                self._thread = None

    def kick(self) -> None:
        """Refill the pool in the background, unless it is full or being refilled. The
        caller kicks once a start is done: mkfs (≈ 10 ms of CPU and 4 MB written, with
        fsyncs) running beside a start slowed it by ≈ 15 ms (bench/bench_disks.py)."""
        with self._lock:
            if (self._closed or self._thread is not None
                    or self.pooled() >= self.settings.pool_size):
                return
            self._thread = threading.Thread(target=self._refill, name="skiff-disk-pool",
                                            daemon=True)
            self._thread.start()

    def prewarm(self) -> None:
        """Fill the pool now, in this thread."""
        while self.pooled() < self.settings.pool_size:
            self._make(self.pool / f"{uuid.uuid4().hex}.img")

    def close(self) -> None:
        """Stop refilling (the pooled disks stay for the next start of skiff) and wait
        for the refill under way."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join()


def group_disks(settings: Settings) -> GroupDisks | None:
    """The groups' disks of a node with ``settings``; None when writes are not limited."""
    if settings.disks.group_bytes <= 0:
        return None
    return GroupDisks(settings.data_root, settings.disks)
