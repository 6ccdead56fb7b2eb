"""A node's reboot, played on one data root: what a reboot takes, taken.

A reboot ends every process (conmon and the containers, with no exit file
written, since conmon dies with them), empties /run (a tmpfs: runc's and
runsc's state, conmon's exit files, the network namespaces' mounts), removes
every mount (root filesystems, secret volumes' tmpfs), the cgroups, the
bridges and the firewall's rules. What stays is the data root's files.
:func:`reboot` takes all of that from one data root, so a test can start a
new skiff on it and see its groups come back; nothing else on the machine
(other data roots, other tests' groups) is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from skiff.engine import mounts
from skiff.engine.network import firewall, netns
from skiff.engine.network.addressing import bridge_name
from skiff.engine.network.cni import read_slot
from skiff.engine.runtime import cgroups
from skiff.engine.runtime.conmon import run_dir_for
from skiff.settings import Settings
from skiff.testing.waiting import eventually


def reboot(settings: Settings) -> None:
    """Take from ``settings``' data root what a reboot of the node would: processes
    (conmons first), mounts, network namespaces, /run's directory, cgroups, the bridge
    and its guard. Call it with no skiff running on the data root."""
    root = settings.data_root
    run_dir = settings.runtime.run_dir or run_dir_for(root)
    for pid in processes(root, run_dir, conmon_only=True):
        _kill(pid)  # first: a conmon that sees its container die writes its exit
    eventually(lambda: _killed(processes(root, run_dir)), what="every process of the node gone",
               timeout_s=20)
    for path in mounts.mounts_below(root):
        mounts.detach(path)
    for path in _namespaces(root):
        netns.delete(path)
    shutil.rmtree(run_dir, ignore_errors=True)
    cgroups.remove(f"/{run_dir.name}")
    bridge = bridge_name(root)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    firewall.remove_host_guard(bridge)


def processes(root: Path, run_dir: Path, *, conmon_only: bool = False) -> list[int]:
    """The live processes of the data root's containers: those naming the data root or
    the run directory on their command line (conmons, runsc, the sandbox shim), and
    those in the node's cgroups (the containers' own)."""
    found = []
    marks = (str(root).encode(), str(run_dir).encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # dead already, waiting for its parent
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cgroup = (entry / "cgroup").read_text()
        except (OSError, IndexError):
            continue
        conmon = argv[0].endswith(b"conmon")
        if conmon_only and not conmon:
            continue
        if any(mark in arg for arg in argv for mark in marks) \
                or f"/{run_dir.name}/" in cgroup:
            found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _killed(pids: list[int]) -> bool:
    """Kill ``pids``; True if there were none."""
    for pid in pids:
        _kill(pid)
    return not pids


def _namespaces(root: Path) -> list[Path]:
    """The network namespaces of the data root's slots: pooled, in work, the groups'."""
    network = root / "network"
    records = [*network.glob("pool/*.json"), *network.glob("pools/*/*.json"),
               *network.glob("work/*.json"), *network.glob("groups/*/cni.json")]
    found = []
    for record in records:
        slot = read_slot(record)
        if slot is not None:
            found.append(Path(slot.path))
    return found
