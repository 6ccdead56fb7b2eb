"""GPU SKU names: what a node's NVIDIA GPUs are called in the API.

ACI names its GPU SKUs ``K80``, ``P100`` and ``V100`` (the ``gpu`` field of the
``capabilities`` API, ``resources.requests.gpu.sku`` of a container; the SDKs' enum is
"modelAsString", so other names pass through them). Those boards are long retired; a
node today has an H100, an A100, an L4. skiff names each model by the short token NVIDIA
and the clouds use for it, from one table (:data:`SKU_TABLE`: the first pattern found in
the driver's model name wins), so ACI's three names keep meaning what they meant and a
modern board reads the way an operator would say it::

    "NVIDIA H100 80GB HBM3"     -> H100
    "NVIDIA H200"               -> H200
    "NVIDIA A100-SXM4-40GB"     -> A100
    "Tesla V100-SXM2-16GB"      -> V100
    "NVIDIA GeForce RTX 4090"   -> RTX-4090   (not in the table: the name, normalised)

A model the table does not know is named by its words (vendor and family prefixes
dropped, letters and digits kept, joined by ``-``, upper case). A request's ``sku`` is
matched case-insensitively (:func:`canonical`). The control plane and the engine share
this module: it is data, no hardware is read here (that is
:mod:`skiff.engine.gpus`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: (pattern found in the model name, upper case, as a word; SKU name), most specific
#: first. ACI's own three first, then NVIDIA's data-centre boards by generation.
SKU_TABLE: tuple[tuple[str, str], ...] = (
    ("K80", "K80"),
    ("P100", "P100"),
    ("V100", "V100"),
    ("T4", "T4"),
    ("A10G", "A10G"),
    ("A100", "A100"),
    ("A30", "A30"),
    ("A40", "A40"),
    ("A10", "A10"),
    ("L40S", "L40S"),
    ("L40", "L40"),
    ("L4", "L4"),
    ("H100", "H100"),
    ("H200", "H200"),
    ("GH200", "GH200"),
    ("B200", "B200"),
    ("GB200", "GB200"),
)

#: ACI's GPU SKUs (its API's enum), for documentation and the capabilities' words.
ACI_SKUS = ("K80", "P100", "V100")

#: Words of a model name that say nothing of the board.
_NOISE = frozenset(("NVIDIA", "TESLA", "GEFORCE", "QUADRO"))


def sku_of(model: str) -> str:
    """The SKU name of a GPU model as the driver names it (``nvidia-smi``'s ``name``)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", model.upper()) if w]
    # GH200 is "NVIDIA GH200 480GB": look for whole words, so H200 does not match it.
    for pattern, sku in sorted(SKU_TABLE, key=lambda item: -len(item[0])):
        if pattern in words:
            return sku
    kept = [w for w in words if w not in _NOISE]
    return "-".join(kept) or "GPU"


def canonical(sku: str) -> str:
    """A requested SKU as the node names SKUs: matched case-insensitively, surrounding
    blanks ignored (``h100`` → ``H100``)."""
    return sku.strip().upper()


def describe(counts: Mapping[str, int]) -> str:
    """What a node has, in words for a refusal: ``2 H100, 1 L4`` or ``no GPUs``."""
    if not counts or not any(counts.values()):
        return "no GPUs"
    return ", ".join(f"{n} {sku}" for sku, n in sorted(counts.items()) if n)
