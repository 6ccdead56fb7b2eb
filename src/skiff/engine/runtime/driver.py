"""The runtime driver protocol: what the supervisor asks of a runtime, per group and per container.

A group's ``isolation`` picks its driver once (:mod:`skiff.engine.runtime.registry`):
``"container"`` runs each container on runc (:mod:`~skiff.engine.runtime.runc`),
``"sandbox"`` runs the whole group in one gVisor sandbox
(:mod:`~skiff.engine.runtime.gvisor`). The supervisor then speaks only to the
driver, as Nomad's task runner speaks to its drivers and containerd's CRI plugin
to its runtime shims, and never asks which one it holds. What differs between
runtimes is behind these methods:

- a group's side: the set-up its first container needs (gVisor's holder), the
  wait before a container may start (the holder started), the teardown after its
  last container (the holder, then the group's cgroup), and which driver made a
  group whose definition a restarted skiff does not know yet (:meth:`holds`), and
  which containers it runs for the group itself (:meth:`group_containers`);
- a container's spec: the driver's part of it (:meth:`adapt_spec`: a sandbox
  member's annotations, limits that are the sandbox's), its user namespace;
- its limits: which cgroup its limits and OOM kills show in, and the limits
  skiff sets itself after ``create``;
- its lifecycle: create, start, status, kill, stop, delete, exec, logs, follow.

Both drivers run each container under its own conmon, which records in the
container's ``runtime.json`` the OCI runtime that made it, so status, kill,
exec and delete reach the right one after a restart of skiff whichever driver
asks. That shared part is :class:`ConmonDriver`, the base of both.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from skiff.core.spec import Container, GroupSpec
from skiff.engine.runtime import cgroups
from skiff.engine.runtime.conmon import ConmonRuntime, ContainerStatus
from skiff.engine.runtime.oci import ExecSession
from skiff.settings import RuntimeSettings


class RuntimeDriver(Protocol):
    """How the containers of a group of one isolation run on this node."""

    #: The ``GroupSpec.isolation`` this driver runs.
    isolation: ClassVar[str]

    # ---- a group ----------------------------------------------------------------------

    def holds(self, group_id: str) -> bool:
        """Whether this node keeps group-level state of this driver for the group (a
        sandbox): which driver made a group a restarted skiff knows only by its id."""
        ...

    def group_containers(self, group_id: str) -> list[str]:
        """The containers the driver runs for the group itself, beside the group's own
        (a sandbox's holder): a start-up sweep leaves them to the group."""
        ...

    def setup_group(self, group: GroupSpec, netns: Path) -> None:
        """Make (or adopt) what the group's containers need before one is created.
        Idempotent: called before each container's create, it remakes what died."""
        ...

    def wait_group(self, group_id: str) -> None:
        """Return once a container of the group may start; raise what keeps it from it."""
        ...

    def teardown_group(self, group_id: str, *, remove_logs: bool) -> None:
        """Remove the group's own runtime state, after its last container. Idempotent."""
        ...

    def group_cgroup(self, group_id: str) -> str:
        """The group's cgroup, parent of its containers' (and its sandbox's)."""
        ...

    # ---- a container's spec and limits --------------------------------------------------

    def user_namespace(self, group: GroupSpec, container: Container) -> tuple[int, int] | None:
        """The (first host id, count) the container's user namespace maps, if any."""
        ...

    def container_cgroup(self, group_id: str, cid: str) -> str:
        """The cgroup the container's spec names (``linux.cgroupsPath``)."""
        ...

    def adapt_spec(self, group: GroupSpec, spec: dict[str, Any]) -> dict[str, Any]:
        """The container's OCI spec as this runtime runs it (the driver's part of it)."""
        ...

    def limits_cgroup(self, group_id: str, cid: str) -> str:
        """The cgroup where the container's memory limit holds and its OOM kills show."""
        ...

    def apply_limits(self, group_id: str, cid: str, container: Container) -> None:
        """Set the limits skiff sets itself, once the container is created."""
        ...

    # ---- a container's lifecycle ----------------------------------------------------------

    def create(self, cid: str, spec: dict[str, Any], *, name: str, netns: Path) -> int:
        """Create the container (its process waits for :meth:`start`); returns its pid."""
        ...

    def start(self, cid: str) -> None:
        """Run the created container's process."""
        ...

    def status(self, cid: str) -> ContainerStatus:
        """The container's state: cheap enough to poll."""
        ...

    def kill(self, cid: str, sig: int = signal.SIGTERM, *, all_processes: bool = False) -> None:
        ...

    def stop(self, cid: str, grace_s: float | None = None) -> ContainerStatus:
        """SIGTERM, then SIGKILL after the grace period; returns the final status."""
        ...

    def delete(self, cid: str) -> None:
        """Remove the runtime's container (stopping it at once); keeps logs. Idempotent."""
        ...

    def remove(self, cid: str) -> None:
        """Delete the container and everything kept of it, logs included."""
        ...

    def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
             terminal_size: tuple[int, int] | None = None) -> ExecSession:
        """Run ``args`` in the running container."""
        ...

    def logs(self, cid: str, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
        ...

    def follow(self, cid: str) -> Iterator[str]:
        """The container's output, line by line as written, until it has exited."""
        ...

    def rotate_logs(self, cid: str) -> bool:
        """Keep the container's log within its limit; True if it was rotated."""
        ...


class ConmonDriver:
    """What both drivers share: each container under its own conmon
    (:class:`~skiff.engine.runtime.conmon.ConmonRuntime`), and the node's cgroup layout
    (one cgroup per node, named for its run directory; one per group; one per container).
    A driver adds its own spec, limits and group set-up."""

    isolation: ClassVar[str]

    def __init__(self, runtime: ConmonRuntime, settings: RuntimeSettings) -> None:
        self.runtime = runtime
        self.settings = settings

    # ---- a group ----------------------------------------------------------------------

    def holds(self, group_id: str) -> bool:
        return False

    def group_containers(self, group_id: str) -> list[str]:
        return []

    def setup_group(self, group: GroupSpec, netns: Path) -> None:
        return None

    def wait_group(self, group_id: str) -> None:
        return None

    def teardown_group(self, group_id: str, *, remove_logs: bool) -> None:
        cgroups.remove(self.group_cgroup(group_id))

    def group_cgroup(self, group_id: str) -> str:
        # A hash of the id: fixed length, no odd characters (and, as before drivers,
        # the first 16 hex digits, so containers adopted across an upgrade keep theirs).
        return f"/{self.runtime.run_dir.name}/{hashlib.sha256(group_id.encode()).hexdigest()[:16]}"

    def container_cgroup(self, group_id: str, cid: str) -> str:
        return f"{self.group_cgroup(group_id)}/{cid}"

    # ---- a container's lifecycle ----------------------------------------------------------

    def start(self, cid: str) -> None:
        self.runtime.start(cid)

    def status(self, cid: str) -> ContainerStatus:
        return self.runtime.status(cid)

    def kill(self, cid: str, sig: int = signal.SIGTERM, *, all_processes: bool = False) -> None:
        self.runtime.kill(cid, sig, all_processes=all_processes)

    def stop(self, cid: str, grace_s: float | None = None) -> ContainerStatus:
        return self.runtime.stop(cid, grace_s)

    def delete(self, cid: str) -> None:
        self.runtime.delete(cid)

    def remove(self, cid: str) -> None:
        self.runtime.remove(cid)

    def exec(self, cid: str, args: Sequence[str], *, tty: bool = False,
             terminal_size: tuple[int, int] | None = None) -> ExecSession:
        return self.runtime.exec(cid, args, tty=tty, terminal_size=terminal_size)

    def logs(self, cid: str, *, tail: int | None = None, timestamps: bool = False,
             previous: bool = False) -> str:
        return self.runtime.logs(cid, tail=tail, timestamps=timestamps, previous=previous)

    def follow(self, cid: str) -> Iterator[str]:
        return self.runtime.follow(cid)

    def rotate_logs(self, cid: str) -> bool:
        return self.runtime.rotate_logs(cid)
