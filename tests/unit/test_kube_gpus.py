"""Unit tests for skiff.kube.gpus: a cluster's GPUs by SKU from its nodes, and the node
affinity of a Pod asking for one SKU.

The label values are GFD's form (the driver's model name, blanks as ``-``; ``-MIG-<profile>``
for MIG slices, ``-SHARED`` for time-sliced GPUs), as its labeller writes them; no cluster
or GPU was there to record from.
"""

from __future__ import annotations

from typing import Any

import pytest

from skiff.kube.gpus import (
    PRODUCT_LABEL,
    UNLABELLED,
    cluster_gpus,
    node_affinity,
    product_sku,
)
from skiff.testing.kube import validate


def node(name: str, gpus: int, product: str | None = None, *, ready: bool = True) -> dict[str, Any]:
    """A Node as list_node gives it, checked against Kubernetes' schema."""
    labels = {} if product is None else {PRODUCT_LABEL: product}
    allocatable = {"cpu": "8", "memory": "32Gi"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
           "status": {"allocatable": allocatable, "conditions": [
               {"type": "Ready", "status": "True" if ready else "False"}]}}
    validate(obj)
    return obj


@pytest.mark.parametrize(("product", "sku"), [
    ("NVIDIA-H100-80GB-HBM3", "H100"),
    ("NVIDIA-H100-NVL", "H100"),
    ("NVIDIA-H200", "H200"),
    ("NVIDIA-GH200-480GB", "GH200"),
    ("NVIDIA-A100-SXM4-80GB", "A100"),
    ("NVIDIA-A10G", "A10G"),
    ("NVIDIA-L4", "L4"),
    ("Tesla-T4", "T4"),
    ("Tesla-V100-SXM2-16GB", "V100"),
    ("NVIDIA-GeForce-RTX-4090", "RTX-4090"),
    ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", None),
    ("Tesla-T4-SHARED", None),
])
def test_a_product_label_reads_as_the_sku_of_its_model(product: str, sku: str | None) -> None:
    """GFD's label value is the model name with dashes: the SKU the node engine would name
    the model; MIG slices and time-sliced GPUs are no SKU (not whole GPUs)."""
    assert product_sku(product) == sku


def test_the_clusters_gpus_by_sku_count_ready_whole_gpus() -> None:
    """Counts by SKU from Ready nodes' allocatable, every product value of a SKU listed
    (sorted, once); a node without the label counts as UNLABELLED; MIG and shared nodes
    and CPU nodes count for no SKU, though their nvidia.com/gpu is in the total."""
    found = cluster_gpus([
        node("h100-a", 8, "NVIDIA-H100-80GB-HBM3"),
        node("h100-b", 8, "NVIDIA-H100-80GB-HBM3"),
        node("h100-nvl", 2, "NVIDIA-H100-NVL"),
        node("l4", 1, "NVIDIA-L4"),
        node("bare", 2),
        node("mig", 7, "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"),
        node("shared", 4, "Tesla-T4-SHARED"),
        node("cpu", 0),
        node("down", 8, "NVIDIA-H200", ready=False),
    ])
    assert found.counts == {"H100": 18, "L4": 1, UNLABELLED: 2}
    assert found.products == {"H100": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-NVL"),
                              "L4": ("NVIDIA-L4",), UNLABELLED: ()}
    assert found.total == 18 + 1 + 2 + 7 + 4


def test_a_skus_node_affinity_names_its_label_values() -> None:
    """SKU H100: the nodes labelled with one of its products; UNLABELLED: the nodes without
    the label; a SKU no node has: None (never an empty In, which the API refuses)."""
    products = {"H100": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-NVL"), UNLABELLED: ()}
    terms = node_affinity("H100", products)
    assert terms is not None
    (term,) = terms["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": PRODUCT_LABEL, "operator": "In", "values": [
        "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-NVL"]}]}
    bare = node_affinity(UNLABELLED, products)
    assert bare is not None
    assert bare["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] == [{"matchExpressions": [{"key": PRODUCT_LABEL,
                                                        "operator": "DoesNotExist"}]}]
    assert node_affinity("L4", products) is None
