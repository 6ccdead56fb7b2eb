"""SQLite connections for the store: one writer, a pool of readers.

The API answers from many threads while the reconcile loop writes, and the
desired state an answer promises must be on disk before the answer leaves.
SQLite in WAL mode fits: readers never block the writer nor each other, and
each reads a committed snapshot. It allows one writer at a time, so the
store has exactly one write connection, behind a :class:`threading.Lock`;
every write is a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write
lock at its start, so the checks a write makes (does the group exist? is the
label free?) and the write itself are atomic even against another process
on the same file. ``synchronous=FULL`` makes each commit fsync the WAL: a
``put`` that returned survives a crash or a power cut. ``busy_timeout`` only
matters between processes (threads of one store queue on the lock).

Reads borrow a connection from a small pool instead of one per thread: an
HTTP server's threads come and go, and a pool keeps the count of open files
bounded and lets :meth:`Database.close` close them all.

Secrets at rest. The file holds the groups' secrets sealed with the node key
(:mod:`skiff.store.sealing`), which the database opens before anything else:
without the key a store that holds sealed values does not open. The writer runs
with ``secure_delete``, so that what a write frees is zeroed, not left in free
pages. Once a migration that sealed the secrets of an older file has run, the
file is rebuilt (``VACUUM``) and its WAL truncated, so that no copy of the
plaintext it held remains in the database's files (the filesystem's own free
blocks are beyond SQLite's reach).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from skiff.store import schema
from skiff.store.bodysecrets import seal_body
from skiff.store.errors import StoreError
from skiff.store.records import dumps
from skiff.store.sealing import Sealer, SealingError, load_key

#: What the store seals with its key, to tell at opening whether a key is its own.
PROBE = "skiff node key probe"
_PROBE_CONTEXT = "sealing/probe"


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """How the store uses its SQLite file."""

    #: Seconds a write waits for another *process* holding the file's write
    #: lock before it fails; threads of one store queue on a lock instead.
    busy_timeout_s: float = 10.0
    #: Read connections kept open for reuse; more are opened while many
    #: threads read at once, and closed when given back to a full pool.
    read_pool_size: int = 8
    #: Seconds a finished operation is kept (ARM keeps them about a day: long
    #: enough for any poller, short enough to keep the table small).
    operation_retention_s: float = 86400.0
    #: Seconds an activity log event is kept (Azure keeps them 90 days).
    activity_retention_s: float = 90 * 86400.0
    #: Events kept per subscription (and for the tenant's sign-ins): the oldest go first
    #: beyond it, so that no tenant's writes can fill the node's disk.
    activity_max_events: int = 100_000


def default_key_path(path: Path) -> Path:
    """Where the node key of the store file ``path`` is, unless the operator says:
    ``keys/node.key`` beside it (``<data root>/keys/node.key`` for a server)."""
    return Path(path).parent / "keys" / "node.key"


class Database:
    """The connections of one store file; :class:`skiff.store.Store` adds the tables' methods.

    ``key_path``: the node key's file (default :func:`default_key_path`), made at
    the first opening of a store that holds nothing sealed yet.
    """

    #: Bumped by every write that changes who may do what (principals, role assignments,
    #: a deleted scope's assignments): the authorization cache's cue
    #: (:mod:`skiff.store.principals`).
    access_generation = 0

    def _access_changed(self) -> None:
        self.access_generation += 1

    def __init__(self, path: Path, *, settings: StoreSettings | None = None,
                 clock: Callable[[], float] = time.time, key_path: Path | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or StoreSettings()
        self.key_path = Path(key_path) if key_path is not None else default_key_path(self.path)
        self._clock = clock
        self._closed = False
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._create_file()
        self._writer = self._connect(write=True)
        try:
            self.sealer = self._open_sealing()
        except BaseException:
            self._writer.close()
            raise

    def _open_sealing(self) -> Sealer:
        """The node key, checked against the store's probe; the schema brought up to date
        (sealing what an older file held in clear), its plaintext wiped, the probe written.

        The probe is written last: a start that dies before it wiped the file's free
        pages leaves no probe, and the next start wipes them again.
        """
        conn = self._writer
        try:
            probe = _probe(conn)
            before = schema.version(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from exc
        sealer = Sealer(load_key(self.key_path, create=probe is None))
        if probe is not None:
            try:
                sealer.unseal(probe, _PROBE_CONTEXT)
            except SealingError:
                raise SealingError(f"the node key {self.key_path} is not the key the store "
                                   f"{self.path} was sealed with") from None

        def seal(uid: str, body: str) -> str:
            return dumps(seal_body(json.loads(body), sealer, uid))

        def seal_ngroup(uid: str, body: str) -> str:
            return dumps(seal_body(json.loads(body), sealer, uid, kind="ngroups"))

        reached = schema.migrate(conn, source=str(self.path), seal_body=seal,
                                 seal_ngroup=seal_ngroup)
        # An older file that a step sealed (or that has no probe yet: a start that died
        # before writing it): its plaintext is in free pages and the WAL.
        first = probe is None and reached >= schema.SEALED
        wipe = before > 0 and (first or any(before < step <= reached
                                            for step in schema.SEALING[1:]))
        if first or wipe:
            try:
                if wipe:
                    conn.execute("VACUUM")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                if probe is None:
                    conn.execute("INSERT INTO sealing (id, probe) VALUES (1, ?)"
                                 " ON CONFLICT (id) DO NOTHING",
                                 (sealer.seal(PROBE, _PROBE_CONTEXT),))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot seal the store {self.path}: {exc}") from exc
        return sealer

    def _create_file(self) -> None:
        # The file holds registry passwords and secure environment values:
        # owner only. SQLite gives its -wal and -shm files the same mode.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        try:
            # isolation_level=None: no implicit transactions, we say BEGIN ourselves.
            # check_same_thread=False: a connection moves between threads, one at a time.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.settings.busy_timeout_s)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if write:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"the store {self.path} cannot use WAL mode "
                                     f"(journal mode stays {mode}): is it on a network share?")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA secure_delete = ON")  # freed content zeroed
            else:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot set up the store {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def now(self) -> float:
        return self._clock()

    @contextlib.contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed (and fsynced) when the block ends, rolled back
        if it raises. Only one runs at a time in this process.

        ``durable=False``: the commit is not fsynced (``synchronous=NORMAL``, in WAL
        mode): it survives a crash of the process, and a power cut only once the next
        durable commit (which syncs the WAL, this one's pages included) is done. For
        what may be lost that way (the activity log), at a fraction of a commit's cost.
        """
        with self._write_lock:
            if self._closed:
                raise StoreError(f"the store {self.path} is closed")
            conn = self._writer
            try:
                if not durable:
                    conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                finally:
                    if not durable:
                        conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise StoreError(f"writing the store {self.path} failed: {exc}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read connection for the block: each statement sees committed data only."""
        conn = self._borrow()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"reading the store {self.path} failed: {exc}") from exc
        finally:
            self._give_back(conn)

    def _borrow(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._closed:
                raise StoreError(f"the store {self.path} is closed")
            if self._pool:
                return self._pool.pop()
        return self._connect(write=False)

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a read that began one and failed: do not keep its snapshot
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        with self._pool_lock:
            if not self._closed and len(self._pool) < self.settings.read_pool_size:
                self._pool.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every connection; later calls raise :class:`StoreError`. Idempotent."""
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()
        self._writer.close()  # the last connection to close checkpoints the WAL

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _probe(conn: sqlite3.Connection) -> str | None:
    """The store's sealed probe: None if it has none yet (a new or older file)."""
    if conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sealing'"
                    ).fetchone() is None:
        return None
    row = conn.execute("SELECT probe FROM sealing WHERE id = 1").fetchone()
    return None if row is None else str(row[0])
