"""One suite, every engine: what the control plane may rely on of an :class:`Engine`.

As containerd runs one suite against every snapshotter, these cases run against
each implementation of :class:`skiff.core.engine.Engine`: ``fake`` (the
in-memory :class:`~skiff.testing.fake.FakeEngine`, always) and ``local`` (the
node's :class:`~skiff.engine.group.supervisor.Supervisor` with runc, conmon and
CNI; root and a registry, as CI has). A fake that passes here is a fake the
control plane's unit tests may trust; a new backend starts by passing here.

``kube`` (:class:`~skiff.kube.engine.KubeEngine`) runs them too where
``SKIFF_TEST_KUBECONFIG`` names a kubeconfig of a real cluster (its context:
``SKIFF_TEST_KUBE_CONTEXT``; the image: ``SKIFF_TEST_KUBE_IMAGE``, a busybox the cluster
can pull), minus the cases marked ``node_only``: what only a node has (its image cache,
the events and timings of its own supervisor, addresses from a subnet's range, usage
counters without metrics-server). Without it the ``kube`` cases are skipped, with the
reason in the summary (``-ra``).

The containers' commands are scripts both understand (:mod:`skiff.testing.scripts`).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from skiff.core.engine import Engine
from skiff.core.metrics import GroupPhase, GroupSample
from skiff.core.spec import (
    Container,
    GroupSpec,
    Port,
    Resources,
    RestartPolicy,
    SubnetPlacement,
)
from skiff.core.view import GroupView
from skiff.engine.group.supervisor import Supervisor
from skiff.errors import GroupNotFound, InvalidInput
from skiff.settings import RuntimeSettings, Settings
from skiff.testing.fake import FakeEngine
from skiff.testing.groups import FAST_BACKOFF, fast_supervising
from skiff.testing.waiting import eventually

#: A virtual network for the cases that place a group in one: a range no other test uses.
VNET = "/subscriptions/conformance/resourcegroups/rg/providers/microsoft.network/" \
       "virtualnetworks/net"
PLACEMENT = SubnetPlacement(vnet=VNET, subnet=f"{VNET}/subnets/default",
                            prefix="10.213.1.0/24")


@dataclass
class Node:
    """An engine under test, the image its containers run, and what its node keeps of a
    group (nothing, for the fake)."""

    engine: Engine
    image: str
    traces: Callable[[GroupView], list[Path]] = field(default=lambda view: [])


def _local_traces(supervisor: Supervisor) -> Callable[[GroupView], list[Path]]:
    """The paths on the host that show a group exists: its network namespace, its
    containers' processes and cgroups, its runtime directories."""

    def traces(view: GroupView) -> list[Path]:
        attachment = supervisor.networks.get(view.group_id)
        assert attachment is not None  # else the check after the deletion proves nothing
        found = [Path(attachment.netns_path)]
        for container in view.all_containers():
            status = supervisor.runtime.status(container.cid)
            assert status.pid
            found += [Path(f"/proc/{status.pid}"), supervisor.runtime.dir(container.cid)]
        node_cgroup = Path("/sys/fs/cgroup/memory") / supervisor.runtime.run_dir.name
        found.extend(p for p in node_cgroup.glob("*/*") if p.is_dir())
        return found

    return traces


#: The kubeconfig of a real cluster the ``kube`` cases run against (none: skipped).
KUBECONFIG_ENV = "SKIFF_TEST_KUBECONFIG"


@pytest.fixture(params=["fake", pytest.param("local", marks=pytest.mark.root), "kube"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    """Each engine in turn, fresh; everything it made goes after."""
    if request.param == "kube":
        yield from _kube_node(request)
        return
    if request.param == "fake":
        fake = FakeEngine(backoff=FAST_BACKOFF)
        yield Node(fake, "registry.test/busybox:1")
        fake.close()
        return
    if os.geteuid() != 0:
        pytest.skip("the local engine needs root (run as root, as CI does)")
    images = request.getfixturevalue("images")
    # A short grace: the test containers are shells, which ignore SIGTERM as PID 1.
    settings = Settings(data_root=tmp_path / "root", runtime=RuntimeSettings(stop_grace_s=1))
    with fast_supervising(settings, allow=images.endpoints) as supervisor:
        yield Node(supervisor, images.bb, _local_traces(supervisor))


def _kube_node(request: pytest.FixtureRequest) -> Iterator[Node]:
    """A KubeEngine on the cluster of ``$SKIFF_TEST_KUBECONFIG``, in namespaces of its own
    (``skiff-conformance-...``); the groups it made are deleted after."""
    if request.node.get_closest_marker("node_only") is not None:
        pytest.skip("node-only: a check of what only the local node has")
    kubeconfig = os.environ.get(KUBECONFIG_ENV)
    if not kubeconfig:
        pytest.skip(f"no Kubernetes cluster: set {KUBECONFIG_ENV} to a kubeconfig to run the "
                    "conformance suite against the kubernetes backend")
    from skiff.kube.engine import KubeEngine, KubeSettings

    settings = KubeSettings(kubeconfig=Path(kubeconfig),
                            context=os.environ.get("SKIFF_TEST_KUBE_CONTEXT"),
                            namespace_prefix="skiff-conformance", start_timeout_s=120)
    engine = KubeEngine(settings)
    try:
        yield Node(engine, os.environ.get("SKIFF_TEST_KUBE_IMAGE",
                                          "docker.io/library/busybox:1.36"))
    finally:
        engine.sweep(set())
        engine.close()


def group(node: Node, script: str = "sleep 300", *,
          policy: RestartPolicy = RestartPolicy.ALWAYS, **fields: object) -> GroupSpec:
    """A group of one container ``c`` running ``script``."""
    container = Container(name="c", image=node.image, command=("sh", "-c", script),
                          resources=Resources(cpu=0.25, memory_gb=0.25))
    return GroupSpec(id=uuid.uuid4().hex, name="grp-" + uuid.uuid4().hex[:6],
                     containers=(container,), restart_policy=policy,
                     **fields)  # type: ignore[arg-type]


def wait_view(node: Node, spec: GroupSpec, condition: Callable[[GroupView], bool],
              what: str, timeout_s: float = 20) -> GroupView:
    def check() -> GroupView | None:
        view = node.engine.view(spec.id)
        return view if condition(view) else None

    found = eventually(check, what=what, timeout_s=timeout_s)
    assert found is not None
    return found


def started(view: GroupView) -> float | None:
    return view.containers[0].current.start_time


@pytest.mark.node_only
def test_a_group_runs_and_is_viewed(node: Node) -> None:
    """run() returns once the container started: Running, an address, the lifecycle's
    events; view() and group_ids() show it; the image is then cached."""
    spec = group(node)
    view = node.engine.run(spec)
    assert (view.group_id, view.name, view.state) == (spec.id, spec.name, "Running")
    assert view.ip is not None
    assert view.failure is None
    container = view.containers[0]
    assert container.current.state == "Running"
    assert [e.name for e in container.events] == ["Pulling", "Pulled", "Created", "Started"]
    assert node.engine.view(spec.id).state == "Running"
    assert spec.id in node.engine.group_ids()
    assert node.image in node.engine.cached_images()
    capacity = node.engine.capacity()
    assert capacity.cpu_cores > 0
    assert capacity.memory_gb > 0


def test_run_is_idempotent_and_a_changed_spec_redeploys(node: Node) -> None:
    """The same spec again adopts the containers; a changed one replaces them."""
    spec = group(node, "echo first; sleep 300")
    first = started(node.engine.run(spec))
    assert started(node.engine.run(spec)) == first
    changed = GroupSpec(id=spec.id, name=spec.name, containers=(
        Container(name="c", image=node.image, command=("sh", "-c", "echo second; sleep 300"),
                  resources=Resources(cpu=0.25, memory_gb=0.25)),))
    view = node.engine.run(changed)
    assert view.state == "Running"
    assert started(view) != first
    eventually(lambda: node.engine.logs(spec.id, "c") == "second\n",
               what="the new command's output")


def test_a_spec_changing_only_config_maps_updates_them_in_place(node: Node) -> None:
    """Config maps' pairs alone changed: the same instance runs on (start time, restart
    count), with a ConfigMapUpdated event naming the keys changed; the same spec again
    records nothing more."""
    spec = group(node)
    container = replace(spec.containers[0], config_map=(("a", "1"), ("b", "2")))
    first = node.engine.run(replace(spec, containers=(container,))).containers[0]
    changed = replace(spec, containers=(replace(container, config_map=(("a", "1"),
                                                                       ("b", "3"))),))
    after = node.engine.run(changed).containers[0]
    assert after.current.start_time == first.current.start_time
    assert after.restart_count == 0
    updates = [e.message for e in after.events if e.name == "ConfigMapUpdated"]
    assert updates == ["config map updated in place: b"]
    again = node.engine.run(changed).containers[0]
    assert [e.message for e in again.events if e.name == "ConfigMapUpdated"] == updates


def with_port(spec: GroupSpec, port: int) -> GroupSpec:
    """``spec`` with its container and its address declaring TCP ``port``."""
    container = replace(spec.containers[0], ports=(Port(port),))
    return replace(spec, containers=(container,), ip_ports=(Port(port),))


@pytest.mark.node_only  # on a cluster, serving() is the Pod's Ready condition
def test_a_group_serves_once_its_declared_ports_answer(node: Node) -> None:
    """serving(): a group whose busybox httpd listens on its declared port ends up
    serving; one whose declared port nobody listens on does not, nor does a stopped
    group; a group that declares no port serves once it runs."""
    web = with_port(group(node, "exec httpd -f -p 8080"), 8080)
    deaf = with_port(group(node), 8081)
    bare = group(node)
    for spec in (web, deaf, bare):
        assert node.engine.run(spec).state == "Running"
    assert eventually(lambda: node.engine.serving(web.id), what="httpd serving its port")
    assert node.engine.serving(bare.id)
    assert not node.engine.serving(deaf.id)
    node.engine.stop(web.id)
    assert not node.engine.serving(web.id)
    with pytest.raises(GroupNotFound):
        node.engine.serving(uuid.uuid4().hex)


@pytest.mark.node_only
def test_stop_then_start(node: Node) -> None:
    """stop() kills the containers and keeps the group, Stopped; start() runs it anew."""
    spec = group(node)
    first = started(node.engine.run(spec))
    stopped = node.engine.stop(spec.id)
    assert (stopped.state, stopped.stopped) == ("Stopped", True)
    assert stopped.containers[0].current.state == "Terminated"
    assert "Killing" in [e.name for e in stopped.containers[0].events]
    assert node.engine.view(spec.id).state == "Stopped"
    view = node.engine.start(spec.id, spec)
    assert (view.state, view.stopped) == ("Running", False)
    assert started(view) != first


@pytest.mark.node_only
def test_samples_count_running_groups_only(node: Node) -> None:
    """samples(): a running group's containers by name with counters that never go
    back; a stopped group is left out."""
    spec = group(node)
    node.engine.run(spec)

    def sample(after: float = float("-inf")) -> GroupSample | None:
        found = next((s for s in node.engine.samples() if s.group_id == spec.id), None)
        return found if found is not None and found.at > after else None

    first = eventually(sample, what="the running group is sampled")
    assert first is not None
    assert [c.name for c in first.containers] == ["c"]
    later = eventually(lambda: sample(first.at), what="a later sample")
    assert later is not None
    before, after = first.containers[0], later.containers[0]
    assert before.cpu_ns is not None
    assert after.cpu_ns is not None
    assert after.cpu_ns >= before.cpu_ns
    assert after.memory_bytes is not None
    node.engine.stop(spec.id)
    assert sample() is None


def test_phases_tell_the_meter_what_runs_and_when_a_group_ended(node: Node) -> None:
    """phases(): a running group is Running; one that ran ``sleep 1; exit 0`` under Never
    is Succeeded with its container's finish time; a stopped one is Stopped."""
    running, done = group(node), group(node, "sleep 1; exit 0", policy=RestartPolicy.NEVER)
    node.engine.run(running)
    node.engine.run(done)
    eventually(lambda: node.engine.phases()[running.id].state == "Running",
               what="the running group's phase")
    finished = eventually(lambda: node.engine.phases()[done.id], what="the group ends",
                          until=lambda phase: phase.state == "Succeeded")
    assert finished.ended_at == node.engine.view(done.id).containers[0].current.finish_time
    node.engine.stop(running.id)
    assert node.engine.phases()[running.id] == GroupPhase("Stopped")


@pytest.mark.node_only
def test_restart_makes_new_instances(node: Node) -> None:
    """restart() restarts the containers in place: Running again, a new start time."""
    spec = group(node)
    first = started(node.engine.run(spec))
    view = node.engine.restart(spec.id, spec)
    assert view.state == "Running"
    assert started(view) != first
    assert "Killing" in [e.name for e in view.containers[0].events]


def test_logs_show_what_the_container_printed(node: Node) -> None:
    """logs() gives the output line by line, its tail, and its time stamps on request."""
    spec = group(node, "echo hello; echo world; sleep 300")
    node.engine.run(spec)
    eventually(lambda: node.engine.logs(spec.id, "c") == "hello\nworld\n",
               what="both lines logged")
    assert node.engine.logs(spec.id, "c", tail=1) == "world\n"
    assert node.engine.logs(spec.id, "c", tail=0) == ""
    stamped = node.engine.logs(spec.id, "c", timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["hello", "world"]
    assert all(line[:2] == "20" and "T" in line.split(" ")[0] for line in stamped)


def test_attach_follows_the_output_until_the_container_exits(node: Node) -> None:
    """attach() yields each line as written and ends when the container exits."""
    spec = group(node, "echo one; sleep 1; echo two", policy=RestartPolicy.NEVER)
    node.engine.run(spec)
    lines: list[str] = []
    follower = threading.Thread(target=lambda: lines.extend(node.engine.attach(spec.id, "c")),
                                daemon=True)
    follower.start()
    follower.join(timeout=20)
    assert not follower.is_alive(), "attach did not end with the container"
    assert lines == ["one\n", "two\n"]


def test_exec_streams_output_and_its_exit_code(node: Node) -> None:
    """exec() runs a command in the running container: its terminal output, then b"",
    then its exit code."""
    spec = group(node)
    node.engine.run(spec)
    session = node.engine.exec(spec.id, "c", ["sh", "-c", "echo from-exec; exit 4"], tty=True)
    try:
        output = b""
        while chunk := session.read():
            output += chunk
        assert session.wait(10) == 4
    finally:
        session.close()
    assert output.replace(b"\r\n", b"\n") == b"from-exec\n"


@pytest.mark.node_only
def test_a_failing_container_restarts_under_on_failure(node: Node) -> None:
    """exit 3 under OnFailure: restarted, counted, the last instance's exit and output kept."""
    spec = group(node, "echo failing; exit 3", policy=RestartPolicy.ON_FAILURE)
    node.engine.run(spec)
    view = wait_view(node, spec, lambda v: v.containers[0].restart_count >= 2,
                     "two restarts")
    container = view.containers[0]
    assert container.previous is not None
    assert container.previous.exit_code == 3
    assert view.state == "Running"
    assert node.engine.logs(spec.id, "c", previous=True) == "failing\n"


def test_a_failing_container_stays_terminated_under_never(node: Node) -> None:
    """exit 3 under Never: Terminated with exit code 3, no restart, the group Failed."""
    spec = group(node, "exit 3", policy=RestartPolicy.NEVER)
    node.engine.run(spec)
    view = wait_view(node, spec, lambda v: v.state == "Failed", "the group Failed")
    container = view.containers[0]
    assert container.current.state == "Terminated"
    assert container.current.exit_code == 3
    assert container.restart_count == 0
    assert view.failure is None  # the job failed, not the deployment


def test_init_containers_run_to_completion_before_the_app(node: Node) -> None:
    """An init container runs first, to exit 0; then the app container starts."""
    spec = group(node, "echo app; sleep 300", init_containers=(
        Container(name="init", image=node.image, command=("sh", "-c", "echo init; sleep 0.5"),
                  resources=Resources(cpu=0.25, memory_gb=0.25)),))
    node.engine.run(spec)
    view = wait_view(node, spec, lambda v: v.containers[0].current.state == "Running",
                     "the app container started")
    init = view.init_containers[0]
    assert (init.name, init.current.state, init.current.exit_code) == ("init", "Terminated", 0)
    assert init.current.finish_time is not None
    app_start = started(view)
    assert app_start is not None
    assert app_start >= init.current.finish_time - 0.01
    assert node.engine.logs(spec.id, "init") == "init\n"
    eventually(lambda: node.engine.logs(spec.id, "c") == "app\n", what="the app's output")


def test_a_failed_init_container_fails_the_group_under_never(node: Node) -> None:
    """An init container that exits 3 under Never fails the group; the app never starts."""
    spec = group(node, "echo app; sleep 300", policy=RestartPolicy.NEVER, init_containers=(
        Container(name="init", image=node.image, command=("sh", "-c", "exit 3"),
                  resources=Resources(cpu=0.25, memory_gb=0.25)),))
    node.engine.run(spec)
    view = wait_view(node, spec, lambda v: v.state == "Failed", "the group Failed")
    assert view.failure is not None
    assert "init" in view.failure
    assert view.init_containers[0].current.exit_code == 3
    assert view.containers[0].current.state == "Waiting"
    assert "Started" not in [e.name for e in view.containers[0].events]


def test_delete_leaves_nothing(node: Node) -> None:
    """delete() removes the group and all it had on the node; a second delete is a no-op;
    the group is then unknown."""
    spec = group(node)
    view = node.engine.run(spec)
    traces = node.traces(view)
    node.engine.delete(spec.id)
    node.engine.delete(spec.id)
    assert spec.id not in node.engine.group_ids()
    with pytest.raises(GroupNotFound):
        node.engine.view(spec.id)
    eventually(lambda: not [p for p in traces if p.exists()],
               what="the group's namespace, processes and cgroups gone")


def test_sweep_removes_the_groups_not_kept_and_only_those(node: Node) -> None:
    """sweep(keep) deletes every group not in ``keep`` (and all it had on the node) and
    leaves the kept ones running, untouched."""
    kept, stray = group(node), group(node)
    kept_view = node.engine.run(kept)
    # What only the stray group has on the node (the node's cgroup holds both groups').
    traces = set(node.traces(node.engine.run(stray))) - set(node.traces(kept_view))
    node.engine.sweep({kept.id})
    assert node.engine.group_ids() == [kept.id]
    with pytest.raises(GroupNotFound):
        node.engine.view(stray.id)
    eventually(lambda: not [p for p in traces if p.exists()],
               what="the swept group's namespace, processes and cgroups gone")
    after = node.engine.view(kept.id)
    assert after.state == "Running"
    assert started(after) == started(kept_view)


def test_an_unknown_group_is_group_not_found(node: Node) -> None:
    """Every call on a group the engine does not hold raises GroupNotFound; delete does not."""
    missing = uuid.uuid4().hex
    for call in (lambda: node.engine.view(missing), lambda: node.engine.stop(missing),
                 lambda: node.engine.logs(missing, "c"),
                 lambda: node.engine.exec(missing, "c", ["true"])):
        with pytest.raises(GroupNotFound):
            call()
    node.engine.delete(missing)


@pytest.mark.node_only
def test_a_virtual_network_stays_until_removed_and_not_while_in_use(node: Node) -> None:
    """A group placed in a subnet makes its network appear on the node; remove_vnet()
    refuses while the group exists, then removes it, idempotently."""
    node.engine.check_address_space([PLACEMENT.prefix])
    spec = group(node, subnet=PLACEMENT)
    try:
        view = node.engine.run(spec)
        assert view.ip == "10.213.1.4"
        assert node.engine.vnets() == [VNET]
        with pytest.raises(InvalidInput):
            node.engine.remove_vnet(VNET)
        node.engine.delete(spec.id)
        node.engine.remove_vnet(VNET)
        assert node.engine.vnets() == []
        node.engine.remove_vnet(VNET)
    finally:
        node.engine.delete(spec.id)
        node.engine.remove_vnet(VNET)
