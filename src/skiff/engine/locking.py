"""File locks that hold across threads and processes.

The engine's on-disk stores are shared by every skiff process on a machine
(a server, a CLI command, a test), so their locks are ``flock(2)`` locks on
small files: each acquisition opens its own file description, which makes the
same lock exclusive between threads of one process too, and the kernel drops
it when a process dies, so a crash never leaves a lock behind.

One lock says who uses a data root: every ``skiff serve`` holds
``<data root>/serve.lock`` shared for as long as it runs (:func:`hold_serving`),
and ``skiff node reset`` takes it exclusively (:func:`claim_node`), so neither
starts while the other runs, and a server that died holds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from skiff.errors import NodeBusy

#: The data root's lock held by its servers (shared) and by a reset (exclusive).
SERVE_LOCK = "serve.lock"


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold a lock on ``path`` (created if missing) for the ``with`` block.

    Yields ``True`` once held; with ``blocking=False`` it yields ``False``
    instead of waiting when another holder has it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def locked_all(paths: Iterable[Path]) -> Iterator[None]:
    """Hold exclusive locks on all ``paths``, taken in sorted order so that two
    holders of overlapping sets can never deadlock."""
    with contextlib.ExitStack() as stack:
        for path in sorted(set(paths)):
            stack.enter_context(locked(path))
        yield


def _open_serve_lock(data_root: Path) -> int:
    return os.open(data_root / SERVE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def hold_serving(data_root: Path) -> int:
    """Mark the data root served (a shared lock, held until the returned descriptor is
    closed). NodeBusy if a reset of it is under way."""
    fd = _open_serve_lock(data_root)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NodeBusy(f"skiff node reset is under way on {data_root}: serve once it "
                       "is done") from None
    return fd


@contextlib.contextmanager
def claim_node(data_root: Path) -> Iterator[None]:
    """Hold the data root for a reset (exclusively) for the ``with`` block. NodeBusy if
    a server runs on it (or another reset). A data root that does not exist has no
    server: nothing is created then."""
    if not data_root.is_dir():
        yield
        return
    fd = _open_serve_lock(data_root)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeBusy(f"skiff serve runs on {data_root}: stop it first (SIGTERM; "
                           "its containers keep running)") from None
        yield
    finally:
        os.close(fd)
