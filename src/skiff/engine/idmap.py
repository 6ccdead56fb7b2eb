"""Idmapped mounts: the image layers as a remapped container's root sees them.

With ``--userns-remap FIRST:COUNT`` a container's root is host id FIRST, not
0. The image layers are unpacked once, owned by the ids their tar files name
(mostly 0), and shared by every container: chowning them per mapping would
copy every image. An *idmapped mount* (Linux 5.12+, ``mount_setattr(2)`` with
``MOUNT_ATTR_IDMAP``) shows a directory with its owners shifted through a
user namespace instead, without touching a file; overlayfs accepts idmapped
layers as lowerdirs since Linux 5.19. (An overlay mount itself cannot be
idmapped: mount_setattr answers EINVAL, tried on 6.18.)

So :class:`~skiff.engine.images.store.ImageStore` mounts one idmapped view of
its root per mapping (non-recursive: the containers' merged rootfses below it
stay out), takes the lowerdirs from that view, and gives the container's
upper directory to the mapped root. Files the container writes land in the
upper directory owned by mapped ids, and the overlay shows them back as
such.

The user namespace the mapping is read from is made by a short-lived
``unshare --user`` child whose maps we write (we are root); its namespace
file stays valid after the child exits for as long as we hold it open,
and ``mount_setattr`` needs it only for the call.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from pathlib import Path

from skiff.engine.mounts import libc
from skiff.errors import RootfsError

# x86_64 and aarch64 share these numbers (the "new" syscalls are numbered alike
# on every architecture since 5.x).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_MOVE_MOUNT_F_EMPTY_PATH = 4
_MOUNT_ATTR_IDMAP = 0x00100000
#: Seconds an ``unshare`` child may take to enter its user namespace.
_UNSHARE_TIMEOUT_S = 5.0


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def user_namespace(first: int, count: int) -> int:
    """An open fd of a user namespace mapping ids 0..count-1 to host ids first.. (users
    and groups); the caller closes it."""
    mine = os.readlink("/proc/self/ns/user")
    try:
        child = subprocess.Popen(["unshare", "--user", "--", "sleep", "60"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    except OSError as exc:
        raise RootfsError(f"cannot start unshare for a user namespace: {exc}") from exc
    try:
        deadline = time.monotonic() + _UNSHARE_TIMEOUT_S
        while True:
            try:
                if os.readlink(f"/proc/{child.pid}/ns/user") != mine:
                    break
            except FileNotFoundError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                err = child.stderr.read().decode(errors="replace") if child.stderr else ""
                raise RootfsError(f"unshare --user did not make a user namespace: {err.strip()}")
            time.sleep(0.001)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{child.pid}/{name}", "w") as f:
                f.write(f"0 {first} {count}\n")
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(f"cannot map ids {first}:{count} in a user namespace: "
                          f"{exc.strerror or exc}") from exc
    finally:
        child.kill()
        child.wait()
        if child.stderr is not None:
            child.stderr.close()


def bind_idmapped(source: Path, target: Path, first: int, count: int) -> None:
    """Bind ``source`` (alone, not the mounts below it) at ``target``, its owners shifted:
    host id ``i`` shows as ``first + i`` for i < count, others as unmapped."""
    userns = user_namespace(first, count)
    tree = -1
    try:
        tree = libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(source),
                            _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC)
        if tree < 0:
            _fail("open_tree", source)
        attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, userns)
        if libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH, ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))) < 0:
            _fail("mount_setattr (idmapped mounts need Linux 5.12+ and a filesystem that "
                  "supports them)", source)
        if libc.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(target),
                        _MOVE_MOUNT_F_EMPTY_PATH) < 0:
            _fail("move_mount", target)
    finally:
        if tree >= 0:
            os.close(tree)
        os.close(userns)


def _fail(call: str, path: Path) -> None:
    err = ctypes.get_errno()
    raise RootfsError(f"cannot make an idmapped mount of {path}: {call}: {os.strerror(err)}")
