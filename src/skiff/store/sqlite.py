"""The store of desired state on SQLite: resource groups and container groups.

The control plane owns desired state and the engine reports observed state;
this is where the first lives, so that nothing an API answer promised is
forgotten by a restart. Every write here is one transaction that checks and
changes together (see :mod:`skiff.store.database`), which is what makes two
racing PUTs of one name produce one group, and a reconcile result for an
old generation unable to overwrite newer desired state.

Generations. A container group's ``generation`` counts the changes the
engine must act on: a new body, start, stop, restart, delete. A PUT with the
same body (key order aside), or a change of tags only, leaves it alone. The
reconcile loop reads a record, works towards it, and reports with
``set_provisioning(uid, state, generation=record.generation)``, which
applies only if no newer change came meanwhile.

Deletion. A deleted container group stays, with desired ``"deleted"`` and
provisioning state ``Deleting``, until the engine has torn it down and calls
:meth:`Store.remove_group`; meanwhile it can be read (ARM shows ``Deleting``)
but not changed or created again (409 ContainerGroupDeleting), because
the engine still holds its containers, address and DNS label. A deleted
resource group works the same way: its row stays with a ``deleting`` flag,
invisible to reads at once, refusing new content (409
ResourceGroupBeingDeleted, ARM's own answer), and goes with its last
container group, or at once if it had none. Keeping the row (rather than
deleting it and letting a new one of the same name appear while the old
groups are still being torn down) keeps every container group attached to
exactly one resource group row, which a foreign key enforces.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from skiff.store.activity import ActivityMixin
from skiff.store.admission import (
    Admission,
    AdmissionMixin,
    admit,
    claim_label,
    count_event,
    gpus_of,
    is_spot,
    requests_of,
)
from skiff.store.bodysecrets import seal_body, unseal_body
from skiff.store.errors import (
    ContainerGroupBeingDeleted,
    InvalidResourceGroupLocation,
    InvalidResourceLocation,
)
from skiff.store.identities import IdentitiesMixin, delete_identities_of
from skiff.store.ngroups import NGroupsMixin, delete_ngroups_of
from skiff.store.operations import OperationsMixin
from skiff.store.paging import after_clause, encode_marker
from skiff.store.principals import PrincipalsMixin, forget_scope
from skiff.store.profiles import ProfilesMixin, delete_profiles_of
from skiff.store.records import (
    DESIRED_STATES,
    GROUP_TYPE,
    GroupRecord,
    GroupStamp,
    ResourceGroupRecord,
    dumps,
    location_key,
    name_key,
    subscription_key,
)
from skiff.store.rows import check_rg_usable, ensure_rg, insert_rg, rg_row
from skiff.store.standby import StandbyMixin, delete_pools_of
from skiff.store.storage import StorageMixin, delete_accounts_of, record_mounts
from skiff.store.tokens import TokensMixin
from skiff.store.usage import UsageMixin
from skiff.store.vnets import (
    VirtualNetworksMixin,
    check_placement,
    delete_vnets_of,
    refuse_networks_used_elsewhere,
)

_MAX_PAGE = 1000  # rows one listing call may ask for


def group_scope(sub: str, rg: str, name: str) -> str:
    """A container group's ARM id, as a role assignment's scope."""
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{GROUP_TYPE}/{name}"


class Store(ActivityMixin, OperationsMixin, TokensMixin, PrincipalsMixin, VirtualNetworksMixin,
            StorageMixin, IdentitiesMixin, AdmissionMixin, UsageMixin, ProfilesMixin,
            NGroupsMixin, StandbyMixin):
    """Desired state of one skiff control plane, in one SQLite file. Thread-safe."""

    # --- resource groups -------------------------------------------------------------------

    def put_resource_group(self, sub: str, name: str, location: str,
                           tags: Mapping[str, str]) -> tuple[ResourceGroupRecord, bool]:
        """Create a resource group, or replace the tags of an existing one.

        Returns the record and whether it was created. The name keeps the
        case it was first created with.
        """
        sub = subscription_key(sub)
        with self.write() as conn:
            row = rg_row(conn, sub, name)
            if row is None:
                record = ResourceGroupRecord(sub, name, location, dict(tags), self.now())
                insert_rg(conn, record)
                return record, True
            check_rg_usable(row)
            if location_key(row["location"]) != location_key(location):
                raise InvalidResourceGroupLocation(row["name"], row["location"], location)
            conn.execute("UPDATE resource_groups SET tags = ?"
                         " WHERE subscription = ? AND name_key = ?",
                         (dumps(dict(tags)), sub, name_key(name)))
            return replace(ResourceGroupRecord.from_row(row), tags=dict(tags)), False

    def get_resource_group(self, sub: str, name: str) -> ResourceGroupRecord | None:
        """The resource group, or None if there is none (or it is being deleted)."""
        sub = subscription_key(sub)
        with self.read() as conn:
            row = rg_row(conn, sub, name)
        return None if row is None or row["deleting"] else ResourceGroupRecord.from_row(row)

    def list_resource_groups(self, sub: str) -> list[ResourceGroupRecord]:
        """The subscription's resource groups, by name (any case)."""
        sub = subscription_key(sub)
        with self.read() as conn:
            rows = conn.execute(
                "SELECT * FROM resource_groups WHERE subscription = ? AND deleting = 0"
                " ORDER BY name_key", (sub,),
            ).fetchall()
        return [ResourceGroupRecord.from_row(row) for row in rows]

    def delete_resource_group(self, sub: str, name: str) -> list[GroupRecord]:
        """Delete a resource group: every container group in it is to be deleted.

        Returns those container groups (desired ``"deleted"``, ``Deleting``),
        for the engine to tear down; each changed one's generation is bumped.
        Its virtual networks are deleted, their removal from the node recorded
        (:meth:`vnet_teardowns`); its storage accounts are deleted with their shares' rows
        (ShareInUse if a group of another resource group mounts one of the shares).
        The group is invisible to reads from now on and goes with its last
        container group. An unknown group gives ``[]``.
        """
        sub = subscription_key(sub)
        with self.write() as conn:
            row = rg_row(conn, sub, name)
            if row is None:
                return []
            key = (sub, name_key(name))
            refuse_networks_used_elsewhere(conn, sub, name)
            # Its storage accounts go at once, with their shares' rows (refused if a group
            # of another resource group mounts one); the storage service removes the disks.
            delete_accounts_of(conn, sub, name)
            delete_identities_of(conn, sub, name)  # its managed identities too
            delete_profiles_of(conn, sub, name)  # and its container group profiles
            delete_ngroups_of(conn, sub, name)  # and its NGroups, which make no more members
            delete_pools_of(conn, sub, name)  # and its standby pools (members go below)
            conn.execute(
                "UPDATE container_groups SET desired = 'deleted', provisioning_state = 'Deleting',"
                " generation = generation + 1, updated_at = ?"
                " WHERE subscription = ? AND rg_key = ? AND desired != 'deleted'",
                (self.now(), *key),
            )
            rows = conn.execute(
                "SELECT * FROM container_groups WHERE subscription = ? AND rg_key = ?"
                " ORDER BY name_key", key,
            ).fetchall()
            # Its virtual networks go at once (no group of another resource group is in
            # one of their subnets: refused above), each noted for removal from the node.
            delete_vnets_of(conn, sub, name, self.now())
            forgotten = forget_scope(conn, f"/subscriptions/{sub}/resourceGroups/{name}")
            if rows:
                conn.execute("UPDATE resource_groups SET deleting = 1"
                             " WHERE subscription = ? AND name_key = ?", key)
            else:
                conn.execute("DELETE FROM resource_groups WHERE subscription = ? AND name_key = ?",
                             key)
        if forgotten:
            self._access_changed()
        return [self._record(row) for row in rows]

    # --- container groups ------------------------------------------------------------------

    def put_group(self, sub: str, rg: str, name: str, location: str, body: Mapping[str, Any],
                  tags: Mapping[str, str], *, subnet_key: str | None = None,
                  admission: Admission | None = None,
                  label: Callable[[str], str | None] | None = None) -> tuple[GroupRecord, bool]:
        """Create or update a container group; returns the record and whether it was created.

        ``subnet_key`` places a private group in a virtual network's subnet (its
        ARM id, lower case), which must exist (400 SubnetNotFound) and is then in use.
        With ``admission``, a new group or a new body must fit the node and the
        subscription's quotas (:func:`skiff.store.admission.admit`); with ``label``
        (the group's uid → its DNS name label, or None), the group holds that label and
        no other (409 DnsNameLabelInUse if another group holds it). Both are decided in
        the transaction that writes the group, so two racing PUTs cannot both take the
        last cores or one label.

        The resource group is created if missing, in the group's location. A
        new body bumps the generation and asks for a running group again
        (provisioning state ``Pending``); the same body with other tags only
        replaces the tags. ``body``'s top-level ``"tags"`` is not stored:
        tags live in ``tags`` alone, so that they cannot tell two bodies apart.
        """
        sub = subscription_key(sub)
        plain = {k: v for k, v in body.items() if k != "tags"}
        body_json = dumps(plain)
        tags_json = dumps(dict(tags))
        cpu, memory_gb = requests_of(plain)
        spot = is_spot(plain)
        gpus = gpus_of(plain)
        gpus_json = dumps(gpus)
        with self.write() as conn:
            now = self.now()
            rg_name = ensure_rg(conn, sub, rg, location, now)
            if subnet_key is not None:
                check_placement(conn, subnet_key)
            row = _group_row(conn, sub, rg, name)
            if row is None:
                if admission is not None:
                    admit(conn, admission, subscription=sub, uid=None, cpu=cpu,
                          memory_gb=memory_gb, creating=True, now=now, spot=spot, gpus=gpus)
                uid = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO container_groups (uid, subscription, rg_key, name_key,"
                    " resource_group, name, location, body, tags, provisioning_state, desired,"
                    " generation, error, created_at, updated_at, subnet_key, cpu, memory_gb,"
                    " spot, admitted_at, gpus)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'Pending', 'running', 1, NULL, ?, ?, ?,"
                    " ?, ?, ?, ?, ?)",
                    (uid, sub, name_key(rg), name_key(name), rg_name, name, location,
                     self._sealed(uid, plain), tags_json, now, now, subnet_key, cpu, memory_gb,
                     int(spot), now, gpus_json),
                )
                record_mounts(conn, uid, plain)
                if label is not None:
                    claim_label(conn, uid, label(uid))
                return self._group_by_uid(conn, uid), True
            uid = row["uid"]
            if row["desired"] == "deleted":
                raise ContainerGroupBeingDeleted(row["name"])
            if location_key(row["location"]) != location_key(location):
                raise InvalidResourceLocation(row["name"], rg_name, row["location"], location)
            if dumps(self._unsealed(row)) != body_json:
                if admission is not None:
                    admit(conn, admission, subscription=sub, uid=uid, cpu=cpu,
                          memory_gb=memory_gb, creating=False, now=now, spot=spot, gpus=gpus)
                conn.execute(
                    "UPDATE container_groups SET body = ?, tags = ?,"
                    " provisioning_state = 'Pending', desired = 'running',"
                    " generation = generation + 1, error = NULL, released = 0, evicted = 0,"
                    " updated_at = ?, subnet_key = ?, cpu = ?, memory_gb = ?, spot = ?,"
                    " admitted_at = ?, gpus = ? WHERE uid = ?",
                    (self._sealed(uid, plain), tags_json, now, subnet_key, cpu, memory_gb,
                     int(spot), now, gpus_json, uid),
                )
                record_mounts(conn, uid, plain)
            elif row["tags"] != tags_json:
                conn.execute("UPDATE container_groups SET tags = ?, updated_at = ? WHERE uid = ?",
                             (tags_json, now, uid))
            elif label is None:
                return self._record(row), False
            if label is not None:
                claim_label(conn, uid, label(uid))
            return self._group_by_uid(conn, uid), False

    def get_group(self, sub: str, rg: str, name: str) -> GroupRecord | None:
        """The container group (names in any case), also while it is being deleted."""
        sub = subscription_key(sub)
        with self.read() as conn:
            row = _group_row(conn, sub, rg, name)
        return None if row is None else self._record(row)

    def get_group_by_uid(self, uid: str) -> GroupRecord | None:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM container_groups WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else self._record(row)

    def list_groups(self, sub: str | None, rg: str | None = None, *, limit: int = 100,
                    after: str | None = None) -> tuple[list[GroupRecord], str | None]:
        """One page of container groups, in (subscription, resource group, name) order.

        ``sub=None`` lists every subscription (for admins). Returns the page
        and the marker of the next one (None on the last page), to pass as
        ``after``. Pages are keyed, not counted: a group created or deleted
        between two calls neither repeats nor hides another one.
        """
        rows, marker = self._group_page("*", sub, rg, limit, after)
        return [self._record(row) for row in rows], marker

    def list_group_stamps(self, sub: str | None, rg: str | None = None, *, limit: int = 100,
                          after: str | None = None) -> tuple[list[GroupStamp], str | None]:
        """One page as :meth:`list_groups` gives it, each group only as what tells its
        versions apart (no body read): for a caller that keeps what it made of each."""
        rows, marker = self._group_page(
            "uid, generation, updated_at, provisioning_state, desired, tags, subscription,"
            " rg_key, name_key", sub, rg, limit, after)
        return [GroupStamp(row["uid"], row["generation"], row["updated_at"],
                           row["provisioning_state"], row["desired"], row["tags"])
                for row in rows], marker

    def groups_by_uid(self, uids: Collection[str]) -> dict[str, GroupRecord]:
        """The groups of ``uids`` that exist, by uid."""
        found: dict[str, GroupRecord] = {}
        wanted = list(uids)
        with self.read() as conn:
            for at in range(0, len(wanted), 500):  # SQLite's bound on variables
                chunk = wanted[at:at + 500]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(f"SELECT * FROM container_groups"  # noqa: S608
                                        f" WHERE uid IN ({marks})", chunk):
                    found[row["uid"]] = self._record(row)
        return found

    def _group_page(self, columns: str, sub: str | None, rg: str | None, limit: int,
                    after: str | None) -> tuple[list[sqlite3.Row], str | None]:
        """The rows (``columns``, with the ordering keys) of one page, and the next's marker."""
        sub = None if sub is None else subscription_key(sub)
        if not 1 <= limit <= _MAX_PAGE:
            raise ValueError(f"limit must be within 1..{_MAX_PAGE}, not {limit}")
        clauses: list[str] = ["pool_key IS NULL"]  # standby pools' members are hidden
        params: list[object] = []
        if sub is not None:
            clauses.append("subscription = ?")
            params.append(sub)
        if rg is not None:
            clauses.append("rg_key = ?")
            params.append(name_key(rg))
        if after is not None:
            clauses.append(after_clause(after, sub, rg, params))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.read() as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM container_groups {where}"  # noqa: S608 (fixed clauses)
                " ORDER BY subscription, rg_key, name_key LIMIT ?", (*params, limit + 1),
            ).fetchall()
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_marker(last["subscription"], last["rg_key"],
                                           last["name_key"])

    def update_tags(self, sub: str, rg: str, name: str,
                    tags: Mapping[str, str]) -> GroupRecord | None:
        """Replace a container group's tags (ARM's PATCH); the generation stays."""
        sub = subscription_key(sub)
        with self.write() as conn:
            row = _group_row(conn, sub, rg, name)
            if row is None:
                return None
            if row["desired"] == "deleted":
                raise ContainerGroupBeingDeleted(row["name"])
            conn.execute("UPDATE container_groups SET tags = ?, updated_at = ? WHERE uid = ?",
                         (dumps(dict(tags)), self.now(), row["uid"]))
            return self._group_by_uid(conn, row["uid"])

    def set_desired(self, sub: str, rg: str, name: str, desired: str, *,
                    admission: Admission | None = None) -> GroupRecord | None:
        """Ask for a running, stopped or deleted group; bumps the generation.

        Each call is a change for the engine to act on, even to the same
        state: ``"running"`` on a running group is a restart. ``"deleted"``
        also sets ``Deleting``; a group being deleted refuses anything else
        (409) and takes ``"deleted"`` again as a no-op. With ``admission``, a group
        that holds no capacity (stopped, ended) must fit again to run, and a delete
        must fit the subscription's rate of deletes.
        """
        sub = subscription_key(sub)
        if desired not in DESIRED_STATES:
            raise ValueError(f"not a desired state: {desired!r}")
        with self.write() as conn:
            row = _group_row(conn, sub, rg, name)
            if row is None:
                return None
            if row["desired"] == "deleted":
                if desired == "deleted":
                    return self._record(row)
                raise ContainerGroupBeingDeleted(row["name"])
            now = self.now()
            if admission is not None and desired == "deleted":
                count_event(conn, admission, subscription=row["subscription"], kind="delete",
                            now=now)
            holds = row["desired"] == "running" and not row["released"]
            admitted = row["admitted_at"]
            if admission is not None and desired == "running" and not holds:
                admit(conn, admission, subscription=row["subscription"], uid=row["uid"],
                      cpu=row["cpu"], memory_gb=row["memory_gb"], creating=False, now=now,
                      spot=bool(row["spot"]), gpus=json.loads(row["gpus"]))
                admitted = now
            state = "Deleting" if desired == "deleted" else row["provisioning_state"]
            conn.execute(
                "UPDATE container_groups SET desired = ?, provisioning_state = ?,"
                " generation = generation + 1, released = 0, evicted = 0, admitted_at = ?,"
                " updated_at = ? WHERE uid = ?",
                (desired, state, admitted, now, row["uid"]),
            )
            return self._group_by_uid(conn, row["uid"])

    def set_provisioning(self, uid: str, state: str, *, error: Mapping[str, Any] | None = None,
                         generation: int | None = None) -> bool:
        """Record what the engine made of a group: its provisioning state and error.

        With ``generation``, only if the group is still at that generation, so
        that the result of reconciling an older generation cannot overwrite
        newer desired state. Returns whether it applied.
        """
        # A failed deployment holds nothing more (its generation has ended).
        # A failed deployment holds nothing more (its generation has ended); a finished
        # one is settled: the engine's view now tells of this generation.
        sql = "UPDATE container_groups SET provisioning_state = ?, error = ?, updated_at = ?," \
              " released = released OR ?," \
              " settled = CASE WHEN ? THEN generation ELSE settled END WHERE uid = ?"
        params: tuple[object, ...] = (state, None if error is None else dumps(dict(error)),
                                      self.now(), state == "Failed",
                                      state in ("Succeeded", "Failed"), uid)
        if generation is not None:
            sql += " AND generation = ?"
            params += (generation,)
        with self.write() as conn:
            return conn.execute(sql, params).rowcount == 1

    def remove_group(self, uid: str) -> None:
        """Forget a group the engine has torn down, with its DNS labels (and its resource
        group, if that is being deleted and this was its last group)."""
        with self.write() as conn:
            row = conn.execute("SELECT subscription, rg_key, name_key FROM container_groups"
                               " WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                return
            forgotten = forget_scope(conn, group_scope(row["subscription"], row["rg_key"],
                                                       row["name_key"]))
            conn.execute("DELETE FROM dns_labels WHERE group_uid = ?", (uid,))
            conn.execute("DELETE FROM container_groups WHERE uid = ?", (uid,))
            conn.execute(
                "DELETE FROM resource_groups WHERE subscription = ? AND name_key = ?"
                " AND deleting = 1 AND NOT EXISTS"
                " (SELECT 1 FROM container_groups WHERE subscription = ? AND rg_key = ?)",
                (row["subscription"], row["rg_key"], row["subscription"], row["rg_key"]),
            )
        if forgotten:
            self._access_changed()

    def pending_work(self) -> list[GroupRecord]:
        """Every group whose desired state may not be reached, oldest change first.

        That is every group: after a restart, even a group that was running
        must be checked (and its containers re-adopted) by the reconcile loop.
        """
        with self.read() as conn:
            rows = conn.execute(
                "SELECT * FROM container_groups ORDER BY updated_at, uid").fetchall()
        return [self._record(row) for row in rows]

    def count_groups(self, sub: str) -> int:
        """How many container groups the subscription has, not counting those being deleted
        (for quotas)."""
        sub = subscription_key(sub)
        with self.read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM container_groups"
                " WHERE subscription = ? AND desired != 'deleted'", (sub,),
            ).fetchone()
        return int(row[0])

    # --- sealed bodies ---------------------------------------------------------------------

    def _sealed(self, uid: str, body: Mapping[str, Any]) -> str:
        """The body column of group ``uid``: ``body``'s JSON, its secrets sealed."""
        return dumps(seal_body(body, self.sealer, uid))

    def _unsealed(self, row: sqlite3.Row) -> dict[str, Any]:
        return unseal_body(json.loads(row["body"]), self.sealer, row["uid"])

    def _record(self, row: sqlite3.Row) -> GroupRecord:
        """The group of ``row``, its secrets opened."""
        return GroupRecord.from_row(row, self._unsealed(row))

    def _group_by_uid(self, conn: sqlite3.Connection, uid: str) -> GroupRecord:
        return self._record(conn.execute("SELECT * FROM container_groups WHERE uid = ?",
                                         (uid,)).fetchone())

# --- helpers, run inside a caller's transaction ----------------------------------------------


def _group_row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM container_groups WHERE subscription = ? AND rg_key = ? AND name_key = ?"
        " AND pool_key IS NULL",  # a standby pool's ready member is no tenant's group
        (subscription_key(sub), name_key(rg), name_key(name))).fetchone()
    return row

