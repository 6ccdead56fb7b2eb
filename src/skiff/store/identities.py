"""User-assigned managed identities (``Microsoft.ManagedIdentity/userAssignedIdentities``).

An identity is a resource of a resource group, named as every other (without case),
with a principal (object) id and a client (application) id made when it is created
and kept for its life: a group that names it gets tokens for that principal
(:mod:`skiff.control.identities`). Deleting one leaves the groups that name it as
they are, as in Azure: their tokens for it are refused from then on.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from skiff.store.database import Database
from skiff.store.records import dumps, name_key, subscription_key
from skiff.store.rows import ensure_rg

PROVIDER = "Microsoft.ManagedIdentity"
RESOURCE_TYPE = f"{PROVIDER}/userAssignedIdentities"


@dataclass(frozen=True)
class IdentityRecord:
    """A user-assigned identity as the store holds it."""

    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str]
    tenant_id: str
    principal_id: str
    client_id: str
    created_at: float

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{RESOURCE_TYPE}/{self.name}")


def _record(row: sqlite3.Row) -> IdentityRecord:
    return IdentityRecord(str(row["subscription"]), str(row["resource_group"]),
                          str(row["name"]), str(row["location"]), json.loads(row["tags"]),
                          str(row["tenant_id"]), str(row["principal_id"]),
                          str(row["client_id"]), float(row["created_at"]))


def _row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM user_assigned_identities WHERE subscription = ? AND rg_key = ?"
        " AND name_key = ?", (subscription_key(sub), name_key(rg), name_key(name))).fetchone()
    return row


class IdentitiesMixin(Database):
    """The store's ``user_assigned_identities`` table."""

    def put_identity(self, sub: str, rg: str, name: str, location: str,
                     tags: Mapping[str, str], tenant_id: str) -> tuple[IdentityRecord, bool]:
        """Create an identity (new principal and client ids, in ``tenant_id``) or replace
        the tags of an existing one (its ids, tenant and location stay). Returns the
        record and whether it was created. ResourceGroupBeingDeleted."""
        with self.write() as conn:
            row = _row(conn, sub, rg, name)
            if row is not None:
                conn.execute("UPDATE user_assigned_identities SET tags = ?"
                             " WHERE subscription = ? AND rg_key = ? AND name_key = ?",
                             (dumps(dict(tags)), row["subscription"], row["rg_key"],
                              row["name_key"]))
                found = _row(conn, sub, rg, name)
                assert found is not None
                return _record(found), False
            rg_name = ensure_rg(conn, subscription_key(sub), rg, location, self.now())
            conn.execute(
                "INSERT INTO user_assigned_identities (subscription, rg_key, name_key,"
                " resource_group, name, location, tags, tenant_id, principal_id, client_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (subscription_key(sub), name_key(rg), name_key(name), rg_name, name, location,
                 dumps(dict(tags)), tenant_id, str(uuid.uuid4()), str(uuid.uuid4()),
                 self.now()))
            made = _row(conn, sub, rg, name)
            assert made is not None
            return _record(made), True

    def get_identity(self, sub: str, rg: str, name: str) -> IdentityRecord | None:
        with self.read() as conn:
            row = _row(conn, sub, rg, name)
        return None if row is None else _record(row)

    def identity_by_id(self, resource_id: str) -> IdentityRecord | None:
        """The identity an ARM id names (any case), or None (not one, or none there)."""
        parts = resource_id.strip("/").split("/")
        if (len(parts) != 8 or parts[0].lower() != "subscriptions"
                or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers"
                or f"{parts[5]}/{parts[6]}".lower() != RESOURCE_TYPE.lower()):
            return None
        return self.get_identity(parts[1], parts[3], parts[7])

    def list_identities(self, sub: str, rg: str | None = None) -> list[IdentityRecord]:
        sql = "SELECT * FROM user_assigned_identities WHERE subscription = ?"
        params = [subscription_key(sub)]
        if rg is not None:
            sql += " AND rg_key = ?"
            params.append(name_key(rg))
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY rg_key, name_key", params).fetchall()
        return [_record(row) for row in rows]

    def managed_identity_of(self, object_id: str) -> str | None:
        """The ARM id of the managed identity whose principal (object) id is ``object_id``:
        a user-assigned identity, or the container group whose system identity it is (a
        group being deleted has none); None if no managed identity has it."""
        key = object_id.strip().lower()
        with self.read() as conn:
            row = conn.execute("SELECT subscription, resource_group, name"
                               " FROM user_assigned_identities WHERE lower(principal_id) = ?",
                               (key,)).fetchone()
            if row is not None:
                return (f"/subscriptions/{row[0]}/resourceGroups/{row[1]}/providers/"
                        f"{RESOURCE_TYPE}/{row[2]}")
            row = conn.execute(
                "SELECT subscription, resource_group, name FROM container_groups"
                " WHERE desired != 'deleted'"
                " AND lower(json_extract(body, '$.identity.principalId')) = ?",
                (key,)).fetchone()
        if row is None:
            return None
        return (f"/subscriptions/{row[0]}/resourceGroups/{row[1]}/providers/"
                f"Microsoft.ContainerInstance/containerGroups/{row[2]}")

    def delete_identity(self, sub: str, rg: str, name: str) -> bool:
        """Forget an identity; False if there was none."""
        with self.write() as conn:
            return conn.execute(
                "DELETE FROM user_assigned_identities WHERE subscription = ? AND rg_key = ?"
                " AND name_key = ?",
                (subscription_key(sub), name_key(rg), name_key(name))).rowcount > 0


def delete_identities_of(conn: sqlite3.Connection, sub: str, rg: str) -> None:
    """Delete the identities of a resource group being deleted (in its transaction)."""
    conn.execute("DELETE FROM user_assigned_identities WHERE subscription = ? AND rg_key = ?",
                 (subscription_key(sub), name_key(rg)))
