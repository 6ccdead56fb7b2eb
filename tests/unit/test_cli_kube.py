"""Unit tests for ``skiff kube render``: a group file in, Kubernetes YAML out, no cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.testing.documents import REGISTRY_PASSWORD, SECRET_B64, SECURE_VALUE, group_body
from skiff.testing.kube import check_group

SAMPLES = Path(__file__).parent / "kube_samples"


def render(*args: str) -> Result:
    return CliRunner().invoke(main, ["kube", "render", *args])


def documents(result: Result) -> list[Any]:
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.output) if d is not None]


def test_an_aci_yaml_file_renders_as_valid_kubernetes_yaml() -> None:
    """The namespace first, then the anchor and the group's objects, in YAML documents
    that pass Kubernetes' schema; no YAML anchors (each object stands alone)."""
    result = render("--file", str(SAMPLES / "multi-container.yaml"), "-g", "Prod_RG")
    docs = documents(result)
    assert [d["kind"] for d in docs] == ["Namespace", "ConfigMap", "Pod", "Service",
                                         "NetworkPolicy"]
    namespace = docs[0]["metadata"]["name"]
    assert namespace.startswith("skiff-prod-rg-")
    assert "&id" not in result.output
    check_group(docs[1:])


def test_an_arm_json_body_renders_with_the_name_given() -> None:
    """A JSON body has no name: -n gives it; --namespace puts the objects there."""
    path = SAMPLES.parent / "kube_samples" / "multi-container.yaml"
    body = yaml.safe_load(path.read_text())
    del body["name"], body["apiVersion"]
    runner = CliRunner()
    with runner.isolated_filesystem():
        Path("g.json").write_text(json.dumps(body))
        result = runner.invoke(main, ["kube", "render", "-f", "g.json", "-n", "web",
                                      "--namespace", "team-a"])
    docs = documents(result)
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "team-a", "labels": {"app.kubernetes.io/managed-by": "skiff"}}}
    assert all(d["metadata"]["namespace"] == "team-a" for d in docs[1:])
    assert any(d["kind"] == "Pod" and d["metadata"]["name"] == "web"
               for d in docs)


def test_secrets_are_printed_only_when_asked() -> None:
    """Secure values, registry passwords and secret files are empty in the output unless
    --show-secrets; the Secrets and their keys are shown either way."""
    runner = CliRunner()
    with runner.isolated_filesystem():
        Path("g.json").write_text(json.dumps(group_body()))
        hidden = runner.invoke(main, ["kube", "render", "-f", "g.json", "-n", "web"])
        shown = runner.invoke(main, ["kube", "render", "-f", "g.json", "-n", "web",
                                     "--show-secrets"])
    for secret in (SECURE_VALUE, REGISTRY_PASSWORD, SECRET_B64):
        assert secret not in hidden.output
    secrets = {d["metadata"]["name"]: d["data"] for d in documents(hidden)
               if d["kind"] == "Secret"}
    assert secrets["web.env"] == {"web.TOKEN": ""}
    assert SECRET_B64 in shown.output
    assert "web.TOKEN" in shown.output


def test_a_file_the_api_refuses_is_refused_with_its_arm_error() -> None:
    """The API's rules run first: their ARM code and message, no traceback, no secret."""
    body = group_body()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = -1
    runner = CliRunner()
    with runner.isolated_filesystem():
        Path("g.json").write_text(json.dumps(body))
        result = runner.invoke(main, ["kube", "render", "-f", "g.json", "-n", "web"])
    assert result.exit_code == 1
    assert result.output.startswith("ERROR: (")
    assert "Traceback" not in result.output
    assert SECURE_VALUE not in result.output


def test_bad_names_are_refused_clearly() -> None:
    """A namespace, prefix or runtime class Kubernetes cannot take is an error naming it."""
    sample = str(SAMPLES / "sandbox.yaml")
    for args, words in ((["--namespace", "Team_A"], "DNS-1123 label"),
                        (["--namespace-prefix", "-x"], "namespace prefix"),
                        (["--runtime-class", "G Visor"], "--runtime-class"),
                        (["--git-image", "Not An Image"], "InvalidImageReference")):
        result = render("-f", sample, *args)
        assert result.exit_code == 1, result.output
        assert words in result.output


def test_a_sandbox_group_names_the_runtime_class_given() -> None:
    """Isolation Sandbox: the Pod's runtimeClassName is --runtime-class's."""
    docs = documents(render("-f", str(SAMPLES / "sandbox.yaml"), "--runtime-class", "runsc"))
    (pod,) = (d for d in docs if d["kind"] == "Pod")
    assert pod["spec"]["runtimeClassName"] == "runsc"


def test_the_help_says_what_render_does() -> None:
    """--help names the input kinds and that secrets are hidden."""
    result = CliRunner().invoke(main, ["kube", "render", "--help"])
    assert result.exit_code == 0
    assert "ACI YAML file" in result.output
    assert "--show-secrets" in result.output


def test_a_gpu_group_renders_with_the_nodes_of_its_sku() -> None:
    """GPUs: the limit on the container asking for them, the GPU taint tolerated, and with
    --gpu-product the nodes whose label reads as the SKU (an L4 pool's left out); without
    it no node affinity; a MIG product is refused, not placed on."""
    sample = str(SAMPLES / "gpu.yaml")
    docs = documents(render("-f", sample, "--gpu-product", "NVIDIA-H100-80GB-HBM3",
                            "--gpu-product", "NVIDIA-L4", "--gpu-product", "NVIDIA-H100-NVL"))
    check_group(docs[1:])
    (pod,) = (d for d in docs if d["kind"] == "Pod")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    (term,) = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3",
                                                     "NVIDIA-H100-NVL"]
    (bare,) = (d for d in documents(render("-f", sample)) if d["kind"] == "Pod")
    assert "affinity" not in bare["spec"]
    assert bare["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    mig = render("-f", sample, "--gpu-product", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb")
    assert mig.exit_code == 1
    assert "MIG" in mig.output
    missing = render("-f", sample, "--gpu-product", "NVIDIA-L4")
    assert missing.exit_code == 1
    assert "'H100'" in missing.output
