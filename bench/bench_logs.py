"""Log benchmark: a container writing as fast as it can, its log on disk, and what
reading a tail of it costs.

Run as root: ``python3 bench/bench_logs.py [--lines N] [--rounds N]``. Everything is
local (a busybox image from a registry on loopback) and goes after, pass or fail. The
container runs ``seq 1 N`` (default 20 million lines: about 1 GB of k8s-file log,
which the report measures as what conmon wrote) through the engine as the API drives
it (``Supervisor.logs``). Figures are medians (p50) and p90 over the rounds:

- the write: GB conmon wrote, seconds, MB/s;
- disk: the most the container's log files held at any sample during the write
  (target <= 2 x ``log_max_bytes`` = 8 MiB, 3 x for a moment when skiff is late);
- readable: after the write, what the whole log holds (target >= ``log_max_bytes``
  of log file), and whether its lines follow each other with no gap;
- ``logs(tail=100)`` while the writer writes and after: target p50 <= 50 ms;
- the RSS growth of this process over the rounds after (peak minus start, the peak
  reset first): target <= 10 MB.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime.logfiles import bytes_on_disk
from skiff.settings import Settings
from skiff.testing.engine import cached_busybox, supervising


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _conmon_wrote(directory: Path) -> int:
    """Bytes conmon has written (its log, nearly all of it), from /proc/<pid>/io."""
    try:
        pid = int((directory / "conmon.pid").read_text())
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    return 0


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms"


def run(engine: Supervisor, image: str, lines: int, rounds: int) -> None:
    limit = engine.runtime.settings.log_max_bytes
    spec = GroupSpec(id=uuid.uuid4().hex, name="bl" + uuid.uuid4().hex[:6], containers=(
        Container(name="writer", image=image,
                  command=("sh", "-c", f"seq 1 {lines}; echo done; sleep 3600"),
                  resources=Resources(cpu=2, memory_gb=0.1)),))
    view = engine.run(spec)
    directory = engine.runtime.dir(view.containers[0].cid)
    started = time.monotonic()
    peak_disk, wrote, during = 0, 0, []
    while True:
        peak_disk = max(peak_disk, bytes_on_disk(directory))
        wrote = max(wrote, _conmon_wrote(directory))
        began = time.perf_counter()
        tail = engine.logs(spec.id, "writer", tail=100)
        during.append(time.perf_counter() - began)
        if tail.endswith("done\n"):
            break
        time.sleep(0.01)
    seconds = time.monotonic() - started
    print(f"write: {lines} lines, conmon wrote {wrote / 1e9:.2f} GB in {seconds:.1f} s "
          f"({wrote / 1e6 / seconds:.0f} MB/s)")
    print(f"disk: at most {peak_disk / 2**20:.2f} MiB of log files over the write "
          f"(limit {limit / 2**20:.0f} MiB a file; target <= {2 * limit / 2**20:.0f} MiB)")
    text = engine.logs(spec.id, "writer")
    kept = [int(line) for line in text.splitlines()[:-1]]
    gaps = sum(1 for a, b in itertools.pairwise(kept) if b != a + 1)
    print(f"readable: lines {kept[0]}..{kept[-1]} ({len(kept)}), {gaps} gaps, "
          f"{bytes_on_disk(directory) / 2**20:.2f} MiB of log files (target >= "
          f"{limit / 2**20:.0f} MiB), {len(text) / 2**20:.2f} MiB of text")
    print(f"logs(tail=100) during the write ({len(during)} calls): {_percentiles(during)}")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM)
    rss = _status_kb("VmRSS")
    after = []
    for _ in range(rounds):
        began = time.perf_counter()
        engine.logs(spec.id, "writer", tail=100)
        after.append(time.perf_counter() - began)
    growth = (_status_kb("VmHWM") - rss) / 1024
    print(f"logs(tail=100) after ({rounds} calls): {_percentiles(after)} (target p50 <= 50 ms); "
          f"RSS growth {growth:.1f} MB (target <= 10 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000_000,
                        help="lines the container writes (20 million: about 1 GB of log)")
    parser.add_argument("--rounds", type=int, default=200, help="tail calls measured after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-logs-") as tmp:
        work = Path(tmp)
        with supervising(Settings(data_root=work / "root")) as engine, \
                cached_busybox(engine, work) as image:
            run(engine, image, args.lines, args.rounds)


if __name__ == "__main__":
    main()
