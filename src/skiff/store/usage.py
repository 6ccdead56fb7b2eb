"""Usage spans: when each container group was billable, and for how much of the node.

ACI bills a container group per second, from the start of its first image pull
until it is stopped, for the vCPUs, GB of memory (and GPUs) its containers
request; a group that is Stopped, Succeeded or Failed accrues nothing. So the
store keeps *spans*: a row opened when the reconcile loop deploys or starts a
group (:meth:`UsageMixin.open_span`), closed when it stops, ends, fails or is
deleted (:meth:`UsageMixin.close_span`). A span copies the group's names and
requests: it outlives the group, its resource group, and a later PUT that
changes the requests (which closes the span and opens the next one).

Crashes. While a span is open the meter advances its ``last_seen`` every few
seconds (:meth:`UsageMixin.advance_spans`, one statement for all of them). If
the server dies, what ran until the next start is known only up to
``last_seen``: a group that did not survive the crash has its span closed
there (:meth:`UsageMixin.close_span` with ``at=None``), so at most one meter
period of it is lost and nothing is counted twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.store.database import Database
from skiff.store.records import GroupRecord, name_key, subscription_key


@dataclass(frozen=True)
class Requests:
    """What a group asks of the node, summed over its (app) containers."""

    cpu: float
    memory_gb: float
    gpu: int = 0


def requests_of(body: Mapping[str, Any]) -> Requests:
    """The summed requests of a stored ARM body's containers (init containers run
    before them, within the same requests, as ACI counts them)."""
    cpu = memory = 0.0
    gpu = 0
    for container in body.get("properties", {}).get("containers", []) or []:
        wanted = (container.get("properties", {}).get("resources", {}) or {}).get(
            "requests", {}) or {}
        cpu += float(wanted.get("cpu") or 0)
        memory += float(wanted.get("memoryInGB") or 0)
        gpu += int((wanted.get("gpu") or {}).get("count") or 0)
    return Requests(round(cpu, 6), round(memory, 6), gpu)


@dataclass(frozen=True)
class Span:
    """A group's billable span, as stored; ``ended_at`` None while it lasts."""

    id: int
    group_uid: str
    subscription: str
    resource_group: str
    name: str
    location: str
    requests: Requests
    started_at: float
    last_seen: float
    ended_at: float | None
    #: Whether the group ran as ``priority: Spot`` (priced at the Spot prices).
    spot: bool = False

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.ContainerInstance/containerGroups/{self.name}")

    def seconds(self, start: float, end: float, now: float) -> float:
        """Its billable seconds within [start, end) (an open span lasts until ``now``)."""
        until = self.ended_at if self.ended_at is not None else max(now, self.last_seen)
        return max(0.0, min(until, end) - max(self.started_at, start))


def _span(row: sqlite3.Row) -> Span:
    return Span(int(row["id"]), str(row["group_uid"]), str(row["subscription"]),
                str(row["resource_group"]), str(row["name"]), str(row["location"]),
                Requests(float(row["cpu"]), float(row["memory_gb"]), int(row["gpu"])),
                float(row["started_at"]), float(row["last_seen"]),
                None if row["ended_at"] is None else float(row["ended_at"]), bool(row["spot"]))


class UsageMixin(Database):
    """The store's usage spans."""

    def open_span(self, record: GroupRecord, at: float | None = None) -> bool:
        """Begin billing ``record``'s group at ``at`` (now), unless a span of it is open
        with the same requests. One open with other requests (a PUT changed them) ends
        there and the next begins. Returns whether a span began."""
        at = self.now() if at is None else at
        wanted = requests_of(record.body)
        with self.write() as conn:
            row = conn.execute("SELECT * FROM usage_spans WHERE group_uid = ? AND ended_at "
                               "IS NULL", (record.uid,)).fetchone()
            if row is not None:
                if _span(row).requests == wanted and bool(row["spot"]) == record.spot:
                    return False
                conn.execute("UPDATE usage_spans SET ended_at = max(started_at, ?),"
                             " last_seen = max(last_seen, ?) WHERE id = ?", (at, at, row["id"]))
            conn.execute(
                "INSERT INTO usage_spans (group_uid, subscription, rg_key, resource_group, name,"
                " location, cpu, memory_gb, gpu, started_at, last_seen, spot)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.uid, subscription_key(record.subscription),
                 name_key(record.resource_group), record.resource_group, record.name,
                 record.location, wanted.cpu, wanted.memory_gb, wanted.gpu, at, at,
                 int(record.spot)))
            return True

    def close_span(self, uid: str, at: float | None = None) -> bool:
        """End group ``uid``'s open span at ``at`` (never before it began); ``at`` None:
        at its ``last_seen`` (a crash left it, and the group did not outlive it).
        Returns whether one was open."""
        with self.write() as conn:
            if at is None:
                done = conn.execute("UPDATE usage_spans SET ended_at = last_seen"
                                    " WHERE group_uid = ? AND ended_at IS NULL", (uid,))
            else:
                done = conn.execute(
                    "UPDATE usage_spans SET ended_at = max(started_at, ?),"
                    " last_seen = max(last_seen, ?) WHERE group_uid = ? AND ended_at IS NULL",
                    (at, at, uid))
            return done.rowcount > 0

    def advance_spans(self, uids: list[str], at: float) -> None:
        """Mark the open spans of ``uids`` as seen billable at ``at``."""
        if not uids:
            return
        with self.write() as conn:
            conn.executemany("UPDATE usage_spans SET last_seen = max(last_seen, ?)"
                             " WHERE group_uid = ? AND ended_at IS NULL",
                             [(at, uid) for uid in uids])

    def open_span_of(self, uid: str) -> Span | None:
        """Group ``uid``'s open span, if any."""
        with self.read() as conn:
            row = conn.execute("SELECT * FROM usage_spans WHERE group_uid = ? AND ended_at"
                               " IS NULL", (uid,)).fetchone()
        return None if row is None else _span(row)

    def open_spans(self) -> list[Span]:
        """Every open span, oldest first."""
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM usage_spans WHERE ended_at IS NULL"
                                " ORDER BY id").fetchall()
        return [_span(row) for row in rows]

    def spans_between(self, sub: str, start: float, end: float, *,
                      resource_group: str | None = None) -> list[Span]:
        """The subscription's spans (or its resource group's, any case) that overlap
        [start, end), oldest first."""
        query = ("SELECT * FROM usage_spans WHERE subscription = ? AND started_at < ?"
                 " AND (ended_at IS NULL OR ended_at > ?)")
        args: list[Any] = [subscription_key(sub), end, start]
        if resource_group is not None:
            query += " AND rg_key = ?"
            args.append(name_key(resource_group))
        with self.read() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [_span(row) for row in rows]
