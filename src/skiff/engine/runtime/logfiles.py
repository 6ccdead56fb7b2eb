"""The files that hold a container's output, kept within bounds at any write rate.

conmon cuts its log itself once ``--log-size-max`` would be passed: it opens
``ctr.log.tmp`` (``O_TRUNC``), renames that over ``ctr.log`` and goes on
writing there. The output in the old ``ctr.log`` is lost then, unless
``ctr.log`` was a symbolic link: a rename replaces the link, never the file
behind it. skiff lays the links so that conmon's cut is a rotation between
two files::

    ctr.log     -> ctr.log.1     the file conmon writes
    ctr.log.tmp -> ctr.log.2     where it goes at its next cut
    ctr.log.2                    the previous file, full

At each cut, conmon truncates the previous file (the current one is full by
then) and writes on in it; its ``ctr.log.tmp`` link has become ``ctr.log``, and
skiff lays a new one to the other file (:func:`arm`). So, whatever the write
rate, the newest ``log_max_bytes`` of output or more are readable (a full
previous file and the current one) and at most twice that is on disk: a
timer cannot keep up with a container writing hundreds of MB a second, but
conmon's own limit does, at the write that would pass it.

skiff must lay the link before conmon's next cut, so it does so at once: one
inotify watch on each container's directory wakes :class:`_Watcher` when
conmon renames into ``ctr.log``; the supervisor's monitor tick calls
:func:`keep` too (containers adopted from an earlier skiff, a missed event).
When skiff is late (not running, or slower than conmon's next cut), conmon
finds no link and makes a file of its own: the previous file stays, nothing
is lost, a third file lies there until skiff moves it into the older slot;
only a second cut before skiff comes back loses the file between. Disk stays
bounded by conmon's limit even then: three files at most.

Who else reads these files: :mod:`skiff.engine.runtime.logs` (through
:func:`parts`); :func:`retire_log` keeps the newest output of an instance as
``prev.log`` when the next one starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

LOG = "ctr.log"
NEXT = "ctr.log.tmp"  # conmon's name for the file it opens at a cut: the log's name + ".tmp"
SLOTS = ("ctr.log.1", "ctr.log.2")
PREVIOUS = "prev.log"
_REOPEN_LOGS = b"2 0 0\n"  # conmon's ctl fifo: message type 2 reopens the log file

#: One lock for every container's files: skiff's actors (the watcher's thread, the
#: monitor, a retiring create) must not move them under each other.
_lock = threading.Lock()


def prepare(base: Path) -> None:
    """Lay the links of a new instance's log in ``base``, before its conmon starts."""
    with _lock:
        for name in (LOG, NEXT, *SLOTS):
            with contextlib.suppress(FileNotFoundError):
                (base / name).unlink()
        os.symlink(SLOTS[0], base / LOG)  # conmon creates the file through the link
        os.symlink(SLOTS[1], base / NEXT)


def parts(base: Path) -> tuple[Path | None, Path | None]:
    """The files of the instance's log in ``base``: (previous, current), either None."""
    slots = [base / name for name in SLOTS]
    try:
        current: Path | None = base / os.readlink(base / LOG)
    except FileNotFoundError:
        current = None
    except OSError:  # a file, not a link: conmon's own, or one an earlier skiff left
        current = base / LOG
    others = [slot for slot in slots if slot != current and slot.exists()]
    if len(others) == 2:  # ctr.log is conmon's own file: the newer slot is the previous
        return max(others, key=_age), current
    return (others[0] if others else None), current


def arm(base: Path) -> bool:
    """Make ready for conmon's next cut: a file conmon made itself moves into a slot
    behind a link, and ``ctr.log.tmp`` points at the previous file. True if conmon had
    cut since the last call."""
    log_path, next_path = base / LOG, base / NEXT
    with _lock:
        try:
            mode = os.lstat(log_path).st_mode
        except FileNotFoundError:
            return False  # not started yet, or retired
        cut = False
        if stat.S_ISREG(mode):
            # Never the slot ctr.log.tmp points at: conmon would truncate it at its next cut.
            prepared = _link(next_path)
            spare = [base / name for name in SLOTS if name != prepared]
            slot = min(spare, key=_age)  # the older one; the newer is the previous file
            os.replace(log_path, slot)
            with contextlib.suppress(FileExistsError):  # conmon has just cut again
                os.symlink(slot.name, log_path)
            cut = True
        if not os.path.lexists(next_path):
            current = _link(log_path)
            if current in SLOTS:
                with contextlib.suppress(FileExistsError):
                    os.symlink(SLOTS[1] if current == SLOTS[0] else SLOTS[0], next_path)
            cut = True
        return cut


def keep(base: Path, max_bytes: int, monitor_alive: Callable[[], bool]) -> bool:
    """Keep the log in ``base`` within ``max_bytes`` a file: :func:`arm`, and for a
    conmon without a limit of its own (one an earlier skiff started), cut it through
    its ``ctl`` fifo and trim the previous file. True if something was to be done."""
    cut = arm(base)
    previous, current = parts(base)
    if previous is not None and _size(previous) > max_bytes:
        with _lock:
            trim_head(previous, max_bytes)
    if current is not None and _size(current) > max_bytes and monitor_alive():
        try:
            fd = os.open(base / "ctl", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return cut  # conmon just left
        try:
            os.write(fd, _REOPEN_LOGS)
            cut = True
        except OSError:  # EPIPE: conmon closed its end between the open and the write
            pass
        finally:
            os.close(fd)
    return cut


def retire_log(base: Path, keep_bytes: int) -> None:
    """Keep the newest ``keep_bytes`` of the output in ``base`` as its prev.log, for
    the next instance, and remove the instance's files."""
    with _lock:
        previous, current = parts(base)
        files = [path for path in (previous, current) if path is not None]
        if files:
            tmp = base / (PREVIOUS + ".new")
            with open(tmp, "wb") as out:
                skip = max(0, sum(_size(path) for path in files) - keep_bytes)
                for path in files:
                    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        f.seek(min(skip, size))
                        if skip:
                            f.readline()  # from the next whole record on
                        skip = max(0, skip - size)
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
            os.replace(tmp, base / PREVIOUS)
        for name in (LOG, NEXT, *SLOTS):
            with contextlib.suppress(FileNotFoundError):
                (base / name).unlink()


def trim_head(path: Path, keep_bytes: int) -> None:
    """Cut ``path`` to its last ``keep_bytes`` or less, at a line boundary."""
    size = _size(path)
    if size <= keep_bytes:
        return
    with open(path, "rb") as f:
        f.seek(size - keep_bytes)
        f.readline()
        tail = f.read()
    tmp = path.with_name(path.name + ".trim")
    tmp.write_bytes(tail)
    os.replace(tmp, path)


def watch(base: Path) -> None:
    """Arm the log in ``base`` as soon as conmon cuts it, from now on (idempotent)."""
    _watcher.watch(base)


def bytes_on_disk(directory: Path) -> int:
    """Bytes of a container's log files in ``directory`` (its links cost nothing), for
    checks and benchmarks of the bound; a file cut meanwhile counts as gone."""
    total = 0
    for path in directory.glob("ctr.log*"):
        with contextlib.suppress(FileNotFoundError):
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _age(path: Path) -> tuple[int, bytes]:
    """What orders two files of a log: the time of their last write, then (the kernel's
    clock for those is coarse: files cut within a few ms tie) their first record's."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_mtime_ns, f.read(64).split(b" ", 1)[0]
    except FileNotFoundError:
        return -1, b""


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


_IN_MOVED_TO = 0x00000080
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows


class _Watcher:
    """One inotify instance and one thread for the process: each container directory
    watched for renames into ``ctr.log``, which only conmon's cuts make."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None  # -1: inotify unavailable, the monitor tick alone arms
        self._dirs: dict[int, Path] = {}
        self._watched: set[Path] = set()

    def watch(self, base: Path) -> None:
        with self._lock:
            if base in self._watched or not self._started():
                return
            assert self._fd is not None
            wd = _libc.inotify_add_watch(self._fd, os.fsencode(base),
                                         _IN_MOVED_TO | _IN_ONLYDIR)
            if wd < 0:  # ENOSPC (the user's watch limit), ENOENT: the tick arms
                log.debug("cannot watch %s: %s", base, os.strerror(ctypes.get_errno()))
                return
            self._dirs[wd] = base
            self._watched.add(base)

    def _started(self) -> bool:
        if self._fd is None:
            fd = _libc.inotify_init1(_IN_CLOEXEC)
            self._fd = fd if fd >= 0 else -1
            if fd >= 0:
                threading.Thread(target=self._run, args=(fd,), name="skiff-log-watcher",
                                 daemon=True).start()
        return self._fd >= 0

    def _run(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 64 * 1024)
            except InterruptedError:
                continue
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                self._event(wd, mask, name)

    def _event(self, wd: int, mask: int, name: bytes) -> None:
        if mask & _IN_IGNORED:  # the directory went
            with self._lock:
                base = self._dirs.pop(wd, None)
                if base is not None:
                    self._watched.discard(base)
            return
        base = self._dirs.get(wd)
        if base is None or name != LOG.encode():
            return
        try:
            arm(base)
        except OSError as exc:  # the container's files went meanwhile
            if exc.errno != errno.ENOENT:
                log.warning("cannot keep the log in %s: %s", base, exc)
        except Exception:  # the thread must survive anything one container does
            log.exception("keeping the log in %s failed", base)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_watcher = _Watcher()
