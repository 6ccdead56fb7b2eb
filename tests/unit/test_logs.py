"""A container's log files, without conmon: reading tails from the end, partial lines,
the two files conmon cuts between, the links skiff lays for it, following, retiring.

:class:`FakeConmon` writes and cuts the files as conmon 2.1's ``write_k8s_log`` and
``reopen_k8s_file`` do; the real conmon's cuts, at full speed, are
tests/engine/test_logs.py's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.engine.runtime.logfiles import arm, keep, parts, prepare, retire_log, watch
from skiff.engine.runtime.logs import follow_log, read_log
from skiff.testing.waiting import eventually

STAMP = "2026-12-04T10:00:00.000000000+00:00"


def record(text: str, tag: str = "F", stream: str = "stdout", stamp: str = STAMP) -> bytes:
    return f"{stamp} {stream} {tag} {text}\n".encode()


def now() -> str:
    """A time stamp as conmon writes it (UTC here): RFC 3339, nanoseconds."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}+00:00"


class FakeConmon:
    """conmon's side of the log: records appended through ``ctr.log``; a record that
    would pass ``max_bytes`` first cuts: ``ctr.log.tmp`` opened with O_TRUNC, renamed
    over ``ctr.log``."""

    def __init__(self, base: Path, max_bytes: int) -> None:
        self.base, self.max_bytes, self.written = base, max_bytes, 0
        self.fd = os.open(base / "ctr.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, data: bytes) -> None:
        if self.written + len(data) > self.max_bytes:
            self.cut()
        os.write(self.fd, data)
        self.written += len(data)

    def lines(self, first: int, last: int) -> None:
        for i in range(first, last + 1):
            self.write(record(f"line-{i}", stamp=now()))

    def cut(self) -> None:
        os.close(self.fd)
        self.fd = os.open(self.base / "ctr.log.tmp", os.O_WRONLY | os.O_TRUNC | os.O_CREAT,
                          0o600)
        os.rename(self.base / "ctr.log.tmp", self.base / "ctr.log")
        self.written = 0

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A container directory whose log is laid out as for a new instance."""
    prepare(tmp_path)
    return tmp_path


def on_disk(base: Path) -> int:
    return sum(p.lstat().st_size for p in base.glob("ctr.log*") if not p.is_symlink())


def numbers(text: str) -> list[int]:
    return [int(line.removeprefix("line-")) for line in text.splitlines()]


def test_tail_of_a_big_log_reads_only_its_end(base: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The last lines of a 20 MB log come from reading a few blocks at its end."""
    with open(base / "ctr.log.1", "wb") as f:
        for start in range(0, 300_000, 10_000):
            f.write(b"".join(record(f"line-{i}") for i in range(start, start + 10_000)))
    assert os.path.getsize(base / "ctr.log.1") > 15_000_000
    read = []
    real_pread = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        read.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting)
    assert read_log(base, tail=3) == "line-299997\nline-299998\nline-299999\n"
    assert sum(read) <= 64 * 1024
    read.clear()
    assert numbers(read_log(base, tail=5000)) == list(range(295_000, 300_000))
    assert sum(read) <= 5000 * 60 + 64 * 1024


def test_partial_records_join_into_lines_across_blocks_and_files(base: Path) -> None:
    """P records join with the F that ends them, whether a block boundary of the
    backwards read or the cut between the previous file and the current one lies
    between them; a tail counts joined lines."""
    long_line = "x" * 200_000  # 25 records of 8000, across several 64 KiB blocks
    pieces = [long_line[i:i + 8000] for i in range(0, len(long_line), 8000)]
    previous = b"".join([record("first"), *(record(p, "P") for p in pieces[:-1])])
    (base / "ctr.log.2").write_bytes(previous)
    (base / "ctr.log.1").write_bytes(record(pieces[-1]) + record("after", stream="stderr"))
    assert read_log(base) == f"first\n{long_line}\nafter\n"
    assert read_log(base, tail=2) == f"{long_line}\nafter\n"
    assert read_log(base, tail=1) == "after\n"
    assert read_log(base, tail=10) == f"first\n{long_line}\nafter\n"
    assert read_log(base, tail=0) == ""


def test_a_trailing_partial_counts_as_the_last_line(base: Path) -> None:
    """Output that has not ended its line yet is the last line, without a newline."""
    (base / "ctr.log.1").write_bytes(record("one") + record("two") + record("thr", "P"))
    assert read_log(base, tail=2) == "two\nthr"
    assert read_log(base) == "one\ntwo\nthr"


def test_a_character_split_between_records_comes_back_whole(base: Path) -> None:
    """conmon cuts a line where its read ended, even inside a UTF-8 character."""
    data = "grüße".encode()
    cut = data.index(b"\xc3") + 1  # between the two bytes of ü
    (base / "ctr.log.1").write_bytes(
        f"{STAMP} stdout P ".encode() + data[:cut] + b"\n"
        + f"{STAMP} stdout F ".encode() + data[cut:] + b"\n")
    assert read_log(base) == "grüße\n"
    assert read_log(base, tail=1, timestamps=True) == f"{STAMP} grüße\n"


def test_conmons_cuts_alternate_between_two_files(base: Path) -> None:
    """With skiff's links, each of conmon's cuts truncates the older file only: the
    newest full file and the current one stay readable, in order, and at most two
    files' worth is on disk."""
    conmon = FakeConmon(base, max_bytes=4096)
    written = 0
    for _ in range(40):
        conmon.lines(written, written + 49)  # 2.7 kB: at most one cut between two arms
        written += 50
        arm(base)
        text = read_log(base)
        kept = numbers(text)
        assert kept == list(range(kept[0], written))
        readable = len(text.encode()) + len(kept) * len(record(""))
        assert readable >= min(4096, written * len(record("line-0")))
        assert on_disk(base) <= 2 * 4096
    conmon.close()
    assert read_log(base, tail=3) == f"line-{written - 3}\nline-{written - 2}\nline-{written - 1}\n"


def test_a_cut_skiff_missed_loses_nothing(base: Path) -> None:
    """When conmon cuts again before skiff laid the next link, it makes a file of its
    own and the previous one stays; skiff moves the new file into a slot after."""
    conmon = FakeConmon(base, max_bytes=2048)
    conmon.lines(0, 99)  # two cuts: the second found no link
    assert not (base / "ctr.log").is_symlink()
    kept = numbers(read_log(base))
    assert kept == list(range(kept[0], 100))
    assert arm(base)
    assert (base / "ctr.log").is_symlink()
    assert (base / "ctr.log.tmp").is_symlink()
    for first in range(100, 200, 25):
        conmon.lines(first, first + 24)
        arm(base)
    kept = numbers(read_log(base))
    assert kept == list(range(kept[0], 200))
    assert on_disk(base) <= 2 * 2048
    conmon.close()


def test_the_watcher_lays_the_link_as_soon_as_conmon_cuts(base: Path) -> None:
    """Without any call from skiff, conmon's cut is answered with a new link."""
    watch(base)
    conmon = FakeConmon(base, max_bytes=1024)
    try:
        for first in range(0, 2000, 20):
            conmon.lines(first, first + 19)
            eventually(lambda: os.path.lexists(base / "ctr.log.tmp"),
                       what="the next link", timeout_s=5, interval_s=0.001)
        kept = numbers(read_log(base))
        assert kept == list(range(kept[0], 2000))
    finally:
        conmon.close()


def test_keep_cuts_a_conmon_without_a_limit(base: Path) -> None:
    """A log an earlier skiff's conmon writes (no limit: one growing file, and an older
    part from the old rotation) is taken into the slots; past the limit, conmon is told
    on its ctl fifo to reopen, and the file it left is trimmed to the limit."""
    for name in ("ctr.log", "ctr.log.tmp"):
        (base / name).unlink()
    (base / "ctr.log.1").write_bytes(b"".join(record(f"line-{i}") for i in range(0, 100)))
    (base / "ctr.log").write_bytes(b"".join(record(f"line-{i}") for i in range(100, 400)))
    os.mkfifo(base / "ctl")
    ctl = os.open(base / "ctl", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert keep(base, 8192, monitor_alive=lambda: True)
        assert os.read(ctl, 100) == b"2 0 0\n"  # conmon's "reopen the log"
    finally:
        os.close(ctl)
    assert (base / "ctr.log").is_symlink()
    assert numbers(read_log(base)) == list(range(0, 400))
    conmon = FakeConmon(base, max_bytes=1 << 30)
    conmon.cut()  # what conmon does on that message
    conmon.lines(400, 409)
    conmon.close()
    keep(base, 8192, monitor_alive=lambda: False)
    previous, _current = parts(base)
    assert previous is not None
    assert previous.stat().st_size <= 8192
    kept = numbers(read_log(base))
    assert kept == list(range(kept[0], 410))
    assert kept[0] > 100


def test_a_read_during_a_cut_is_read_again(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut between opening the files and reading them shows, and the read is redone."""
    conmon = FakeConmon(base, max_bytes=2048)
    conmon.lines(0, 49)
    arm(base)
    real_pread = os.pread
    cuts = iter([True])

    def cutting(fd: int, n: int, offset: int) -> bytes:
        if next(cuts, False):
            conmon.lines(50, 99)
            arm(base)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", cutting)
    kept = numbers(read_log(base))
    assert kept == list(range(kept[0], 100))
    conmon.close()


def test_retire_keeps_the_newest_output_from_a_whole_record(base: Path) -> None:
    """The next instance's prev.log holds the newest bytes asked for, from a record's
    start; the instance's files go."""
    conmon = FakeConmon(base, max_bytes=4096)
    for first in range(0, 300, 50):
        conmon.lines(first, first + 49)
        arm(base)
    conmon.close()
    retire_log(base, 3000)
    assert sorted(p.name for p in base.iterdir()) == ["prev.log"]
    assert (base / "prev.log").stat().st_size <= 3000
    kept = numbers(read_log(base, previous=True))
    assert kept == list(range(kept[0], 300))
    assert len(kept) >= 3000 // 56
    prepare(base)
    assert read_log(base) == ""


def test_follow_goes_on_across_cuts(base: Path) -> None:
    """A follower reads every line while conmon cuts between the two files under it."""
    conmon = FakeConmon(base, max_bytes=2048)
    done = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        seen.extend(follow_log(base / "ctr.log", lambda: not done.is_set(), poll_s=0.001))

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        for first in range(0, 400, 10):
            conmon.lines(first, first + 9)
            arm(base)
            eventually(lambda first=first: len(seen) >= first + 10,  # type: ignore[misc]
                       what="the follower to catch up", timeout_s=5, interval_s=0.001)
    finally:
        done.set()
        follower.join()
        conmon.close()
    assert numbers("".join(seen)) == list(range(400))


def test_follow_starts_over_in_a_file_cut_under_it(base: Path) -> None:
    """A follower that sees its file truncated (two cuts while it was away) reads on
    from the start of what is written now, not from its old offset."""
    (base / "ctr.log.1").write_bytes(b"".join(record(f"line-{i}") for i in range(100)))
    lines: Iterator[str] = follow_log(base / "ctr.log", lambda: True, poll_s=0.001)
    assert [next(lines) for _ in range(100)] == [f"line-{i}\n" for i in range(100)]
    (base / "ctr.log.1").write_bytes(record("new-0") + record("new-1"))  # O_TRUNC, reused
    assert [next(lines), next(lines)] == ["new-0\n", "new-1\n"]

