"""A container's output, as conmon writes it: reading it, and following it.

conmon writes what a container prints in the Kubernetes ``k8s-file`` format
CRI-O and Podman use: one record a line, ``<RFC 3339 time> <stdout|stderr>
<F|P> <text>``, where ``P`` marks a partial line whose rest follows in the
next record (conmon writes a line in parts when it reads it in parts).
Readers join partials back into lines and drop the decoration, keeping the
time stamp on request; they work on bytes and decode whole lines, so a
character split between two records comes back whole.

Which files hold the output (a previous file and the current one, or an
earlier instance's ``prev.log``) is :mod:`skiff.engine.runtime.logfiles`'s.
A tail costs what the tail holds, not what the files hold: :func:`read_log`
reads them backwards from their end, block by block, until it has the lines
asked for. conmon may cut the log while it is read (every 10 ms for a
container that writes as fast as it can); a read that saw a cut is read again.

Following a log (:func:`follow_log`) survives cuts by watching the file behind
``ctr.log``: once the name points elsewhere and the old file is read to its
end, it goes on in the new one. A follower slower than two cuts loses what it
did not read in time.

These functions take the container's directory and know nothing of conmon's
process: :class:`~skiff.engine.runtime.conmon.ConmonRuntime` says whether the
container still runs.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from skiff.engine.runtime.logfiles import PREVIOUS, parts

_RECORD = re.compile(rb"(\S+) (stdout|stderr) ([PF]) ?(.*)", re.DOTALL)
_BLOCK = 64 * 1024  # a tail is read backwards in blocks of this size
_TRIES = 5  # reads of a log that conmon cut meanwhile, before the last one is taken


def read_log(base: Path, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
    """The output in ``base``, stdout and stderr interleaved as written: its last
    ``tail`` lines, or all that is kept."""
    if tail is not None and tail <= 0:
        return ""
    for _ in range(_TRIES):
        names = [base / PREVIOUS] if previous else [p for p in parts(base) if p is not None]
        files: list[BinaryIO] = []
        try:
            for path in names:
                try:
                    files.append(open(path, "rb"))  # noqa: SIM115 -- closed below
                except FileNotFoundError:
                    continue
            before = [os.fstat(f.fileno()) for f in files]
            if tail is None:
                records: list[bytes] = []
                for f, st in zip(files, before, strict=True):
                    records += os.pread(f.fileno(), st.st_size, 0).split(b"\n")
            else:
                records = _last_records(files, [st.st_size for st in before], tail)
            after = [os.fstat(f.fileno()) for f in files]
        finally:
            for f in files:
                f.close()
        # A cut meanwhile changes which files hold the log, or writes to the previous one.
        unchanged = (previous or names == [p for p in parts(base) if p is not None]) and all(
            (a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns)
            for a, b in zip(after[:-1], before[:-1], strict=True))
        if unchanged:
            break
    lines = list(_lines(records, timestamps))
    return "".join(lines[-tail:] if tail is not None else lines)


def follow_log(path: Path, running: Callable[[], bool], *, timestamps: bool = False,
               poll_s: float = 0.05) -> Iterator[str]:
    """Each line of the log at ``path`` (a container's ``ctr.log``) as it is written,
    across cuts, until the container is no longer ``running`` and all is read."""
    f: BinaryIO | None = None
    inode = None
    buffered = b""
    partial: list[bytes] = []
    try:
        while True:
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: SIM115 -- closed below
                    inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    f = None
            chunk = f.readline() if f is not None else b""
            if chunk:
                buffered += chunk
                if not buffered.endswith(b"\n"):
                    continue  # conmon is mid-write: wait for the rest of the record
                record, buffered = buffered[:-1], b""
                yield from _lines([record], timestamps, partial)
                continue
            if f is not None and os.fstat(f.fileno()).st_size < f.tell():
                # Cut twice since: conmon truncated this file and writes it anew.
                f.close()
                f, buffered = None, b""
                continue
            try:
                cut = os.stat(path).st_ino != inode
            except FileNotFoundError:
                cut = f is not None
            if cut and f is not None:
                f.close()  # the rest of this file was read: go on in the new one
                f = None
                continue
            if not running():
                if f is not None and (more := f.read()):
                    buffered += more
                    for record in buffered.split(b"\n")[:-1]:
                        yield from _lines([record], timestamps, partial)
                    buffered = b""
                    continue
                return
            time.sleep(poll_s)
    finally:
        if f is not None:
            f.close()


def _last_records(files: list[BinaryIO], sizes: list[int], lines: int) -> list[bytes]:
    """The records that hold the last ``lines`` lines of ``files`` (oldest first),
    read from their end: a line is done at its ``F`` record, so the records after the
    ``lines + 1``-th ``F`` from the end (or all, if there are fewer) hold them."""
    found: list[bytes] = []
    finals = 0
    for f, size in zip(reversed(files), reversed(sizes), strict=True):
        for record in _backwards(f, size):
            found.append(record)
            match = _RECORD.fullmatch(record)
            if match and match.group(3) == b"F":
                finals += 1
                if finals > lines:
                    return found[::-1]
    return found[::-1]


def _backwards(f: BinaryIO, size: int) -> Iterator[bytes]:
    """The records (lines, without their newline) of the first ``size`` bytes of
    ``f``, last first, read in blocks from the end."""
    position = size
    rest = b""  # the start of a record that began before ``position``
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        block = os.pread(f.fileno(), step, position) + rest
        records = block.split(b"\n")
        rest = records[0]
        for record in reversed(records[1:]):
            if record:
                yield record
    if rest:
        yield rest


def _lines(records: Iterable[bytes], timestamps: bool,
           partial: list[bytes] | None = None) -> Iterator[str]:
    """The lines the k8s-file ``records`` hold, joining partials: ``partial`` carries
    a line's start between calls (a follower's), else one left at the end is a line."""
    carry = partial if partial is not None else []
    for record in records:
        match = _RECORD.fullmatch(record)
        if not match:
            continue
        stamp, _stream, tag, text = match.groups()
        carry.append(text)
        if tag == b"P":  # a partial line: the rest follows in the next record
            continue
        line = b"".join(carry)
        carry.clear()
        yield (stamp + b" " + line if timestamps else line).decode(errors="replace") + "\n"
    if partial is None and carry:
        yield b"".join(carry).decode(errors="replace")

