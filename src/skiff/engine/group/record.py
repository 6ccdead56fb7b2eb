"""A container group as the supervisor holds it, and the part of it kept on disk.

The supervisor's record of a group (:class:`Group`) mixes what the caller
asked for (the spec, secrets included) with what the engine prepared and
observed (images, network, volumes, the instance view, restart and probe
states). Only the observed instance view is written down, one JSON file per
group (:class:`GroupFiles`), written before the group's first container is
created: after a restart of skiff it is enough to view, stop or delete a group
whose containers conmon kept alive, whatever moment the previous process died
at, and
:meth:`~skiff.engine.group.supervisor.Supervisor.run` brings back the rest from the
caller's definition. The spec with its secrets never touches the disk, and
no text of the view quotes one (:func:`snapshot` scrubs them): the files are
the engine's alone all the same (0600 in a 0700 directory).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.core.metrics import GroupPhase
from skiff.core.secrets import scrub, secrets_of
from skiff.core.spec import Container, GroupSpec
from skiff.core.view import ContainerView, GroupView
from skiff.engine.group.probes import ProbeState
from skiff.engine.group.restarts import ContainerState, RestartState, group_state
from skiff.engine.images import Image
from skiff.engine.network.networks import Attachment
from skiff.engine.spec.nvidia import GpuParts

log = logging.getLogger(__name__)


def container_id(group_id: str, name: str, init: bool = False) -> str:
    """A short, stable runtime id for a group's container (socket paths stay short)."""
    digest = hashlib.sha256(f"{group_id}\0{'init' if init else 'app'}\0{name}".encode())
    return "sk" + digest.hexdigest()[:14]


def safe_name(group_id: str) -> str:
    """A group id as a file or cgroup name: fixed length, no odd characters."""
    return hashlib.sha256(group_id.encode()).hexdigest()[:32]


@dataclass
class Group:
    """One group of this node: its definition, what was prepared for it, what was seen."""

    spec: GroupSpec
    view: GroupView
    lock: threading.RLock = field(default_factory=threading.RLock)
    images: dict[str, Image] = field(default_factory=dict)
    #: Registry checks still running for cached images, per container.
    checks: dict[str, concurrent.futures.Future[Image]] = field(default_factory=dict)
    attachment: Attachment | None = None
    volume_paths: dict[str, Path] = field(default_factory=dict)
    #: Container name → the host directory of its config map (those that have one), and
    #: the pairs last written there (a resync with the same compares in memory only).
    config_map_paths: dict[str, Path] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    restart_states: dict[str, RestartState] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)  # container → when (time.time)
    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    init_index: int = 0  # the next init container to run
    #: Container name → what it is given of the GPUs the group holds (devices, driver
    #: files: skiff.engine.spec.nvidia), set before anything of the group is created.
    gpu_parts: dict[str, GpuParts] = field(default_factory=dict)
    prepared: bool = False
    failed_reason: str | None = None
    fingerprint: str | None = None  # of the spec last run (secrets included: memory only)

    def fail(self, reason: str) -> None:
        """The group failed (the first reason sticks)."""
        if self.failed_reason is None:
            reason = scrub(reason, secrets_of(self.spec))
            self.failed_reason = reason
            log.warning("group %s failed: %s", self.view.name, reason)


def pairs(group: Group) -> Iterator[tuple[Container, ContainerView]]:
    """Every container of the group with its view: init containers first."""
    yield from zip(group.spec.init_containers, group.view.init_containers, strict=True)
    yield from zip(group.spec.containers, group.view.containers, strict=True)


def sync_views(group: Group) -> None:
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


def snapshot(group: Group) -> GroupView:
    """The group's view with its state brought up to date and scrubbed of the group's
    secrets (an error may quote one), as a copy for callers."""
    view = group.view
    scrub_view(group)
    view.failure = group.failed_reason
    view.state = current_state(group)
    return GroupView.from_json(json.loads(json.dumps(view.to_json())))


def current_state(group: Group) -> str:
    """The group's instance-view state from its containers' states as they stand."""
    if group.failed_reason is not None:
        return "Failed"
    states = [ContainerState(_state_name(v.current.state), v.current.exit_code,
                             v.restart_count) for v in list(group.view.containers)]
    return group_state(group.spec.restart_policy, states, stopped=group.view.stopped)


def phase(group: Group) -> GroupPhase:
    """The group's state for the meter, and when its last container ended if it is done
    (a failure of the group as a whole: when the engine gave up, not known here)."""
    state = current_state(group)
    ended = None
    if state in ("Succeeded", "Failed") and group.failed_reason is None:
        ended = max((v.current.finish_time for v in list(group.view.containers)
                     if v.current.finish_time is not None), default=None)
    return GroupPhase(state, ended)


def scrub_view(group: Group) -> None:
    """Replace every secret of the group in the texts of its view (in place)."""
    secrets = secrets_of(group.spec)
    if not secrets:
        return
    if group.failed_reason is not None:
        group.failed_reason = scrub(group.failed_reason, secrets)
    for view in group.view.all_containers():
        for state in (view.current, view.previous):
            if state is not None:
                state.detail_status = scrub(state.detail_status, secrets)
        for event in view.events:
            event.message = scrub(event.message, secrets)
    for event in group.view.events:
        event.message = scrub(event.message, secrets)


def _state_name(state: str) -> Any:
    return state if state in ("Waiting", "Running", "Terminated") else "Waiting"


class GroupFiles:
    """The groups' instance views on disk, one JSON file each, replaced atomically;
    readable by the engine alone (0600 in a 0700 directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # made by an earlier skiff, perhaps more open
        for path in self.root.glob("*.json"):
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)

    def _path(self, group_id: str) -> Path:
        return self.root / f"{safe_name(group_id)}.json"

    def save(self, group: Group) -> None:
        snapshot(group)
        path = self._path(group.spec.id)
        tmp = path.with_name(path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by a crash, perhaps with an earlier mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(group.view.to_json()))
        os.replace(tmp, path)

    def load(self, group_id: str) -> Group | None:
        """A group this process has not run yet but whose containers may exist (skiff
        restarted): enough of it to stop, view or delete it. run() brings the rest."""
        try:
            view = GroupView.from_json(json.loads(self._path(group_id).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return None
        return Group(GroupSpec(id=group_id, name=view.name, containers=()), view)

    def load_view(self, spec: GroupSpec) -> GroupView:
        """The view last saved for ``spec``'s group, or a fresh one."""
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return GroupView.from_json(json.loads(self._path(spec.id).read_text()))
        return GroupView(spec.id, spec.name)

    def remove(self, group_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(group_id).unlink()

    def ids(self) -> list[str]:
        """The ids of the groups on disk (their files are named by a hash of it)."""
        found = []
        for path in sorted(self.root.glob("*.json")):
            with contextlib.suppress(OSError, json.JSONDecodeError, TypeError, KeyError):
                found.append(str(json.loads(path.read_text())["group_id"]))
        return found
