"""File shares on the node's disk (skiff.engine.shares) and azureFile volumes in groups.

Real share disks (sparse ext4 images, loop-mounted) and a real supervisor; the
resolver is the test's own input (a dict of keys), as the storage service is
the caller's.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.shares import ShareRef
from skiff.core.spec import AzureFileVolume, Volume, VolumeMount
from skiff.engine import mounts
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.shares import VIEWS, LoopShares
from skiff.errors import NodeStorageFull, ShareMountFailed, ShareQuotaTooSmall
from skiff.settings import RuntimeSettings, Settings, ShareSettings
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import supervising, wait_view
from skiff.testing.groups import FAST_BACKOFF, GroupMaker, box, fast_supervising, group_spec

pytestmark = pytest.mark.root

KEY = "a2V5MQ=="
MIB = 1 << 20


class Keys:
    """The test's resolver: an account's key per share it has."""

    def __init__(self, shares: LoopShares) -> None:
        self.shares = shares
        self.keys: dict[str, str] = {}

    def check(self, ref: ShareRef, key: str) -> None:
        if ref.account not in self.keys:
            raise ShareMountFailed(f"the storage account {ref.account} does not exist")
        if key != self.keys[ref.account]:
            raise ShareMountFailed(f"the key given for the storage account {ref.account} "
                                   "is not one of its keys")
        if ref not in self.shares.names():
            raise ShareMountFailed(f"the share {ref.share} of {ref.account} does not exist")


@pytest.fixture
def shares(tmp_path: Path) -> Iterator[LoopShares]:
    disks = LoopShares(tmp_path / "root" / "shares")
    try:
        yield disks
    finally:
        mounts.unmount_below(tmp_path / "root")


@pytest.fixture
def share_engine(tmp_path: Path, images: BuiltImages,
                 shares: LoopShares) -> Iterator[tuple[Supervisor, Keys]]:
    keys = Keys(shares)
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1))
    with supervising(settings, allow=images.endpoints, backoff=FAST_BACKOFF,
                     monitor_interval_s=0.05, shares=shares, resolver=keys) as supervisor:
        yield supervisor, keys


def new_share(shares: LoopShares, keys: Keys | None = None, quota_gib: int = 1) -> ShareRef:
    ref = ShareRef("acct" + uuid.uuid4().hex[:8], "data")
    shares.create(ref, quota_gib)
    if keys is not None:
        keys.keys[ref.account] = KEY
    return ref


def fill(path: Path, limit_mib: int) -> int:
    """MiB written into ``path`` before ENOSPC (or ``limit_mib``)."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while written < limit_mib:
                f.write(b"x" * MIB)
                f.flush()
                os.fsync(f.fileno())
                written += 1
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return written


# ---- the disks alone ----------------------------------------------------------------------


def test_quota_is_the_filesystem_size_and_other_shares_are_unaffected(shares: LoopShares) -> None:
    """A write past the quota fails with ENOSPC; another share still takes writes."""
    one, two = new_share(shares), new_share(shares)
    written = fill(shares.root(one) / "big", 2048)
    assert 900 <= written < 1100  # 1 GiB, less ext4's own
    assert fill(shares.root(two) / "f", 10) == 10
    assert shares.usage_bytes(one) >= 900 * MIB
    assert shares.usage_bytes(two) < 20 * MIB


def test_raise_grows_lower_refused_below_usage_and_shrinks_above(shares: LoopShares) -> None:
    ref = new_share(shares)
    root = shares.root(ref)
    (root / "keep").write_bytes(b"k" * (300 * MIB))
    shares.resize(ref, 2)
    assert shares.quota_gib(ref) == 2
    assert os.statvfs(root).f_blocks * os.statvfs(root).f_frsize > 1.9 * (1 << 30)
    assert fill(root / "more", 1500) == 1500  # past the old quota
    with pytest.raises(ShareQuotaTooSmall):
        shares.resize(ref, 1)  # 1.8 GiB held
    (root / "more").unlink()
    view = shares.view(ref, 0)  # a view no group uses does not stop a shrink
    shares.resize(ref, 1)
    assert (shares.view(ref, 0) / "keep").stat().st_size == 300 * MIB
    assert view == shares.view(ref, 0)
    assert shares.quota_gib(ref) == 1
    assert (root / "keep").read_bytes() == b"k" * (300 * MIB)
    assert fill(root / "again", 2048) < 800


def test_overcommit_bounds_the_sum_of_quotas(tmp_path: Path) -> None:
    """Beyond the free disk times the overcommit: NodeStorageFull, nothing made."""
    disks = LoopShares(tmp_path / "shares", ShareSettings(overcommit=1))
    free_gib = disks.capacity().limit_gib
    with pytest.raises(NodeStorageFull) as info:
        disks.create(ShareRef("acct", "huge"), free_gib + 1)
    assert "GiB" in info.value.message
    assert disks.names() == []


def test_data_survives_an_unmount_and_a_new_instance(shares: LoopShares) -> None:
    """What a restart or a reboot does: another LoopShares on the same root finds the
    share and mounts it again with its files."""
    ref = new_share(shares)
    assert os.listdir(shares.root(ref)) == []  # empty, as a new Azure share: no lost+found
    (shares.root(ref) / "f").write_text("kept")
    mounts.unmount_below(shares.top)
    again = LoopShares(shares.top)
    assert again.names() == [ref]
    assert again.mount_all() == []
    assert (again.root(ref) / "f").read_text() == "kept"
    assert os.listdir(again.root(ref)) == ["f"]
    again.remove(ref)
    assert again.names() == []
    assert not mounts.strictly_below(shares.top)


# ---- in groups ----------------------------------------------------------------------------


def share_volume(ref: ShareRef, *, key: str = KEY, read_only: bool = False) -> Volume:
    return Volume("files", AzureFileVolume(account=ref.account, share=ref.share, key=key,
                                           read_only=read_only))


def test_two_groups_share_read_write_and_a_read_only_mount_gets_erofs(
    share_engine: tuple[Supervisor, Keys], shares: LoopShares, images: BuiltImages,
    group: GroupMaker,
) -> None:
    engine, keys = share_engine
    ref = new_share(shares, keys)
    mount = (VolumeMount("files", "/mnt/files"),)
    writer = group(box(images, "c", "echo one > /mnt/files/a; sleep 300", volume_mounts=mount),
                   volumes=(share_volume(ref),))
    other = group(box(images, "c", "while [ ! -f /mnt/files/a ]; do sleep 0.05; done; "
                      "cat /mnt/files/a; echo two > /mnt/files/b; sleep 300",
                      volume_mounts=mount), volumes=(share_volume(ref),))
    reader = group(box(images, "c", "touch /mnt/files/ro 2>&1 | grep -o 'Read-only'; "
                       "sleep 300", volume_mounts=mount),
                   volumes=(share_volume(ref, read_only=True),))
    for spec in (writer, other, reader):
        engine.run(spec)
    wait_view(engine, other.id, lambda v: engine.logs(other.id, "c") == "one\n")
    wait_view(engine, reader.id, lambda v: engine.logs(reader.id, "c") == "Read-only\n")
    assert (shares.root(ref) / "b").read_text() == "two\n"
    assert not (shares.root(ref) / "ro").exists()
    for spec in (writer, other, reader):
        engine.delete(spec.id)
    assert sorted(p.name for p in shares.root(ref).iterdir()) == ["a", "b"]


def test_files_look_as_on_aci_smb_owned_by_root_0777_chmod_chown_ignored(
    share_engine: tuple[Supervisor, Keys], shares: LoopShares, images: BuiltImages,
    group: GroupMaker,
) -> None:
    engine, keys = share_engine
    ref = new_share(shares, keys)
    (shares.root(ref) / "host").write_text("h")
    os.chown(shares.root(ref) / "host", 1234, 1234)
    os.chmod(shares.root(ref) / "host", 0o600)
    spec = group(box(images, "c", "cd /mnt/files && touch f && chmod 600 f && chown 55:55 f "
                     "&& mkdir d && chmod 700 d && stat -c '%n %u %g %a' f d host; sleep 300",
                     volume_mounts=(VolumeMount("files", "/mnt/files"),)),
                 volumes=(share_volume(ref),))
    engine.run(spec)
    wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "c").count("\n") == 3)
    assert engine.logs(spec.id, "c") == "f 0 0 777\nd 0 0 777\nhost 0 0 777\n"
    engine.delete(spec.id)
    assert (shares.root(ref) / "f").exists()  # on the share, whatever its owner there


def test_a_container_past_the_quota_gets_enospc(
    share_engine: tuple[Supervisor, Keys], shares: LoopShares, images: BuiltImages,
    group: GroupMaker,
) -> None:
    engine, keys = share_engine
    ref, other = new_share(shares, keys), new_share(shares)
    spec = group(box(images, "c", "dd if=/dev/zero of=/mnt/files/big bs=1M count=2000 "
                     "2>&1 | grep -o 'No space left'; sleep 300",
                     volume_mounts=(VolumeMount("files", "/mnt/files"),)),
                 volumes=(share_volume(ref),))
    engine.run(spec)
    wait_view(engine, spec.id, lambda v: "No space left" in engine.logs(spec.id, "c"),
              timeout_s=60)
    assert fill(shares.root(other) / "f", 10) == 10
    engine.delete(spec.id)
    assert shares.usage_bytes(ref) > 900 * MIB  # the data outlives the group


def test_a_wrong_key_fails_the_group_with_failed_mount(
    share_engine: tuple[Supervisor, Keys], shares: LoopShares, images: BuiltImages,
    group: GroupMaker,
) -> None:
    engine, keys = share_engine
    ref = new_share(shares, keys)
    wrong = "d3JvbmdrZXk="
    spec = group(box(images, "c", "sleep 300",
                     volume_mounts=(VolumeMount("files", "/mnt/files"),)),
                 volumes=(share_volume(ref, key=wrong),))
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.state == "Failed")
    failed = [e for e in view.events if e.name == "FailedMountAzureFileVolume"]
    assert failed
    assert "not one of its keys" in failed[0].message
    assert wrong not in str(engine.view(spec.id).to_json())
    volumes = engine.settings.data_root / "volumes"
    assert [p for p in mounts.mount_points() if p.is_relative_to(volumes)] == []
    engine.delete(spec.id)


def test_no_resolver_fails_azure_file_volumes(tmp_path: Path, images: BuiltImages,
                                              group: GroupMaker) -> None:
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1))
    with fast_supervising(settings, allow=images.endpoints) as engine:
        spec = group(box(images, "c", "sleep 300"),
                     volumes=(share_volume(ShareRef("acct", "data")),))
        engine.run(spec)
        view = wait_view(engine, spec.id, lambda v: v.state == "Failed")
        assert any(e.name == "FailedMountAzureFileVolume" and "no file shares" in e.message
                   for e in view.events)


def test_under_userns_remap_the_container_root_owns_the_files(
    tmp_path: Path, images: BuiltImages,
) -> None:
    """Under --userns-remap the view's owner is the remapped root: the container sees its
    files as root's, 0777, its chmod and chown ignored, and writes them (runc: the
    remapping is runc's; a sandbox has its own, covered above)."""
    data_root = Path(tempfile.mkdtemp(prefix="skiff-shares-"))
    os.chmod(data_root, 0o711)  # noqa: S103 -- as skiff.server does
    shares = LoopShares(data_root / "shares")
    keys = Keys(shares)
    settings = Settings(data_root=data_root,
                        runtime=RuntimeSettings(stop_grace_s=1, userns=(300000, 65536)))
    try:
        with supervising(settings, allow=images.endpoints, backoff=FAST_BACKOFF,
                         monitor_interval_s=0.05, shares=shares, resolver=keys) as engine:
            ref = new_share(shares, keys)
            spec = group_spec(box(images, "c", "cd /mnt/files && echo w > f && chmod 600 f "
                                  "&& chown 7:7 f && stat -c '%u %g %a' f; sleep 300",
                                  volume_mounts=(VolumeMount("files", "/mnt/files"),)),
                              volumes=(share_volume(ref),))
            engine.run(spec)
            wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "c") != "")
            assert engine.logs(spec.id, "c") == "0 0 777\n"
            assert (shares.root(ref) / "f").read_text() == "w\n"
            engine.delete(spec.id)
    finally:
        mounts.unmount_below(data_root)
        shutil.rmtree(data_root, ignore_errors=True)


def test_a_restarted_supervisor_adopts_the_group_and_its_share_view(
    share_engine: tuple[Supervisor, Keys], shares: LoopShares, images: BuiltImages,
    group: GroupMaker,
) -> None:
    """skiff goes away while a group writes on a share: the next one adopts the group
    (not restarted), its mount and the share's view as they are (no second bindfs), and
    the data is there; deleting the group then leaves the data."""
    engine, keys = share_engine
    ref = new_share(shares, keys)
    spec = group(box(images, "c", "echo before > /mnt/files/f; sleep 300",
                     volume_mounts=(VolumeMount("files", "/mnt/files"),)),
                 volumes=(share_volume(ref),))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF,
                       shares=shares, resolver=keys)
    try:
        started = first.run(spec)
        wait_view(first, spec.id, lambda v: (shares.root(ref) / "f").exists())
    finally:
        first.close()  # skiff goes away; conmon and bindfs keep running
    views = [p for p in mounts.mount_points() if VIEWS in p.parts]
    view = engine.run(spec)  # adopted
    assert view.containers[0].current.start_time == started.containers[0].current.start_time
    assert [p for p in mounts.mount_points() if VIEWS in p.parts] == views
    assert (shares.root(ref) / "f").read_text() == "before\n"
    engine.delete(spec.id)
    assert (shares.root(ref) / "f").read_text() == "before\n"
