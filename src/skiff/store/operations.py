"""Long-running operations: what the SDK's poller reads until a change is done.

A PUT, DELETE, start or restart answers at once with an
``Azure-AsyncOperation`` URL; the client polls it until the status is
terminal. The operation must outlive a restart of skiff (a poller keeps
polling across it), so it lives in the store beside the desired state it
tracks, with the group generation whose reaching finishes it.

Finished operations are kept :attr:`StoreSettings.operation_retention_s`
(a day), then pruned: :meth:`OperationsMixin.create_operation` prunes as it
goes, an indexed delete that costs nothing when there is nothing to prune.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from skiff.store.activity import record_outcome
from skiff.store.database import Database
from skiff.store.records import (
    OPERATION_STATUSES,
    TERMINAL_STATUSES,
    OperationRecord,
    dumps,
    name_key,
    subscription_key,
)


class OperationsMixin(Database):
    """The store's ``operations`` table."""

    def create_operation(self, sub: str, location: str, resource_id: str, kind: str,
                         generation: int | None = None) -> OperationRecord:
        """Record a new operation, InProgress."""
        sub = subscription_key(sub)
        op = OperationRecord(id=str(uuid.uuid4()), subscription=sub, location=location,
                             resource_id=resource_id, kind=kind, status="InProgress",
                             error=None, started_at=self.now(), ended_at=None,
                             generation=generation)
        with self.write() as conn:
            conn.execute(
                "INSERT INTO operations (id, subscription, location, resource_id, resource_key,"
                " kind, status, error, started_at, ended_at, generation)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?)",
                (op.id, sub, location, resource_id, name_key(resource_id), kind, op.status,
                 op.started_at, generation),
            )
            self._prune(conn, self.settings.operation_retention_s)
        return op

    def finish_operation(self, op_id: str, status: str,
                         error: dict[str, Any] | None = None) -> bool:
        """End an operation with a terminal ``status`` (and record in the activity log the
        event that tells how it ended: :func:`~skiff.store.activity.record_outcome`).

        Returns whether it applied: an unknown operation, or one already
        finished, keeps what it has (the first outcome reported wins).
        """
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"not a terminal operation status: {status!r}")
        with self.write() as conn:
            cursor = conn.execute(
                "UPDATE operations SET status = ?, error = ?, ended_at = ?"
                " WHERE id = ? AND status = 'InProgress'",
                (status, None if error is None else dumps(error), self.now(), op_id),
            )
            if cursor.rowcount != 1:
                return False
            record_outcome(conn, op_id, status, error, self.now())
            return True

    def get_operation(self, op_id: str) -> OperationRecord | None:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM operations WHERE id = ?", (op_id,)).fetchone()
        return None if row is None else OperationRecord.from_row(row)

    def operations_for(self, resource_id: str,
                       status: str | None = "InProgress") -> list[OperationRecord]:
        """The operations on ``resource_id`` (any case) in ``status`` (None: all), oldest first."""
        if status is not None and status not in OPERATION_STATUSES:
            raise ValueError(f"not an operation status: {status!r}")
        sql = "SELECT * FROM operations WHERE resource_key = ?"
        params: tuple[object, ...] = (name_key(resource_id),)
        if status is not None:
            sql += " AND status = ?"
            params += (status,)
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY started_at, rowid", params).fetchall()
        return [OperationRecord.from_row(row) for row in rows]

    def prune_operations(self, older_than_s: float | None = None) -> int:
        """Delete operations finished more than ``older_than_s`` seconds ago (default: the
        retention setting); returns how many went. Operations in progress stay."""
        seconds = self.settings.operation_retention_s if older_than_s is None else older_than_s
        with self.write() as conn:
            return self._prune(conn, seconds)

    def _prune(self, conn: sqlite3.Connection, older_than_s: float) -> int:
        cursor = conn.execute("DELETE FROM operations WHERE ended_at < ?",
                              (self.now() - older_than_s,))
        return int(cursor.rowcount)
