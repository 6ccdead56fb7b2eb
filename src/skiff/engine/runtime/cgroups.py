"""The few cgroup operations skiff does itself, beside what runc does.

runc creates a container's cgroups from its spec and removes the leaf on
delete; the parents skiff names (one per node, one per group) are skiff's to
remove. And a container's CPU quota is tightened after ``runc create``:
runc's init process compiles the seccomp filter inside the container's
cgroup, which at a tenth of a core would take ten times as long (≈ 170 ms
instead of 17 ms here). The user's process starts only at ``runc start``,
after the real quota is in place.

Works on cgroup v1 (this project's hosts: hybrid) and v2 (unified).
"""

from __future__ import annotations

import contextlib
import os
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


def set_cpu_quota(path: str, cores: float) -> None:
    """Hold the cgroup ``path`` to ``cores`` CPUs (CFS quota per 100 ms period)."""
    quota = max(1000, int(cores * CFS_PERIOD_US))
    relative = path.strip("/")
    if _unified():
        (ROOT / relative / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
        return
    (ROOT / "cpu" / relative / "cpu.cfs_quota_us").write_text(str(quota))
