"""Usage samples: the raw counters an engine reads of its running groups.

An engine reports counters, not rates (:meth:`skiff.core.engine.Engine.samples`):
the CPU time a container used since it started, the memory it holds now (its
*working set*, as cAdvisor and ACI count it: usage less the inactive page cache,
which the kernel reclaims before it kills anything), and the bytes the group's
network namespace received and sent. The control plane keeps the previous
sample and turns two of them into rates (:mod:`skiff.control.sampling`), so an
engine stays stateless here, and a restarted container (whose counters start
again at zero) is told by a counter that went backwards.

Network counters are per group: a group's containers share one namespace, as in
ACI, whose network metrics have no ``containerName`` dimension.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContainerSample:
    """What a container used, as read at one moment."""

    name: str
    #: CPU time used by the container since its cgroup was made, in nanoseconds.
    cpu_ns: int | None
    #: Its memory working set now, in bytes.
    memory_bytes: int | None


@dataclass(frozen=True)
class GroupSample:
    """What a running group's containers and network used, as read at ``at``."""

    group_id: str
    #: When it was read: ``time.monotonic()`` of the reading process, for rates.
    at: float
    containers: tuple[ContainerSample, ...]
    #: Bytes its network namespace received and sent in all (loopback left out); None
    #: when the namespace could not be read.
    rx_bytes: int | None = None
    tx_bytes: int | None = None


@dataclass(frozen=True)
class GroupPhase:
    """Where a group stands, for metering (:meth:`skiff.core.engine.Engine.phases`): its
    instance view's state (Pending, Running, Stopped, Succeeded, Failed) and, once its
    containers have all ended for good (Succeeded, Failed), when the last one did."""

    state: str
    ended_at: float | None = None
