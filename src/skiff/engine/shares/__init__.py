"""The node's storage of file shares: one quota-bounded ext4 per share (:class:`LoopShares`).

Where: ``<data_root>/shares/<account>/<share>.img`` (a sparse file), mounted at
``<data_root>/shares/<account>/<share>/`` through a loop device (as group
disks are, :mod:`skiff.engine.volumes.loopdisk`). A node reset unmounts them
with everything else below the data root; a purge deletes them. Nothing else
(removing a group, a restart, SIGKILL) touches an image: the data outlives
them, and :meth:`LoopShares.mount_all` mounts them again at start (after a
reboot).

Quota: the filesystem's size is the quota (plus its own metadata), so a write
past it fails with ENOSPC whoever writes (a container, a gVisor gofer, the data
plane, a FUSE view running as root: size is not a limit root bypasses, unlike
ext4 quotas, which CAP_SYS_RESOURCE ignores), and other shares, separate
filesystems, are unaffected. Raising a quota grows the image, the loop device
(LOOP_SET_CAPACITY) and the filesystem online (``resize2fs``); where the kernel
refuses an online resize (no CAP_SYS_RESOURCE, as in some containers) it grows
offline, as a shrink does. Lowering it
below what the share holds is refused (ShareQuotaTooSmall). ext4 cannot shrink
online, so lowering it above what is used shrinks offline: when nothing but the
node's own mount holds the filesystem, it is unmounted, checked (``e2fsck
-f``), shrunk (``resize2fs``) and mounted again (≈ a second); while a group
mounts it, the change is refused with ShareInUse (unmount the groups, or keep
the quota). The change is rare; an always-online design (project quotas in
an image as big as the largest quota ever) would let a root writer pass the
quota, which the size of a filesystem does not.

Ownership (:meth:`LoopShares.view`): groups do not mount the share itself but
a FUSE view of it made by ``bindfs`` for one host id of a container root (0,
or the remapped id under ``--userns-remap``): every file shows as that id's,
mode 0777, and chmod and chown succeed without effect, as on ACI's SMB mount.
A view is started the first time a group needs it and kept (at
``<account>/.views/<share>@<id>``), so a group's mount stays one bind mount;
bindfs outlives ``skiff serve`` and a view still mounted at start is used as
it is (adopted); a node reset unmounts the views with the rest, which ends
their bindfs. bindfs writes as root, which does not pass the quota: the
quota is the filesystem's size, not a limit root may ignore.

Disk: mkfs leaves the image sparse and quick (≈ 0.2 s and ≈ 70 MiB for 5120
GiB: lazy inode tables and journal, no reserved blocks, one inode per 256 KiB,
128-byte inodes); then the host's blocks under the journal (64 MiB) and the
block groups' bitmaps (64 KiB per GiB of quota) are allocated (fallocate, no
write, ≈ 0.15 s at 5120 GiB: :func:`reserve_metadata`), so that a share takes
64 MiB of the host's disk at 1 GiB and ≈ 440 MiB at 5120 GiB before it holds a
file. The sum of the
quotas is held to the data root's free disk (plus what the images take) times
:attr:`~skiff.settings.ShareSettings.overcommit`
(:mod:`skiff.engine.shares.capacity`), NodeStorageFull beyond.

A full host disk (``tests/engine/test_shares_full_disk.py`` fills one): the
image is sparse, so a share's write that needs a new host block fails when the
host's disk is full. The loop device answers it "no space" (BLK_STS_NOSPC), and
the writer gets ENOSPC at fsync (through the bindfs view too; EIO on kernels
whose loop driver reports every failure as an I/O error); data whose fsync
succeeded is on the disk. A failed *data* write fails only that write
(``data=ordered`` with ext4's default ``data_err=ignore``: the journal goes on).
A failed *journal* write, or a failed write-back of a journaled block to its
home, aborts the journal, and then ext4 turns the share read-only whatever its
``errors=`` (``emergency_ro``) until it is mounted again; with sparse images
that happened to every share on the disk, not only to the one filling it, since
each share's journal and bitmaps were holes its next commit had to fill. Hence
the reservation above, made at create, at every mount and at every start
(images of an older skiff, a resize): the journal and the bitmaps, which every allocation
changes, always have their host blocks, so with the host's disk full both the
share being filled and the others stay read-write and consistent, a write into
blocks a share already holds (rewriting a file) succeeds, one that needs new
host blocks fails, and deleting files (``discard`` punches their blocks out of
the image) makes room again. What stays possible: a share that must write a
never-written inode-table block or a new extent or directory block while the
disk is full (creating many files, a fragmented file's extent tree) has its
journal abort and turns read-only until it is unmounted and mounted again (a
node reset, a reboot); the journal replay at that mount makes it consistent, nothing is
corrupted. Those blocks are not reserved (inode tables are 512 KiB per GiB of
quota); the overcommit setting and the host's monitoring are what keep the disk
from filling. ``errors=continue`` keeps an error ext4 notices (not an abort)
from turning the share read-only. Images are never wholly preallocated (that
would spend the disk sparse files save).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

from skiff.core.shares import ShareRef
from skiff.engine import mounts
from skiff.engine.shares.capacity import GIB, Capacity
from skiff.engine.volumes import loopdisk
from skiff.errors import (
    NodeStorageFull,
    ShareError,
    ShareInUse,
    ShareNotFound,
    ShareQuotaTooSmall,
    SkiffError,
)
from skiff.settings import ShareSettings

__all__ = ["VIEWS", "Capacity", "LoopShares", "NodeStorageFull"]

log = logging.getLogger(__name__)

#: mount(2)'s options for a share (see the module's docstring).
MOUNT_OPTIONS = "discard,noinit_itable,errors=continue"
#: mkfs.ext4's: sparse and quick (see the module's docstring).
MKFS_OPTIONS = ("-q", "-F", "-m", "0", "-i", "262144", "-I", "128", "-J", "size=64",
                "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard")
#: The folder of an account's share views (bindfs), beside its shares.
VIEWS = ".views"
#: Seconds a resize waits for the bindfs of views it just unmounted to let go of the share.
VIEW_EXIT_S = 2.0
#: <linux/loop.h>: reread the backing file's size.
LOOP_SET_CAPACITY = 0x4C07
#: Seconds mkfs, e2fsck or resize2fs may take.
TOOL_TIMEOUT_S = 300.0
#: Names as Azure allows them (checked again here: they become paths).
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_SHARE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def _superblock(image: Path) -> bytes | None:
    """The ext4 superblock of an image (1024 bytes at 1024), None when it is none."""
    with open(image, "rb") as f:
        f.seek(1024)
        sb = f.read(1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 0x38)[0] != 0xEF53:
        return None
    return sb


def journal_extents(image: Path) -> list[tuple[int, int]]:
    """(offset, length) in bytes of the journal's blocks in a share's image, read from
    the superblock's copy of the journal inode's extents (``s_jnl_blocks``); empty
    where there is none to read (no ext4, an external or fragmented journal)."""
    sb = _superblock(image)
    # s_journal_inum 8, s_jnl_backup_type 1 (EXT3_JNL_BACKUP_BLOCKS): the journal
    # inode's i_block, an extent header and up to 4 extents (depth 0: mkfs makes one).
    if sb is None or struct.unpack_from("<I", sb, 0xE0)[0] != 8 or sb[0xFD] != 1:
        return []
    magic, entries, _, depth = struct.unpack_from("<HHHH", sb, 0x10C)
    if magic != 0xF30A or depth != 0:
        return []
    block = 1024 << struct.unpack_from("<I", sb, 0x18)[0]
    found = []
    for i in range(min(entries, 4)):
        _, length, start_hi, start_lo = struct.unpack_from("<IHHI", sb, 0x10C + 12 * (i + 1))
        length = length - 32768 if length > 32768 else length  # above: unwritten
        found.append((((start_hi << 32) | start_lo) * block, length * block))
    return found


def bitmap_extents(image: Path) -> list[tuple[int, int]]:
    """(offset, length) in bytes of the block and inode bitmaps of every block group
    of a share's image, read from its group descriptors (contiguous runs: flex_bg
    packs them); empty where they cannot be read (no ext4, meta_bg's scattered
    descriptors)."""
    sb = _superblock(image)
    if sb is None:
        return []
    incompat = struct.unpack_from("<I", sb, 0x60)[0]
    if incompat & 0x10:  # META_BG
        return []
    block = 1024 << struct.unpack_from("<I", sb, 0x18)[0]
    blocks = struct.unpack_from("<I", sb, 0x4)[0]
    size = 32
    if incompat & 0x80:  # 64BIT
        blocks |= struct.unpack_from("<I", sb, 0x150)[0] << 32
        size = max(32, struct.unpack_from("<H", sb, 0xFE)[0])
    first = struct.unpack_from("<I", sb, 0x14)[0]
    per_group = struct.unpack_from("<I", sb, 0x20)[0]
    groups = -(-(blocks - first) // per_group)
    with open(image, "rb") as f:
        f.seek((first + 1) * block)
        table = f.read(groups * size)
    numbers = set()
    for g in range(min(groups, len(table) // size)):
        d = table[g * size:(g + 1) * size]
        for lo, hi in ((0x0, 0x20), (0x4, 0x24)):  # bg_block_bitmap, bg_inode_bitmap
            number = struct.unpack_from("<I", d, lo)[0]
            if size >= 64:
                number |= struct.unpack_from("<I", d, hi)[0] << 32
            if 0 < number < blocks:
                numbers.add(number)
    runs: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if runs and runs[-1][0] + runs[-1][1] == number:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((number, 1))
    return [(start * block, count * block) for start, count in runs]


def reserve_metadata(image: Path) -> None:
    """Allocate the host's blocks under a share's journal and bitmaps (a no-op where
    they are): with the host's disk full, ext4 still commits and writes back what
    every write changes, and the share stays read-write (see the module's
    docstring). OSError (ENOSPC) when the host's disk cannot hold them."""
    extents = journal_extents(image) + bitmap_extents(image)
    fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        for offset, length in extents:
            os.posix_fallocate(fd, offset, length)
    finally:
        os.close(fd)


def image_bytes(quota_gib: int) -> int:
    """The size of a share's image: the quota, plus room for ext4's own metadata
    (journal, inode tables, bitmaps), so that the files can hold the whole quota."""
    quota = quota_gib * GIB
    return quota + quota // 256 + (64 << 20)


class LoopShares:
    """:class:`~skiff.core.shares.ShareDisks` on loop-mounted sparse ext4 images."""

    def __init__(self, root: Path, settings: ShareSettings | None = None) -> None:
        self.top = root
        self.settings = settings or ShareSettings()
        self._lock = threading.RLock()

    # ---- paths ----------------------------------------------------------------------

    def _paths(self, ref: ShareRef) -> tuple[Path, Path, Path]:
        """(image, mount point, record) of a share; ShareError for a name that is not
        Azure's (it would be a path)."""
        if not _ACCOUNT.fullmatch(ref.account) or not _SHARE.fullmatch(ref.share):
            raise ShareError(f"invalid share name {ref.account}/{ref.share}")
        folder = self.top / ref.account
        return (folder / f"{ref.share}.img", folder / ref.share,
                folder / f"{ref.share}.json")

    def _record(self, ref: ShareRef) -> dict[str, int]:
        image, _, record = self._paths(ref)
        if not image.exists():
            raise ShareNotFound(f"the share {ref.share} of {ref.account} is not on this node")
        try:
            data = json.loads(record.read_text())
            return {"quota_gib": int(data["quota_gib"]), "overhead": int(data["overhead"])}
        except (OSError, ValueError, KeyError, TypeError):
            return {"quota_gib": image.stat().st_size // GIB, "overhead": 0}

    def _save(self, ref: ShareRef, quota_gib: int, overhead: int) -> None:
        _, _, record = self._paths(ref)
        temp = record.with_suffix(".json.tmp")
        temp.write_text(json.dumps({"quota_gib": quota_gib, "overhead": overhead}))
        os.replace(temp, record)

    # ---- the protocol ---------------------------------------------------------------

    def names(self) -> list[ShareRef]:
        if not self.top.is_dir():
            return []
        found = []
        for folder in sorted(self.top.iterdir()):
            if folder.is_dir() and _ACCOUNT.fullmatch(folder.name):
                found += [ShareRef(folder.name, image.stem)
                          for image in sorted(folder.glob("*.img"))
                          if _SHARE.fullmatch(image.stem)]
        return found

    def create(self, ref: ShareRef, quota_gib: int) -> None:
        image, point, _ = self._paths(ref)
        if quota_gib < 1:
            raise ShareQuotaTooSmall(f"a share's quota is at least 1 GiB, not {quota_gib}")
        with self._lock:
            if image.exists():
                self._mounted(ref)
                return
            self.capacity().check(self.promised_gib(), quota_gib)
            image.parent.mkdir(parents=True, exist_ok=True)
            partial = image.with_suffix(".img.new")
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            try:
                with open(partial, "xb") as f:
                    f.truncate(image_bytes(quota_gib))
                self._run(self.settings.mkfs, *MKFS_OPTIONS, str(partial))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                raise
            try:
                reserve_metadata(partial)
            except OSError as exc:
                partial.unlink()
                raise NodeStorageFull("the node's storage cannot hold a new share now; "
                                      "ask again later") from exc
            os.replace(partial, image)  # a share is there whole, or not at all
            point.mkdir(exist_ok=True)
            self._mount(image, point)
            os.chmod(point, 0o777)  # noqa: S103 -- anyone may write, as on SMB
            self._save(ref, quota_gib, self._used(point))

    def resize(self, ref: ShareRef, quota_gib: int) -> None:
        image, point, _ = self._paths(ref)
        with self._lock:
            record = self._record(ref)
            old = record["quota_gib"]
            if quota_gib == old:
                return
            self._mounted(ref)
            used = self.usage_bytes(ref)
            if quota_gib < 1 or quota_gib * GIB < used:
                raise ShareQuotaTooSmall(
                    f"the share {ref.share} holds {used / GIB:.2f} GiB: its quota cannot be "
                    f"{quota_gib} GiB")
            if quota_gib > old:
                self.capacity().check(self.promised_gib(), quota_gib - old)
                if not self._grow(image, point, quota_gib):
                    self._offline(ref, image, point, quota_gib)
            else:
                self._offline(ref, image, point, quota_gib)
            # ext4's metadata grows or shrinks with it: what is not the files' is overhead.
            self._save(ref, quota_gib, max(0, self._used(point) - used))

    def remove(self, ref: ShareRef) -> None:
        image, point, record = self._paths(ref)
        with self._lock:
            views = point.parent / VIEWS
            for view in sorted(views.glob(f"{ref.share}@*")) if views.is_dir() else []:
                self._unmount(view)  # its bindfs ends with it
                view.rmdir()
            self._unmount(point)
            for path in (image, record, image.with_suffix(".img.new")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            with contextlib.suppress(FileNotFoundError, OSError):
                point.rmdir()
            with contextlib.suppress(OSError):
                point.parent.rmdir()  # the account's folder, once empty

    def usage_bytes(self, ref: ShareRef) -> int:
        record = self._record(ref)
        return max(0, self._used(self._mounted(ref)) - record["overhead"])

    def root(self, ref: ShareRef) -> Path:
        return self._mounted(ref)

    def view(self, ref: ShareRef, owner: int) -> Path:
        """A bindfs view of the share for containers whose root is the host id ``owner``
        (see the module's docstring); started once, kept, adopted after a restart (a
        view still mounted is used as it is)."""
        root = self._mounted(ref)
        point = root.parent / VIEWS / f"{ref.share}@{owner}"
        if mounts.is_mounted(point):
            return point
        with self._lock:
            if not mounts.is_mounted(point):
                point.mkdir(parents=True, exist_ok=True)
                self._run(self.settings.bindfs, f"--force-user={owner}",
                          f"--force-group={owner}", "--perms=a+rwx", "--chmod-ignore",
                          "--chown-ignore", "--chgrp-ignore", "-o", "allow_other,nosuid,nodev",
                          str(root), str(point))
        return point

    # ---- the node -------------------------------------------------------------------

    def mount_all(self) -> list[str]:
        """Mount every share not mounted (at start: after a reboot, they are not).
        Returns what failed, one line each (a share that fails stays unmounted)."""
        failed = []
        for ref in self.names():
            image, point, _ = self._paths(ref)
            if mounts.is_mounted(point):  # still mounted (a restart): an older skiff's?
                self._reserve(image)
                continue
            try:
                self._mounted(ref)
            except SkiffError as exc:
                failed.append(exc.message)
                log.warning("share %s/%s: %s", ref.account, ref.share, exc.message)
        return failed

    def quota_gib(self, ref: ShareRef) -> int:
        return self._record(ref)["quota_gib"]

    def promised_gib(self) -> int:
        """The sum of the shares' quotas."""
        return sum(self._record(ref)["quota_gib"] for ref in self.names())

    def capacity(self) -> Capacity:
        """What the data root's disk holds for the shares now."""
        probe = self.top if self.top.exists() else self.top.parent
        while not probe.exists():
            probe = probe.parent
        st = os.statvfs(probe)
        taken = 0
        for ref in self.names():
            with contextlib.suppress(OSError):
                taken += self._paths(ref)[0].stat().st_blocks * 512
        return Capacity(free_bytes=st.f_bavail * st.f_frsize, shares_bytes=taken,
                        overcommit=self.settings.overcommit)

    # ---- inside ---------------------------------------------------------------------

    def _mounted(self, ref: ShareRef) -> Path:
        """The share's mount point, mounting it first when it is not."""
        image, point, _ = self._paths(ref)
        if not image.exists():
            raise ShareNotFound(f"the share {ref.share} of {ref.account} is not on this node")
        if mounts.is_mounted(point):
            return point
        with self._lock:
            if not mounts.is_mounted(point):
                point.mkdir(parents=True, exist_ok=True)
                self._mount(image, point)
        return point

    @staticmethod
    def _reserve(image: Path) -> None:
        """:func:`reserve_metadata`, a warning where the host's disk cannot hold it."""
        try:
            reserve_metadata(image)
        except OSError as exc:
            log.warning("share %s: the host's disk cannot hold its journal and bitmaps "
                        "(%s); it turns read-only if the disk fills", image,
                        exc.strerror or exc)

    @classmethod
    def _mount(cls, image: Path, point: Path) -> None:
        cls._reserve(image)  # made at create; again for an older skiff's image, a resize
        try:
            loopdisk.mount(image, point, MOUNT_OPTIONS)
        except SkiffError as exc:
            raise ShareError(f"cannot mount the share at {point}: {exc.message}") from exc
        # mkfs's lost+found is no file of the share's (a new Azure share is empty); e2fsck
        # makes it again when it needs one, and one holding what it found stays.
        with contextlib.suppress(OSError):
            os.rmdir(point / "lost+found")

    @staticmethod
    def _unmount(point: Path) -> None:
        try:
            loopdisk.unmount(point)
        except SkiffError as exc:
            raise ShareError(exc.message) from exc

    @staticmethod
    def _used(point: Path) -> int:
        st = os.statvfs(point)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _run(self, *argv: str) -> None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=TOOL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ShareError(f"{Path(argv[0]).name} failed: {exc}") from exc
        # e2fsck: 1 means errors corrected, which a forced check of a clean one never has.
        if done.returncode not in (0, 1) or (done.returncode == 1
                                             and Path(argv[0]).name != "e2fsck"):
            raise ShareError(f"{Path(argv[0]).name} failed: "
                             f"{(done.stderr or done.stdout).strip()[:500]}")

    def _grow(self, image: Path, point: Path, quota_gib: int) -> bool:
        """Online: a bigger file, the loop device told, the filesystem grown. False
        when the kernel refuses it (no CAP_SYS_RESOURCE, as in some containers)."""
        devices = [dev for dev, file in mounts.loop_devices_below(image.parent)
                   if file == image.resolve()]
        if not devices:
            raise ShareError(f"the share at {point} has no loop device")
        with open(image, "r+b") as f:
            f.truncate(image_bytes(quota_gib))
        fd = os.open(devices[0], os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, LOOP_SET_CAPACITY, 0)
        finally:
            os.close(fd)
        try:
            self._run(self.settings.resize2fs, str(devices[0]))
        except ShareError as exc:
            if "Permission denied" not in exc.message:
                raise
            return False
        # The new groups' bitmaps: their descriptors may not be home yet (the next
        # start reserves whatever this misses).
        self._reserve(image)
        return True

    def _offline(self, ref: ShareRef, image: Path, point: Path, quota_gib: int) -> None:
        """Resize unmounted (ext4 cannot shrink mounted; growing mounted needs
        CAP_SYS_RESOURCE): only when nothing else holds the filesystem."""
        views = point.parent / VIEWS
        mine = sorted(views.glob(f"{ref.share}@*")) if views.is_dir() else []
        if any(self._held_elsewhere(p) for p in [point, *mine] if mounts.is_mounted(p)):
            raise ShareInUse(f"the share {ref.share} is mounted by a container group: its "
                             "quota can change only while no group mounts it")
        for view in mine:  # no group uses them: their bindfs go, made again when needed
            self._unmount(view)
        # Not lazily: busy is an answer. But a bindfs just unmounted may still be exiting,
        # holding the share open for a few milliseconds: that busy is waited out (bounded).
        deadline = time.monotonic() + (VIEW_EXIT_S if mine else 0.0)
        while (err := mounts.libc.umount2(os.fsencode(point), 0)) != 0 \
                and ctypes.get_errno() == errno.EBUSY and time.monotonic() < deadline:
            time.sleep(0.02)
        if err != 0 and mounts.is_mounted(point):
            raise ShareInUse(f"the share {ref.share} is in use: its quota can change only "
                             "while no group mounts it")
        try:
            self._run(self.settings.e2fsck, "-f", "-y", str(image))
            size = image_bytes(quota_gib)
            if size > image.stat().st_size:
                with open(image, "r+b") as f:
                    f.truncate(size)
            self._run(self.settings.resize2fs, str(image), f"{size >> 10}K")
            with open(image, "r+b") as f:
                f.truncate(size)
        finally:
            self._mount(image, point)

    @staticmethod
    def _held_elsewhere(point: Path) -> bool:
        """Whether the filesystem at ``point`` is mounted in another mount namespace
        (a container's) or bound elsewhere in ours."""
        st = os.stat(point)
        device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        own = os.readlink("/proc/self/ns/mnt")
        seen = set()
        count = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                ns = os.readlink(proc / "ns" / "mnt")
                if ns in seen:
                    continue
                seen.add(ns)
                lines = (proc / "mountinfo").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.split()[2] == device:
                    if ns != own:
                        return True
                    count += 1
        return count > 1

