"""Attacks from inside a container, on both runtimes: each one fails, and the host and
the other groups stay healthy.

Every test runs twice, once with the group under runc (``isolation="container"``) and
once in a gVisor sandbox (``isolation="sandbox"``): its groups come from the engine
tests' ``group`` fixture (tests/engine/conftest.py). Each plays the attacker from inside
a container: looking for the host's processes, mounting, writing the host's sysctls,
loading kernel modules, reaching the host's services, escaping through symlinks and
/proc, fork-bombing and eating memory. Each asserts what the attacker got (nothing)
*and* what the host observes afterwards (unchanged), and includes a control that shows
the attempt itself ran, so that a broken script cannot pass for a blocked attack.

Traffic goes only to loopback and to the test's own bridge; the fixture deletes every
group, sandbox, namespace, bridge and cgroup, pass or fail.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import (
    Container,
    EmptyDirVolume,
    GroupSpec,
    Resources,
    RestartPolicy,
    Volume,
    VolumeMount,
)
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.spec import options as oci
from skiff.engine.spec.container import PIDS_LIMIT
from skiff.testing.catalog import BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import GroupMaker, box
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: CAP_SYS_MODULE's bit in /proc/<pid>/status's capability masks.
_CAP_SYS_MODULE = 16
#: clone(2)'s and unshare(2)'s flag for a new user namespace.
_CLONE_NEWUSER = 0x10000000


@pytest.fixture
def planted() -> Iterator[tuple[Path, str]]:
    """A host directory under /tmp holding ``secret``, a random value no container may read."""
    directory = Path(tempfile.mkdtemp(prefix="skiff-attack-"))
    secret = "host-secret-" + uuid.uuid4().hex
    (directory / "secret").write_text(secret + "\n")
    try:
        yield directory, secret
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def attack(engine: Supervisor, group_id: str, container: str, script: str,
           timeout_s: float = 60) -> tuple[int, str]:
    """Run ``script`` in the container (exec, as its own processes run); its exit code
    and its stdout and stderr together."""
    session = engine.exec(group_id, container, ["sh", "-c", f"exec 2>&1; {script}"])
    try:
        out, _ = session.process.communicate(timeout=timeout_s)
    finally:
        if session.process.poll() is None:
            session.process.kill()
            session.process.wait()
    return session.process.returncode, out.decode(errors="replace")


def running(engine: Supervisor, group: GroupMaker, *containers: Container,
            **fields: object) -> GroupSpec:
    """A group of ``containers`` on the test's runtime, running."""
    spec = group(*containers, **fields)
    view = engine.run(spec)
    assert view.state == "Running", view
    return spec


def pids_cgroup(engine: Supervisor, group: GroupMaker, group_id: str, container: str) -> Path:
    """The pids cgroup directory that holds the container's limits, as its runtime driver
    says: the container's own under runc, the sandbox's (gVisor's kernel) under runsc
    (cgroup v1, or v2's unified tree)."""
    cid = next(c.cid for c in engine.view(group_id).containers if c.name == container)
    path = engine.drivers[group.isolation].limits_cgroup(group_id, cid).lstrip("/")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path("/sys/fs/cgroup") / path
    return Path("/sys/fs/cgroup/pids") / path


# ---- 1. the host's processes ----------------------------------------------------------------


def test_host_processes_are_out_of_sight(engine: Supervisor, images: BuiltImages,
                                         group: GroupMaker) -> None:
    """ps and /proc in a container show its own processes only: neither this test's
    process nor a marker process the test runs on the host."""
    token = "skiff-marker-" + uuid.uuid4().hex
    marker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", token])
    try:
        spec = running(engine, group, box(images, "c", "sleep 300"))
        code, out = attack(engine, spec.id, "c",
                           "ps -o pid,args; for f in /proc/[0-9]*/cmdline; "
                           "do tr '\\0' ' ' < $f; echo; done; ls /proc")
        assert code == 0, out
        assert "sleep 300" in out  # the listing works: the container's own process is there
        assert token not in out
        for host_word in ("pytest", "conmon", "runsc", "python"):
            assert host_word not in out, out
        pids = {int(p) for p in re.findall(r"^\s*(\d+)\s", out, re.M)}
        assert os.getpid() not in pids
        assert marker.pid not in pids
        assert marker.poll() is None  # the marker was alive all along
    finally:
        marker.kill()
        marker.wait()


# ---- 2. mounts and the host's sysctls -------------------------------------------------------


def _host_sysctls() -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text()
            for name in ("kernel/core_pattern", "vm/swappiness", "kernel/hostname")}


def test_mounting_and_writing_host_sysctls_fail(engine: Supervisor, images: BuiltImages,
                                                group: GroupMaker) -> None:
    """A container's root can neither mount (tmpfs, /proc/sys remounted rw, in a new
    mount or user namespace: under runc it may not even make the latter) nor write the
    host's sysctls nor read the host's disk; the host's values stay."""
    before = _host_sysctls()
    disk = os.stat("/").st_dev
    spec = running(engine, group, box(images, "c", "sleep 300"))
    _, out = attack(engine, spec.id, "c", f"""
        id -u
        grep -E '^Cap(Eff|Bnd)' /proc/self/status
        mkdir -p /mnt
        mount -t tmpfs x /mnt && echo BREACH-mounted
        mount -o remount,rw /proc/sys && echo BREACH-remounted
        unshare -m sh -c 'mount -t tmpfs x /mnt' && echo BREACH-unshared
        unshare -Urm sh -c 'mount -t tmpfs x /mnt && echo BREACH-userns-mount'
        unshare -U true && echo userns-made
        echo '|/bin/sh -c reboot' > /proc/sys/kernel/core_pattern && echo BREACH-core-pattern
        echo 17 > /proc/sys/vm/swappiness && echo BREACH-swappiness
        sysctl -w vm.swappiness=18 && echo BREACH-sysctl
        echo b > /proc/sysrq-trigger && echo BREACH-sysrq
        mknod /tmp/disk b {os.major(disk)} {os.minor(disk)}
        head -c 512 /tmp/disk > /tmp/read && echo BREACH-disk
        echo attempted
    """)
    assert "attempted" in out
    assert "BREACH" not in out, out
    if group.isolation == "container":  # in gVisor, a user namespace is its own kernel's
        assert "userns-made" not in out, out
    assert _host_sysctls() == before


def test_default_filter_refuses_new_user_namespaces_unless_sys_admin() -> None:
    """The default seccomp filter lets clone and unshare through without CLONE_NEWUSER
    only (EPERM with it) and refuses clone3 (ENOSYS: libcs fall back to clone);
    with CAP_SYS_ADMIN, containers-common's rules stay as they are."""
    def rules(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
        return [r for r in spec["linux"]["seccomp"]["syscalls"] if name in r["names"]]

    plain = oci.default_spec(arch="amd64")
    for name in ("clone", "unshare"):
        found = rules(plain, name)
        assert sorted((r["action"], r.get("errnoRet"), r["args"][0]["valueTwo"])
                      for r in found) == [("SCMP_ACT_ALLOW", None, 0),
                                          ("SCMP_ACT_ERRNO", errno.EPERM, _CLONE_NEWUSER)]
        assert all(r["args"] == [{"index": 0, "value": _CLONE_NEWUSER, "op":
                                  "SCMP_CMP_MASKED_EQ", "valueTwo": r["args"][0]["valueTwo"]}]
                   for r in found)
    assert rules(plain, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                                       "errnoRet": errno.ENOSYS}]
    admin = oci.default_spec(arch="amd64", cap_add=["SYS_ADMIN"])
    for name in ("clone", "clone3", "unshare"):
        assert [(r["action"], r.get("args")) for r in rules(admin, name)] == [
            ("SCMP_ACT_ALLOW", None)]


# ---- 3. kernel modules ----------------------------------------------------------------------


def _host_modules() -> str | None:
    with contextlib.suppress(FileNotFoundError):
        return Path("/proc/modules").read_text()
    return None


def test_loading_a_kernel_module_fails(engine: Supervisor, images: BuiltImages,
                                       group: GroupMaker) -> None:
    """insmod and modprobe fail in a container, which holds no CAP_SYS_MODULE; the
    host's module list stays as it was."""
    before = _host_modules()
    spec = running(engine, group, box(images, "c", "sleep 300"))
    _, out = attack(engine, spec.id, "c", """
        grep -E '^Cap(Eff|Bnd)' /proc/self/status
        head -c 4096 /dev/zero > /tmp/evil.ko
        insmod /tmp/evil.ko && echo BREACH-insmod
        mkdir -p /lib/modules/$(uname -r) && cp /tmp/evil.ko /lib/modules/$(uname -r)/evil.ko
        echo 'evil.ko:' > /lib/modules/$(uname -r)/modules.dep
        modprobe evil && echo BREACH-modprobe
        echo attempted
    """)
    assert "attempted" in out
    assert "BREACH" not in out, out
    caps = dict(re.findall(r"^(Cap\w+):\s*([0-9a-f]+)$", out, re.M))
    assert set(caps) == {"CapEff", "CapBnd"}, out
    for mask in caps.values():
        assert not int(mask, 16) >> _CAP_SYS_MODULE & 1, out
    assert _host_modules() == before


# ---- 4. the host's services -----------------------------------------------------------------


class _Server:
    """A TCP server on the host that greets every connection with ``greeting``."""

    def __init__(self, address: str, greeting: bytes) -> None:
        self.sock = socket.create_server((address, 0))
        self.sock.settimeout(0.1)
        self.address, self.port = self.sock.getsockname()[:2]
        self.greeting = greeting
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.peers.append(peer[0])
                with contextlib.suppress(OSError):
                    conn.sendall(self.greeting)

    def ask(self) -> bytes:
        """What a client on the host gets from the server."""
        with socket.create_connection((self.address, self.port), timeout=5) as conn:
            conn.settimeout(5)
            return conn.recv(100)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextlib.contextmanager
def host_server(address: str, greeting: bytes) -> Iterator[_Server]:
    server = _Server(address, greeting)
    try:
        yield server
    finally:
        server.close()


def test_host_loopback_and_gateway_services_are_unreachable(
        engine: Supervisor, images: BuiltImages, group: GroupMaker) -> None:
    """A server on the host's 127.0.0.1, and one on the group's gateway address, cannot
    be reached from a container (its 127.0.0.1 is its own; the host's guard drops the
    gateway), while both answer on the host."""
    spec = running(engine, group, box(images, "c", "sleep 300"))
    attachment = engine.networks.get(spec.id)
    assert attachment is not None
    greeting = b"host-service-" + uuid.uuid4().hex.encode()
    with host_server("127.0.0.1", greeting) as local, \
            host_server(attachment.gateway, greeting) as gateway:
        _, out = attack(engine, spec.id, "c", f"""
            timeout 3 nc 127.0.0.1 {local.port} </dev/null; echo "loopback: $?"
            timeout 3 nc {gateway.address} {gateway.port} </dev/null; echo "gateway: $?"
            (echo own-service | nc -l -p {local.port}) &
            for i in $(seq 50); do
                own=$(timeout 2 nc 127.0.0.1 {local.port} </dev/null) && [ -n "$own" ] && break
                usleep 100000
            done
            echo "own: $own"
        """)
        assert "own: own-service" in out  # the container's loopback is its own, and works
        assert greeting.decode() not in out
        codes = dict(re.findall(r"^(loopback|gateway): (\d+)$", out, re.M))
        assert set(codes) == {"loopback", "gateway"}, out
        assert "0" not in codes.values(), out  # refused (1) and dropped (143: timed out) here
        assert local.peers == []
        assert gateway.peers == []
        assert local.ask() == greeting  # the servers serve the host meanwhile
        assert gateway.ask() == greeting


# ---- 5. escapes through symlinks and /proc --------------------------------------------------


def test_symlinks_in_volumes_and_proc_roots_stay_inside(
        engine: Supervisor, images: BuiltImages, group: GroupMaker,
        planted: tuple[Path, str]) -> None:
    """Symlinks one container plants in a shared emptyDir (to /, up with ../.., to the
    host's path) and /proc/<pid>/root lead another container only into its own root:
    the secret the test planted on the host is never read, a read-only bind of a host
    file stays unwritten, and deleting the group follows none of the links."""
    directory, secret = planted
    shared = (VolumeMount("shared", "/shared"),)
    writer = box(images, "writer", f"""
        ln -s / /shared/root
        ln -s ../../../../../../../../.. /shared/up
        ln -s {directory} /shared/host
        ln -s {directory}/secret /shared/secret
        touch /shared/ready
        sleep 300""", volume_mounts=shared)
    reader = box(images, "reader", "sleep 300", volume_mounts=shared)
    spec = running(engine, group, writer, reader,
                   volumes=(Volume("shared", EmptyDirVolume()),))
    attachment = engine.networks.get(spec.id)
    assert attachment is not None
    resolv = attachment.resolv_conf.read_text()
    _, out = attack(engine, spec.id, "reader", f"""
        until [ -e /shared/ready ]; do usleep 50000; done
        ls -l /shared
        for path in /shared/root{directory}/secret /shared/up{directory}/secret \\
                /shared/host/secret /shared/secret /proc/self/root{directory}/secret \\
                /proc/1/root{directory}/secret {directory}/secret \\
                /proc/1/cwd/../../../../..{directory}/secret; do
            cat "$path"
        done
        ls /proc/*/root{directory}
        echo 'nameserver 203.0.113.1' >> /etc/resolv.conf && echo BREACH-resolv
        echo attempted
    """)
    assert "attempted" in out
    assert "root -> /" in out  # the links are there
    assert f"host -> {directory}" in out
    assert secret not in out
    assert "BREACH" not in out, out
    assert attachment.resolv_conf.read_text() == resolv
    engine.delete(spec.id)
    assert (directory / "secret").read_text() == secret + "\n"


# ---- 6. fork bombs --------------------------------------------------------------------------


def _responsive(engine: Supervisor, group_id: str, container: str) -> float:
    """Seconds an exec in ``container`` takes to answer (it must answer)."""
    started = time.monotonic()
    code, out = attack(engine, group_id, container, "echo alive", timeout_s=30)
    assert (code, out) == (0, "alive\n")
    return time.monotonic() - started


def test_fork_bomb_hits_the_pids_limit_and_harms_no_one_else(
        engine: Supervisor, images: BuiltImages, group: GroupMaker) -> None:
    """A fork bomb fills its pids limit (4096 under runc; under runsc, the sandbox's),
    while the host and another group keep answering; the bomb's group then deletes
    cleanly, leaving no process behind."""
    bystander = running(engine, group, box(images, "calm", "sleep 300"))
    bomb = Container(name="bomb", image=images.bb,
                     command=("sh", "-c", "f() { f | f & }; f; exec sleep 300"),
                     resources=Resources(cpu=0.5, memory_gb=1))
    spec = running(engine, group, bomb)
    pids = pids_cgroup(engine, group, spec.id, "bomb")

    def limit_hit() -> bool:
        events = (pids / "pids.events").read_text()
        return int(events.split()[-1]) > 0

    eventually(limit_hit, what="the fork bomb to hit its pids limit", timeout_s=60,
               interval_s=0.1)
    assert int((pids / "pids.max").read_text()) == PIDS_LIMIT
    started = time.monotonic()
    subprocess.run(["true"], check=True, timeout=10)
    assert time.monotonic() - started < 2, "the host is slow to start a process"
    assert _responsive(engine, bystander.id, "calm") < 5  # ≈ 50 ms here, bomb or not
    assert engine.view(bystander.id).containers[0].restart_count == 0
    engine.delete(spec.id)
    assert spec.id not in engine.group_ids()
    assert not pids.exists() or int((pids / "pids.current").read_text()) == 0
    assert engine.view(bystander.id).state == "Running"


# ---- 7. memory ------------------------------------------------------------------------------


def test_memory_hog_is_oom_killed_and_harms_no_one_else(
        engine: Supervisor, images: BuiltImages, group: GroupMaker) -> None:
    """A container allocating beyond its limit is OOM-killed (137, OOMKilled) while
    another group runs on, untouched and answering."""
    bystander = running(engine, group, box(images, "calm", "sleep 300"))
    hog = Container(name="hog", image=images.bb,
                    command=("sh", "-c", "dd if=/dev/zero of=/dev/null bs=300M count=1"),
                    resources=Resources(cpu=0.5, memory_gb=0.1))
    spec = group(hog, restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.state == "Failed", timeout_s=60)
    current = view.containers[0].current
    assert (current.exit_code, current.detail_status) == (137, "OOMKilled"), view
    calm = engine.view(bystander.id)
    assert calm.state == "Running"
    assert calm.containers[0].restart_count == 0
    _responsive(engine, bystander.id, "calm")
