"""The runtime driver protocol on each driver, without a supervisor: one container's
lifecycle (set-up, create, limits, start, status, exec, logs, follow, kill, stop, delete)
and a group's teardown, driven in the order the supervisor drives them.

The ``isolation`` fixture (tests/engine/conftest.py) runs every test on runc and on gVisor.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.images import Image, ImageStore
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.runtime.gvisor import GvisorDriver
from skiff.engine.runtime.registry import node_drivers
from skiff.engine.spec import options as oci
from skiff.settings import RuntimeSettings
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import kill, runsc_pids
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What the test's one container asks for.
CPU_CORES, MEMORY_BYTES = 0.5, 256 << 20


@dataclass
class Bench:
    """A driver, a group of one container on it, and a network namespace for the group."""

    driver: RuntimeDriver
    group: GroupSpec
    netns: Path
    store: ImageStore
    image: Image

    def run(self, args: list[str]) -> str:
        """A new container of the group running ``args``, set up and started as the
        supervisor does it; returns its id."""
        cid = "d" + uuid.uuid4().hex[:11]
        rootfs = self.store.create_rootfs(cid, self.image)
        spec = oci.default_spec(
            oci.with_process(args, [PATH]), oci.with_root(rootfs),
            oci.with_resources(1.0, MEMORY_BYTES, 4096),
            oci.with_cgroups_path(self.driver.container_cgroup(self.group.id, cid)),
            network_path=str(self.netns))
        spec = self.driver.adapt_spec(self.group, spec)
        self.driver.setup_group(self.group, self.netns)
        self.driver.create(cid, spec, name=cid, netns=self.netns)
        self.driver.apply_limits(self.group.id, cid, self.group.containers[0])
        self.driver.wait_group(self.group.id)
        self.driver.start(cid)
        return cid


@pytest.fixture
def netns() -> Iterator[Path]:
    """A network namespace of the test's own, its loopback up."""
    name = "skiffdrv" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def bench(tmp_path: Path, isolation: str, netns: Path, store: ImageStore,
          images: BuiltImages) -> Iterator[Bench]:
    """The driver of ``isolation`` on a fresh data root; its containers, group state,
    processes and cgroups go after, pass or fail."""
    runtime = ConmonRuntime(tmp_path / "root", RuntimeSettings(stop_grace_s=1))
    driver = node_drivers(runtime, runtime.settings)[isolation]
    container = Container(name="c", image=images.bb,
                          resources=Resources(cpu=CPU_CORES, memory_gb=MEMORY_BYTES / 1024**3))
    group = GroupSpec(id=uuid.uuid4().hex, name="drv", containers=(container,),
                      isolation=isolation)
    try:
        yield Bench(driver, group, netns, store, store.pull(images.bb))
    finally:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(cgroups.remove, f"/{runtime.run_dir.name}")
            cleanup.callback(rundir.remove, runtime.run_dir)
            cleanup.callback(_kill_leftovers, driver)
            cleanup.callback(driver.teardown_group, group.id, remove_logs=True)
            for cid in runtime.list():
                cleanup.callback(store.remove_rootfs, cid)
                cleanup.callback(driver.remove, cid)


def _kill_leftovers(driver: RuntimeDriver) -> None:
    """Sandboxes the driver lost track of (a failed test's)."""
    if isinstance(driver, GvisorDriver):
        for pid in runsc_pids(driver.sandboxes.root):
            kill(pid)


def _unified() -> bool:
    return (cgroups.ROOT / "cgroup.controllers").exists()


def _cgroup_dir(controller: str, cgroup: str) -> Path:
    """The directory of ``cgroup`` in the hierarchy of ``controller`` (cgroup v1 or v2)."""
    if _unified():
        return cgroups.ROOT / cgroup.lstrip("/")
    return cgroups.ROOT / controller / cgroup.lstrip("/")


def test_a_container_runs_execs_and_stops(bench: Bench) -> None:
    """A started container runs (status with its pid), answers an exec, writes its log,
    and stops (SIGTERM, which it ignores, then SIGKILL); deleted, it is missing."""
    driver = bench.driver
    cid = bench.run(["sh", "-c", "trap '' TERM; echo started; sleep 300"])
    status = driver.status(cid)
    assert status.state == "running"
    assert status.pid is not None
    eventually(lambda: driver.logs(cid) == "started\n", what="the container's first line")
    session = driver.exec(cid, ["sh", "-c", "echo $((6 * 7))"])
    out, _ = session.process.communicate(timeout=20)
    assert (out, session.process.returncode) == (b"42\n", 0)
    stopped = driver.stop(cid, grace_s=1)
    assert (stopped.state, stopped.exit_code) == ("exited", 137)
    driver.delete(cid)
    assert driver.status(cid).state == "missing"
    assert driver.logs(cid) == "started\n"  # kept until removed


def test_exit_code_and_followed_output(bench: Bench) -> None:
    """Following a container yields its lines and ends when it exits; its exit code is kept."""
    driver = bench.driver
    cid = bench.run(["sh", "-c", "echo one; echo two; exit 3"])
    assert list(driver.follow(cid)) == ["one\n", "two\n"]
    status = driver.status(cid)
    assert (status.state, status.exit_code) == ("exited", 3)


def test_kill_ends_the_container(bench: Bench) -> None:
    """SIGKILL through the driver ends the container with 137."""
    driver = bench.driver
    cid = bench.run(["sleep", "300"])
    driver.kill(cid, signal.SIGKILL, all_processes=True)
    eventually(lambda: driver.status(cid).state == "exited", what="the killed container to exit")
    assert driver.status(cid).exit_code == 137


def test_limits_hold_where_the_driver_says(bench: Bench) -> None:
    """The cgroup the driver names for a container's limits holds its CPU quota (set after
    create) and a memory limit of at least its own; the group's teardown removes it and
    everything the driver kept of the group."""
    driver, group = bench.driver, bench.group
    cid = bench.run(["sleep", "300"])
    limits = driver.limits_cgroup(group.id, cid)
    assert limits.startswith(driver.group_cgroup(group.id) + "/")
    cpu, memory = _cgroup_dir("cpu", limits), _cgroup_dir("memory", limits)
    quota = (cpu / ("cpu.max" if _unified() else "cpu.cfs_quota_us")).read_text().split()[0]
    assert int(quota) == int(CPU_CORES * cgroups.CFS_PERIOD_US)
    limit = (memory / ("memory.max" if _unified() else "memory.limit_in_bytes")).read_text()
    assert MEMORY_BYTES <= int(limit) < 2 * MEMORY_BYTES
    assert driver.holds(group.id) == {"container": False, "sandbox": True}[driver.isolation]
    driver.stop(cid, grace_s=0)
    driver.remove(cid)
    driver.teardown_group(group.id, remove_logs=True)
    assert not driver.holds(group.id)
    assert not _cgroup_dir("memory", driver.group_cgroup(group.id)).exists()
