"""A container group as Kubernetes objects: plain dicts, as the API server takes them.

One group becomes, in its namespace (:mod:`skiff.kube.naming`):

- an **anchor**, a ConfigMap ``<group>.anchor`` that every other object of the group names
  as its owner: deleting it deletes them all (Kubernetes' garbage collector), while the
  Pod can be deleted and made again without taking the Service, and its address, with it;
- the **Pod** ``<group>``: its init containers and containers, ACI's resources as requests
  and limits (the node's per-group disk limit as ``ephemeral-storage``, GPUs as the
  ``nvidia.com/gpu`` limit with a node affinity on their SKU, :mod:`skiff.kube.gpus`),
  the restart policy, probes, security contexts and volumes;
- **Secrets**: ``<group>.env`` (secure environment values, read through ``secretKeyRef``,
  and a group with a managed identity's ``IDENTITY_HEADER``: see below),
  ``<group>.registry`` (``imagePullSecrets``), ``<group>.volume.<v>`` (a secret volume's
  files), ``<group>.azurefile.<v>`` (an azureFile volume's account and key);
- **ConfigMaps** ``<group>.configmap.<container>``: a container's config map, mounted
  read-only at ``/mnt/configmap/<container>`` as ACI does;
- a **Service** of type LoadBalancer with exactly the group's ``ipAddress.ports`` when the
  group has a public IP (with external-dns' hostname annotation for its DNS name label);
- a **NetworkPolicy**: ``vnet-<hash>`` for a group in a virtual network (its groups, and
  only they, reach each other), ``<group>.ingress`` for every other group (only its
  declared ports are reachable, and nothing when it declares none).

Kubernetes lacks some of ACI's volumes and options, so they are built from what it has:
a gitRepo volume is an emptyDir that an init container (``git--<volume>``) clones into
before the group's own init containers run; an azureFile volume is an inline CSI volume
of the Azure Files driver (``file.csi.azure.com``); a custom seccomp profile is a
``Localhost`` profile ``skiff/<sha256>.json`` that the operator installs on the nodes.

A group with a managed identity (:attr:`Placement.identity`) gets, in every container of
its own, ``IDENTITY_ENDPOINT`` (its token endpoint's URL, in the Pod) and
``IDENTITY_HEADER`` (its secret, from the env Secret's ``identity-header``: a key without
a dot, which no container's ``<container>.<variable>`` key is), the App Service protocol
of :mod:`skiff.metadata.appservice`; a container that sets either name itself keeps its
own.

Owner references need the anchor's ``uid``, which only the API server gives, so
:func:`group_objects` leaves them out without one (``skiff kube render``) and the objects
carry the group's labels alone; :func:`own` adds them. Nothing here talks to a cluster.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.core.gitrepo import check_git_repo, clone_path
from skiff.core.gpus import describe as describe_gpus
from skiff.core.identity import IDENTITY_ENDPOINT_VAR as ENDPOINT_VAR
from skiff.core.identity import IDENTITY_HEADER_VAR as HEADER_VAR
from skiff.core.spec import (
    CONFIG_MAP_ROOT,
    AzureFileVolume,
    Container,
    EmptyDirVolume,
    ExecAction,
    GitRepoVolume,
    GroupSpec,
    Probe,
    Resources,
    SecretVolume,
    SecurityContext,
)
from skiff.errors import ArmError, InvalidGroupSpec
from skiff.kube import gpus, naming
from skiff.kube.gpus import RESOURCE as GPU_RESOURCE

Obj = dict[str, Any]

#: The Azure Files CSI driver's name, and the keys of the Secret it reads an account from.
AZURE_FILE_DRIVER = "file.csi.azure.com"
ACCOUNT_NAME_KEY, ACCOUNT_KEY_KEY = "azurestorageaccountname", "azurestorageaccountkey"
#: external-dns' annotation naming a Service's DNS name.
EXTERNAL_DNS = "external-dns.alpha.kubernetes.io/hostname"
#: Where a gitRepo clone container mounts its volume.
CLONE_MOUNT = "/volume"
#: The annotation of a GPU group's Pod naming its SKU (the node affinity lists label
#: values, which change as node pools come and go; the SKU is what the group asked).
GPU_SKU_ANNOTATION = naming.PREFIX + "gpu-sku"


@dataclass(frozen=True)
class Placement:
    """What a group's objects need beyond its :class:`~skiff.core.spec.GroupSpec`."""

    #: The namespace the group's objects go in (:func:`naming.namespace_name`).
    namespace: str
    #: Whether the group has a public IP (``ipAddress.type`` Public): a LoadBalancer Service.
    public: bool = False
    #: The FQDN of the group's DNS name label, if it has one (external-dns' annotation).
    dns_name: str | None = None
    #: The RuntimeClass of isolation ``Sandbox`` groups (the operator's gVisor one).
    sandbox_runtime_class: str = "gvisor"
    #: The image whose ``git`` clones gitRepo volumes (an init container per volume); an
    #: operator pins one (a tag or digest) the cluster may pull.
    git_image: str = "docker.io/alpine/git"
    #: The anchor's uid once the API server made it; None: no owner references.
    anchor_uid: str | None = None
    #: The group's disk limit in bytes (the node's ``DiskSettings.group_bytes``, whole
    #: MiB), as ``ephemeral-storage`` of its first container; None or 0: no limit.
    disk_bytes: int | None = None
    #: The ``nvidia.com/gpu.product`` values of the cluster's GPU nodes by SKU
    #: (:attr:`skiff.kube.gpus.ClusterGpus.products`), for a GPU group's node affinity;
    #: None: not known (``skiff kube render`` has no cluster), no node affinity.
    gpu_products: Mapping[str, tuple[str, ...]] | None = None
    #: A group with a managed identity: its token endpoint's URL and header secret
    #: (``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``); None: no identity, no variables.
    identity: tuple[str, str] | None = None


def gpu_sku(spec: GroupSpec) -> str | None:
    """The one SKU of the GPUs group ``spec``'s containers ask for; None: no GPUs. A Pod
    runs on one node, and a node is labelled with one GPU product, so a group asking for
    two SKUs cannot be placed (InvalidGpuResource), nor GPUs in a gVisor sandbox
    (GpuNotSupportedInSandbox, as on a node: the API's rules refuse both first; init
    containers have no GPUs in ACI's model)."""
    skus = sorted({c.resources.gpu_sku for c in spec.containers if c.resources.gpu_count})
    if not skus:
        return None
    if len(skus) > 1:
        raise ArmError(400, "InvalidGpuResource",
                       f"The containers of container group {spec.name!r} ask for GPUs of "
                       f"SKUs {' and '.join(repr(s) for s in skus)}: on this Kubernetes "
                       "cluster a group's containers share one node, whose GPUs are of one "
                       "product. Ask for one SKU.")
    if spec.isolation == "sandbox":
        raise ArmError(400, "GpuNotSupportedInSandbox",
                       f"Container group {spec.name!r} asks for GPUs in a gVisor sandbox "
                       "(isolation: Sandbox), which this cluster's RuntimeClass is not known "
                       "to give. Use isolation Container.")
    return skus[0]


def gpu_placement(sku: str, products: Mapping[str, tuple[str, ...]],
                  counts: Mapping[str, int]) -> Obj:
    """The node affinity of a Pod whose GPUs are of ``sku``; 409 ServiceUnavailable
    naming what the cluster has when none of its Ready nodes has GPUs of that SKU."""
    affinity = gpus.node_affinity(sku, products) if counts.get(sku) else None
    if affinity is None:
        raise ArmError(409, "ServiceUnavailable",
                       f"The requested resource is not available at this moment: the "
                       f"cluster has no Ready nodes with GPUs of SKU {sku!r} (it has "
                       f"{describe_gpus(counts)}).")
    return affinity


#: The env Secret's key of the ``IDENTITY_HEADER`` secret.
IDENTITY_HEADER_KEY = "identity-header"


def group_objects(spec: GroupSpec, placement: Placement) -> list[Obj]:
    """Every object group ``spec`` becomes, the anchor first (the order to create them)."""
    naming.check_namespace(placement.namespace)
    if not naming.is_label(spec.name):
        raise InvalidGroupSpec(f"the group name {spec.name[:80]!r} is not a DNS-1123 label")
    anchor = _meta_object(spec, placement, "ConfigMap", naming.object_name(spec.name, "anchor"))
    anchor["data"] = {"group-id": spec.id}
    found: list[Obj] = [anchor]
    secrets = _Secrets(spec, placement)
    pod = _pod(spec, placement, secrets, found)
    found += secrets.objects()
    found.append(pod)
    if placement.public and spec.ip_ports and spec.subnet is None:
        found.append(_service(spec, placement))
    found.append(_network_policy(spec, placement))
    if placement.anchor_uid is None:
        return found
    return [own(o, spec.name, placement.anchor_uid) for o in found]


def own(obj: Obj, group: str, anchor_uid: str) -> Obj:
    """``obj`` with the anchor of group ``group`` (its ``uid``: ``anchor_uid``) as its
    owner; the anchor itself stays ownerless. A virtual network's NetworkPolicy is shared
    by the network's groups in the namespace: the engine applying it keeps every member's
    anchor among its owners, so it goes with the last of them."""
    anchor = naming.object_name(group, "anchor")
    if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == anchor:
        return obj
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": anchor, "uid": anchor_uid}
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}


def group_labels(spec: GroupSpec) -> dict[str, str]:
    """The labels of every object of the group (and the Pod's, which its Service selects)."""
    return {naming.MANAGED_BY: naming.MANAGER, naming.GROUP_LABEL: spec.name,
            naming.GROUP_ID_LABEL: naming.label_value(spec.id)}


def _meta_object(spec: GroupSpec, placement: Placement, kind: str, name: str,
                 api_version: str = "v1") -> Obj:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": placement.namespace,
                         "labels": group_labels(spec)}}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Secrets:
    """The group's Secrets, gathered while its Pod is built."""

    def __init__(self, spec: GroupSpec, placement: Placement) -> None:
        self.spec, self.placement = spec, placement
        self.env: dict[str, str] = {}
        self.others: list[Obj] = []

    def env_ref(self, container: str, name: str, value: str) -> Obj:
        key = f"{container}.{name}"
        self.env[key] = _b64(value)
        return {"secretKeyRef": {"name": naming.object_name(self.spec.name, "env"), "key": key}}

    def identity_env(self, container: Container) -> list[Obj]:
        """The identity endpoint's variables for ``container`` (none without an identity,
        nor those it sets itself)."""
        if self.placement.identity is None:
            return []
        url, header = self.placement.identity
        own = {v.name for v in container.env}
        found: list[Obj] = []
        if ENDPOINT_VAR not in own:
            found.append({"name": ENDPOINT_VAR, "value": url})
        if HEADER_VAR not in own:
            self.env[IDENTITY_HEADER_KEY] = _b64(header)
            found.append({"name": HEADER_VAR, "valueFrom": {"secretKeyRef": {
                "name": naming.object_name(self.spec.name, "env"), "key": IDENTITY_HEADER_KEY}}})
        return found

    def add(self, name: str, data: Mapping[str, str], type_: str = "Opaque") -> str:
        secret = _meta_object(self.spec, self.placement, "Secret", name)
        secret.update(type=type_, data=dict(data))
        self.others.append(secret)
        return name

    def objects(self) -> list[Obj]:
        found = list(self.others)
        if self.env:
            secret = _meta_object(self.spec, self.placement, "Secret",
                                  naming.object_name(self.spec.name, "env"))
            secret.update(type="Opaque", data=dict(sorted(self.env.items())))
            found.insert(0, secret)
        return found


def _pod(spec: GroupSpec, placement: Placement, secrets: _Secrets, found: list[Obj]) -> Obj:
    volumes: list[Obj] = []
    clones: list[Obj] = []
    for volume in spec.volumes:
        volumes.append(_volume(spec, volume.name, volume.source, secrets))
        if isinstance(volume.source, GitRepoVolume):
            clones.append(_clone(volume.name, volume.source, placement))
    for container in (*spec.init_containers, *spec.containers):
        if container.config_map is not None:
            name = naming.object_name(spec.name, "configmap", container.name)
            config = _meta_object(spec, placement, "ConfigMap", name)
            config["data"] = dict(container.config_map)
            found.append(config)
            volumes.append({"name": naming.added_name("configmap", container.name),
                            "configMap": {"name": name}})
    pod_spec: Obj = {
        "restartPolicy": spec.restart_policy.value,
        # A tenant's Pod gets no credentials of the cluster, nor its namespace's Services
        # as environment variables (other groups of the resource group).
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "initContainers": clones + [_container(c, spec, secrets, init=True)
                                    for c in spec.init_containers],
        "containers": [_container(c, spec, secrets) for c in spec.containers],
        "volumes": volumes,
    }
    if placement.disk_bytes:
        _limit_disk(pod_spec["containers"][0], placement.disk_bytes)
    sku = gpu_sku(spec)
    if sku is not None:
        # Only GPU groups tolerate the GPU pools' taint: the others keep off GPU nodes.
        pod_spec["tolerations"] = [dict(gpus.TOLERATION)]
        if placement.gpu_products is not None:
            affinity = gpus.node_affinity(sku, placement.gpu_products)
            if affinity is None:
                raise InvalidGroupSpec(f"the cluster has no nodes of GPU SKU {sku!r}")
            pod_spec["affinity"] = affinity
    if not pod_spec["initContainers"]:
        del pod_spec["initContainers"]
    if not volumes:
        del pod_spec["volumes"]
    if spec.isolation == "sandbox":
        pod_spec["runtimeClassName"] = placement.sandbox_runtime_class
    if spec.stop_grace_s is not None:
        pod_spec["terminationGracePeriodSeconds"] = math.ceil(spec.stop_grace_s)
    if spec.credentials:
        auths = {c.server: {"username": c.username, "password": c.password,
                            "auth": _b64(f"{c.username}:{c.password}")}
                 for c in spec.credentials}
        docker = _b64(json.dumps({"auths": auths}, sort_keys=True))
        name = secrets.add(naming.object_name(spec.name, "registry"),
                           {".dockerconfigjson": docker}, "kubernetes.io/dockerconfigjson")
        pod_spec["imagePullSecrets"] = [{"name": name}]
    if spec.dns is not None:
        pod_spec.update(_dns(spec))
    pod = _meta_object(spec, placement, "Pod", spec.name)
    if sku is not None:
        pod["metadata"]["annotations"] = {GPU_SKU_ANNOTATION: sku}
    if spec.subnet is not None:
        pod["metadata"]["labels"][naming.VNET_LABEL] = _vnet_hash(spec)
    pod["spec"] = pod_spec
    return pod


def _dns(spec: GroupSpec) -> Obj:
    assert spec.dns is not None
    config: Obj = {}
    if spec.dns.name_servers:
        config["nameservers"] = list(spec.dns.name_servers)
    if spec.dns.search_domains:
        config["searches"] = list(spec.dns.search_domains)
    options = []
    for option in spec.dns.options.split():
        name, sep, value = option.partition(":")
        options.append({"name": name, "value": value} if sep else {"name": name})
    if options:
        config["options"] = options
    # "None": the Pod's resolv.conf is its dnsConfig alone, as ACI's nameServers replace
    # Azure's resolver; without name servers the cluster's DNS stays, with these added.
    return {"dnsPolicy": "None" if spec.dns.name_servers else "ClusterFirst",
            "dnsConfig": config}


def _container(container: Container, spec: GroupSpec, secrets: _Secrets, *,
               init: bool = False) -> Obj:
    out: Obj = {"name": container.name, "image": container.image,
                "resources": _resources(container.resources, with_gpus=not init)}
    if container.command:
        out["command"] = list(container.command)  # ACI's command replaces ENTRYPOINT and CMD
    env = [{"name": v.name, "valueFrom": secrets.env_ref(container.name, v.name, v.value)}
           if v.secure else {"name": v.name, "value": v.value} for v in container.env]
    env += secrets.identity_env(container)
    if env:
        out["env"] = env
    if container.ports and not init:
        out["ports"] = [{"containerPort": p.port, "protocol": p.protocol}
                        for p in container.ports]
    mounts = [{"name": m.name, "mountPath": m.mount_path, "readOnly": m.read_only}
              for m in container.volume_mounts]
    if container.config_map is not None:
        mounts.append({"name": naming.added_name("configmap", container.name),
                       "mountPath": f"{CONFIG_MAP_ROOT}/{container.name}", "readOnly": True})
    if mounts:
        out["volumeMounts"] = mounts
    if container.liveness is not None and not init:
        out["livenessProbe"] = _probe(container.liveness, liveness=True)
    if container.readiness is not None and not init:
        out["readinessProbe"] = _probe(container.readiness)
    out["securityContext"] = security_context(container.security, spec)
    return out


def _resources(resources: Resources, *, with_gpus: bool = False) -> Obj:
    requests = {"cpu": cpu_quantity(resources.cpu), "memory": memory_quantity(
        resources.memory_gb)}
    # A limit ACI leaves out is the request (skiff.core.spec.Resources).
    limits = {"cpu": cpu_quantity(resources.effective_cpu),
              "memory": memory_quantity(resources.memory_limit_gb
                                        if resources.memory_limit_gb is not None
                                        else resources.memory_gb)}
    if with_gpus and resources.gpu_count:
        # An extended resource is asked for as a limit alone: Kubernetes takes it as the
        # request too (and refuses a request that is not the limit).
        limits[GPU_RESOURCE] = str(resources.gpu_count)
    return {"requests": requests, "limits": limits}


def _limit_disk(container: Obj, disk_bytes: int) -> None:
    """The group's disk limit on ``container`` (its first): the kubelet evicts a Pod whose
    containers' writable layers, logs and emptyDir volumes together pass the sum of its
    containers' ``ephemeral-storage`` limits, and a container that passes its own. One
    container carrying the whole limit makes that sum the group's, as on the node (its
    root filesystems and emptyDir and gitRepo volumes together), and leaves each container
    free to use all of it. The request (what the scheduler reserves on the node) is the
    limit, as a limit alone would default it. Unlike the node's ENOSPC, passing it evicts
    the Pod (the group fails with the kubelet's ``Evicted`` message)."""
    quantity = f"{max(1, disk_bytes >> 20)}Mi"
    for kind in ("requests", "limits"):
        container["resources"][kind]["ephemeral-storage"] = quantity


def cpu_quantity(cores: float) -> str:
    """ACI's cores as a Kubernetes quantity, in millicores (``0.5`` → ``500m``)."""
    return f"{max(1, round(cores * 1000))}m"


def memory_quantity(gb: float) -> str:
    """ACI's ``memoryInGB`` (GiB, as skiff reads it) as a Kubernetes quantity in MiB."""
    return f"{max(1, round(gb * 1024))}Mi"


def _probe(probe: Probe, *, liveness: bool = False) -> Obj:
    out: Obj
    if isinstance(probe.action, ExecAction):
        out = {"exec": {"command": list(probe.action.command)}}
    else:
        get = probe.action
        action: Obj = {"port": get.port, "path": get.path, "scheme": get.scheme.upper()}
        if get.headers:
            action["httpHeaders"] = [{"name": n, "value": v} for n, v in get.headers]
        out = {"httpGet": action}
    out.update(
        initialDelaySeconds=math.ceil(probe.initial_delay_s),
        periodSeconds=max(1, math.ceil(probe.period_s)),
        timeoutSeconds=max(1, math.ceil(probe.timeout_s)),
        failureThreshold=max(1, probe.failure_threshold),
        # Kubernetes takes 1 only for a liveness probe.
        successThreshold=1 if liveness else max(1, probe.success_threshold),
    )
    return out


def security_context(security: SecurityContext, spec: GroupSpec) -> Obj:
    """ACI's securityContext over skiff's hardened defaults, in Kubernetes' terms."""
    out: Obj = {}
    if security.privileged:
        out["privileged"] = True
        if security.allow_privilege_escalation is not None:
            # Kubernetes refuses privileged with allowPrivilegeEscalation false.
            out["allowPrivilegeEscalation"] = True
    else:
        out["allowPrivilegeEscalation"] = bool(security.allow_privilege_escalation)
    caps: Obj = {}
    if security.cap_add:
        caps["add"] = [_capability(c) for c in security.cap_add]
    if security.cap_drop:
        caps["drop"] = [_capability(c) for c in security.cap_drop]
    if caps:
        out["capabilities"] = caps
    if security.run_as_user is not None:
        out["runAsUser"] = security.run_as_user
    if security.run_as_group is not None:
        out["runAsGroup"] = security.run_as_group
    if security.seccomp_digest is not None:
        out["seccompProfile"] = {"type": "Localhost",
                                 "localhostProfile": f"skiff/{security.seccomp_digest}.json"}
    elif security.privileged:
        out["seccompProfile"] = {"type": "Unconfined"}
    else:
        out["seccompProfile"] = {"type": "RuntimeDefault"}
    return out


def _capability(name: str) -> str:
    """Kubernetes names capabilities without ``CAP_`` (``ALL`` as is)."""
    upper = name.upper()
    return upper.removeprefix("CAP_")


def _volume(spec: GroupSpec, name: str,
            source: EmptyDirVolume | SecretVolume | GitRepoVolume | AzureFileVolume,
            secrets: _Secrets) -> Obj:
    if isinstance(source, SecretVolume):
        # ACI's secret files are base64 already: a Secret's data as they are.
        secret = secrets.add(naming.object_name(spec.name, "volume", name), dict(source.files))
        return {"name": name, "secret": {"secretName": secret}}
    if isinstance(source, AzureFileVolume):
        secret = secrets.add(naming.object_name(spec.name, "azurefile", name),
                             {ACCOUNT_NAME_KEY: _b64(source.account),
                              ACCOUNT_KEY_KEY: _b64(source.key)})
        return {"name": name, "csi": {
            "driver": AZURE_FILE_DRIVER, "readOnly": source.read_only,
            "volumeAttributes": {"shareName": source.share, "secretName": secret}}}
    # emptyDir, and a gitRepo's clone (Kubernetes dropped its gitRepo volume).
    return {"name": name, "emptyDir": {}}


def clone_target(volume: str, source: GitRepoVolume) -> str:
    """Where volume ``volume``'s clone goes in the clone container, as the local engine
    clones it (``directory``, ``.`` for the volume itself, else git's own choice), once
    the volume is one the local engine would clone (InvalidGitRepoVolume otherwise)."""
    check_git_repo(volume, source)
    directory = clone_path(volume, source)
    return CLONE_MOUNT if str(directory) == "." else f"{CLONE_MOUNT}/{directory}"


#: The clone container's script; the repository, target and revision are its arguments
#: ($0, $1, $2), never spliced into the text.
_CLONE_SCRIPT = ('git clone --quiet --no-recurse-submodules -- "$0" "$1" && '
                 '{ [ -z "$2" ] || git -C "$1" checkout --quiet --detach "$2"; }')


def _clone(volume: str, source: GitRepoVolume, placement: Placement) -> Obj:
    return {
        "name": naming.added_name("git", volume),
        "image": placement.git_image,
        "command": ["sh", "-c", _CLONE_SCRIPT, source.repository, clone_target(volume, source),
                    source.revision or ""],
        "volumeMounts": [{"name": volume, "mountPath": CLONE_MOUNT}],
        "resources": _resources(Resources(cpu=0.1, memory_gb=0.25)),
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def _service(spec: GroupSpec, placement: Placement) -> Obj:
    service = _meta_object(spec, placement, "Service", naming.service_name(spec.name))
    if placement.dns_name:
        service["metadata"]["annotations"] = {EXTERNAL_DNS: placement.dns_name}
    service["spec"] = {
        "type": "LoadBalancer",
        "selector": {naming.GROUP_LABEL: spec.name, naming.MANAGED_BY: naming.MANAGER},
        "ports": [{"name": f"{p.protocol.lower()}-{p.port}", "port": p.port,
                   "targetPort": p.port, "protocol": p.protocol} for p in spec.ip_ports],
        # The client's address reaches the group as in ACI, not the node's.
        "externalTrafficPolicy": "Local",
    }
    return service


def _vnet_hash(spec: GroupSpec) -> str:
    assert spec.subnet is not None
    return naming.digest(spec.subnet.vnet, length=16)


def _network_policy(spec: GroupSpec, placement: Placement) -> Obj:
    if spec.subnet is not None:
        # One per virtual network and namespace, shared by the network's groups there:
        # labelled as the network's, not as one group's (each group's anchor owns it).
        vnet = _vnet_hash(spec)
        policy = _meta_object(spec, placement, "NetworkPolicy", f"vnet-{vnet}",
                              "networking.k8s.io/v1")
        policy["metadata"]["labels"] = {naming.MANAGED_BY: naming.MANAGER,
                                        naming.VNET_LABEL: vnet}
        # Its groups may be in other resource groups, so other namespaces of skiff's.
        peers = [{"podSelector": {"matchLabels": {naming.VNET_LABEL: vnet}},
                  "namespaceSelector": {"matchLabels": {naming.MANAGED_BY: naming.MANAGER}}}]
        policy["spec"] = {"podSelector": {"matchLabels": {naming.VNET_LABEL: vnet}},
                          "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}
        return policy
    policy = _meta_object(spec, placement, "NetworkPolicy",
                          naming.object_name(spec.name, "ingress"), "networking.k8s.io/v1")
    rules = [{"ports": [{"port": p.port, "protocol": p.protocol} for p in spec.ip_ports]}]
    policy["spec"] = {"podSelector": {"matchLabels": {naming.GROUP_LABEL: spec.name}},
                      "policyTypes": ["Ingress"],
                      "ingress": rules if spec.ip_ports else []}
    return policy


def namespace_object(name: str, *, subscription: str | None = None,
                     resource_group: str | None = None) -> Obj:
    """The namespace skiff makes for a subscription's resource group, labelled as skiff's."""
    naming.check_namespace(name)
    metadata: Obj = {"name": name, "labels": {naming.MANAGED_BY: naming.MANAGER}}
    if subscription is not None:
        metadata["labels"][naming.SUBSCRIPTION_LABEL] = naming.label_value(subscription.lower())
        metadata["annotations"] = {naming.PREFIX + "subscription": subscription}
        if resource_group is not None:
            metadata["annotations"][naming.PREFIX + "resource-group"] = resource_group
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def redacted(objects: Iterable[Obj]) -> list[Obj]:
    """``objects`` with every Secret's values replaced by ``""`` (their keys kept), for
    printing: a group's secrets are never echoed unless asked for."""
    out = []
    for obj in objects:
        if obj["kind"] == "Secret":
            obj = {**obj, "data": dict.fromkeys(obj.get("data", {}), "")}
        out.append(obj)
    return out
