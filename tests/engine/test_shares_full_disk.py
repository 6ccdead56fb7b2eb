"""A full host disk under the file shares (skiff.engine.shares): writes fail, shares do not.

The shares' root is a small ext4 of the test's own (a sparse image in tmp_path,
loop-mounted), so that one share's writes fill the *host* long before its quota:
two 1 GiB shares on a 512 MiB host (the overcommit lets them). Share A is filled
through its bindfs view (the mount a group binds) until the host is full; share B
holds a file written before. What the test holds skiff to:

- the writer gets ENOSPC (the loop device's "no space" status, as this kernel
  reports it; EIO on kernels whose loop driver reports every failure as an I/O
  error), at fsync, for the data that did not reach the disk;
- neither share's journal aborts: both stay mounted read-write (the superblock's
  options in /proc/self/mountinfo, not ``ro``/``emergency_ro``), ext4 counts no
  error (``/sys/fs/ext4/<dev>/errors_count``), metadata still commits;
- B takes writes throughout where its image already has the host's blocks (its
  file, overwritten in place during and after the fill): that is what is fair to
  promise; a write needing new host blocks fails while the disk is full;
- once the filler is deleted (its blocks go back to the host: ``discard``), both
  shares take new writes;
- unmounted, both images are clean: ``e2fsck -fn`` finds nothing, and no journal
  is left to replay (no ``needs_recovery``): nothing for a crash-consistent replay
  to fix, and B's file reads back after mounting again.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.shares import ShareRef
from skiff.engine import mounts
from skiff.engine.shares import LoopShares
from skiff.engine.volumes import loopdisk
from skiff.settings import ShareSettings
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

MIB = 1 << 20
#: The host filesystem's size: well under one share's quota (1 GiB), twice under two.
HOST_MIB = 512


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 of its own at ``tmp_path/host``: unmounted, with everything on it
    (shares, their views, their loop devices), pass or fail."""
    image, point = tmp_path / "host.img", tmp_path / "host"
    point.mkdir()
    loopdisk.make(image, HOST_MIB * MIB)
    loopdisk.mount(image, point)
    try:
        yield point
    finally:
        mounts.unmount_below(point)  # the views (their bindfs end), then the shares
        loopdisk.unmount(point)
        # autoclear: a loop device goes with its filesystem's last mount
        assert mounts.loop_devices_below(tmp_path) == []


def superblock_options(point: Path) -> str:
    """The filesystem's own options (mountinfo's last field) at ``point``."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if Path(fields[4]) == point.resolve():
                return fields[-1]
    raise AssertionError(f"nothing is mounted at {point}")


def writable(point: Path) -> None:
    """Mounted read-write, by the mount and by the filesystem (a journal abort sets
    the superblock's ``ro``/``emergency_ro``), with no error counted by ext4."""
    with open("/proc/self/mountinfo") as f:
        mine = [line.split() for line in f if Path(line.split()[4]) == point.resolve()]
    assert mine, f"nothing is mounted at {point}"
    assert "rw" in mine[-1][5].split(","), mine[-1]
    options = superblock_options(point).split(",")
    assert "rw" in options, options
    assert "emergency_ro" not in options, options
    st = os.stat(point)
    device = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve().name
    errors = Path("/sys/fs/ext4") / device / "errors_count"
    assert errors.read_text().strip() == "0", f"{point}: ext4 counted errors"


def overwrite(path: Path, fill: bytes, size: int) -> None:
    """Rewrite ``path`` in place (its blocks stay where they are) and fsync it."""
    with open(path, "r+b", buffering=0) as f:
        for offset in range(0, size, MIB):
            os.pwrite(f.fileno(), fill * MIB, offset)
        os.fsync(f.fileno())


def commit(point: Path) -> None:
    """A metadata change committed through the share's journal (it fails once the
    journal has aborted), then every dirty block written home (a failed home
    write is what aborts a journal at its next checkpoint)."""
    marker = point / "marker"
    marker.touch()
    os.rename(marker, point / "marker2")
    os.unlink(point / "marker2")
    fd = os.open(point, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()


def test_a_full_host_disk_fails_the_writes_not_the_shares(host: Path) -> None:
    shares = LoopShares(host / "shares", ShareSettings(overcommit=16))
    a, b = ShareRef("accounta", "data"), ShareRef("accountb", "data")
    shares.create(a, 1)
    shares.create(b, 1)
    view_a, view_b = shares.view(a, 0), shares.view(b, 0)
    kept = view_b / "kept"
    kept.write_bytes(b"b" * (8 * MIB))
    with open(kept, "rb") as f:
        os.fsync(f.fileno())

    # Fill A until the host is full; B's file is rewritten every 32 MiB meanwhile.
    written, failure = 0, None
    with open(view_a / "filler", "wb", buffering=0) as f:
        while written < 2 * HOST_MIB:  # beyond the host: the loop must end by an error
            try:
                f.write(b"a" * MIB)
                os.fsync(f.fileno())
            except OSError as exc:
                failure = exc
                break
            written += 1
            if written % 32 == 0:
                overwrite(kept, b"c", 8 * MIB)
    assert failure is not None, f"{written} MiB went into a {HOST_MIB} MiB host"
    # ENOSPC on this kernel (the loop driver's BLK_STS_NOSPC); EIO where it reports
    # any failed write as an I/O error. Never EROFS: the share did not turn read-only.
    assert failure.errno in (errno.ENOSPC, errno.EIO), failure
    assert written > HOST_MIB // 2
    # The host is full, not A's quota: A has most of its 1 GiB left.
    host_st, a_st = os.statvfs(host), os.statvfs(shares.root(a))
    assert host_st.f_bavail * host_st.f_frsize < 4 * MIB
    assert a_st.f_bavail * a_st.f_frsize > 400 * MIB

    # While it is full: both shares read-write, their journals alive after every
    # dirty block was written home, and B still takes writes into its own blocks.
    for ref in (a, b):
        commit(shares.root(ref))
        writable(shares.root(ref))
    overwrite(kept, b"d", 8 * MIB)
    assert kept.read_bytes() == b"d" * (8 * MIB)
    for ref in (a, b):
        commit(shares.root(ref))
        writable(shares.root(ref))
    for view in (view_a, view_b):
        assert "rw" in superblock_options(view).split(",")  # bindfs's own view

    # Space given back: the filler deleted, its blocks discarded into the host's holes.
    (view_a / "filler").unlink()
    commit(shares.root(a))
    eventually(lambda: os.statvfs(host).f_bavail * os.statvfs(host).f_frsize > 200 * MIB,
               what="the filler's blocks to go back to the host", timeout_s=20)
    for view in (view_a, view_b):
        with open(view / "after", "wb", buffering=0) as f:
            for _ in range(32):
                f.write(b"e" * MIB)
            os.fsync(f.fileno())
    for ref in (a, b):
        writable(shares.root(ref))

    # Unmounted: nothing to repair, no journal to replay; mounted again, all there.
    mounts.unmount_below(shares.top)
    for ref in (a, b):
        image = shares.top / ref.account / f"{ref.share}.img"
        check = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True,
                               timeout=120, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        header = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True,
                                text=True, timeout=60, check=True).stdout
        assert "needs_recovery" not in header
        assert "Filesystem state:         clean" in header
    assert shares.mount_all() == []
    assert (shares.root(b) / "kept").read_bytes() == b"d" * (8 * MIB)
    assert (shares.root(a) / "after").stat().st_size == 32 * MIB
