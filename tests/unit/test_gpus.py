"""GPU discovery and SKU naming, on nvidia-smi's documented query format.

No GPU machine was lent to record real output: the text below is written in the format
NVIDIA documents for ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` (one
line per GPU, fields in the order asked, ``", "`` between them, memory in MiB, the PCI bus
id with an 8-digit domain) and for ``/proc/driver/nvidia/gpus/<bus>/information``
(``Device Minor:``). It is not recorded from a machine.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from skiff.core.gpus import canonical, describe, sku_of
from skiff.engine import gpus as discovery
from skiff.engine.gpus import Gpu, QueryFormatError, device_minor, parse_query, proc_bus_id

#: NVIDIA's documented query format (not recorded from a machine), two H100s.
H100_QUERY = (
    "0, GPU-8f6c1ad5-0b2e-4b9a-9c1e-5d2f7a1b3c4d, NVIDIA H100 80GB HBM3, 81559, "
    "550.54.15, 00000000:18:00.0\n"
    "1, GPU-1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d, NVIDIA H100 80GB HBM3, 81559, "
    "550.54.15, 00000000:2A:00.0\n"
)


def _information(root: Path, bus: str, minor: int) -> None:
    (root / bus).mkdir(parents=True)
    (root / bus / "information").write_text(
        "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\n"
        "GPU UUID: \t\t GPU-x\nVideo BIOS: \t\t 96.00.74.00.01\nBus Type: \t\t PCIe\n"
        f"DMA Size: \t\t 52 bits\nBus Location: \t\t {bus}\nDevice Minor: \t\t {minor}\n")


def test_query_parsed_into_records(tmp_path: Path) -> None:
    """Each line gives a GPU: index, UUID, model, MiB, driver, bus id, minor = index."""
    gpus = parse_query(H100_QUERY, root=tmp_path)
    assert [g.index for g in gpus] == [0, 1]
    first = gpus[0]
    assert first.uuid == "GPU-8f6c1ad5-0b2e-4b9a-9c1e-5d2f7a1b3c4d"
    assert (first.model, first.memory_mib, first.driver) == ("NVIDIA H100 80GB HBM3", 81559,
                                                             "550.54.15")
    assert (first.bus_id, first.minor) == ("00000000:18:00.0", 0)
    assert (first.sku, first.device) == ("H100", "/dev/nvidia0")


def test_minor_read_from_the_driver(tmp_path: Path) -> None:
    """The device minor comes from /proc/driver/nvidia/gpus/<bus>/information when there."""
    _information(tmp_path, "0000:2a:00.0", 7)
    assert proc_bus_id("00000000:2A:00.0") == "0000:2a:00.0"
    assert device_minor("00000000:2A:00.0", tmp_path) == 7
    gpus = parse_query(H100_QUERY, root=tmp_path)
    assert [g.minor for g in gpus] == [0, 7]


@pytest.mark.parametrize("line", [
    "0, GPU-a, NVIDIA H100, 81559, 550.54.15",  # a field short
    "x, GPU-a, NVIDIA H100, 81559, 550.54.15, 00000000:18:00.0",  # index not a number
    "0, 12345, NVIDIA H100, 81559, 550.54.15, 00000000:18:00.0",  # not a UUID
])
def test_malformed_query_refused(line: str, tmp_path: Path) -> None:
    """A line not in the format asked is an error, not a half-read GPU."""
    with pytest.raises(QueryFormatError):
        parse_query(line, root=tmp_path)


def _script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)]


def test_query_runs_nvidia_smi(tmp_path: Path) -> None:
    """query() runs the command and parses what it prints."""
    (tmp_path / "out").write_text(H100_QUERY)
    gpus, reason = discovery.query(_script(tmp_path, f"cat {tmp_path / 'out'}"), tmp_path)
    assert len(gpus) == 2
    assert reason == ""


@pytest.mark.parametrize(("command", "words"), [
    (None, "not installed"),
    ("echo 'NVIDIA-SMI has failed because it couldn''t communicate with the driver' >&2;"
     " exit 9", "exit 9"),
    ("echo garbage", "not understood"),
    ("true", "lists no GPUs"),
])
def test_no_gpus_with_a_reason(command: str | None, words: str, tmp_path: Path) -> None:
    """No nvidia-smi, a failing one, or output not understood: no GPUs, and why."""
    argv = [str(tmp_path / "absent")] if command is None else _script(tmp_path, command)
    gpus, reason = discovery.query(argv, tmp_path)
    assert gpus == []
    assert words in reason


@pytest.mark.parametrize(("model", "sku"), [
    ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA H100 PCIe", "H100"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA GH200 480GB", "GH200"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"),
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-16GB", "V100"),
    ("Tesla P100-PCIE-16GB", "P100"),
    ("Tesla K80", "K80"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"),
    ("NVIDIA RTX A6000", "RTX-A6000"),
])
def test_sku_names(model: str, sku: str) -> None:
    """Each model's SKU name: the table's token, or the model's words normalised."""
    assert sku_of(model) == sku


def test_sku_matched_case_insensitively() -> None:
    """A request's sku is compared upper-cased, blanks ignored."""
    assert canonical(" h100 ") == "H100" == sku_of("NVIDIA H100 NVL")
    assert canonical("rtx-4090") == sku_of("NVIDIA GeForce RTX 4090")


def test_describe_counts() -> None:
    """What a node has, in a refusal's words."""
    assert describe({}) == "no GPUs"
    assert describe({"L4": 1, "H100": 2}) == "2 H100, 1 L4"


def test_summary_line() -> None:
    """serve's start-up words for the GPUs found."""
    gpu = Gpu(0, "GPU-a", "NVIDIA H100 80GB HBM3", 81559, "550.54.15", "00000000:18:00.0", 0)
    assert discovery.summary([gpu, gpu]) == "2 H100 (80 GiB, driver 550.54.15)"
    assert discovery.summary([]) == "no GPUs"
