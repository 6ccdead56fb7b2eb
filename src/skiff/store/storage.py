"""Storage accounts and their file shares (Microsoft.Storage, Azure Files), and which
container groups mount which share.

An account's name is unique on the node (as in Azure, where it is global), so an
account is found by its name alone; the subscription and resource group it belongs
to are checked by the caller (the API answers another tenant's account as absent).
Its two keys are sealed with the node key (:mod:`skiff.store.sealing`), each bound to
the account's name and the key's name, so that a copy of the file reveals neither.

A share's row is the control plane's truth; its disk (:class:`~skiff.core.shares.ShareDisks`)
follows (:mod:`skiff.control.storage`). ``share_mounts`` says which groups mount which
share: rows written with the group's body (:func:`record_mounts`, from
``volumes[].azureFile``), gone with the group's row. A group being deleted no longer
counts: its containers are on their way out.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.errors import ArmError, ShareInUse, StorageAccountNotFound
from skiff.store.database import Database
from skiff.store.principals import forget_scope
from skiff.store.records import dumps, name_key, subscription_key
from skiff.store.rows import ensure_rg


@dataclass(frozen=True)
class AccountRecord:
    """A storage account as the store holds it, its keys opened."""

    name: str
    subscription: str
    resource_group: str
    location: str
    kind: str
    sku: dict[str, Any]
    tags: dict[str, str]
    created_at: float
    keys: tuple[str, str] = field(repr=False)

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Storage/storageAccounts/{self.name}")


@dataclass(frozen=True)
class ShareRecord:
    account: str
    name: str
    quota_gib: int
    metadata: dict[str, str]
    etag: str
    last_modified: float


@dataclass(frozen=True)
class Mounter:
    """A container group that mounts a share."""

    subscription: str
    resource_group: str
    name: str


def _key_context(account: str, which: str) -> str:
    return f"storage/{account}/{which}"


class StorageMixin(Database):
    """The store's ``storage_accounts``, ``file_shares`` and ``share_mounts`` tables."""

    # --- accounts ----------------------------------------------------------------------------

    def put_account(self, sub: str, rg: str, name: str, location: str, kind: str,
                    sku: Mapping[str, Any], tags: Mapping[str, str],
                    keys: tuple[str, str]) -> tuple[AccountRecord, bool]:
        """Create an account (with ``keys``) or update one of this subscription and
        resource group (its kind, sku and tags; keys and location stay). Returns the
        record and whether it was created. 409 StorageAccountAlreadyTaken when the name is
        another resource group's or subscription's."""
        sub = subscription_key(sub)
        name = name.lower()
        with self.write() as conn:
            row = conn.execute("SELECT * FROM storage_accounts WHERE name = ?",
                               (name,)).fetchone()
            if row is not None:
                if row["subscription"] != sub or row["rg_key"] != name_key(rg):
                    raise ArmError(409, "StorageAccountAlreadyTaken",
                                   f"The storage account named {name} is already taken.")
                conn.execute("UPDATE storage_accounts SET kind = ?, sku = ?, tags = ?"
                             " WHERE name = ?", (kind, dumps(dict(sku)), dumps(dict(tags)),
                                                 name))
                return self._account(conn, name), False
            rg_name = ensure_rg(conn, sub, rg, location, self.now())
            conn.execute(
                "INSERT INTO storage_accounts (name, subscription, rg_key, resource_group,"
                " location, kind, sku, tags, key1, key2, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, sub, name_key(rg), rg_name, location, kind, dumps(dict(sku)),
                 dumps(dict(tags)), self.sealer.seal(keys[0], _key_context(name, "key1")),
                 self.sealer.seal(keys[1], _key_context(name, "key2")), self.now()))
            return self._account(conn, name), True

    def get_account(self, name: str) -> AccountRecord | None:
        """The account of that name (any subscription: the caller checks), or None."""
        with self.read() as conn:
            row = conn.execute("SELECT * FROM storage_accounts WHERE name = ?",
                               (name.lower(),)).fetchone()
        return None if row is None else self._account_of(row)

    def list_accounts(self, sub: str, rg: str | None = None) -> list[AccountRecord]:
        sql, params = "SELECT * FROM storage_accounts WHERE subscription = ?", \
            [subscription_key(sub)]
        if rg is not None:
            sql += " AND rg_key = ?"
            params.append(name_key(rg))
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY name", params).fetchall()
        return [self._account_of(row) for row in rows]

    def set_account_tags(self, name: str, tags: Mapping[str, str]) -> AccountRecord | None:
        with self.write() as conn:
            if conn.execute("UPDATE storage_accounts SET tags = ? WHERE name = ?",
                            (dumps(dict(tags)), name.lower())).rowcount == 0:
                return None
            return self._account(conn, name.lower())

    def set_account_key(self, name: str, which: str, value: str) -> AccountRecord | None:
        """Replace ``key1`` or ``key2``."""
        if which not in ("key1", "key2"):
            raise ValueError(f"not a key name: {which!r}")
        name = name.lower()
        with self.write() as conn:
            if conn.execute(f"UPDATE storage_accounts SET {which} = ? WHERE name = ?",  # noqa: S608
                            (self.sealer.seal(value, _key_context(name, which)),
                             name)).rowcount == 0:
                return None
            return self._account(conn, name)

    def delete_account(self, name: str) -> list[ShareRecord] | None:
        """Delete an account and its shares' rows, unless a group mounts one of them
        (:class:`~skiff.errors.ShareInUse` from ``refuse``); returns the shares that
        went (None: no such account)."""
        name = name.lower()
        with self.write() as conn:
            row = conn.execute("SELECT subscription, rg_key FROM storage_accounts WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                return None
            shares = _shares(conn, name)
            refuse_mounted(conn, [(name, s.name) for s in shares])
            conn.execute("DELETE FROM storage_accounts WHERE name = ?", (name,))
            forgotten = forget_scope(conn, f"/subscriptions/{row['subscription']}/resourceGroups/"
                                           f"{row['rg_key']}/providers/Microsoft.Storage/"
                                           f"storageAccounts/{name}")
        if forgotten:
            self._access_changed()
        return shares

    # --- shares ------------------------------------------------------------------------------

    def insert_share(self, account: str, name: str, quota_gib: int,
                     metadata: Mapping[str, str]) -> ShareRecord | None:
        """Record a new share; None if one of that name exists. StorageAccountNotFound."""
        account, name = account.lower(), name.lower()
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM storage_accounts WHERE name = ?",
                            (account,)).fetchone() is None:
                raise StorageAccountNotFound(f"The storage account {account} was not found.")
            if _share_row(conn, account, name) is not None:
                return None
            conn.execute("INSERT INTO file_shares (account, name, quota_gib, metadata, etag,"
                         " last_modified) VALUES (?, ?, ?, ?, ?, ?)",
                         (account, name, quota_gib, dumps(dict(metadata)), _etag(),
                          self.now()))
            return _share_now(conn, account, name)

    def update_share(self, account: str, name: str, *, quota_gib: int | None = None,
                     metadata: Mapping[str, str] | None = None) -> ShareRecord | None:
        account, name = account.lower(), name.lower()
        with self.write() as conn:
            row = _share_row(conn, account, name)
            if row is None:
                return None
            conn.execute(
                "UPDATE file_shares SET quota_gib = ?, metadata = ?, etag = ?, last_modified = ?"
                " WHERE account = ? AND name = ?",
                (row["quota_gib"] if quota_gib is None else quota_gib,
                 row["metadata"] if metadata is None else dumps(dict(metadata)), _etag(),
                 self.now(), account, name))
            return _share_now(conn, account, name)

    def get_share(self, account: str, name: str) -> ShareRecord | None:
        with self.read() as conn:
            row = _share_row(conn, account.lower(), name.lower())
        return None if row is None else _share_of(row)

    def list_shares(self, account: str) -> list[ShareRecord]:
        with self.read() as conn:
            return _shares(conn, account.lower())

    def all_shares(self) -> list[ShareRecord]:
        """Every share on the node (for the sweep at start)."""
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM file_shares ORDER BY account, name").fetchall()
        return [_share_of(row) for row in rows]

    def delete_share(self, account: str, name: str) -> bool:
        """Forget a share no group mounts (ShareInUse otherwise); False if there was none."""
        account, name = account.lower(), name.lower()
        with self.write() as conn:
            if _share_row(conn, account, name) is None:
                return False
            refuse_mounted(conn, [(account, name)])
            conn.execute("DELETE FROM file_shares WHERE account = ? AND name = ?",
                         (account, name))
            return True

    def share_mounters(self, account: str, share: str | None = None) -> list[Mounter]:
        """The groups (not being deleted) that mount the share (or any share of the account)."""
        with self.read() as conn:
            return _mounters(conn, account.lower(), None if share is None else share.lower())

    # --- rows --------------------------------------------------------------------------------

    def _account(self, conn: sqlite3.Connection, name: str) -> AccountRecord:
        return self._account_of(conn.execute("SELECT * FROM storage_accounts WHERE name = ?",
                                             (name,)).fetchone())

    def _account_of(self, row: sqlite3.Row) -> AccountRecord:
        name = str(row["name"])
        keys = (self.sealer.unseal(row["key1"], _key_context(name, "key1")),
                self.sealer.unseal(row["key2"], _key_context(name, "key2")))
        return AccountRecord(name, str(row["subscription"]), str(row["resource_group"]),
                             str(row["location"]), str(row["kind"]), json.loads(row["sku"]),
                             json.loads(row["tags"]), float(row["created_at"]), keys)


# --- helpers, run inside a caller's transaction ----------------------------------------------


def _etag() -> str:
    return f'"0x{uuid.uuid4().hex[:16].upper()}"'


def _share_row(conn: sqlite3.Connection, account: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM file_shares WHERE account = ? AND name = ?", (account, name)).fetchone()
    return row


def _share_now(conn: sqlite3.Connection, account: str, name: str) -> ShareRecord:
    """The share just written."""
    return _share_of(conn.execute("SELECT * FROM file_shares WHERE account = ? AND name = ?",
                                  (account, name)).fetchone())


def _share_of(row: sqlite3.Row) -> ShareRecord:
    return ShareRecord(str(row["account"]), str(row["name"]), int(row["quota_gib"]),
                       json.loads(row["metadata"]), str(row["etag"]),
                       float(row["last_modified"]))


def _shares(conn: sqlite3.Connection, account: str) -> list[ShareRecord]:
    rows = conn.execute("SELECT * FROM file_shares WHERE account = ? ORDER BY name",
                        (account,)).fetchall()
    return [_share_of(row) for row in rows]


def _mounters(conn: sqlite3.Connection, account: str, share: str | None, *,
              outside: tuple[str, str] | None = None) -> list[Mounter]:
    sql = ("SELECT DISTINCT g.subscription, g.resource_group, g.name FROM share_mounts m"
           " JOIN container_groups g ON g.uid = m.group_uid"
           " WHERE m.account = ? AND g.desired != 'deleted'")
    params: list[object] = [account]
    if share is not None:
        sql += " AND m.share = ?"
        params.append(share)
    if outside is not None:
        sql += " AND NOT (g.subscription = ? AND g.rg_key = ?)"
        params.extend(outside)
    rows = conn.execute(sql + " ORDER BY g.subscription, g.rg_key, g.name_key",
                        params).fetchall()
    return [Mounter(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def refuse_mounted(conn: sqlite3.Connection, shares: Iterable[tuple[str, str]], *,
                   outside: tuple[str, str] | None = None) -> None:
    """ShareInUse if a group (not being deleted; outside the resource group ``outside``,
    a (subscription key, rg key), when given) mounts one of ``shares``. Its ``groups``
    are the mounters as ``subscription/resourceGroup/name``; the service words the
    message for the asking tenant."""
    found: list[Mounter] = []
    names: list[str] = []
    for account, share in shares:
        mounters = _mounters(conn, account, share, outside=outside)
        if mounters:
            names.append(f"{account}/{share}")
            found.extend(m for m in mounters if m not in found)
    if found:
        raise ShareInUse(f"the file share {', '.join(names)} is mounted by container groups",
                         groups=tuple(f"{m.subscription}/{m.resource_group}/{m.name}"
                                      for m in found))


def record_mounts(conn: sqlite3.Connection, uid: str, body: Mapping[str, Any]) -> None:
    """Keep ``share_mounts`` of group ``uid`` as its body's ``volumes[].azureFile`` say."""
    conn.execute("DELETE FROM share_mounts WHERE group_uid = ?", (uid,))
    props = body.get("properties")
    volumes = props.get("volumes") if isinstance(props, dict) else None
    for volume in volumes if isinstance(volumes, list) else []:
        share = _field(volume, "azureFile")
        if not isinstance(share, dict):
            continue
        account, name = _field(share, "storageAccountName"), _field(share, "shareName")
        if isinstance(account, str) and isinstance(name, str):
            conn.execute("INSERT OR IGNORE INTO share_mounts (group_uid, account, share)"
                         " VALUES (?, ?, ?)", (uid, account.lower(), name.lower()))


def _field(mapping: Any, name: str) -> Any:
    """``mapping[name]``, the name matched without case (as the body's secrets are)."""
    if not isinstance(mapping, dict):
        return None
    return next((v for k, v in mapping.items() if isinstance(k, str) and k.lower() == name.lower()),
                None)


def delete_accounts_of(conn: sqlite3.Connection, sub: str, rg: str) -> list[ShareRecord]:
    """Delete the storage accounts of a resource group being deleted; refused
    (ShareInUse) if a group of another resource group mounts one of their shares.
    Returns the shares that went."""
    sub = subscription_key(sub)
    names = [str(r[0]) for r in conn.execute(
        "SELECT name FROM storage_accounts WHERE subscription = ? AND rg_key = ?",
        (sub, name_key(rg))).fetchall()]
    gone: list[ShareRecord] = []
    for account in names:
        gone.extend(_shares(conn, account))
    refuse_mounted(conn, [(s.account, s.name) for s in gone], outside=(sub, name_key(rg)))
    conn.execute("DELETE FROM storage_accounts WHERE subscription = ? AND rg_key = ?",
                 (sub, name_key(rg)))
    return gone
