"""Unit tests for skiff.kube.objects: what each part of a GroupSpec becomes in Kubernetes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from skiff.core import spec as s
from skiff.errors import ArmError, InvalidGitRepoVolume, InvalidGroupSpec
from skiff.kube.objects import Obj, Placement, clone_target, group_objects, redacted
from skiff.testing.kube import check_group

NS = "skiff-rg-0123456789"
SECRET = "s3cr3t-Value-kube-77"


def spec(*containers: s.Container, **fields: Any) -> s.GroupSpec:
    return s.GroupSpec(id="g-1", name=fields.pop("name", "web"),
                     containers=containers or (s.Container(name="c", image="busybox"),),
                     **fields)


def render(group: s.GroupSpec, **placement: Any) -> dict[tuple[str, str], Obj]:
    """The group's objects by (kind, name), each checked as the API server would."""
    objects = group_objects(group, Placement(namespace=NS, **placement))
    check_group(objects)
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pod_of(objects: dict[tuple[str, str], Obj]) -> Obj:
    return next(o for (kind, _), o in objects.items() if kind == "Pod")


def decoded(secret: Obj, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


@pytest.mark.parametrize("policy", list(s.RestartPolicy))
def test_the_restart_policy_maps_one_to_one(policy: s.RestartPolicy) -> None:
    """Always, OnFailure and Never are Kubernetes' own words."""
    assert pod_of(render(spec(restart_policy=policy)))["spec"]["restartPolicy"] == policy.value


def test_a_pod_is_the_group_and_gets_no_cluster_credentials() -> None:
    """The Pod is named as the group (its hostname), labelled, and has no service account
    token nor the namespace's Services in its environment; every object is labelled."""
    objects = render(spec())
    pod = pod_of(objects)
    assert pod["metadata"]["name"] == "web"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["enableServiceLinks"] is False
    for obj in objects.values():
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "skiff"
    assert ("ConfigMap", "web.anchor") in objects
    assert next(iter(objects)) == ("ConfigMap", "web.anchor")  # made first: the others' owner


def test_command_replaces_the_images_entrypoint_and_cmd() -> None:
    """ACI's command is Kubernetes' command (args left to nothing); without one, neither."""
    objects = render(spec(s.Container(name="a", image="i", command=("sh", "-c", "x")),
                          s.Container(name="b", image="i")))
    a, b = pod_of(objects)["spec"]["containers"]
    assert a["command"] == ["sh", "-c", "x"]
    assert "args" not in a
    assert "command" not in b


def test_secure_values_go_through_a_secret_only() -> None:
    """A secure value is in the Secret <group>.env, read by secretKeyRef; the Pod holds
    its name only; plain values stay in the Pod."""
    objects = render(spec(s.Container(name="c", image="i", env=(
        s.EnvVar("PLAIN", "visible"), s.EnvVar("TOKEN", SECRET, secure=True)))))
    pod = pod_of(objects)
    env = pod["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "PLAIN", "value": "visible"}
    assert env[1]["valueFrom"]["secretKeyRef"] == {"name": "web.env", "key": "c.TOKEN"}
    assert SECRET not in json.dumps(pod)
    assert decoded(objects[("Secret", "web.env")], "c.TOKEN") == SECRET
    assert SECRET not in json.dumps(redacted(objects.values()))


IDENTITY = ("https://skiff.example:8443/identity/g-1/token", "h3ader-Secret-value-of-g1")


def test_a_group_with_an_identity_gets_the_app_service_variables() -> None:
    """An identity: every container of the group, init containers too, gets
    IDENTITY_ENDPOINT in the Pod and IDENTITY_HEADER through the env Secret (beside the
    secure values, under a key no container's can be); the secret is never in the Pod;
    a container that sets one of the names itself keeps its own."""
    objects = render(spec(s.Container(name="c", image="i", env=(
        s.EnvVar("TOKEN", SECRET, secure=True),)), s.Container(name="own", image="i", env=(
            s.EnvVar("IDENTITY_ENDPOINT", "http://mine"),)),
        init_containers=(s.Container(name="first", image="i"),)), identity=IDENTITY)
    pod = pod_of(objects)
    ref = {"secretKeyRef": {"name": "web.env", "key": "identity-header"}}
    envs = {c["name"]: {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
            for c in (*pod["spec"]["initContainers"], *pod["spec"]["containers"])}
    assert envs["c"]["IDENTITY_ENDPOINT"] == envs["first"]["IDENTITY_ENDPOINT"] == IDENTITY[0]
    assert envs["c"]["IDENTITY_HEADER"] == envs["first"]["IDENTITY_HEADER"] == ref
    assert envs["own"] == {"IDENTITY_ENDPOINT": "http://mine", "IDENTITY_HEADER": ref}
    secret = objects[("Secret", "web.env")]
    assert decoded(secret, "identity-header") == IDENTITY[1]
    assert decoded(secret, "c.TOKEN") == SECRET
    assert IDENTITY[1] not in json.dumps(pod)
    assert "IMDS_ENDPOINT" not in json.dumps(pod)  # with it, the SDKs would speak Azure Arc's


def test_a_group_without_an_identity_gets_no_identity_variables() -> None:
    """No identity: neither variable, and no env Secret for it."""
    objects = render(spec())
    assert "env" not in pod_of(objects)["spec"]["containers"][0]
    assert ("Secret", "web.env") not in objects


def test_resources_are_requests_and_limits() -> None:
    """Cores in millicores, GB as MiB; a limit left out is the request (Guaranteed)."""
    c1 = s.Container(name="a", image="i", resources=s.Resources(cpu=0.5, memory_gb=1.5))
    c2 = s.Container(name="b", image="i", resources=s.Resources(
        cpu=0.25, memory_gb=0.5, cpu_limit=1, memory_limit_gb=2))
    a, b = pod_of(render(spec(c1, c2)))["spec"]["containers"]
    assert a["resources"] == {"requests": {"cpu": "500m", "memory": "1536Mi"},
                              "limits": {"cpu": "500m", "memory": "1536Mi"}}
    assert b["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                              "limits": {"cpu": "1000m", "memory": "2048Mi"}}


def test_the_group_disk_limit_is_the_first_containers_ephemeral_storage() -> None:
    """The node's per-group disk limit (whole MiB) is ephemeral-storage, request and limit,
    of the first container alone: the Pod's sum is the group's limit; none without one."""
    c1 = s.Container(name="a", image="i")
    c2 = s.Container(name="b", image="i")
    limit = 10 * 10**9 >> 20 << 20  # DiskSettings.group_bytes of 10 GB
    pod = pod_of(render(spec(c1, c2), disk_bytes=limit))
    a, b = pod["spec"]["containers"]
    assert a["resources"]["requests"]["ephemeral-storage"] == f"{limit >> 20}Mi"
    assert a["resources"]["limits"]["ephemeral-storage"] == "9536Mi"
    assert "ephemeral-storage" not in json.dumps(b["resources"])
    for placement in ({}, {"disk_bytes": 0}):
        assert "ephemeral-storage" not in json.dumps(pod_of(render(spec(c1), **placement)))


def test_probes_keep_acis_numbers() -> None:
    """exec and httpGet probes with their timings; the scheme in Kubernetes' case; a
    liveness probe's successThreshold is 1, as Kubernetes requires."""
    live = s.Probe(action=s.ExecAction(("cat", "/ok")), initial_delay_s=2, period_s=5,
                 timeout_s=3, failure_threshold=4, success_threshold=2)
    ready = s.Probe(action=s.HttpGetAction(port=8080, path="/ready", scheme="https",
                                       headers=(("X-A", "b"),)), success_threshold=2)
    (c,) = pod_of(render(spec(s.Container(name="c", image="i", liveness=live,
                                        readiness=ready))))["spec"]["containers"]
    assert c["livenessProbe"] == {"exec": {"command": ["cat", "/ok"]},
                                  "initialDelaySeconds": 2, "periodSeconds": 5,
                                  "timeoutSeconds": 3, "failureThreshold": 4,
                                  "successThreshold": 1}
    assert c["readinessProbe"]["httpGet"] == {"port": 8080, "path": "/ready",
                                              "scheme": "HTTPS",
                                              "httpHeaders": [{"name": "X-A", "value": "b"}]}
    assert c["readinessProbe"]["successThreshold"] == 2


def test_security_contexts_keep_skiffs_defaults_and_acis_changes() -> None:
    """By default no privilege escalation and the runtime's seccomp profile; capabilities
    without CAP_; a custom profile is a Localhost one named by its digest; a privileged
    container is unconfined (and not told allowPrivilegeEscalation false)."""
    custom = s.SecurityContext(cap_add=("CAP_NET_ADMIN",), cap_drop=("ALL",), run_as_user=1000,
                             run_as_group=1001, seccomp_profile={"defaultAction": "x"})
    a, b, c = pod_of(render(spec(
        s.Container(name="a", image="i"), s.Container(name="b", image="i", security=custom),
        s.Container(name="c", image="i", security=s.SecurityContext(privileged=True)))))[
            "spec"]["containers"]
    assert a["securityContext"] == {"allowPrivilegeEscalation": False,
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    assert b["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    assert (b["securityContext"]["runAsUser"], b["securityContext"]["runAsGroup"]) == (1000,
                                                                                        1001)
    assert b["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": f"skiff/{custom.seccomp_digest}.json"}
    assert c["securityContext"] == {"privileged": True, "seccompProfile": {"type": "Unconfined"}}


def test_each_volume_kind_has_its_kubernetes_form() -> None:
    """emptyDir as is; secret files (ACI's base64) in a Secret; azureFile an inline CSI
    volume of the Azure Files driver with the key in a Secret; mounts as declared."""
    volumes = (s.Volume("scratch", s.EmptyDirVolume()),
               s.Volume("certs", s.SecretVolume(files=(("tls.key", "a2V5"),))),
               s.Volume("share", s.AzureFileVolume(account="acct", share="data", key=SECRET,
                                               read_only=True)))
    mounts = (s.VolumeMount("scratch", "/tmp/s"), s.VolumeMount("certs", "/certs", True),
              s.VolumeMount("share", "/mnt/share"))
    objects = render(spec(s.Container(name="c", image="i", volume_mounts=mounts),
                          volumes=volumes))
    pod = pod_of(objects)
    by_name = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert by_name["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert by_name["certs"]["secret"] == {"secretName": "web.volume.certs"}
    assert objects[("Secret", "web.volume.certs")]["data"] == {"tls.key": "a2V5"}
    assert by_name["share"]["csi"] == {"driver": "file.csi.azure.com", "readOnly": True,
                                       "volumeAttributes": {"shareName": "data",
                                                            "secretName": "web.azurefile.share"}}
    account = objects[("Secret", "web.azurefile.share")]
    assert decoded(account, "azurestorageaccountname") == "acct"
    assert decoded(account, "azurestorageaccountkey") == SECRET
    assert SECRET not in json.dumps(pod)
    assert pod["spec"]["containers"][0]["volumeMounts"][1] == {
        "name": "certs", "mountPath": "/certs", "readOnly": True}


def test_a_git_repo_volume_is_cloned_by_an_init_container_first() -> None:
    """An emptyDir that an init container clones into before the group's own init
    containers; repository, target and revision are arguments, never part of the script."""
    repo = s.GitRepoVolume("https://example.com/t/app.git?x=$(id)", revision="v1")
    group = spec(s.Container(name="c", image="i", volume_mounts=(s.VolumeMount("src", "/src"),)),
                 init_containers=(s.Container(name="first", image="i"),),
                 volumes=(s.Volume("src", repo),))
    pod = pod_of(render(group))
    clone, first = pod["spec"]["initContainers"]
    assert (clone["name"], first["name"]) == ("git--src", "first")
    assert clone["command"][:2] == ["sh", "-c"]
    script, *args = clone["command"][2:]
    assert (args[0], args[2]) == (repo.repository, "v1")
    assert "example.com" not in script
    assert {"name": "src", "emptyDir": {}} in pod["spec"]["volumes"]


@pytest.mark.parametrize(("directory", "target"), [
    (None, "/volume/app"), (".", "/volume"), ("deep/er", "/volume/deep/er")])
def test_a_clone_goes_where_the_local_engine_puts_it(directory: str | None,
                                                     target: str) -> None:
    """directory absent: git's own name; '.': the volume itself; else that directory."""
    assert clone_target("v", s.GitRepoVolume("https://example.com/t/app.git",
                                           directory=directory)) == target


@pytest.mark.parametrize("volume", [
    s.GitRepoVolume("file:///etc"), s.GitRepoVolume("https://h/r", directory="../up"),
    s.GitRepoVolume("https://h/r", revision="--upload-pack=x")])
def test_a_git_repo_the_local_engine_refuses_is_refused_too(volume: s.GitRepoVolume) -> None:
    """The same checks as the local engine's: no other schemes, no way out of the
    volume, no revision read as an option."""
    group = spec(volumes=(s.Volume("src", volume),))
    with pytest.raises(InvalidGitRepoVolume):
        group_objects(group, Placement(namespace=NS))


def test_a_config_map_is_a_configmap_mounted_where_aci_puts_it() -> None:
    """A container's pairs are a ConfigMap, mounted read-only at /mnt/configmap/<name>."""
    objects = render(spec(s.Container(name="app", image="i",
                                    config_map=(("greeting", "hi"), ("n", "1")))))
    assert objects[("ConfigMap", "web.configmap.app")]["data"] == {"greeting": "hi", "n": "1"}
    (c,) = pod_of(objects)["spec"]["containers"]
    assert c["volumeMounts"] == [{"name": "configmap--app", "mountPath": "/mnt/configmap/app",
                                  "readOnly": True}]


def test_registry_credentials_are_an_image_pull_secret() -> None:
    """A dockerconfigjson Secret with each server's credentials, named by the Pod."""
    creds = (s.RegistryCredentialSpec("registry.example.com", "me", SECRET),)
    objects = render(spec(credentials=creds))
    assert pod_of(objects)["spec"]["imagePullSecrets"] == [{"name": "web.registry"}]
    secret = objects[("Secret", "web.registry")]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(decoded(secret, ".dockerconfigjson"))["auths"]
    assert auths["registry.example.com"]["password"] == SECRET
    assert base64.b64decode(auths["registry.example.com"]["auth"]).decode() == f"me:{SECRET}"


def test_a_public_ip_is_a_load_balancer_with_exactly_the_declared_ports() -> None:
    """The Service has the group's ipAddress ports (TCP and UDP), not its containers'
    other ports, selects the Pod, and carries external-dns' hostname for the label."""
    ports = (s.Port(80), s.Port(9000), s.Port(53, "UDP"))
    group = spec(s.Container(name="c", image="i", ports=ports),
                 ip_ports=(s.Port(80), s.Port(53, "UDP")))
    objects = render(group, public=True, dns_name="web.westeurope.skiff.internal")
    service = objects[("Service", "web")]
    assert service["spec"]["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]] == [
        (80, 80, "TCP"), (53, 53, "UDP")]
    assert service["metadata"]["annotations"] == {
        "external-dns.alpha.kubernetes.io/hostname": "web.westeurope.skiff.internal"}
    policy = objects[("NetworkPolicy", "web.ingress")]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 80, "protocol": "TCP"},
                                                    {"port": 53, "protocol": "UDP"}]}]


def test_a_group_without_a_public_ip_has_no_service_and_takes_no_traffic() -> None:
    """No Service; its NetworkPolicy admits nothing (no ports declared)."""
    objects = render(spec())
    assert not [k for k in objects if k[0] == "Service"]
    assert objects[("NetworkPolicy", "web.ingress")]["spec"]["ingress"] == []


def test_a_group_in_a_virtual_network_is_admitted_by_its_network_only() -> None:
    """The Pod is labelled with its network; the network's policy admits the network's
    Pods in any of skiff's namespaces, and no Service is made for its private IP."""
    subnet = s.SubnetPlacement(vnet="/subscriptions/s/resourcegroups/rg/providers/"
                                  "microsoft.network/virtualnetworks/n1",
                             subnet="/subscriptions/s/.../subnets/a", prefix="10.1.0.0/24")
    objects = render(spec(subnet=subnet, ip_ports=(s.Port(80),)), public=False)
    vnet = pod_of(objects)["metadata"]["labels"]["skiff.io/vnet"]
    policy = objects[("NetworkPolicy", f"vnet-{vnet}")]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"skiff.io/vnet": vnet}}
    (peer,) = policy["spec"]["ingress"][0]["from"]
    assert peer["podSelector"] == {"matchLabels": {"skiff.io/vnet": vnet}}
    assert "skiff.io/group" not in policy["metadata"]["labels"]  # shared by the network
    assert not [k for k in objects if k[0] == "Service"]


def test_sandbox_isolation_is_the_operators_runtime_class() -> None:
    """Isolation sandbox names the RuntimeClass given; container isolation none."""
    assert pod_of(render(spec(isolation="sandbox"), sandbox_runtime_class="runsc"))["spec"][
        "runtimeClassName"] == "runsc"
    assert "runtimeClassName" not in pod_of(render(spec()))["spec"]


def test_dns_config_and_grace_period() -> None:
    """Name servers replace the cluster's resolver (dnsPolicy None), options parsed;
    a shutdown grace period is the termination grace period, rounded up."""
    dns = s.DnsConfig(name_servers=("10.0.0.10",), search_domains=("corp",),
                    options="ndots:2 edns0")
    pod_spec = pod_of(render(spec(dns=dns, stop_grace_s=7.5)))["spec"]
    assert pod_spec["dnsPolicy"] == "None"
    assert pod_spec["dnsConfig"] == {"nameservers": ["10.0.0.10"], "searches": ["corp"],
                                     "options": [{"name": "ndots", "value": "2"},
                                                 {"name": "edns0"}]}
    assert pod_spec["terminationGracePeriodSeconds"] == 8


def test_owner_references_need_the_anchors_uid() -> None:
    """Without the uid no object names an owner; with it every one but the anchor does."""
    plain = render(spec(ip_ports=(s.Port(80),)), public=True)
    assert all("ownerReferences" not in o["metadata"] for o in plain.values())
    owned = render(spec(ip_ports=(s.Port(80),)), public=True, anchor_uid="u-1")
    for key, obj in owned.items():
        refs = obj["metadata"].get("ownerReferences")
        assert refs is None if key == ("ConfigMap", "web.anchor") else refs == [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "web.anchor", "uid": "u-1"}]


def test_a_group_name_kubernetes_cannot_take_is_refused() -> None:
    """A name that is no DNS label (ACI refuses it too) is an InvalidGroupSpec."""
    with pytest.raises(InvalidGroupSpec, match="DNS-1123"):
        group_objects(spec(name="Web_1"), Placement(namespace=NS))


H100 = ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-NVL")


def gpu_container(name: str = "train", count: int = 2, sku: str = "H100") -> s.Container:
    return s.Container(name=name, image="nvcr.io/nvidia/pytorch:25.01-py3",
                       resources=s.Resources(cpu=4, memory_gb=16, gpu_count=count,
                                             gpu_sku=sku))


def test_a_gpu_container_gets_the_gpu_limit_the_skus_nodes_and_the_gpu_taint() -> None:
    """N GPUs of SKU S: ``nvidia.com/gpu: N`` as a limit alone (Kubernetes takes it as the
    request), a required node affinity on the product labels of S's nodes, the GPU pools'
    taint tolerated and the SKU in an annotation; the container without GPUs and the init
    container (group-sized, GPU-less in ACI) get none."""
    init = s.Container(name="setup", image="busybox")
    objects = render(spec(gpu_container(), s.Container(name="side", image="busybox"),
                          init_containers=(init,)),
                     gpu_products={"H100": H100, "L4": ("NVIDIA-L4",)})
    pod = pod_of(objects)
    train, side = pod["spec"]["containers"]
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in train["resources"]["requests"]
    assert "nvidia.com/gpu" not in str(side["resources"])
    assert "nvidia.com/gpu" not in str(pod["spec"]["initContainers"])
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                            "values": list(H100)}]}]
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}]
    assert pod["metadata"]["annotations"] == {"skiff.io/gpu-sku": "H100"}


def test_a_group_without_gpus_neither_tolerates_gpu_nodes_nor_is_placed() -> None:
    """No GPUs: no toleration (GPU pools stay for GPU groups), affinity or annotation."""
    pod = pod_of(render(spec(), gpu_products={"H100": H100}))
    assert not {"tolerations", "affinity"} & set(pod["spec"])
    assert "annotations" not in pod["metadata"]


def test_without_the_clusters_labels_a_gpu_pod_has_no_node_affinity() -> None:
    """``skiff kube render`` knows no nodes: the limit and toleration, no affinity."""
    pod = pod_of(render(spec(gpu_container())))
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "affinity" not in pod["spec"]
    assert pod["spec"]["tolerations"]


def test_a_sku_no_node_has_is_refused_not_placed_anywhere() -> None:
    """Labels known, none of the SKU's: refused (an empty In is invalid, and no affinity
    would place the Pod on any GPU node)."""
    with pytest.raises(InvalidGroupSpec, match="'L4'"):
        group_objects(spec(gpu_container(sku="L4")),
                      Placement(namespace=NS, gpu_products={"H100": H100}))


def test_the_unlabelled_sku_goes_to_nodes_without_the_product_label() -> None:
    """SKU GPU (nodes without GFD's label): DoesNotExist, its GPU limit keeping it off
    nodes without GPUs."""
    pod = pod_of(render(spec(gpu_container(sku="GPU")), gpu_products={"GPU": ()}))
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product",
                                            "operator": "DoesNotExist"}]}]


@pytest.mark.parametrize(("group", "code"), [
    (spec(gpu_container(), gpu_container("infer", 1, "L4")), "InvalidGpuResource"),
    (spec(gpu_container(), isolation="sandbox"), "GpuNotSupportedInSandbox"),
])
def test_gpus_a_pod_cannot_have_are_arm_errors(group: s.GroupSpec, code: str) -> None:
    """Two SKUs in one group (a Pod is on one node, labelled with one product) and GPUs in
    a gVisor sandbox (as on a node): ARM errors, nothing rendered."""
    with pytest.raises(ArmError) as refused:
        group_objects(group, Placement(namespace=NS, gpu_products={"H100": H100,
                                                                  "L4": ("NVIDIA-L4",)}))
    assert refused.value.code == code
    assert refused.value.status == 400
