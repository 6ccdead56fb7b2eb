"""What is particular to gVisor sandboxes (``isolation="sandbox"``): one runsc sandbox per
group, its containers inside, its limits the group's.

Everything a sandboxed group has in common with a runc group is proven by the
conformance suite (test_supervisor.py, which runs on both runtimes); these tests look
at the sandbox itself, so they make sandboxed groups only.
"""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

import pytest

from skiff.core.spec import Container, GroupSpec, RestartPolicy
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime.gvisor import GvisorDriver
from skiff.engine.runtime.sandbox import SANDBOX_OVERHEAD_BYTES, holder_id
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import box, group_spec, needs_runsc, runsc_pids
from skiff.testing.waiting import eventually

pytestmark = [pytest.mark.root, needs_runsc]


def sandboxed(*containers: Container, **fields: object) -> GroupSpec:
    """A group in a gVisor sandbox."""
    return group_spec(*containers, isolation="sandbox", **fields)


def gvisor(engine: Supervisor) -> GvisorDriver:
    driver = engine.drivers["sandbox"]
    assert isinstance(driver, GvisorDriver)
    return driver


def _sandbox_pid(engine: Supervisor, group_id: str) -> int:
    return int((engine.runtime.dir(holder_id(group_id)) / "pidfile").read_text())


def _is_sandbox(pid: int) -> bool:
    """Whether ``pid`` is a gVisor sandbox (its kernel: runsc-sandbox) that still runs."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"runsc-sandbox")
    except OSError:
        return False


def test_sandboxed_group_runs_inside_gvisor(engine: Supervisor, images: BuiltImages) -> None:
    """A sandboxed group runs under gVisor's kernel (its dmesg says so), with the group's
    name: gVisor's only, as a runc container sees the host's kernel."""
    spec = sandboxed(box(images, "c", "hostname; dmesg | head -1; sleep 300"), name="sb-grp")
    view = engine.run(spec)
    assert view.state == "Running", view
    wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "c").count("\n") >= 2)
    lines = engine.logs(spec.id, "c").splitlines()
    assert lines[0] == "sb-grp"
    assert "gVisor" in lines[1]


def test_containers_share_one_sandbox_that_outlives_their_restarts(
    engine: Supervisor, images: BuiltImages
) -> None:
    """Both containers of a group run in one gVisor sandbox, which stays when one restarts
    (runc has no sandbox: each container is its own)."""
    spec = sandboxed(box(images, "steady", "sleep 300"),
                     box(images, "flaky", "sleep 0.3; exit 1"),
                     restart_policy=RestartPolicy.ON_FAILURE)
    engine.run(spec)
    sandbox = _sandbox_pid(engine, spec.id)
    assert _is_sandbox(sandbox)
    sandboxes = [p for p in runsc_pids(gvisor(engine).sandboxes.root) if _is_sandbox(p)]
    assert sandboxes == [sandbox]
    view = wait_view(engine, spec.id, lambda v: v.containers[1].restart_count >= 2)
    assert view.containers[0].restart_count == 0
    assert view.containers[0].current.state == "Running"
    assert _sandbox_pid(engine, spec.id) == sandbox


def test_exec_with_and_without_a_terminal_and_its_exit_code(
    engine: Supervisor, images: BuiltImages
) -> None:
    """exec in a sandboxed container: pipes and exit code without a TTY; through the
    session's terminal with one (which this runsc does not show as a tty inside, unlike
    runc: test_runtime.py covers runc's terminal)."""
    spec = sandboxed(box(images, "c", "sleep 300"))
    engine.run(spec)
    plain = engine.exec(spec.id, "c", ["sh", "-c", "cat; echo err >&2; exit 4"])
    out, err = plain.process.communicate(b"in\n", timeout=20)
    assert (out, err, plain.process.returncode) == (b"in\n", b"err\n", 4)
    session = engine.exec(spec.id, "c", ["sh", "-c", "read x; echo got-$x; exit 5"], tty=True)
    try:
        terminal = session.terminal
        assert terminal is not None
        session.write(b"hi\n")
        output = bytearray()

        def answered() -> bool:
            if select.select([terminal], [], [], 0.1)[0]:
                output.extend(session.read(1024))
            return b"got-hi\r\n" in output

        eventually(answered, what="the command's answer on the terminal", timeout_s=20,
                   interval_s=0.01)
        assert session.process.wait(timeout=20) == 5
    finally:
        session.close()


def test_limits_hold_for_the_sandbox_as_a_whole(engine: Supervisor, images: BuiltImages) -> None:
    """The sandbox's cgroup holds the group's total CPU and memory (plus gVisor's share),
    where runc holds each container to its own."""
    spec = sandboxed(box(images, "a", "sleep 300"), box(images, "b", "sleep 300"))
    engine.run(spec)
    pid = _sandbox_pid(engine, spec.id)
    lines = dict(line.split(":", 2)[1:] for line in
                 Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    memory = Path("/sys/fs/cgroup/memory") / lines["memory"].lstrip("/")
    cpu = Path("/sys/fs/cgroup/cpu,cpuacct") / lines.get("cpu,cpuacct", lines.get("cpu", "")) \
        .lstrip("/")
    if not cpu.exists():
        cpu = Path("/sys/fs/cgroup/cpu") / lines["cpu"].lstrip("/")
    limit = int((memory / "memory.limit_in_bytes").read_text())
    assert limit == 2 * int(0.25 * 1024**3) + SANDBOX_OVERHEAD_BYTES
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 100_000  # 2 x 0.5 cores
    cid = engine.view(spec.id).containers[0].cid
    assert gvisor(engine).limits_cgroup(spec.id, cid) == lines["memory"]


def test_delete_leaves_no_sandbox_behind(engine: Supervisor, images: BuiltImages) -> None:
    """Deleting a sandboxed group ends its sandbox and gofers and clears runsc's state
    (what runc leaves is checked by the conformance suite)."""
    spec = sandboxed(box(images, "c", "sleep 300"))
    engine.run(spec)
    root = gvisor(engine).sandboxes.root
    assert runsc_pids(root)
    assert list(root.iterdir())
    engine.delete(spec.id)
    assert runsc_pids(root) == []
    assert [p.name for p in root.iterdir()] == []
    assert not engine.runtime.dir(holder_id(spec.id)).exists()
    node_cgroup = Path("/sys/fs/cgroup/memory") / engine.runtime.run_dir.name
    assert not [p for p in node_cgroup.glob("*") if p.is_dir()]


def test_a_sandboxed_group_known_only_by_its_id_is_torn_down_as_one(
    engine: Supervisor, images: BuiltImages
) -> None:
    """A skiff that restarted and has not run the group again (it knows only its id) still
    stops its sandbox with it: the gVisor driver recognises the group by its holder."""
    spec = sandboxed(box(images, "c", "sleep 300"))
    first = Supervisor(engine.settings, networks=engine.networks)
    try:
        first.run(spec)
        sandbox = _sandbox_pid(first, spec.id)
    finally:
        first.close()
    assert engine.view(spec.id).state == "Running"  # known from its state on disk
    engine.stop(spec.id)
    assert not _is_sandbox(sandbox)
    assert runsc_pids(gvisor(engine).sandboxes.root) == []


def test_a_dead_sandbox_is_remade_and_its_containers_restarted(
    engine: Supervisor, images: BuiltImages
) -> None:
    """If the sandbox dies, its containers end, and the restart policy brings up a new one
    (runc has no sandbox to lose)."""
    spec = sandboxed(box(images, "c", "sleep 300"))
    engine.run(spec)
    first = _sandbox_pid(engine, spec.id)
    os.kill(first, signal.SIGKILL)
    view = wait_view(engine, spec.id, lambda v: v.containers[0].restart_count >= 1
                     and v.containers[0].current.state == "Running")
    assert view.state == "Running"
    second = _sandbox_pid(engine, spec.id)
    assert second != first
    assert _is_sandbox(second)
