"""FakeEngine: the :class:`~skiff.core.engine.Engine` protocol in memory, for the layer above.

The reconcile loop and the routes are tested against it without root, processes
or images (httpx's MockTransport plays this part for httpx; Nomad's ``mock``
driver for Nomad). It keeps the promises the control plane relies on, which the
conformance suite (``tests/conformance``) checks against it and the real engine
alike:

- :meth:`FakeEngine.run` is idempotent: the same spec again changes nothing (the
  containers keep their start time), a changed one redeploys (new instances), one
  whose config maps' pairs alone changed updates them in place (an event,
  ``ConfigMapUpdated``, on each container whose map changed; nothing restarts; the
  files in :meth:`FakeEngine.config_map_files`);
  a stopped group stays stopped until :meth:`~FakeEngine.start`;
- views carry the containers' states, restart counts and events (Pulling,
  Pulled, Created, Started, Killing, BackOff, Failed), the group's state as
  :func:`skiff.engine.group.restarts.group_state` derives it, an address;
- a container runs its command as a tiny script (:mod:`skiff.testing.scripts`):
  ``echo`` writes a log line, ``sleep N`` lets N seconds pass on the engine's
  clock, ``exit N`` ends it; exits go through the restart policy and its backoff
  (:func:`skiff.engine.group.restarts.decide`, the real engine's rules); init
  containers run one after the other first, and one that fails for good fails
  the group;
- a group serves (:meth:`FakeEngine.serving`) once it is Running and each TCP port it
  declares is listened on by one of its running containers: a container listens on
  what its script's server statements say (``httpd -f -p PORT``, ``nc -l -p PORT``,
  from the moment the script reaches them), and one that runs its image's own
  command (none given) on the ports it declares, as if the image were the server;
- ``delete`` is idempotent, an unknown group raises GroupNotFound, ``exec`` runs
  its command as a script at once (:class:`~skiff.testing.scripts.FakeExec`);
  ``sweep`` removes every group not kept (its call, in :attr:`calls`, names the
  kept ids, sorted, joined by commas);
- a virtual network exists on the node once a group was placed in it, and
  ``remove_vnet`` refuses (InvalidInput) while a group of the engine is in it.

Time is computed, not waited for: each call brings the groups up to the
engine's ``clock`` (give a test clock to step through backoffs exactly); the
playing is :mod:`skiff.testing.simulation`'s.

Failures are injected: :attr:`FakeEngine.pull_errors` makes an image's pull fail
(the group then fails with ``view.failure``, as on the node), and
:meth:`FakeEngine.fail` makes the next calls of a method raise. :attr:`calls`
records what was asked of it. :attr:`FakeEngine.before_stop` plays a slow stop
(containers that ignore SIGTERM): stop and delete block in it first.

Not simulated: volumes, probes, resource limits and OOM kills, DNS, real
programs (an exec'd command's input goes nowhere; without a TTY its output is
still read from the stream, where the node's engine leaves it on the process's
pipes), image registry checks, crash and adoption across processes (the fake's
groups live in its memory).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence

from skiff.core.engine import NodeCapacity
from skiff.core.metrics import ContainerSample, GroupPhase, GroupSample
from skiff.core.spec import GroupSpec, changed_keys, config_maps, deployed, served_ports
from skiff.core.view import ContainerView, GroupView, State
from skiff.engine.group.validation import validate
from skiff.errors import GroupNotFound, InvalidInput, NetworkConflict, RuntimeFailure, SkiffError
from skiff.settings import BackoffSettings
from skiff.testing import simulation
from skiff.testing.scripts import FakeExec, parse
from skiff.testing.simulation import Box, FakeGroup


class FakeEngine:
    """An in-memory engine; thread-safe, as the reconcile loop and routes share one."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 backoff: BackoffSettings | None = None,
                 capacity: NodeCapacity | None = None,
                 public_subnet: str = "10.77.0.0/16") -> None:
        self.clock = clock
        self.backoff = backoff or BackoffSettings()
        self.node_capacity = capacity or NodeCapacity(cpu_cores=4.0, memory_gb=16.0)
        self.public_subnet = ipaddress.IPv4Network(public_subnet)
        #: Image reference → the error its pull raises (an ImageError, as a registry's).
        self.pull_errors: dict[str, SkiffError] = {}
        #: References of the images "pulled" so far.
        self.images: set[str] = set()
        #: The virtual networks set up on the node (a test may add an orphan).
        self.node_vnets: set[str] = set()
        #: (method, group id or network) of every call, in order.
        self.calls: list[tuple[str, str]] = []
        #: Called with the group's id, outside the engine's lock, before ``stop`` and
        #: ``delete`` tear a group down: a test blocks in it to play a grace period.
        self.before_stop: Callable[[str], object] | None = None
        #: What a running container uses: (group id, container) → (millicores, memory
        #: bytes), and a group's network: group id → (bytes received, sent per second).
        #: :meth:`samples` turns them into counters growing with ``clock`` from the
        #: container's start. Unset: nothing.
        self.load: dict[tuple[str, str], tuple[float, int]] = {}
        self.traffic: dict[str, tuple[float, float]] = {}
        self._failures: dict[str, list[SkiffError]] = {}
        self._groups: dict[str, FakeGroup] = {}
        self._addresses: dict[str, str] = {}  # group id → its address
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False

    # ---- failures ---------------------------------------------------------------

    def fail(self, method: str, error: SkiffError, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` (``"run"``, ``"remove_vnet"``...)
        raise ``error``."""
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * times)

    def _grace(self, group_id: str) -> None:
        hook = self.before_stop
        if hook is not None:
            hook(group_id)

    def _call(self, method: str, key: str) -> None:
        self.calls.append((method, key))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    # ---- groups -------------------------------------------------------------------

    def run(self, spec: GroupSpec) -> GroupView:
        with self._lock:
            self._call("run", spec.id)
            validate(spec)
            now = self.clock()
            fingerprint = hashlib.sha256(repr(deployed(spec)).encode()).hexdigest()
            group = self._groups.get(spec.id)
            if group is None:
                group = FakeGroup(spec, GroupView(spec.id, spec.name), fingerprint)
                self._groups[spec.id] = group
            elif group.fingerprint != fingerprint:
                self._catch_up(group, now)
                self._teardown(group, now)
                group.init_index = 0
                group.view.failure = None
                for box in group.boxes:
                    box.restart_at = None
                    box.view.transition(State("Waiting", detail_status="Redeploying"))
            group.spec, group.fingerprint = spec, fingerprint
            if not group.view.stopped and not group.prepared:
                self._prepare(group, now)
            elif group.prepared:  # only config maps' pairs may differ: in place
                for name, keys in changed_keys(group.config_maps, config_maps(spec)).items():
                    view = group.view.container(name)
                    if view is not None:
                        view.event("ConfigMapUpdated", f"config map updated in place: "
                                                       f"{', '.join(keys)[:200]}", now=now)
                group.config_maps = config_maps(spec)
            self._catch_up(group, now)
            return simulation.snapshot(group)

    def config_map_files(self, group_id: str) -> dict[str, dict[str, str]]:
        """The group's config maps as its containers would read them: container → key →
        value (what the node's engine writes in ``/mnt/configmap/<container>/``)."""
        with self._lock:
            return {name: dict(pairs) for name, pairs in
                    self._group("config_map_files", group_id).config_maps.items()}

    def view(self, group_id: str) -> GroupView:
        with self._lock:
            group = self._group("view", group_id)
            self._catch_up(group, self.clock())
            return simulation.snapshot(group)

    def group_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def addresses(self) -> dict[str, str]:
        with self._lock:
            return {gid: g.view.ip for gid, g in self._groups.items() if g.view.ip}

    def samples(self) -> list[GroupSample]:
        with self._lock:
            now = self.clock()
            found = []
            for gid, group in self._groups.items():
                self._catch_up(group, now)
                running = [b for b in group.boxes if b.view.current.state == "Running"
                           and b.started_at is not None]
                if not running:
                    continue
                containers = []
                for box in running:
                    millicores, memory = self.load.get((gid, box.view.name), (0.0, 0))
                    elapsed = now - (box.started_at or now)
                    containers.append(ContainerSample(box.view.name,
                                                      int(millicores * 1e6 * elapsed), memory))
                since = min(b.started_at or now for b in running)
                rx, tx = self.traffic.get(gid, (0.0, 0.0))
                found.append(GroupSample(gid, now, tuple(containers),
                                         int(rx * (now - since)), int(tx * (now - since))))
            return found

    def phases(self) -> dict[str, GroupPhase]:
        with self._lock:
            now = self.clock()
            found = {}
            for gid, group in self._groups.items():
                self._catch_up(group, now)
                view = simulation.snapshot(group)
                ended = None
                if view.state in ("Succeeded", "Failed") and view.failure is None:
                    ended = max((c.current.finish_time for c in view.containers
                                 if c.current.finish_time is not None), default=None)
                found[gid] = GroupPhase(view.state, ended)
            return found

    def serving(self, group_id: str) -> bool:
        """Not recorded in :attr:`calls` (the standby pools ask it again and again)."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise GroupNotFound(f"container group {group_id} is not on this node")
            now = self.clock()
            self._catch_up(group, now)
            if simulation.snapshot(group).state != "Running":
                return False
            listening: set[int] = set()
            for box in group.apps:
                if box.view.current.state != "Running" or box.started_at is None:
                    continue
                if box.container.command is None:
                    listening.update(port.port for port in box.container.ports
                                     if port.protocol.upper() == "TCP")
                listening.update(port for offset, port in box.program.listens
                                 if box.started_at + offset <= now)
            return set(served_ports(group.spec)) <= listening

    def stop(self, group_id: str) -> GroupView:
        self._grace(group_id)
        with self._lock:
            group = self._group("stop", group_id)
            now = self.clock()
            self._catch_up(group, now)
            self._teardown(group, now)
            group.view.stopped = True
            for box in group.boxes:
                if box.view.current.state != "Terminated":
                    box.view.transition(State("Terminated", box.view.current.start_time, 137,
                                              now, "Stopped"))
            return simulation.snapshot(group)

    def start(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        with self._lock:
            group = self._group("start", group_id)
            group.view.stopped = False
            group.view.failure = None
            group.init_index = 0
            for box in group.boxes:
                box.restart_at = None
                box.view.transition(State("Waiting", detail_status="Starting"))
            return self.run(spec or group.spec)

    def restart(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        with self._lock:
            self._call("restart", group_id)
            self.stop(group_id)
            return self.start(group_id, spec)

    def delete(self, group_id: str) -> None:
        self._grace(group_id)
        with self._lock:
            self._call("delete", group_id)
            group = self._groups.pop(group_id, None)
            if group is not None:
                self._teardown(group, self.clock())
            self._changed.notify_all()

    def sweep(self, keep: Collection[str]) -> None:
        with self._lock:
            self._call("sweep", ",".join(sorted(keep)))
            now = self.clock()
            for group_id in sorted(set(self._groups) - set(keep)):
                self._teardown(self._groups.pop(group_id), now)
            self._changed.notify_all()

    # ---- a group's containers -------------------------------------------------------

    def logs(self, group_id: str, container: str, *, tail: int | None = None,
             timestamps: bool = False, previous: bool = False) -> str:
        with self._lock:
            box = self._box("logs", group_id, container)
            lines = box.previous if previous else box.output(self.clock())
        text = [f"{simulation.stamp(t)} {line}\n" if timestamps else f"{line}\n"
                for t, line in lines]
        if tail is not None:
            text = text[-tail:] if tail > 0 else []
        return "".join(text)

    def attach(self, group_id: str, container: str) -> Iterator[str]:
        with self._lock:
            self._box("attach", group_id, container)

        def follow() -> Iterator[str]:
            sent, instance = 0, None
            while True:
                with self._lock:
                    group = self._groups.get(group_id)
                    box = None if group is None else self._box_of(group, container)
                    if group is not None:
                        self._catch_up(group, self.clock())
                    if box is not None and instance is None:
                        instance = box.started_at
                    lines = [] if box is None else box.output(self.clock())
                    running = (box is not None and box.started_at == instance
                               and box.view.current.state == "Running" and not self._closed)
                for _, line in lines[sent:]:
                    yield line + "\n"
                sent = max(sent, len(lines))
                if not running:
                    return
                with self._lock:  # the next line, an exit or a stop: poll the clock
                    self._changed.wait(0.05)

        return follow()

    def exec(self, group_id: str, container: str, command: list[str], *, tty: bool = False,
             terminal_size: tuple[int, int] | None = None) -> FakeExec:
        with self._lock:
            box = self._box("exec", group_id, container)
            if box.view.init:
                raise GroupNotFound(f"container group {group_id} has no container "
                                    f"{container!r}")
            if box.view.current.state != "Running":
                raise RuntimeFailure(f"container {box.view.cid} is not running")
        return FakeExec.of(command, tty=tty)

    # ---- the node -------------------------------------------------------------------------

    def capacity(self) -> NodeCapacity:
        return self.node_capacity

    def cached_images(self) -> list[str]:
        with self._lock:
            return sorted(self.images)

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        for text in prefixes:
            try:
                net = ipaddress.IPv4Network(text, strict=False)
            except ValueError as exc:
                raise InvalidInput(f"not an address prefix: {text!r}") from exc
            if net.overlaps(self.public_subnet):
                raise NetworkConflict(f"the address space {net} overlaps "
                                      f"{self.public_subnet}, skiff's public network")

    def vnets(self) -> list[str]:
        with self._lock:
            return sorted(self.node_vnets)

    def remove_vnet(self, vnet: str) -> None:
        with self._lock:
            self._call("remove_vnet", vnet)
            users = [g.spec.id for g in self._groups.values()
                     if g.spec.subnet is not None and g.spec.subnet.vnet == vnet]
            if users:
                raise InvalidInput(f"the virtual network {vnet} still has groups: "
                                   + ", ".join(users[:5]))
            self.node_vnets.discard(vnet)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    # ---- the simulation ---------------------------------------------------------------------

    def _group(self, method: str, group_id: str) -> FakeGroup:
        self._call(method, group_id)
        group = self._groups.get(group_id)
        if group is None:
            raise GroupNotFound(f"container group {group_id} is not on this node")
        return group

    @staticmethod
    def _box_of(group: FakeGroup, name: str) -> Box | None:
        return next((b for b in group.boxes if b.view.name == name), None)

    def _box(self, method: str, group_id: str, name: str) -> Box:
        group = self._group(method, group_id)
        self._catch_up(group, self.clock())
        box = self._box_of(group, name)
        if box is None:
            raise GroupNotFound(f"container group {group.view.name} has no container {name!r}")
        return box

    def _prepare(self, group: FakeGroup, now: float) -> None:
        """Views for the spec's containers (history kept by name), "pulls", an address."""
        spec, known = group.spec, {b.view.name: b for b in group.boxes}
        group.boxes, group.view.containers, group.view.init_containers = [], [], []
        for container, init in [*((c, True) for c in spec.init_containers),
                                *((c, False) for c in spec.containers)]:
            old = known.get(container.name)
            view = old.view if old is not None and old.view.init == init else ContainerView(
                container.name, f"fake-{spec.id[:8]}-{container.name}", init=init)
            box = Box(container, view, parse(container.command))
            if old is not None and old.view is view:  # its last instance's output is kept
                box.restart = old.restart
                box.previous = old.output(now) if old.started_at is not None else old.previous
            group.boxes.append(box)
            (group.view.init_containers if init else group.view.containers).append(view)
            if view.current.state != "Waiting":
                continue
            view.event("Pulling", f'pulling image "{container.image}"', now=now)
            error = self.pull_errors.get(container.image)
            if error is None:
                self.images.add(container.image)
                view.event("Pulled", f'image "{container.image}" is present', now=now)
                continue
            view.event("Failed", f'failed to pull image "{container.image}": {error.message}',
                       warning=True, now=now)
            view.current.detail_status = error.message
            if group.view.failure is None:
                group.view.failure = f"container {container.name}: {error.message}"
        if group.view.failure is not None:
            return
        group.config_maps = config_maps(spec)
        group.view.ip = self._address(spec)
        if spec.subnet is not None:
            self.node_vnets.add(spec.subnet.vnet)
        group.prepared = True
        simulation.advance(group, now)

    def _address(self, spec: GroupSpec) -> str:
        net = (ipaddress.IPv4Network(spec.subnet.prefix, strict=False) if spec.subnet
               else self.public_subnet)
        taken = set(self._addresses.values())
        first = 4 if spec.subnet else 2  # Azure keeps a subnet's first four
        address = next(str(a) for i, a in enumerate(net.hosts(), 1)
                       if i >= first and str(a) not in taken)
        self._addresses[spec.id] = address
        return address

    def _catch_up(self, group: FakeGroup, now: float) -> None:
        if simulation.catch_up(group, now, self.backoff):
            self._changed.notify_all()

    def _teardown(self, group: FakeGroup, now: float) -> None:
        """Kill the running instances (the caller says what their views become); the
        address goes, the virtual network's bridge stays."""
        for box in group.boxes:
            box.restart_at = None
            if box.view.current.state == "Running":
                box.view.event("Killing", f"stopping container {box.view.name}", now=now)
                box.killed_at = now
        group.prepared = False
        group.view.ip = None
        self._addresses.pop(group.spec.id, None)
        self._changed.notify_all()
