"""The group disks' bookkeeping, without root: a start takes a ready disk by a rename,
makes one only when the pool is empty, adopts a mounted one, and a release deletes it.
Making and mounting are a fake's (the real ones are tests/engine/test_disks.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.engine.volumes.disks import GroupDisks, group_disks
from skiff.settings import DiskSettings, Settings
from skiff.testing.waiting import eventually

SIZE = 64 << 20


class FakeFilesystems:
    """Files for disks, a set for mounts; counts what it made."""

    def __init__(self) -> None:
        self.made: list[Path] = []
        self.mounts: dict[Path, Path] = {}  # target -> image

    def make(self, path: Path, size_bytes: int) -> None:
        with open(path, "xb") as f:
            f.truncate(size_bytes)
        self.made.append(path)

    def mount(self, image: Path, target: Path) -> None:
        assert target not in self.mounts
        self.mounts[target] = image

    def unmount(self, target: Path) -> None:
        self.mounts.pop(target, None)

    def mounted(self, target: Path) -> bool:
        return target in self.mounts


def disks(tmp_path: Path, fs: FakeFilesystems, pool_size: int = 2) -> GroupDisks:
    return GroupDisks(tmp_path, DiskSettings(group_gb=SIZE / 1e9, pool_size=pool_size),
                      filesystems=fs)


def test_a_start_takes_a_pooled_disk_and_the_pool_refills(tmp_path: Path) -> None:
    """With the pool full, attach renames a pooled disk (nothing made on the way) and mounts
    it; the pool is refilled in the background once kicked (the start done)."""
    fs = FakeFilesystems()
    gd = disks(tmp_path, fs)
    gd.prewarm()
    assert gd.pooled() == 2
    made = len(fs.made)
    pooled = {p.stat().st_ino for p in gd.pool.iterdir()}
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.made_on_demand == 0
    assert gd.image("g1").exists()
    assert fs.mounts[tmp_path / "mnt" / "g1"] == gd.image("g1")
    assert gd.image("g1").stat().st_ino in pooled  # renamed, not made
    assert len(fs.made) == made  # the refill waits for the start to be done
    gd.kick()
    eventually(lambda: gd.pooled() == 2, what="the pool refilled", timeout_s=5)
    assert len(fs.made) == made + 1
    gd.close()


def test_an_empty_pool_makes_the_disk_on_demand(tmp_path: Path) -> None:
    """Without a pooled disk, attach makes one itself and counts it."""
    fs = FakeFilesystems()
    gd = disks(tmp_path, fs, pool_size=0)
    gd.attach("g1", tmp_path / "mnt" / "g1")
    assert gd.made_on_demand == 1
    assert gd.image("g1").stat().st_size == SIZE
    assert gd.pooled() == 0
    assert list((tmp_path / "disks" / "work").iterdir()) == []


def test_attach_adopts_a_mounted_disk_and_remounts_an_unmounted_one(tmp_path: Path) -> None:
    """A second attach (a restarted skiff) keeps the mount; after a reboot (unmounted) the
    group's own disk is mounted again, not a new one."""
    fs = FakeFilesystems()
    gd = disks(tmp_path, fs, pool_size=0)
    target = tmp_path / "mnt" / "g1"
    gd.attach("g1", target)
    again = GroupDisks(tmp_path, gd.settings, filesystems=fs)
    again.attach("g1", target)
    assert again.made_on_demand == 0
    fs.mounts.clear()  # a reboot
    again.attach("g1", target)
    assert fs.mounts[target] == gd.image("g1")
    assert again.made_on_demand == 0
    assert len(fs.made) == 1


def test_release_unmounts_and_deletes_and_is_idempotent(tmp_path: Path) -> None:
    """release unmounts the group's disk and deletes its file; again, it does nothing."""
    fs = FakeFilesystems()
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
    fs = FakeFilesystems()
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
    fs = FakeFilesystems()
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
