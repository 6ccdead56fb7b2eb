"""Row helpers shared by the store's tables, run inside a caller's transaction."""

from __future__ import annotations

import sqlite3

from skiff.store.errors import ResourceGroupBeingDeleted
from skiff.store.records import ResourceGroupRecord, dumps, name_key, subscription_key


def rg_row(conn: sqlite3.Connection, sub: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM resource_groups WHERE subscription = ? AND name_key = ?",
        (subscription_key(sub), name_key(name))).fetchone()
    return row


def insert_rg(conn: sqlite3.Connection, record: ResourceGroupRecord) -> None:
    conn.execute(
        "INSERT INTO resource_groups (subscription, name_key, name, location, tags, created_at,"
        " deleting) VALUES (?, ?, ?, ?, ?, ?, 0)",
        (subscription_key(record.subscription), name_key(record.name), record.name, record.location,
         dumps(record.tags), record.created_at),
    )


def ensure_rg(conn: sqlite3.Connection, sub: str, name: str, location: str, now: float) -> str:
    """The display name of resource group ``name``, created (in ``location``) if missing;
    ResourceGroupBeingDeleted if it is being deleted."""
    row = rg_row(conn, sub, name)
    if row is None:
        insert_rg(conn, ResourceGroupRecord(sub, name, location, {}, now))
        return name
    check_rg_usable(row)
    return str(row["name"])


def check_rg_usable(row: sqlite3.Row) -> None:
    if row["deleting"]:
        raise ResourceGroupBeingDeleted(row["name"])
