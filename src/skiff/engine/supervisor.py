"""The group supervisor: turns a :class:`GroupSpec` into running, watched containers.

It is the engine's surface for the control plane, shaped for a reconcile
loop: :meth:`Supervisor.run` is idempotent (a group already running is
adopted, not restarted, so calling it again after a restart of skiff
re-attaches to the containers conmon kept alive), and :meth:`view` reports
what is observed. Desired state stays with the caller: the engine persists
only what it observed (instance views, restart counts), never the spec with
its secrets.

A group goes: prepare (pull every image in parallel, take a network
namespace from the warm pool, prepare volumes) → init containers one at a
time, each to completion → app containers, created in parallel and started.
A monitor thread then watches exits, applies the restart policy with
backoff (:mod:`skiff.engine.restarts`), runs probes and rotates logs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.engine import cgroups
from skiff.engine import spec as oci
from skiff.engine.images import Image, ImageStore, RegistryCredential
from skiff.engine.model import Container, GroupSpec, RestartPolicy
from skiff.engine.network import Attachment, Networks
from skiff.engine.oci import OciRuntime
from skiff.engine.probes import ProbeState, run_probe
from skiff.engine.restarts import (
    ContainerExit,
    ContainerState,
    RestartState,
    decide,
    group_state,
)
from skiff.engine.runtime import ConmonRuntime, ContainerStatus
from skiff.engine.sandbox import Sandboxes, member_spec
from skiff.engine.security import security_options, without_compat_syscalls
from skiff.engine.userns import with_user_namespace
from skiff.engine.users import resolve_run_as
from skiff.engine.view import ContainerView, GroupView, State
from skiff.engine.volumes import Volumes
from skiff.errors import (
    ContainerCreateFailed,
    GroupNotFound,
    ImageError,
    InvalidGroupSpec,
    InvalidInput,
    SkiffError,
    UserNotFound,
)
from skiff.settings import BackoffSettings, Settings

log = logging.getLogger(__name__)

#: Processes per container: generous for real programs, fatal to fork bombs.
PIDS_LIMIT = 4096
#: CPU cores a container may use while runc prepares it (its seccomp filter is
#: compiled in the container's cgroup); the real limit applies before it starts.
STARTUP_CPU_CORES = 1.0
#: Seconds between two looks at every running container.
MONITOR_INTERVAL_S = 0.2


def container_id(group_id: str, name: str, init: bool = False) -> str:
    """A short, stable runtime id for a group's container (socket paths stay short)."""
    digest = hashlib.sha256(f"{group_id}\0{'init' if init else 'app'}\0{name}".encode())
    return "sk" + digest.hexdigest()[:14]


@dataclass
class _Group:
    spec: GroupSpec
    view: GroupView
    lock: threading.RLock = field(default_factory=threading.RLock)
    images: dict[str, Image] = field(default_factory=dict)
    #: Registry checks still running for cached images, per container.
    checks: dict[str, concurrent.futures.Future[Image]] = field(default_factory=dict)
    attachment: Attachment | None = None
    volume_paths: dict[str, Path] = field(default_factory=dict)
    restart_states: dict[str, RestartState] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)  # container → when (time.time)
    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    init_index: int = 0  # the next init container to run
    prepared: bool = False
    failed_reason: str | None = None
    fingerprint: str | None = None  # of the spec last run (secrets included: memory only)


class Supervisor:
    """All container groups of this node."""

    def __init__(self, settings: Settings, *, images: ImageStore | None = None,
                 networks: Networks | None = None, volumes: Volumes | None = None,
                 runtime: ConmonRuntime | None = None, backoff: BackoffSettings | None = None,
                 monitor_interval_s: float = MONITOR_INTERVAL_S) -> None:
        self.settings = settings
        self.images = images or ImageStore(settings.images_root, settings.images)
        self.networks = networks or Networks(settings.data_root, settings.network)
        self.volumes = volumes or Volumes(settings.data_root, settings.volumes)
        self.runtime = runtime or ConmonRuntime(settings.data_root, settings.runtime)
        self.sandboxes = Sandboxes(settings.data_root, self.runtime, settings.runtime)
        self.backoff = backoff or settings.backoff
        self._state_dir = settings.data_root / "groups"
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                           thread_name_prefix="skiff-engine")
        self._interval = monitor_interval_s

        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="skiff-monitor", daemon=True)
        self._monitor.start()

    # ---- the public surface -------------------------------------------------

    def run(self, spec: GroupSpec) -> GroupView:
        """Make the group run as ``spec`` says; returns its view once its first
        containers were started (or it failed). Idempotent: containers of the
        group that already run (say, across a restart of skiff) are adopted;
        a changed definition redeploys the group."""
        _validate(spec)
        fingerprint = hashlib.sha256(repr(spec).encode()).hexdigest()  # in memory only
        with self._lock:
            group = self._groups.get(spec.id)
            if group is None:
                group = _Group(spec, self._load_view(spec))
                self._groups[spec.id] = group
        with group.lock:
            adopted = group.fingerprint is None  # its first run() in this process
            if group.fingerprint not in (None, fingerprint):
                self._redeploy(group)
            group.fingerprint = fingerprint
            group.spec = spec
            if group.view.stopped:
                return self._snapshot(group)
            if not group.prepared:
                self._prepare(group)
                if adopted and group.failed_reason is None:
                    self._resume_restarts(group)
            if group.failed_reason is None:
                self._advance(group)
            self._persist(group)
            return self._snapshot(group)

    def _redeploy(self, group: _Group) -> None:
        """The definition changed: new containers, from the new definition."""
        self._teardown(group, remove_logs=False)
        group.failed_reason = None
        group.init_index = 0
        group.images.clear()
        group.checks.clear()
        for view in group.view.all_containers():
            view.transition(State("Waiting", None, None, None, "Redeploying"))

    def _resume_restarts(self, group: _Group) -> None:
        """After a restart of skiff, restart what was waiting to restart: its
        timer was in the previous process's memory."""
        now = time.time()
        for _container, view in self._all(group):
            current = view.current
            if current.state != "Terminated":
                continue
            failed = current.exit_code != 0
            policy = group.spec.restart_policy
            if view.init and not failed:
                continue
            if policy is RestartPolicy.ALWAYS or (policy is RestartPolicy.ON_FAILURE and failed):
                group.restart_at[view.name] = now

    def view(self, group_id: str) -> GroupView:
        group = self._group(group_id)
        with group.lock:
            self._observe(group)
            return self._snapshot(group)

    def group_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

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
            self._persist(group)
            return self._snapshot(group)

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
            group = self._from_disk(group_id)  # e.g. deleted before run() after a restart
        if group is None:
            self.networks.teardown(group_id)
            self.volumes.cleanup(group_id)
            return
        with group.lock:
            self._teardown(group, remove_logs=True)
            with contextlib.suppress(FileNotFoundError):
                (self._state_dir / f"{_safe(group_id)}.json").unlink()

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
        return self.runtime.logs(view.cid, tail=tail, timestamps=timestamps, previous=previous)

    def attach(self, group_id: str, container: str) -> Iterator[str]:
        """The container's output stream, line by line as written, until it exits."""
        group = self._group(group_id)
        view = group.view.container(container)
        if view is None:
            raise GroupNotFound(f"container group {group.view.name} has no container "
                                f"{container!r}")
        return self.runtime.follow(view.cid)

    def exec(self, group_id: str, container: str, command: list[str], *,
             tty: bool = False, terminal_size: tuple[int, int] | None = None) -> Any:
        group = self._group(group_id)
        view = group.view.container(container)
        if view is None or view.init:
            raise GroupNotFound(f"container group {group.view.name} has no container "
                                f"{container!r}")
        return self.runtime.exec(view.cid, command, tty=tty, terminal_size=terminal_size)

    def close(self) -> None:
        """Stop watching (containers keep running: conmon holds them)."""
        self._stop.set()
        self._monitor.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- preparing --------------------------------------------------------

    def _group(self, group_id: str) -> _Group:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                group = self._from_disk(group_id)
                if group is not None:
                    self._groups[group_id] = group
        if group is None:
            raise GroupNotFound(f"container group {group_id} is not on this node")
        return group

    def _from_disk(self, group_id: str) -> _Group | None:
        """A group this process has not run yet but whose containers may exist (skiff
        restarted): enough of it to stop, view or delete it. run() brings the rest."""
        path = self._state_dir / f"{_safe(group_id)}.json"
        try:
            view = GroupView.from_json(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return None
        return _Group(GroupSpec(id=group_id, name=view.name, containers=()), view)

    def _load_view(self, spec: GroupSpec) -> GroupView:
        path = self._state_dir / f"{_safe(spec.id)}.json"
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return GroupView.from_json(json.loads(path.read_text()))
        return GroupView(spec.id, spec.name)

    def _sync_views(self, group: _Group) -> None:
        """One view per container of the spec, keeping the history of known ones."""
        def views(containers: tuple[Container, ...], init: bool,
                  known: list[ContainerView]) -> list[ContainerView]:
            by_name = {v.name: v for v in known}
            return [by_name.get(c.name) or ContainerView(c.name, container_id(
                group.spec.id, c.name, init), init=init) for c in containers]

        group.view.containers = views(group.spec.containers, False, group.view.containers)
        group.view.init_containers = views(group.spec.init_containers, True,
                                           group.view.init_containers)
        for view in group.view.all_containers():
            group.restart_states.setdefault(view.name, RestartState(
                restart_count=view.restart_count))

    def _prepare(self, group: _Group) -> None:
        """Images, network and volumes: everything the containers need."""
        spec = group.spec
        self._sync_views(group)
        creds = [RegistryCredential(c.server, c.username, c.password) for c in spec.credentials]
        wanted = {c.name: c.image for c in (*spec.init_containers, *spec.containers)}
        for view in group.view.all_containers():
            if view.current.state == "Waiting":
                view.event("Pulling", f'pulling image "{wanted[view.name]}"')
        # One pull (or check) per distinct image. A cached image is used at once
        # while its registry check runs: _start waits for the check before it
        # lets the container's process run.
        pulls = {ref: self._pool.submit(self.images.pull, ref, creds)
                 for ref in dict.fromkeys(wanted.values())}
        network = self._pool.submit(self._network, spec)
        try:
            group.volume_paths = self.volumes.prepare(spec.id, spec.volumes,
                                                      owner=self._volume_owner(spec))
        except SkiffError as exc:
            self._fail(group, f"volumes could not be prepared: {exc.message}")
        for name, ref in wanted.items():
            cached = self.images.cached(ref)
            if cached is not None:
                group.images[name] = cached
                group.checks[name] = pulls[ref]
            else:
                self._pulled(group, name, ref, pulls[ref])
        try:
            group.attachment = network.result()
            group.view.ip = group.attachment.ip
        except SkiffError as exc:
            self._fail(group, f"network could not be set up: {exc.message}")
        group.prepared = group.failed_reason is None

    def _network(self, spec: GroupSpec) -> Attachment:
        """The group's network, filtered: only ``ip_ports`` reachable from outside
        the group (re-applied on every preparation, so adoption restores it), and
        the host guarded from the groups (once per supervisor). The gateway, the
        node itself, is trusted: it runs the HTTP probes."""
        attachment = self.networks.setup(spec.id, spec.name, spec.dns, spec.subnet)
        self.networks.protect(attachment, spec.ip_ports, spec.subnet)
        return attachment

    def _pulled(self, group: _Group, name: str, ref: str,
                pull: concurrent.futures.Future[Image]) -> bool:
        """Take the result of a pull; False (and the group failed) if it failed."""
        view = group.view.container(name)
        assert view is not None
        try:
            image = pull.result()
        except ImageError as exc:
            view.event("Failed", f'failed to pull image "{ref}": {exc.message}', warning=True)
            view.current.detail_status = exc.message
            self._fail(group, f"container {name}: {exc.message}")
            return False
        group.images[name] = image
        if view.current.state == "Waiting":
            view.event("Pulled", f'image "{ref}" is present')
        return True

    def _fail(self, group: _Group, reason: str) -> None:
        if group.failed_reason is None:
            group.failed_reason = reason
            log.warning("group %s failed: %s", group.view.name, reason)

    # ---- starting -----------------------------------------------------------

    def _advance(self, group: _Group) -> None:
        """Start what comes next: the next init container, or the app containers."""
        spec = group.spec
        while group.init_index < len(spec.init_containers):
            init = spec.init_containers[group.init_index]
            view = group.view.init_containers[group.init_index]
            status = self.runtime.status(view.cid)
            if view.current.state == "Terminated" and view.current.exit_code == 0:
                group.init_index += 1
                continue
            if status.state == "running" or group.restart_at.get(init.name):
                return  # running, or waiting out its backoff
            if view.current.state == "Terminated":
                return  # failed: the monitor applies the restart policy
            self._start(group, init, view)
            return
        pending = [(c, v) for c, v in zip(spec.containers, group.view.containers, strict=True)
                   if self.runtime.status(v.cid).state != "running"
                   and v.name not in group.restart_at
                   and v.current.state != "Terminated"]
        if len(pending) == 1:
            self._start(group, *pending[0])
        elif pending:
            list(self._pool.map(lambda cv: self._start(group, *cv), pending))

    def _spec(self, group: _Group, container: Container, rootfs: Path) -> dict[str, Any]:
        image = group.images[container.name]
        config = image.config
        args = list(container.command) if container.command else [*config.entrypoint,
                                                                   *config.cmd]
        env = _merge_env(config.env, [(e.name, e.value) for e in container.env])
        security = container.security
        if security.privileged and not self.settings.api.allow_privileged:
            # The API refuses it; a body stored before the setting changed gets here.
            raise InvalidGroupSpec(f"container {container.name} is privileged, which this "
                                   "node does not allow (skiff serve --allow-privileged)")
        uid, gid, gids = resolve_run_as(rootfs, config.user, security.run_as_user,
                                        security.run_as_group)
        attachment = group.attachment
        assert attachment is not None
        options = [
            oci.with_process(args, env, cwd=config.working_dir or "/", uid=uid, gid=gid,
                             additional_gids=gids),
            oci.with_root(rootfs),
            oci.with_hostname(_hostname(group.spec.name)),
            oci.with_bind(attachment.hosts_file, "/etc/hosts", readonly=True),
            oci.with_bind(attachment.hostname_file, "/etc/hostname", readonly=True),
            oci.with_bind(attachment.resolv_conf, "/etc/resolv.conf", readonly=True),
            # At least a core while runc sets up (see cgroups.py); _start tightens it.
            oci.with_resources(max(container.resources.effective_cpu, STARTUP_CPU_CORES),
                               container.resources.effective_memory_bytes, PIDS_LIMIT),
            oci.with_cgroups_path(self._cgroup(group, container.name)),
        ]
        for mount in container.volume_mounts:
            options.append(oci.with_bind(group.volume_paths[mount.name], mount.mount_path,
                                         readonly=mount.read_only))
        userns = self._userns(group.spec, container)
        if userns is not None:
            for what, value in (("user", uid), ("group", gid), ("group", max(gids, default=0))):
                if value >= userns[1]:
                    raise InvalidGroupSpec(f"container {container.name} runs as {what} "
                                           f"{value}, beyond the {userns[1]} ids its user "
                                           "namespace maps")
            options.append(with_user_namespace(*userns))
        options.extend(security_options(security))
        spec = oci.default_spec(*options, network_path=str(attachment.netns_path),
                                cap_add=security.cap_add, cap_drop=security.cap_drop,
                                privileged=security.privileged)
        if not self.settings.runtime.compat_syscalls:
            without_compat_syscalls(spec)
        return spec

    def _userns(self, spec: GroupSpec, container: Container) -> tuple[int, int] | None:
        """The (first host id, count) ``container``'s user namespace maps, if any: runc
        only (a gVisor sandbox has its own kernel), and privileged containers run in the
        host's, as with Docker's --userns=host."""
        if container.security.privileged or spec.isolation == "sandbox":
            return None
        return self.settings.runtime.userns

    def _volume_owner(self, spec: GroupSpec) -> int | None:
        """The host id that owns the group's volumes: its remapped containers' root."""
        remapped = [self._userns(spec, c) for c in (*spec.init_containers, *spec.containers)]
        return next((u[0] for u in remapped if u is not None), None)

    def _group_cgroup(self, group: _Group) -> str:
        """The group's cgroup parent: one per node (data root), one per group."""
        return f"/{self.runtime.run_dir.name}/{_safe(group.spec.id)[:16]}"

    def _cgroup(self, group: _Group, name: str) -> str:
        view = group.view.container(name)
        cid = view.cid if view is not None else container_id(group.spec.id, name)
        return f"{self._group_cgroup(group)}/{cid}"

    def _isolate(self, group: _Group,
                 spec: dict[str, Any]) -> tuple[dict[str, Any], OciRuntime | None]:
        """The container's spec and runtime as its group's isolation wants them:
        runc (None) as it is, or a member of the group's gVisor sandbox (made or
        remade here when it does not run)."""
        if group.spec.isolation != "sandbox":
            return spec, None
        assert group.attachment is not None
        netns = group.attachment.netns_path
        sandbox_id = self.sandboxes.ensure(group.spec, netns, self._group_cgroup(group))
        return member_spec(spec, sandbox_id), self.sandboxes.oci_runtime(netns)

    def _oom_cgroup(self, group: _Group, name: str) -> str:
        """Where an OOM kill of ``name`` shows: its cgroup, or its sandbox's."""
        if group.spec.isolation == "sandbox":
            return self.sandboxes.cgroup(group.spec.id, self._group_cgroup(group))
        return self._cgroup(group, name)

    def _start(self, group: _Group, container: Container, view: ContainerView) -> None:
        """A new instance of ``container``: fresh rootfs, create, start."""
        cid = view.cid
        self.runtime.delete(cid)
        self.images.remove_rootfs(cid)
        try:
            rootfs = self.images.create_rootfs(cid, group.images[container.name],
                                               idmap=self._userns(group.spec, container))
            spec = self._spec(group, container, rootfs)
            spec, runtime = self._isolate(group, spec)
            self.runtime.create(cid, spec, name=f"{group.spec.name}_{container.name}",
                                oci=runtime)
            if runtime is None:  # a sandbox's limits are the sandbox's, already set
                cgroups.set_cpu_quota(self._cgroup(group, container.name),
                                      container.resources.effective_cpu)
            view.event("Created", f"created container {container.name}")
            check = group.checks.pop(container.name, None)
            if check is not None:
                used = group.images[container.name]
                if not self._pulled(group, container.name, container.image, check):
                    self.runtime.delete(cid)  # never run an image the caller may not read
                    return
                if group.images[container.name].digest != used.digest:
                    self._start(group, container, view)  # the tag moved: the new image
                    return
            if runtime is not None:
                self.sandboxes.wait_started(group.spec.id)
            self.runtime.start(cid)
        except (ContainerCreateFailed, UserNotFound, SkiffError) as exc:
            now = time.time()
            view.event("Failed", f"failed to start container {container.name}: {exc.message}",
                       warning=True, now=now)
            view.transition(State("Terminated", now, 128, now, exc.message))
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
        tick = 0
        while not self._stop.wait(self._interval):
            tick += 1
            with self._lock:
                groups = list(self._groups.values())
            for group in groups:
                if not group.lock.acquire(blocking=False):
                    continue  # busy starting or stopping: next round
                try:
                    self._observe(group, rotate=tick % 25 == 0)
                except Exception:  # the monitor must survive anything one group does
                    log.exception("monitoring group %s failed", group.view.name)
                finally:
                    group.lock.release()

    def _observe(self, group: _Group, rotate: bool = False) -> None:
        if group.view.stopped or not group.prepared:
            return
        now = time.time()
        changed = False
        for view in group.view.all_containers():
            if view.current.state != "Running":
                continue
            status = self.runtime.status(view.cid)
            if status.state == "running":
                if rotate:
                    self.runtime.rotate_logs(view.cid)
                continue
            changed = True
            self._record_exit(group, view, status)
        for name, when in list(group.restart_at.items()):
            if when <= now:
                del group.restart_at[name]
                changed = True
                self._restart(group, name)
        changed |= self._run_probes(group, now)
        if changed:
            self._advance(group)
            self._persist(group)

    def _record_exit(self, group: _Group, view: ContainerView, status: ContainerStatus) -> None:
        oom = status.oom_killed or _oom_in_cgroup(self._oom_cgroup(group, view.name))
        code = status.exit_code if status.exit_code is not None else 255
        finished = status.finished_at or time.time()
        started = view.current.start_time or finished
        detail = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        if status.state == "missing":
            detail = "lost: its monitor is gone (node restarted?)"
        view.transition(State("Terminated", started, code, finished, detail))
        if oom:
            view.event("OOMKilled", f"container {view.name} ran out of memory and was killed",
                       warning=True)
        self.runtime.delete(view.cid)
        self._exited(group, view, ContainerExit(exit_code=code, started_at=started,
                                                finished_at=finished, oom=oom))

    def _exited(self, group: _Group, view: ContainerView, exited: ContainerExit) -> None:
        if view.init and exited.exit_code == 0 and not exited.oom:
            return  # done: _advance starts the next one
        decision, state = decide(group.spec.restart_policy, exited,
                                 group.restart_states.get(view.name), self.backoff)
        if decision.action == "stay_stopped":
            if view.init:
                self._fail(group, f"init container {view.name} failed with exit code "
                                  f"{exited.exit_code}")
            return
        group.restart_states[view.name] = state
        view.restart_count = state.restart_count
        group.restart_at[view.name] = exited.finished_at + decision.delay_s
        if decision.delay_s > 0:
            view.event("BackOff", f"back-off restarting failed container {view.name}: "
                                  f"{decision.reason}", warning=True)

    def _restart(self, group: _Group, name: str) -> None:
        for container, view in self._all(group):
            if view.name == name:
                view.transition(State("Waiting", None, None, None, "Restarting"))
                if view.init:
                    return  # _advance starts it again in order
                self._start(group, container, view)

    def _all(self, group: _Group) -> Iterator[tuple[Container, ContainerView]]:
        yield from zip(group.spec.init_containers, group.view.init_containers, strict=True)
        yield from zip(group.spec.containers, group.view.containers, strict=True)

    def _run_probes(self, group: _Group, now: float) -> bool:
        changed = False
        for container, view in self._all(group):
            if view.current.state != "Running":
                continue
            for kind in ("liveness", "readiness"):
                probe = getattr(container, kind)
                state = group.probes.get((container.name, kind))
                if probe is None or state is None:
                    continue
                if state.due(probe, now):  # checks run on the pool: the monitor never waits
                    state.pending = self._pool.submit(run_probe, probe, self.runtime, view.cid,
                                                      group.view.ip)
                if state.pending is None or not state.pending.done():
                    continue
                ok, message = state.pending.result()
                state.pending = None
                verdict = state.record(probe, ok, now)
                if kind == "readiness" and verdict is not None:
                    view.ready = verdict
                if not ok:
                    view.event("Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                               warning=True)
                if kind == "liveness" and verdict is False:
                    view.event("Killing", f"container {container.name} failed its liveness "
                                          "probe and will be restarted")
                    self.runtime.kill(view.cid, signal.SIGKILL, all_processes=True)
                    changed = True
        return changed

    # ---- tearing down -----------------------------------------------------

    def _teardown(self, group: _Group, *, remove_logs: bool) -> None:
        """Stop every container (SIGTERM, grace, SIGKILL) in parallel, then remove
        their rootfs, the network namespace and the volumes."""
        views = group.view.all_containers()
        for view in views:
            if self.runtime.status(view.cid).state == "running":
                view.event("Killing", f"stopping container {view.name}")
        list(self._pool.map(lambda v: self.runtime.stop(v.cid), views))
        for view in views:
            if remove_logs:
                self.runtime.remove(view.cid)
            else:
                self.runtime.delete(view.cid)
            self.images.remove_rootfs(view.cid)
        group.restart_at.clear()
        group.probes.clear()
        self.sandboxes.remove(group.spec.id, remove_logs=remove_logs)  # after its members
        cgroups.remove(self._group_cgroup(group))
        self.networks.teardown(group.spec.id, wait=False)  # its CNI DEL runs meanwhile
        self.volumes.cleanup(group.spec.id)
        group.attachment = None
        group.prepared = False
        group.view.ip = None

    # ---- views ------------------------------------------------------------

    def _snapshot(self, group: _Group) -> GroupView:
        view = group.view
        view.failure = group.failed_reason
        if group.failed_reason is not None:
            view.state = "Failed"
        else:
            states = [ContainerState(_state_name(v.current.state), v.current.exit_code,
                                     v.restart_count) for v in view.containers]
            view.state = group_state(group.spec.restart_policy, states, stopped=view.stopped)
        return GroupView.from_json(json.loads(json.dumps(view.to_json())))

    def _persist(self, group: _Group) -> None:
        self._snapshot(group)
        path = self._state_dir / f"{_safe(group.spec.id)}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(group.view.to_json()))
        os.replace(tmp, path)


def _state_name(state: str) -> Any:
    return state if state in ("Waiting", "Running", "Terminated") else "Waiting"


def _safe(group_id: str) -> str:
    return hashlib.sha256(group_id.encode()).hexdigest()[:32]


def _hostname(name: str) -> str:
    return name[:63]


def _merge_env(image_env: tuple[str, ...], extra: list[tuple[str, str]]) -> list[str]:
    """The image's environment, then the group's: a later name replaces an earlier one."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for key, value in extra:
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _oom_in_cgroup(cgroup: str) -> bool:
    """Whether the kernel's OOM killer struck in the memory cgroup (v1)."""
    try:
        text = Path(f"/sys/fs/cgroup/memory{cgroup}/memory.oom_control").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip() not in ("", "0"):
            return True
    return False


def _validate(spec: GroupSpec) -> None:
    """Refuse definitions that cannot run, before anything is created."""
    if not spec.containers:
        raise InvalidGroupSpec("a container group needs at least one container")
    if spec.isolation not in ("container", "sandbox"):
        raise InvalidGroupSpec(f"unknown isolation {spec.isolation!r} (container or sandbox)")
    volumes = {v.name for v in spec.volumes}
    names: set[str] = set()
    for container in (*spec.init_containers, *spec.containers):
        if container.name in names:
            raise InvalidGroupSpec(f"two containers are named {container.name!r}")
        names.add(container.name)
        paths: set[str] = set()
        for mount in container.volume_mounts:
            if mount.name not in volumes:
                raise InvalidGroupSpec(f"container {container.name} mounts volume "
                                       f"{mount.name!r}, which the group does not define")
            path = os.path.normpath(mount.mount_path)
            if not mount.mount_path.startswith("/"):
                raise InvalidGroupSpec(f"container {container.name}: mount path "
                                       f"{mount.mount_path!r} is not absolute")
            if path in paths:
                raise InvalidGroupSpec(f"container {container.name} mounts two volumes at "
                                       f"{mount.mount_path}")
            paths.add(path)

