"""CLI benchmark: ``skiff container create`` and ``delete`` as a user times them.

Run as root: ``python3 bench/bench_cli.py [--rounds N]``. A real skiff server
(HTTPS, store, reconcile loop, engine) runs in this process on a loopback port,
over a busybox-static image already cached from a loopback registry; each
command is a fresh ``python3 -m skiff container ...`` process, its wall time
taken from its start to its exit, as a shell would see it. Figures are medians
(p50) and p90 over N rounds:

- ``skiff container create`` of a one-container group on the cached image,
  waiting (as the CLI does by default) until it is Running: target p50 <=
  300 ms; beside it, in the same run, ``podman run -d IMAGE`` of the same
  image (the baseline: a container started and detached from);
- ``skiff container delete --yes`` of one such group, one after the other, its
  process ending on SIGTERM: target p50 <= 300 ms; beside it, ``podman rm -f``
  of one such container (SIGTERM, then removal);
- the CLI's own start, ``python3 -m skiff container --help``, and the
  interpreter's, ``python3 -c pass``: the floor under every command.

podman runs as bench_api.py sets it up (its own configuration and storage
under the work directory, installed with apt-get if missing). Everything is
removed at the end, also when the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_api import SLEEPER, HostState, Podman, _load, local_image
from benchkit import percentiles
from skiff.testing.server import RunningServer, running_server

TARGETS_MS = {"create": 300.0, "delete": 300.0}
RG = "bench-cli"


def _timed(argv: list[str], env: dict[str, str]) -> float:
    """Milliseconds ``argv`` took from its start to its exit (which must be 0)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - start) * 1e3
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return elapsed


class Cli:
    """``python3 -m skiff ...`` in a process of its own, pointed at ``server``."""

    def __init__(self, server: RunningServer) -> None:
        self.env = dict(os.environ, SKIFF_URL=server.url, SKIFF_TOKEN=server.token,
                        SKIFF_CA=str(server.ca))
        self.argv = [sys.executable, "-m", "skiff"]

    def __call__(self, *args: str) -> float:
        return _timed([*self.argv, *args], self.env)

    def create(self, image: str, name: str) -> float:
        return self("container", "create", "-g", RG, "-n", name, "--image", image,
                    "--cpu", "0.02", "--memory", "0.05", "--command-line", shlex.join(SLEEPER),
                    "-o", "none")

    def delete(self, name: str) -> float:
        return self("container", "delete", "-g", RG, "-n", name, "--yes", "-o", "none")


def podman_runs(podman: Podman, image: str, rounds: int) -> tuple[list[float], list[float]]:
    """``podman run -d IMAGE`` and then ``podman rm -f`` of each, timed (SLEEPER ends on
    SIGTERM, as the groups' processes do)."""
    runs, removals = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        cid = podman("run", "-d", image, *SLEEPER)
        runs.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        podman("rm", "-f", cid)
        removals.append((time.perf_counter() - start) * 1e3)
    return runs, removals


def _row(what: str, samples: list[float], target: float | None = None) -> str:
    p50, p90 = percentiles(samples)
    verdict = "" if target is None else (
        f"p50 <= {target:.0f} ms: {'met' if p50 <= target else 'MISSED'}")
    return f"{what:<52} {p50:>8.1f}ms {p90:>8.1f}ms  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    Podman.ensure_installed()
    load_before = _load()
    host = HostState()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-cli-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        cleanup.callback(host.restore)
        registry, image, podman = local_image(cleanup, work)
        server = cleanup.enter_context(running_server(work / "root", pool_size=4,
                                                     allow=(registry,)))
        cli = Cli(server)

        # Warm-up: the image pull, the network pool, the interpreter's caches.
        for i in range(2):
            cli.create(image, f"warm-{i}")
            cli.delete(f"warm-{i}")
        podman_runs(podman, image, 2)

        interpreter = [_timed([sys.executable, "-c", "pass"], cli.env)
                       for _ in range(args.rounds)]
        start = [cli("container", "--help") for _ in range(args.rounds)]
        podman_run, podman_rm = podman_runs(podman, image, args.rounds)
        names = [f"g-{i:03d}" for i in range(args.rounds)]
        creates = [cli.create(image, name) for name in names]
        deletes = [cli.delete(name) for name in names]
        load_after = _load()

    print(f"{'what':<52} {'p50':>10} {'p90':>10}  target")
    print(_row("python3 -c pass (the interpreter's start)", interpreter))
    print(_row("skiff container --help (the CLI's start)", start))
    print(_row("podman run -d (baseline)", podman_run))
    print(_row("skiff container create → Running", creates, TARGETS_MS["create"]))
    print(_row("podman rm -f, process ends on SIGTERM (baseline)", podman_rm))
    print(_row("skiff container delete --yes, ends on SIGTERM", deletes, TARGETS_MS["delete"]))
    print(f"create vs podman run -d (p50): "
          f"{statistics.median(creates) / statistics.median(podman_run):.2f}x")
    print(f"machine: before, {load_before}; after, {load_after}")


if __name__ == "__main__":
    main()
