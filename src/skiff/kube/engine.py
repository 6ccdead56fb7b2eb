"""The Kubernetes backend's engine: container groups as Pods on a cluster the operator runs.

:class:`KubeEngine` is the second implementation of :class:`~skiff.core.engine.Engine`
(the first runs groups on this node): the same API, store and reconcile loop, with each
group made of the objects :mod:`skiff.kube.objects` builds, in one namespace per
subscription and resource group (made and labelled on first use).

How it keeps the protocol's promises:

- **run** applies the group's **anchor** ConfigMap first, then every other object with
  an owner reference to the anchor's uid (create, or replace the one there). The anchor
  keeps what the engine must know after a restart of skiff: the group id, the Pod as
  applied, a fingerprint of everything but the config maps' pairs, the pairs themselves
  and whether the group is stopped. A Pod whose fingerprint (an annotation) is the
  spec's is adopted as it is; another is deleted and made again (a Pod's spec cannot be
  changed in place); a change of config maps' pairs alone rewrites the ConfigMaps, which
  the kubelet syncs into the running containers' files, with a ``ConfigMapUpdated``
  event on each container whose map changed, as the local engine records it.
- **view**, **addresses**, **phases** and **serving** read a cache that watches keep
  current (Pods and Services labelled as skiff's, Events about Pods), never the API
  server per request; :mod:`skiff.kube.status` translates.
- **The reconciler owns the objects**: the Pod watch seeing a group's Pod deleted by
  someone else (the group neither stopped, restarted nor deleted by skiff) makes it
  again from the anchor; the Service, and so the group's public address, stays. Where
  the anchor went too (its dependents with it), the whole group is made again from the
  spec last run or, since a restart of skiff, from the store's (``recall``); an anchor
  gone while no skiff ran is found when the control plane first runs the group and the
  store says it was deployed. Its Service is then a new one: a ``GroupRecreated``
  Warning event says the address may have changed.
- **GPUs** (:mod:`skiff.kube.gpus`): capacity by SKU from the Ready nodes' allocatable
  ``nvidia.com/gpu`` and GFD's product labels; a GPU group's Pod gets the node affinity
  of the product labels of its SKU's nodes, listed when it is applied (a SKU no node
  has: 409 ServiceUnavailable). A Pod no node can take yet is returned by run() at once,
  Pending (:mod:`skiff.kube.status`).
- **stop** deletes the Pod and keeps the anchor and the Service (ACI's stopped group
  keeps its definition); **start** makes the Pod again; **restart** deletes and makes it;
  **delete** deletes the anchor, whose dependents Kubernetes' garbage collector deletes,
  and the Pod explicitly (so that it goes first); **sweep** deletes the groups not kept
  and every object labelled as skiff's that belongs to none of them.
- Isolation ``Sandbox`` needs the operator's RuntimeClass (``--runtime-class``, gVisor's):
  a group asking for it where the cluster has none is refused with an ARM error.

The official client is reached through :mod:`skiff.kube.cluster` only; the streams
(logs, attach, exec) through :mod:`skiff.kube.streams`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from skiff.core.engine import ExecStream, NodeCapacity
from skiff.core.metrics import ContainerSample, GroupPhase, GroupSample
from skiff.core.spec import GroupSpec, changed_keys, config_maps
from skiff.core.view import Event, GroupView, State, record_event
from skiff.errors import ArmError, ClusterError, GroupNotFound, InvalidInput
from skiff.kube import gpus, naming, objects, status
from skiff.kube.cluster import Cluster, Connection, Watcher

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: The pause before a failed repair is tried again, doubled each time up to the most.
REPAIR_PAUSE_S, MAX_REPAIR_PAUSE_S = 0.5, 60.0
#: The label only anchors carry (their name alone does not select them).
ROLE_LABEL = naming.PREFIX + "role"
#: The annotation of a Pod's fingerprint, and of a virtual network's id on its policy.
FINGERPRINT = naming.PREFIX + "fingerprint"
VNET_ANNOTATION = naming.PREFIX + "vnet-id"
MANAGED = f"{naming.MANAGED_BY}={naming.MANAGER}"
#: The subscription and resource group of groups no locator places (tests, a bare engine).
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class KubeSettings:
    """How ``skiff serve --backend kubernetes`` reaches and uses the cluster."""

    #: The kubeconfig file (None: ``$KUBECONFIG``, ``~/.kube/config``, or in-cluster).
    kubeconfig: Path | None = None
    #: The kubeconfig's context (None: its current one).
    context: str | None = None
    #: The prefix of the namespaces skiff makes (:func:`naming.namespace_name`).
    namespace_prefix: str = "skiff"
    #: The RuntimeClass of isolation Sandbox groups (the cluster's gVisor one).
    runtime_class: str = "gvisor"
    #: The image of the init containers that clone gitRepo volumes.
    git_image: str = "docker.io/alpine/git"
    #: The per-group disk limit (bytes; None: none), as ``ephemeral-storage`` on the
    #: group's first container: ``skiff serve`` sets the node's (``--group-disk-gb``).
    disk_bytes: int | None = None
    #: How long run() and start() wait for the first containers to start (image pulls
    #: included) before returning the group's view as it is (Pending).
    start_timeout_s: float = 120.0
    #: How long a deleted Pod may take to go (its grace) before it is made again.
    delete_timeout_s: float = 120.0
    #: Seconds each watch lasts on the server before it is made again.
    watch_timeout_s: int = 60
    #: How long the engine's start waits for the watches' first lists.
    sync_timeout_s: float = 30.0
    #: Where the Pods reach skiff's token endpoint (``https://skiff.example:8443``, or
    #: ``http://`` with :attr:`identity_listen`): each group with a managed identity gets
    #: ``<url>/identity/<uid>/token`` as ``IDENTITY_ENDPOINT``. None: such groups are
    #: refused (the server's :mod:`skiff.metadata.appservice`; the engine only passes on
    #: what the locator gives).
    identity_url: str | None = None
    #: A plain-HTTP address (``HOST:PORT``) serving the token endpoint alone, for an
    #: ``http://`` :attr:`identity_url`; None: only the API's HTTPS listener serves it.
    identity_listen: str | None = None


@dataclass(frozen=True)
class Where:
    """Where a group goes beyond its spec: its ARM resource group and public address."""

    subscription: str = DEFAULT_SUBSCRIPTION
    resource_group: str = "default"
    #: ``ipAddress.type`` Public: a LoadBalancer Service.
    public: bool = False
    #: The FQDN of its DNS name label (external-dns' annotation), if any.
    dns_name: str | None = None
    #: A group with a managed identity: its token endpoint's URL and header secret
    #: (:attr:`skiff.kube.objects.Placement.identity`); None: none.
    identity: tuple[str, str] | None = None


#: Where the control plane places a group (from its store record); the default: every
#: group in the default resource group, public when it declares ports and no subnet.
Locate = Callable[[GroupSpec], Where]


def default_locate(spec: GroupSpec) -> Where:
    return Where(public=bool(spec.ip_ports) and spec.subnet is None)


#: The spec of a group as the store holds it, where the group was deployed and should
#: run (desired running, not evicted, no deployment of it under way); None otherwise.
#: The engine asks when a group's anchor is gone and it holds no spec of its own (since
#: skiff restarted): to make the group again rather than forget it.
Recall = Callable[[str], GroupSpec | None]


def recall_nothing(group_id: str) -> GroupSpec | None:
    return None


#: The event of a group made again after its anchor (and so all its objects) went.
RECREATED = "GroupRecreated"


@dataclass
class _Group:
    """What the engine knows of a group: its anchor's contents, and events of its own."""

    id: str
    name: str
    namespace: str
    anchor_uid: str
    #: The Pod as applied, without owner references.
    pod: Obj
    fingerprint: str
    config_maps: dict[str, dict[str, str]]
    public: bool
    stopped: bool = False
    stopped_at: float | None = None
    #: The spec last run (in memory only: its secrets are never written down).
    spec: GroupSpec | None = None
    #: Events the engine records itself (ConfigMapUpdated), by container ("" the group).
    events: dict[str, list[Event]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


def _fingerprint(found: Sequence[Obj], config_map_prefix: str) -> str:
    """A digest of the group's objects but its config maps' (their pairs change in place)
    and a GPU Pod's node affinity: that lists the product labels of the cluster's GPU
    nodes of its SKU, which change as node pools come and go, and a new pool must not
    redeploy the groups running on the others (the SKU itself is in an annotation)."""
    kept = [_without_affinity(o) for o in found
            if not (o["kind"] == "ConfigMap"
                    and o["metadata"]["name"].startswith(config_map_prefix))]
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _without_affinity(obj: Obj) -> Obj:
    if obj["kind"] != "Pod" or "affinity" not in obj["spec"]:
        return obj
    return {**obj, "spec": {k: v for k, v in obj["spec"].items() if k != "affinity"}}


def _quantity(text: Any) -> Decimal:
    """A Kubernetes quantity (``3800m``, ``16Gi``, ``2``) as a number; 0 if unreadable."""
    from kubernetes.utils import parse_quantity

    try:
        return Decimal(parse_quantity(str(text)))
    except (ValueError, TypeError, ArithmeticError):
        return Decimal(0)


def _seconds(text: Any) -> float:
    """A metrics window (``30s``, ``15.2s``) in seconds; 0 if it is another form."""
    try:
        return float(str(text or "0s").removesuffix("s"))
    except ValueError:
        return 0.0


def _streams() -> Any:
    """:mod:`skiff.kube.streams` (logs, attach, exec over the API server), loaded when a
    stream is asked for."""
    return importlib.import_module("skiff.kube.streams")


class KubeEngine:
    """Runs container groups as Pods on a Kubernetes cluster (the module says how)."""

    def __init__(self, settings: KubeSettings | None = None, *, locate: Locate | None = None,
                 recall: Recall | None = None, cluster: Cluster | None = None) -> None:
        self.settings = settings or KubeSettings()
        naming.check_prefix(self.settings.namespace_prefix)
        if not naming.is_subdomain(self.settings.runtime_class):
            raise InvalidInput(f"the RuntimeClass {self.settings.runtime_class[:80]!r} is not "
                               "a DNS-1123 subdomain")
        self.locate = locate or default_locate
        self.recall = recall or recall_nothing
        self.cluster = cluster or Cluster(Connection(self.settings.kubeconfig,
                                                     self.settings.context))
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._groups: dict[str, _Group] = {}
        self._namespaces: set[str] = set()
        self._pods: dict[tuple[str, str], Obj] = {}
        #: The last state seen of each Pod, kept after it is deleted (a stopped view).
        self._last_pods: dict[tuple[str, str], Obj] = {}
        self._services: dict[tuple[str, str], Obj] = {}
        self._events: dict[tuple[str, str], dict[str, Obj]] = {}
        self._usage: dict[tuple[str, str], tuple[float, float]] = {}
        self._metrics_back_at = 0.0
        self._repairs: queue.Queue[str | None] = queue.Queue()
        #: A failed repair's next pause, by group (the repair thread's alone).
        self._repair_pauses: dict[str, float] = {}
        #: Called with a group's id, outside the engine's locks, when its Service's
        #: load-balancer address comes, goes or moves (the server republishes its DNS
        #: name: the address may come long after the group was run).
        self.on_address: Callable[[str], object] | None = None
        try:
            self._adopt()
        except BaseException:
            self.cluster.close()
            raise
        self._watchers = [
            Watcher(self.cluster, "Pod", labels=MANAGED, on_list=self._pods_listed,
                    on_change=self._pod_changed, timeout_s=self.settings.watch_timeout_s),
            Watcher(self.cluster, "Service", labels=MANAGED, on_list=self._services_listed,
                    on_change=self._service_changed, timeout_s=self.settings.watch_timeout_s),
            Watcher(self.cluster, "Event", fields="involvedObject.kind=Pod",
                    on_list=self._events_listed, on_change=self._event_changed,
                    timeout_s=self.settings.watch_timeout_s),
        ]
        self._repairer = threading.Thread(target=self._repair_loop, daemon=True,
                                          name="kube-repair")
        self._repairer.start()
        for watcher in self._watchers:
            watcher.start()
        deadline = time.monotonic() + self.settings.sync_timeout_s
        for watcher in self._watchers:
            if not watcher.synced.wait(max(0.0, deadline - time.monotonic())):
                log.warning("the %s watch has not listed yet; going on", watcher.kind)
        if self._watchers[0].synced.is_set():
            # Pods deleted while no skiff watched: made again as if seen going.
            with self._lock:
                missing = [g.id for g in self._groups.values() if not g.stopped
                           and (g.namespace, g.name) not in self._pods]
            for group_id in missing:
                self._repairs.put(group_id)

    # ---- the cache the watches feed ---------------------------------------------------

    def _ours(self, namespace: str) -> bool:
        """Whether ``namespace`` may be this skiff's (a cheap filter of the Events kept)."""
        return namespace.startswith(self.settings.namespace_prefix + "-") \
            or namespace in self._namespaces

    def _pods_listed(self, items: list[Obj]) -> None:
        with self._changed:
            seen = {self._key(o): o for o in items}
            gone = [k for k in self._pods if k not in seen]
            self._pods = seen
            self._last_pods.update(seen)
            self._changed.notify_all()
        for key in gone:
            self._pod_gone(key)

    def _pod_changed(self, kind: str, obj: Obj) -> None:
        key = self._key(obj)
        with self._changed:
            if kind == "DELETED":
                if self._pods.get(key, obj)["metadata"].get("uid") == obj["metadata"].get("uid"):
                    self._pods.pop(key, None)
                self._last_pods[key] = obj
            else:
                self._pods[key] = self._last_pods[key] = obj
            self._changed.notify_all()
        if kind == "DELETED":
            self._pod_gone(key)

    def _pod_gone(self, key: tuple[str, str]) -> None:
        """A group's Pod went: unless skiff stopped or deleted the group, make it again
        (on the repair thread: the watch goes on meanwhile)."""
        with self._lock:
            group = next((g for g in self._groups.values()
                          if (g.namespace, g.name) == key), None)
            if group is not None and not group.stopped:
                self._repairs.put(group.id)

    def _services_listed(self, items: list[Obj]) -> None:
        with self._changed:
            before = self._services
            self._services = {self._key(o): o for o in items}
            moved = [k for k in before.keys() | self._services.keys()
                     if status.service_address(before.get(k))
                     != status.service_address(self._services.get(k))]
            self._changed.notify_all()
        self._addresses_moved(moved)

    def _service_changed(self, kind: str, obj: Obj) -> None:
        key = self._key(obj)
        with self._changed:
            before = status.service_address(self._services.get(key))
            if kind == "DELETED":
                self._services.pop(key, None)
            else:
                self._services[key] = obj
            moved = before != status.service_address(self._services.get(key))
            self._changed.notify_all()
        if moved:
            self._addresses_moved([key])

    def _addresses_moved(self, keys: Collection[tuple[str, str]]) -> None:
        """Tell :attr:`on_address` of the groups whose Services these are."""
        told = self.on_address
        if told is None or not keys:
            return
        with self._lock:
            found = [g.id for g in self._groups.values()
                     if (g.namespace, naming.service_name(g.name)) in keys]
        for group_id in found:
            try:
                told(group_id)
            except Exception:  # the watch must go on
                log.exception("the address of group %s could not be passed on", group_id)

    def _event_key(self, obj: Obj) -> tuple[str, str] | None:
        involved = obj.get("involvedObject") or {}
        namespace = involved.get("namespace") or obj["metadata"].get("namespace") or ""
        if involved.get("kind") != "Pod" or not self._ours(namespace):
            return None
        return namespace, str(involved.get("name") or "")

    def _events_listed(self, items: list[Obj]) -> None:
        with self._changed:
            self._events = {}
            for obj in items:
                key = self._event_key(obj)
                if key is not None:
                    self._events.setdefault(key, {})[obj["metadata"]["name"]] = obj
            self._changed.notify_all()

    def _event_changed(self, kind: str, obj: Obj) -> None:
        key = self._event_key(obj)
        if key is None:
            return
        with self._changed:
            found = self._events.setdefault(key, {})
            if kind == "DELETED":
                found.pop(obj["metadata"]["name"], None)
            else:
                found[obj["metadata"]["name"]] = obj
                if len(found) > 200:  # the oldest go first
                    for name in sorted(found, key=lambda n: status.timestamp(
                            found[n].get("lastTimestamp")) or 0.0)[:len(found) - 200]:
                        del found[name]
            self._changed.notify_all()

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]

    # ---- the anchors: what survives a restart of skiff ------------------------------------

    def _own_namespaces(self) -> set[str]:
        """The namespaces this skiff made (its prefix's): skiff's namespaces whose name is
        the one :func:`naming.namespace_name` gives their subscription and resource group
        (annotations) under this prefix. Another skiff on the cluster, under another
        prefix, keeps its own: nothing here adopts, sweeps or removes its objects."""
        found = set()
        for space in self.cluster.call("core", "list_namespace",
                                       label_selector=MANAGED).get("items") or []:
            meta = space["metadata"]
            notes = meta.get("annotations") or {}
            subscription = notes.get(naming.PREFIX + "subscription")
            resource_group = notes.get(naming.PREFIX + "resource-group")
            if subscription is not None and resource_group is not None and meta["name"] == \
                    naming.namespace_name(subscription, resource_group,
                                          prefix=self.settings.namespace_prefix):
                found.add(meta["name"])
        with self._lock:
            self._namespaces |= found
        return found

    def _adopt(self) -> None:
        """Know every group an earlier skiff made, from its anchor."""
        ours = self._own_namespaces()
        listing = self.cluster.list_all("ConfigMap", labels=f"{MANAGED},{ROLE_LABEL}=anchor")
        for anchor in listing.get("items") or []:
            if anchor["metadata"].get("namespace") not in ours:
                continue
            group = self._from_anchor(anchor)
            if group is not None:
                self._groups[group.id] = group
                self._namespaces.add(group.namespace)

    def _from_anchor(self, anchor: Obj) -> _Group | None:
        data, meta = anchor.get("data") or {}, anchor["metadata"]
        try:
            pod = json.loads(data["pod"])
            maps = json.loads(data.get("config-maps") or "{}")
            return _Group(id=data["group-id"], name=pod["metadata"]["name"],
                          namespace=meta["namespace"], anchor_uid=meta["uid"], pod=pod,
                          fingerprint=data.get("fingerprint") or "", config_maps=maps,
                          public=data.get("public") == "true",
                          stopped=data.get("stopped") == "true")
        except (KeyError, ValueError, TypeError):
            log.warning("anchor %s/%s is not skiff's own; left alone", meta.get("namespace"),
                        meta.get("name"))
            return None

    def _anchor(self, group: _Group, base: Obj) -> Obj:
        anchor: Obj = json.loads(json.dumps(base))
        anchor["metadata"]["labels"][ROLE_LABEL] = "anchor"
        anchor["data"] = {
            "group-id": group.id, "pod": json.dumps(group.pod, sort_keys=True),
            "fingerprint": group.fingerprint,
            "config-maps": json.dumps(group.config_maps, sort_keys=True),
            "public": "true" if group.public else "false",
            "stopped": "true" if group.stopped else "false"}
        return anchor

    def _write_anchor(self, group: _Group) -> None:
        current = self.cluster.read("ConfigMap", group.namespace,
                                    naming.object_name(group.name, "anchor"))
        if current is None:
            raise GroupNotFound(f"container group {group.id} has no anchor on the cluster")
        anchor = self._anchor(group, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": current["metadata"]})
        anchor["metadata"] = {k: v for k, v in current["metadata"].items()
                              if k in ("name", "namespace", "labels", "annotations")}
        self.cluster.replace(anchor)

    # ---- groups -----------------------------------------------------------------

    def _group(self, group_id: str) -> _Group:
        with self._lock:
            group = self._groups.get(group_id)
        if group is None:
            raise GroupNotFound(f"container group {group_id} not found on the cluster")
        return group

    def _ensure_namespace(self, name: str, where: Where) -> None:
        if name in self._namespaces:
            return
        if self.cluster.read("Namespace", None, name) is None:
            try:
                self.cluster.create(objects.namespace_object(
                    name, subscription=where.subscription, resource_group=where.resource_group))
            except ClusterError as exc:
                if exc.status != 409:
                    raise
        with self._lock:
            self._namespaces.add(name)

    def _check_sandbox(self) -> None:
        name = self.settings.runtime_class
        if self.cluster.read_runtime_class(name) is None:
            raise ArmError(400, "SandboxIsolationUnavailable",
                           f"isolation Sandbox needs the RuntimeClass {name!r} (gVisor) on the "
                           "cluster, and it has none of that name: the operator installs "
                           "gVisor and its RuntimeClass, or names another with "
                           "--runtime-class")

    def run(self, spec: GroupSpec) -> GroupView:
        """Apply the group's objects (anchor first), redeploying its Pod only if it changed;
        the view once its first containers started (or it failed, or the wait ended)."""
        with self._lock:
            old = self._groups.get(spec.id)
        if old is not None and old.name != spec.name:
            self.delete(spec.id)  # a new name is a new Pod, Service and anchor
            old = None
        lock = old.lock if old is not None else threading.RLock()
        with lock:
            self._apply(spec, old, lock)
        return self._wait_started(spec.id)

    def _apply(self, spec: GroupSpec, old: _Group | None, lock: threading.RLock, *,
               recreating: bool = False) -> None:
        """Apply the group's objects; ``recreating``: its anchor went behind skiff's back
        (found so here too when the engine knows no such group but the store says it was
        deployed and should run: the anchor went while no skiff watched), and the group
        gets a :data:`RECREATED` event."""
        where = self.locate(spec)
        namespace = naming.namespace_name(where.subscription, where.resource_group,
                                          prefix=self.settings.namespace_prefix)
        if old is not None and old.namespace != namespace:
            self.delete(spec.id)
            old = None
        sku = objects.gpu_sku(spec)  # one SKU, no sandbox: ArmError otherwise
        if spec.isolation == "sandbox":
            self._check_sandbox()
        products = None
        if sku is not None:
            found_gpus = self._cluster_gpus()
            objects.gpu_placement(sku, found_gpus.products, found_gpus.counts)
            products = found_gpus.products
        placement = objects.Placement(
            namespace=namespace, public=where.public, dns_name=where.dns_name,
            sandbox_runtime_class=self.settings.runtime_class,
            git_image=self.settings.git_image, disk_bytes=self.settings.disk_bytes,
            gpu_products=products, identity=where.identity)
        found = objects.group_objects(spec, placement)
        self._ensure_namespace(namespace, where)
        base, rest = found[0], found[1:]
        fingerprint = _fingerprint(rest, naming.object_name(spec.name, "configmap") + ".")
        pod = next(o for o in rest if o["kind"] == "Pod")
        pod["metadata"].setdefault("annotations", {})[FINGERPRINT] = fingerprint
        previous_maps = old.config_maps if old is not None else None
        if previous_maps is None:
            existing = self.cluster.read("ConfigMap", namespace, base["metadata"]["name"])
            adopted = None if existing is None else self._from_anchor(existing)
            previous_maps = adopted.config_maps if adopted is not None else {}
            if existing is None and not recreating:
                recreating = self.recall(spec.id) is not None
        group = _Group(id=spec.id, name=spec.name, namespace=namespace, anchor_uid="",
                       pod=pod, fingerprint=fingerprint, config_maps=config_maps(spec),
                       public=placement.public and bool(spec.ip_ports) and spec.subnet is None,
                       spec=spec, events=old.events if old is not None else {}, lock=lock)
        anchor = self.cluster.apply(self._anchor(group, base))
        group.anchor_uid = anchor["metadata"]["uid"]
        with self._lock:
            self._groups[spec.id] = group
        if recreating:
            self._record_recreated(group, namespace)
        for obj in rest:
            if obj["kind"] == "Pod":
                continue
            owned = objects.own(obj, spec.name, group.anchor_uid)
            if obj["kind"] == "NetworkPolicy" and naming.VNET_LABEL in obj["metadata"]["labels"]:
                self._apply_vnet_policy(owned, spec)
            else:
                self.cluster.apply(owned)
        current = self.cluster.read("Pod", namespace, spec.name)
        if current is not None and (current["metadata"].get("annotations") or {}).get(
                FINGERPRINT) == fingerprint and current["metadata"].get("deletionTimestamp") \
                is None:
            for name, keys in changed_keys(previous_maps, group.config_maps).items():
                record_event(group.events.setdefault(name, []), "ConfigMapUpdated",
                             f"config map updated in place: {', '.join(keys)[:200]}")
            return
        if current is not None:
            self._delete_pod(group, current)
        self._create_pod(group, placed=True)

    def _record_recreated(self, group: _Group, namespace: str) -> None:
        """Log and record that the group's objects are made again. Its Service is new
        unless it outlived the anchor (the garbage collector had not reached it): a
        LoadBalancer made again gets a new address from the cloud, as a deleted one
        would, and a Pod made again a new Pod IP."""
        service = self.cluster.read("Service", namespace, naming.service_name(group.name)) \
            if group.public else None
        if not group.public:
            address = "its IP address may have changed (a new Pod)"
        elif service is None:
            address = ("its public IP address may have changed (a new LoadBalancer "
                       "Service)")
        else:
            address = "its Service, and public IP address, are kept"
        log.warning("container group %s: its anchor was deleted behind skiff's back; made "
                    "again from its definition: %s", group.name, address)
        record_event(group.events.setdefault("", []), RECREATED,
                     "the group's objects on the cluster were deleted behind skiff's back "
                     f"and made again from its definition; {address}", warning=True)

    def _apply_vnet_policy(self, policy: Obj, spec: GroupSpec) -> None:
        """The virtual network's policy, shared by its groups in the namespace: every
        member's anchor among its owners, so that it goes with the last of them."""
        assert spec.subnet is not None
        policy["metadata"]["annotations"] = {VNET_ANNOTATION: spec.subnet.vnet}
        meta = policy["metadata"]
        current = self.cluster.read("NetworkPolicy", meta["namespace"], meta["name"])
        if current is not None:
            owners = {o["uid"]: o for o in current["metadata"].get("ownerReferences") or []}
            for owner in meta["ownerReferences"]:
                owners[owner["uid"]] = owner
            meta["ownerReferences"] = list(owners.values())
        self.cluster.apply(policy)

    def _create_pod(self, group: _Group, *, placed: bool = False) -> None:
        """Create the group's Pod as the anchor keeps it; a GPU Pod not ``placed`` just
        now (a start, restart or repair from the anchor) gets the node affinity of its
        SKU's nodes as they are now, where any are: a pool replaced since it was applied
        does not leave it waiting for nodes that are gone."""
        pod = objects.own(json.loads(json.dumps(group.pod)), group.name, group.anchor_uid)
        sku = (pod["metadata"].get("annotations") or {}).get(objects.GPU_SKU_ANNOTATION)
        if sku and not placed:
            found = self._cluster_gpus()
            affinity = gpus.node_affinity(sku, found.products) if found.counts.get(sku) \
                else None
            if affinity is not None:
                pod["spec"]["affinity"] = affinity
        try:
            made = self.cluster.create(pod)
        except ClusterError as exc:
            if exc.status != 409:
                raise
            return  # made meanwhile (a repair and a start crossing)
        with self._changed:
            self._pods.setdefault((group.namespace, group.name), made)
            self._changed.notify_all()

    def _delete_pod(self, group: _Group, current: Obj | None = None) -> None:
        """Delete the group's Pod and wait (bounded) until it is gone."""
        if current is None:
            current = self.cluster.read("Pod", group.namespace, group.name)
            if current is None:
                return
        uid = current["metadata"].get("uid")
        self.cluster.delete("Pod", group.namespace, group.name)
        deadline = time.monotonic() + self.settings.delete_timeout_s
        while time.monotonic() < deadline:
            found = self.cluster.read("Pod", group.namespace, group.name)
            if found is None or found["metadata"].get("uid") != uid:
                break
            with self._changed:
                self._changed.wait(0.5)
        else:
            raise ClusterError(f"the Pod of container group {group.name!r} was not gone after "
                               f"{self.settings.delete_timeout_s:.0f} s", status=0)
        with self._changed:
            key = (group.namespace, group.name)
            if self._pods.get(key, {}).get("metadata", {}).get("uid") == uid:
                self._last_pods[key] = self._pods.pop(key)
            self._changed.notify_all()

    def _unschedulable(self, group_id: str) -> bool:
        """Whether the scheduler found no node for the group's Pod (yet)."""
        group = self._group(group_id)
        with self._lock:
            pod = self._pods.get((group.namespace, group.name))
        return pod is not None and status.unschedulable(pod) is not None

    def _wait_started(self, group_id: str) -> GroupView:
        """The view once the group's first containers started, it failed or stopped, or
        no node can take its Pod yet (it waits Pending, with the scheduler's words as
        an event: a node freed or added places it later); at the start timeout, as is."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            view = self.view(group_id)  # no lock held: view() takes the group's
            if view.stopped or view.failure is not None \
                    or view.state in ("Succeeded", "Failed") \
                    or (view.state == "Running" and all(
                        c.current.state != "Waiting" or c.restart_count > 0
                        for c in view.containers)) \
                    or self._unschedulable(group_id):
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                return view
            with self._changed:
                self._changed.wait(min(left, 0.5))

    def view(self, group_id: str) -> GroupView:
        """The group as the watches last saw its Pod, Events and Service."""
        group = self._group(group_id)
        key = (group.namespace, group.name)
        with self._lock:
            pod = self._pods.get(key)
            events = list((self._events.get(key) or {}).values())
            service = self._services.get((group.namespace, naming.service_name(group.name)))
            if pod is None:
                pod = self._last_pods.get(key) if group.stopped else None
            if pod is None or pod["metadata"].get("uid") is None:
                pod = group.pod
        view = status.group_view(pod, group_id=group.id, name=group.name, events=events,
                                 service=service if group.public else None,
                                 stopped=group.stopped)
        if group.public and service is None:
            view.ip = None
        if group.stopped:
            view.ip = None
            for container in view.all_containers():
                if container.current.state != "Terminated":
                    container.current = State("Terminated",
                                              start_time=container.current.start_time,
                                              finish_time=group.stopped_at,
                                              detail_status="Stopped")
        with group.lock:
            for name, recorded in group.events.items():
                target = view.container(name)
                (target.events if target is not None else view.events).extend(recorded)
        return view

    def serving(self, group_id: str) -> bool:
        """Whether the group's Pod is Ready (its ``Ready`` condition True): the kubelet's
        word that its containers run and their readiness probes pass. A Pod whose
        containers declare no readiness probe is Ready once they run, whether or not
        their ports accept connections yet."""
        group = self._group(group_id)
        with self._lock:
            pod = self._pods.get((group.namespace, group.name))
        if pod is None or group.stopped:
            return False
        conditions = (pod.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def group_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def addresses(self) -> dict[str, str]:
        found = {}
        with self._lock:
            groups = list(self._groups.values())
        for group in groups:
            if group.stopped:
                continue
            with self._lock:
                pod = self._pods.get((group.namespace, group.name)) or {}
                service = self._services.get((group.namespace, naming.service_name(group.name)))
            if group.public:
                ingress = ((service or {}).get("status", {}).get("loadBalancer") or {}).get(
                    "ingress") or []
                ip = next((i["ip"] for i in ingress if i.get("ip")), None)
            else:
                ip = (pod.get("status") or {}).get("podIP")
            if ip:
                found[group.id] = ip
        return found

    def phases(self) -> dict[str, GroupPhase]:
        found = {}
        for group_id in self.group_ids():
            try:
                view = self.view(group_id)
            except GroupNotFound:
                continue
            ended = None
            if view.state in ("Succeeded", "Failed"):
                ends = [c.current.finish_time for c in view.containers
                        if c.current.finish_time is not None]
                ended = max(ends) if ends else None
            found[group_id] = GroupPhase(view.state, ended)
        return found

    def samples(self) -> list[GroupSample]:
        """Usage from ``metrics.k8s.io`` PodMetrics (metrics-server), where the cluster
        serves it: memory as read, CPU time summed here from the rates it gives over each
        window. None at all (and no asking for five minutes) where it is not served."""
        now = time.monotonic()
        if now < self._metrics_back_at:
            return []
        try:
            listing = self.cluster.call("custom", "list_cluster_custom_object",
                                        "metrics.k8s.io", "v1beta1", "pods",
                                        label_selector=MANAGED)
        except ClusterError as exc:
            if exc.status in (403, 404, 503):
                self._metrics_back_at = now + 300
            else:
                log.warning("reading the groups' metrics: %s", exc.message)
            return []
        with self._lock:
            by_pod = {(g.namespace, g.name): g for g in self._groups.values() if not g.stopped}
            running = {g.id for g in by_pod.values()}
        for key in [k for k in self._usage if k[0] not in running]:
            del self._usage[key]  # the counters of a stopped or deleted group start anew
        found = []
        for item in listing.get("items") or []:
            group = by_pod.get(self._key(item))
            if group is None:
                continue
            window = _seconds(item.get("window"))
            containers = []
            for container in item.get("containers") or []:
                usage = container.get("usage") or {}
                cores = float(_quantity(usage.get("cpu", "0")))
                key = (group.id, str(container.get("name")))
                total, last = self._usage.get(key, (0.0, now - window))
                total += cores * max(0.0, now - last) * 1e9
                self._usage[key] = (total, now)
                containers.append(ContainerSample(
                    name=str(container.get("name")), cpu_ns=int(total),
                    memory_bytes=int(_quantity(usage.get("memory", "0")))))
            found.append(GroupSample(group_id=group.id, at=now,
                                     containers=tuple(sorted(containers,
                                                             key=lambda c: c.name))))
        return found

    def stop(self, group_id: str) -> GroupView:
        """Delete the Pod; the anchor, Service and Secrets stay (the group's definition)."""
        group = self._group(group_id)
        with group.lock:
            group.stopped, group.stopped_at = True, time.time()
            self._write_anchor(group)
            self._delete_pod(group)
        return self.view(group_id)

    def start(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        group = self._group(group_id)
        with group.lock:
            group.stopped, group.stopped_at = False, None
            if spec is not None:
                self._apply(spec, group, group.lock)
            else:
                self._write_anchor(group)
                if self.cluster.read("Pod", group.namespace, group.name) is None:
                    self._create_pod(group)
        return self._wait_started(group_id)

    def restart(self, group_id: str, spec: GroupSpec | None = None) -> GroupView:
        """A new Pod (Kubernetes restarts no container of a running Pod on request)."""
        group = self._group(group_id)
        with group.lock:
            if group.stopped:
                group.stopped, group.stopped_at = False, None
                self._write_anchor(group)
            if spec is not None:
                self._apply(spec, group, group.lock)
                group = self._group(group_id)
            self._delete_pod(group)
            self._create_pod(group)
        return self._wait_started(group_id)

    def delete(self, group_id: str) -> None:
        """Delete the anchor (its dependents go with it) and the Pod first. Idempotent."""
        with self._lock:
            group = self._groups.get(group_id)
        if group is None:
            return
        with group.lock:
            with self._lock:
                self._groups.pop(group_id, None)
            self.cluster.delete("Pod", group.namespace, group.name)
            self.cluster.delete("ConfigMap", group.namespace,
                                naming.object_name(group.name, "anchor"))
            with self._changed:
                key = (group.namespace, group.name)
                self._pods.pop(key, None)
                self._last_pods.pop(key, None)
                self._events.pop(key, None)
                self._changed.notify_all()

    def sweep(self, keep: Collection[str]) -> None:
        """Delete the groups not in ``keep``, then every object labelled as skiff's whose
        group is none of those kept (what a crash left between its objects)."""
        for group_id in self.group_ids():
            if group_id not in keep:
                log.info("sweeping container group %s: not in the store", group_id)
                self.delete(group_id)
        kept = {naming.label_value(k) for k in keep}
        ours = self._own_namespaces()
        for kind in ("Pod", "Service", "Secret", "ConfigMap", "NetworkPolicy"):
            for obj in self.cluster.list_all(kind, labels=MANAGED).get("items") or []:
                if obj["metadata"].get("namespace") not in ours:
                    continue  # another skiff's (another prefix), or no namespace of skiff's
                labels = obj["metadata"].get("labels") or {}
                owner = labels.get(naming.GROUP_ID_LABEL)
                if owner is not None and owner not in kept:
                    log.info("sweeping %s %s/%s: its group is gone", kind,
                             obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    self.cluster.delete(kind, obj["metadata"].get("namespace"),
                                        obj["metadata"]["name"])

    # ---- a group's containers ---------------------------------------------------------

    def _container(self, group_id: str, container: str) -> _Group:
        group = self._group(group_id)
        spec = group.pod.get("spec") or {}
        names = {c["name"] for c in (*spec.get("containers", ()),
                                     *spec.get("initContainers", ()))}
        if container not in names:
            raise GroupNotFound(f"container {container!r} not found in group {group.name!r}")
        return group

    def logs(self, group_id: str, container: str, *, tail: int | None = None,
             timestamps: bool = False, previous: bool = False) -> str:
        group = self._container(group_id, container)
        text: str = _streams().pod_logs(self.cluster.core, group.namespace, group.name, container,
                                        tail=tail, timestamps=timestamps, previous=previous)
        return text

    def attach(self, group_id: str, container: str) -> Iterator[str]:
        group = self._container(group_id, container)
        lines: Iterator[str] = _streams().follow_logs(self.cluster.core, group.namespace,
                                                      group.name, container)
        return lines

    def exec(self, group_id: str, container: str, command: list[str], *, tty: bool = False,
             terminal_size: tuple[int, int] | None = None) -> ExecStream:
        group = self._container(group_id, container)
        session: ExecStream = _streams().open_exec(
            self.cluster.core, group.namespace, group.name, container, command, tty=tty,
            terminal_size=terminal_size)
        return session

    # ---- the cluster ----------------------------------------------------------------

    def _nodes(self) -> list[Obj]:
        items: list[Obj] = self.cluster.call("core", "list_node").get("items") or []
        return items

    def _cluster_gpus(self) -> gpus.ClusterGpus:
        return gpus.cluster_gpus(self._nodes())

    def capacity(self) -> NodeCapacity:
        """The allocatable CPU, memory and GPUs of the cluster's Ready nodes, summed; the
        GPUs by SKU from their nodes' product labels (:mod:`skiff.kube.gpus`)."""
        cpu, memory = Decimal(0), Decimal(0)
        nodes = self._nodes()
        for node in nodes:
            if not gpus.is_ready(node):
                continue
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            cpu += _quantity(allocatable.get("cpu", "0"))
            memory += _quantity(allocatable.get("memory", "0"))
        found = gpus.cluster_gpus(nodes)
        return NodeCapacity(cpu_cores=float(cpu), memory_gb=float(memory) / 1024**3,
                            gpus=found.total, gpu_skus=dict(found.counts),
                            site="The cluster")

    def cached_images(self) -> list[str]:
        """None: the nodes' images are the kubelets' to keep."""
        return []

    def check_address_space(self, prefixes: Sequence[str]) -> None:
        """Nothing to check: a virtual network's groups get the cluster's Pod addresses,
        and their NetworkPolicy (not a route) keeps them together."""

    def vnets(self) -> list[str]:
        listing = self.cluster.list_all("NetworkPolicy", labels=naming.VNET_LABEL)
        with self._lock:
            ours = set(self._namespaces)
        return sorted({(p["metadata"].get("annotations") or {}).get(VNET_ANNOTATION, "")
                       for p in listing.get("items") or []
                       if p["metadata"].get("namespace") in ours} - {""})

    def remove_vnet(self, vnet: str) -> None:
        """Delete the network's NetworkPolicies; refused while a group is in it."""
        label = f"{naming.VNET_LABEL}={naming.digest(vnet, length=16)}"
        with self._lock:
            members = [g.name for g in self._groups.values()
                       if (g.pod["metadata"].get("labels") or {}).get(naming.VNET_LABEL)
                       == label.split("=", 1)[1]]
        if members:
            raise InvalidInput(f"the virtual network is in use by container group "
                               f"{members[0]!r}")
        ours = self._own_namespaces()
        for policy in self.cluster.list_all("NetworkPolicy", labels=label).get("items") or []:
            if policy["metadata"].get("namespace") not in ours:
                continue
            self.cluster.delete("NetworkPolicy", policy["metadata"]["namespace"],
                                policy["metadata"]["name"])

    def close(self) -> None:
        """Stop the watches and the repairs; the groups run on."""
        for watcher in self._watchers:
            watcher.stop()
        self._repairs.put(None)
        # A watch blocked on a quiet stream ends with it (watch_timeout_s at most): its
        # thread is a daemon, not waited for beyond a moment.
        deadline = time.monotonic() + 2.0
        for watcher in self._watchers:
            watcher.join(timeout=max(0.0, deadline - time.monotonic()))
        self._repairer.join(timeout=max(0.1, deadline - time.monotonic()))
        self.cluster.close()

    # ---- the reconciler -------------------------------------------------------------

    def _repair_loop(self) -> None:
        while (group_id := self._repairs.get()) is not None:
            try:
                self._repair(group_id)
                self._repair_pauses.pop(group_id, None)
            except Exception:  # one group's repair never ends the others'; tried again
                # (nothing else would: its Pod is gone from the watch's cache already)
                pause = min(self._repair_pauses.get(group_id, REPAIR_PAUSE_S / 2) * 2,
                            MAX_REPAIR_PAUSE_S)
                self._repair_pauses[group_id] = pause
                log.exception("container group %s: its Pod could not be made again; trying "
                              "again in %g s", group_id, pause)
                again = threading.Timer(pause, self._repairs.put, (group_id,))
                again.daemon = True
                again.start()

    def _repair(self, group_id: str) -> None:
        """Make the group's Pod again if it should run and has none (the anchor kept its
        definition); the whole group again from its spec where the anchor went too."""
        with self._lock:
            group = self._groups.get(group_id)
        if group is None:
            return
        with group.lock:
            if self._groups.get(group_id) is not group or group.stopped:
                return  # deleted, stopped or redeployed meanwhile: nothing to repair
            if self.cluster.read("Pod", group.namespace, group.name) is not None:
                return
            anchor = self.cluster.read("ConfigMap", group.namespace,
                                       naming.object_name(group.name, "anchor"))
            if anchor is not None and anchor["metadata"].get("uid") == group.anchor_uid:
                log.warning("container group %s: its Pod was deleted behind skiff's back; "
                            "making it again", group.name)
                self._create_pod(group)
                return
            # The spec run in this process, else the store's (since skiff restarted).
            spec = group.spec if group.spec is not None else self.recall(group_id)
            if spec is not None:
                self._apply(replace(spec), group, group.lock, recreating=True)
                return
            log.warning("container group %s: its anchor was deleted behind skiff's back and "
                        "the store does not want it running (stopped, deleted or being "
                        "deployed): forgotten, the control plane decides", group.name)
            with self._lock:
                self._groups.pop(group_id, None)
