"""The storage service over a real store and fake share disks (directories): rows first,
then disks; a failed disk withdraws its row; the sweep at start; the key check."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.control.storage import StorageService, default_file_endpoint, new_key
from skiff.core.shares import DEFAULT_QUOTA_GIB, FileShares, ShareRef, ShareResolver
from skiff.errors import (
    NodeStorageFull,
    ShareAlreadyExists,
    ShareInUse,
    ShareMountFailed,
    ShareNotFound,
    ShareQuotaTooSmall,
    StorageAccountNotFound,
)
from skiff.settings import ApiSettings
from skiff.store import Store
from skiff.testing.fakedisks import FakeShareDisks

REF = ShareRef("acct", "data")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "s.db")
    store.put_account("sub", "rg", "acct", "local", "StorageV2", {"name": "x"}, {},
                      (new_key(), new_key()))
    return store


def service(store: Store, tmp_path: Path, capacity: int = 1 << 30) -> StorageService:
    return StorageService(store, FakeShareDisks(tmp_path / "shares", capacity_gib=capacity),
                          file_endpoint=lambda name: f"https://files.test/{name}/")


def test_it_is_the_contract(store: Store, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    shares: FileShares = svc
    resolver: ShareResolver = svc
    assert shares is resolver


def test_share_lifecycle(store: Store, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    info = svc.create_share(REF, metadata={"m": "1"})
    assert info.quota_gib == DEFAULT_QUOTA_GIB
    assert info.metadata == {"m": "1"}
    with pytest.raises(ShareAlreadyExists):
        svc.create_share(REF)
    root = svc.root(REF)
    (root / "f").write_bytes(b"y" * 2048)
    assert svc.get_share(REF, usage=True).usage_bytes == 2048
    assert svc.get_share(REF).usage_bytes is None
    assert svc.set_share(REF, quota_gib=3).quota_gib == 3
    assert svc.set_share(REF, metadata={}).metadata == {}
    assert [s.ref for s in svc.list_shares("acct")] == [REF]
    with pytest.raises(StorageAccountNotFound):
        svc.list_shares("nosuch")
    svc.delete_share(REF)
    assert not root.exists()
    with pytest.raises(ShareNotFound):
        svc.get_share(REF)
    with pytest.raises(ShareNotFound):
        svc.delete_share(REF)


def test_a_disk_refused_leaves_no_row(store: Store, tmp_path: Path) -> None:
    svc = service(store, tmp_path, capacity=10)
    with pytest.raises(NodeStorageFull):
        svc.create_share(REF, 11)
    assert store.get_share("acct", "data") is None
    svc.create_share(REF, 10)
    (svc.root(REF) / "big").write_bytes(b"z" * 10)
    with pytest.raises(NodeStorageFull):
        svc.set_share(REF, quota_gib=11)
    assert svc.get_share(REF).quota_gib == 10  # the row stays as it was


def test_quota_below_usage_is_refused(store: Store, tmp_path: Path) -> None:
    disks = FakeShareDisks(tmp_path / "shares")
    svc = StorageService(store, disks, file_endpoint=str)
    svc.create_share(REF, 2)
    with (svc.root(REF) / "big").open("wb") as f:
        f.truncate((1 << 30) + 1)  # sparse: the fake counts sizes
    with pytest.raises(ShareQuotaTooSmall):
        svc.set_share(REF, quota_gib=1)
    assert svc.get_share(REF).quota_gib == 2
    assert disks.quotas[REF] == 2


def test_sweep_puts_disks_right(store: Store, tmp_path: Path) -> None:
    disks = FakeShareDisks(tmp_path / "shares")
    disks.create(ShareRef("ghost", "left"), 1)  # a disk whose row is gone
    store.insert_share("acct", "data", 4, {})   # a row whose disk never came
    svc = StorageService(store, disks, file_endpoint=str)
    svc.sweep()
    assert disks.names() == [REF]
    assert disks.quotas[REF] == 4
    assert not (tmp_path / "shares" / "ghost" / "left").exists()


def test_check(store: Store, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    key1, key2 = svc.account_keys("acct")
    with pytest.raises(ShareMountFailed, match="share data"):
        svc.check(REF, key1)
    svc.create_share(REF, 1)
    svc.check(REF, key1)
    svc.check(REF, key2)
    with pytest.raises(ShareMountFailed) as caught:
        svc.check(REF, "wrong" + key1)
    assert key1 not in caught.value.message
    assert "wrong" not in caught.value.message
    with pytest.raises(ShareMountFailed, match="nosuch"):
        svc.check(ShareRef("nosuch", "data"), key1)


def test_in_use_wording(store: Store, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    svc.create_share(REF, 1)
    volume = {"name": "v", "azureFile": {"storageAccountName": "acct", "shareName": "data",
                                         "storageAccountKey": "k"}}
    body = {"properties": {"containers": [], "volumes": [volume]}}
    store.put_group("sub", "rg", "mine", "local", body, {})
    store.put_group("SUB", "rg2", "mine2", "local", body, {})
    store.put_group("tenant-b", "hidden", "theirs", "local", body, {})
    with pytest.raises(ShareInUse) as caught:
        svc.delete_share(REF)
    message = caught.value.message
    assert "'mine' (resource group 'rg')" in message
    assert "'mine2'" in message
    assert "a container group of another subscription" in message
    assert "theirs" not in message
    assert "hidden" not in message
    assert "tenant-b" not in message
    assert caught.value.groups == ("rg/mine", "rg2/mine2")


def test_default_file_endpoint() -> None:
    assert default_file_endpoint(ApiSettings())("acct") == "https://127.0.0.1:8444/acct/"
    endpoint = default_file_endpoint(ApiSettings(listen="0.0.0.0:9000"))
    assert endpoint("a") == "https://127.0.0.1:9001/a/"
    assert default_file_endpoint(ApiSettings(listen="[::1]:443"))("a") == "https://[::1]:444/a/"
