"""A skiff that dies in the middle of a group's start leaves nothing the next one misses,
and the start-up sweep removes what belongs to no group the caller has.

Death is played in the process: a runtime that raises :class:`Died` (which nothing in
skiff catches) at one moment of a container's start, leaving the supervisor's memory
as a SIGKILL would leave the disk: conmon, runc's state and the container as they were,
the group's file as last written. The moments are runc's start handshake (conmon
spawned, ``runc create`` reported, the exec fifo read, ``start`` returned), so these
tests are runc's; a sandbox's holder is checked against the sweep at the end.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import GroupSpec
from skiff.engine.group.record import container_id
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.sandbox import holder_id
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import FAST_BACKOFF, box, group_spec, needs_runsc
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: The crash test's container: a shell that leaves on SIGTERM.
SCRIPT = "trap 'exit 0' TERM; sleep 3600 & wait"


class Died(BaseException):
    """skiff's process ended here (nothing in skiff catches a BaseException)."""


class Dying(ConmonRuntime):
    """A runtime whose process dies at ``point`` of a container's start:

    - ``conmon``: conmon spawned, its report not read (it then finds its sync pipe
      broken and leaves: runc's container stays, created, with no monitor);
    - ``created``: ``runc create`` reported, ``start`` not called;
    - ``released``: the exec fifo read (the process runs), not yet removed (runc
      still calls the container created);
    - ``started``: ``start`` returned, the view not written down.
    """

    point = ""

    def _read_sync(self, fd: int, timeout_s: float) -> dict[str, Any]:  # type: ignore[override]
        if self.point == "conmon":
            raise Died
        return super()._read_sync(fd, timeout_s)

    def create(self, cid: str, spec: dict[str, Any], **options: Any) -> int:
        pid = super().create(cid, spec, **options)
        if self.point == "created":
            raise Died
        return pid

    def start(self, cid: str) -> None:
        if self.point == "released":
            fd = os.open(self.runtime_root / cid / "exec.fifo", os.O_RDONLY)
            try:
                os.read(fd, 16)
            finally:
                os.close(fd)
            raise Died
        super().start(cid)
        if self.point == "started":
            raise Died


def die_while_starting(engine: Supervisor, spec: GroupSpec, point: str) -> None:
    """A previous skiff on ``engine``'s data root runs ``spec`` and dies at ``point``."""
    runtime = Dying(engine.settings.data_root, engine.settings.runtime)
    runtime.point = point
    first = Supervisor(engine.settings, networks=engine.networks, runtime=runtime,
                       backoff=FAST_BACKOFF)
    try:
        with pytest.raises(Died):
            first.run(spec)
    finally:
        first.close()
    if point == "conmon":  # its conmon leaves once runc reported: as the next skiff sees it
        cid = container_id(spec.id, spec.containers[0].name)
        eventually(lambda: engine.runtime.status(cid).state != "running",
                   what="the conmon with a broken sync pipe leaves", timeout_s=20)


def conmons_of(cid: str) -> list[int]:
    """The conmons watching a container ``cid``."""
    return [pid for pid, argv, _ in _processes() if b"conmon" in argv[0] and cid.encode() in argv]


def _processes() -> list[tuple[int, list[bytes], str]]:
    """(pid, argv, cgroups) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                cgroup = (entry / "cgroup").read_text()
            except OSError:
                continue
            found.append((int(entry.name), argv, cgroup))
    return found


def processes_of(cid: str) -> list[int]:
    """Processes left of the container ``cid``: its conmon, and any process in its
    cgroup (a created container's ``runc init`` included, with or without a conmon)."""
    return [pid for pid, argv, cgroup in _processes()
            if (b"conmon" in argv[0] and cid.encode() in argv) or f"/{cid}\n" in cgroup]


def gone(cid: str) -> bool:
    """Whether nothing is left of the container ``cid``; kills what is, so that a failing
    test leaks nothing either."""
    left = processes_of(cid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return not left


POINTS = ["conmon", "created", "released", "started"]


@pytest.mark.parametrize("point", POINTS)
def test_a_start_cut_short_is_replaced_once_and_watched(
    engine: Supervisor, images: BuiltImages, point: str
) -> None:
    """After a death at any moment of a start, the next run() leaves one instance, its
    view Running with one Started event, watched by the monitor; delete() kills it."""
    spec = group_spec(box(images, "c", SCRIPT))
    cid = container_id(spec.id, "c")
    die_while_starting(engine, spec, point)
    view = engine.run(spec)
    container = view.containers[0]
    assert container.current.state == "Running"
    assert [e.name for e in container.events].count("Started") == 1
    status = engine.runtime.status(cid)
    assert status.state == "running"
    assert status.pid is not None
    assert len(conmons_of(cid)) == 1
    os.kill(status.pid, signal.SIGKILL)  # the monitor sees the exit, the policy restarts
    wait_view(engine, spec.id, lambda v: v.containers[0].restart_count == 1
              and v.containers[0].current.state == "Running")
    engine.delete(spec.id)
    assert gone(cid)


@pytest.mark.parametrize("point", POINTS)
def test_a_group_deleted_after_a_start_cut_short_leaves_nothing(
    engine: Supervisor, images: BuiltImages, point: str
) -> None:
    """A group the next skiff knows only by its id (deleted before it ran again) is
    deleted whole, whatever moment of its start the previous one died at."""
    spec = group_spec(box(images, "c", SCRIPT))
    cid = container_id(spec.id, "c")
    die_while_starting(engine, spec, point)
    engine.delete(spec.id)
    assert gone(cid)
    assert engine.networks.get(spec.id) is None
    assert engine.group_ids() == []


def test_sweep_removes_the_groups_not_kept_and_leaves_the_kept_alone(
    engine: Supervisor, images: BuiltImages
) -> None:
    """A group the caller no longer has is removed whole, by a restarted skiff that never
    ran it; a kept group's containers keep running, untouched."""
    kept, dropped = (group_spec(box(images, "c", SCRIPT)) for _ in range(2))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        kept_view, dropped_view = first.run(kept), first.run(dropped)
    finally:
        first.close()  # skiff goes away; conmon keeps the containers
    kept_cid, dropped_cid = kept_view.containers[0].cid, dropped_view.containers[0].cid
    pid = engine.runtime.status(kept_cid).pid
    engine.sweep({kept.id})
    assert gone(dropped_cid)
    assert engine.networks.get(dropped.id) is None
    assert dropped_cid not in engine.runtime.ids()
    assert engine.runtime.status(kept_cid).pid == pid
    view = engine.run(kept)  # adopted, not restarted
    assert view.containers[0].current.start_time == kept_view.containers[0].current.start_time


def test_sweep_removes_a_container_no_group_records(
    engine: Supervisor, images: BuiltImages
) -> None:
    """A container whose group's file never listed it (an older skiff wrote the file after
    the first start) is killed and removed; its group, kept, starts a new one."""
    spec = group_spec(box(images, "c", SCRIPT))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        cid = first.run(spec).containers[0].cid
    finally:
        first.close()
    first._files.remove(spec.id)  # as an older skiff that died before writing it
    old = engine.runtime.status(cid).pid
    engine.sweep({spec.id})
    assert engine.runtime.status(cid).state == "missing"
    assert old is not None
    assert not Path(f"/proc/{old}").exists()
    assert engine.networks.get(spec.id) is not None  # the kept group's network stays
    view = engine.run(spec)
    assert view.containers[0].current.state == "Running"
    assert engine.runtime.status(cid).pid != old


@needs_runsc
def test_sweep_leaves_a_kept_sandbox_running(engine: Supervisor, images: BuiltImages) -> None:
    """A kept sandboxed group keeps its holder (no group view lists it: its driver owns it)
    and its members; a dropped one's go."""
    kept, dropped = (group_spec(box(images, "c", "sleep 3600"), isolation="sandbox")
                     for _ in range(2))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        member = first.run(kept).containers[0].cid
        first.run(dropped)
    finally:
        first.close()
    holder = engine.runtime.status(holder_id(kept.id)).pid
    engine.sweep({kept.id})
    assert engine.runtime.status(holder_id(kept.id)).pid == holder
    assert engine.runtime.status(member).state == "running"
    eventually(lambda: holder_id(dropped.id) not in engine.runtime.ids(),
               what="the dropped sandbox is gone", timeout_s=10)
