"""The group supervisor: turns a :class:`GroupSpec` into running, watched containers.

It is the engine's surface for the control plane, shaped for a reconcile
loop: :meth:`Supervisor.run` is idempotent (a group already running is
adopted, not restarted, so calling it again after a restart of skiff
re-attaches to the containers conmon kept alive), and :meth:`view` reports
what is observed. Desired state stays with the caller: the engine persists
only what it observed (instance views, restart counts), never the spec with
its secrets. The caller also knows which groups exist: at its start,
:meth:`Supervisor.sweep` removes the groups and containers a crash left that
belong to none of them.

A group goes: prepare (pull every image in parallel, take a network
namespace from the warm pool, prepare volumes) → init containers one at a
time, each to completion → app containers, created in parallel and started.
A monitor thread then watches exits, applies the restart policy with
backoff (:mod:`skiff.engine.group.restarts`), runs probes and rotates logs.

This module decides *when*; the parts live beside it: the group's record
and its file (:mod:`~skiff.engine.group.record`), the checks of a definition
(:mod:`~skiff.engine.group.validation`), preparing images, network and volumes
(:mod:`~skiff.engine.group.preparation`), each container's OCI spec
(:mod:`~skiff.engine.spec.container`), what the monitor makes of exits
and probes (:mod:`~skiff.engine.group.monitoring`) and what happened to a
group while no skiff watched it, a reboot included
(:mod:`~skiff.engine.group.adoption`). *How* a container runs
is its group's runtime driver's (:mod:`~skiff.engine.runtime.driver`: runc,
or a gVisor sandbox per group), taken from the group's isolation
(:mod:`~skiff.engine.runtime.registry`); the supervisor never asks which.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace

from skiff.core.engine import NodeCapacity
from skiff.core.metrics import GroupPhase, GroupSample
from skiff.core.secrets import scrub, secrets_of
from skiff.core.shares import ShareDisks, ShareResolver
from skiff.core.spec import (
    AzureFileVolume,
    Container,
    GroupSpec,
    config_maps,
    deployed,
    served_ports,
)
from skiff.core.view import ContainerView, GroupView, State
from skiff.engine import mounts
from skiff.engine.gpus import Gpu, node_gpus
from skiff.engine.group import adoption, monitoring, preparation, sweeping
from skiff.engine.group.gpus import GpuAllocator, wanted
from skiff.engine.group.probes import ProbeState, accepts
from skiff.engine.group.record import Group, GroupFiles, pairs, phase, snapshot, sync_views
from skiff.engine.group.restarts import ContainerExit
from skiff.engine.group.sampling import CgroupReader
from skiff.engine.group.validation import validate
from skiff.engine.images import ImageStore
from skiff.engine.network.fetching import FetchNamespace
from skiff.engine.network.networks import Networks
from skiff.engine.runtime import registry
from skiff.engine.runtime.conmon import ConmonRuntime, ContainerStatus
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.runtime.oci import ExecSession
from skiff.engine.spec import container as containerspec
from skiff.engine.spec.nvidia import NvidiaDriverFiles, container_gpu_parts
from skiff.engine.volumes.azurefile import AzureFileDriver
from skiff.engine.volumes.disks import group_disks
from skiff.engine.volumes.manager import Volumes
from skiff.errors import (
    ContainerCreateFailed,
    GroupNotFound,
    InvalidInput,
    SkiffError,
    UserNotFound,
)
from skiff.settings import BackoffSettings, Settings

log = logging.getLogger(__name__)

#: Seconds between two looks at every running container.
MONITOR_INTERVAL_S = 0.2

#: Seconds a declared port has to accept a connection when asked whether a group serves:
#: a port nobody listens on refuses at once, a server that listens accepts in well under
#: a millisecond; more is a server too busy to count as serving yet.
SERVING_TIMEOUT_S = 0.2

#: Containers stopped at once, each waiting out its grace (SIGTERM, then SIGKILL).
STOP_THREADS = 64


class Supervisor:
    """All container groups of this node."""

    def __init__(self, settings: Settings, *, images: ImageStore | None = None,
                 networks: Networks | None = None, volumes: Volumes | None = None,
                 runtime: ConmonRuntime | None = None, backoff: BackoffSettings | None = None,
                 fetching: FetchNamespace | None = None,
                 shares: ShareDisks | None = None, resolver: ShareResolver | None = None,
                 monitor_interval_s: float = MONITOR_INTERVAL_S,
                 gpus: Sequence[Gpu] | None = None,
                 gpu_files: NvidiaDriverFiles | None = None) -> None:
        self.settings = settings
        #: The node's GPUs (asked of the driver once) and who holds each.
        self.gpus = GpuAllocator(node_gpus() if gpus is None else gpus,
                                 settings.data_root / "gpus.json")
        #: The driver's files GPU containers get (read from the host at the first one).
        self._gpu_files = gpu_files
        #: Where tenants' image pulls and git clones run: off the node's own services.
        self.fetching = fetching or FetchNamespace(settings.data_root, settings.network)
        self.images = images or ImageStore(settings.images_root, settings.images,
                                           confine=self.fetching.command)
        self.networks = networks or Networks(settings.data_root, settings.network)
        #: The node's file shares and what checks a group's key for one (None: azureFile
        #: volumes fail, see skiff.engine.volumes.azurefile).
        self.shares = shares
        files = {AzureFileVolume: AzureFileDriver(shares, resolver)}
        self.volumes = volumes or Volumes(settings.data_root, settings.volumes,
                                          confine=self.fetching.command,
                                          disks=group_disks(settings), drivers=files)
        self.runtime = runtime or ConmonRuntime(settings.data_root, settings.runtime)
        #: One driver per isolation, all on ``runtime`` (see :meth:`_driver`).
        self.drivers = registry.node_drivers(self.runtime, settings.runtime)
        self.backoff = backoff or settings.backoff
        self._files = GroupFiles(settings.data_root / "groups")
        self._groups: dict[str, Group] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                           thread_name_prefix="skiff-engine")
        # Stops wait out their containers' grace: a pool of their own, so that the
        # groups being stopped or deleted at once (each stop in parallel) neither wait
        # for each other nor hold the threads that start containers and run probes.
        self._stops = concurrent.futures.ThreadPoolExecutor(max_workers=STOP_THREADS,
                                                            thread_name_prefix="skiff-stop")
        self._interval = monitor_interval_s
        #: Groups whose lost network namespace is being replaced (see :meth:`_renew_later`).
        self._renewing: set[str] = set()
        #: Where :meth:`samples` reads the groups' usage (a test may point it elsewhere).
        self.cgroups = CgroupReader()

        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="skiff-monitor", daemon=True)
        self._monitor.start()

    # ---- the public surface -------------------------------------------------

    def run(self, spec: GroupSpec) -> GroupView:
        """Make the group run as ``spec`` says; returns its view once its first
        containers were started (or it failed). Idempotent: containers of the
        group that already run (say, across a restart of skiff) are adopted;
        a changed definition redeploys the group, but a change of config maps' pairs
        alone rewrites their files in place, restarting nothing."""
        validate(spec)
        # In memory only; without the config maps' pairs, changed in place.
        fingerprint = hashlib.sha256(repr(deployed(spec)).encode()).hexdigest()
        with self._lock:
            group = self._groups.get(spec.id)
            if group is None:
                group = Group(spec, self._files.load_view(spec))
                self._groups[spec.id] = group
        # Under way until it returns: the disk pool's refill waits for the node to be quiet.
        with self.volumes.starting(), group.lock:
            adopted = group.fingerprint is None  # its first run() in this process
            if group.fingerprint not in (None, fingerprint):
                self._redeploy(group)
            group.fingerprint = fingerprint
            group.spec = spec
            if group.view.stopped:
                return snapshot(group)
            if not group.prepared:
                if adopted:
                    self._adopt(group)
                if self._give_gpus(group):  # none free: nothing of the group is made
                    preparation.prepare(group, pool=self._pool, images=self.images,
                                        networks=self.networks, volumes=self.volumes,
                                        driver=self._driver(group))
                # Down before any container is made: whatever moment skiff dies at from
                # here, the next one finds the group's containers by this file.
                self._files.save(group)
                if adopted and group.failed_reason is None:
                    monitoring.resume_restarts(group)
            else:
                self._update_config_maps(group)
            if group.failed_reason is None:
                self._advance(group)
            self._files.save(group)
            return snapshot(group)

    def _give_gpus(self, group: Group) -> bool:
        """Pick the group's GPUs (those it holds, after a restart of skiff) and what each
        of its containers gets of them; False, the group failed, if they cannot be had."""
        wants = wanted(group.spec)
        group.gpu_parts = {}
        if not wants:
            self.gpus.release(group.spec.id)
            return True
        self._free_ended_gpus(group.spec.id)
        try:
            given = self.gpus.allocate(group.spec.id, wants)
            if self._gpu_files is None:
                self._gpu_files = NvidiaDriverFiles.of_host()
            for name, gpus in given.items():
                group.gpu_parts[name] = container_gpu_parts(gpus, self._gpu_files,
                                                            others=self.gpus.gpus)
        except SkiffError as exc:
            self.gpus.release(group.spec.id)
            group.fail(f"GPUs could not be given: {exc.message}")
            return False
        for name, gpus in given.items():
            view = group.view.container(name)
            if view is not None:
                view.event("GpusAssigned", f"given GPU(s) {', '.join(g.uuid for g in gpus)}")
        return True

    def _free_ended_gpus(self, keep: str) -> None:
        """Free the GPUs of groups whose containers have all ended for good (admission
        released what they held) or that failed before any container started."""
        with self._lock:
            groups = [self._groups.get(gid) for gid in self.gpus.holders() if gid != keep]
        for other in groups:
            if other is None:
                continue
            done = phase(other)
            if done.ended_at is not None or other.view.stopped or (
                    other.failed_reason is not None and not other.prepared):
                self.gpus.release(other.spec.id)

    def _update_config_maps(self, group: Group) -> None:
        """Rewrite the config maps' files that changed, in the running containers' view
        (see :mod:`~skiff.engine.volumes.configmaps`); nothing restarts. A failure is the
        group's warning event, not the group's end: its containers run on, and the next
        run (the reconcile loop's resync) tries again."""
        wanted = config_maps(group.spec)
        if wanted == group.config_maps:
            return  # as written last: a resync reads no file
        try:
            _, changed = self.volumes.config_maps.write(group.spec.id, wanted)
        except SkiffError as exc:
            group.view.event("ConfigMapUpdateFailed", exc.message, warning=True)
            log.warning("group %s: %s", group.view.name, exc.message)
            return
        group.config_maps = wanted
        for name, keys in changed.items():
            view = group.view.container(name)
            if view is not None:
                view.event("ConfigMapUpdated", f"config map updated in place: "
                                               f"{', '.join(keys)[:200]}")

    def _adopt(self, group: Group) -> None:
        """Bring the record of a group an earlier skiff ran up to date: the exits its
        containers made meanwhile, the restart policy applied to them; a lost network
        namespace given up for a new one (see :mod:`~skiff.engine.group.adoption`)."""
        sync_views(group)
        driver = self._driver(group)
        lost = self.networks.lost(group.spec.id)
        if lost is not None:
            adoption.remount(group, lost, self.networks, driver)
        for view, status in list(adoption.exited_meanwhile(group, driver)):
            self._record_exit(group, view, status)
        if lost is not None:
            self._renew_network(group, adoption.NETWORK_LOST)

    def _renew_network(self, group: Group, reason: str) -> None:
        """Stop the containers still running in the group's network namespace and remove
        the namespace, the group's sandbox with it, for the next preparation to make a
        new one; the containers stopped restart there, whatever the policy."""
        driver = self._driver(group)
        running = [view for view in group.view.all_containers()
                   if driver.status(view.cid).state == "running"]
        group.view.event("NetworkRebuilt", f"{reason}: the group gets a new one",
                         warning=True)
        for view in running:
            view.event("Killing", f"stopping container {view.name}: {reason}; it restarts "
                                  "in a new one", warning=True)
        stopped = list(self._stops.map(lambda v: driver.stop(v.cid), running))
        now = time.time()
        for view, status in zip(running, stopped, strict=True):
            driver.delete(view.cid)
            adoption.restart_moved(group, view, status, reason, now)
        group.probes.clear()
        driver.teardown_group(group.spec.id, remove_logs=False)  # a sandbox lives in it
        self.networks.teardown(group.spec.id, wait=False)
        group.attachment = None
        group.prepared = False
        group.view.ip = None

    def _redeploy(self, group: Group) -> None:
        """The definition changed: new containers, from the new definition."""
        self._teardown(group, remove_logs=False)
        group.failed_reason = None
        group.init_index = 0
        group.images.clear()
        group.checks.clear()
        for view in group.view.all_containers():
            view.transition(State("Waiting", None, None, None, "Redeploying"))

    def view(self, group_id: str) -> GroupView:
        group = self._group(group_id)
        with group.lock:
            self._observe(group)
            return snapshot(group)

    def group_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def addresses(self) -> dict[str, str]:
        with self._lock:  # not the groups' locks: a group being started holds its own
            return {gid: g.view.ip for gid, g in self._groups.items() if g.view.ip}

    def samples(self) -> list[GroupSample]:
        """Usage counters of every group with a running container, read from their cgroups
        and network namespaces (:mod:`~skiff.engine.group.sampling`), without waiting on
        a group's lock (a group being started or stopped is read as it stands)."""
        with self._lock:
            groups = list(self._groups.values())
        found = []
        for group in groups:
            if group.view.stopped:
                continue
            driver = self._driver(group)
            gid = group.spec.id
            running = [(view.name, driver.limits_cgroup(gid, view.cid))
                       for view in list(group.view.all_containers())
                       if view.current.state == "Running"]
            if not running:
                continue
            at = time.monotonic()
            containers, net = self.cgroups.containers(running)
            found.append(GroupSample(gid, at, tuple(containers),
                                     *(net if net is not None else (None, None))))
        return found

    def phases(self) -> dict[str, GroupPhase]:
        """Each group's state as the monitor last saw it (every 0.2 s), without waiting on
        a group's lock: a group being started reads Pending, as it is."""
        with self._lock:
            groups = list(self._groups.items())
        return {gid: phase(group) for gid, group in groups}

    def serving(self, group_id: str) -> bool:
        """Whether the group runs and every TCP port it declares accepts a connection at
        its address, from inside its network namespace (:func:`~.probes.accepts`, as a
        probe connects). Read without the group's lock: a group being started is not
        serving yet, and the caller asks again."""
        group = self._group(group_id)
        attachment = group.attachment
        if group.view.stopped or phase(group).state != "Running" or attachment is None:
            return False
        return all(accepts(attachment, port, SERVING_TIMEOUT_S)
                   for port in served_ports(group.spec))

    def stop(self, group_id: str) -> GroupView:
        """Kill every container and release the group's network and volumes; the
        group's definition and history stay."""
        group = self._group(group_id)
        with group.lock:
            self._teardown(group, remove_logs=False)
            group.view.stopped = True
            for view in group.view.all_containers():
                if view.current.state != "Terminated":
                    view.transition(State("Terminated", view.current.start_time, 137,
                                          time.time(), "Stopped"))
            self._files.save(group)
            return snapshot(group)

    def start(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        """Start a stopped group again, from its init containers (with ``spec`` when
        given: a skiff that restarted knows the group's definition from its caller)."""
        group = self._group(group_id)
        with group.lock:
            group.view.stopped = False
            group.failed_reason = None
            group.init_index = 0
            group.restart_at.clear()
            for view in group.view.all_containers():
                view.transition(State("Waiting", None, None, None, "Starting"))
            spec = spec or group.spec
        return self.run(spec)

    def restart(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        """Restart every container of the group in place."""
        self.stop(group_id)
        return self.start(group_id, spec)

    def delete(self, group_id: str) -> None:
        """Kill the group's containers and remove everything of it. Idempotent."""
        with self._lock:
            group = self._groups.pop(group_id, None)
        if group is None:
            group = self._load(group_id)  # e.g. deleted before run() after a restart
        if group is None:
            self.networks.teardown(group_id)
            self.volumes.cleanup(group_id)
            self.gpus.release(group_id)
            return
        with group.lock:
            self._teardown(group, remove_logs=True)
            self._files.remove(group_id)

    def sweep(self, keep: Collection[str]) -> None:
        """Remove what a crash left: every group on the node that is not in ``keep``, and
        every container no group owns (see :mod:`~skiff.engine.group.sweeping`), with a
        log line each. For a caller that knows all its groups and runs none yet (the
        control plane, at its start): a group run meanwhile and not in ``keep`` goes."""
        # Containers first: one made meanwhile has its group's file written before it.
        containers = self.runtime.ids()
        with self._lock:
            groups = set(self._groups)
        groups.update(self._files.ids(), self.networks.list(), self.volumes.ids())
        found = sweeping.find(keep, groups=groups, containers=containers, owned=self._owned)
        for group_id in self.gpus.holders() - set(keep):  # held by a group long gone
            self.gpus.release(group_id)
        for group_id in found.groups:
            log.warning("group %s is on this node but no longer wanted: removing it",
                        group_id)
            try:
                self.delete(group_id)
            except SkiffError as exc:  # the others still go; the next start tries again
                log.warning("group %s: cannot remove it: %s", group_id, exc.message)
        for cid in found.containers:
            log.warning("container %s belongs to no group: killing and removing it", cid)
            try:
                self.runtime.remove(cid)
            except SkiffError as exc:
                log.warning("container %s: cannot remove it: %s", cid, exc.message)

    def _owned(self, group_id: str) -> list[str]:
        """The containers of the group: its views', and those its driver runs for it."""
        with self._lock:
            group = self._groups.get(group_id)
        group = group or self._files.load(group_id)
        cids = [view.cid for view in group.view.all_containers()] if group else []
        for driver in self.drivers.values():
            cids += driver.group_containers(group_id)
        return cids

    def remove_vnet(self, vnet: str) -> None:
        """Remove a virtual network from the node once no group is in it."""
        with self._lock:
            users = [g.spec.id for g in self._groups.values()
                     if g.spec.subnet is not None and g.spec.subnet.vnet == vnet]
        if users:
            raise InvalidInput(f"the virtual network {vnet} still has groups: "
                               + ", ".join(users[:5]))
        self.networks.remove_vnet(vnet)

    def logs(self, group_id: str, container: str, *, tail: int | None = None,
             timestamps: bool = False, previous: bool = False) -> str:
        group = self._group(group_id)
        view = group.view.container(container)
        if view is None:
            raise GroupNotFound(f"container group {group.view.name} has no container "
                                f"{container!r}")
        return self._driver(group).logs(view.cid, tail=tail, timestamps=timestamps,
                                        previous=previous)

    def attach(self, group_id: str, container: str) -> Iterator[str]:
        """The container's output stream, line by line as written, until it exits."""
        group = self._group(group_id)
        view = group.view.container(container)
        if view is None:
            raise GroupNotFound(f"container group {group.view.name} has no container "
                                f"{container!r}")
        return self._driver(group).follow(view.cid)

    def exec(self, group_id: str, container: str, command: list[str], *,
             tty: bool = False, terminal_size: tuple[int, int] | None = None) -> ExecSession:
        group = self._group(group_id)
        view = group.view.container(container)
        if view is None or view.init:
            raise GroupNotFound(f"container group {group.view.name} has no container "
                                f"{container!r}")
        return self._driver(group).exec(view.cid, command, tty=tty, terminal_size=terminal_size)

    # ---- the node -----------------------------------------------------------

    def capacity(self) -> NodeCapacity:
        """This machine's cores, memory and NVIDIA GPUs."""
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
        return NodeCapacity(cpu_cores=float(os.cpu_count() or 1), memory_gb=memory,
                            gpus=len(self.gpus.gpus), gpu_skus=self.gpus.counts())

    def cached_images(self) -> list[str]:
        return [image.reference for image in self.images.list()]

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        self.networks.check_address_space(prefixes)

    def vnets(self) -> list[str]:
        return self.networks.vnets()

    def close(self) -> None:
        """Stop watching (containers keep running: conmon holds them) and remove the
        fetch namespace (the next node makes it again)."""
        self._stop.set()
        self._monitor.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.fetching.close()
        self.volumes.close()
        self._stops.shutdown(wait=False, cancel_futures=True)  # each ends within its grace

    # ---- finding a group ----------------------------------------------------

    def _group(self, group_id: str) -> Group:
        """The group in memory, or as last saved (skiff restarted)."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._load(group_id)
                if group is not None:
                    self._groups[group_id] = group
        if group is None:
            raise GroupNotFound(f"container group {group_id} is not on this node")
        return group

    def _load(self, group_id: str) -> Group | None:
        """The group as last saved, run with the isolation its driver's state on this
        node tells (a restarted skiff knows the rest of its definition from run())."""
        group = self._files.load(group_id)
        if group is not None:
            group.spec = replace(group.spec,
                                 isolation=registry.isolation_of(self.drivers, group_id))
        return group

    def _driver(self, group: Group) -> RuntimeDriver:
        """The runtime of the group's containers, by its isolation (checked by validate())."""
        return self.drivers[group.spec.isolation]

    # ---- starting -----------------------------------------------------------

    def _advance(self, group: Group) -> None:
        """Start what comes next: the next init container, or the app containers."""
        spec = group.spec
        while group.init_index < len(spec.init_containers):
            init = spec.init_containers[group.init_index]
            view = group.view.init_containers[group.init_index]
            if view.current.state == "Terminated" and view.current.exit_code == 0:
                group.init_index += 1
                continue
            if group.restart_at.get(init.name) or view.current.state == "Terminated":
                return  # waiting out its backoff, or failed: the monitor applies the policy
            if self._runs(group, view):
                return
            self._start(group, init, view)
            return
        pending = [(c, v) for c, v in zip(spec.containers, group.view.containers, strict=True)
                   if v.name not in group.restart_at
                   and v.current.state != "Terminated"
                   and not self._runs(group, v)]
        if len(pending) == 1:
            self._start(group, *pending[0])
        elif pending:
            list(self._pool.map(lambda cv: self._start(group, *cv), pending))

    def _runs(self, group: Group, view: ContainerView) -> bool:
        """Whether the container runs as its view records (then it is the monitor's).

        An instance its view does not record as Running does not count: a skiff that
        died between creating or starting it and writing the view down left it (created
        only, perhaps, or before the image check), and no caller has seen it run.
        :meth:`_start` replaces it (it deletes whatever instance is there first)."""
        if self._driver(group).status(view.cid).state != "running":
            return False
        if view.current.state == "Running":
            return True
        log.warning("group %s: container %s has an instance its view does not record "
                    "(skiff stopped while starting it): replacing it", group.view.name,
                    view.name)
        return False

    def _start(self, group: Group, container: Container, view: ContainerView) -> None:
        """A new instance of ``container``: fresh rootfs, create, start."""
        cid = view.cid
        driver = self._driver(group)
        driver.delete(cid)
        self.images.remove_rootfs(cid)
        try:
            layers = self.volumes.layers(group.spec.id)
            rootfs = self.images.create_rootfs(
                cid, group.images[container.name],
                idmap=driver.user_namespace(group.spec, container),
                writable=None if layers is None else layers / cid)
            spec = containerspec.container_spec(self.settings, group, container, rootfs,
                                                driver)
            assert group.attachment is not None  # prepared
            netns = group.attachment.netns_path
            driver.setup_group(group.spec, netns)
            driver.create(cid, spec, name=f"{group.spec.name}_{container.name}", netns=netns)
            driver.apply_limits(group.spec.id, cid, container)
            view.event("Created", f"created container {container.name}")
            check = group.checks.pop(container.name, None)
            if check is not None:
                used = group.images[container.name]
                if not preparation.pulled(group, container.name, container.image, check):
                    driver.delete(cid)  # never run an image the caller may not read
                    return
                if group.images[container.name].digest != used.digest:
                    self._start(group, container, view)  # the tag moved: the new image
                    return
            driver.wait_group(group.spec.id)
            driver.start(cid)
        except (ContainerCreateFailed, UserNotFound, SkiffError) as exc:
            now = time.time()
            message = scrub(exc.message, secrets_of(group.spec))  # runc may quote one
            view.event("Failed", f"failed to start container {container.name}: {message}",
                       warning=True, now=now)
            view.transition(State("Terminated", now, 128, now, message))
            self._exited(group, view, ContainerExit(exit_code=128, started_at=now,
                                                    finished_at=now))
            return
        now = time.time()
        view.transition(State("Running", now, None, None, ""))
        view.ready = container.readiness is None
        view.event("Started", f"started container {container.name}", now=now)
        for kind in ("liveness", "readiness"):
            if getattr(container, kind) is not None:
                group.probes[(container.name, kind)] = ProbeState(now)

    # ---- watching -----------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                groups = list(self._groups.values())
            for group in groups:
                if not group.lock.acquire(blocking=False):
                    continue  # busy starting or stopping: next round
                try:
                    self._observe(group)
                except Exception:  # the monitor must survive anything one group does
                    log.exception("monitoring group %s failed", group.view.name)
                finally:
                    group.lock.release()

    def _observe(self, group: Group) -> None:
        if group.view.stopped or not group.prepared:
            return
        if group.attachment is not None and not mounts.is_mounted(group.attachment.netns_path):
            self._renew_later(group)
            return
        now = time.time()
        changed = False
        driver = self._driver(group)
        for view in group.view.all_containers():
            if view.current.state != "Running":
                continue
            status = driver.status(view.cid)
            if status.state == "running":
                driver.rotate_logs(view.cid)  # cheap: a stat or two; conmon cuts, skiff keeps
                continue
            changed = True
            self._record_exit(group, view, status)
        for name, when in list(group.restart_at.items()):
            if when <= now:
                del group.restart_at[name]
                changed = True
                self._restart(group, name)
        changed |= monitoring.run_probes(group, self._pool, driver, now)
        if changed:
            self._advance(group)
            self._files.save(group)

    def _renew_later(self, group: Group) -> None:
        """The network namespace of a running group vanished: give it a new one, on the
        pool (stopping its containers waits out their grace, never in the monitor)."""
        with self._lock:
            if group.spec.id in self._renewing:
                return
            self._renewing.add(group.spec.id)
        self._pool.submit(self._renew_running, group)

    def _renew_running(self, group: Group) -> None:
        try:
            with group.lock:
                lost = group.attachment
                if (group.view.stopped or not group.prepared or lost is None
                        or mounts.is_mounted(lost.netns_path)):
                    return  # stopped, or renewed, meanwhile
                adoption.remount(group, lost, self.networks, self._driver(group))
                self._renew_network(group, adoption.NETWORK_LOST)
                try:
                    group.attachment = preparation.network(self.networks, group.spec)
                except SkiffError as exc:
                    group.fail(f"network could not be set up: {exc.message}")
                else:
                    group.view.ip = group.attachment.ip
                    group.prepared = True
                self._files.save(group)
        except Exception:  # a pool thread: say it, the monitor goes on
            log.exception("renewing the network of group %s failed", group.view.name)
        finally:
            with self._lock:
                self._renewing.discard(group.spec.id)

    def _record_exit(self, group: Group, view: ContainerView, status: ContainerStatus) -> None:
        driver = self._driver(group)
        oom = status.oom_killed or monitoring.oom_in_cgroup(
            driver.limits_cgroup(group.spec.id, view.cid))
        exited = monitoring.terminated(view, status, oom)
        driver.delete(view.cid)
        self._exited(group, view, exited)

    def _exited(self, group: Group, view: ContainerView, exited: ContainerExit) -> None:
        reason = monitoring.after_exit(group, view, exited, self.backoff)
        if reason is not None:
            group.fail(reason)

    def _restart(self, group: Group, name: str) -> None:
        for container, view in pairs(group):
            if view.name == name:
                view.transition(State("Waiting", None, None, None, "Restarting"))
                if view.init:
                    return  # _advance starts it again in order
                self._start(group, container, view)

    # ---- tearing down -----------------------------------------------------

    def _teardown(self, group: Group, *, remove_logs: bool) -> None:
        """Stop every container (SIGTERM, grace, SIGKILL) in parallel, then remove
        their rootfs, what the driver keeps of the group (a sandbox, its cgroup), the
        network namespace and the volumes."""
        driver = self._driver(group)
        views = group.view.all_containers()
        for view in views:
            if driver.status(view.cid).state == "running":
                view.event("Killing", f"stopping container {view.name}")
        grace = group.spec.stop_grace_s  # None: the node's
        list(self._stops.map(lambda v: driver.stop(v.cid, grace), views))
        for view in views:
            if remove_logs:
                driver.remove(view.cid)
            else:
                driver.delete(view.cid)
            self.images.remove_rootfs(view.cid)
        group.restart_at.clear()
        group.probes.clear()
        driver.teardown_group(group.spec.id, remove_logs=remove_logs)  # after its members
        self.networks.teardown(group.spec.id, wait=False)  # its CNI DEL runs meanwhile
        self.volumes.cleanup(group.spec.id)
        self.gpus.release(group.spec.id)
        group.gpu_parts = {}
        group.attachment = None
        group.prepared = False
        group.view.ip = None
