"""Reading what the running groups use: their cgroups' counters and their namespaces' bytes.

A sample is a handful of small file reads per container, no subprocess: the
supervisor's :meth:`~skiff.engine.group.supervisor.Supervisor.samples` asks it
for every running group every sampling period (15 s by default), for hundreds
of groups on a 2-core node.

- CPU: the cgroup's total CPU time (v1 ``cpuacct.usage``, in ns; v2 ``cpu.stat``'s
  ``usage_usec``).
- Memory: the working set, as cAdvisor (and so ACI and Kubernetes) count it:
  usage (v1 ``memory.usage_in_bytes``, v2 ``memory.current``) less the inactive
  file cache (``total_inactive_file`` / ``inactive_file`` of ``memory.stat``),
  which the kernel drops before it would kill anything.
- Network: ``/proc/<pid>/net/dev`` of a process in the group, which shows the
  interfaces of *that process's* network namespace (the group's), loopback left
  out. No ``setns``: a thread of the server never leaves the host's namespace.

Which cgroup holds a container's usage is its runtime driver's
(:meth:`~skiff.engine.runtime.driver.RuntimeDriver.limits_cgroup`): a runc
container's own; for a gVisor group the sandbox's, one for the whole group
(gVisor's kernel runs every member there, and the host cannot tell them apart),
so a sandboxed group reports its usage under its first running container.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from skiff.core.metrics import ContainerSample

#: The v1 hierarchies that may hold ``cpuacct.usage``, by the names hosts mount them as.
_CPUACCT = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu", "cpu")


class CgroupReader:
    """Usage counters read from a cgroup filesystem (``root``) and ``/proc`` (``proc``);
    both can be a test's directory tree."""

    def __init__(self, root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc")) -> None:
        self.root = root
        self.proc = proc
        self.unified = (root / "cgroup.controllers").exists()
        self._cpuacct = next((root / name for name in _CPUACCT
                              if (root / name / "cpuacct.usage").exists()), root / "cpuacct")

    def _dir(self, hierarchy: str | Path, cgroup: str) -> Path:
        base = self.root if self.unified else (
            hierarchy if isinstance(hierarchy, Path) else self.root / hierarchy)
        return base / cgroup.strip("/")

    def cpu_ns(self, cgroup: str) -> int | None:
        """CPU time used by ``cgroup`` (and its descendants), in ns; None if unreadable."""
        try:
            if self.unified:
                for line in (self._dir("", cgroup) / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) * 1000
                return None
            return int((self._dir(self._cpuacct, cgroup) / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None

    def working_set(self, cgroup: str) -> int | None:
        """``cgroup``'s memory working set (usage less inactive file cache), in bytes."""
        directory = self._dir("memory", cgroup)
        usage_file, inactive_key = (("memory.current", "inactive_file") if self.unified
                                    else ("memory.usage_in_bytes", "total_inactive_file"))
        try:
            usage = int((directory / usage_file).read_text())
            inactive = 0
            for line in (directory / "memory.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == inactive_key:
                    inactive = int(value)
                    break
        except (OSError, ValueError):
            return None
        return max(0, usage - inactive)

    def first_pid(self, cgroup: str) -> int | None:
        """A process in ``cgroup`` (itself, not its descendants), if any."""
        with contextlib.suppress(OSError, ValueError):
            for line in (self._dir("memory", cgroup) / "cgroup.procs").read_text().split():
                return int(line)
        return None

    def net_bytes(self, pid: int) -> tuple[int, int] | None:
        """(received, transmitted) bytes of every interface but loopback in the network
        namespace of process ``pid``; None if it is gone."""
        try:
            text = (self.proc / str(pid) / "net" / "dev").read_text()
        except OSError:
            return None
        rx = tx = 0
        for line in text.splitlines()[2:]:  # two header lines
            name, _, counters = line.partition(":")
            fields = counters.split()
            if name.strip() == "lo" or len(fields) < 9:
                continue
            with contextlib.suppress(ValueError):
                rx += int(fields[0])
                tx += int(fields[8])
        return rx, tx

    def containers(self, running: Iterable[tuple[str, str]]) -> tuple[
            list[ContainerSample], tuple[int, int] | None]:
        """Samples of the ``(name, usage cgroup)`` of a group's running containers, and
        its network's bytes (read through the first of them that holds a process). A
        cgroup that an earlier container already reported (a gVisor sandbox's) counts
        once, under that container."""
        samples: list[ContainerSample] = []
        seen: set[str] = set()
        net: tuple[int, int] | None = None
        for name, cgroup in running:
            if cgroup in seen:
                continue
            seen.add(cgroup)
            samples.append(ContainerSample(name, self.cpu_ns(cgroup), self.working_set(cgroup)))
            if net is None and (pid := self.first_pid(cgroup)) is not None:
                net = self.net_bytes(pid)
        return samples, net
