"""The engine's GPU allocator: each GPU to one container alone, a group's all or none,
kept across a restart of skiff, freed on release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff.core.spec import Container, GroupSpec, Resources
from skiff.engine.gpus import Gpu
from skiff.engine.group.gpus import GpuAllocator, GpusUnavailable, wanted
from skiff.engine.group.validation import validate
from skiff.errors import InvalidGroupSpec

H100 = [Gpu(i, f"GPU-h{i}", "NVIDIA H100 80GB HBM3", 81559, "550.54.15",
            f"00000000:{0x18 + i:02X}:00.0", i) for i in range(3)]
L4 = Gpu(3, "GPU-l4", "NVIDIA L4", 23034, "550.54.15", "00000000:40:00.0", 3)


def _allocator(tmp_path: Path) -> GpuAllocator:
    return GpuAllocator([*H100, L4], tmp_path / "gpus.json")


def test_containers_get_distinct_gpus(tmp_path: Path) -> None:
    """Two containers of a group, and another group: never one GPU twice."""
    gpus = _allocator(tmp_path)
    given = gpus.allocate("g1", {"a": (1, "H100"), "b": (1, "H100")})
    other = gpus.allocate("g2", {"c": (1, "H100"), "d": (1, "L4")})
    uuids = [g.uuid for held in (*given.values(), *other.values()) for g in held]
    assert sorted(uuids) == ["GPU-h0", "GPU-h1", "GPU-h2", "GPU-l4"]
    assert gpus.counts() == {"H100": 3, "L4": 1}


def test_all_or_none(tmp_path: Path) -> None:
    """A group asking more than is free gets nothing, and what it held is unchanged."""
    gpus = _allocator(tmp_path)
    gpus.allocate("g1", {"a": (2, "H100")})
    with pytest.raises(GpusUnavailable, match="1 of this node's are free"):
        gpus.allocate("g2", {"a": (1, "L4"), "b": (2, "H100")})
    assert gpus.held("g2") == {}
    assert gpus.allocate("g2", {"a": (1, "L4")})["a"] == (L4,)


def test_unknown_sku_names_what_the_node_has(tmp_path: Path) -> None:
    """A SKU the node lacks: refused naming the node's GPUs."""
    with pytest.raises(GpusUnavailable, match="it has 3 H100, 1 L4"):
        _allocator(tmp_path).allocate("g", {"a": (1, "A100")})


def test_kept_across_calls_and_a_restart(tmp_path: Path) -> None:
    """The same group asking the same again keeps its GPUs; so does a new allocator (skiff
    restarted) reading the state file."""
    gpus = _allocator(tmp_path)
    first = gpus.allocate("g", {"a": (1, "H100")})
    gpus.allocate("h", {"b": (1, "H100")})
    assert gpus.allocate("g", {"a": (1, "H100")}) == first
    again = _allocator(tmp_path)
    assert again.held("g") == first
    assert again.allocate("g", {"a": (1, "H100")}) == first
    assert json.loads((tmp_path / "gpus.json").read_text())["GPU-h0"] == ["g", "a"]


def test_release_frees(tmp_path: Path) -> None:
    """Released GPUs go to the next group; a changed request picks again."""
    gpus = _allocator(tmp_path)
    gpus.allocate("g", {"a": (3, "H100")})
    gpus.release("g")
    assert gpus.holders() == set()
    assert len(gpus.allocate("h", {"a": (3, "H100")})["a"]) == 3
    assert _allocator(tmp_path).holders() == {"h"}


def test_wanted_and_sandbox_refused() -> None:
    """wanted() lists the containers asking GPUs; the engine refuses them in a sandbox."""
    spec = GroupSpec(id="g", name="g", containers=(
        Container(name="a", image="cuda", resources=Resources(gpu_count=2, gpu_sku="H100")),
        Container(name="b", image="busybox")))
    assert wanted(spec) == {"a": (2, "H100")}
    validate(spec)
    with pytest.raises(InvalidGroupSpec, match="gVisor"):
        validate(GroupSpec(id="g", name="g", containers=spec.containers, isolation="sandbox"))
