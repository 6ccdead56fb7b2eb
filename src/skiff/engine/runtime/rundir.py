"""The node's run directory: a root-only tmpfs, because what runs containers holds secrets.

runc must read a container's environment, secure values included, from the
bundle's ``config.json``, in clear; runsc keeps the whole spec in its state
files; conmon's fifos and sockets live beside them. None of it may rest on the
persistent disk, where a backup, a disk image or a local user's later read
could find it. So skiff mounts a tmpfs of its own on the run directory
(``/run/skiff-<hash>``; not every host has /run on tmpfs, this one does not),
mode 0700, ``nosuid,nodev`` and ``noswap`` where the kernel has it, and keeps
there every container's bundle (``bundles/<cid>/``), runc's and runsc's state,
conmon's sockets and exit files.

It is mounted once, at the first container this skiff creates, and stays:
conmon keeps running containers (and their fifos) across restarts of skiff,
and a restarted skiff finds its tmpfs and adopts them. A reboot clears it with
the containers, and the next start of each group rebuilds its bundles from
the group's definition, as any container start does. A run directory that
already holds a running skiff's state on disk (an upgrade from a skiff that
kept it there) is left as it is, with a warning, until the next reboot: a
tmpfs mounted over it would hide the state of the containers that run.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from skiff.engine import mounts

log = logging.getLogger(__name__)

_FLAGS = mounts.MS_NOSUID | mounts.MS_NODEV


def holds_files(path: Path) -> bool:
    """Whether anything but directories is below ``path`` (state of running containers)."""
    return any(files for _, _, files in os.walk(path))


def on_tmpfs(path: Path) -> bool:
    """Whether ``path`` is a tmpfs mount point."""
    found = mounts.filesystems_at(path)
    return bool(found) and found[-1] == "tmpfs"


def prepare(path: Path, size_bytes: int) -> bool:
    """Make ``path`` a 0700 tmpfs of ``size_bytes`` (once; a tmpfs there is kept, with
    what it holds). Returns whether it is one: False if it holds state on disk already or
    mounting failed, both logged."""
    path.mkdir(parents=True, exist_ok=True)
    if on_tmpfs(path):
        os.chmod(path, 0o700)
        return True
    if holds_files(path):
        os.chmod(path, 0o700)
        log.warning("the run directory %s holds containers' state on disk (an earlier "
                    "skiff's): it stays there, root's alone, until the next reboot", path)
        return False
    options = f"size={size_bytes},mode=0700"
    # noswap (Linux 6.4+) keeps the bundles off the swap device; older kernels refuse it.
    err = mounts.mount("tmpfs", path, "tmpfs", _FLAGS, options + ",noswap")
    if err == errno.EINVAL:
        err = mounts.mount("tmpfs", path, "tmpfs", _FLAGS, options)
    if err:
        os.chmod(path, 0o700)
        log.warning("cannot mount a tmpfs on the run directory %s (%s): containers' "
                    "bundles rest on its filesystem, root's alone", path, os.strerror(err))
        return False
    return True


def remove(path: Path) -> None:
    """Unmount the run directory's tmpfs (lazily if busy) and delete the directory: what
    tests and benchmarks do once their containers are gone."""
    if on_tmpfs(path):
        mounts.detach(path)
    shutil.rmtree(path, ignore_errors=True)
