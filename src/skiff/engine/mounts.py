"""mount(2), umount2(2) and unshare(2) from Python, and what is mounted where.

Several parts of the engine mount things (overlay root filesystems, network
namespace files, secret tmpfs volumes). A ``mount`` process costs
milliseconds each time; libc through ctypes costs microseconds. Calls return
0 or the errno, and each caller turns a failure into its own skiff error.

A filesystem can also be mounted *detached* (:func:`mount_detached`, the mount API of
Linux 5.2): mounted, but nowhere in any tree, held only by a file descriptor, and
placed at a mount point later in microseconds (:func:`place_detached`); closing
the descriptor of one not placed unmounts it, and a process that dies closes it.

A node reset removes whatever is mounted below a directory, whoever made it
(:func:`unmount_below`), and the loop devices of files below it
(:func:`loop_devices_below`, :func:`detach_loop`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
from pathlib import Path

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
libc.unshare.argtypes = (ctypes.c_int,)
libc.syscall.restype = ctypes.c_long

# <sys/mount.h> and <sched.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20
MNT_DETACH = 2
CLONE_NEWNET = 0x40000000
LOOP_CLR_FD = 0x4C01  # <linux/loop.h>
# The mount API's system calls: one number on every architecture since 5.2 (but alpha),
# called through syscall(2), which every libc has; and their flags (<linux/mount.h>).
SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 429, 430, 431, 432
FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH = 1, 1, 4
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 0, 1, 6
AT_FDCWD = -100
_OCTAL = re.compile(r"\\([0-7]{3})")


def _bytes(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    """A C string argument: None stays NULL."""
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def mount(source: str | bytes | os.PathLike[str] | None, target: str | os.PathLike[str],
          fstype: str | None,
          flags: int = 0, data: str | None = None) -> int:
    """mount(2); returns 0 or the errno."""
    done = libc.mount(_bytes(source), os.fsencode(target), _bytes(fstype), flags,
                      _bytes(data))
    return 0 if done == 0 else ctypes.get_errno()


def _syscall(number: int, *args: object) -> int:
    """A system call's result; a failure raised as OSError."""
    done = libc.syscall(ctypes.c_long(number), *args)
    if done < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(done)


def mount_detached(source: str, fstype: str, options: str = "") -> int:
    """Mount ``source`` (a ``fstype``, with mount(2)'s comma-separated ``options``)
    nowhere: the descriptor of the new mount, for :func:`place_detached`; closing it
    without placing the mount unmounts it. Raises OSError (ENOSYS before Linux 5.2)."""
    context = _syscall(SYS_FSOPEN, os.fsencode(fstype), ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        settings = [("source", source), *(option.partition("=")[::2]
                                          for option in options.split(",") if option)]
        for key, value in settings:
            _syscall(SYS_FSCONFIG, ctypes.c_int(context),
                     ctypes.c_uint(FSCONFIG_SET_STRING if value else FSCONFIG_SET_FLAG),
                     os.fsencode(key), os.fsencode(value) if value else None, ctypes.c_int(0))
        _syscall(SYS_FSCONFIG, ctypes.c_int(context), ctypes.c_uint(FSCONFIG_CMD_CREATE),
                 None, None, ctypes.c_int(0))
        return _syscall(SYS_FSMOUNT, ctypes.c_int(context), ctypes.c_uint(FSMOUNT_CLOEXEC),
                        ctypes.c_uint(0))
    finally:
        os.close(context)


def place_detached(mount_fd: int, target: str | os.PathLike[str]) -> int:
    """Place the detached mount ``mount_fd`` (:func:`mount_detached`) at ``target``
    (move_mount(2)); 0 or the errno. Placed, it stays when the descriptor is closed."""
    try:
        _syscall(SYS_MOVE_MOUNT, ctypes.c_int(mount_fd), b"", ctypes.c_int(AT_FDCWD),
                 os.fsencode(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


def unmount(path: str | os.PathLike[str]) -> int:
    """Unmount ``path``, lazily when busy. 0 when done or when nothing was mounted
    there; else the errno."""
    target = os.fsencode(path)
    if libc.umount2(target, 0) == 0:
        return 0
    err = ctypes.get_errno()
    if err == errno.EBUSY and libc.umount2(target, MNT_DETACH) == 0:
        return 0
    return 0 if err in (errno.EINVAL, errno.ENOENT) else err


def detach(path: str | os.PathLike[str]) -> int:
    """Unmount ``path`` lazily (MNT_DETACH). 0 when done or when nothing was mounted
    there; else the errno."""
    if libc.umount2(os.fsencode(path), MNT_DETACH) == 0:
        return 0
    err = ctypes.get_errno()
    return 0 if err in (errno.EINVAL, errno.ENOENT) else err


def unshare(flags: int) -> int:
    """unshare(2) for the calling thread; returns 0 or the errno."""
    return 0 if libc.unshare(flags) == 0 else ctypes.get_errno()


def is_mounted(path: Path) -> bool:
    """Whether something is mounted at ``path`` (its device differs from its parent's)."""
    try:
        return path.stat().st_dev != path.parent.stat().st_dev
    except FileNotFoundError:
        return False


def mount_points() -> list[Path]:
    """Every mount point of this mount namespace (mountinfo escapes blanks as octal)."""
    with open("/proc/self/mountinfo") as f:
        return [Path(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4]))
                for line in f]


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    top = path.resolve()
    return sorted((p for p in mount_points() if p.is_relative_to(top)),
                  key=lambda p: -len(p.parts))


def filesystems_at(path: Path) -> list[str]:
    """The filesystem types mounted at ``path``, the visible (last mounted) one last."""
    top = path.resolve()
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = Path(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
            if point == top:
                found.append(fields[fields.index("-") + 1])
    return found


def strictly_below(path: Path) -> list[Path]:
    """Mount points below ``path`` (not ``path`` itself), deepest first."""
    top = path.resolve()
    return [p for p in mounts_below(top) if p != top]


def unmount_below(path: Path) -> tuple[list[Path], list[str]]:
    """Unmount everything below ``path`` (``path`` itself stays: it may be a filesystem
    of its own), deepest first, lazily when busy, round after round (mounts may be
    stacked). Returns (what was unmounted, what could not be, with why)."""
    done: list[Path] = []
    for _ in range(64):
        points = strictly_below(path)
        if not points:
            return done, []
        failed = []
        for point in points:
            err = unmount(point)
            if err:
                failed.append(f"cannot unmount {point}: {os.strerror(err)}")
            elif point not in done:
                done.append(point)
        if failed:
            return done, failed
    return done, [f"{p} stays mounted" for p in strictly_below(path)]


def loop_devices_below(path: Path) -> list[tuple[Path, Path]]:
    """(device, backing file) of the loop devices whose file lies below ``path``."""
    top = path.resolve()
    found = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue  # not attached
        file = Path(backing.removesuffix(" (deleted)"))
        if file.is_relative_to(top):
            found.append((Path("/dev") / entry.name, file))
    return found


def detach_loop(device: Path) -> int:
    """Detach the loop device (what ``losetup -d`` does); 0 or the errno."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return exc.errno or errno.EIO
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD)
    except OSError as exc:
        return 0 if exc.errno == errno.ENXIO else exc.errno or errno.EIO
    finally:
        os.close(fd)
    return 0
