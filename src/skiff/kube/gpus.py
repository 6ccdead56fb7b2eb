"""A cluster's NVIDIA GPUs by SKU, and how a Pod asks for GPUs of one SKU.

The NVIDIA device plugin makes each GPU node's GPUs the extended resource
``nvidia.com/gpu`` (its ``allocatable``); a Pod asks for them as a container's limit
(Kubernetes takes an extended resource's limit as its request). The resource says how
many, not which: NVIDIA's GPU Feature Discovery (GFD) labels each GPU node with its
product, ``nvidia.com/gpu.product``, the driver's model name with ``-`` for each blank
(``NVIDIA-H100-80GB-HBM3``, ``Tesla-T4``). skiff names SKUs from the driver's model name
(:func:`skiff.core.gpus.sku_of`), and ``sku_of`` splits on any non-alphanumeric, so a
label reads as the model it came from: ``NVIDIA-H100-80GB-HBM3`` → ``H100``.

A group asking for SKU ``S`` gets a required node affinity on the label values that the
cluster's Ready nodes carry for ``S`` (several: an ``H100`` may be ``…-80GB-HBM3`` on one
pool and ``…-NVL`` on another), and a toleration of the ``nvidia.com/gpu`` taint (AKS and
the GPU operator taint GPU pools ``NoSchedule``) — only GPU groups tolerate it, so
others keep off GPU nodes.

Two kinds of labelled node are left out of the SKUs: GFD appends ``-MIG-<profile>`` to
the product of a node whose GPUs are MIG slices (``single`` strategy: its
``nvidia.com/gpu`` counts slices) and ``-SHARED`` to one whose GPUs are time-sliced
(its ``nvidia.com/gpu`` counts replicas). Neither is a whole GPU given to one
container, which is what a GPU of skiff's is, so those nodes count for no SKU and no
GPU group is placed on them.

A GPU node **without** the product label (GFD not installed) cannot be told apart by
model. Its GPUs are counted under the SKU :data:`UNLABELLED` (``GPU``, what ``sku_of``
names a model it cannot read): the capabilities API lists it, and a request for SKU
``GPU`` is placed on nodes without the label (``DoesNotExist``; its ``nvidia.com/gpu``
limit keeps it off nodes without GPUs). A request for ``H100`` is never placed on an
unlabelled node: skiff cannot know it holds H100s. The operator who wants SKUs installs
GFD (the GPU operator does by default).

Pure functions of the nodes the API server lists; nothing here talks to a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from skiff.core.gpus import sku_of

Obj = dict[str, Any]

#: The device plugin's extended resource.
RESOURCE = "nvidia.com/gpu"
#: GFD's label of a GPU node's product (model name, blanks as ``-``).
PRODUCT_LABEL = "nvidia.com/gpu.product"
#: The SKU of GPUs on nodes without :data:`PRODUCT_LABEL` (``sku_of("")``).
UNLABELLED = "GPU"
#: The toleration of the taint GPU node pools carry (AKS, the GPU operator).
TOLERATION: Obj = {"key": RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def product_sku(product: str) -> str | None:
    """The SKU of a node labelled ``product``; None for MIG slices and time-sliced GPUs,
    which are not whole GPUs (the module says why)."""
    words = product.upper().split("-")
    if "MIG" in words or "SHARED" in words:
        return None
    return sku_of(product)


@dataclass
class ClusterGpus:
    """The GPUs of a cluster's Ready nodes, by SKU."""

    #: GPUs (``nvidia.com/gpu`` allocatable) by SKU, whole GPUs only.
    counts: dict[str, int] = field(default_factory=dict)
    #: The product label values each SKU's nodes carry, sorted (none for UNLABELLED).
    products: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Every node's ``nvidia.com/gpu``, slices and replicas included.
    total: int = 0


def _count(text: Any) -> int:
    try:
        return max(0, int(Decimal(str(text))))
    except (InvalidOperation, ValueError):
        return 0


def is_ready(node: Mapping[str, Any]) -> bool:
    """Whether the node's ``Ready`` condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def cluster_gpus(nodes: Iterable[Mapping[str, Any]]) -> ClusterGpus:
    """The GPUs of the Ready ones of ``nodes`` (``list_node``'s items)."""
    found = ClusterGpus()
    products: dict[str, set[str]] = {}
    for node in nodes:
        if not is_ready(node):
            continue
        count = _count(((node.get("status") or {}).get("allocatable") or {}).get(RESOURCE, 0))
        if not count:
            continue
        found.total += count
        product = ((node.get("metadata") or {}).get("labels") or {}).get(PRODUCT_LABEL)
        sku = UNLABELLED if not product else product_sku(product)
        if sku is None:
            continue
        found.counts[sku] = found.counts.get(sku, 0) + count
        values = products.setdefault(sku, set())
        if product:
            values.add(product)
    found.products = {sku: tuple(sorted(v)) for sku, v in products.items()}
    return found


def node_affinity(sku: str, products: Mapping[str, tuple[str, ...]]) -> Obj | None:
    """The required node affinity of a Pod whose GPUs are of SKU ``sku``: the nodes
    labelled with one of ``products[sku]``, or (SKU UNLABELLED) the nodes without the
    label; None when the cluster has no node of that SKU."""
    if sku == UNLABELLED:
        expression: Obj = {"key": PRODUCT_LABEL, "operator": "DoesNotExist"}
    elif products.get(sku):
        expression = {"key": PRODUCT_LABEL, "operator": "In", "values": list(products[sku])}
    else:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}
