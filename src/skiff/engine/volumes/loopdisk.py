"""A filesystem of a fixed size in a sparse file: made, loop-mounted, unmounted.

A group's disk limit is a filesystem's: the group writes on an ext4 of its own,
whose size is the limit, so a write beyond it fails inside the container with
ENOSPC, whatever wrote it (the overlay's upper layer, an emptyDir, a gVisor
gofer). The filesystem lives in a sparse file on the data root's disk: the
host's blocks are spent only where the group wrote, and given back when its
files are deleted (mounted with ``discard``: the loop driver punches holes).

Making one (:func:`make`: ``truncate`` and ``mkfs.ext4``, ≈ 20 ms) is kept off
the start path by the pool of :mod:`skiff.engine.volumes.disks`; mounting one
(:func:`mount`) is two ioctls and a ``mount(2)``, ≈ 1 ms, no process; a pool mounts
its disks ahead, *detached* (:func:`mount_detached`: mounted nowhere, held by a file
descriptor), so that a start only places one (≈ 0.05 ms). The loop
device is bound with ``LO_FLAGS_AUTOCLEAR``: the kernel releases it when the
filesystem is unmounted, so there is no device to forget, even after a crash: a
detached mount is unmounted when its descriptor is closed, and a process that dies
closes it.

Two options keep the file sparse: ``lazy_itable_init`` and ``lazy_journal_init``
leave the inode tables and the journal unwritten at mkfs, and ``noinit_itable``
stops the kernel from zeroing the inode tables in the background after mount
(ext4 then initialises a table when it first uses it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import subprocess
from pathlib import Path

from skiff.engine import mounts
from skiff.errors import VolumeError

# <linux/loop.h>
LOOP_SET_FD, LOOP_CLR_FD, LOOP_SET_STATUS64 = 0x4C00, 0x4C01, 0x4C04
LOOP_CONFIGURE, LOOP_CTL_GET_FREE = 0x4C0A, 0x4C82
LO_FLAGS_AUTOCLEAR, LO_FLAGS_DIRECT_IO = 4, 16
#: struct loop_info64: 5 u64, 4 u32, file name, crypt name, key, 2 u64.
_INFO64 = "=QQQQQIIII64s64s32sQQ"
#: mount(2)'s options for a group disk (see the module's docstring).
MOUNT_OPTIONS = "discard,noinit_itable"
#: mkfs.ext4's: no blocks reserved for root (the group's root is the one writing),
#: nothing written that need not be (the file stays sparse), no discard of a new file.
MKFS_OPTIONS = ("-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard")
#: Seconds mkfs may take (≈ 20 ms here; a slow disk must not hang a start).
MKFS_TIMEOUT_S = 60.0
#: Tries at a free loop device: another process may take the one the kernel named.
_TRIES = 16


def make(path: Path, size_bytes: int, *, mkfs: str = "mkfs.ext4") -> None:
    """Make an empty ext4 of ``size_bytes`` in a new sparse file at ``path``."""
    try:
        with open(path, "xb") as f:
            f.truncate(size_bytes)
        done = subprocess.run([mkfs, *MKFS_OPTIONS, str(path)], capture_output=True,
                              text=True, timeout=MKFS_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise VolumeError(f"cannot make a group disk: {exc}") from exc
    if done.returncode != 0:
        path.unlink()
        raise VolumeError(f"cannot make a group disk: {done.stderr.strip()[:500]}")


def _configure(loop: int, backing: int) -> None:
    """Bind ``backing`` to the loop device ``loop``: LOOP_CONFIGURE (Linux 5.8),
    else the older LOOP_SET_FD and LOOP_SET_STATUS64."""
    flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO  # direct I/O: no second page cache
    info = struct.pack(_INFO64, 0, 0, 0, 0, 0, 0, 0, 0, flags, b"", b"", b"", 0, 0)
    try:
        fcntl.ioctl(loop, LOOP_CONFIGURE, struct.pack("=II", backing, 0) + info + bytes(64))
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    fcntl.ioctl(loop, LOOP_SET_FD, backing)
    try:
        fcntl.ioctl(loop, LOOP_SET_STATUS64, info)
    except OSError:
        fcntl.ioctl(loop, LOOP_CLR_FD, 0)
        raise


def _attach(image: Path) -> tuple[int, str]:
    """A loop device bound to ``image``, open, and its name (autoclear: it goes with
    its last user)."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(_TRIES):
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                loop = os.open(f"/dev/loop{number}", os.O_RDWR | os.O_CLOEXEC)
                try:
                    _configure(loop, backing)
                except OSError as exc:
                    os.close(loop)
                    if exc.errno == errno.EBUSY:
                        continue  # taken meanwhile by someone else
                    raise
                return loop, f"/dev/loop{number}"
            raise OSError(errno.EBUSY, "no loop device stays free")
        finally:
            os.close(control)
    finally:
        os.close(backing)


def mount(image: Path, target: Path, options: str = MOUNT_OPTIONS) -> None:
    """Mount the filesystem in ``image`` at ``target`` through a new loop device
    (``options``: mount(2)'s data, a share's differ)."""
    try:
        loop, device = _attach(image)
    except OSError as exc:
        raise VolumeError(f"cannot attach a loop device to {image}: "
                          f"{exc.strerror or exc}") from exc
    try:
        err = mounts.mount(device, target, "ext4", 0, options)
        if err:
            raise VolumeError(f"cannot mount {image} at {target}: {os.strerror(err)}")
    finally:
        os.close(loop)  # the mount holds the device now; without one, this frees it


class Detached:
    """A disk's filesystem mounted nowhere yet: :meth:`place` puts it at a mount point,
    :meth:`close` unmounts it if it was not placed (its loop device goes with it)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        """The mount's descriptor: its root directory, for ``dir_fd`` arguments."""
        return self._fd

    def place(self, target: Path) -> None:
        """Mount it at ``target`` (the descriptor stays to be closed)."""
        err = mounts.place_detached(self._fd, target)
        if err:
            raise VolumeError(f"cannot mount a group disk at {target}: {os.strerror(err)}")

    def close(self) -> None:
        """Close the descriptor (once placed, the mount stays). Idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def mount_detached(image: Path, options: str = MOUNT_OPTIONS) -> Detached:
    """Mount the filesystem in ``image`` nowhere, through a new loop device. Raises
    NotImplementedError where the kernel has no detached mounts (before Linux 5.2)."""
    try:
        loop, device = _attach(image)
    except OSError as exc:
        raise VolumeError(f"cannot attach a loop device to {image}: "
                          f"{exc.strerror or exc}") from exc
    try:
        return Detached(mounts.mount_detached(device, "ext4", options))
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            raise NotImplementedError("this kernel cannot mount detached") from exc
        raise VolumeError(f"cannot mount {image}: {exc.strerror or exc}") from exc
    finally:
        os.close(loop)  # the mount holds the device now; without one, this frees it


def unmount(target: Path) -> None:
    """Unmount what is mounted at ``target`` (lazily if busy); its loop device goes
    with its last user. Idempotent."""
    for _ in range(16):  # one layer a round: mounts may be stacked on one point
        if not mounts.is_mounted(target):
            return
        err = mounts.unmount(target)
        if err:
            raise VolumeError(f"cannot unmount {target}: {os.strerror(err)}")
    raise VolumeError(f"cannot unmount {target}: it stays mounted")


class LoopDisks:
    """The functions above as one object: what :class:`~skiff.engine.volumes.disks.GroupDisks`
    calls, replaced by a fake in unit tests."""

    def __init__(self, mkfs: str = "mkfs.ext4") -> None:
        self.mkfs = mkfs

    def make(self, path: Path, size_bytes: int) -> None:
        make(path, size_bytes, mkfs=self.mkfs)

    def mount(self, image: Path, target: Path) -> None:
        mount(image, target)

    def mount_detached(self, image: Path) -> Detached:
        return mount_detached(image)

    def unmount(self, target: Path) -> None:
        unmount(target)

    def mounted(self, target: Path) -> bool:
        return mounts.is_mounted(target)
