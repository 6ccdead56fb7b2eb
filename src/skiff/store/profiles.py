"""Container group profiles and their immutable revisions.

A profile is a resource of a resource group, named as every other (without case). Each
PUT whose definition differs from the current revision's writes revision n+1 and makes
it current; a PUT of the same definition (key order aside) writes nothing, and tags are
the profile's, not a revision's. A revision, once written, never changes: a group made
from revision n (a PUT naming it, an NGroup, a standby pool) is made from what n was
when it was written, whatever the profile became since. Deleting the profile deletes
its revisions with it (groups made from them keep their own definitions).

A revision's secrets (secure environment values, registry passwords, secret volumes...)
are sealed at rest as a group body's are (:mod:`skiff.store.bodysecrets`), under the
context ``<profile uid>@<revision>``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.store.bodysecrets import seal_body, unseal_body
from skiff.store.database import Database
from skiff.store.errors import InvalidResourceLocation
from skiff.store.records import dumps, location_key, name_key, subscription_key
from skiff.store.rows import ensure_rg

PROFILE_TYPE = "Microsoft.ContainerInstance/containerGroupProfiles"


@dataclass(frozen=True)
class ProfileRecord:
    """A profile: its name, tags and current revision (whose definition is ``body``)."""

    uid: str
    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str]
    revision: int
    #: The current revision's definition (location, zones, properties), secrets open.
    body: dict[str, Any]
    created_at: float
    updated_at: float

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{PROFILE_TYPE}/{self.name}")


@dataclass(frozen=True)
class RevisionRecord:
    """One immutable revision of a profile."""

    revision: int
    body: dict[str, Any]
    created_at: float


def _row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM container_group_profiles WHERE subscription = ? AND rg_key = ?"
        " AND name_key = ?", (subscription_key(sub), name_key(rg), name_key(name))).fetchone()
    return row


def _context(uid: str, revision: int) -> str:
    return f"{uid}@{revision}"


class ProfilesMixin(Database):
    """The store's ``container_group_profiles`` and their revisions."""

    def put_profile(self, sub: str, rg: str, name: str, location: str,
                    body: Mapping[str, Any],
                    tags: Mapping[str, str]) -> tuple[ProfileRecord, bool]:
        """Create a profile (revision 1), or update one: a new definition is a new revision,
        new tags replace the old ones. Returns the record and whether it was created.
        ResourceGroupBeingDeleted; InvalidResourceLocation for another location."""
        plain = {k: v for k, v in body.items() if k != "tags"}
        with self.write() as conn:
            now = self.now()
            row = _row(conn, sub, rg, name)
            if row is None:
                rg_name = ensure_rg(conn, subscription_key(sub), rg, location, now)
                uid = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO container_group_profiles (uid, subscription, rg_key, name_key,"
                    " resource_group, name, location, tags, revision, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (uid, subscription_key(sub), name_key(rg), name_key(name), rg_name, name,
                     location, dumps(dict(tags)), now, now))
                self._add_revision(conn, uid, 1, plain, now)
                return self._profile(conn, uid), True
            uid = row["uid"]
            if location_key(row["location"]) != location_key(location):
                raise InvalidResourceLocation(row["name"], row["resource_group"],
                                              row["location"], location)
            current = self._revision_body(conn, uid, row["revision"])
            if dumps(current) != dumps(plain):
                revision = row["revision"] + 1
                self._add_revision(conn, uid, revision, plain, now)
                conn.execute("UPDATE container_group_profiles SET revision = ?, tags = ?,"
                             " updated_at = ? WHERE uid = ?",
                             (revision, dumps(dict(tags)), now, uid))
            elif row["tags"] != dumps(dict(tags)):
                conn.execute("UPDATE container_group_profiles SET tags = ?, updated_at = ?"
                             " WHERE uid = ?", (dumps(dict(tags)), now, uid))
            return self._profile(conn, uid), False

    def update_profile_tags(self, sub: str, rg: str, name: str,
                            tags: Mapping[str, str]) -> ProfileRecord | None:
        """Replace a profile's tags (ARM's PATCH); its revision stays."""
        with self.write() as conn:
            row = _row(conn, sub, rg, name)
            if row is None:
                return None
            conn.execute("UPDATE container_group_profiles SET tags = ?, updated_at = ?"
                         " WHERE uid = ?", (dumps(dict(tags)), self.now(), row["uid"]))
            return self._profile(conn, row["uid"])

    def get_profile(self, sub: str, rg: str, name: str) -> ProfileRecord | None:
        """The profile (names in any case), or None."""
        with self.read() as conn:
            row = _row(conn, sub, rg, name)
            return None if row is None else self._profile(conn, row["uid"])

    def list_profiles(self, sub: str, rg: str | None = None) -> list[ProfileRecord]:
        """The subscription's profiles (those of resource group ``rg``), by group and name."""
        sql = "SELECT uid FROM container_group_profiles WHERE subscription = ?"
        params = [subscription_key(sub)]
        if rg is not None:
            sql += " AND rg_key = ?"
            params.append(name_key(rg))
        with self.read() as conn:
            uids = [r[0] for r in conn.execute(sql + " ORDER BY rg_key, name_key", params)]
            return [self._profile(conn, uid) for uid in uids]

    def profile_revisions(self, sub: str, rg: str, name: str) -> list[RevisionRecord] | None:
        """Every revision of the profile, oldest first; None if there is no such profile."""
        with self.read() as conn:
            row = _row(conn, sub, rg, name)
            if row is None:
                return None
            rows = conn.execute(
                "SELECT revision, body, created_at FROM container_group_profile_revisions"
                " WHERE profile_uid = ? ORDER BY revision", (row["uid"],)).fetchall()
        return [RevisionRecord(r["revision"], self._open(row["uid"], r["revision"], r["body"]),
                               r["created_at"]) for r in rows]

    def profile_revision(self, sub: str, rg: str, name: str,
                         revision: int) -> RevisionRecord | None:
        """Revision ``revision`` of the profile; None if there is no such profile or
        revision."""
        with self.read() as conn:
            row = _row(conn, sub, rg, name)
            if row is None:
                return None
            found = conn.execute(
                "SELECT body, created_at FROM container_group_profile_revisions"
                " WHERE profile_uid = ? AND revision = ?", (row["uid"], revision)).fetchone()
        if found is None:
            return None
        return RevisionRecord(revision, self._open(row["uid"], revision, found["body"]),
                              found["created_at"])

    def delete_profile(self, sub: str, rg: str, name: str) -> bool:
        """Forget a profile and its revisions; False if there was none."""
        with self.write() as conn:
            row = _row(conn, sub, rg, name)
            if row is None:
                return False
            conn.execute("DELETE FROM container_group_profile_revisions WHERE profile_uid = ?",
                         (row["uid"],))
            conn.execute("DELETE FROM container_group_profiles WHERE uid = ?", (row["uid"],))
            return True

    # --- rows ------------------------------------------------------------------------------

    def _add_revision(self, conn: sqlite3.Connection, uid: str, revision: int,
                      body: Mapping[str, Any], now: float) -> None:
        conn.execute("INSERT INTO container_group_profile_revisions (profile_uid, revision,"
                     " body, created_at) VALUES (?, ?, ?, ?)",
                     (uid, revision, dumps(seal_body(body, self.sealer,
                                                     _context(uid, revision))), now))

    def _open(self, uid: str, revision: int, text: str) -> dict[str, Any]:
        return unseal_body(json.loads(text), self.sealer, _context(uid, revision))

    def _revision_body(self, conn: sqlite3.Connection, uid: str,
                       revision: int) -> dict[str, Any]:
        row = conn.execute("SELECT body FROM container_group_profile_revisions"
                           " WHERE profile_uid = ? AND revision = ?",
                           (uid, revision)).fetchone()
        return self._open(uid, revision, row["body"])

    def _profile(self, conn: sqlite3.Connection, uid: str) -> ProfileRecord:
        row = conn.execute("SELECT * FROM container_group_profiles WHERE uid = ?",
                           (uid,)).fetchone()
        return ProfileRecord(uid, row["subscription"], row["resource_group"], row["name"],
                             row["location"], json.loads(row["tags"]), row["revision"],
                             self._revision_body(conn, uid, row["revision"]),
                             row["created_at"], row["updated_at"])


def delete_profiles_of(conn: sqlite3.Connection, sub: str, rg: str) -> None:
    """Delete the profiles of a resource group being deleted (in its transaction)."""
    key = (subscription_key(sub), name_key(rg))
    conn.execute("DELETE FROM container_group_profile_revisions WHERE profile_uid IN"
                 " (SELECT uid FROM container_group_profiles"
                 " WHERE subscription = ? AND rg_key = ?)", key)
    conn.execute("DELETE FROM container_group_profiles WHERE subscription = ? AND rg_key = ?",
                 key)
