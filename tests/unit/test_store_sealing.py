"""The store's secrets at rest: its files alone (database, WAL, shared memory) reveal no
secret, an older file is sealed on opening with nothing left in clear, and without its
node key the store does not open."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from skiff.store import Store, schema
from skiff.store.database import _PROBE_CONTEXT, PROBE, default_key_path
from skiff.store.sealing import PREFIX, Sealer, SealingError, load_key

SUB = "00000000-0000-0000-0000-000000000001"


def secrets() -> dict[str, str]:
    """Fresh secret values, one per kind of secret, unlike anything else in a file."""
    return {kind: f"{kind}-{uuid.uuid4().hex}" for kind in
            ("secure", "init", "password", "file", "key")}


def body(found: dict[str, str]) -> dict[str, Any]:
    """A group body holding each of ``found``'s secrets where the API stores it."""
    return {"location": "local", "properties": {
        "osType": "Linux",
        "initContainers": [{"name": "i", "properties": {
            "image": "busybox", "environmentVariables": [
                {"name": "I", "secureValue": found["init"]}]}}],
        "containers": [{"name": "c", "properties": {
            "image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
            "environmentVariables": [{"name": "S", "secureValue": found["secure"]}]}}],
        "imageRegistryCredentials": [{"server": "r.test", "username": "u",
                                      "password": found["password"]}],
        "volumes": [{"name": "v", "secret": {
                        "f": base64.b64encode(found["file"].encode()).decode()}},
                    {"name": "a", "azureFile": {"shareName": "s", "storageAccountName": "n",
                                                "storageAccountKey": found["key"]}}],
    }}


def forms(found: dict[str, str]) -> list[bytes]:
    """Every way a secret could show in a file: as is, and in base64."""
    out = []
    for value in found.values():
        out += [value.encode(), base64.b64encode(value.encode())]
    return out


def store_files(path: Path) -> dict[str, bytes]:
    """The bytes of the store's files: the database, its WAL and its shared memory."""
    return {p.name: p.read_bytes() for p in (path, path.with_name(path.name + "-wal"),
                                             path.with_name(path.name + "-shm")) if p.exists()}


def assert_nothing_in_clear(path: Path, found: dict[str, str]) -> None:
    files = store_files(path)
    assert path.name in files
    for name, data in files.items():
        for form in forms(found):
            assert form not in data, f"{form!r} is in {name}"


def test_the_store_files_hold_no_secret(tmp_path: Path) -> None:
    """With a group of every kind of secret created, updated and deleted, and the store
    still open (its WAL not checkpointed), no file of the store holds a secret in clear or
    in base64; the store hands the body back whole."""
    path = tmp_path / "skiff.db"
    first, second = secrets(), secrets()
    with Store(path) as store:
        record, _ = store.put_group(SUB, "rg", "g", "local", body(first), {})
        assert record.body == body(first)
        assert store.get_group(SUB, "rg", "g") == record
        updated, _ = store.put_group(SUB, "rg", "g", "local", body(second), {})
        assert updated.generation == 2
        other, _ = store.put_group(SUB, "rg", "h", "local", body(first), {})
        store.set_desired(SUB, "rg", "h", "deleted")
        store.remove_group(other.uid)
        assert path.with_name("skiff.db-wal").stat().st_size > 0
        assert_nothing_in_clear(path, {**first, **second})
    assert_nothing_in_clear(path, {**first, **second})
    with Store(path) as store:
        again = store.get_group(SUB, "rg", "g")
        assert again is not None
        assert again.body == body(second)


def test_the_same_body_again_changes_nothing(tmp_path: Path) -> None:
    """Sealing draws a new nonce each time, but a PUT of the same body (the store compares
    what it opens) still leaves the generation and the stored row alone."""
    path = tmp_path / "skiff.db"
    found = secrets()
    with Store(path) as store:
        first, _ = store.put_group(SUB, "rg", "g", "local", body(found), {})
        with store.read() as conn:
            before = conn.execute("SELECT body FROM container_groups").fetchone()[0]
        again, created = store.put_group(SUB, "rg", "g", "local", body(found), {})
        with store.read() as conn:
            after = conn.execute("SELECT body FROM container_groups").fetchone()[0]
    assert not created
    assert again.generation == first.generation
    assert before == after
    assert PREFIX in before


def test_a_copy_of_the_database_alone_does_not_open(tmp_path: Path) -> None:
    """The database and its WAL copied elsewhere, without the key: the store refuses to
    open (it does not make a new key), and with a new key of its own it refuses too."""
    path = tmp_path / "node" / "skiff.db"
    with Store(path) as store:
        store.put_group(SUB, "rg", "g", "local", body(secrets()), {})
        copy = tmp_path / "copy"
        copy.mkdir()
        for name in store_files(path):
            shutil.copy(path.with_name(name), copy / name)
    with pytest.raises(SealingError, match="missing: restore it"):
        Store(copy / "skiff.db")
    assert not default_key_path(copy / "skiff.db").exists()
    Store(tmp_path / "elsewhere" / "skiff.db").close()  # another store's key
    with pytest.raises(SealingError, match="not the key the store"):
        Store(copy / "skiff.db", key_path=default_key_path(tmp_path / "elsewhere" / "x"))
    shutil.copy(default_key_path(path), tmp_path / "restored.key")
    with Store(copy / "skiff.db", key_path=tmp_path / "restored.key") as restored:
        assert restored.get_group(SUB, "rg", "g") is not None


def test_a_secret_moved_to_another_tenants_row_does_not_open(tmp_path: Path) -> None:
    """A sealed value copied from one tenant's row into another's (by someone who can
    write the file) does not open there: the read fails rather than hand it out."""
    with Store(tmp_path / "skiff.db") as store:
        victim, _ = store.put_group(SUB, "rg", "victim", "local", body(secrets()), {})
        thief, _ = store.put_group("other", "rg", "thief", "local", body(secrets()), {})
        with store.write() as conn:
            rows = {uid: json.loads(text) for uid, text in
                    conn.execute("SELECT uid, body FROM container_groups")}
            stolen = rows[victim.uid]["properties"]["imageRegistryCredentials"][0]["password"]
            rows[thief.uid]["properties"]["imageRegistryCredentials"][0]["password"] = stolen
            conn.execute("UPDATE container_groups SET body = ? WHERE uid = ?",
                         (json.dumps(rows[thief.uid]), thief.uid))
        with pytest.raises(SealingError, match=f"containerGroups/{thief.uid}/properties"):
            store.get_group("other", "rg", "thief")
        assert store.get_group(SUB, "rg", "victim") == victim


def old_file(path: Path, version: int, insert: str,
             rows: list[tuple[str, str, dict[str, Any]]], *, probe: bool = False) -> None:
    """A file at ``version`` holding ``rows`` (uid, name, body) in clear, written by
    ``insert`` (its parameters: uid, subscription, name, name, body JSON) in resource
    group ``rg`` of ``SUB``, the last row deleted and its freed pages left in the WAL;
    with ``probe``, the file is sealed already (its key made, its probe written)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA secure_delete = OFF")
    schema.migrate(conn, source=str(path), migrations=schema.MIGRATIONS[:version])
    if probe:
        sealer = Sealer(load_key(default_key_path(path), create=True))
        conn.execute("INSERT INTO sealing (id, probe) VALUES (1, ?)",
                     (sealer.seal(PROBE, _PROBE_CONTEXT),))
    conn.execute("INSERT INTO resource_groups VALUES (?, 'rg', 'rg', 'local', '{}', 1.0, 0)",
                 (SUB,))
    for uid, name, doc in rows:
        conn.execute(insert, (uid, SUB, name, name, json.dumps(doc)))
    table = insert.split()[2]
    conn.execute(f"DELETE FROM {table} WHERE uid = ?", (rows[-1][0],))  # noqa: S608
    conn.close()


def make_v5(path: Path, found: dict[str, str], gone: dict[str, str]) -> None:
    """A file at version 5 (bodies in clear), with a group holding ``found`` and the
    freed pages of a deleted group that held ``gone``, left in the WAL."""
    old_file(path, 5,
             "INSERT INTO container_groups (uid, subscription, rg_key, name_key,"
             " resource_group, name, location, body, tags, provisioning_state, desired,"
             " generation, created_at, updated_at) VALUES (?, ?, 'rg', ?, 'rg', ?, 'local',"
             " ?, '{}', 'Succeeded', 'running', 3, 1.0, 1.0)",
             [("a" * 32, "web", body(found)), ("b" * 32, "gone", body(gone))])


def test_version_5_is_sealed_on_opening_with_nothing_left_in_clear(tmp_path: Path) -> None:
    """An older file's bodies are sealed by the upgrade, and neither the live rows' old
    text nor a deleted group's remains anywhere in the files (free pages, WAL)."""
    path = tmp_path / "skiff.db"
    found, gone = secrets(), secrets()
    make_v5(path, found, gone)
    assert any(form in data for data in store_files(path).values() for form in forms(found))
    assert any(form in data for data in store_files(path).values() for form in forms(gone))
    with Store(path) as store:
        group = store.get_group(SUB, "rg", "web")
        assert group is not None
        assert group.body == body(found)
        assert group.generation == 3  # sealing is no change for the engine
        assert_nothing_in_clear(path, {**found, **gone})
    assert_nothing_in_clear(path, {**found, **gone})
    conn = sqlite3.connect(path)
    assert schema.version(conn) == schema.LATEST
    conn.close()


def test_an_upgrade_without_the_key_function_seals_nothing(tmp_path: Path) -> None:
    """The sealing migration run without a key (schema.migrate alone) fails and leaves the
    file at version 5, rather than storing a body it could not seal."""
    path = tmp_path / "skiff.db"
    make_v5(path, secrets(), secrets())
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(Exception, match="schema version 6"):
        schema.migrate(conn, source=str(path))
    assert schema.version(conn) == 5
    conn.close()
