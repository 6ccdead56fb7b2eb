"""KubeEngine through the official client against a fake API server (skiff.testing.kubeapi).

The server is real HTTP on loopback; its answers are built from the Kubernetes API
reference and the client's models, not recorded from a cluster (none was there). The
tests play the kubelet: a thread marks each new Pod Running, as a node would once its
containers started, and the tests push other statuses and Events through the fake.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from skiff.core.spec import (
    Container,
    EnvVar,
    GroupSpec,
    Port,
    Resources,
    RestartPolicy,
    SubnetPlacement,
)
from skiff.errors import ArmError, ClusterError, GroupNotFound, InvalidInput
from skiff.kube import naming
from skiff.kube.engine import KubeEngine, KubeSettings, Where
from skiff.testing.kube import check_group
from skiff.testing.kubeapi import ApiError, FakeKubeApi
from skiff.testing.waiting import eventually

Obj = dict[str, Any]
STARTED = "2026-01-02T03:04:05Z"
VNET = "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/virtualnetworks/net"


def running(pod: Obj, *, ready: bool = True, ip: str = "10.244.0.7") -> Obj:
    """The status a kubelet reports once every container of ``pod`` runs."""
    names = [c["name"] for c in pod["spec"]["containers"]]
    return {"phase": "Running", "podIP": ip, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": n, "ready": ready, "restartCount": 0, "image": "x",
                               "imageID": "", "containerID": f"containerd://{n}",
                               "state": {"running": {"startedAt": STARTED}}} for n in names]}


class Kubelet(threading.Thread):
    """Marks each Pod that has no container status yet Running (unless paused)."""

    def __init__(self, fake: FakeKubeApi) -> None:
        super().__init__(daemon=True)
        self.fake, self.stopping, self.paused = fake, threading.Event(), False

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            if self.paused:
                continue
            for pod in self.fake.list("pods", None):
                if not pod.get("status", {}).get("containerStatuses"):
                    meta = pod["metadata"]
                    with contextlib.suppress(ApiError):  # deleted meanwhile
                        self.fake.set_pod_status(meta["namespace"], meta["name"], running(pod))


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    api.add_node("node-1", cpu="3800m", memory="15Gi", gpus=1)
    api.add_node("node-2", cpu="4", memory="16Gi")
    api.add_node("node-down", cpu="64", memory="256Gi", ready=False)
    yield api
    api.close()


@pytest.fixture
def kubelet(fake: FakeKubeApi) -> Iterator[Kubelet]:
    thread = Kubelet(fake)
    thread.start()
    yield thread
    thread.stopping.set()
    thread.join(timeout=5)


def settings(fake: FakeKubeApi, tmp_path: Path) -> KubeSettings:
    return KubeSettings(kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
                        start_timeout_s=5, delete_timeout_s=5, watch_timeout_s=1)


def locate(spec: GroupSpec) -> Where:
    return Where(subscription="sub-1", resource_group="Team.A",
                 public=bool(spec.ip_ports) and spec.subnet is None,
                 dns_name=f"{spec.name}.westeurope.skiff.internal")


@pytest.fixture
def engine(fake: FakeKubeApi, kubelet: Kubelet, tmp_path: Path) -> Iterator[KubeEngine]:
    made = KubeEngine(settings(fake, tmp_path), locate=locate)
    yield made
    made.close()


NS = naming.namespace_name("sub-1", "Team.A")


def group(name: str = "web", **fields: Any) -> GroupSpec:
    container = Container(
        name="c", image="nginx:1.27", command=("nginx", "-g", "daemon off;"),
        env=(EnvVar("MODE", "prod"), EnvVar("TOKEN", "s3cret", secure=True)),
        resources=Resources(cpu=0.5, memory_gb=0.5), ports=(Port(80),),
        config_map=(("a", "1"), ("b", "2")))
    values: dict[str, Any] = {"id": f"id-{name}", "name": name, "containers": (container,),
                              "ip_ports": (Port(80),)}
    values.update(fields)
    return GroupSpec(**values)


def in_namespace(fake: FakeKubeApi, namespace: str = NS) -> list[Obj]:
    return [o for (_, ns, _), o in sorted(fake.objects.items()) if ns == namespace]


def uid(fake: FakeKubeApi, resource: str, name: str, namespace: str = NS) -> str | None:
    found = fake.objects.get((resource, namespace, name))
    return None if found is None else str(found["metadata"]["uid"])


def test_run_makes_the_anchor_first_then_objects_it_owns(fake: FakeKubeApi,
                                                         engine: KubeEngine) -> None:
    """run(): the namespace (labelled), the anchor before anything else, then Secrets,
    ConfigMaps, Pod, Service and NetworkPolicy owned by the anchor's uid, every one valid
    against Kubernetes' schema and the API server's rules; the view Running."""
    view = engine.run(group())
    assert view.state == "Running"
    namespace = fake.objects[("namespaces", "", NS)]
    assert namespace["metadata"]["labels"][naming.MANAGED_BY] == "skiff"
    creates = [r for r in fake.requests if r.startswith("POST") and f"/{NS}/" in r]
    assert creates[0] == f"POST /api/v1/namespaces/{NS}/configmaps"
    found = in_namespace(fake)
    anchor = fake.objects[("configmaps", NS, "web.anchor")]
    assert "ownerReferences" not in anchor["metadata"]
    kinds = sorted(o["kind"] for o in found)
    assert kinds == ["ConfigMap", "ConfigMap", "NetworkPolicy", "Pod", "Secret", "Service"]
    for obj in found:
        if obj is not anchor:
            assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == \
                [anchor["metadata"]["uid"]]
    check_group(found)
    assert "s3cret" not in str(anchor)  # the anchor keeps the Pod, never a secret value


def test_a_status_pushed_through_the_api_reaches_view_by_the_watch(
        fake: FakeKubeApi, engine: KubeEngine, kubelet: Kubelet) -> None:
    """The kubelet's later status (a restart, a last state) and an Event about a container
    reach view() through the watches: view() itself asks the API server nothing."""
    engine.run(group())
    pod = fake.get("pods", NS, "web")
    status = running(pod)
    status["containerStatuses"][0].update(restartCount=2, lastState={"terminated": {
        "exitCode": 137, "reason": "OOMKilled", "startedAt": STARTED,
        "finishedAt": STARTED}})
    fake.set_pod_status(NS, "web", status)
    fake.add_event(NS, "web", "Pulled", "pulled nginx:1.27", field_path="spec.containers{c}")
    asked = len(fake.requests)
    view = eventually(lambda: engine.view("id-web"), what="the restart seen",
                      until=lambda v: v.containers[0].restart_count == 2
                      and v.containers[0].events)
    container = view.containers[0]
    assert container.previous is not None
    assert (container.previous.exit_code, container.previous.detail_status) == (137, "OOMKilled")
    assert [e.name for e in container.events] == ["Pulled"]
    assert len(fake.requests) == asked


def test_a_pod_deleted_behind_skiffs_back_is_made_again(fake: FakeKubeApi,
                                                         engine: KubeEngine) -> None:
    """Deleting the Pod by hand: the engine makes it again; the Service (and with it the
    group's public address) is the same object throughout."""
    engine.run(group())
    fake.set_service_ingress(NS, "web", "20.1.2.3")
    eventually(lambda: engine.addresses().get("id-web") == "20.1.2.3", what="the LB address")
    service, first = uid(fake, "services", "web"), uid(fake, "pods", "web")
    fake.delete("pods", NS, "web")
    eventually(lambda: uid(fake, "pods", "web") not in (None, first), what="the Pod made again")
    pod = fake.get("pods", NS, "web")
    anchor = fake.get("configmaps", NS, "web.anchor")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == anchor["metadata"]["uid"]
    assert uid(fake, "services", "web") == service
    eventually(lambda: engine.view("id-web").state == "Running", what="Running again")
    assert engine.addresses()["id-web"] == "20.1.2.3"


def test_a_repair_that_fails_is_tried_again(fake: FakeKubeApi, engine: KubeEngine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The API server refusing the remade Pod once (a blip): the repair is tried again
    after a pause, not dropped (the Pod, gone from the watch's cache, would never be
    queued again)."""
    from skiff.errors import ClusterError

    engine.run(group())
    first = uid(fake, "pods", "web")
    made = engine._create_pod
    refusals = [ClusterError("the API server did not answer")]

    def flaky(g: Any) -> None:
        if refusals:
            raise refusals.pop()
        made(g)

    monkeypatch.setattr(engine, "_create_pod", flaky)
    fake.delete("pods", NS, "web")
    eventually(lambda: uid(fake, "pods", "web") not in (None, first), what="the Pod made again")
    assert refusals == []


def test_the_engine_tells_when_a_load_balancers_address_comes_or_moves(
        fake: FakeKubeApi, engine: KubeEngine) -> None:
    """on_address: called with the group's id when its Service gets an address and when
    the address moves, not for a status written again with the same address."""
    told: list[str] = []
    engine.on_address = told.append
    engine.run(group())
    assert told == []  # pending: no address yet
    fake.set_service_ingress(NS, "web", "20.1.2.3")
    eventually(lambda: told == ["id-web"], what="told of the address")
    fake.set_service_ingress(NS, "web", "20.1.2.3")
    fake.set_service_ingress(NS, "web", "20.1.2.4")
    eventually(lambda: len(told) >= 2, what="told of the move")
    eventually(lambda: engine.addresses().get("id-web") == "20.1.2.4", what="the move seen")
    assert told == ["id-web", "id-web"]  # once per change (one watch thread, in order)


def test_an_anchor_deleted_behind_skiffs_back_is_applied_again(fake: FakeKubeApi,
                                                               engine: KubeEngine) -> None:
    """The anchor deleted by hand takes its objects with it (the garbage collector); the
    engine, holding the spec, applies the whole group again."""
    engine.run(group())
    fake.delete("configmaps", NS, "web.anchor")
    eventually(lambda: uid(fake, "services", "web") and uid(fake, "pods", "web"),
               what="the group applied again")
    check_group(in_namespace(fake))


def test_delete_removes_every_object_and_is_idempotent(fake: FakeKubeApi,
                                                       engine: KubeEngine) -> None:
    """delete(): nothing of the group stays in its namespace; again: nothing happens; the
    group is unknown after."""
    engine.run(group())
    engine.run(group("api", id="id-api"))
    engine.delete("id-web")
    engine.delete("id-web")
    left = [o["metadata"]["name"] for o in in_namespace(fake)]
    assert left
    assert all(n.startswith("api") for n in left), left
    assert engine.group_ids() == ["id-api"]
    with pytest.raises(GroupNotFound):
        engine.view("id-web")
    eventually(lambda: "id-web" not in engine.phases(), what="no phase of the group")


def test_a_sandbox_group_needs_the_runtime_class(fake: FakeKubeApi, engine: KubeEngine) -> None:
    """isolation Sandbox without the RuntimeClass: an ARM error naming it, nothing made;
    with it, the Pod runs under it."""
    spec = group(isolation="sandbox")
    with pytest.raises(ArmError) as refused:
        engine.run(spec)
    assert refused.value.code == "SandboxIsolationUnavailable"
    assert "'gvisor'" in refused.value.message
    assert ("pods", NS, "web") not in fake.objects
    fake.add_runtime_class("gvisor")
    assert engine.run(spec).state == "Running"
    assert fake.get("pods", NS, "web")["spec"]["runtimeClassName"] == "gvisor"


def test_stop_start_and_restart(fake: FakeKubeApi, engine: KubeEngine) -> None:
    """stop(): the Pod goes, the anchor and Service stay, Stopped (not made again by the
    repair); start(): a new Pod; restart(): another one."""
    engine.run(group())
    first = uid(fake, "pods", "web")
    view = engine.stop("id-web")
    assert (view.state, view.stopped) == ("Stopped", True)
    assert view.containers[0].current.state == "Terminated"
    assert uid(fake, "pods", "web") is None
    assert uid(fake, "configmaps", "web.anchor")
    assert uid(fake, "services", "web")
    assert fake.get("configmaps", NS, "web.anchor")["data"]["stopped"] == "true"
    assert engine.phases()["id-web"].state == "Stopped"
    assert engine.start("id-web").state == "Running"
    second = uid(fake, "pods", "web")
    assert second not in (None, first)
    assert engine.restart("id-web").state == "Running"
    assert uid(fake, "pods", "web") not in (None, first, second)


def test_run_is_idempotent_and_a_changed_spec_redeploys(fake: FakeKubeApi,
                                                        engine: KubeEngine) -> None:
    """The same spec again keeps the Pod; another image makes a new one; a changed secure
    value (only in a Secret) does too."""
    spec = group()
    engine.run(spec)
    first = uid(fake, "pods", "web")
    engine.run(spec)
    assert uid(fake, "pods", "web") == first
    container = replace(spec.containers[0], image="nginx:1.28")
    engine.run(replace(spec, containers=(container,)))
    second = uid(fake, "pods", "web")
    assert second != first
    assert fake.get("pods", NS, "web")["spec"]["containers"][0]["image"] == "nginx:1.28"
    secret = replace(container, env=(EnvVar("MODE", "prod"), EnvVar("TOKEN", "new", secure=True)))
    engine.run(replace(spec, containers=(secret,)))
    assert uid(fake, "pods", "web") != second


def test_a_change_of_config_maps_alone_restarts_nothing(fake: FakeKubeApi,
                                                        engine: KubeEngine) -> None:
    """Config maps' pairs alone changed: the ConfigMap is rewritten, the Pod stays, and the
    container has a ConfigMapUpdated event naming the key; the same spec again adds none."""
    spec = group()
    engine.run(spec)
    first = uid(fake, "pods", "web")
    changed = replace(spec, containers=(replace(spec.containers[0],
                                                config_map=(("a", "1"), ("b", "3"))),))
    view = engine.run(changed)
    assert uid(fake, "pods", "web") == first
    assert fake.get("configmaps", NS, "web.configmap.c")["data"] == {"a": "1", "b": "3"}
    updates = [e.message for e in view.containers[0].events if e.name == "ConfigMapUpdated"]
    assert updates == ["config map updated in place: b"]
    again = engine.run(changed)
    assert [e.message for e in again.containers[0].events
            if e.name == "ConfigMapUpdated"] == updates


def test_sweep_deletes_groups_not_kept_and_strays(fake: FakeKubeApi, engine: KubeEngine) -> None:
    """sweep(keep): a group not kept goes with its objects, and so does an object labelled
    as skiff's whose group is gone; the kept group's Pod is untouched."""
    engine.run(group())
    engine.run(group("api", id="id-api"))
    kept = uid(fake, "pods", "web")
    fake.create("secrets", NS, {"metadata": {"name": "ghost.env", "labels": {
        naming.MANAGED_BY: "skiff", naming.GROUP_ID_LABEL: "id-ghost"}}, "data": {}})
    engine.sweep({"id-web"})
    assert engine.group_ids() == ["id-web"]
    names = {o["metadata"]["name"] for o in in_namespace(fake)}
    assert not any(n.startswith(("api", "ghost")) for n in names), names
    assert uid(fake, "pods", "web") == kept


def test_a_restarted_engine_adopts_its_groups(fake: FakeKubeApi, kubelet: Kubelet,
                                              engine: KubeEngine, tmp_path: Path) -> None:
    """A new engine on the same cluster knows the groups from their anchors: it views them,
    keeps their Pods for the same spec, knows a stopped one is stopped, and makes again a
    Pod deleted while no engine watched."""
    engine.run(group())
    engine.run(group("api", id="id-api"))
    engine.run(group("job", id="id-job"))
    engine.stop("id-api")
    pod = uid(fake, "pods", "web")
    engine.close()
    fake.delete("pods", NS, "job")
    again = KubeEngine(settings(fake, tmp_path), locate=locate)
    try:
        eventually(lambda: uid(fake, "pods", "job"), what="the job's Pod made again")
        assert uid(fake, "pods", "api") is None
        assert again.group_ids() == ["id-api", "id-job", "id-web"]
        assert again.view("id-web").state == "Running"
        assert again.view("id-api").state == "Stopped"
        again.run(group())
        assert uid(fake, "pods", "web") == pod
    finally:
        again.close()


def test_streams_are_bridged_to_the_pods_container(monkeypatch: pytest.MonkeyPatch,
                                                   engine: KubeEngine) -> None:
    """logs, attach and exec call skiff.kube.streams with the client's CoreV1Api and the
    group's namespace, Pod and container; an unknown container is GroupNotFound."""
    calls: list[tuple[Any, ...]] = []

    def pod_logs(core: Any, ns: str, pod: str, c: str, **kw: Any) -> str:
        calls.append(("logs", ns, pod, c, kw))
        return "hello\n"

    def open_exec(core: Any, ns: str, pod: str, c: str, cmd: list[str], **kw: Any) -> None:
        calls.append(("exec", cmd, kw))

    module = types.ModuleType("skiff.kube.streams")
    module.__dict__.update(pod_logs=pod_logs, open_exec=open_exec,
                           follow_logs=lambda core, ns, pod, c: iter(["a\n"]))
    monkeypatch.setitem(sys.modules, "skiff.kube.streams", module)
    engine.run(group())
    assert engine.logs("id-web", "c", tail=3, previous=True) == "hello\n"
    assert calls[0] == ("logs", NS, "web", "c",
                        {"tail": 3, "timestamps": False, "previous": True})
    assert list(engine.attach("id-web", "c")) == ["a\n"]
    engine.exec("id-web", "c", ["sh"], tty=True, terminal_size=(80, 24))
    assert calls[1] == ("exec", ["sh"], {"tty": True, "terminal_size": (80, 24)})
    with pytest.raises(GroupNotFound):
        engine.logs("id-web", "nope")
    with pytest.raises(GroupNotFound):
        engine.exec("id-missing", "c", ["true"])


def test_capacity_sums_the_ready_nodes(engine: KubeEngine) -> None:
    """capacity(): the allocatable CPU, memory and GPUs of Ready nodes only."""
    capacity = engine.capacity()
    assert (capacity.cpu_cores, capacity.memory_gb, capacity.gpus) == (7.8, 31.0, 1)
    assert engine.cached_images() == []
    assert engine.samples() == []  # no metrics.k8s.io on this cluster


def test_serving_is_the_pods_ready_condition(fake: FakeKubeApi, engine: KubeEngine,
                                             kubelet: Kubelet) -> None:
    """serving(): True while the Pod's Ready condition is True, False when it turns."""
    engine.run(group())
    eventually(lambda: engine.serving("id-web"), what="Ready")
    fake.set_pod_status(NS, "web", running(fake.get("pods", NS, "web"), ready=False))
    eventually(lambda: not engine.serving("id-web"), what="not Ready")


def test_a_pending_group_returns_its_view_at_the_start_timeout(
        fake: FakeKubeApi, kubelet: Kubelet, tmp_path: Path) -> None:
    """No node starts the Pod: run() gives up waiting at start_timeout_s and returns the
    group Pending, its containers Waiting; an image that cannot be pulled fails it."""
    kubelet.paused = True
    made = KubeEngine(replace(settings(fake, tmp_path), start_timeout_s=0.3), locate=locate)
    try:
        view = made.run(group(restart_policy=RestartPolicy.NEVER))
        assert view.state == "Pending"
        assert view.containers[0].current.state == "Waiting"
        fake.set_pod_status(NS, "web", {"phase": "Pending", "containerStatuses": [{
            "name": "c", "ready": False, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]})
        failed = eventually(lambda: made.view("id-web"), what="the failure seen",
                            until=lambda v: v.failure is not None)
        assert failed.failure == "container 'c': ErrImagePull: not found"
    finally:
        made.close()


def test_a_virtual_networks_policy_is_shared_and_removed_last(fake: FakeKubeApi,
                                                              engine: KubeEngine) -> None:
    """Two groups in one network share its NetworkPolicy (both anchors own it); vnets()
    lists it; remove_vnet() is refused while a group is in it, then removes it."""
    subnet = SubnetPlacement(vnet=VNET, subnet=VNET + "/subnets/default", prefix="10.1.0.0/24")
    engine.run(group(subnet=subnet, ip_ports=()))
    engine.run(group("api", id="id-api", subnet=subnet, ip_ports=()))
    (policy,) = [o for o in in_namespace(fake) if o["kind"] == "NetworkPolicy"]
    assert len(policy["metadata"]["ownerReferences"]) == 2
    assert engine.vnets() == [VNET]
    assert engine.addresses()["id-web"] == "10.244.0.7"  # the Pod's
    with pytest.raises(InvalidInput):
        engine.remove_vnet(VNET)
    engine.delete("id-web")
    assert engine.vnets() == [VNET]  # the other group still owns it
    engine.delete("id-api")
    engine.remove_vnet(VNET)
    assert engine.vnets() == []


def test_a_cluster_that_does_not_answer_is_a_cluster_error(fake: FakeKubeApi,
                                                           engine: KubeEngine) -> None:
    """The API server gone: ClusterError (transient), never the client's exceptions."""
    fake.close()
    with pytest.raises(ClusterError) as failed:
        engine.capacity()
    assert failed.value.transient


def test_a_bad_kubeconfig_is_a_cluster_error(tmp_path: Path) -> None:
    """A kubeconfig that cannot be read: a ClusterError saying so, not a traceback."""
    missing = KubeSettings(kubeconfig=tmp_path / "nope", context="none")
    with pytest.raises(ClusterError, match="cannot load the cluster's configuration"):
        KubeEngine(missing)


def test_another_skiffs_groups_on_the_cluster_are_left_alone(
        fake: FakeKubeApi, engine: KubeEngine, tmp_path: Path) -> None:
    """A second skiff under another namespace prefix: neither adopts nor sweeps the
    other's groups, nor lists its virtual networks."""
    other = KubeEngine(replace(settings(fake, tmp_path), namespace_prefix="other"),
                       locate=locate)
    try:
        subnet = SubnetPlacement(vnet=VNET, subnet=VNET + "/subnets/a", prefix="10.1.0.0/24")
        other.run(group("theirs", id="id-theirs", subnet=subnet, ip_ports=()))
        theirs = naming.namespace_name("sub-1", "Team.A", prefix="other")
        engine.sweep(set())
        assert uid(fake, "pods", "theirs", theirs) is not None
        assert engine.vnets() == []
        assert other.vnets() == [VNET]
        again = KubeEngine(settings(fake, tmp_path), locate=locate)
        try:
            assert again.group_ids() == []
        finally:
            again.close()
    finally:
        other.close()


def test_samples_come_from_the_metrics_api_as_counters(fake: FakeKubeApi,
                                                       engine: KubeEngine) -> None:
    """With metrics.k8s.io served: a running group's containers by name, memory as read and
    CPU time summed from the rate (never going back); a stopped group is left out."""
    engine.run(group())
    pod = fake.get("pods", NS, "web")
    fake.pod_metrics = [{"metadata": {"name": "web", "namespace": NS,
                                      "labels": pod["metadata"]["labels"]},
                         "timestamp": STARTED, "window": "15s",
                         "containers": [{"name": "c", "usage": {"cpu": "250m",
                                                                "memory": "64Mi"}}]}]
    first = engine.samples()
    assert [s.group_id for s in first] == ["id-web"]
    (container,) = first[0].containers
    assert (container.name, container.memory_bytes) == ("c", 64 * 2**20)
    assert container.cpu_ns is not None
    assert container.cpu_ns >= int(0.25 * 14.9 * 1e9)  # the first window, at 250m
    later = engine.samples()[0].containers[0]
    assert later.cpu_ns is not None
    assert later.cpu_ns >= container.cpu_ns
    engine.stop("id-web")
    assert engine.samples() == []


def test_the_per_group_disk_limit_is_the_first_containers_ephemeral_storage(
        fake: FakeKubeApi, kubelet: Kubelet, tmp_path: Path) -> None:
    """With a per-group disk limit (``serve`` passes the node's ``--group-disk-gb``), the
    Pod's first container requests and is limited to that much ``ephemeral-storage``;
    without one, the Pod names none."""
    limited = KubeEngine(replace(settings(fake, tmp_path), disk_bytes=2 << 30), locate=locate)
    try:
        limited.run(group())
        pod = fake.objects[("pods", NS, "web")]
        resources = pod["spec"]["containers"][0]["resources"]
        assert resources["limits"]["ephemeral-storage"] == "2048Mi"
        assert resources["requests"]["ephemeral-storage"] == "2048Mi"
        check_group(in_namespace(fake))
    finally:
        limited.close()
    plain = KubeEngine(settings(fake, tmp_path), locate=locate)
    try:
        plain.run(group("other", id="id-other"))
        other = fake.objects[("pods", NS, "other")]
        assert "ephemeral-storage" not in str(other["spec"]["containers"][0]["resources"])
    finally:
        plain.close()


def gpu_group(name: str = "train", sku: str = "H100", count: int = 2) -> GroupSpec:
    container = Container(name="c", image="nvcr.io/nvidia/cuda:12.6.0-base-ubuntu24.04",
                          command=("nvidia-smi",),
                          resources=Resources(cpu=1, memory_gb=1, gpu_count=count,
                                              gpu_sku=sku))
    return GroupSpec(id=f"id-{name}", name=name, containers=(container,))


def add_gpu_nodes(fake: FakeKubeApi) -> None:
    """Two H100 pools (two products of one SKU) and a MIG-sliced A100 node, with GFD's
    labels; node-1 of the fixture has one GPU and no label."""
    fake.add_node("h100-a", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3")
    fake.add_node("h100-b", gpus=2, gpu_product="NVIDIA-H100-NVL")
    fake.add_node("mig", gpus=7, gpu_product="NVIDIA-A100-SXM4-40GB-MIG-1g.5gb")


def test_capacity_names_the_gpus_by_sku_from_the_nodes_labels(fake: FakeKubeApi,
                                                                engine: KubeEngine) -> None:
    """gpu_skus: H100 from both its products' nodes, the unlabelled node's GPU as SKU GPU,
    MIG slices in no SKU (gpus counts every nvidia.com/gpu)."""
    add_gpu_nodes(fake)
    capacity = engine.capacity()
    assert dict(capacity.gpu_skus) == {"H100": 10, "GPU": 1}
    assert capacity.gpus == 1 + 8 + 2 + 7


def test_a_gpu_group_is_placed_on_its_skus_nodes(fake: FakeKubeApi,
                                                 engine: KubeEngine) -> None:
    """run(): the GPU limit, the taint tolerated, the node affinity on the products the
    cluster's H100 nodes carry, every object valid; a SKU the cluster lacks: 409
    ServiceUnavailable naming what it has, nothing made."""
    add_gpu_nodes(fake)
    assert engine.run(gpu_group()).state == "Running"
    pod = fake.get("pods", NS, "train")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    (term,) = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3",
                                                     "NVIDIA-H100-NVL"]
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    check_group(in_namespace(fake))
    with pytest.raises(ArmError) as refused:
        engine.run(gpu_group("infer", "L4", 1))
    assert (refused.value.status, refused.value.code) == (409, "ServiceUnavailable")
    assert "1 GPU, 10 H100" in refused.value.message
    assert ("pods", NS, "infer") not in fake.objects


def test_a_new_gpu_pool_does_not_redeploy_running_gpu_groups(fake: FakeKubeApi,
                                                             engine: KubeEngine) -> None:
    """Another H100 product joining changes the affinity a new Pod would get, not the
    running group: the same spec again keeps its Pod; another SKU redeploys it."""
    add_gpu_nodes(fake)
    engine.run(gpu_group())
    first = uid(fake, "pods", "train")
    fake.add_node("h100-c", gpus=8, gpu_product="NVIDIA-H100-PCIe")
    engine.run(gpu_group())
    assert uid(fake, "pods", "train") == first
    engine.run(gpu_group(sku="GPU", count=1))
    assert uid(fake, "pods", "train") not in (None, first)
    pod = fake.get("pods", NS, "train")
    assert pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["operator"] == "DoesNotExist"


def test_an_unschedulable_gpu_group_is_returned_waiting_at_once(
        fake: FakeKubeApi, kubelet: Kubelet, tmp_path: Path) -> None:
    """No node has the GPUs free: run() returns as soon as the scheduler says so (not at
    the start timeout), the group Pending with its containers Waiting, the scheduler's
    words a Warning event, no failure; once a kubelet runs it, Running."""
    add_gpu_nodes(fake)
    kubelet.paused = True
    made = KubeEngine(replace(settings(fake, tmp_path), start_timeout_s=60), locate=locate)
    message = "0/6 nodes are available: 2 Insufficient nvidia.com/gpu."

    def schedule() -> None:
        eventually(lambda: ("pods", NS, "train") in fake.objects, what="the Pod")
        fake.set_unschedulable(NS, "train", message)

    scheduler = threading.Thread(target=schedule, daemon=True)
    try:
        scheduler.start()
        begun = time.monotonic()
        view = made.run(gpu_group(count=16))
        assert time.monotonic() - begun < 30  # the scheduler's word, not the timeout
        assert view.state == "Pending"
        assert view.failure is None
        assert view.containers[0].current.state == "Waiting"
        assert [(e.name, e.type, e.message) for e in view.events] == [
            ("FailedScheduling", "Warning", message)]
        kubelet.paused = False
        eventually(lambda: made.view("id-train").state == "Running", what="scheduled")
    finally:
        scheduler.join(timeout=10)
        made.close()


def stored(*specs: GroupSpec) -> Any:
    """A recall as the store answers it: these specs, by id."""
    by_id = {s.id: s for s in specs}
    return lambda group_id: by_id.get(group_id)


def test_after_a_restart_a_deleted_anchor_is_made_again_from_the_store(
        fake: FakeKubeApi, kubelet: Kubelet, engine: KubeEngine, tmp_path: Path) -> None:
    """A restarted engine holds no spec; the anchor deleted by hand (its objects go with
    it): the group is made again from the store's spec, with a new Service (its address
    may change, said in a Warning event), not forgotten."""
    engine.run(group())
    fake.set_service_ingress(NS, "web", "20.1.2.3")
    old_service = uid(fake, "services", "web")
    engine.close()
    again = KubeEngine(settings(fake, tmp_path), locate=locate, recall=stored(group()))
    try:
        fake.delete("configmaps", NS, "web.anchor")
        eventually(lambda: uid(fake, "configmaps", "web.anchor") and uid(fake, "pods", "web")
                   and uid(fake, "services", "web"), what="the group made again")
        assert uid(fake, "services", "web") != old_service
        check_group(in_namespace(fake))
        view = eventually(lambda: again.view("id-web"), what="Running",
                          until=lambda v: v.state == "Running")
        (event,) = [e for e in view.events if e.name == "GroupRecreated"]
        assert event.type == "Warning"
        assert "public IP address may have changed" in event.message
        assert "s3cret" not in str(fake.get("configmaps", NS, "web.anchor"))
    finally:
        again.close()


def test_a_deleted_anchor_the_store_does_not_want_running_is_forgotten(
        fake: FakeKubeApi, kubelet: Kubelet, engine: KubeEngine, tmp_path: Path) -> None:
    """The store recalls no spec (the group stopped or deleted meanwhile): the engine
    forgets the group and makes nothing; the control plane decides."""
    engine.run(group())
    engine.close()
    again = KubeEngine(settings(fake, tmp_path), locate=locate, recall=stored())
    try:
        assert again.group_ids() == ["id-web"]
        fake.delete("configmaps", NS, "web.anchor")
        eventually(lambda: again.group_ids() == [], what="the group forgotten")
        assert uid(fake, "pods", "web") is None
    finally:
        again.close()


def test_an_anchor_deleted_while_no_skiff_ran_is_recreated_by_the_first_run(
        fake: FakeKubeApi, kubelet: Kubelet, engine: KubeEngine, tmp_path: Path) -> None:
    """The anchor went while skiff was down: the new engine does not know the group; the
    reconciler's first pass runs it, and since the store says it was deployed, the view
    says it was made again. A group deployed for the first time says nothing of it."""
    engine.run(group())
    engine.close()
    fake.delete("configmaps", NS, "web.anchor")
    again = KubeEngine(settings(fake, tmp_path), locate=locate, recall=stored(group()))
    try:
        assert again.group_ids() == []
        view = again.run(group())
        assert [e.name for e in view.events] == ["GroupRecreated"]
        fresh = again.run(group("api", id="id-api"))
        assert "GroupRecreated" not in [e.name for e in fresh.events]
    finally:
        again.close()


def test_a_gpu_pod_made_again_is_placed_on_its_skus_nodes_as_they_are_now(
        fake: FakeKubeApi, engine: KubeEngine) -> None:
    """The H100 pools replaced by another H100 product, then the Pod deleted by hand: the
    Pod made again from the anchor names the new pool's label, not the gone ones'."""
    add_gpu_nodes(fake)
    engine.run(gpu_group())
    first = uid(fake, "pods", "train")
    fake.add_node("h100-c", gpus=8, gpu_product="NVIDIA-H100-PCIe")
    fake.delete("nodes", "", "h100-a")
    fake.delete("nodes", "", "h100-b")
    fake.delete("pods", NS, "train")
    eventually(lambda: uid(fake, "pods", "train") not in (None, first), what="made again")
    pod = fake.get("pods", NS, "train")
    assert pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == ["NVIDIA-H100-PCIe"]
