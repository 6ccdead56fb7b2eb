"""Containers on runc through conmon: create, start, exit codes, logs, stop, exec, adoption.

runc only: these drive :class:`~skiff.engine.runtime.conmon.ConmonRuntime` itself with
runc's own default spec (log rotation, the exec terminal's size, a process that outlives
its creator). The same lifecycle through the driver protocol, on runc and on gVisor, is
test_drivers.py's; a sandbox's exec terminal is test_sandbox.py's.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.engine.images import Image, ImageStore
from skiff.engine.runtime import cgroups, rundir
from skiff.engine.runtime.conmon import ConmonRuntime
from skiff.errors import ContainerCreateFailed
from skiff.settings import RuntimeSettings
from skiff.testing.catalog import BuiltImages
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ConmonRuntime]:
    """A runtime on a fresh data root; every container it made is removed after, pass or fail."""
    rt = ConmonRuntime(tmp_path / "root", RuntimeSettings(stop_grace_s=2))
    try:
        yield rt
    finally:
        for cid in rt.list():
            rt.remove(cid)
        rundir.remove(rt.run_dir)
        cgroups.remove("/skiff-test")


@pytest.fixture
def busybox(store: ImageStore, images: BuiltImages) -> Image:
    return store.pull(images.bb)


def minimal_spec(rootfs: Path, args: list[str], cgroup: str) -> dict[str, Any]:
    """runc's own default spec, pointed at ``rootfs`` (the hardened one is spec.py's job)."""
    with tempfile.TemporaryDirectory() as bundle:
        subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
        spec: dict[str, Any] = json.loads((Path(bundle) / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": False}
    spec["process"].update(terminal=False, args=args)
    spec["linux"]["cgroupsPath"] = cgroup
    return spec


class Containers:
    """Makes containers from the busybox image: rootfs, spec, create."""

    def __init__(self, runtime: ConmonRuntime, store: ImageStore, image: Image) -> None:
        self.runtime, self.store, self.image = runtime, store, image

    def create(self, args: list[str], *, start: bool = True) -> str:
        cid = "t" + uuid.uuid4().hex[:11]
        rootfs = self.store.create_rootfs(cid, self.image)
        self.runtime.create(cid, minimal_spec(rootfs, args, f"/skiff-test/{cid}"))
        if start:
            self.runtime.start(cid)
        return cid


@pytest.fixture
def containers(runtime: ConmonRuntime, store: ImageStore, busybox: Image) -> Iterator[Containers]:
    made = Containers(runtime, store, busybox)
    yield made
    for record in store.rootfs.records():
        runtime.remove(record.container_id)
        store.remove_rootfs(record.container_id)


def test_exit_code_and_output_are_recorded(containers: Containers, runtime: ConmonRuntime) -> None:
    """A container's exit code and its stdout and stderr, in order, are kept."""
    cid = containers.create(["sh", "-c", "echo out; echo err >&2; exit 3"])
    status = runtime.wait(cid, 10)
    assert status.state == "exited"
    assert status.exit_code == 3
    assert runtime.logs(cid) == "out\nerr\n"
    assert runtime.logs(cid, tail=1) == "err\n"
    stamped = runtime.logs(cid, timestamps=True).splitlines()
    assert stamped[0].endswith(" out")
    assert stamped[0][:4].isdigit()


def test_command_not_found_fails_create_clearly(
    containers: Containers, runtime: ConmonRuntime
) -> None:
    """A command missing from the image is ContainerCreateFailed naming it, not a hang."""
    with pytest.raises(ContainerCreateFailed, match="no-such-command"):
        containers.create(["no-such-command"], start=False)
    assert runtime._runtime("list").stdout.count("\n") == 1  # only the header: nothing left


def test_container_outlives_the_process_that_created_it(
    containers: Containers, runtime: ConmonRuntime, tmp_path: Path, busybox: Image
) -> None:
    """A container started by a process that then dies keeps running and is adopted later."""
    cid = "adopt" + uuid.uuid4().hex[:6]
    rootfs = containers.store.create_rootfs(cid, busybox)
    # PID 1 ignores SIGTERM unless it handles it: this one does, to show stop's first step.
    loop = "trap 'exit 143' TERM; while true; do sleep 0.1; done"
    spec = minimal_spec(rootfs, ["sh", "-c", loop], f"/skiff-test/{cid}")
    script = (
        "import json, sys; from pathlib import Path;"
        "from skiff.engine.runtime.conmon import ConmonRuntime;"
        "rt = ConmonRuntime(Path(sys.argv[1])); rt.create(sys.argv[2], json.loads(sys.argv[3]));"
        "rt.start(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "root"), cid, json.dumps(spec)],
                   check=True)
    adopted = ConmonRuntime(tmp_path / "root")
    status = adopted.status(cid)
    assert status.state == "running"
    assert status.pid is not None
    os.kill(status.pid, 0)
    final = adopted.stop(cid, grace_s=5)
    assert final.state == "exited"
    assert final.exit_code == 128 + signal.SIGTERM


def test_stop_kills_a_container_that_ignores_sigterm(
    containers: Containers, runtime: ConmonRuntime
) -> None:
    """SIGTERM first; after the grace period, SIGKILL: exit code 137."""
    cid = containers.create(["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"])
    eventually(lambda: runtime.logs(cid) == "ready\n", what="the container to be ready",
               interval_s=0.01)
    start = time.monotonic()
    status = runtime.stop(cid, grace_s=1)
    assert status.exit_code == 137
    assert 1 <= time.monotonic() - start < 8


def test_previous_instance_log_is_kept(containers: Containers, runtime: ConmonRuntime) -> None:
    """After a container is created again, the previous instance's output stays readable."""
    cid = containers.create(["sh", "-c", "echo first"])
    runtime.wait(cid, 10)
    runtime.delete(cid)
    rootfs = containers.store.rootfs.path(cid)
    runtime.create(cid, minimal_spec(rootfs, ["sh", "-c", "echo second"], f"/skiff-test/{cid}"))
    runtime.start(cid)
    runtime.wait(cid, 10)
    assert runtime.logs(cid) == "second\n"
    assert runtime.logs(cid, previous=True) == "first\n"


def test_exec_without_and_with_a_tty(containers: Containers, runtime: ConmonRuntime) -> None:
    """exec streams stdin and output; with a TTY the terminal is handed over and sized."""
    cid = containers.create(["sleep", "300"])
    session = runtime.exec(cid, ["sh", "-c", "read line; echo got:$line; id -u"])
    out, _ = session.process.communicate(b"hello\n", timeout=10)
    assert out == b"got:hello\n0\n"
    tty = runtime.exec(cid, ["sh", "-c", "stty size; tty"], tty=True, terminal_size=(40, 120))
    assert tty.terminal is not None
    terminal = tty.terminal
    output = bytearray()

    def printed() -> bool:
        if select.select([terminal], [], [], 0.1)[0]:
            output.extend(tty.read(4096))
        return b"/dev/pts" in output

    try:
        eventually(printed, what="the terminal's size and name", interval_s=0.01)
    finally:
        tty.close()
    assert b"40 120" in output
    assert b"/dev/pts/" in output


def test_log_rotation_keeps_the_newest_output_within_the_limit(
    tmp_path: Path, store: ImageStore, busybox: Image
) -> None:
    """Output beyond the limit is cut away, oldest first, by conmon between two files;
    the newest lines are kept, with no call from skiff (its watcher lays the links)."""
    runtime = ConmonRuntime(tmp_path / "root", RuntimeSettings(log_max_bytes=64 * 1024))
    made = Containers(runtime, store, busybox)
    try:
        cid = made.create(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; "
                                        "i=$((i+1)); done; echo done"])
        runtime.wait(cid, 30)
        logs = runtime.logs(cid)
        assert logs.endswith("line-2999\ndone\n")
        assert "line-0\n" not in logs
        kept = [int(line[5:]) for line in logs.splitlines()[:-1]]
        assert kept == list(range(kept[0], 3000))  # nothing lost between the two files
        files = [p for p in runtime.dir(cid).glob("ctr.log*") if not p.is_symlink()]
        assert sum(p.stat().st_size for p in files) <= 2 * 64 * 1024
    finally:
        for cid in runtime.list():
            runtime.remove(cid)
            store.remove_rootfs(cid)
        rundir.remove(runtime.run_dir)


def test_remove_leaves_nothing_behind(containers: Containers, runtime: ConmonRuntime) -> None:
    """Removing a running container kills it and its conmon, deletes its cgroup and files."""
    cid = containers.create(["sleep", "300"])
    conmon_pid = runtime._conmon_pid(cid)
    assert conmon_pid is not None
    runtime.remove(cid)
    assert runtime._runtime("state", cid, check=False).returncode != 0
    assert not Path(f"/proc/{conmon_pid}").exists() or _is_zombie(conmon_pid)
    assert not runtime.dir(cid).exists()
    assert not Path(f"/sys/fs/cgroup/memory/skiff-test/{cid}").exists()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_follow_streams_output_as_it_is_written(
    containers: Containers, runtime: ConmonRuntime
) -> None:
    """Attaching yields each line as the container writes it, and ends when it exits."""
    cid = containers.create(["sh", "-c", "for i in 1 2 3; do echo tick-$i; sleep 0.2; done"])
    seen = []
    start = time.monotonic()
    for line in runtime.follow(cid):
        seen.append((line, time.monotonic() - start))
    assert [line for line, _ in seen] == ["tick-1\n", "tick-2\n", "tick-3\n"]
    assert seen[0][1] < seen[2][1] - 0.2  # streamed, not read at the end
