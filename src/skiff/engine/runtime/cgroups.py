"""The few cgroup operations skiff does itself, beside what runc does.

runc creates a container's cgroups from its spec and removes the leaf on
delete; the parents skiff names (one per node, one per group) are skiff's to
remove. And a container's CPU quota is tightened after ``runc create``:
runc's init process compiles the seccomp filter inside the container's
cgroup, which at a tenth of a core would take ten times as long (≈ 170 ms
instead of 17 ms here). The user's process starts only at ``runc start``,
after the real quota is in place.

A node reset empties and removes the node's own cgroup in every hierarchy
(:func:`kill`, :func:`remove`, :func:`exists`).

Works on cgroup v1 (this project's hosts: hybrid) and v2 (unified).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000


def _unified() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def hierarchies() -> list[Path]:
    """The directories under which a cgroup path exists once per hierarchy."""
    if _unified():
        return [ROOT]
    found = []
    for entry in sorted(ROOT.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
            found.append(entry)
    return found


def remove(path: str) -> None:
    """Remove the cgroup ``path`` (e.g. ``/skiff-ab12/group``) and its empty
    descendants in every hierarchy. Busy ones (still holding processes) stay."""
    relative = path.strip("/")
    if not relative:
        raise ValueError("refusing to remove the root cgroup")
    for hierarchy in hierarchies():
        top = hierarchy / relative
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda item: -len(item[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def exists(path: str) -> bool:
    """Whether the cgroup ``path`` is in any hierarchy."""
    relative = path.strip("/")
    return bool(relative) and any((h / relative).is_dir() for h in hierarchies())


def pids(path: str) -> set[int]:
    """The processes in the cgroup ``path`` and its descendants, in any hierarchy."""
    relative = path.strip("/")
    found: set[int] = set()
    for hierarchy in hierarchies():
        top = hierarchy / relative
        if relative and top.is_dir():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    found.update(int(line) for line in procs.read_text().split())
    return found


def kill(path: str, timeout_s: float = 10.0) -> set[int]:
    """SIGKILL every process in the cgroup ``path`` (thawed first, where a v1 freezer
    holds it) and wait until they are gone; returns those left at the timeout."""
    relative = path.strip("/")
    if not relative:
        raise ValueError("refusing to kill the root cgroup")
    for state in (ROOT / "freezer" / relative).rglob("freezer.state"):
        with contextlib.suppress(OSError):
            state.write_text("THAWED")
    deadline = time.monotonic() + timeout_s
    while (left := pids(path)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)  # the kernel reaps them within milliseconds
    return left


def set_cpu_quota(path: str, cores: float) -> None:
    """Hold the cgroup ``path`` to ``cores`` CPUs (CFS quota per 100 ms period)."""
    quota = max(1000, int(cores * CFS_PERIOD_US))
    relative = path.strip("/")
    if _unified():
        (ROOT / relative / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
        return
    (ROOT / "cpu" / relative / "cpu.cfs_quota_us").write_text(str(quota))
