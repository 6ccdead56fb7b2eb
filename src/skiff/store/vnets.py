"""Virtual networks: the Microsoft.Network subset private container groups are placed in.

A virtual network's body (address space and subnets) is validated by
:mod:`skiff.models.network` before it gets here; what the store adds are the
rules that need every other resource at once, checked in the transaction
that writes, so that no race gets round them:

- a subnet a container group is placed in cannot be removed (400
  ``InUseSubnetCannotBeDeleted``, ARM's code), nor its range changed (400
  ``InUseSubnetCannotBeUpdated``), nor its virtual network deleted;
- two virtual networks of one node cannot overlap (400
  ``VirtualNetworkAddressSpaceConflict``): they are routed by one host, which
  could not tell them apart (Azure allows it, since its networks never meet);
- a group can only be placed in a subnet that exists (400 ``SubnetNotFound``).

A group's placement is the ``subnet_key`` column of ``container_groups``: the
subnet's ARM id, lower case. Subnets live in the virtual network's body, as in
ARM, where a GET of the network lists them.

Deleting a network also records its removal from the node, a row of
``vnet_teardowns`` written in the same transaction: the reconcile loop removes
the bridges once no group is in the network any more, then clears the row
(:meth:`VirtualNetworksMixin.finish_vnet_teardown`). A crash in between leaves
the row, and the next start finishes the work.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from skiff.errors import ArmError
from skiff.store.database import Database
from skiff.store.principals import forget_scope
from skiff.store.records import VnetRecord, dumps, location_key, name_key, subscription_key
from skiff.store.rows import ensure_rg

#: Changes a virtual network's body (a subnet's PUT or DELETE); may raise ArmError.
BodyChange = Callable[[dict[str, Any]], dict[str, Any]]


class VirtualNetworksMixin(Database):
    """The store's ``virtual_networks`` table, and groups' placement in subnets."""

    def put_vnet(self, sub: str, rg: str, name: str, location: str, body: Mapping[str, Any],
                 tags: Mapping[str, str]) -> tuple[VnetRecord, bool]:
        """Create or replace a virtual network; returns the record and whether it was new."""
        sub = subscription_key(sub)
        with self.write() as conn:
            return self._write_vnet(conn, sub, rg, name, location, dict(body), dict(tags))

    def change_vnet(self, sub: str, rg: str, name: str, change: BodyChange) -> VnetRecord | None:
        """Apply ``change`` to a virtual network's body in one transaction (a subnet
        added, replaced or removed); None if there is no such network."""
        sub = subscription_key(sub)
        with self.write() as conn:
            row = _vnet_row(conn, sub, rg, name)
            if row is None:
                return None
            record = VnetRecord.from_row(row)
            return self._write_vnet(conn, sub, rg, name, record.location,
                                    change(record.body), record.tags)[0]

    def get_vnet(self, sub: str, rg: str, name: str) -> VnetRecord | None:
        sub = subscription_key(sub)
        with self.read() as conn:
            row = _vnet_row(conn, sub, rg, name)
        return None if row is None else VnetRecord.from_row(row)

    def list_vnets(self, sub: str, rg: str | None = None) -> list[VnetRecord]:
        """The virtual networks of a subscription (or one of its resource groups)."""
        sub = subscription_key(sub)
        sql, params = "SELECT * FROM virtual_networks WHERE subscription = ?", [sub]
        if rg is not None:
            sql += " AND rg_key = ?"
            params.append(name_key(rg))
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY rg_key, name_key", params).fetchall()
        return [VnetRecord.from_row(row) for row in rows]

    def delete_vnet(self, sub: str, rg: str, name: str) -> VnetRecord | None:
        """Delete a virtual network none of whose subnets is in use; returns what was
        deleted (None: there was none)."""
        sub = subscription_key(sub)
        with self.write() as conn:
            row = _vnet_row(conn, sub, rg, name)
            if row is None:
                return None
            record = VnetRecord.from_row(row)
            for key, (subnet, _) in record.subnets().items():
                _refuse_in_use(conn, record, key, subnet)
            conn.execute("DELETE FROM virtual_networks WHERE subscription = ? AND rg_key = ?"
                         " AND name_key = ?", (sub, name_key(rg), name_key(name)))
            record_teardown(conn, record, self.now())
            forgotten = forget_scope(conn, record.resource_id)
        if forgotten:
            self._access_changed()
        return record

    def vnet_teardowns(self) -> list[str]:
        """The keys (lower-case ARM ids) of deleted virtual networks still to be removed
        from the node, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT vnet_key FROM vnet_teardowns ORDER BY recorded_at, vnet_key").fetchall()
        return [str(row["vnet_key"]) for row in rows]

    def finish_vnet_teardown(self, vnet_key: str) -> None:
        """The engine removed the network ``vnet_key``: forget that it was to be."""
        with self.write() as conn:
            conn.execute("DELETE FROM vnet_teardowns WHERE vnet_key = ?", (name_key(vnet_key),))

    def vnet_in_use(self, vnet_id: str) -> bool:
        """Whether any container group (being deleted or not) is in one of the subnets
        of the virtual network with the ARM id ``vnet_id``."""
        with self.read() as conn:
            return conn.execute(
                "SELECT 1 FROM container_groups WHERE subnet_key LIKE ? ESCAPE '\\' LIMIT 1",
                (_like_prefix(name_key(vnet_id) + "/subnets/"),)).fetchone() is not None

    def vnet_by_id(self, vnet_id: str) -> VnetRecord | None:
        """The virtual network with the ARM id ``vnet_id`` (any case), or None."""
        with self.read() as conn:
            return _vnet_by_id(conn, vnet_id)

    def subnet_placement(self, subnet_key: str) -> tuple[VnetRecord, str, str] | None:
        """The virtual network, subnet name and address prefix a subnet key names."""
        with self.read() as conn:
            return _placement(conn, subnet_key)

    def _write_vnet(self, conn: sqlite3.Connection, sub: str, rg: str, name: str,
                    location: str, body: dict[str, Any],
                    tags: dict[str, str]) -> tuple[VnetRecord, bool]:
        now = self.now()
        rg_name = ensure_rg(conn, sub, rg, location, now)
        row = _vnet_row(conn, sub, rg, name)
        if row is None:
            record = VnetRecord(sub, rg_name, name, location, body, tags, str(uuid.uuid4()), now)
        else:
            old = VnetRecord.from_row(row)
            if location_key(old.location) != location_key(location):
                raise ArmError(400, "InvalidResourceLocation",
                               f"The resource '{old.name}' already exists in location "
                               f"'{old.location}' in resource group '{rg_name}'. A resource "
                               "with the same name cannot be created in location "
                               f"'{location}'.")
            record = VnetRecord(sub, old.resource_group, old.name, old.location, body, tags,
                                old.guid, old.created_at)
            new_subnets = record.subnets()
            for key, (subnet, prefix) in old.subnets().items():
                if key not in new_subnets:
                    _refuse_in_use(conn, old, key, subnet)
                elif _net(new_subnets[key][1]) != _net(prefix):
                    _refuse_in_use(conn, old, key, subnet, change=True)
        _refuse_overlaps(conn, record)
        conn.execute(
            "INSERT INTO virtual_networks (subscription, rg_key, name_key, resource_group, name,"
            " location, body, tags, guid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (subscription, rg_key, name_key) DO UPDATE SET body = excluded.body,"
            " tags = excluded.tags",
            (sub, name_key(rg), name_key(name), record.resource_group, record.name,
             record.location, dumps(record.body), dumps(record.tags), record.guid,
             record.created_at))
        return record, row is None


# --- helpers, run inside a caller's transaction ----------------------------------------------


def _vnet_row(conn: sqlite3.Connection, sub: str, rg: str, name: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM virtual_networks WHERE subscription = ? AND rg_key = ? AND name_key = ?",
        (subscription_key(sub), name_key(rg), name_key(name))).fetchone()
    return row


def _net(prefix: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(prefix, strict=False)
    except ValueError:
        return None


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _user(row: sqlite3.Row, owner: str) -> str:
    """How a refusal to the subscription ``owner`` names the container group ``row``: by
    name in its own subscription, never by name in another's (a tenant learns nothing of
    another tenant's resources from a refusal)."""
    if row["subscription"] == subscription_key(owner):
        return f"container group '{row['name']}' of resource group '{row['resource_group']}'"
    return "a container group of another subscription"


def _refuse_in_use(conn: sqlite3.Connection, vnet: VnetRecord, key: str, subnet: str,
                   change: bool = False) -> None:
    row = conn.execute("SELECT subscription, resource_group, name FROM container_groups"
                       " WHERE subnet_key = ? LIMIT 1", (vnet.subnet_key(key),)).fetchone()
    if row is None:
        return
    user = _user(row, vnet.subscription)
    if change:
        raise ArmError(400, "InUseSubnetCannotBeUpdated",
                       f"The address prefix of subnet '{subnet}' of virtual network "
                       f"'{vnet.name}' cannot change: {user} is in it.")
    raise ArmError(400, "InUseSubnetCannotBeDeleted",
                   f"Subnet '{subnet}' of virtual network '{vnet.name}' is in use by {user} "
                   "and cannot be deleted. Delete the container groups in the subnet first.")


def _address_space(record: VnetRecord) -> list[ipaddress.IPv4Network]:
    space = record.body.get("properties", {}).get("addressSpace") or {}
    return [n for n in map(_net, space.get("addressPrefixes") or []) if n is not None]


def _refuse_overlaps(conn: sqlite3.Connection, record: VnetRecord) -> None:
    mine = _address_space(record)
    for row in conn.execute("SELECT * FROM virtual_networks"):
        other = VnetRecord.from_row(row)
        if name_key(other.resource_id) == name_key(record.resource_id):
            continue
        for a in mine:
            for b in _address_space(other):
                if a.overlaps(b):
                    # The check spans every tenant (one host routes them all); the
                    # answer names the other network only to its own subscription.
                    whose = (f"virtual network '{other.name}'"
                             if other.subscription == record.subscription
                             else "a virtual network of another subscription")
                    raise ArmError(400, "VirtualNetworkAddressSpaceConflict",
                                   f"The address space {a} overlaps {b} of {whose} on this "
                                   "node, which routes every virtual network itself: choose "
                                   "a range no other one uses.",
                                   target="properties.addressSpace.addressPrefixes")


def _vnet_by_id(conn: sqlite3.Connection, vnet_id: str) -> VnetRecord | None:
    """The virtual network an ARM id names, in any case (``/subscriptions/S/
    resourceGroups/R/providers/Microsoft.Network/virtualNetworks/V``)."""
    parts = name_key(vnet_id).strip("/").split("/")
    if (len(parts) != 8 or parts[0] != "subscriptions" or parts[2] != "resourcegroups"
            or parts[4:7] != ["providers", "microsoft.network", "virtualnetworks"]):
        return None
    row = conn.execute(
        "SELECT * FROM virtual_networks WHERE subscription = ? AND rg_key = ? AND name_key = ?",
        (subscription_key(parts[1]), parts[3], parts[7])).fetchone()
    return None if row is None else VnetRecord.from_row(row)


def _placement(conn: sqlite3.Connection, subnet_key: str) -> tuple[VnetRecord, str, str] | None:
    """Look up ``<virtual network id>/subnets/N`` (any case)."""
    vnet_id, sep, subnet = name_key(subnet_key).rstrip("/").rpartition("/subnets/")
    record = _vnet_by_id(conn, vnet_id) if sep and "/" not in subnet else None
    found = None if record is None else record.subnets().get(subnet)
    return None if found is None or record is None else (record, found[0], found[1])


def check_placement(conn: sqlite3.Connection, subnet_key: str) -> None:
    """400 SubnetNotFound unless the subnet exists (run in put_group's transaction)."""
    if _placement(conn, subnet_key) is None:
        raise ArmError(400, "SubnetNotFound",
                       f"The subnet '{subnet_key}' does not exist: create the virtual network "
                       "and its subnet first.", target="properties.subnetIds")


def record_teardown(conn: sqlite3.Connection, record: VnetRecord, now: float) -> None:
    """Note that the deleted network ``record`` is to be removed from the node (run in its
    deletion's transaction)."""
    conn.execute("INSERT INTO vnet_teardowns (vnet_key, recorded_at) VALUES (?, ?)"
                 " ON CONFLICT (vnet_key) DO NOTHING", (name_key(record.resource_id), now))


def delete_vnets_of(conn: sqlite3.Connection, sub: str, rg: str, now: float) -> None:
    """Delete every virtual network of a resource group, each with its teardown recorded
    (run in the resource group's deletion's transaction)."""
    key = (subscription_key(sub), name_key(rg))
    rows = conn.execute("SELECT * FROM virtual_networks WHERE subscription = ? AND rg_key = ?",
                        key).fetchall()
    for row in rows:
        record_teardown(conn, VnetRecord.from_row(row), now)
    conn.execute("DELETE FROM virtual_networks WHERE subscription = ? AND rg_key = ?", key)


def refuse_networks_used_elsewhere(conn: sqlite3.Connection, sub: str, rg: str) -> None:
    """400 InUseSubnetCannotBeDeleted if a container group of another resource group
    is in a subnet of one of ``rg``'s virtual networks (run in its deletion's
    transaction: ARM refuses to delete a resource group whose network is in use)."""
    key = (subscription_key(sub), name_key(rg))
    rows = conn.execute("SELECT * FROM virtual_networks WHERE subscription = ? AND rg_key = ?",
                        key).fetchall()
    for row in rows:
        vnet = VnetRecord.from_row(row)
        user = conn.execute(
            "SELECT subscription, resource_group, name FROM container_groups WHERE subnet_key"
            " LIKE ? ESCAPE '\\' AND NOT (subscription = ? AND rg_key = ?) LIMIT 1",
            (_like_prefix(name_key(vnet.resource_id) + "/subnets/"), *key)).fetchone()
        if user is not None:
            raise ArmError(400, "InUseSubnetCannotBeDeleted",
                           f"Resource group '{rg}' cannot be deleted: its virtual network "
                           f"'{vnet.name}' is in use by {_user(user, sub)}.")
