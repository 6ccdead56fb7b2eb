"""NGroups and their members: the ``ngroups`` and ``ngroup_members`` tables.

An NGroup's row holds its body (as the PUT gave it), what the controller keeps between
rounds (``rollout``: the batch in flight, the pause, a stopped rollout) and its last
events, so that a restart of skiff resumes a rolling update where it was. Two counters:
``version`` is bumped by every new body (the count is established again), ``generation``
only by a change to what members are built from (a new rollout).

A member is an ordinary container group in the NGroup's resource group; its row here
says which generation of the NGroup built it. The container group itself may be gone
(deleted by its tenant): the controller finds that out and forgets the row.

The body's secrets (the per-member volumes' account keys and secret files) are sealed
at rest as a group's are (:mod:`skiff.store.bodysecrets`), under ``ngroups/<uid>``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.errors import ArmError
from skiff.models.ngroups import member_fields
from skiff.store.bodysecrets import seal_body, unseal_body
from skiff.store.database import Database
from skiff.store.records import dumps, name_key, subscription_key
from skiff.store.rows import ensure_rg
from skiff.store.sealing import Sealer

#: Events kept per NGroup (the newest).
MAX_EVENTS = 50
NGROUP_TYPE = "Microsoft.ContainerInstance/ngroups"


@dataclass(frozen=True)
class NGroupRecord:
    uid: str
    subscription: str
    resource_group: str
    name: str
    location: str
    body: dict[str, Any]
    tags: dict[str, str]
    provisioning_state: str
    desired: str  # running | stopped | deleted
    version: int
    generation: int
    rollout: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{NGROUP_TYPE}/{self.name}")

    @classmethod
    def from_row(cls, row: sqlite3.Row, sealer: Sealer) -> NGroupRecord:
        return cls(uid=row["uid"], subscription=row["subscription"],
                   resource_group=row["resource_group"], name=row["name"],
                   location=row["location"], body=_open(row, sealer),
                   tags=json.loads(row["tags"]), provisioning_state=row["provisioning_state"],
                   desired=row["desired"], version=row["version"],
                   generation=row["generation"], rollout=json.loads(row["rollout"]),
                   events=json.loads(row["events"]))


@dataclass(frozen=True)
class MemberRecord:
    name: str
    generation: int
    created_at: float


@dataclass(frozen=True)
class MemberState:
    """A member and what the controller reads of its container group (None: no group):
    one join, no group body unsealed."""

    name: str
    generation: int
    group_uid: str | None
    desired: str | None
    provisioning_state: str | None


class NGroupsMixin(Database):
    """The store's ``ngroups`` and ``ngroup_members`` tables."""

    def put_ngroup(self, sub: str, rg: str, name: str, location: str, body: Mapping[str, Any],
                   tags: Mapping[str, str]) -> tuple[NGroupRecord, bool]:
        """Create or update an NGroup; returns it and whether it was created. A new body
        bumps ``version`` (and ``generation`` if the members' fields changed) and sets
        the state ``Creating``/``Updating``; the same body only replaces the tags."""
        sub = subscription_key(sub)
        body_json, tags_json = dumps(dict(body)), dumps(dict(tags))
        with self.write() as conn:
            now = self.now()
            rg_name = ensure_rg(conn, sub, rg, location, now)
            row = _row(conn, sub, rg, name)
            if row is None:
                uid = uuid.uuid4().hex
                sealed = dumps(seal_body(body, self.sealer, uid, kind="ngroups"))
                conn.execute(
                    "INSERT INTO ngroups (uid, subscription, rg_key, name_key, resource_group,"
                    " name, location, body, tags, provisioning_state, desired, version,"
                    " generation, rollout, events, created_at, updated_at) VALUES (?, ?, ?, ?,"
                    " ?, ?, ?, ?, ?, 'Creating', 'running', 1, 1, '{}', '[]', ?, ?)",
                    (uid, sub, name_key(rg), name_key(name), rg_name, name, location, sealed,
                     tags_json, now, now))
                return self._ngroup(conn, uid), True
            if row["desired"] == "deleted":
                raise ArmError(409, "NGroupDeleting", f"The NGroup '{row['name']}' is being "
                               "deleted; retry once it is gone.")
            old = _open(row, self.sealer)
            if dumps(old) != body_json:
                new_members = member_fields(old) != member_fields(dict(body))
                sealed = dumps(seal_body(body, self.sealer, row["uid"], kind="ngroups"))
                conn.execute(
                    "UPDATE ngroups SET body = ?, tags = ?, provisioning_state = 'Updating',"
                    " version = version + 1, generation = generation + ?, updated_at = ?"
                    " WHERE uid = ?", (sealed, tags_json, int(new_members), now, row["uid"]))
            elif row["tags"] != tags_json:
                conn.execute("UPDATE ngroups SET tags = ?, updated_at = ? WHERE uid = ?",
                             (tags_json, now, row["uid"]))
            return self._ngroup(conn, row["uid"]), False

    def get_ngroup(self, sub: str, rg: str, name: str) -> NGroupRecord | None:
        with self.read() as conn:
            row = _row(conn, subscription_key(sub), rg, name)
            return None if row is None else NGroupRecord.from_row(row, self.sealer)

    def get_ngroup_by_uid(self, uid: str) -> NGroupRecord | None:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM ngroups WHERE uid = ?", (uid,)).fetchone()
            return None if row is None else NGroupRecord.from_row(row, self.sealer)

    def list_ngroups(self, sub: str | None = None, rg: str | None = None) -> list[NGroupRecord]:
        """The NGroups of ``sub`` (None: all, for the controller), of ``rg`` if given."""
        sql, params = "SELECT * FROM ngroups", []
        if sub is not None:
            sql += " WHERE subscription = ?"
            params.append(subscription_key(sub))
            if rg is not None:
                sql += " AND rg_key = ?"
                params.append(name_key(rg))
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY rg_key, name_key", params).fetchall()
        return [NGroupRecord.from_row(row, self.sealer) for row in rows]

    def set_ngroup_desired(self, uid: str, desired: str) -> NGroupRecord | None:
        """Ask for the NGroup's members running, stopped, or the NGroup deleted."""
        with self.write() as conn:
            state = "Deleting" if desired == "deleted" else None
            conn.execute("UPDATE ngroups SET desired = ?, provisioning_state ="
                         " COALESCE(?, provisioning_state), updated_at = ? WHERE uid = ?"
                         " AND desired != 'deleted'", (desired, state, self.now(), uid))
            row = conn.execute("SELECT * FROM ngroups WHERE uid = ?", (uid,)).fetchone()
            return None if row is None else NGroupRecord.from_row(row, self.sealer)

    def update_ngroup_tags(self, uid: str, tags: Mapping[str, str]) -> NGroupRecord | None:
        with self.write() as conn:
            conn.execute("UPDATE ngroups SET tags = ?, updated_at = ? WHERE uid = ?",
                         (dumps(dict(tags)), self.now(), uid))
            row = conn.execute("SELECT * FROM ngroups WHERE uid = ?", (uid,)).fetchone()
            return None if row is None else NGroupRecord.from_row(row, self.sealer)

    def save_rollout(self, uid: str, *, version: int, state: str | None,
                     rollout: Mapping[str, Any], events: list[dict[str, Any]]) -> bool:
        """The controller's round: its state, the provisioning state (None: as it is) and
        new events; only while the NGroup is at ``version`` (a PUT since wins)."""
        with self.write(durable=False) as conn:
            row = conn.execute("SELECT events FROM ngroups WHERE uid = ? AND version = ?",
                               (uid, version)).fetchone()
            if row is None:
                return False
            kept = (json.loads(row["events"]) + events)[-MAX_EVENTS:]
            conn.execute("UPDATE ngroups SET rollout = ?, events = ?, provisioning_state ="
                         " COALESCE(?, provisioning_state) WHERE uid = ?",
                         (dumps(dict(rollout)), dumps(kept), state, uid))
            return True

    def remove_ngroup(self, uid: str) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM ngroup_members WHERE ngroup_uid = ?", (uid,))
            conn.execute("DELETE FROM ngroups WHERE uid = ?", (uid,))

    def members(self, uid: str) -> list[MemberRecord]:
        """The NGroup's members, oldest first."""
        with self.read() as conn:
            rows = conn.execute("SELECT name, generation, created_at FROM ngroup_members"
                                " WHERE ngroup_uid = ? ORDER BY created_at, name",
                                (uid,)).fetchall()
        return [MemberRecord(r["name"], r["generation"], r["created_at"]) for r in rows]

    def member_states(self, uid: str) -> list[MemberState]:
        """The NGroup's members with their groups' uid, desired and provisioning state."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT m.name, m.generation, g.uid, g.desired, g.provisioning_state"
                " FROM ngroup_members m JOIN ngroups n ON n.uid = m.ngroup_uid"
                " LEFT JOIN container_groups g ON g.subscription = n.subscription"
                " AND g.rg_key = n.rg_key AND g.name_key = m.name_key"
                " WHERE m.ngroup_uid = ? ORDER BY m.created_at, m.name", (uid,)).fetchall()
        return [MemberState(*row) for row in rows]

    def add_member(self, uid: str, name: str, generation: int) -> None:
        """Record a member before its container group is written (a crash between the
        two leaves a row whose group is missing: forgotten, and made again)."""
        with self.write() as conn:
            conn.execute("INSERT OR REPLACE INTO ngroup_members (ngroup_uid, name_key, name,"
                         " generation, created_at) VALUES (?, ?, ?, ?, ?)",
                         (uid, name_key(name), name, generation, self.now()))

    def forget_member(self, uid: str, name: str) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM ngroup_members WHERE ngroup_uid = ? AND name_key = ?",
                         (uid, name_key(name)))

    def _ngroup(self, conn: sqlite3.Connection, uid: str) -> NGroupRecord:
        return NGroupRecord.from_row(
            conn.execute("SELECT * FROM ngroups WHERE uid = ?", (uid,)).fetchone(), self.sealer)


def delete_ngroups_of(conn: sqlite3.Connection, sub: str, rg: str) -> None:
    """In a resource group's delete: its NGroups go at once (their members, container
    groups of that resource group, are being deleted with it); none makes another."""
    key = (sub, name_key(rg))
    conn.execute("DELETE FROM ngroup_members WHERE ngroup_uid IN (SELECT uid FROM ngroups"
                 " WHERE subscription = ? AND rg_key = ?)", key)
    conn.execute("DELETE FROM ngroups WHERE subscription = ? AND rg_key = ?", key)


def _open(row: sqlite3.Row, sealer: Sealer) -> dict[str, Any]:
    """The row's body, its secrets open."""
    return unseal_body(json.loads(row["body"]), sealer, row["uid"], kind="ngroups")


def _row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM ngroups WHERE subscription = ? AND rg_key = ? AND name_key = ?",
        (sub, name_key(rg), name_key(name))).fetchone()
    return row
