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
