"""The Engine protocol: everything a control plane asks of whatever runs its groups.

The control plane (:mod:`skiff.control`) and the API (:mod:`skiff.api`) hold an
:class:`Engine` and nothing more concrete, so one API serves several backends:

- the local node, :class:`skiff.engine.group.supervisor.Supervisor` (runc and
  gVisor under conmon, CNI networks, the image store on this machine);
- a fake, :class:`skiff.testing.fake.FakeEngine`, for unit tests of the layer
  above (the reconcile loop, the routes) without root;
- the Kubernetes backend, :class:`skiff.kube.engine.KubeEngine`, placing groups as
  Pods on a cluster (``skiff serve --backend kubernetes``).

Its shape, and how the coming work fits it without another redesign:

- A group is given as a :class:`~skiff.core.spec.GroupSpec` (desired state,
  secrets included, never persisted by the engine) and observed as a
  :class:`~skiff.core.view.GroupView`. :meth:`Engine.run` is idempotent: a
  reconcile loop may call it at any time, and an engine restarted under running
  containers adopts them. File-share volumes, GPUs and config maps are fields
  of the spec (new volume kinds behind the engine's volume drivers; GPU counts
  in each container's resources), not new methods.
- :meth:`Engine.capacity` says what the node offers (CPU, memory, GPUs), for
  admission and for ``capabilities``; per-group metric samples come from
  :meth:`Engine.samples` (raw counters: :mod:`skiff.core.metrics`), beside
  :meth:`Engine.view`.
- Standby pools' ready groups are groups run from a spec whose identity is
  reassigned when claimed: run, then (later) a ``claim``; nothing here assumes
  a group's id is its ARM name. A member is claimable once :meth:`Engine.serving`
  says its declared ports answer, not merely once its containers started.
- Node-level resources the control plane decides on (virtual networks today)
  have a remove and a list, so the reconcile loop can record the decision first
  and sweep after a crash. Groups are swept at its start the same way
  (:meth:`Engine.sweep`): the store says which exist, the engine removes the rest.

Every method raises :class:`skiff.errors.SkiffError` subclasses only
(:class:`~skiff.errors.GroupNotFound` for an unknown group id).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from skiff.core.metrics import GroupPhase, GroupSample
from skiff.core.spec import GroupSpec
from skiff.core.view import GroupView


@dataclass(frozen=True)
class NodeCapacity:
    """What an engine can give its groups in all, before overcommit."""

    cpu_cores: float
    memory_gb: float
    #: GPUs the engine can attach, in all.
    gpus: int = 0
    #: The same by SKU name (:func:`skiff.core.gpus.sku_of`): ``{"H100": 8}``.
    gpu_skus: Mapping[str, int] = field(default_factory=dict)
    #: What the capacity is of, in a refusal's words (``"This node has 2 H100"``).
    site: str = "This node"


@runtime_checkable
class ExecStream(Protocol):
    """A command running in a container behind a terminal: its output is read until
    ``b""`` (the command ended), keystrokes are written in."""

    def read(self, size: int = 65536) -> bytes:
        """The next output of the terminal, blocking; ``b""`` once the command ended."""
        ...

    def write(self, data: bytes) -> None:
        """Send ``data`` to the command's terminal."""
        ...

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The command's exit code once it ended; None if still running at the timeout."""
        ...

    def close(self) -> None:
        """End the session (the command is killed if still running)."""
        ...


@runtime_checkable
class Engine(Protocol):
    """Runs container groups; the control plane's only way to touch a machine."""

    # ---- groups ---------------------------------------------------------------

    def run(self, spec: GroupSpec) -> GroupView:
        """Make group ``spec.id`` run as ``spec`` says and return its view once its first
        containers started (or it failed). Idempotent; a changed spec redeploys, but one
        that changes only config maps' pairs (:func:`~skiff.core.spec.deployed` equal)
        rewrites their files in place, restarting nothing (an event, ``ConfigMapUpdated``,
        on each container whose map changed)."""
        ...

    def view(self, group_id: str) -> GroupView:
        """What is observed of the group now."""
        ...

    def group_ids(self) -> list[str]:
        """The groups this engine holds."""
        ...

    def addresses(self) -> dict[str, str]:
        """The IP address of each group that has one, as last seen: read without
        observing the groups or waiting for one busy being started (a list of many)."""
        ...

    def samples(self) -> list[GroupSample]:
        """The usage counters of every group with a running container (CPU time and
        memory per container, network bytes per group), read now; cheap enough to call
        every few seconds for hundreds of groups (no subprocess, no waiting on a group
        being started). Groups whose counters cannot be read are left out."""
        ...

    def phases(self) -> dict[str, GroupPhase]:
        """Each group's state as last observed (and when a finished one ended), read
        without observing the groups or waiting for one busy being started: the meter
        asks every few seconds, for every group."""
        ...

    def serving(self, group_id: str) -> bool:
        """Whether the group answers now on every TCP port it declares
        (:func:`~skiff.core.spec.served_ports`): each accepts a connection at the
        group's address, made from inside the group's network; a group that declares
        none serves once its containers run. False while the group is not running
        (being started, stopped, failed). Quick, and waits on no group being started
        (a connection refused, or not accepted within a fraction of a second, is "not
        yet"): the standby pools ask it again and again until a member serves, and only
        then let a claim have it."""
        ...

    def stop(self, group_id: str) -> GroupView:
        """Kill the group's containers and release its resources; its history stays."""
        ...

    def start(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        """Start a stopped group again (from ``spec`` when given)."""
        ...

    def restart(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        """Restart every container of the group in place."""
        ...

    def delete(self, group_id: str) -> None:
        """Remove the group and everything of it. Idempotent."""
        ...

    def sweep(self, keep: Collection[str]) -> None:
        """Remove every group not in ``keep`` and whatever a crash left that belongs to no
        group (a container started but never recorded), logging each. For a caller that
        knows all its groups and runs none yet: the control plane, at its start."""
        ...

    # ---- a group's containers ---------------------------------------------------

    def logs(self, group_id: str, container: str, *, tail: int | None = None,
             timestamps: bool = False, previous: bool = False) -> str:
        """The container's output (of its previous instance with ``previous``)."""
        ...

    def attach(self, group_id: str, container: str) -> Iterator[str]:
        """The container's output stream, line by line as written, until it exits."""
        ...

    def exec(self, group_id: str, container: str, command: list[str], *, tty: bool = False,
             terminal_size: tuple[int, int] | None = None) -> ExecStream:
        """Run ``command`` in a running container."""
        ...

    # ---- the node -----------------------------------------------------------------

    def capacity(self) -> NodeCapacity:
        """What the engine can give its groups in all."""
        ...

    def cached_images(self) -> list[str]:
        """References of the images the engine holds, ready to start."""
        ...

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        """NetworkConflict if a virtual network with these prefixes cannot be routed here."""
        ...

    def vnets(self) -> list[str]:
        """The virtual networks (keys: lower-case ARM ids) set up on the node."""
        ...

    def remove_vnet(self, vnet: str) -> None:
        """Remove a virtual network from the node; refused while a group is in it.
        Idempotent."""
        ...

    def close(self) -> None:
        """Stop watching and release the engine's own resources (groups keep running)."""
        ...
