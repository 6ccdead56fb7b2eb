"""Admission: whether a container group may take what it asks, decided where it is written.

A group asks for CPUs and memory (the sum of its containers' requests); the node has
so much of each (times the operator's overcommit), and each subscription has ACI's
quotas (:class:`~skiff.settings.QuotaSettings`). Checking those and then writing the
group in two steps let two concurrent PUTs both take the last cores; so the check runs
inside the store's write transaction (``BEGIN IMMEDIATE``: one writer at a time, even
across processes), on columns the transaction sums without reading a body
(``cpu``, ``memory_gb``, ``released``: schema version 10). A DNS label is claimed in
the same transaction for the same reason (:func:`claim_label`).

Only what runs holds capacity: a group holds its requests while its desired state is
``running`` and its current generation has not ended (``released``: it was stopped,
its containers all exited, its deployment failed). Ending is learnt two ways: a
failed deployment is recorded by the reconcile loop, and the containers' own exits
are asked of the engine when a request would not fit otherwise
(:meth:`~skiff.store.Store.release`). A new generation (a new body, a start, a
restart) holds again, and is admitted again if it did not hold before.

Spot groups (``priority: Spot``, the ``spot`` column) run on spare capacity: one is
admitted only where no group holds the node's capacity, and counts in the
subscription's ``StandardSpotCores`` (a Regular group in ``StandardCores``). A Regular
group may take what running Spot groups hold: just enough of them are evicted in the
transaction that admits it (:func:`evict_for`), so two racing Regular PUTs cannot
both take one Spot group's cores. An evicted group holds nothing; the reconcile loop
stops its containers (``evicted`` 1 → 2) and, once capacity is spare, admits it again
(:meth:`AdmissionMixin.readmit_evicted`), as ACI restarts an evicted Spot group.

GPUs are counted as cores are, per SKU (the ``gpus`` column: ``{"H100": 2}``), against
the node's GPUs of each SKU (no overcommit: a GPU is given whole, to one container).
Spot groups have none (the rules refuse them), so no eviction frees a GPU.

The order of refusals follows ACI: the subscription's quotas (400
ContainerGroupQuotaReached, naming the quota, its limit and the subscription's own
usage), then the node's capacity (409 ServiceUnavailable, naming only the request:
what others use stays theirs; for GPUs, also what the node has in all, so that a
request for a SKU it does not have says so).

:class:`AdmissionMixin` holds the store's methods of these columns and of the DNS labels
(``dns_labels``), which are claimed here too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.core.gpus import canonical as canonical_sku
from skiff.core.gpus import describe as describe_gpus
from skiff.errors import ArmError, GroupNotFound
from skiff.store.database import Database
from skiff.store.records import EVICTED, EVICTING, name_key, subscription_key

#: The quota windows of creates and deletes, in seconds, by quota name.
_RATES = {"create": (("ContainerGroupCreatesPer5Minutes", 300.0),
                     ("ContainerGroupCreatesPerHour", 3600.0)),
          "delete": (("ContainerGroupDeletesPer5Minutes", 300.0),
                     ("ContainerGroupDeletesPerHour", 3600.0))}
#: How long a create or delete is remembered: the longest window.
_KEEP_S = 3600.0
#: Sums of floats compare with this slack (0.1 + 0.2 cores fit in 0.3).
_EPSILON = 1e-9
#: The groups that hold capacity, as a WHERE clause.
HOLDING = "desired = 'running' AND released = 0"


@dataclass(frozen=True)
class Admission:
    """What a write must fit in: the node's capacity and its subscription's quotas."""

    #: The node's CPUs and GB of memory that groups may ask for in all (overcommit in).
    cpu: float
    memory_gb: float
    #: The subscription's limits, by quota name (:data:`skiff.settings.QUOTA_NAMES`).
    quotas: Mapping[str, int]
    #: The region named in a refusal: the location the request used.
    region: str
    #: The node's GPUs by SKU name (none: a request for GPUs is refused).
    gpus: Mapping[str, int] = field(default_factory=dict)
    #: What has those GPUs, in a refusal's words (:attr:`NodeCapacity.site`).
    site: str = "This node"


class QuotaExceeded(ArmError):
    """A subscription's quota would be passed: ACI's 400 ContainerGroupQuotaReached."""

    def __init__(self, quota: str, region: str, limit: int, usage: float,
                 requested: float) -> None:
        super().__init__(
            400, "ContainerGroupQuotaReached",
            f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group "
            f"quota '{quota}' exceeded in region '{region}'. Limit: '{limit}', Usage: "
            f"'{usage:g}' Requested: '{requested:g}'.")
        self.quota = quota


class CapacityExceeded(ArmError):
    """The node has not what the group asks left; the routes word it as ACI does (409
    ServiceUnavailable, naming the request only)."""

    def __init__(self, cpu: float, memory_gb: float, gpus: Mapping[str, int] | None = None,
                 node_gpus: Mapping[str, int] | None = None, site: str = "This node") -> None:
        asked = "".join(f" '{n}' '{sku}' GPU" for sku, n in sorted((gpus or {}).items()))
        super().__init__(409, "ServiceUnavailable",
                         f"The requested resource is not available at this moment. Resource "
                         f"requested: '{cpu:g}' CPU '{memory_gb:g}' GB memory{asked}")
        self.cpu, self.memory_gb = cpu, memory_gb
        #: The GPUs asked, by SKU (empty: none).
        self.gpus: dict[str, int] = dict(gpus or {})
        #: When GPUs were what did not fit: the node's GPUs by SKU, for the refusal's words.
        self.node_gpus: dict[str, int] | None = None if node_gpus is None else dict(node_gpus)
        self.site = site

    def gpu_words(self) -> str:
        """What the node has, when GPUs did not fit (``""`` otherwise)."""
        if self.node_gpus is None:
            return ""
        return f" {self.site} has {describe_gpus(self.node_gpus)}."


class DnsLabelInUse(ArmError):
    """Another container group holds the DNS name label (409)."""

    def __init__(self, label: str) -> None:
        super().__init__(
            409, "DnsNameLabelInUse",
            f"The DNS name label '{label}' is held by another container group. Choose "
            "another dnsNameLabel, or an autoGeneratedDomainNameLabelScope other than "
            "Unsecure, or delete the group that holds it.",
            target="properties.ipAddress.dnsNameLabel")


def requests_of(body: Mapping[str, Any]) -> tuple[float, float]:
    """The CPUs and GB a stored body asks for: its containers' requests, summed (init
    containers run before them, on the same reservation)."""
    cpu = memory = 0.0
    for container in body.get("properties", {}).get("containers", []):
        requests = container.get("properties", {}).get("resources", {}).get("requests", {})
        cpu += float(requests.get("cpu", 0))
        memory += float(requests.get("memoryInGB", 0))
    return cpu, memory


def gpus_of(body: Mapping[str, Any]) -> dict[str, int]:
    """The GPUs a stored body's containers ask for, by canonical SKU name."""
    found: dict[str, int] = {}
    for container in body.get("properties", {}).get("containers", []):
        requests = container.get("properties", {}).get("resources", {}).get("requests", {})
        gpu = requests.get("gpu")
        if isinstance(gpu, dict) and gpu.get("count") and gpu.get("sku"):
            sku = canonical_sku(str(gpu["sku"]))
            found[sku] = found.get(sku, 0) + int(gpu["count"])
    return found


def held_gpus(conn: sqlite3.Connection, other: str) -> dict[str, int]:
    """The GPUs held by the node's groups (``other``'s left out), by SKU."""
    held: dict[str, int] = {}
    for (text,) in conn.execute(f"SELECT gpus FROM container_groups"  # noqa: S608
                                f" WHERE uid != ? AND {HOLDING} AND gpus != '{{}}'", (other,)):
        for sku, count in json.loads(text).items():
            held[sku] = held.get(sku, 0) + int(count)
    return held


def is_spot(body: Mapping[str, Any]) -> bool:
    """Whether a stored body is a ``priority: Spot`` group."""
    return bool(body.get("properties", {}).get("priority") == "Spot")


def admit(conn: sqlite3.Connection, admission: Admission, *, subscription: str,
          uid: str | None, cpu: float, memory_gb: float, creating: bool,
          now: float, spot: bool = False, gpus: Mapping[str, int] | None = None) -> list[str]:
    """Raise unless a group of ``subscription`` asking ``cpu`` and ``memory_gb`` fits,
    ``uid``'s own holding (the group being replaced or started) left out; a new group
    (``creating``) must also fit the subscription's count and rate of creates, which
    this records. Run inside the write transaction that writes the group.

    A Spot group (``spot``) counts in the subscription's ``StandardSpotCores``, a Regular
    one in ``StandardCores``. A Spot group fits only in capacity no group holds; a
    Regular one may also take the capacity of running Spot groups, which are then
    evicted here (:func:`evict_for`): the uids of those, if any, are returned.

    ``gpus`` (by canonical SKU) must fit in the node's GPUs of each SKU that no other
    group holds (CapacityExceeded naming what the node has otherwise)."""
    quotas, region = admission.quotas, admission.region
    other = uid or ""
    if creating:
        count = conn.execute("SELECT count(*) FROM container_groups WHERE subscription = ?"
                             " AND desired != 'deleted'", (subscription,)).fetchone()[0]
        if count + 1 > quotas["ContainerGroups"]:
            raise QuotaExceeded("ContainerGroups", region, quotas["ContainerGroups"], count, 1)
        count_event(conn, admission, subscription=subscription, kind="create", now=now)
    quota = "StandardSpotCores" if spot else "StandardCores"
    cores = conn.execute(f"SELECT coalesce(sum(cpu), 0) FROM container_groups"  # noqa: S608
                         f" WHERE subscription = ? AND uid != ? AND {HOLDING} AND spot = ?",
                         (subscription, other, int(spot))).fetchone()[0]
    if cores + cpu > quotas[quota] + _EPSILON:
        raise QuotaExceeded(quota, region, quotas[quota], cores, cpu)
    if gpus:
        held = held_gpus(conn, other)
        if any(held.get(sku, 0) + n > admission.gpus.get(sku, 0) for sku, n in gpus.items()):
            raise CapacityExceeded(cpu, memory_gb, gpus, admission.gpus, admission.site)
    used_cpu, used_memory = conn.execute(
        f"SELECT coalesce(sum(cpu), 0), coalesce(sum(memory_gb), 0)"  # noqa: S608
        f" FROM container_groups WHERE uid != ? AND {HOLDING}", (other,)).fetchone()
    over_cpu = used_cpu + cpu - admission.cpu
    over_memory = used_memory + memory_gb - admission.memory_gb
    if over_cpu <= _EPSILON and over_memory <= _EPSILON:
        return []
    if spot:
        raise CapacityExceeded(cpu, memory_gb, gpus)
    return evict_for(conn, other, over_cpu, over_memory, cpu, memory_gb, now)


def evict_for(conn: sqlite3.Connection, uid: str, over_cpu: float, over_memory: float,
              cpu: float, memory_gb: float, now: float) -> list[str]:
    """Evict just enough running Spot groups (the most recently admitted first: those
    that ran least) to free ``over_cpu`` CPUs and ``over_memory`` GB for a Regular
    group (``uid``, which is never evicted for itself) asking ``cpu`` and
    ``memory_gb``; CapacityExceeded, evicting nothing, if all of them would not do.
    An evicted group holds nothing from here on; the reconcile loop stops its containers
    before it runs the group that took its place (:data:`~skiff.store.records.EVICTING`).
    """
    chosen: list[str] = []
    for row in conn.execute(f"SELECT uid, cpu, memory_gb FROM container_groups"  # noqa: S608
                            f" WHERE {HOLDING} AND spot = 1 AND uid != ?"
                            f" ORDER BY admitted_at DESC, uid", (uid,)):
        if over_cpu <= _EPSILON and over_memory <= _EPSILON:
            break
        chosen.append(row[0])
        over_cpu -= row[1]
        over_memory -= row[2]
    if over_cpu > _EPSILON or over_memory > _EPSILON:
        raise CapacityExceeded(cpu, memory_gb)
    for victim in chosen:
        conn.execute("UPDATE container_groups SET released = 1, evicted = ?, evicted_at = ?,"
                     " evictions = evictions + 1, updated_at = ? WHERE uid = ?",
                     (EVICTING, now, now, victim))
    return chosen


def count_event(conn: sqlite3.Connection, admission: Admission, *, subscription: str,
                kind: str, now: float) -> None:
    """Refuse a create or delete (``kind``) past the subscription's rate quotas, else
    record it; what fell out of every window is forgotten."""
    conn.execute("DELETE FROM quota_events WHERE subscription = ? AND at <= ?",
                 (subscription, now - _KEEP_S))
    for quota, window in _RATES[kind]:
        done = conn.execute("SELECT count(*) FROM quota_events WHERE subscription = ?"
                            " AND kind = ? AND at > ?",
                            (subscription, kind, now - window)).fetchone()[0]
        if done + 1 > admission.quotas[quota]:
            raise QuotaExceeded(quota, admission.region, admission.quotas[quota], done, 1)
    conn.execute("INSERT INTO quota_events (subscription, kind, at) VALUES (?, ?, ?)",
                 (subscription, kind, now))


def usage(conn: sqlite3.Connection, subscription: str, now: float) -> dict[str, float]:
    """The subscription's current value of every quota, by name."""
    groups, cores, spot_cores = conn.execute(
        "SELECT count(*), coalesce(sum(CASE WHEN desired = 'running' AND released = 0"
        " AND spot = 0 THEN cpu ELSE 0 END), 0), coalesce(sum(CASE WHEN desired = 'running'"
        " AND released = 0 AND spot = 1 THEN cpu ELSE 0 END), 0) FROM container_groups"
        " WHERE subscription = ? AND desired != 'deleted'", (subscription,)).fetchone()
    found: dict[str, float] = {"ContainerGroups": groups, "StandardCores": cores,
                               "StandardSpotCores": spot_cores}
    for kind, rates in _RATES.items():
        for quota, window in rates:
            found[quota] = conn.execute(
                "SELECT count(*) FROM quota_events WHERE subscription = ? AND kind = ?"
                " AND at > ?", (subscription, kind, now - window)).fetchone()[0]
    return found


def claim_label(conn: sqlite3.Connection, uid: str, label: str | None) -> None:
    """Make ``label`` (any case; None: none) the one DNS label group ``uid`` holds;
    DnsLabelInUse if another group holds it (the caller's transaction then rolls back,
    the group's write with it)."""
    key = None if label is None else name_key(label)
    held = [row[0] for row in conn.execute("SELECT label FROM dns_labels WHERE group_uid = ?",
                                           (uid,))]
    if held == ([] if key is None else [key]):
        return
    conn.execute("DELETE FROM dns_labels WHERE group_uid = ?", (uid,))
    if label is None or key is None:
        return
    if conn.execute("SELECT 1 FROM dns_labels WHERE label = ?", (key,)).fetchone() is not None:
        raise DnsLabelInUse(label)
    conn.execute("INSERT INTO dns_labels (label, group_uid) VALUES (?, ?)", (key, uid))


class AdmissionMixin(Database):
    """What holds capacity, the quotas' usage, and the DNS labels groups hold."""

    def holding(self) -> list[tuple[str, int]]:
        """Every group that holds capacity (desired running, its generation not ended)
        and whose generation the reconcile loop has deployed (so that the engine's view
        is of that generation), as (uid, generation): those whose end :meth:`release`
        may record."""
        with self.read() as conn:
            rows = conn.execute(f"SELECT uid, generation FROM container_groups"  # noqa: S608
                                f" WHERE {HOLDING} AND settled = generation").fetchall()
        return [(row["uid"], row["generation"]) for row in rows]

    def release(self, uid: str, generation: int) -> bool:
        """Record that generation ``generation`` of the group has ended (stopped, its
        containers all exited): it holds no capacity until it runs again. Returns
        whether it applied (not if a newer generation came meanwhile)."""
        with self.write() as conn:
            return conn.execute(
                "UPDATE container_groups SET released = 1 WHERE uid = ? AND generation = ?"
                " AND released = 0", (uid, generation)).rowcount == 1

    def evicting(self) -> list[str]:
        """The Spot groups evicted whose containers are still to be stopped."""
        with self.read() as conn:
            return [row[0] for row in conn.execute(
                "SELECT uid FROM container_groups WHERE evicted = ? ORDER BY evicted_at, uid",
                (EVICTING,))]

    def finish_eviction(self, uid: str) -> bool:
        """Record that an evicted group's containers are stopped: it waits for spare
        capacity (:meth:`readmit_evicted`). Whether it applied (not if the group was
        started, changed, stopped or deleted meanwhile)."""
        with self.write() as conn:
            return conn.execute("UPDATE container_groups SET evicted = ? WHERE uid = ?"
                                " AND evicted = ?", (EVICTED, uid, EVICTING)).rowcount == 1

    def readmit_evicted(self, admission_for: Callable[[str, str], Admission]) -> list[str]:
        """Admit again, as ACI restarts them, the evicted Spot groups that fit now, the
        first evicted first (``admission_for(subscription, location)``: what one must fit
        in); each holds its capacity again and is to run. Returns their uids."""
        admitted: list[str] = []
        with self.read() as conn:  # most calls find none: no write transaction for them
            places = conn.execute("SELECT DISTINCT subscription, location FROM"
                                  " container_groups WHERE evicted = ? AND desired ="
                                  " 'running'", (EVICTED,)).fetchall()
        if not places:
            return admitted
        # What each must fit in, asked before the write transaction: an engine's capacity
        # may be a request to a cluster, which must not hold the store's writers.
        fits = {(p["subscription"], p["location"]):
                admission_for(p["subscription"], p["location"]) for p in places}
        with self.write() as conn:
            now = self.now()
            rows = conn.execute(
                "SELECT uid, subscription, location, cpu, memory_gb FROM container_groups"
                " WHERE evicted = ? AND desired = 'running' ORDER BY evicted_at, uid",
                (EVICTED,)).fetchall()
            for row in rows:
                fit = fits.get((row["subscription"], row["location"]))
                if fit is None:  # evicted since the read: the next round's
                    continue
                try:
                    admit(conn, fit,
                          subscription=row["subscription"], uid=row["uid"], cpu=row["cpu"],
                          memory_gb=row["memory_gb"], creating=False, now=now, spot=True)
                except ArmError:  # no room yet (capacity, or the Spot cores quota)
                    continue
                conn.execute("UPDATE container_groups SET released = 0, evicted = 0,"
                             " admitted_at = ?, updated_at = ? WHERE uid = ?",
                             (now, now, row["uid"]))
                admitted.append(row["uid"])
        return admitted

    def quota_usage(self, sub: str) -> dict[str, float]:
        """The subscription's current value of each quota (groups, cores held, creates
        and deletes in their windows), by quota name."""
        with self.read() as conn:
            return usage(conn, subscription_key(sub), self.now())

    def claim_dns_label(self, label: str, group_uid: str) -> bool:
        """Take ``label`` (any case) for the group; False if another group holds it.

        Claiming a label the group already holds is True. Raises
        :class:`~skiff.errors.GroupNotFound` for an unknown group.
        """
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM container_groups WHERE uid = ?",
                            (group_uid,)).fetchone() is None:
                raise GroupNotFound(f"no container group {group_uid} in the store")
            row = conn.execute("SELECT group_uid FROM dns_labels WHERE label = ?",
                               (name_key(label),)).fetchone()
            if row is not None:
                return bool(row["group_uid"] == group_uid)
            conn.execute("INSERT INTO dns_labels (label, group_uid) VALUES (?, ?)",
                         (name_key(label), group_uid))
            return True

    def release_dns_labels(self, group_uid: str) -> None:
        """Free every label the group holds."""
        with self.write() as conn:
            conn.execute("DELETE FROM dns_labels WHERE group_uid = ?", (group_uid,))

    def dns_label_holder(self, label: str) -> str | None:
        """The uid of the group holding ``label`` (any case), or None."""
        with self.read() as conn:
            row = conn.execute("SELECT group_uid FROM dns_labels WHERE label = ?",
                               (name_key(label),)).fetchone()
        return None if row is None else str(row["group_uid"])
