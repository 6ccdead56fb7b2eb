"""Group disks: each group writes on a filesystem of its own, of the limit's size.

ACI limits what a group may write (50 GB per group); without a limit one
container with 0.1 GB of memory wrote 1 GB into its rootfs on the host's disk.
Here each group gets an ext4 in a sparse file (:mod:`skiff.engine.volumes.loopdisk`),
mounted at the group's volumes directory: its emptyDir volumes live on it, and
its containers' writable layers (the overlays' upper directories) below
``.layers``. A write beyond the limit fails inside the container with ENOSPC;
the host's disk holds no more than the limit for the group.

A group start must not wait for mkfs (≈ 20 ms), nor for a mount (≈ 2 ms alone,
4-8 ms in a start, beside the network's set-up on a 2-core node), so disks are
made ahead, as the network's warm pool makes namespaces ahead: ``pool/`` keeps
``pool_size`` formatted files, and this process keeps each of them mounted
*detached* (:func:`~skiff.engine.volumes.loopdisk.mount_detached`: on its loop
device, mounted nowhere, held by a file descriptor, its ``lost+found`` gone). A
start renames one to ``groups/<group id>.img`` and places its mount at the group's
directory (≈ 0.05 ms), its ``.layers`` made already; with none ready, it mounts a
pooled file, and with the pool empty, it makes one too.

The pool is refilled by a background thread at the lowest priority, and only while
the node is quiet: no start under way (:meth:`GroupDisks.starting`) and none for
``refill_delay_s``; mkfs and the mounts beside a start slowed it by ≈ 10 ms
(bench/bench_disks.py). A file being mounted, or held mounted, is ``flock``-ed by
its holder, so that no other start (nor another skiff on the data root) mounts it
too; a disk held mounted costs a loop device, released when skiff closes the pool
or dies (the kernel closes the descriptor).

Everything is found again by name after a restart of skiff: a group's file is
``groups/<group id>.img``; :meth:`GroupDisks.attach` mounts it again if it is
not (after a reboot) and adopts it if it is (containers keep running across
restarts of skiff); pooled files of another size than the setting's are
deleted when met; ``work/`` holds only files being made and is emptied at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from skiff.engine.volumes.loopdisk import LoopDisks
from skiff.errors import VolumeError
from skiff.settings import DiskSettings, Settings

_log = logging.getLogger(__name__)

#: What ext4 makes in a new filesystem's root, which is not a volume.
_LOST_FOUND = "lost+found"
#: The directory of the group's containers' writable layers, on its disk (a name no
#: volume can have). A pooled disk has it already: made there, the first directories
#: of a start find their block group's bitmaps and inode table read (a new disk's
#: first writes each read them through the loop device, ≈ 0.4 ms in all).
LAYERS = ".layers"


class Filesystems(Protocol):
    """How a disk is made and mounted (:class:`~skiff.engine.volumes.loopdisk.LoopDisks`)."""

    def make(self, path: Path, size_bytes: int) -> None: ...

    def mount(self, image: Path, target: Path) -> None: ...

    def mount_detached(self, image: Path) -> DetachedMount: ...

    def unmount(self, target: Path) -> None: ...

    def mounted(self, target: Path) -> bool: ...


class DetachedMount(Protocol):
    """A disk mounted nowhere yet (:class:`~skiff.engine.volumes.loopdisk.Detached`)."""

    def fileno(self) -> int: ...

    def place(self, target: Path) -> None: ...

    def close(self) -> None: ...


#: Seconds without a start before the pool is refilled (see the module's docstring).
REFILL_DELAY_S = 0.1


class _Ready:
    """A pooled disk held mounted: its file's lock (an open descriptor) and its mount."""

    def __init__(self, claim: int, disk: DetachedMount) -> None:
        self.claim = claim
        self.disk = disk

    def close(self) -> None:
        """Unmount it (its loop device goes) and let the file go."""
        try:
            self.disk.close()
        finally:
            os.close(self.claim)


class GroupDisks:
    """The groups' disks and the pool of ready ones, under ``<data root>/disks``. Thread
    safe; calls for one group must not overlap (the supervisor serialises a group)."""

    def __init__(self, data_root: Path, settings: DiskSettings, *,
                 filesystems: Filesystems | None = None,
                 refill_delay_s: float = REFILL_DELAY_S) -> None:
        self.settings = settings
        self.size_bytes = settings.group_bytes
        self.root = data_root / "disks"
        self.pool = self.root / "pool"
        self.groups = self.root / "groups"
        self._work = self.root / "work"
        self._fs = filesystems or LoopDisks(settings.mkfs)
        self.refill_delay_s = refill_delay_s
        for directory in (self.root, self.pool, self.groups):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.rmtree(self._work, ignore_errors=True)  # files a crash left half made
        self._work.mkdir(mode=0o700)
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._again = False  # kicked while the refill was under way: look again
        self._closed = False
        self._ready: dict[str, _Ready] = {}  # pooled file name -> its disk, mounted
        self._detached = True  # False where the kernel cannot mount detached
        self._starts = 0
        self._quiet_since = time.monotonic()
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
        the pool, ready mounted if one is (else mounted, or made if the pool is
        empty). Idempotent."""
        if self._fs.mounted(target):
            return
        image = self.image(group_id)
        ready = None
        if not image.exists():
            ready = self._take_ready(image)
            if ready is None:
                self._take(image)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ready is not None:
            try:
                ready.place(target)
            finally:
                ready.close()
            return
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
        """How many disks are in the pool (ready mounted or not)."""
        return sum(1 for name in os.listdir(self.pool) if name.endswith(".img"))

    def ready(self) -> int:
        """How many pooled disks this process holds mounted, ready to be placed."""
        with self._lock:
            return len(self._ready)

    def settled(self) -> bool:
        """Whether the pool is full (its disks held mounted where the kernel can) and no
        refill is under way."""
        with self._lock:
            ready = len(self._ready) >= self.settings.pool_size or not self._detached
            return self._thread is None and ready and self.pooled() >= self.settings.pool_size

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Mark a group start under way: the refill waits for the node to be quiet (no
        start for ``refill_delay_s``), then makes again what the starts took."""
        with self._lock:
            self._starts += 1
        try:
            yield
        finally:
            with self._lock:
                self._starts -= 1
                self._quiet_since = time.monotonic()
                self._lock.notify_all()
            self.kick()

    def _take_ready(self, image: Path) -> DetachedMount | None:
        """A disk held mounted, its file renamed to ``image``; None if there is none."""
        with self._lock:
            if not self._ready:
                return None
            name = next(iter(self._ready))
            held = self._ready.pop(name)
        try:
            os.rename(self.pool / name, image)
        except OSError as exc:
            held.close()
            _log.warning("a ready disk cannot be taken from the pool: %s", exc)
            return None
        os.close(held.claim)  # the group's file now: no pool looks at it any more
        return held.disk

    def _take(self, image: Path) -> None:
        """Give ``image`` a disk not mounted: one of the pool's by a rename (one no one
        holds), else a new one. The pool is refilled later, once the node is quiet."""
        for name in sorted(os.listdir(self.pool)):
            pooled = self.pool / name
            claim = self._claim(pooled)
            if claim is None:
                continue  # held (ready mounted, being mounted) or taken meanwhile
            try:
                if os.fstat(claim).st_size != self.size_bytes:  # made for another setting
                    pooled.unlink()
                    continue
                os.rename(pooled, image)
                return
            finally:
                os.close(claim)
        self._make(image)
        with self._lock:
            self.made_on_demand += 1

    @staticmethod
    def _claim(path: Path) -> int | None:
        """``path`` opened and locked, as what the caller alone may take or mount; None
        if another holds it or it is gone."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # still that file there
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    def _make(self, dest: Path) -> None:
        """Make a disk in ``work/`` and rename it to ``dest`` (never half made there)."""
        tmp = self._work / f"{uuid.uuid4().hex}.img"
        self._fs.make(tmp, self.size_bytes)
        try:
            os.rename(tmp, dest)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def _hold(self, name: str, claim: int) -> bool:
        """Mount the pooled ``name`` (claimed) detached and keep it ready; False where
        the kernel cannot (the file stays in the pool, as it is). A file that does not
        mount is deleted."""
        pooled = self.pool / name
        try:
            disk = self._fs.mount_detached(pooled)
        except NotImplementedError as exc:
            os.close(claim)
            _log.info("group disks are mounted at start, not ahead: %s", exc)
            with self._lock:
                self._detached = False
            return False
        except VolumeError:
            with contextlib.suppress(OSError):
                pooled.unlink()  # ours (claimed), and good for nothing
            os.close(claim)
            raise
        try:
            with contextlib.suppress(FileNotFoundError):  # a new filesystem's, not a volume
                os.rmdir(_LOST_FOUND, dir_fd=disk.fileno())
            with contextlib.suppress(FileExistsError):
                os.mkdir(LAYERS, 0o700, dir_fd=disk.fileno())
        except OSError as exc:
            disk.close()
            os.close(claim)
            raise VolumeError(f"cannot prepare the pooled disk {pooled}: "
                              f"{exc.strerror or exc}") from exc
        held = _Ready(claim, disk)
        with self._lock:
            if not self._closed:
                self._ready[name] = held
                return True
        held.close()
        return True

    def _step(self) -> bool:
        """Do one thing the pool lacks: hold mounted a pooled disk that is not, else make
        one. False when there is nothing to do."""
        with self._lock:
            if self._closed:
                return False
            detached, ready = self._detached, set(self._ready)
        if detached and len(ready) < self.settings.pool_size:
            for name in sorted(os.listdir(self.pool)):
                if name in ready or not name.endswith(".img"):
                    continue
                claim = self._claim(self.pool / name)
                if claim is None:
                    continue  # another's
                if os.fstat(claim).st_size != self.size_bytes:  # made for another setting
                    (self.pool / name).unlink()
                    os.close(claim)
                    continue
                if self._hold(name, claim):
                    return True
                break  # no detached mounts: make files only
        if self.pooled() >= self.settings.pool_size:
            return False
        self._make(self.pool / f"{uuid.uuid4().hex}.img")
        return True

    def _quiet(self) -> bool:
        """Wait until no start is under way and none was for ``refill_delay_s``; False
        once the pool is closed."""
        with self._lock:
            while not self._closed:
                if self._starts == 0:
                    left = self._quiet_since + self.refill_delay_s - time.monotonic()
                    if left <= 0:
                        return True
                    self._lock.wait(left)
                else:
                    self._lock.wait()
            return False

    def _refill(self) -> None:
        # At the lowest priority (this thread's and so mkfs's, CPU and, derived from it,
        # I/O), so that whatever else runs comes first.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            while True:
                if self._quiet() and self._step():
                    continue
                with self._lock:
                    if self._again and not self._closed:
                        self._again = False
                        continue
                    self._thread = None
                    return
        except Exception as exc:  # the thread must not die silently; the next start retries
            _log.warning("the disk pool cannot be refilled: %s", exc)
            self.error = exc
            with self._lock:
                self._thread = None

    def kick(self) -> None:
        """Refill the pool in the background, once the node is quiet, unless it is full
        or being refilled."""
        with self._lock:
            if self._closed:
                return
            if self._thread is not None:
                self._again = True
                return
            self._thread = threading.Thread(target=self._refill, name="skiff-disk-pool",
                                            daemon=True)
            self._thread.start()

    def prewarm(self) -> None:
        """Fill the pool now, in this thread."""
        while self._step():
            pass

    def close(self) -> None:
        """Stop refilling, wait for the refill under way, and unmount the disks held
        ready (their files stay in the pool for the next start of skiff)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            held, self._ready = list(self._ready.values()), {}
        for disk in held:
            disk.close()


def group_disks(settings: Settings) -> GroupDisks | None:
    """The groups' disks of a node with ``settings``; None when writes are not limited."""
    if settings.disks.group_bytes <= 0:
        return None
    return GroupDisks(settings.data_root, settings.disks)
