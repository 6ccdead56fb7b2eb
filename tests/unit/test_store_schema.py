"""Unit tests for skiff.store's schema: migrations, versions and the connection's settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from skiff.store import SchemaTooNew, Store, StoreError, schema

SUB = "00000000-0000-0000-0000-000000000001"


def make_v1(path: Path) -> None:
    """A file as the first released skiff left it: the v1 script, with a group in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " version INTEGER NOT NULL);"
        + schema.MIGRATIONS[0]
        + "INSERT INTO schema_version VALUES (1, 1);"
        "INSERT INTO resource_groups VALUES ('" + SUB + "', 'rg', 'RG', 'westus', '{}', 1.0, 0);"
        "INSERT INTO container_groups VALUES ('" + "a" * 32 + "', '" + SUB + "', 'rg', 'web',"
        " 'RG', 'Web', 'westus', '{\"properties\":{}}', '{}', 'Succeeded', 'running', 7, NULL,"
        " 1.0, 2.0);"
    )
    conn.close()


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return schema.version(conn)
    finally:
        conn.close()


def test_a_new_file_gets_the_latest_schema(tmp_path: Path) -> None:
    """A new store file is at the latest version, in WAL mode, with every table."""
    Store(tmp_path / "s.db").close()
    assert version_of(tmp_path / "s.db") == schema.LATEST >= 2
    conn = sqlite3.connect(tmp_path / "s.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert {"resource_groups", "container_groups", "operations", "tokens", "dns_labels",
            "schema_version"} <= tables


def test_the_writer_is_durable_and_checks_keys(tmp_path: Path) -> None:
    """Commits fsync (synchronous=FULL), foreign keys hold and a busy timeout is set."""
    with Store(tmp_path / "s.db") as store:
        with store.write() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        with store.read() as conn:
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.execute("PRAGMA query_only").fetchone()[0] == 1
        with pytest.raises(StoreError, match="FOREIGN KEY"), store.write() as conn:
            conn.execute("INSERT INTO dns_labels VALUES ('x', 'no-such-group')")


def test_version_1_migrates_to_the_latest(tmp_path: Path) -> None:
    """A file at version 1 is brought to the latest version on opening, keeping its data, and
    what the later versions added works."""
    path = tmp_path / "old.db"
    make_v1(path)
    assert version_of(path) == 1
    with Store(path) as store:
        group = store.get_group(SUB, "rg", "web")
        assert group is not None
        assert (group.resource_group, group.name, group.generation) == ("RG", "Web", 7)
        assert store.claim_dns_label("web-label", group.uid)  # the v2 table
    assert version_of(path) == schema.LATEST


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    """A file written by a newer skiff is refused with a clear error, and left as it was."""
    path = tmp_path / "new.db"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE schema_version SET version = ?", (schema.LATEST + 1,))
    conn.close()
    with pytest.raises(SchemaTooNew, match=f"schema version {schema.LATEST + 1}") as caught:
        Store(path)
    assert (caught.value.found, caught.value.known) == (schema.LATEST + 1, schema.LATEST)
    assert "upgrade skiff" in str(caught.value)
    assert version_of(path) == schema.LATEST + 1


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    """A migration that fails half-way is rolled back whole: version and tables as before."""
    path = tmp_path / "s.db"
    Store(path).close()
    broken = "CREATE TABLE half_done (x INTEGER);\nCREATE TABLE tokens (y INTEGER);\n"
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(StoreError, match="already exists"):
        schema.migrate(conn, source=str(path), migrations=(*schema.MIGRATIONS, broken))
    assert schema.version(conn) == schema.LATEST
    assert conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'half_done'").fetchone() is None
    assert not conn.in_transaction
    conn.close()


def test_migrating_twice_does_nothing(tmp_path: Path) -> None:
    """Opening a file at the latest version applies nothing (two processes may both try)."""
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    assert schema.migrate(conn, source=str(path)) == schema.LATEST
    conn.close()


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    """A file that is not SQLite gives StoreError, not sqlite3's exception."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, just text that is long enough" * 100)
    with pytest.raises(StoreError):
        Store(path)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("CREATE TABLE a (x);\nCREATE TABLE b (y);\n", ["CREATE TABLE a (x);",
                                                         "CREATE TABLE b (y);"]),
        ("-- why; because\nCREATE TABLE a (x);  -- after; too\n",
         ["-- why; because\nCREATE TABLE a (x);"]),
        ("INSERT INTO t VALUES ('a;b');", ["INSERT INTO t VALUES ('a;b');"]),
        ("CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; DELETE FROM c; END;",
         ["CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; DELETE FROM c; END;"]),
        ("\n-- nothing\n", []),
    ],
)
def test_statements_cut_where_sqlite_does(script: str, expected: list[str]) -> None:
    """Scripts are cut at real statement ends, not at semicolons in comments, strings or
    trigger bodies."""
    assert list(schema.statements(script)) == expected


def test_an_unterminated_statement_is_a_bug() -> None:
    """A migration whose last statement lacks its semicolon is refused, not half-applied."""
    with pytest.raises(ValueError, match="unterminated"):
        list(schema.statements("CREATE TABLE a (x);\nCREATE TABLE b (y)"))


def test_every_released_migration_parses() -> None:
    """Each migration applies cleanly, in order, to an empty in-memory database."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    assert schema.migrate(conn, source=":memory:") == schema.LATEST
    conn.close()


def make_v4(path: Path, resource_groups: list[tuple[str, str]], *rows: str) -> None:
    """A file at version 4 (subscriptions stored as requests wrote them), with resource
    groups (subscription, name) and further ``rows``."""
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, source=str(path), migrations=schema.MIGRATIONS[:4])
    for sub, name in resource_groups:
        conn.execute("INSERT INTO resource_groups VALUES (?, ?, ?, 'local', '{}', 1.0, 0)",
                     (sub, name, name))
    conn.executescript("".join(rows))
    conn.close()


def test_version_5_stores_subscriptions_as_keys(tmp_path: Path) -> None:
    """Subscriptions written in capitals before version 5 become their key in every table,
    their resources are found in any case, and a token made for ``ACME`` still names it."""
    path = tmp_path / "v4.db"
    make_v4(
        path, [("ACME", "rg"), ("Élan", "other")],
        "INSERT INTO container_groups (uid, subscription, rg_key, name_key, resource_group,"
        " name, location, body, tags, provisioning_state, desired, generation, created_at,"
        " updated_at) VALUES ('" + "a" * 32 + "', 'ACME', 'rg', 'web', 'rg', 'web', 'local',"
        " '{}', '{}', 'Succeeded', 'running', 1, 1.0, 1.0);",
        "INSERT INTO virtual_networks VALUES ('ACME', 'rg', 'net', 'rg', 'net', 'local',"
        " '{\"properties\":{}}', '{}', 'guid', 1.0);",
        "INSERT INTO operations VALUES ('op', 'ACME', 'local', '/subscriptions/ACME/x',"
        " '/subscriptions/acme/x', 'create', 'InProgress', NULL, 1.0, NULL, 1);",
        "INSERT INTO tokens VALUES ('t', 'ACME', 'acme', 'feed', 1.0);")
    with Store(path) as store:
        group = store.get_group("acme", "RG", "web")
        assert group is not None
        assert group.subscription == "acme"
        assert store.get_group("ACME", "rg", "web") == group
        assert store.get_vnet("Acme", "rg", "net") is not None
        assert store.get_resource_group("élan", "other") is not None  # beyond ASCII too
        op = store.get_operation("op")
        assert op is not None
        assert op.subscription == "acme"
        assert [t.subscription for t in store.list_tokens()] == ["ACME"]
    assert version_of(path) == schema.LATEST >= 5


def test_subscriptions_that_cannot_be_merged_stop_the_migration(tmp_path: Path) -> None:
    """Two spellings of one subscription holding a resource group of one name cannot both
    become the key: the upgrade fails and leaves the file at version 4, data intact."""
    path = tmp_path / "v4.db"
    make_v4(path, [("ACME", "rg"), ("acme", "rg")])
    with pytest.raises(StoreError, match="schema version 5"):
        Store(path)
    assert version_of(path) == 4
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM resource_groups").fetchone()[0] == 2
    conn.close()


def test_version_10_keeps_each_groups_requests_in_columns(tmp_path: Path) -> None:
    """Groups stored before version 10 get their containers' CPU and memory requests
    summed into columns (what admission sums), and a deployed one counts as settled."""
    path = tmp_path / "v4.db"
    requests = ('{"properties":{"containers":['
                '{"properties":{"resources":{"requests":{"cpu":1.5,"memoryInGB":2}}}},'
                '{"properties":{"resources":{"requests":{"cpu":0.25,"memoryInGB":1}}}}]}}')
    make_v4(
        path, [("acme", "rg")],
        "INSERT INTO container_groups (uid, subscription, rg_key, name_key, resource_group,"
        " name, location, body, tags, provisioning_state, desired, generation, created_at,"
        " updated_at) VALUES ('" + "a" * 32 + "', 'acme', 'rg', 'web', 'rg', 'web', 'local',"
        f" '{requests}', '{{}}', 'Succeeded', 'running', 3, 1.0, 1.0);")
    with Store(path) as store:
        assert store.quota_usage("acme")["StandardCores"] == 1.75
        assert store.holding() == [("a" * 32, 3)]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT cpu, memory_gb FROM container_groups").fetchone() == (1.75, 3.0)
    conn.close()


def test_the_spot_migration_marks_spot_groups(tmp_path: Path) -> None:
    """Groups stored before the Spot columns are Spot where their body says so (any
    case): their cores count in StandardSpotCores, the others' in StandardCores."""
    path = tmp_path / "v4.db"

    insert = ("INSERT INTO container_groups (uid, subscription, rg_key, name_key,"
              " resource_group, name, location, body, tags, provisioning_state, desired,"
              " generation, created_at, updated_at) VALUES ('UID', 'acme', 'rg', 'NAME', 'rg',"
              " 'NAME', 'local', '{\"properties\":{\"priority\":\"PRIORITY\",\"containers\":"
              "[{\"properties\":{\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}]}}',"
              " '{}', 'Succeeded', 'running', 1, 1.0, 2.0);")

    def row(uid: str, name: str, priority: str) -> str:
        return insert.replace("UID", uid * 32).replace("NAME", name).replace("PRIORITY",
                                                                             priority)

    make_v4(path, [("acme", "rg")], row("a", "s", "spot"), row("b", "r", "Regular"))
    with Store(path) as store:
        usage = store.quota_usage("acme")
        assert (usage["StandardSpotCores"], usage["StandardCores"]) == (1, 1)
        spot = store.get_group("acme", "rg", "s")
        assert spot is not None
        assert (spot.spot, spot.evicted, spot.evictions) == (True, 0, 0)


def test_spot_usage_marks_the_spans_of_spot_groups(tmp_path: Path) -> None:
    """The spans written before usage knew Spot are a Spot group's where their group is
    one (still stored), Regular otherwise (another group's, or a deleted group's)."""
    conn = sqlite3.connect(tmp_path / "skiff.db", isolation_level=None)
    before = schema.MIGRATIONS.index(schema._SPOTUSAGE16)
    schema.migrate(conn, source="x", migrations=schema.MIGRATIONS[:before])
    conn.execute("INSERT INTO resource_groups VALUES ('s', 'rg', 'rg', 'local', '{}', 1.0, 0)")
    for uid, spot in (("a", 1), ("b", 0)):
        conn.execute(
            "INSERT INTO container_groups (uid, subscription, rg_key, name_key, resource_group,"
            " name, location, body, tags, provisioning_state, desired, generation, created_at,"
            " updated_at, spot) VALUES (?, 's', 'rg', ?, 'rg', ?, 'local', '{}', '{}',"
            " 'Succeeded', 'running', 1, 1.0, 1.0, ?)", (uid, uid, uid, spot))
    for uid in ("a", "b", "gone"):
        conn.execute("INSERT INTO usage_spans (group_uid, subscription, rg_key, resource_group,"
                     " name, location, cpu, memory_gb, gpu, started_at, last_seen)"
                     " VALUES (?, 's', 'rg', 'rg', ?, 'local', 1, 1, 0, 1.0, 1.0)", (uid, uid))
    schema.migrate(conn, source="x", migrations=schema.MIGRATIONS[:before + 1])
    assert dict(conn.execute("SELECT group_uid, spot FROM usage_spans")) == {
        "a": 1, "b": 0, "gone": 0}
    conn.close()
