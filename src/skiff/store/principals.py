"""Who may sign in, and what each may do: the node's tenant, its service principals
and their role assignments (the store's half of :mod:`skiff.control.access`).

A service principal signs in with its app id and a secret (the client-credentials
grant). As with API tokens (:mod:`skiff.store.tokens`), a secret is 256 random bits
shown once, and only its SHA-256 is stored: a fast hash, since no speed of hashing
lets anyone guess 256 bits, and a token request must stay a few milliseconds. A
principal may hold several secrets (a reset adds one or replaces them all, as
``az ad sp credential reset --append`` or not).

Role assignments are Microsoft.Authorization's: a role (a built-in role definition's
GUID) held by a principal at a scope (an ARM id). Scopes compare without case, so each
row keeps a key (:func:`scope_key`); a deleted resource's assignments go with it
(:func:`forget_scope`). Every write bumps :attr:`~skiff.store.database.Database.
access_generation`,
which the authorization cache reads to know its answers are stale; the API is the
only writer (the CLI's commands go through it), so an in-process counter is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import uuid
from dataclasses import dataclass

from skiff.store.database import Database
from skiff.store.errors import RoleAssignmentExists, RoleAssignmentUpdateNotPermitted

#: A principal's secret starts with this, so that scanners and people recognise one.
SECRET_PREFIX = "skfs_"  # noqa: S105 (a prefix, not a secret)
_SECRET_BYTES = 32  # 256 bits
#: How long a new secret is valid (az's default for create-for-rbac: one year).
SECRET_LIFETIME_S = 365 * 86400.0


def scope_key(scope: str) -> str:
    """The key two scopes compare by: lower case, no trailing slash (the root is '')."""
    return scope.strip().rstrip("/").lower()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PrincipalRecord:
    """A service principal (no secrets: the store has none)."""

    object_id: str
    app_id: str
    display_name: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PrincipalRecord:
        return cls(row["object_id"], row["app_id"], row["display_name"], row["created_at"])


@dataclass(frozen=True)
class AssignmentRecord:
    """A role assignment: ``principal_id`` holds role ``role_id`` at ``scope``."""

    name: str
    scope: str
    role_id: str
    principal_id: str
    principal_type: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AssignmentRecord:
        return cls(row["name"], row["scope"], row["role_id"], row["principal_id"],
                   row["principal_type"], row["created_at"])


_SP_COLUMNS = "object_id, app_id, display_name, created_at"
_RA_COLUMNS = "name, scope, role_id, principal_id, principal_type, created_at"


class PrincipalsMixin(Database):
    """The store's ``node_identity``, ``service_principals``, ``principal_secrets`` and
    ``role_assignments`` tables."""

    def tenant_id(self) -> str:
        """The node's tenant: a GUID made once, with the store."""
        with self.read() as conn:
            row = conn.execute("SELECT tenant_id FROM node_identity WHERE id = 1").fetchone()
        return str(row[0])

    def known_subscriptions(self) -> list[str]:
        """Every subscription the node knows of: those with resource groups, tokens or
        role assignments (a subscription exists in skiff once something names it)."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT subscription FROM resource_groups WHERE deleting = 0"
                " UNION SELECT subscription FROM tokens WHERE subscription IS NOT NULL"
                " UNION SELECT substr(scope_key, 16) FROM role_assignments"
                " WHERE scope_key LIKE '/subscriptions/%'").fetchall()
        found = {str(row[0]).split("/", 1)[0].lower() for row in rows}
        return sorted(s for s in found if s)

    # --- service principals ------------------------------------------------------------------

    def create_principal(self, display_name: str) -> tuple[PrincipalRecord, str]:
        """A new service principal and its first secret (shown once, never stored)."""
        record = PrincipalRecord(str(uuid.uuid4()), str(uuid.uuid4()), display_name, self.now())
        secret = _new_secret()
        with self.write() as conn:
            conn.execute(f"INSERT INTO service_principals ({_SP_COLUMNS}) VALUES (?, ?, ?, ?)",  # noqa: S608
                         (record.object_id, record.app_id, display_name, record.created_at))
            self._add_secret(conn, record.object_id, secret)
        self._access_changed()
        return record, secret

    def _add_secret(self, conn: sqlite3.Connection, object_id: str, secret: str) -> None:
        now = self.now()
        conn.execute("INSERT INTO principal_secrets (key_id, object_id, secret_sha256, hint,"
                     " end_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (str(uuid.uuid4()), object_id, _digest(secret), secret[:3],
                      now + SECRET_LIFETIME_S, now))

    def principal(self, id_: str) -> PrincipalRecord | None:
        """The principal whose app id or object id is ``id_``."""
        key = id_.strip().lower()
        with self.read() as conn:
            row = conn.execute(f"SELECT {_SP_COLUMNS} FROM service_principals"  # noqa: S608
                               " WHERE app_id = ? OR object_id = ?", (key, key)).fetchone()
        return None if row is None else PrincipalRecord.from_row(row)

    def list_principals(self) -> list[PrincipalRecord]:
        with self.read() as conn:
            rows = conn.execute(f"SELECT {_SP_COLUMNS} FROM service_principals"  # noqa: S608
                                " ORDER BY created_at, display_name").fetchall()
        return [PrincipalRecord.from_row(row) for row in rows]

    def reset_secret(self, id_: str, *, append: bool = False) -> tuple[PrincipalRecord, str] | None:
        """A new secret for the principal (``append``: beside its others, else instead of
        them); None if there is no such principal."""
        record = self.principal(id_)
        if record is None:
            return None
        secret = _new_secret()
        with self.write() as conn:
            if not append:
                conn.execute("DELETE FROM principal_secrets WHERE object_id = ?",
                             (record.object_id,))
            self._add_secret(conn, record.object_id, secret)
        self._access_changed()
        return record, secret

    def delete_principal(self, id_: str) -> bool:
        """Delete the principal, its secrets and its role assignments."""
        record = self.principal(id_)
        if record is None:
            return False
        with self.write() as conn:
            conn.execute("DELETE FROM role_assignments WHERE principal_id = ?",
                         (record.object_id,))
            conn.execute("DELETE FROM service_principals WHERE object_id = ?",
                         (record.object_id,))
        self._access_changed()
        return True

    def check_secret(self, app_id: str, secret: str) -> PrincipalRecord | None:
        """The principal if ``secret`` is one of its current secrets, else None."""
        digest = _digest(secret)
        with self.read() as conn:
            rows = conn.execute(
                "SELECT p.object_id, p.app_id, p.display_name, p.created_at,"
                " s.secret_sha256, s.end_at FROM service_principals AS p"
                " JOIN principal_secrets AS s USING (object_id) WHERE p.app_id = ?",
                (app_id.strip().lower(),)).fetchall()
        now = self.now()
        found = None
        for row in rows:  # every row compared, whichever matches
            if hmac.compare_digest(row["secret_sha256"], digest) and row["end_at"] > now:
                found = PrincipalRecord.from_row(row)
        return found

    # --- role assignments ------------------------------------------------------------------------

    def put_assignment(self, name: str, scope: str, role_id: str, principal_id: str,
                       principal_type: str) -> tuple[AssignmentRecord, bool]:
        """Create the assignment ``name`` (True), or find it as it is (False). Raises
        :class:`RoleAssignmentUpdateNotPermitted` if ``name`` exists with other values,
        :class:`RoleAssignmentExists` if the principal holds the role at the scope under
        another name."""
        record = AssignmentRecord(name.lower(), scope, role_id.lower(), principal_id.lower(),
                                  principal_type, self.now())
        with self.write() as conn:
            row = conn.execute(f"SELECT {_RA_COLUMNS} FROM role_assignments WHERE name = ?",  # noqa: S608
                               (record.name,)).fetchone()
            if row is not None:
                found = AssignmentRecord.from_row(row)
                if (scope_key(found.scope), found.role_id, found.principal_id) != (
                        scope_key(scope), record.role_id, record.principal_id):
                    raise RoleAssignmentUpdateNotPermitted()
                return found, False
            row = conn.execute(
                f"SELECT {_RA_COLUMNS} FROM role_assignments WHERE scope_key = ? AND"  # noqa: S608
                " role_id = ? AND principal_id = ?",
                (scope_key(scope), record.role_id, record.principal_id)).fetchone()
            if row is not None:
                raise RoleAssignmentExists()
            conn.execute(f"INSERT INTO role_assignments ({_RA_COLUMNS}, scope_key)"  # noqa: S608
                         " VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (record.name, scope, record.role_id, record.principal_id,
                          principal_type, record.created_at, scope_key(scope)))
        self._access_changed()
        return record, True

    def get_assignment(self, name: str) -> AssignmentRecord | None:
        with self.read() as conn:
            row = conn.execute(f"SELECT {_RA_COLUMNS} FROM role_assignments WHERE name = ?",  # noqa: S608
                               (name.lower(),)).fetchone()
        return None if row is None else AssignmentRecord.from_row(row)

    def delete_assignment(self, name: str) -> AssignmentRecord | None:
        """Delete an assignment; returns what it was (None: there was none)."""
        found = self.get_assignment(name)
        if found is None:
            return None
        with self.write() as conn:
            conn.execute("DELETE FROM role_assignments WHERE name = ?", (found.name,))
        self._access_changed()
        return found

    def assignments(self, principal_id: str | None = None) -> list[AssignmentRecord]:
        """Every assignment (of one principal), oldest first."""
        query = f"SELECT {_RA_COLUMNS} FROM role_assignments"  # noqa: S608
        params: tuple[str, ...] = ()
        if principal_id is not None:
            query += " WHERE principal_id = ?"
            params = (principal_id.lower(),)
        with self.read() as conn:
            rows = conn.execute(query + " ORDER BY created_at, name", params).fetchall()
        return [AssignmentRecord.from_row(row) for row in rows]


def forget_scope(conn: sqlite3.Connection, scope: str) -> int:
    """Delete the role assignments at ``scope`` and below it (in the caller's write
    transaction), as its resource is deleted: a resource made again later under the same
    name must not inherit what was granted on the old one. Returns how many went."""
    key = scope_key(scope)
    return conn.execute("DELETE FROM role_assignments WHERE scope_key = ?"
                        " OR substr(scope_key, 1, ?) = ?",
                        (key, len(key) + 1, key + "/")).rowcount


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
