"""``skiff serve --backend kubernetes``: the server built over a cluster (the fake API server
of skiff.testing.kubeapi, through the official client), and the command's options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner

from skiff.api.app import create_app
from skiff.cli.node import serve
from skiff.kube import naming
from skiff.kube.engine import KubeEngine, KubeSettings
from skiff.server import Server, build
from skiff.settings import ApiSettings, FilesSettings, MetricsSettings, Settings
from skiff.testing.documents import one_container_group
from skiff.testing.fakedisks import FakeShareDisks
from skiff.testing.inprocess import InProcessClient
from skiff.testing.kubeapi import FakeKubeApi
from skiff.testing.waiting import eventually

SUB = "00000000-0000-0000-0000-00000000000a"
API = "?api-version=2023-05-01"


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    api.add_node("node-1")
    yield api
    api.close()


@pytest.fixture
def server(fake: FakeKubeApi, tmp_path: Path) -> Iterator[Server]:
    settings = Settings(data_root=tmp_path / "root",
                        api=ApiSettings(listen="127.0.0.1:0", location="local"),
                        files=FilesSettings(listen=None),
                        metrics=MetricsSettings(interval_s=0))
    kube = KubeSettings(kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
                        start_timeout_s=0.5, watch_timeout_s=1)
    built = build(settings, share_disks=FakeShareDisks(tmp_path / "shares"), kube=kube)
    yield built
    built.close()


def test_the_api_runs_a_group_as_a_pod_in_its_resource_groups_namespace(
        fake: FakeKubeApi, server: Server) -> None:
    """A group PUT through the API becomes a Pod and a LoadBalancer Service (a public IP)
    in the namespace of its subscription and resource group; no node engine is made."""
    assert server.node is None
    assert isinstance(server.plane.engine, KubeEngine)
    _, token = server.plane.store.create_token(SUB, "tests")
    body = one_container_group("nginx:1.27", "sleep 300")
    body["properties"]["ipAddress"] = {"type": "Public", "ports": [{"port": 80}]}
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    namespace = naming.namespace_name(SUB, "Team-A")
    with start_blocking_portal() as portal:
        http = InProcessClient(portal, create_app(server.plane), token)
        url = f"/subscriptions/{SUB}/resourceGroups/Team-A/providers/" \
              f"Microsoft.ContainerInstance/containerGroups/web{API}"
        assert http.put(url, json=body).status_code in (200, 201)
        eventually(lambda: ("pods", namespace, "web") in fake.objects, what="the Pod made")
        assert fake.get("services", namespace, "web")["spec"]["type"] == "LoadBalancer"
        assert fake.get("namespaces", "", namespace)["metadata"]["annotations"][
            "skiff.io/resource-group"] == "Team-A"
        assert http.delete(url).status_code in (200, 202, 204)
        eventually(lambda: ("pods", namespace, "web") not in fake.objects,
                   what="the Pod deleted")
        eventually(lambda: ("configmaps", namespace, "web.anchor") not in fake.objects,
                   what="the anchor deleted")


def test_kube_options_need_the_kubernetes_backend(tmp_path: Path) -> None:
    """--namespace-prefix without --backend kubernetes: a usage error, not ignored."""
    result = CliRunner().invoke(serve, ["--data-root", str(tmp_path), "--namespace-prefix",
                                        "team"])
    assert result.exit_code == 2
    assert "--namespace-prefix needs --backend kubernetes" in result.output


def test_a_bad_namespace_prefix_is_refused(tmp_path: Path) -> None:
    """A prefix that cannot begin a namespace's name: refused before anything starts."""
    result = CliRunner().invoke(serve, ["--data-root", str(tmp_path), "--backend",
                                        "kubernetes", "--namespace-prefix", "Bad_Prefix"])
    assert result.exit_code == 2
    assert "namespace prefix" in result.output


def test_the_help_describes_the_backend() -> None:
    """serve --help names the backend and its options."""
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--backend", "--kubeconfig", "--context", "--namespace-prefix",
                   "--runtime-class", "--git-image", "--identity-url", "--identity-listen"):
        assert option in result.output


def test_serve_hands_the_kube_settings_to_the_server(monkeypatch: pytest.MonkeyPatch,
                                                     fake: FakeKubeApi,
                                                     tmp_path: Path) -> None:
    """--backend kubernetes with its options: the server gets KubeSettings saying so."""
    import skiff.server

    started: list[KubeSettings | None] = []
    monkeypatch.setattr(skiff.server, "serve",
                        lambda settings, *, kube=None: started.append(kube))
    config = fake.kubeconfig(tmp_path / "kubeconfig")
    result = CliRunner().invoke(serve, [
        "--data-root", str(tmp_path / "root"), "--backend", "kubernetes", "--kubeconfig",
        str(config), "--context", "fake", "--namespace-prefix", "aci", "--runtime-class",
        "kata", "--git-image", "alpine/git:v2.47.2"])
    assert result.exit_code == 0, result.output
    assert started == [KubeSettings(kubeconfig=config, context="fake", namespace_prefix="aci",
                                    runtime_class="kata", git_image="alpine/git:v2.47.2")]


def group_url(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/Team-A/providers/" \
           f"Microsoft.ContainerInstance/containerGroups/{name}{API}"


def test_a_group_whose_anchor_went_while_skiff_was_down_is_made_again(
        fake: FakeKubeApi, tmp_path: Path) -> None:
    """skiff stopped, the group's anchor deleted by hand (its objects go with it), skiff
    started again: the reconciler's first pass makes the group again from the store, and
    its instance view says so (its address may have changed)."""
    def start() -> Server:
        settings = Settings(data_root=tmp_path / "root",
                            api=ApiSettings(listen="127.0.0.1:0", location="local"),
                            files=FilesSettings(listen=None),
                            metrics=MetricsSettings(interval_s=0))
        kube = KubeSettings(kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
                            start_timeout_s=0.5, watch_timeout_s=1)
        return build(settings, share_disks=FakeShareDisks(tmp_path / "shares"), kube=kube)

    namespace = naming.namespace_name(SUB, "Team-A")
    first = start()
    try:
        _, token = first.plane.store.create_token(SUB, "tests")
        with start_blocking_portal() as portal:
            http = InProcessClient(portal, create_app(first.plane), token)
            assert http.put(group_url("web"), json=one_container_group(
                "nginx:1.27", "sleep 300")).status_code in (200, 201)
            eventually(lambda: http.get(group_url("web")).json()["properties"][
                "provisioningState"] == "Succeeded", what="deployed")
    finally:
        first.close()
    fake.delete("configmaps", namespace, "web.anchor")
    assert ("pods", namespace, "web") not in fake.objects
    second = start()
    try:
        eventually(lambda: ("configmaps", namespace, "web.anchor") in fake.objects
                   and ("pods", namespace, "web") in fake.objects, what="made again")
        with start_blocking_portal() as portal:
            http = InProcessClient(portal, create_app(second.plane), token)
            events = http.get(group_url("web")).json()["properties"]["instanceView"][
                "events"]
        assert [e["name"] for e in events if e["name"] == "GroupRecreated"] == [
            "GroupRecreated"]
    finally:
        second.close()


def test_gpu_skus_of_the_clusters_nodes_are_offered_and_admitted(
        fake: FakeKubeApi, server: Server) -> None:
    """The capabilities API lists the SKUs of the cluster's labelled GPU nodes; a group
    asking for them is admitted and its Pod placed on them; a SKU the cluster lacks is
    refused at once with the API's 409, naming what the cluster has."""
    fake.add_node("h100", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3")
    _, token = server.plane.store.create_token(SUB, "tests")
    namespace = naming.namespace_name(SUB, "Team-A")
    body = one_container_group("nvcr.io/nvidia/cuda:12.6.0-base-ubuntu24.04", "nvidia-smi")
    resources = body["properties"]["containers"][0]["properties"]["resources"]
    resources["requests"]["gpu"] = {"count": 2, "sku": "h100"}
    with start_blocking_portal() as portal:
        http = InProcessClient(portal, create_app(server.plane), token)
        offered = http.get(f"/subscriptions/{SUB}/providers/Microsoft.ContainerInstance/"
                           f"locations/local/capabilities{API}").json()["value"]
        assert [(c["gpu"], c["capabilities"]["maxGpuCount"]) for c in offered] == [
            ("None", 0), ("H100", 8)]
        assert http.put(group_url("train"), json=body).status_code in (200, 201)
        eventually(lambda: ("pods", namespace, "train") in fake.objects, what="the Pod")
        pod = fake.get("pods", namespace, "train")
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        resources["requests"]["gpu"] = {"count": 1, "sku": "L4"}
        refused = http.put(group_url("infer"), json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "ServiceUnavailable"
        assert "The cluster has 8 H100" in refused.json()["error"]["message"]


def test_the_start_up_line_names_the_clusters_gpus(fake: FakeKubeApi, server: Server) -> None:
    """serve's start-up words on this backend: the cluster's GPUs by SKU; a cluster that
    does not answer is said so, without failing."""
    from skiff.errors import ClusterError
    from skiff.server import cluster_gpu_words

    class Unreachable:
        def capacity(self) -> None:
            raise ClusterError("the API server did not answer: connection refused")

    fake.add_node("l4", gpus=2, gpu_product="NVIDIA-L4")
    assert cluster_gpu_words(server.plane.engine) == "the cluster's GPUs: 2 L4"
    assert cluster_gpu_words(Unreachable()) == (  # type: ignore[arg-type]
        "the cluster's GPUs not read: the API server did not answer: connection refused")
@pytest.mark.parametrize(("options", "message"), [
    (["--identity-url", "ftp://skiff.example"], "is not an http:// or https:// URL"),
    (["--identity-url", "https://skiff.example/?a=b"], "is not an http:// or https:// URL"),
    (["--identity-url", "https://"], "is not an http:// or https:// URL"),
    (["--identity-url", "http://skiff.example:8080"], "needs --identity-listen"),
    (["--identity-listen", "127.0.0.1:8080"], "--identity-listen needs --identity-url"),
    (["--identity-url", "http://10.0.0.5:8080", "--identity-listen", "skiff:8080"],
     "is not IP:PORT"),
])
def test_bad_identity_options_are_refused(fake: FakeKubeApi, tmp_path: Path,
                                          options: list[str], message: str) -> None:
    """--identity-url must be an http(s) URL of a host; an http:// one needs the plain
    listener, which needs the URL: usage errors before anything starts."""
    result = CliRunner().invoke(serve, [
        "--data-root", str(tmp_path / "root"), "--backend", "kubernetes", "--kubeconfig",
        str(fake.kubeconfig(tmp_path / "kubeconfig")), *options])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_identity_options_need_the_kubernetes_backend(tmp_path: Path) -> None:
    """--identity-url on the local backend (whose groups ask 169.254.169.254): refused."""
    result = CliRunner().invoke(serve, ["--data-root", str(tmp_path), "--identity-url",
                                        "https://skiff.example:8443"])
    assert result.exit_code == 2
    assert "--identity-url needs --backend kubernetes" in result.output


def test_serve_hands_the_identity_url_to_the_server(monkeypatch: pytest.MonkeyPatch,
                                                   fake: FakeKubeApi, tmp_path: Path) -> None:
    """--identity-url (its trailing slash dropped) and --identity-listen reach KubeSettings."""
    import skiff.server

    started: list[KubeSettings | None] = []
    monkeypatch.setattr(skiff.server, "serve",
                        lambda settings, *, kube=None: started.append(kube))
    config = fake.kubeconfig(tmp_path / "kubeconfig")
    result = CliRunner().invoke(serve, [
        "--data-root", str(tmp_path / "root"), "--backend", "kubernetes", "--kubeconfig",
        str(config), "--identity-url", "http://10.0.0.5:8080/", "--identity-listen",
        "0.0.0.0:8080"])
    assert result.exit_code == 0, result.output
    assert started == [KubeSettings(kubeconfig=config, identity_url="http://10.0.0.5:8080",
                                    identity_listen="0.0.0.0:8080")]
