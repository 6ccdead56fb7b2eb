"""A container's output, as conmon writes it: reading, following, rotating.

conmon writes what a container prints to ``ctr.log`` in its directory, in
the Kubernetes ``k8s-file`` format CRI-O and Podman use: one record a line,
``<RFC 3339 time> <stdout|stderr> <F|P> <text>``, where ``P`` marks a
partial line whose rest follows in the next record (conmon writes a line
in parts when it reads it in parts). Readers join partials back into lines
and drop the decoration, keeping the time stamp on request.

skiff gives conmon no size limit and rotates the log itself
(:func:`rotate_log`, called from the supervisor's monitor loop): past half
of ``RuntimeSettings.log_max_bytes``, ``ctr.log`` becomes ``ctr.log.1`` and
conmon is asked, on its ``ctl`` fifo, to reopen ``ctr.log``. That is
asynchronous, so the older half is cut to size only once nothing writes to
it any more; at most ``log_max_bytes`` are kept in all. When a container's
instance is replaced, its output moves to ``prev.log`` (:func:`retire_log`),
which is what ``--previous`` reads.

Following a log (:func:`follow_log`) survives rotations by watching the
inode behind ``ctr.log``: once the name points elsewhere and the old file is
read to its end, it goes on in the new one.

These functions take the container's directory and know nothing of conmon's
process: :class:`~skiff.engine.runtime.conmon.ConmonRuntime` says whether its
monitor, or the container, still runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_LOG_LINE = re.compile(r"^(\S+) (stdout|stderr) ([PF]) ?(.*)$")
_REOPEN_LOGS = b"2 0 0\n"  # conmon's ctl fifo: message type 2 reopens the log file


def retire_log(base: Path) -> None:
    """Keep the output of the instance in ``base`` as its prev.log, for the next one."""
    log, rotated = base / "ctr.log", base / "ctr.log.1"
    if log.exists() or rotated.exists():
        with open(base / "prev.log", "wb") as out:
            for part in (rotated, log):
                with contextlib.suppress(FileNotFoundError), open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        for part in (rotated, log):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()


def rotate_log(base: Path, max_bytes: int, monitor_alive: Callable[[], bool]) -> bool:
    """Keep at most ``max_bytes`` of output: past half of it, the log moves
    to ctr.log.1 (replacing the older part) and conmon reopens ctr.log.

    conmon reopens asynchronously, so output written meanwhile still lands
    in ctr.log.1; once nothing writes there any more, its head is trimmed.
    ``monitor_alive`` says whether conmon still runs."""
    log, older = base / "ctr.log", base / "ctr.log.1"
    half = max_bytes // 2
    if older.exists() and (log.exists() or not monitor_alive()):
        _trim_head(older, half)
    try:
        if log.stat().st_size < half:
            return False
    except FileNotFoundError:
        return False
    os.replace(log, older)
    if not monitor_alive():
        _trim_head(older, half)  # nothing writes any more: cut it to size now
        return True
    try:
        fd = os.open(base / "ctl", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        _trim_head(older, half)  # conmon just left
        return True
    try:
        os.write(fd, _REOPEN_LOGS)
    except OSError:  # EPIPE: conmon closed its end between the open and the write
        _trim_head(older, half)
    finally:
        os.close(fd)
    return True


def read_log(base: Path, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
    """The output in ``base``, stdout and stderr interleaved as written."""
    parts = [base / "prev.log"] if previous else [base / "ctr.log.1", base / "ctr.log"]
    lines = list(_parse_k8s_log(parts, timestamps))
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "".join(lines)


def follow_log(path: Path, running: Callable[[], bool], *, timestamps: bool = False,
               poll_s: float = 0.05) -> Iterator[str]:
    """Each line of the log at ``path`` as it is written, across rotations,
    until the container is no longer ``running`` and all is read."""
    f: Any = None
    inode = None
    buffered = ""
    partial = ""
    try:
        while True:
            if f is None:
                try:
                    f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                    inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    f = None
            chunk = f.readline() if f is not None else ""
            if chunk:
                buffered += chunk
                if not buffered.endswith("\n"):
                    continue  # conmon is mid-write: wait for the rest of the record
                match = _LOG_LINE.match(buffered.rstrip("\n"))
                buffered = ""
                if match:
                    stamp, _stream, tag, text = match.groups()
                    if tag == "P":
                        partial += text
                        continue
                    line, partial = partial + text, ""
                    yield f"{stamp} {line}\n" if timestamps else f"{line}\n"
                continue
            try:
                rotated = path.stat().st_ino != inode
            except FileNotFoundError:
                rotated = f is not None
            if rotated and f is not None:
                f.close()  # the rest of this file was read: go on in the new one
                f = None
                continue
            if not running():
                if f is not None and (more := f.read()):
                    buffered += more
                    continue
                return
            time.sleep(poll_s)
    finally:
        if f is not None:
            f.close()


def _trim_head(path: Path, keep: int) -> None:
    """Cut ``path`` to its last ``keep`` bytes or less, at a line boundary."""
    size = path.stat().st_size
    if size <= keep:
        return
    with open(path, "rb") as f:
        f.seek(size - keep)
        tail = f.read()
    tail = tail[tail.find(b"\n") + 1:]
    tmp = path.with_name(path.name + ".trim")
    tmp.write_bytes(tail)
    os.replace(tmp, path)


def _parse_k8s_log(paths: Sequence[Path], timestamps: bool) -> Iterator[str]:
    partial = ""
    for path in paths:
        try:
            f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 -- closed below
        except FileNotFoundError:
            continue
        with f:
            for raw in f:
                match = _LOG_LINE.match(raw.rstrip("\n"))
                if not match:
                    continue
                stamp, _stream, tag, text = match.groups()
                if tag == "P":  # a partial line: the rest follows in the next record
                    partial += text
                    continue
                line = partial + text
                partial = ""
                yield f"{stamp} {line}\n" if timestamps else f"{line}\n"
    if partial:
        yield partial
