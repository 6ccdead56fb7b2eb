"""A group writes no more than its disk limit on the host: its containers' writable layers
and its emptyDir volumes fill one filesystem of the limit's size, a write beyond it fails
inside the container (ENOSPC), and the disk, its mount and its loop device go with the group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import EmptyDirVolume, RestartPolicy, Volume, VolumeMount
from skiff.engine import mounts
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.volumes.disks import GroupDisks
from skiff.errors import VolumeError
from skiff.settings import DiskSettings, RuntimeSettings, Settings
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import FAST_BACKOFF, GroupMaker, box, fast_supervising
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: The test's limit: small, so that filling it is quick.
LIMIT_BYTES = 64 << 20
#: Writes 100 MiB (more than the limit) into the container's own root filesystem.
FILL_ROOTFS = "dd if=/dev/zero of=/big bs=1M count=100 2>&1; echo rc=$?"


@pytest.fixture
def small(tmp_path: Path, images: BuiltImages) -> Iterator[Supervisor]:
    """A supervisor whose groups may write 64 MiB each."""
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1),
                        disks=DiskSettings(group_gb=LIMIT_BYTES / 1e9, pool_size=1))
    with fast_supervising(settings, allow=images.endpoints) as supervisor:
        yield supervisor


def loop_devices(image: Path) -> list[str]:
    """The loop devices whose backing file is ``image``."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        if backing.read_text().strip().removesuffix(" (deleted)") == str(image):
            found.append(backing.parent.parent.name)
    return found


def on_host(image: Path) -> int:
    """Bytes of the host's disk that ``image`` takes (sparse: only what was written)."""
    return image.stat().st_blocks * 512


def test_writing_past_the_limit_fails_inside_and_stays_within_it_on_the_host(
    small: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A container filling its rootfs past the group's limit gets "No space left on device";
    the group's disk on the host holds no more than the limit."""
    spec = group(box(images, "c", f"{FILL_ROOTFS}; sleep 300"),
                 restart_policy=RestartPolicy.NEVER)
    small.run(spec)
    wait_view(small, spec.id, lambda v: "rc=" in small.logs(spec.id, "c"))
    logs = small.logs(spec.id, "c")
    assert "No space left on device" in logs
    assert "rc=1" in logs
    assert small.volumes.disks is not None
    image = small.volumes.disks.image(spec.id)
    assert 32 << 20 < on_host(image) <= LIMIT_BYTES  # it wrote, and no more than the limit


def test_empty_dir_volumes_count_against_the_same_limit(
    small: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """40 MiB in an emptyDir leave too little of a 64 MiB limit for 40 more in the rootfs."""
    script = ("dd if=/dev/zero of=/data/a bs=1M count=40 2>&1; echo vol=$?; "
              "dd if=/dev/zero of=/b bs=1M count=40 2>&1; echo rootfs=$?; sleep 300")
    spec = group(box(images, "c", script, volume_mounts=(VolumeMount("data", "/data"),)),
                 volumes=(Volume("data", EmptyDirVolume()),), restart_policy=RestartPolicy.NEVER)
    small.run(spec)
    wait_view(small, spec.id, lambda v: "rootfs=" in small.logs(spec.id, "c"))
    logs = small.logs(spec.id, "c")
    assert "vol=0" in logs
    assert "rootfs=1" in logs
    assert "No space left on device" in logs


def test_delete_releases_the_mount_the_loop_device_and_the_file(
    small: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """While the group runs its disk is mounted on a loop device; a delete removes all three."""
    spec = group(box(images, "c", "echo hi > /data/x; sleep 300",
                     volume_mounts=(VolumeMount("data", "/data"),)),
                 volumes=(Volume("data", EmptyDirVolume()),))
    small.run(spec)
    assert small.volumes.disks is not None
    image = small.volumes.disks.image(spec.id)
    target = small.volumes.root / spec.id
    assert len(loop_devices(image)) == 1
    assert str(target) in Path("/proc/self/mountinfo").read_text()
    # the container runs its script after run() returns: wait for its write
    written = eventually(lambda: (target / "data" / "x").read_text(), until=bool,
                         what="the container's write on its disk", timeout_s=20,
                         ignore=(FileNotFoundError,))
    assert written == "hi\n"
    small.delete(spec.id)
    assert loop_devices(image) == []
    assert str(small.settings.data_root) not in Path("/proc/self/mountinfo").read_text()
    assert not image.exists()
    assert small.volumes.disks.ids() == []


def test_a_restarted_skiff_adopts_the_disk_and_its_limit(
    small: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """After skiff restarts, the running group keeps its disk (its files, one loop device)
    and its limit."""
    spec = group(box(images, "c", "echo kept > /data/x; sleep 300",
                     volume_mounts=(VolumeMount("data", "/data"),)),
                 volumes=(Volume("data", EmptyDirVolume()),))
    first = Supervisor(small.settings, networks=small.networks, backoff=FAST_BACKOFF)
    try:
        first.run(spec)
        cid = first.view(spec.id).containers[0].cid
        pid = first.runtime.status(cid).pid
    finally:
        first.close()  # skiff goes away; conmon keeps the container, the disk stays mounted
    view = small.run(spec)
    assert view.state == "Running"
    assert small.runtime.status(cid).pid == pid
    assert small.volumes.disks is not None
    assert len(loop_devices(small.volumes.disks.image(spec.id))) == 1
    kept, _ = small.exec(spec.id, "c", ["cat", "/data/x"]).process.communicate(timeout=10)
    assert kept == b"kept\n"
    filled, _ = small.exec(spec.id, "c", ["sh", "-c", FILL_ROOTFS]).process.communicate(
        timeout=60)
    assert b"No space left on device" in filled


def test_sweep_removes_a_disk_no_group_has(small: Supervisor) -> None:
    """A group's disk left by a crash, mounted, with no group: the sweep unmounts and
    deletes it (runs once: no runtime is involved)."""
    disks = small.volumes.disks
    assert disks is not None
    target = small.volumes.root / "lost-group"
    disks.attach("lost-group", target)
    image = disks.image("lost-group")
    assert loop_devices(image)
    small.sweep(())
    assert loop_devices(image) == []
    assert not image.exists()
    assert str(target) not in Path("/proc/self/mountinfo").read_text()


def test_the_pool_holds_its_disks_mounted_nowhere_and_lets_them_go_at_close(
    tmp_path: Path
) -> None:
    """The pool's disks are mounted detached: each on a loop device, at no mount point; a
    start places one where the group's volumes go (no new loop device), and close lets
    the others go, loop devices with them; their files stay for the next skiff."""
    disks = GroupDisks(tmp_path, DiskSettings(group_gb=LIMIT_BYTES / 1e9, pool_size=2))
    target = tmp_path / "volumes" / "g1"
    try:
        disks.prewarm()
        assert disks.ready() == 2
        pooled = sorted(disks.pool.iterdir())
        assert [len(loop_devices(p)) for p in pooled] == [1, 1]
        assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
        disks.attach("g1", target)
        assert len(loop_devices(disks.image("g1"))) == 1
        assert os.listdir(target) == [".layers"]  # made, lost+found gone, when pooled
        line = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if line.split()[4] == str(target))
        assert {"discard", "noinit_itable"} <= set(line.split()[-1].split(","))  # its options
        (target / "x").write_text("written")
        disks.close()
        kept = [p for p in pooled if p.exists()]
        assert len(kept) == 1  # the other one taken
        assert loop_devices(kept[0]) == []
        assert (target / "x").read_text() == "written"  # the placed one stays mounted
    finally:
        disks.close()
        disks.release("g1", target)
    assert not [d for d, _ in mounts.loop_devices_below(tmp_path)]
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()


def test_a_pooled_file_that_does_not_mount_is_deleted_without_a_loop_device_left(
    tmp_path: Path
) -> None:
    """A pooled file holding no filesystem fails to mount: it is deleted, its loop device
    gone; the next fill makes a good disk."""
    disks = GroupDisks(tmp_path, DiskSettings(group_gb=LIMIT_BYTES / 1e9, pool_size=1))
    bad = disks.pool / "bad.img"
    with open(bad, "xb") as f:
        f.truncate(disks.size_bytes)
    try:
        with pytest.raises(VolumeError, match="cannot mount"):
            disks.prewarm()
        assert not bad.exists()
        assert not mounts.loop_devices_below(tmp_path)
        disks.prewarm()
        assert disks.ready() == 1
    finally:
        disks.close()
    assert not mounts.loop_devices_below(tmp_path)
