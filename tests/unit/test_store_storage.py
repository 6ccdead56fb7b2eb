"""The store's storage accounts, file shares and share mounts: schema 7 brought over an
older file (mounts read from the stored bodies), keys sealed, names unique on the node,
mounts kept with the group's rows, and a resource group's accounts gone with it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import ArmError, ShareInUse, StorageAccountNotFound
from skiff.store import Mounter, Store, schema

SUB = "Sub-A"
KEYS = ("K" * 60 + "firstkey==", "Q" * 60 + "secondky==")


def group_body(*mounts: tuple[str, str]) -> dict[str, Any]:
    return {"properties": {"containers": [], "volumes": [
        {"name": f"v{i}", "azureFile": {"storageAccountName": a, "shareName": s,
                                        "storageAccountKey": "volume-key"}}
        for i, (a, s) in enumerate(mounts)] + [{"name": "e", "emptyDir": {}}]}}


def files_of(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"))
                    if p.exists())


def test_version_6_file_is_brought_to_7_with_its_mounts(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert schema.migrate(conn, source=str(path), migrations=schema.MIGRATIONS[:6]) == 6
    conn.execute("INSERT INTO resource_groups VALUES ('sub-a', 'rg', 'rg', 'local', '{}', 1, 0)")
    conn.execute(
        "INSERT INTO container_groups (uid, subscription, rg_key, name_key, resource_group,"
        " name, location, body, tags, provisioning_state, desired, generation, created_at,"
        " updated_at) VALUES (?, 'sub-a', 'rg', 'web', 'rg', 'Web', 'local', ?, '{}',"
        " 'Succeeded', 'running', 1, 1.0, 1.0)",
        ("a" * 32, json.dumps(group_body(("Acct", "Data"), ("acct", "other")))))
    conn.close()
    with Store(path) as store:
        assert schema.LATEST >= 7
        assert store.share_mounters("acct", "data") == [Mounter("sub-a", "rg", "Web")]
        assert store.share_mounters("ACCT") == [Mounter("sub-a", "rg", "Web")]
        assert store.share_mounters("acct", "none") == []
    conn = sqlite3.connect(path)
    assert schema.version(conn) == schema.LATEST  # 7 and every later one
    conn.close()


def test_account_keys_are_sealed(tmp_path: Path) -> None:
    path = tmp_path / "skiff.db"
    with Store(path) as store:
        record, created = store.put_account(SUB, "rg", "acct", "local", "StorageV2",
                                            {"name": "Standard_LRS"}, {"a": "b"}, KEYS)
        assert created
        assert record.keys == KEYS
        store.set_account_key("acct", "key2", "R" * 60 + "thirdkey==")
        for key in (*KEYS, "R" * 60):
            assert key.encode() not in files_of(path)
    assert b"acct" in files_of(path)  # the name is no secret
    with Store(path) as store:
        again = store.get_account("ACCT")
        assert again is not None
        assert again.keys == (KEYS[0], "R" * 60 + "thirdkey==")
        assert again.subscription == "sub-a"
        assert again.sku == {"name": "Standard_LRS"}
    # a key copied to another account's row does not open
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("INSERT INTO storage_accounts SELECT 'thief', subscription, rg_key,"
                 " resource_group, location, kind, sku, tags, key1, key2, created_at"
                 " FROM storage_accounts WHERE name = 'acct'")
    conn.commit()
    conn.close()
    with Store(path) as store, pytest.raises(Exception, match="does not open"):
        store.get_account("thief")


def test_names_are_unique_on_the_node(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.put_account(SUB, "rg", "acct", "local", "StorageV2", {"name": "x"}, {}, KEYS)
        for sub, rg in (("other", "rg"), (SUB, "rg2")):
            with pytest.raises(ArmError) as caught:
                store.put_account(sub, rg, "Acct", "local", "StorageV2", {"name": "x"}, {},
                                  KEYS)
            assert caught.value.status == 409
            assert caught.value.code == "StorageAccountAlreadyTaken"
        # the owner's PUT again updates, keys kept
        record, created = store.put_account("SUB-a", "RG", "acct", "local", "FileStorage",
                                            {"name": "y"}, {"t": "1"}, ("n1", "n2"))
        assert not created
        assert record.kind == "FileStorage"
        assert record.keys == KEYS
        assert [a.name for a in store.list_accounts("sub-a")] == ["acct"]
        assert store.list_accounts("other") == []


def test_shares_and_mounts(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(StorageAccountNotFound):
            store.insert_share("acct", "data", 5, {})
        store.put_account(SUB, "rg", "acct", "local", "StorageV2", {"name": "x"}, {}, KEYS)
        made = store.insert_share("acct", "Data", 5, {"a": "1"})
        assert made is not None
        assert made.name == "data"
        assert store.insert_share("acct", "data", 5, {}) is None
        changed = store.update_share("acct", "data", quota_gib=7)
        assert changed is not None
        assert changed.quota_gib == 7
        assert changed.metadata == {"a": "1"}
        assert changed.etag != made.etag

        g, _ = store.put_group(SUB, "rg", "g", "local", group_body(("acct", "data")), {})
        with pytest.raises(ShareInUse) as caught:
            store.delete_share("acct", "data")
        assert caught.value.groups == ("sub-a/rg/g",)
        with pytest.raises(ShareInUse):
            store.delete_account("acct")
        # a new body without the volume releases it
        store.put_group(SUB, "rg", "g", "local", group_body(), {})
        assert store.share_mounters("acct", "data") == []
        store.put_group(SUB, "rg", "g", "local", group_body(("acct", "data")), {})
        store.set_desired(SUB, "rg", "g", "deleted")
        assert store.share_mounters("acct", "data") == []  # being deleted: no longer holds
        store.remove_group(g.uid)
        with store.read() as conn:
            assert conn.execute("SELECT count(*) FROM share_mounts").fetchone()[0] == 0
        assert store.delete_share("acct", "data")
        assert not store.delete_share("acct", "data")


def test_resource_group_delete_takes_its_accounts(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.put_account(SUB, "gone", "acct", "local", "StorageV2", {"name": "x"}, {}, KEYS)
        store.insert_share("acct", "data", 5, {})
        store.put_group(SUB, "keep", "user", "local", group_body(("acct", "data")), {})
        store.put_group(SUB, "gone", "own", "local", group_body(("acct", "data")), {})
        with pytest.raises(ShareInUse) as caught:
            store.delete_resource_group(SUB, "gone")
        assert caught.value.groups == ("sub-a/keep/user",)
        assert store.get_account("acct") is not None
        assert store.get_group(SUB, "gone", "own") is not None
        store.set_desired(SUB, "keep", "user", "deleted")
        assert [g.name for g in store.delete_resource_group(SUB, "gone")] == ["own"]
        assert store.get_account("acct") is None
        assert store.all_shares() == []
