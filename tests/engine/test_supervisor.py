"""Container groups end to end on this node: real images, runc or gVisor, conmon, CNI, volumes.

The engine's conformance suite: every test that makes its groups with the ``group``
fixture runs once per runtime driver, on runc and in a gVisor sandbox (see
tests/engine/conftest.py). What holds for one runtime only is elsewhere: gVisor's
particulars in test_sandbox.py, runc's in test_runtime.py and test_security.py.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from skiff.core.spec import (
    Container,
    EmptyDirVolume,
    EnvVar,
    ExecAction,
    HttpGetAction,
    Port,
    Probe,
    RegistryCredentialSpec,
    Resources,
    RestartPolicy,
    SecretVolume,
    Volume,
    VolumeMount,
)
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.network import firewall
from skiff.engine.runtime import rundir
from skiff.errors import InvalidGroupSpec
from skiff.settings import BackoffSettings
from skiff.testing.catalog import PRIVATE_PASSWORD, PRIVATE_USER, BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import FAST_BACKOFF, GroupMaker, box, group_spec
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root


def test_single_container_group_runs_with_its_name_and_address(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A group runs: Running, an IP, hostname and /etc/hosts naming the group, env merged."""
    spec = group(box(images, "web", "hostname; grep -c $(hostname) /etc/hosts; "
                                    "echo $MODE $PATH; sleep 300",
                     env=(EnvVar("MODE", "demo"),)), name="web-group")
    view = engine.run(spec)
    assert view.state == "Running"
    assert view.ip is not None
    assert view.containers[0].current.state == "Running"
    names = [e.name for e in view.containers[0].events]
    assert names == ["Pulling", "Pulled", "Created", "Started"]
    wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "web").count("\n") >= 3)
    lines = engine.logs(spec.id, "web").splitlines()
    assert lines[0] == "web-group"
    assert lines[1] == "1"
    assert lines[2].startswith("demo /usr/local/sbin")


def test_containers_of_a_group_share_localhost(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Two containers of one group talk over 127.0.0.1 (one netns per group, lo up)."""
    spec = group(box(images, "server", "echo hello-from-server | nc -l -p 8080"),
                 box(images, "client", "until nc 127.0.0.1 8080; do sleep 0.1; done; sleep 300"),
                 restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    wait_view(engine, spec.id, lambda v: "hello-from-server" in engine.logs(spec.id, "client"))


@pytest.mark.parametrize(("code", "state"), [(0, "Succeeded"), (3, "Failed")])
def test_never_policy_ends_succeeded_or_failed(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, code: int, state: str
) -> None:
    """Under Never, a group whose container exits 0 Succeeds, non-zero Fails; no restart."""
    spec = group(box(images, "job", f"exit {code}"), restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.state in ("Succeeded", "Failed"))
    assert view.state == state
    container = view.containers[0]
    assert container.current.state == "Terminated"
    assert container.current.exit_code == code
    assert container.restart_count == 0


def test_on_failure_restarts_with_backoff_and_keeps_previous_logs(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A failing container restarts with backoff, counts restarts, keeps the last instance's log."""
    spec = group(box(images, "flaky", "echo failing; exit 1"),
                 restart_policy=RestartPolicy.ON_FAILURE)
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.containers[0].restart_count >= 3)
    container = view.containers[0]
    assert container.previous is not None
    assert container.previous.exit_code == 1
    assert "BackOff" in [e.name for e in container.events]
    started = next(e for e in container.events if e.name == "Started")
    assert started.count >= 3
    assert engine.logs(spec.id, "flaky", previous=True) == "failing\n"


def test_init_containers_run_in_order_before_the_app(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Init containers run one after another to completion; the app sees what they wrote."""
    mount = (VolumeMount("work", "/work"),)
    spec = group(
        box(images, "app", "cat /work/order; sleep 300", volume_mounts=mount),
        init_containers=(
            box(images, "first", "echo first >> /work/order", volume_mounts=mount),
            box(images, "second", "sleep 0.3; echo second >> /work/order", volume_mounts=mount),
        ),
        volumes=(Volume("work", EmptyDirVolume()),),
    )
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: "second" in engine.logs(spec.id, "app"))
    assert engine.logs(spec.id, "app") == "first\nsecond\n"
    assert [c.current.exit_code for c in view.init_containers] == [0, 0]
    assert view.state == "Running"


def test_failing_init_container_fails_the_group_under_never(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """An init container that fails under Never fails the group; the app never starts."""
    spec = group(box(images, "app", "sleep 300"),
                 init_containers=(box(images, "setup", "exit 7"),),
                 restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.state == "Failed")
    assert view.init_containers[0].current.exit_code == 7
    assert view.containers[0].current.state == "Waiting"
    assert "Started" not in [e.name for e in view.containers[0].events]


def test_missing_image_fails_the_group_clearly(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """An image the registry lacks fails the group at once with a Failed event naming it."""
    missing = f"{images.public.host}/test/absent:1"
    spec = group(Container(name="c", image=missing))
    view = engine.run(spec)
    assert view.state == "Failed"
    failed = [e for e in view.containers[0].events if e.name == "Failed"]
    assert failed
    assert missing in failed[0].message


def test_command_not_found_ends_as_a_clear_failure(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A command missing from the image terminates the container with the runtime's reason."""
    spec = group(Container(name="c", image=images.bb, command=("no-such-binary",)),
                 restart_policy=RestartPolicy.NEVER)
    view = engine.run(spec)
    assert view.state == "Failed"
    assert view.containers[0].current.state == "Terminated"
    assert "no-such-binary" in view.containers[0].current.detail_status


@pytest.mark.parametrize("mounts", [
    (VolumeMount("nowhere", "/data"),),
    (VolumeMount("v", "/data"), VolumeMount("v", "/data/")),
])
def test_bad_mounts_are_refused_before_anything_is_created(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, mounts: tuple[VolumeMount, ...]
) -> None:
    """A mount naming no volume, or two mounts on one path, is refused up front."""
    spec = group(box(images, "c", "true", volume_mounts=mounts),
                 volumes=(Volume("v", EmptyDirVolume()),))
    with pytest.raises(InvalidGroupSpec):
        engine.run(spec)
    assert engine.group_ids() == []
    assert engine.networks.list() == []


def test_unknown_isolation_is_refused(engine: Supervisor, images: BuiltImages) -> None:
    """An isolation no runtime driver runs is refused before anything is made (no runtime
    is involved: it runs once)."""
    spec = group_spec(box(images, "c", "true"), isolation="vm")
    with pytest.raises(InvalidGroupSpec, match="container or sandbox"):
        engine.run(spec)
    assert engine.group_ids() == []
    assert engine.networks.list() == []


def test_stop_and_start(engine: Supervisor, images: BuiltImages, group: GroupMaker) -> None:
    """Stop kills the containers and keeps the group; start runs it again."""
    spec = group(box(images, "c", "echo up; sleep 300"))
    engine.run(spec)
    stopped = engine.stop(spec.id)
    assert stopped.state == "Stopped"
    assert stopped.containers[0].current.state == "Terminated"
    assert engine.networks.get(spec.id) is None
    started = engine.start(spec.id)
    assert started.state == "Running"
    assert started.containers[0].current.state == "Running"


def test_running_group_is_adopted_by_a_new_supervisor(
    engine: Supervisor, images: BuiltImages, group: GroupMaker, tmp_path: Path
) -> None:
    """After skiff restarts, running the same spec adopts its containers: no restart."""
    spec = group(box(images, "c", "sleep 300"))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        first.run(spec)
        cid = first.view(spec.id).containers[0].cid
        pid = first.runtime.status(cid).pid
    finally:
        first.close()  # skiff goes away; conmon keeps the container
    view = engine.run(spec)  # the next skiff
    assert view.state == "Running"
    assert engine.runtime.status(cid).pid == pid
    assert view.containers[0].restart_count == 0
    assert [e.name for e in view.containers[0].events].count("Started") == 1


def test_delete_leaves_nothing_behind(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Deleting a group removes rootfs mounts, netns, veth, lease, cgroups, conmon and logs."""
    secret = SecretVolume(files=(("token", base64.b64encode(b"s3cret").decode()),))
    spec = group(box(images, "c", "sleep 300",
                     volume_mounts=(VolumeMount("s", "/secret", read_only=True),)),
                 volumes=(Volume("s", secret),))
    view = engine.run(spec)
    cid = view.containers[0].cid
    conmon = engine.runtime._conmon_pid(cid)
    assert conmon is not None
    ip = view.ip
    attachment = engine.networks.get(spec.id)
    assert attachment is not None
    engine.delete(spec.id)
    engine.networks.settle()  # the CNI DEL finishes in the background
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(engine.settings.data_root) not in mounts
    assert not attachment.netns_path.exists()
    assert not Path(f"/proc/{conmon}/cmdline").exists() or b"conmon" not in Path(
        f"/proc/{conmon}/cmdline").read_bytes()
    assert not engine.runtime.dir(cid).exists()
    node_cgroup = Path("/sys/fs/cgroup/memory") / engine.runtime.run_dir.name
    assert not list(node_cgroup.glob("*/*"))  # neither the group's cgroup nor the container's
    leases = engine.settings.data_root / "network"
    assert not [p for p in leases.rglob("*") if p.is_file() and p.read_text(errors="ignore")
                .strip() == spec.id]
    assert ip is not None
    assert ip not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert engine.group_ids() == []


def test_oom_kill_is_reported(engine: Supervisor, images: BuiltImages, group: GroupMaker) -> None:
    """A container over its memory limit is killed: Terminated 137 and an OOMKilled event."""
    hog = Container(name="hog", image=images.bb,
                    command=("sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1"),
                    resources=Resources(cpu=0.5, memory_gb=0.05))
    spec = group(hog, restart_policy=RestartPolicy.NEVER)
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.state == "Failed")
    container = view.containers[0]
    assert container.current.exit_code == 137
    assert container.current.detail_status == "OOMKilled"
    assert "OOMKilled" in [e.name for e in container.events]


def test_failing_liveness_probe_restarts_the_container(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A liveness probe that fails its threshold kills the container; the policy restarts it."""
    probe = Probe(ExecAction(("test", "-f", "/tmp/healthy")), period_s=0.2, failure_threshold=2,
                  timeout_s=2)
    spec = group(box(images, "c", "sleep 300", liveness=probe))
    engine.run(spec)
    view = wait_view(engine, spec.id, lambda v: v.containers[0].restart_count >= 1)
    names = [e.name for e in view.containers[0].events]
    assert "Unhealthy" in names
    assert "Killing" in names


def test_exec_in_a_running_container(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """exec runs a command in the group's container and streams its output."""
    spec = group(box(images, "c", "sleep 300"), name="exec-grp")
    engine.run(spec)
    session = engine.exec(spec.id, "c", ["hostname"])
    out, _ = session.process.communicate(timeout=10)
    assert out == b"exec-grp\n"


def test_cached_private_image_never_runs_for_a_group_without_credentials(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A private image cached by one group is refused to a group without credentials:
    its container is created while the registry check runs, but never started."""
    creds = (RegistryCredentialSpec(images.private.host, PRIVATE_USER, PRIVATE_PASSWORD),)
    allowed = group(Container(name="c", image=images.private_bb, command=("sleep", "300")),
                    credentials=creds)
    assert engine.run(allowed).state == "Running"
    refused = group(Container(name="c", image=images.private_bb,
                              command=("sh", "-c", "echo leaked; sleep 300")))
    view = engine.run(refused)
    assert view.state == "Failed"
    assert "Started" not in [e.name for e in view.containers[0].events]
    assert engine.logs(refused.id, "c") == ""
    assert engine.runtime.status(view.containers[0].cid).state != "running"


def test_http_readiness_probe_marks_the_container_ready(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """An httpGet readiness probe passes once the container serves on its port, an
    undeclared one that the node itself (this process) cannot reach."""
    probe = Probe(HttpGetAction(port=8080, path="/"), period_s=0.2, timeout_s=2)
    web = box(images, "web", "sleep 0.5; mkdir /www; echo hi > /www/index.html; "
                             "httpd -f -p 8080 -h /www", readiness=probe)
    spec = group(web)
    assert spec.ip_ports == ()
    view = engine.run(spec)
    assert view.containers[0].ready is False
    wait_view(engine, spec.id, lambda v: v.containers[0].ready)
    assert view.ip is not None
    with pytest.raises(TimeoutError):  # dropped, not refused
        socket.create_connection((view.ip, 8080), timeout=1)


def test_secure_environment_values_stay_out_of_readable_files(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A secureValue reaches the container but no file on the data root: the files that hold
    it (the bundle, runsc's state) are on the run directory's tmpfs, which only root may
    enter."""
    secret = "sv-" + uuid.uuid4().hex
    spec = group(box(images, "c", "echo ${TOKEN:0:3}; sleep 300",
                     env=(EnvVar("TOKEN", secret, secure=True),)))
    engine.run(spec)
    wait_view(engine, spec.id, lambda v: engine.logs(spec.id, "c") == "sv-\n")
    on_disk = subprocess.run(["grep", "-rlF", secret, str(engine.settings.data_root)],
                             capture_output=True, text=True).stdout.split()
    assert on_disk == []
    found = subprocess.run(["grep", "-rlF", secret, str(engine.runtime.run_dir)],
                           capture_output=True, text=True).stdout.split()
    assert found
    assert rundir.on_tmpfs(engine.runtime.run_dir)
    assert engine.runtime.run_dir.stat().st_mode & 0o077 == 0


def test_changed_definition_redeploys_the_group(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Running a group again with another definition replaces its containers."""
    first = group(box(images, "c", "echo one; sleep 300"))
    engine.run(first)
    wait_view(engine, first.id, lambda v: engine.logs(first.id, "c") == "one\n")
    second = group(box(images, "c", "echo two; sleep 300"), id=first.id, name=first.name)
    view = engine.run(second)
    assert view.state == "Running"
    wait_view(engine, first.id, lambda v: engine.logs(first.id, "c") == "two\n")
    assert engine.logs(first.id, "c", previous=True) == "one\n"
    assert engine.run(second).containers[0].current.start_time == view.containers[0] \
        .current.start_time  # the same definition again changes nothing


def test_restart_pending_when_skiff_stopped_happens_after_it_returns(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A container waiting out its backoff when skiff went away restarts once skiff is back."""
    spec = group(box(images, "c", "exit 1"), restart_policy=RestartPolicy.ALWAYS)
    slow = BackoffSettings(initial_s=3600, factor=2, max_s=3600, reset_after_s=600)
    first = Supervisor(engine.settings, networks=engine.networks, backoff=slow,
                       monitor_interval_s=0.05)
    try:
        first.run(spec)
        wait_view(first, spec.id, lambda v: v.containers[0].restart_count >= 2)
    finally:
        first.close()
    before = engine.run(spec).containers[0].restart_count
    view = wait_view(engine, spec.id, lambda v: v.containers[0].restart_count > before)
    assert view.state == "Running"


def test_group_deleted_after_a_restart_before_it_ran_again_leaves_nothing(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """Deleting a group that a previous skiff ran (and this one never did) still kills it."""
    spec = group(box(images, "c", "sleep 300"))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        cid = first.run(spec).containers[0].cid
    finally:
        first.close()
    assert engine.runtime.status(cid).state == "running"
    assert engine.view(spec.id).containers[0].cid == cid  # known from its state on disk
    engine.delete(spec.id)
    assert engine.runtime.status(cid).state == "missing"
    assert engine.networks.get(spec.id) is None
    assert engine.group_ids() == []
    node_cgroup = Path("/sys/fs/cgroup/memory") / engine.runtime.run_dir.name
    assert not list(node_cgroup.glob("*/*"))  # nothing of its runtime (a sandbox) is left


def test_group_stopped_before_a_restart_starts_with_its_definition(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """A group a previous skiff stopped starts again when given its definition."""
    spec = group(box(images, "c", "echo up; sleep 300"))
    first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
    try:
        first.run(spec)
        first.stop(spec.id)
    finally:
        first.close()
    assert engine.view(spec.id).state == "Stopped"
    view = engine.start(spec.id, spec)
    assert view.state == "Running"
    assert view.containers[0].current.state == "Running"


def test_only_the_ip_address_ports_are_reachable_and_adoption_restores_the_filter(
    engine: Supervisor, images: BuiltImages, group: GroupMaker
) -> None:
    """ipAddress.ports are reachable from another namespace on the bridge, other ports
    are not; the host is guarded; a new supervisor re-applies a lost filter."""
    web = box(images, "web", "mkdir /www; echo hi > /www/index.html; "
                             "httpd -p 8080 -h /www; httpd -f -p 8081 -h /www")
    spec = group(web, ip_ports=(Port(8080),))
    other = engine.networks.setup("outsider", "outsider")
    try:
        def fetch(ip: str, port: int) -> int:
            return subprocess.run(
                ["nsenter", f"--net={other.netns_path}", "timeout", "3", "busybox", "wget",
                 "-q", "-O-", f"http://{ip}:{port}/"],
                capture_output=True, timeout=10, check=False).returncode

        def rules(netns: Path) -> str:
            return subprocess.run(["nsenter", f"--net={netns}", "nft", "list", "ruleset"],
                                  capture_output=True, check=True, text=True).stdout

        first = Supervisor(engine.settings, networks=engine.networks, backoff=FAST_BACKOFF)
        try:
            ip = first.run(spec).ip
            assert ip is not None
            attachment = engine.networks.get(spec.id)
            assert attachment is not None
            assert "tcp dport 8080 accept" in rules(attachment.netns_path)
            assert firewall.host_guard_installed(engine.networks.bridge)
            eventually(lambda: fetch(ip, 8080) == 0, what="the declared port to answer",
                       interval_s=0.1)
            assert fetch(ip, 8081) != 0
            subprocess.run(["nsenter", f"--net={attachment.netns_path}", "nft", "delete",
                            "table", "inet", "skiff"], check=True)
            # The test tells a filtered port from an open one (the second httpd starts
            # after the first).
            eventually(lambda: fetch(ip, 8081) == 0, what="port 8081 to answer unfiltered",
                       interval_s=0.1)
        finally:
            first.close()  # skiff goes away; conmon keeps the container
            view = engine.run(spec)  # the next skiff adopts it (and the fixture deletes it)
        assert view.state == "Running"
        assert "tcp dport 8080 accept" in rules(attachment.netns_path)
        assert fetch(ip, 8081) != 0
        assert fetch(ip, 8080) == 0
    finally:
        engine.networks.teardown("outsider")
