"""Container groups in gVisor sandboxes (``isolation="sandbox"``): one runsc sandbox per
group, its containers inside, behaving as runc groups do."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import Container, GroupSpec, RestartPolicy
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.runtime.sandbox import SANDBOX_OVERHEAD_BYTES, holder_id
from skiff.errors import InvalidGroupSpec
from skiff.settings import RuntimeSettings, Settings
from tests.conftest import BuiltImages
from tests.engine import test_supervisor as conformance
from tests.engine.supervising import runsc_pids, supervising
from tests.engine.test_supervisor import box, wait_view
from tests.engine.test_supervisor import group as _runc_group

pytestmark = pytest.mark.skipif(shutil.which("runsc") is None, reason="needs runsc")


@pytest.fixture
def sandboxed(tmp_path: Path, images: BuiltImages) -> Iterator[Supervisor]:
    """A supervisor on a fresh data root; its groups, sandboxes, namespaces and cgroups
    go after, pass or fail."""
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1))
    with supervising(settings) as supervisor:
        yield supervisor


def test_sandboxed_group_runs_inside_gvisor(sandboxed: Supervisor, images: BuiltImages) -> None:
    """A sandboxed group runs under gVisor's kernel, with the group's name and address."""
    spec = _runc_group(images, box(images, "c", "hostname; dmesg | head -1; sleep 300"),
                       name="sb-grp", isolation="sandbox")
    view = sandboxed.run(spec)
    assert view.state == "Running", view
    wait_view(sandboxed, spec.id, lambda v: sandboxed.logs(spec.id, "c").count("\n") >= 2)
    lines = sandboxed.logs(spec.id, "c").splitlines()
    assert lines[0] == "sb-grp"
    assert "gVisor" in lines[1]


# ---- the engine's conformance tests, on gVisor --------------------------------------------
# These are tests/engine/test_supervisor.py's own test functions, collected here a second
# time with `engine` a sandboxing supervisor and the module's `group` helper making
# sandboxed groups: the same scenarios, the same assertions, on the other runtime.

_CONFORMANCE = (
    "test_single_container_group_runs_with_its_name_and_address",
    "test_containers_of_a_group_share_localhost",
    "test_never_policy_ends_succeeded_or_failed",
    "test_on_failure_restarts_with_backoff_and_keeps_previous_logs",
    "test_init_containers_run_in_order_before_the_app",
    "test_failing_init_container_fails_the_group_under_never",
    "test_command_not_found_ends_as_a_clear_failure",
    "test_stop_and_start",
    "test_running_group_is_adopted_by_a_new_supervisor",
    "test_delete_leaves_nothing_behind",
    "test_oom_kill_is_reported",
    "test_failing_liveness_probe_restarts_the_container",
    "test_exec_in_a_running_container",
    "test_cached_private_image_never_runs_for_a_group_without_credentials",
    "test_http_readiness_probe_marks_the_container_ready",
    "test_secure_environment_values_stay_out_of_readable_files",
    "test_restart_pending_when_skiff_stopped_happens_after_it_returns",
    "test_group_deleted_after_a_restart_before_it_ran_again_leaves_nothing",
    "test_group_stopped_before_a_restart_starts_with_its_definition",
    "test_only_the_ip_address_ports_are_reachable_and_adoption_restores_the_filter",
)


@pytest.fixture
def engine(sandboxed: Supervisor, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    """The conformance tests' engine: every group they make is sandboxed."""
    def sandbox_group(images: BuiltImages, *containers: Container, **fields: object) -> GroupSpec:
        return _runc_group(images, *containers, isolation="sandbox", **fields)

    monkeypatch.setattr(conformance, "group", sandbox_group)
    return sandboxed


for _name in _CONFORMANCE:
    globals()[_name] = getattr(conformance, _name)


# ---- what is particular to sandboxes --------------------------------------------------------


def _sandbox_pid(engine: Supervisor, group_id: str) -> int:
    return int((engine.runtime.dir(holder_id(group_id)) / "pidfile").read_text())


def test_containers_share_one_sandbox_that_outlives_their_restarts(
    sandboxed: Supervisor, images: BuiltImages
) -> None:
    """Both containers of a group run in one gVisor sandbox, which stays when one restarts."""
    spec = _runc_group(images, box(images, "steady", "sleep 300"),
                       box(images, "flaky", "sleep 0.3; exit 1"),
                       restart_policy=RestartPolicy.ON_FAILURE, isolation="sandbox")
    sandboxed.run(spec)
    sandbox = _sandbox_pid(sandboxed, spec.id)
    assert Path(f"/proc/{sandbox}/cmdline").read_bytes().startswith(b"runsc-sandbox")
    sandboxes = [p for p in runsc_pids(sandboxed.sandboxes.root)
                 if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"runsc-sandbox")]
    assert sandboxes == [sandbox]
    view = wait_view(sandboxed, spec.id, lambda v: v.containers[1].restart_count >= 2)
    assert view.containers[0].restart_count == 0
    assert view.containers[0].current.state == "Running"
    assert _sandbox_pid(sandboxed, spec.id) == sandbox


def test_exec_with_and_without_a_terminal_and_its_exit_code(
    sandboxed: Supervisor, images: BuiltImages
) -> None:
    """exec in a sandboxed container: pipes and exit code without a TTY; through the
    session's terminal with one (which this runsc does not show as a tty inside)."""
    spec = _runc_group(images, box(images, "c", "sleep 300"), isolation="sandbox")
    sandboxed.run(spec)
    plain = sandboxed.exec(spec.id, "c", ["sh", "-c", "cat; echo err >&2; exit 4"])
    out, err = plain.process.communicate(b"in\n", timeout=20)
    assert (out, err, plain.process.returncode) == (b"in\n", b"err\n", 4)
    session = sandboxed.exec(spec.id, "c", ["sh", "-c", "read x; echo got-$x; exit 5"],
                             tty=True)
    try:
        assert session.terminal is not None
        os.write(session.terminal, b"hi\n")
        output = b""
        deadline = time.monotonic() + 20
        while b"got-hi" not in output and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                output += os.read(session.terminal, 1024)
        assert b"got-hi\r\n" in output
        assert session.process.wait(timeout=20) == 5
    finally:
        session.close()


def test_limits_hold_for_the_sandbox_as_a_whole(
    sandboxed: Supervisor, images: BuiltImages
) -> None:
    """The sandbox's cgroup holds the group's total CPU and memory (plus gVisor's share)."""
    spec = _runc_group(images, box(images, "a", "sleep 300"), box(images, "b", "sleep 300"),
                       isolation="sandbox")
    sandboxed.run(spec)
    pid = _sandbox_pid(sandboxed, spec.id)
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


def test_delete_leaves_no_sandbox_behind(sandboxed: Supervisor, images: BuiltImages) -> None:
    """Deleting a sandboxed group ends its sandbox and gofers and clears runsc's state."""
    spec = _runc_group(images, box(images, "c", "sleep 300"), isolation="sandbox")
    sandboxed.run(spec)
    root = sandboxed.sandboxes.root
    assert runsc_pids(root)
    assert list(root.iterdir())
    sandboxed.delete(spec.id)
    assert runsc_pids(root) == []
    assert [p.name for p in root.iterdir()] == []
    assert not sandboxed.runtime.dir(holder_id(spec.id)).exists()
    node_cgroup = Path("/sys/fs/cgroup/memory") / sandboxed.runtime.run_dir.name
    assert not [p for p in node_cgroup.glob("*") if p.is_dir()]


def test_a_dead_sandbox_is_remade_and_its_containers_restarted(
    sandboxed: Supervisor, images: BuiltImages
) -> None:
    """If the sandbox dies, its containers end, and the restart policy brings up a new one."""
    spec = _runc_group(images, box(images, "c", "sleep 300"), isolation="sandbox")
    sandboxed.run(spec)
    first = _sandbox_pid(sandboxed, spec.id)
    os.kill(first, signal.SIGKILL)
    view = wait_view(sandboxed, spec.id, lambda v: v.containers[0].restart_count >= 1
                     and v.containers[0].current.state == "Running")
    assert view.state == "Running"
    second = _sandbox_pid(sandboxed, spec.id)
    assert second != first
    assert Path(f"/proc/{second}/cmdline").read_bytes().startswith(b"runsc-sandbox")


def test_unknown_isolation_is_refused(sandboxed: Supervisor, images: BuiltImages) -> None:
    """An isolation other than container or sandbox is refused before anything is made."""
    spec = _runc_group(images, box(images, "c", "true"), isolation="vm")
    with pytest.raises(InvalidGroupSpec):
        sandboxed.run(spec)
    assert sandboxed.group_ids() == []
