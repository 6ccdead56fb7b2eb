"""The metrics' time-series file: containers' CPU and memory, groups' network, over time.

Why a file of its own, beside the store's ``skiff.db``, and why SQLite for it:

- The write rate is steady and small but never stops: 200 running groups give
  ≈ 400 rows (a row per container: CPU and memory; one per group: bytes in and
  out) every 15 s, ≈ 27 rows a second, written as one transaction per sampling
  round. SQLite in WAL mode takes such a batch in about a millisecond.
- In the store it would queue behind (and delay) the writes an API answer
  waits for (``synchronous=FULL``, one fsync each), grow the store's backups by
  ≈ 70 MB a day of data nobody needs to restore, and need a store migration for
  each change of layout. Samples are not desired state: losing the last round
  to a crash costs nothing, so this file commits with ``synchronous=NORMAL``
  (no fsync per round) and can be deleted at any time (it is remade empty).
- A purpose-made format (append-only segments, as Prometheus' TSDB) would be
  smaller but needs its own compaction, crash recovery and query code; SQLite
  gives those, and a 24 h query of one group is an index range scan
  (``WITHOUT ROWID`` tables clustered by series and time): a few milliseconds.

Layout: a *series* is a group's container (``container`` its name; values ``a``:
CPU in millicores, ``b``: memory working set in bytes) or the group's network
(``container`` empty; ``a``: bytes received per second, ``b``: sent). Full
resolution rows (``samples``) are kept ``full_retention_s`` (24 h); each is also
folded, as it is written, into its ``rollup_s`` bucket (``rollups``: count, sum,
minimum and maximum), kept ``rollup_retention_s`` (30 days). :meth:`MetricsFile.prune`
drops what aged out. A value may be NULL (a container's first sample has no CPU
rate yet); aggregates skip it.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.store.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    grp TEXT NOT NULL,
    container TEXT NOT NULL,
    UNIQUE (grp, container)
);
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    a REAL,
    b REAL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    n_a INTEGER NOT NULL, sum_a REAL, min_a REAL, max_a REAL,
    n_b INTEGER NOT NULL, sum_b REAL, min_b REAL, max_b REAL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
"""

_FOLD = """
INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, t) DO UPDATE SET
    n_a = n_a + excluded.n_a, sum_a = coalesce(sum_a, 0) + coalesce(excluded.sum_a, 0),
    min_a = coalesce(min(min_a, excluded.min_a), min_a, excluded.min_a),
    max_a = coalesce(max(max_a, excluded.max_a), max_a, excluded.max_a),
    n_b = n_b + excluded.n_b, sum_b = coalesce(sum_b, 0) + coalesce(excluded.sum_b, 0),
    min_b = coalesce(min(min_b, excluded.min_b), min_b, excluded.min_b),
    max_b = coalesce(max(max_b, excluded.max_b), max_b, excluded.max_b)
"""


@dataclass(frozen=True)
class Point:
    """One value of a series at one time: ``(group, container)`` as in :class:`Bucket`."""

    group: str
    container: str  # "" for the group's network
    a: float | None
    b: float | None


@dataclass(frozen=True)
class Bucket:
    """A series' values within one interval of a query: average, minimum and maximum of
    each of its two values (None where the interval holds none)."""

    container: str
    start: int  # UNIX seconds
    avg_a: float | None
    min_a: float | None
    max_a: float | None
    avg_b: float | None
    min_b: float | None
    max_b: float | None


class MetricsFile:
    """The time-series file at ``path`` (made on first use). Thread-safe: one
    connection behind a lock (a round's write and a query each take milliseconds)."""

    def __init__(self, path: Path, *, full_retention_s: float = 24 * 3600.0,
                 rollup_s: int = 300, rollup_retention_s: float = 30 * 24 * 3600.0) -> None:
        self.path = path
        self.full_retention_s = full_retention_s
        self.rollup_s = rollup_s
        self.rollup_retention_s = rollup_retention_s
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"opening the metrics file {path} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- writing ---------------------------------------------------------------------

    def _series(self, group: str, container: str) -> int:
        key = (group, container)
        found = self._ids.get(key)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO series (grp, container) VALUES (?, ?)",
                               key)
            found = int(self._conn.execute(
                "SELECT id FROM series WHERE grp = ? AND container = ?", key).fetchone()[0])
            self._ids[key] = found
        return found

    def record(self, t: int, points: Iterable[Point]) -> None:
        """Write one sampling round, taken at UNIX second ``t``, in one transaction (a
        second round in the same second replaces the first's values)."""
        bucket = t - t % self.rollup_s
        with self._lock, self._transaction():
            rows = [(self._series(p.group, p.container), t, p.a, p.b) for p in points]
            self._conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)", rows)
            self._conn.executemany(_FOLD, [
                (series, bucket, int(a is not None), a, a, a, int(b is not None), b, b, b)
                for series, _, a, b in rows])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"writing the metrics file {self.path} failed: {exc}") from exc

    def prune(self, now: float) -> None:
        """Drop samples older than the full-resolution retention, rollups older than
        theirs, and series left with neither (a deleted group's, once aged out)."""
        with self._lock, self._transaction():
            self._conn.execute("DELETE FROM samples WHERE t < ?",
                               (int(now - self.full_retention_s),))
            self._conn.execute("DELETE FROM rollups WHERE t < ?",
                               (int(now - self.rollup_retention_s),))
            gone = [row[0] for row in self._conn.execute(
                "SELECT id FROM series WHERE id NOT IN (SELECT DISTINCT series FROM rollups)")]
            self._conn.executemany("DELETE FROM series WHERE id = ?", [(i,) for i in gone])
            dropped = set(gone)
            self._ids = {k: v for k, v in self._ids.items() if v not in dropped}

    # ---- reading ---------------------------------------------------------------------

    def query(self, group: str, start: float, end: float, interval_s: int, now: float, *,
              containers: Sequence[str] | None = None, network: bool = False,
              combined: bool = False) -> list[Bucket]:
        """The buckets of ``interval_s`` seconds from ``start`` (inclusive) to ``end``
        (exclusive) of the group's series: its network's with ``network``; else its
        containers' (``containers``: those only), one series each, or with ``combined`` one
        series (named "") of their values summed at each sample time.

        Within the full-resolution retention the samples answer, else the rollups (whose
        buckets are ``rollup_s`` long: a finer interval then shows gaps; combined, a
        bucket's minimum and maximum are the sums of the containers' own)."""
        # A query aligned down to its interval may start a little before the retention:
        # the samples still answer it (a prune between rounds leaves the edge short).
        full = start >= now - self.full_retention_s - self.rollup_s
        if network:
            where, args = "s.grp = ? AND s.container = ''", [group]
        elif containers is None:
            where, args = "s.grp = ? AND s.container != ''", [group]
        else:
            where = f"s.grp = ? AND s.container IN ({', '.join('?' * len(containers))})"
            args = [group, *containers]
        lo, hi, step = int(start), math.ceil(end), max(1, int(interval_s))
        table = "samples" if full else "rollups"
        if full:
            avg_a, min_a, max_a, avg_b, min_b, max_b = (f"v.{c}" for c in "aaabbb")
        else:
            avg_a, min_a, max_a = "v.sum_a / nullif(v.n_a, 0)", "v.min_a", "v.max_a"
            avg_b, min_b, max_b = "v.sum_b / nullif(v.n_b, 0)", "v.min_b", "v.max_b"
        if combined:
            inner = (f"SELECT v.t AS t, sum({avg_a}) AS aa, sum({min_a}) AS ia, "  # noqa: S608
                     f"sum({max_a}) AS xa, sum({avg_b}) AS ab, sum({min_b}) AS ib, "
                     f"sum({max_b}) AS xb FROM series s JOIN {table} v ON v.series = s.id "
                     f"WHERE {where} AND v.t >= ? AND v.t < ? GROUP BY v.t")
            sql = ("SELECT '', (t - ?) / ? AS k, avg(aa), min(ia), max(xa), avg(ab), "  # noqa: S608
                   f"min(ib), max(xb) FROM ({inner}) GROUP BY k ORDER BY k")
            params = [lo, step, *args, lo, hi]
        else:
            weight_a = "1" if full else "v.n_a"
            weight_b = "1" if full else "v.n_b"
            sql = (f"SELECT s.container, (v.t - ?) / ? AS k, "  # noqa: S608
                   f"sum({avg_a} * {weight_a}) / nullif(sum(CASE WHEN {avg_a} IS NULL "
                   f"THEN 0 ELSE {weight_a} END), 0), min({min_a}), max({max_a}), "
                   f"sum({avg_b} * {weight_b}) / nullif(sum(CASE WHEN {avg_b} IS NULL "
                   f"THEN 0 ELSE {weight_b} END), 0), min({min_b}), max({max_b}) "
                   f"FROM series s JOIN {table} v ON v.series = s.id "
                   f"WHERE {where} AND v.t >= ? AND v.t < ? "
                   "GROUP BY s.container, k ORDER BY s.container, k")
            params = [lo, step, *args, lo, hi]
        try:
            with self._lock:
                rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the metrics file {self.path} failed: {exc}") from exc
        return [Bucket(row[0], lo + int(row[1]) * step, *row[2:]) for row in rows]

    def containers(self, group: str) -> list[str]:
        """The names of the group's containers that have samples (its network left out)."""
        with self._lock:
            return [row[0] for row in self._conn.execute(
                "SELECT container FROM series WHERE grp = ? AND container != '' "
                "ORDER BY container", (group,))]
