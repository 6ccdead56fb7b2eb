"""Standby pools (``Microsoft.StandbyPool/standbyContainerGroupPools``) and their members.

A pool is a resource of a resource group, as any other; its ready members are real
container groups, rows of ``container_groups`` like any tenant's, in the pool's
subscription and resource group, so that admission, quotas and the meter count them
as ACI counts a pool's groups against its subscription. What sets them apart is
``pool_key`` (the pool's id, lower case): a row with one is the pool's, hidden from
every read of the tenant's groups (:func:`skiff.store.sqlite._group_row`, the
listings), and named ``standby.<pool>.<n>``: a valid host name (the engine makes it
the containers' hostname) that no request can spell (ACI's group names are letters,
digits and dashes), so it never collides with a tenant's.

A member is ready, claimable, once it serves: its provisioning state ``Succeeded`` says
its containers started, ``pool_ready`` (set by :meth:`StandbyMixin.mark_ready`, when
the refill loop saw its declared ports answer) that its server listens, so that a
claimed group answers on its port as soon as the claim's PUT is answered. A claim
(:meth:`StandbyMixin.claim_member`) is one transaction: pick the oldest ready
member, re-key it to the caller's resource group and name, write the caller's body,
claim its DNS label; two concurrent claims never get one member, and a claim that
fails (a label in use) leaves the member in the pool.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.store.admission import Admission, admit, claim_label, gpus_of, requests_of
from skiff.store.bodysecrets import seal_body, unseal_body
from skiff.store.database import Database
from skiff.store.records import GroupRecord, dumps, name_key, subscription_key
from skiff.store.rows import ensure_rg

PROVIDER = "Microsoft.StandbyPool"
POOL_TYPE = f"{PROVIDER}/standbyContainerGroupPools"
#: What separates the parts of a member's name: no group name a request sends holds it,
#: and a host name may.
_MARK = "."


def pool_key(sub: str, rg: str, name: str) -> str:
    """The key a pool's members carry (``container_groups.pool_key``)."""
    return f"{subscription_key(sub)}/{name_key(rg)}/{name_key(name)}"


@dataclass(frozen=True)
class PoolRecord:
    """A standby container group pool as the store holds it."""

    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str]
    #: The pool's ``properties`` as written (elasticityProfile, containerGroupProperties,
    #: zones); ``provisioningState`` is not stored.
    properties: dict[str, Any]
    created_at: float

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/{POOL_TYPE}/{self.name}")

    @property
    def key(self) -> str:
        return pool_key(self.subscription, self.resource_group, self.name)

    @property
    def max_ready(self) -> int:
        profile = self.properties.get("elasticityProfile", {})
        return int(profile.get("maxReadyCapacity", 0))


@dataclass(frozen=True)
class Member:
    """One of a pool's groups, as the refill and the runtime view count it."""

    uid: str
    desired: str
    provisioning_state: str
    created_at: float
    #: Whether it serves (its declared ports answered): claimable once Succeeded too.
    ready: bool = False

    @property
    def state(self) -> str:
        """The pool's word for it: Running (ready: started and serving), Creating (a
        group started but not serving yet too), Deleting, or Failed."""
        if self.desired == "deleted":
            return "Deleting"
        if self.provisioning_state == "Succeeded" and self.ready:
            return "Running"
        if self.provisioning_state == "Failed":
            return "Failed"
        return "Creating"


def _record(row: sqlite3.Row) -> PoolRecord:
    return PoolRecord(str(row["subscription"]), str(row["resource_group"]), str(row["name"]),
                      str(row["location"]), json.loads(row["tags"]),
                      json.loads(row["properties"]), float(row["created_at"]))


def _row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM standby_pools WHERE subscription = ? AND rg_key = ? AND name_key = ?",
        (subscription_key(sub), name_key(rg), name_key(name))).fetchone()
    return row


class StandbyMixin(Database):
    """The store's ``standby_pools`` table, and the pools' members in ``container_groups``."""

    def put_pool(self, sub: str, rg: str, name: str, location: str, tags: Mapping[str, str],
                 properties: Mapping[str, Any]) -> tuple[PoolRecord, bool]:
        """Create a pool or replace an existing one's tags and properties (its location
        stays). Returns the record and whether it was created. ResourceGroupBeingDeleted."""
        with self.write() as conn:
            row = _row(conn, sub, rg, name)
            if row is None:
                rg_name = ensure_rg(conn, subscription_key(sub), rg, location, self.now())
                conn.execute(
                    "INSERT INTO standby_pools (subscription, rg_key, name_key, resource_group,"
                    " name, location, tags, properties, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (subscription_key(sub), name_key(rg), name_key(name), rg_name, name,
                     location, dumps(dict(tags)), dumps(dict(properties)), self.now()))
            else:
                conn.execute("UPDATE standby_pools SET tags = ?, properties = ?"
                             " WHERE subscription = ? AND rg_key = ? AND name_key = ?",
                             (dumps(dict(tags)), dumps(dict(properties)), row["subscription"],
                              row["rg_key"], row["name_key"]))
            made = _row(conn, sub, rg, name)
            assert made is not None
            return _record(made), row is None

    def get_pool(self, sub: str, rg: str, name: str) -> PoolRecord | None:
        with self.read() as conn:
            row = _row(conn, sub, rg, name)
        return None if row is None else _record(row)

    def list_pools(self, sub: str | None, rg: str | None = None) -> list[PoolRecord]:
        """The pools of a subscription (of one resource group), or of every subscription."""
        sql, params = "SELECT * FROM standby_pools WHERE 1", []
        if sub is not None:
            sql += " AND subscription = ?"
            params.append(subscription_key(sub))
        if rg is not None:
            sql += " AND rg_key = ?"
            params.append(name_key(rg))
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY subscription, rg_key, name_key",
                                params).fetchall()
        return [_record(row) for row in rows]

    def delete_pool(self, sub: str, rg: str, name: str) -> list[str] | None:
        """Forget a pool; its members are to be deleted (desired ``deleted``, generation
        bumped). Returns their uids, for the reconcile loop; None if there was no pool."""
        key = pool_key(sub, rg, name)
        with self.write() as conn:
            if conn.execute("DELETE FROM standby_pools WHERE subscription = ? AND rg_key = ?"
                            " AND name_key = ?", (subscription_key(sub), name_key(rg),
                                                  name_key(name))).rowcount == 0:
                return None
            return _retire(conn, key, None, self.now())

    def pool_members(self, key: str) -> list[Member]:
        """The members of the pool of ``key``, oldest first (those being deleted too)."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT uid, desired, provisioning_state, created_at, pool_ready"
                " FROM container_groups WHERE pool_key = ? ORDER BY created_at, uid",
                (key,)).fetchall()
        return [Member(r["uid"], r["desired"], r["provisioning_state"], r["created_at"],
                       bool(r["pool_ready"])) for r in rows]

    def unready_members(self) -> dict[str, str]:
        """The members of every pool that run (``Succeeded``) but were not seen serving
        yet: uid → their pool's key, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT uid, pool_key FROM container_groups WHERE pool_key IS NOT NULL"
                " AND desired = 'running' AND provisioning_state = 'Succeeded'"
                " AND pool_ready = 0 ORDER BY created_at, uid").fetchall()
        return {r["uid"]: r["pool_key"] for r in rows}

    def mark_ready(self, uid: str) -> bool:
        """Member ``uid`` serves: claimable from now on. False (nothing written) if it is
        no running member of a pool any more (claimed, deleted, failed meanwhile)."""
        with self.write() as conn:
            return conn.execute(
                "UPDATE container_groups SET pool_ready = 1 WHERE uid = ?"
                " AND pool_key IS NOT NULL AND desired = 'running'"
                " AND provisioning_state = 'Succeeded'", (uid,)).rowcount > 0

    def add_pool_member(self, pool: PoolRecord, body: Mapping[str, Any], *,
                   admission: Admission | None = None) -> GroupRecord:
        """A new member of ``pool`` (``Pending``, for the reconcile loop to run), of
        ``body`` (a group's stored body, without DNS label: a member claims none).
        Admitted against the pool's subscription as any new group is (QuotaExceeded,
        CapacityExceeded); None of the pool's own rows are read: the caller counts."""
        plain = {k: v for k, v in body.items() if k != "tags"}
        cpu, memory_gb = requests_of(plain)
        spot = str(plain.get("properties", {}).get("priority", "")).lower() == "spot"
        gpus = gpus_of(plain)
        sub = subscription_key(pool.subscription)
        uid = uuid.uuid4().hex
        name = _MARK.join(("standby", name_key(pool.name), uid[:12]))
        with self.write() as conn:
            now = self.now()
            rg_name = ensure_rg(conn, sub, pool.resource_group, pool.location, now)
            if admission is not None:
                # Spot groups it evicts are stopped by the loop before the member runs.
                admit(conn, admission, subscription=sub, uid=None, cpu=cpu,
                      memory_gb=memory_gb, creating=True, now=now, spot=spot, gpus=gpus)
            conn.execute(
                "INSERT INTO container_groups (uid, subscription, rg_key, name_key,"
                " resource_group, name, location, body, tags, provisioning_state, desired,"
                " generation, error, created_at, updated_at, cpu, memory_gb, spot,"
                " admitted_at, pool_key, gpus)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', 'Pending', 'running', 1, NULL, ?, ?,"
                " ?, ?, ?, ?, ?, ?)",
                (uid, sub, name_key(pool.resource_group), name_key(name), rg_name, name,
                 pool.location, dumps(seal_body(plain, self.sealer, uid)), now, now, cpu,
                 memory_gb, int(spot), now, pool.key, dumps(gpus)))
            row = conn.execute("SELECT * FROM container_groups WHERE uid = ?",
                               (uid,)).fetchone()
            return GroupRecord.from_row(row, plain)

    def retire_members(self, key: str, uids: list[str]) -> list[str]:
        """Delete these members of the pool (a failed one, those beyond a lowered
        capacity); returns those that were still the pool's to delete."""
        with self.write() as conn:
            return _retire(conn, key, uids, self.now())

    def claim_member(self, key: str, sub: str, rg: str, name: str, *,
                     body: Callable[[dict[str, Any]], dict[str, Any]],
                     tags: Mapping[str, str],
                     label: Callable[[str, dict[str, Any]], str | None] | None = None,
                     ) -> GroupRecord | None:
        """Give the oldest ready member (started and serving) of the pool of ``key`` to
        the caller: re-keyed to resource group ``rg`` (made if missing) and ``name`` of
        ``sub`` (the pool's own subscription, the caller checks), its body ``body(member's
        body)``, its ``tags``, its DNS label ``label(uid, new body)`` claimed
        (DnsLabelInUse rolls the claim back). The generation and provisioning state
        stay: the member already runs what the body says, under the name its engine
        knows (kept as ``host_name``). None when the pool has no ready member, or the
        name is taken (a group of that name exists: the caller's PUT is then no
        claim)."""
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM container_groups WHERE subscription = ?"
                            " AND rg_key = ? AND name_key = ?",
                            (subscription_key(sub), name_key(rg), name_key(name))
                            ).fetchone() is not None:
                return None
            row = conn.execute(
                "SELECT * FROM container_groups WHERE pool_key = ? AND desired = 'running'"
                " AND provisioning_state = 'Succeeded' AND pool_ready = 1"
                " ORDER BY created_at, uid LIMIT 1",
                (key,)).fetchone()
            if row is None:
                return None
            uid, now = row["uid"], self.now()
            new_body = body(unseal_body(json.loads(row["body"]), self.sealer, uid))
            plain = {k: v for k, v in new_body.items() if k != "tags"}
            rg_name = ensure_rg(conn, row["subscription"], rg, row["location"], now)
            conn.execute(
                "UPDATE container_groups SET rg_key = ?, resource_group = ?, name_key = ?,"
                " name = ?, host_name = ?, body = ?, tags = ?, pool_key = NULL,"
                " updated_at = ? WHERE uid = ?",
                (name_key(rg), rg_name, name_key(name), name, row["name"],
                 dumps(seal_body(plain, self.sealer, uid)), dumps(dict(tags)), now, uid))
            # The meter's open span goes on under the group's new name.
            conn.execute("UPDATE usage_spans SET rg_key = ?, resource_group = ?, name = ?"
                         " WHERE group_uid = ? AND ended_at IS NULL",
                         (name_key(rg), rg_name, name, uid))
            if label is not None:
                claim_label(conn, uid, label(uid, plain))
            claimed = conn.execute("SELECT * FROM container_groups WHERE uid = ?",
                                   (uid,)).fetchone()
            return GroupRecord.from_row(claimed, plain)


def _retire(conn: sqlite3.Connection, key: str, uids: list[str] | None,
            now: float) -> list[str]:
    """Mark members of the pool of ``key`` (``uids``, or all) deleted; their uids."""
    rows = conn.execute("SELECT uid FROM container_groups WHERE pool_key = ?"
                        " AND desired != 'deleted'", (key,)).fetchall()
    chosen = [r["uid"] for r in rows if uids is None or r["uid"] in uids]
    for uid in chosen:
        conn.execute(
            "UPDATE container_groups SET desired = 'deleted', provisioning_state = 'Deleting',"
            " generation = generation + 1, released = 0, updated_at = ? WHERE uid = ?",
            (now, uid))
    return chosen


def delete_pools_of(conn: sqlite3.Connection, sub: str, rg: str) -> None:
    """Delete the pools of a resource group being deleted (in its transaction; their
    members are among its container groups, deleted with them)."""
    conn.execute("DELETE FROM standby_pools WHERE subscription = ? AND rg_key = ?",
                 (subscription_key(sub), name_key(rg)))
