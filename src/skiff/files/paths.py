"""A share's paths to host paths, never out of the share.

Each component is checked (no ``.``, ``..``, empty, NUL or ``\\``), then the walk
opens every directory with ``O_NOFOLLOW`` relative to the one before: a symlink
planted in the share (pointing anywhere) is a missing entry, never followed, so
nothing is read or written outside the share's root.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

_BAD = set('"\\:|<>*?\x00')


class BadName(ValueError):
    """A path component Azure Files refuses (400 InvalidResourceName)."""


class Missing(LookupError):
    """A directory on the way does not exist (or is not a directory; or is a symlink)."""


def split(path: str) -> list[str]:
    """The components of a decoded share path; BadName for any unsafe one."""
    if not path:
        return []
    parts = path.strip("/").split("/") if path.strip("/") else []
    for part in parts:
        if part in ("", ".", "..") or any(c in _BAD for c in part) or len(part) > 255:
            raise BadName(part)
        if any(ord(c) < 0x20 for c in part):
            raise BadName(part)
    return parts


def open_root(root: Path) -> int:
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(root_fd: int, parts: list[str]) -> int:
    """A descriptor of the directory ``parts`` below the root (the caller closes it);
    Missing if any component is absent, not a directory or a symlink."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise Missing(part) from exc
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def directory(root: Path, parts: list[str]) -> Iterator[int]:
    """The directory's descriptor for the ``with`` block; Missing as :func:`open_dir`."""
    root_fd = open_root(root)
    try:
        fd = open_dir(root_fd, parts)
    finally:
        os.close(root_fd)
    try:
        yield fd
    finally:
        os.close(fd)
