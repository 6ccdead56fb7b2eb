"""File locks that hold across threads and processes.

The engine's on-disk stores are shared by every skiff process on a machine
(a server, a CLI command, a test), so their locks are ``flock(2)`` locks on
small files: each acquisition opens its own file description, which makes the
same lock exclusive between threads of one process too, and the kernel drops
it when a process dies, so a crash never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path


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
