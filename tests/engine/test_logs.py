"""A container that writes as fast as it can, under the real conmon and supervisor: its
log stays within twice the limit on disk, the newest output stays readable, in order,
and a tail is its last lines.

runc only: the log files are conmon's and skiff's, the same for a gVisor sandbox's
members (test_drivers.py reads their logs); a sandbox's writer is slower, not different.
"""

from __future__ import annotations

import time

import pytest

from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime.logfiles import bytes_on_disk
from skiff.testing.catalog import BuiltImages
from skiff.testing.groups import box, group_spec
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

LIMIT = 4 * 1024 * 1024  # RuntimeSettings' default, as the engine fixture has it
LINES = 3_000_000  # ≈ 160 MB of log, 40 cuts: well under a second at full speed


def test_a_fast_writer_keeps_its_log_bounded_and_its_newest_output_readable(
    engine: Supervisor, images: BuiltImages
) -> None:
    """While a container prints 3 million lines as fast as it can, its log files never
    hold more than twice the limit (three times for the moment skiff is late); after,
    at least the limit's worth of its newest output is readable, with no gap, and a
    tail of 5 is its last 5 lines."""
    assert engine.runtime.settings.log_max_bytes == LIMIT
    spec = group_spec(box(images, "writer", f"seq 1 {LINES}; echo done; sleep 300"))
    view = engine.run(spec)
    directory = engine.runtime.dir(view.containers[0].cid)
    peak = 0
    deadline = time.monotonic() + 120
    while engine.logs(spec.id, "writer", tail=1) != "done\n":
        assert time.monotonic() < deadline, "the writer did not finish in 120 s"
        peak = max(peak, bytes_on_disk(directory))
    assert peak <= 3 * LIMIT
    eventually(lambda: bytes_on_disk(directory) <= 2 * LIMIT, what="skiff to catch up", timeout_s=5)
    tail = engine.logs(spec.id, "writer", tail=5)
    assert tail == "".join(f"{i}\n" for i in range(LINES - 3, LINES + 1)) + "done\n"
    kept = [int(line) for line in engine.logs(spec.id, "writer").splitlines()[:-1]]
    assert kept == list(range(kept[0], LINES + 1))
    assert bytes_on_disk(directory) >= LIMIT
