"""The activity log's table: every write's events, kept 90 days and bounded per tenant.

The API records two events per write (:func:`skiff.models.activity.request_events`)
as it answers; a write that started a long-running operation adds a third when the
operation ends, written by :meth:`~skiff.store.operations.OperationsMixin.
finish_operation` in the same transaction that ends it (:func:`record_outcome`).
Which of the two comes first is a race (a fast engine ends the operation before
the API has answered), so each side looks for the other inside its write
transaction: whichever writes second adds the outcome, exactly once.

Cost. An event is never worth an fsync of its own: the events are committed without
one (``durable=False``), which a crash of skiff does not lose (the WAL is written),
and a power cut loses only those recorded since the last durable commit, which the
write they record was itself.

Bounds. Events older than :attr:`~skiff.store.StoreSettings.activity_retention_s`
(90 days, as Azure) go, and a subscription holds at most
:attr:`~skiff.store.StoreSettings.activity_max_events`: the check runs every
:data:`_PRUNE_EVERY` rows recorded, an indexed delete.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from skiff.models.activity import EventQuery, outcome_event
from skiff.store.database import Database
from skiff.store.errors import InvalidSkipToken
from skiff.store.records import dumps, name_key, subscription_key

#: Rows recorded between two checks of the bounds (so a subscription may pass its cap by
#: at most this many rows, a moment).
_PRUNE_EVERY = 64


def _row(subscription: str, event: dict[str, Any], lro_id: str | None) -> tuple[Any, ...]:
    at = datetime.fromisoformat(str(event["eventTimestamp"])).timestamp()
    return (subscription_key(subscription) if subscription else "", at,
            name_key(str(event.get("resourceGroupName", ""))),
            name_key(str(event.get("resourceId", ""))).rstrip("/"),
            str(event.get("resourceProviderName", {}).get("value", "")).lower(),
            str(event.get("correlationId", "")).lower(), str(event.get("caller", "")).lower(),
            str(event.get("status", {}).get("value", "")).lower(), lro_id, dumps(event))


_INSERT = ("INSERT INTO activity_log (subscription, at, rg_key, resource_key, provider_key,"
           " correlation_id, caller_key, status_key, lro_id, event)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def record_outcome(conn: sqlite3.Connection, op_id: str, status: str,
                   error: dict[str, Any] | None, now: float) -> None:
    """In a write transaction that ended operation ``op_id``: its outcome's event, if the
    write that started it is recorded already (else that write's recording adds it)."""
    row = conn.execute("SELECT subscription, event FROM activity_log WHERE lro_id = ?"
                       " ORDER BY seq LIMIT 1", (op_id,)).fetchone()
    if row is not None:
        event = outcome_event(json.loads(row["event"]), status, error, now)
        conn.execute(_INSERT, _row(row["subscription"], event, None))


def _marker(text: str) -> tuple[float, int]:
    """A page marker's (time, seq): the last event handed out."""
    at, _, seq = text.partition("_")
    try:
        when, number = float.fromhex(at), int(seq)
    except ValueError:
        raise InvalidSkipToken() from None
    if not (math.isfinite(when) and 0 <= number < 2**63):
        raise InvalidSkipToken()
    return when, number


class ActivityMixin(Database):
    """The store's ``activity_log`` table."""

    def record_events(self, subscription: str, events: Sequence[dict[str, Any]],
                      lro_id: str | None = None) -> None:
        """Record a request's events (subscription '': the tenant's). ``lro_id``: the
        operation the last one accepted; if it has ended already, its outcome too."""
        rows = [_row(subscription, e, lro_id if i == len(events) - 1 else None)
                for i, e in enumerate(events)]
        with self.write(durable=False) as conn:
            cursor = conn.executemany(_INSERT, rows)
            last = conn.execute("SELECT max(seq) FROM activity_log").fetchone()[0]
            if lro_id is not None and events:
                op = conn.execute("SELECT status, error, ended_at FROM operations"
                                  " WHERE id = ? AND status != 'InProgress'",
                                  (lro_id,)).fetchone()
                if op is not None:
                    error = None if op["error"] is None else json.loads(op["error"])
                    # Never before the answer that accepted it, whatever the clocks say.
                    at = max(float(op["ended_at"]), rows[-1][1])
                    conn.execute(_INSERT, _row(subscription, outcome_event(
                        dict(events[-1]), op["status"], error, at), None))
            if cursor.rowcount and last is not None and int(last) % _PRUNE_EVERY < len(rows):
                self._bound(conn, subscription_key(subscription) if subscription else "")

    def _bound(self, conn: sqlite3.Connection, subscription: str) -> None:
        conn.execute("DELETE FROM activity_log WHERE at < ?",
                     (self.now() - self.settings.activity_retention_s,))
        conn.execute(
            "DELETE FROM activity_log WHERE subscription = ? AND seq <= (SELECT seq FROM"
            " activity_log WHERE subscription = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (subscription, subscription, self.settings.activity_max_events))

    def list_events(self, subscription: str, query: EventQuery, *, after: str | None = None,
                    limit: int = 200) -> tuple[list[dict[str, Any]], str | None]:
        """A subscription's events (''; the tenant's) that ``query`` matches, newest first,
        from past ``after`` (a marker this returned: InvalidSkipToken if not); and the
        marker of the next page (None: this was the last)."""
        sql = ["SELECT seq, at, event FROM activity_log WHERE subscription = ?"
               " AND at >= ? AND at <= ?"]
        params: list[Any] = [subscription_key(subscription) if subscription else "",
                             query.start, query.end]
        for column, value in (("rg_key", query.resource_group),
                              ("resource_key", query.resource_id),
                              ("provider_key", query.provider),
                              ("correlation_id", query.correlation_id),
                              ("caller_key", query.caller), ("status_key", query.status)):
            if value is not None:
                sql.append(f"AND {column} = ?")
                params.append(value)
        if after is not None:
            sql.append("AND (at, seq) < (?, ?)")
            params.extend(_marker(after))
        sql.append("ORDER BY at DESC, seq DESC LIMIT ?")
        params.append(limit + 1)
        with self.read() as conn:
            rows = conn.execute(" ".join(sql), params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more and rows else None
        return ([json.loads(r["event"]) for r in rows],
                None if last is None else f"{float(last['at']).hex()}_{int(last['seq'])}")

    def count_events(self, subscription: str) -> int:
        """How many events a subscription ('': the tenant) holds."""
        with self.read() as conn:
            row = conn.execute("SELECT count(*) FROM activity_log WHERE subscription = ?",
                               (subscription_key(subscription) if subscription else "",)
                               ).fetchone()
        return int(row[0])
