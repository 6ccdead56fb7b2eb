"""Crash safety of skiff.store: a writer SIGKILLed at a random moment loses nothing it reported."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from skiff.store import Store
from skiff.testing.waiting import eventually

# The child writes as the API and the reconcile loop do (create, report, change the body),
# and prints each group's uid once put_group has returned, i.e. once it is committed.
CHILD = r"""
import sys
from pathlib import Path
from skiff.store import Store

store = Store(Path(sys.argv[1]))
tag = sys.argv[2]
i = 0
while True:
    body = {"properties": {"n": i, "pad": "x" * 400}}
    record, created = store.put_group("sub", f"rg{i % 7}", f"{tag}-g{i}", "westus", body, {})
    assert created
    sys.stdout.write(record.uid + "\n")
    sys.stdout.flush()
    store.set_provisioning(record.uid, "Creating", generation=record.generation)
    if i % 3 == 0:
        store.put_group("sub", f"rg{i % 7}", f"{tag}-g{i}", "westus", {**body, "v": 2}, {})
    op = store.create_operation("sub", "westus", record.resource_id, "create")
    store.finish_operation(op.id, "Succeeded")
    i += 1
"""


def count_rows(path: Path) -> int:
    """How many groups the file holds now, read as another process would."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.OperationalError:  # the child has not made the file yet
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM container_groups").fetchone()[0])
    except sqlite3.OperationalError:  # nor its tables
        return 0
    finally:
        conn.close()


def run_and_kill(path: Path, out: Path, tag: str, kill_after: int) -> list[str]:
    """Start a writer, SIGKILL it once the file holds ``kill_after`` groups; return the uids
    it reported committed (whole lines only: it may die mid-line)."""
    with out.open("wb") as stdout:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), tag],
                                 stdout=stdout, stderr=subprocess.PIPE)

    def written() -> bool:
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        return count_rows(path) >= kill_after

    try:
        eventually(written, what=f"the writer commits {kill_after} groups", timeout_s=60,
                   interval_s=0.001)  # polled often: the kill lands right after the count
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    text = out.read_text()
    return text.splitlines()[: text.count("\n")]


def test_a_killed_writer_loses_nothing_it_reported(tmp_path: Path) -> None:
    """Three writers in turn are SIGKILLed at random moments; after each, the file opens,
    passes SQLite's integrity check and holds every group its writer reported committed."""
    path = tmp_path / "store.db"
    rng = random.Random()  # a new moment each run; the seed is printed on failure
    seed = rng.randrange(2**32)
    rng.seed(seed)
    reported: list[str] = []
    for round_ in range(3):
        kill_after = count_rows(path) + rng.randrange(20, 400)
        reported += run_and_kill(path, tmp_path / f"out{round_}", f"r{round_}", kill_after)
        with Store(path) as store:
            with store.read() as conn:
                assert [tuple(r) for r in conn.execute("PRAGMA integrity_check")] == [("ok",)]
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            missing = [uid for uid in reported if store.get_group_by_uid(uid) is None]
            assert not missing, f"seed {seed}: round {round_} lost {len(missing)} groups"
            # it died after the count passed: each writer may have committed one more than it said
            assert len(reported) >= kill_after - (round_ + 1)
            assert {g.uid for g in store.pending_work()} >= set(reported)
