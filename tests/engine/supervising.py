"""One way to run a Supervisor in a test and leave nothing behind, pass or fail.

Every engine test that runs groups needs the same clean-up: its groups, the
sandboxes skiff may have lost track of, the network pool and bridge, the host
guard, the idmapped views, the cgroups and the run directory. Each step runs
even when one before it fails, so nothing leaks from a failed test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from skiff.engine import cgroups, firewall
from skiff.engine.network import Networks
from skiff.engine.supervisor import Supervisor
from skiff.settings import BackoffSettings, NetworkSettings, Settings

#: Restarts within a test's patience: 0.2 s doubling to 1 s.
FAST_BACKOFF = BackoffSettings(initial_s=0.2, factor=2, max_s=1, reset_after_s=600)


def runsc_pids(root: Path) -> list[int]:
    """Processes of runsc (sandboxes, gofers) whose state lives under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[0].startswith(b"runsc") and f"--root={root}".encode() in argv:
                found.append(int(entry.name))
    return found


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def supervising(settings: Settings, *, pool_size: int = 1) -> Iterator[Supervisor]:
    """A Supervisor on ``settings`` (fast restarts, a 50 ms monitor); everything it
    made goes after."""
    networks = Networks(settings.data_root, NetworkSettings(pool_size=pool_size))
    supervisor = Supervisor(settings, networks=networks, backoff=FAST_BACKOFF,
                            monitor_interval_s=0.05)
    try:
        yield supervisor
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(supervisor.images.rootfs.unmount_views)
            cleanup.callback(shutil.rmtree, supervisor.runtime.run_dir, ignore_errors=True)
            cleanup.callback(cgroups.remove, f"/{supervisor.runtime.run_dir.name}")
            cleanup.callback(subprocess.run, ["ip", "link", "del", networks.bridge],
                             capture_output=True, check=False)
            cleanup.callback(firewall.remove_host_guard, networks.bridge)
            cleanup.callback(networks.close)
            cleanup.callback(networks.drain_pool)
            for pid in runsc_pids(supervisor.sandboxes.root):  # sandboxes skiff lost
                cleanup.callback(kill, pid)
            cleanup.callback(supervisor.close)
            for group_id in supervisor.group_ids():
                cleanup.callback(supervisor.delete, group_id)
