"""The group disks' bookkeeping, without root: a start places a disk the pool holds
mounted, makes one only when the pool is empty, adopts a mounted one, and a release
deletes it; the pool refills once the node is quiet and lets go of what it holds.
Making and mounting are a fake's (the real ones are tests/engine/test_disks.py's)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from skiff.engine.volumes.disks import GroupDisks, group_disks
from skiff.errors import VolumeError
from skiff.settings import DiskSettings, Settings
from skiff.testing.waiting import eventually

SIZE = 64 << 20


class FakeDetached:
    """A detached mount: a directory of its own (with the ``lost+found`` of a new ext4),
    open; placing it records a mount of the pooled file's inode."""

    def __init__(self, fs: FakeFilesystems, image: Path, root: Path) -> None:
        self.fs = fs
        self.inode = image.stat().st_ino
        (root / "lost+found").mkdir(parents=True)
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        fs.detached.add(self)

    def fileno(self) -> int:
        return self.fd

    def place(self, target: Path) -> None:
        if self.fs.fail_place:
            raise VolumeError("cannot place")
        assert target not in self.fs.mounts
        self.fs.mounts[target] = self.inode
        self.fs.detached.discard(self)  # placed: a mount of the tree, no longer held

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.fs.detached.discard(self)


class FakeFilesystems:
    """Files for disks, a dict for mounts (target -> the disk file's inode), a set for
    the detached mounts held; counts what it made and when."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[Path] = []
        self.made_at: list[float] = []
        self.mounts: dict[Path, int] = {}
        self.mounted_at_start = 0  # mounts made by attach itself, not placed
        self.detached: set[FakeDetached] = set()
        self.no_detached = False  # a kernel without detached mounts
        self.unmountable: set[str] = set()  # names of files whose filesystem does not mount
        self.fail_place = False

    def make(self, path: Path, size_bytes: int) -> None:
        with open(path, "xb") as f:
            f.truncate(size_bytes)
        self.made.append(path)
        self.made_at.append(time.monotonic())

    def mount(self, image: Path, target: Path) -> None:
        assert target not in self.mounts
        self.mounts[target] = image.stat().st_ino
        self.mounted_at_start += 1

    def mount_detached(self, image: Path) -> FakeDetached:
        if self.no_detached:
            raise NotImplementedError("no detached mounts here")
        if image.name in self.unmountable:
            raise VolumeError(f"cannot mount {image}")
        return FakeDetached(self, image, self.tmp_path / "detached" / uuid.uuid4().hex)

    def unmount(self, target: Path) -> None:
        self.mounts.pop(target, None)

    def mounted(self, target: Path) -> bool:
        return target in self.mounts


def disks(tmp_path: Path, fs: FakeFilesystems, pool_size: int = 2,
          refill_delay_s: float = 0.0) -> GroupDisks:
    return GroupDisks(tmp_path, DiskSettings(group_gb=SIZE / 1e9, pool_size=pool_size),
                      filesystems=fs, refill_delay_s=refill_delay_s)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_start_places_a_disk_held_mounted_and_the_pool_refills(tmp_path: Path) -> None:
    """With the pool full, its disks are held mounted (detached, ready for layers); attach
    renames one and places its mount (no mount on the way, nothing made); the pool is
    refilled in the background once kicked (the start done)."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs)
    gd.prewarm()
    assert gd.pooled() == 2
    assert gd.ready() == 2
    assert len(fs.detached) == 2
    assert all(os.listdir(d.root) == [".layers"] for d in fs.detached)  # lost+found gone
    made = len(fs.made)
    pooled = {p.stat().st_ino for p in gd.pool.iterdir()}
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.made_on_demand == 0
    assert fs.mounted_at_start == 0
    assert gd.image("g1").exists()
    assert fs.mounts[tmp_path / "mnt" / "g1"] == gd.image("g1").stat().st_ino
    assert gd.image("g1").stat().st_ino in pooled  # renamed, not made
    assert gd.ready() == 1
    assert len(fs.made) == made  # the refill waits for the start to be done
    gd.kick()
    eventually(gd.settled, what="the pool refilled", timeout_s=5)
    assert (gd.pooled(), gd.ready()) == (2, 2)
    assert len(fs.made) == made + 1
    gd.close()
    assert fs.detached == set()


def test_the_refill_waits_until_no_start_was_under_way_for_its_delay(tmp_path: Path) -> None:
    """Kicked while starts are under way, the refill makes nothing until the last one is
    done and ``refill_delay_s`` passed; then it fills the pool."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, refill_delay_s=0.2)
    gd.prewarm()
    made = len(fs.made)
    with gd.starting():
        gd.attach("g1", tmp_path / "mnt" / "g1")
        with gd.starting():  # a second start, beside the first
            gd.attach("g2", tmp_path / "mnt" / "g2")
            gd.kick()
        time.sleep(0.3)  # the first start goes on, past the delay the second one's end set
        assert len(fs.made) == made
        assert gd.ready() == 0
        done = time.monotonic()
    eventually(gd.settled, what="the pool refilled", timeout_s=5)
    assert len(fs.made) == made + 2
    assert min(fs.made_at[made:]) >= done + 0.2
    gd.close()


def test_close_unmounts_the_disks_held_and_keeps_their_files(tmp_path: Path) -> None:
    """close lets every disk held mounted go (no mount, no descriptor left); the files stay
    pooled, and the next GroupDisks holds them again without making any."""
    fs = FakeFilesystems(tmp_path)
    fds = open_fds()
    gd = disks(tmp_path, fs)
    gd.prewarm()
    assert open_fds() == fds + 4  # per disk, its file's lock and its mount
    gd.close()
    assert fs.detached == set()
    assert open_fds() == fds
    assert gd.pooled() == 2
    again = disks(tmp_path, fs)
    again.prewarm()
    assert again.ready() == 2
    assert len(fs.made) == 2
    again.close()


def test_a_disk_held_by_another_is_never_taken(tmp_path: Path) -> None:
    """Two skiffs on one data root: the disks one holds mounted are locked, so the other
    neither takes them nor mounts them again; it makes its own."""
    fs = FakeFilesystems(tmp_path)
    first = disks(tmp_path, fs)
    first.prewarm()
    second = disks(tmp_path, fs)
    second.prewarm()  # nothing to hold: the pool is full, all of it held by first
    assert second.ready() == 0
    second.attach("g1", tmp_path / "mnt" / "g1")
    assert second.made_on_demand == 1
    assert first.ready() == 2
    assert len(fs.detached) == 2
    first.attach("g2", tmp_path / "mnt" / "g2")
    assert fs.mounted_at_start == 1  # only second's own, made on demand
    first.close()
    second.close()


def test_without_detached_mounts_the_pool_keeps_files_and_attach_mounts(
    tmp_path: Path
) -> None:
    """On a kernel without detached mounts, the pool holds formatted files and attach
    mounts the one it takes."""
    fs = FakeFilesystems(tmp_path)
    fs.no_detached = True
    gd = disks(tmp_path, fs)
    gd.prewarm()
    assert (gd.pooled(), gd.ready()) == (2, 0)
    assert gd.settled()
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.made_on_demand == 0
    assert fs.mounted_at_start == 1
    assert fs.mounts[tmp_path / "mnt" / "g1"] == gd.image("g1").stat().st_ino
    gd.close()


def test_a_pooled_disk_that_does_not_mount_is_deleted_and_nothing_leaks(
    tmp_path: Path
) -> None:
    """A pooled file whose filesystem does not mount is deleted (no lock, no mount kept),
    the error raised; the next fill makes a good one in its place."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=1)
    bad = gd.pool / "bad.img"
    with open(bad, "xb") as f:
        f.truncate(SIZE)
    fs.unmountable.add(bad.name)
    fds = open_fds()
    with pytest.raises(VolumeError):
        gd.prewarm()
    assert not bad.exists()
    assert open_fds() == fds
    gd.prewarm()
    assert (gd.pooled(), gd.ready()) == (1, 1)
    gd.close()
    assert open_fds() == fds


def test_a_disk_that_cannot_be_placed_is_unmounted(tmp_path: Path) -> None:
    """attach fails when the mount cannot be placed: the disk held is let go (no mount,
    no descriptor left), the group's file stays for release to delete."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=1)
    gd.prewarm()
    fds = open_fds()
    fs.fail_place = True
    target = tmp_path / "mnt" / "g1"
    with pytest.raises(VolumeError):
        gd.attach("g1", target)
    assert fs.detached == set()
    assert open_fds() == fds - 2
    gd.release("g1", target)
    assert gd.ids() == []
    gd.close()


def test_an_empty_pool_makes_the_disk_on_demand(tmp_path: Path) -> None:
    """Without a pooled disk, attach makes one itself and counts it."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=0)
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.made_on_demand == 1
    assert gd.image("g1").stat().st_size == SIZE
    assert gd.pooled() == 0
    assert list((tmp_path / "disks" / "work").iterdir()) == []


def test_attach_adopts_a_mounted_disk_and_remounts_an_unmounted_one(tmp_path: Path) -> None:
    """A second attach (a restarted skiff) keeps the mount; after a reboot (unmounted) the
    group's own disk is mounted again, not a new one."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=0)
    target = tmp_path / "mnt" / "g1"
    gd.attach("g1", target)
    again = GroupDisks(tmp_path, gd.settings, filesystems=fs)
    again.attach("g1", target)
    assert again.made_on_demand == 0
    fs.mounts.clear()  # a reboot
    again.attach("g1", target)
    assert fs.mounts[target] == gd.image("g1").stat().st_ino
    assert again.made_on_demand == 0
    assert len(fs.made) == 1


def test_release_unmounts_and_deletes_and_is_idempotent(tmp_path: Path) -> None:
    """release unmounts the group's disk and deletes its file; again, it does nothing."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=0)
    target = tmp_path / "mnt" / "g1"
    gd.attach("g1", target)
    assert gd.ids() == ["g1"]
    gd.release("g1", target)
    gd.release("g1", target)
    assert fs.mounts == {}
    assert not gd.image("g1").exists()
    assert gd.ids() == []


def test_pooled_disks_of_another_size_are_not_handed_out(tmp_path: Path) -> None:
    """A disk pooled under an older setting is deleted when met, not given to a group."""
    fs = FakeFilesystems(tmp_path)
    old = GroupDisks(tmp_path, DiskSettings(group_gb=2 * SIZE / 1e9, pool_size=1),
                     filesystems=fs)
    old.prewarm()
    old.close()
    gd = disks(tmp_path, fs, pool_size=0)
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.image("g1").stat().st_size == SIZE
    assert gd.made_on_demand == 1
    assert gd.pooled() == 0


def test_files_half_made_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    """work/ holds only disks being made: a new GroupDisks empties it."""
    fs = FakeFilesystems(tmp_path)
    gd = disks(tmp_path, fs, pool_size=0)
    (gd.root / "work" / "half.img").write_bytes(b"x")
    disks(tmp_path, fs, pool_size=0)
    assert list((gd.root / "work").iterdir()) == []


def test_no_limit_means_no_disks_and_limits_are_checked() -> None:
    """group_gb 0 turns the disks off; more than ACI's 50 GB or less than 32 MiB is refused."""
    assert group_disks(Settings(disks=DiskSettings(group_gb=0))) is None
    with pytest.raises(ValueError, match="50"):
        DiskSettings(group_gb=51)
    with pytest.raises(ValueError, match="too small"):
        DiskSettings(group_gb=0.001)
    assert DiskSettings(group_gb=0.064).group_bytes == 61 << 20
