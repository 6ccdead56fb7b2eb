"""The node's NVIDIA GPUs, as the driver reports them.

``nvidia-smi`` ships with every NVIDIA driver, and its query mode is the driver's
documented, scriptable interface (``nvidia-smi --help-query-gpu``)::

    nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version,pci.bus_id \\
        --format=csv,noheader,nounits

prints one line per GPU, the fields in the order asked, separated by ``", "``
(``memory.total`` in MiB with ``nounits``; ``pci.bus_id`` as
``domain:bus:device.function`` with an 8-digit domain)::

    0, GPU-8f6c1ad5-0b2e-4b9a-9c1e-5d2f7a1b3c4d, NVIDIA H100 80GB HBM3, 81559, 550.54.15, \
       00000000:18:00.0      (one line)

A GPU's device node is ``/dev/nvidia<minor>``; the minor number is the driver's, read
from ``/proc/driver/nvidia/gpus/<bus id>/information`` (``Device Minor:``, the bus id
there with a 4-digit lower-case domain), and is usually, but not always, the index
(the index follows PCI order only under ``CUDA_DEVICE_ORDER``-like settings of the
driver; the minor is what the kernel gave). Without that file the index is used.

NVML through a Python binding would read the same; ``nvidia-smi`` needs nothing
installed beside the driver, and is what an operator checks by hand. No nvidia-smi, or
one that fails (no driver loaded, a driver/library mismatch): the node has no GPUs,
and why is logged once. GPUs do not come and go while skiff runs: the answer is kept.

``python3 -m skiff.engine.gpus`` prints what was found; ``--spec N`` the OCI parts a
container given the first N GPUs would get (``scripts/gpu-probe`` runs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from skiff.core.gpus import sku_of

log = logging.getLogger(__name__)

#: The fields asked of nvidia-smi, in this order.
QUERY_FIELDS = ("index", "uuid", "name", "memory.total", "driver_version", "pci.bus_id")
QUERY = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}",
         "--format=csv,noheader,nounits"]
#: Where the driver describes each GPU (a test points it elsewhere).
PROC_GPUS = Path("/proc/driver/nvidia/gpus")
#: nvidia-smi answers in well under a second; one hung on a wedged GPU must not hang serve.
QUERY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Gpu:
    """One GPU of the node."""

    index: int
    uuid: str
    #: The driver's name of the model (``NVIDIA H100 80GB HBM3``).
    model: str
    memory_mib: int
    driver: str
    #: PCI address as nvidia-smi writes it (``00000000:18:00.0``).
    bus_id: str
    #: Its device node is ``/dev/nvidia<minor>``.
    minor: int

    @property
    def sku(self) -> str:
        """Its SKU name in the API (:func:`skiff.core.gpus.sku_of`)."""
        return sku_of(self.model)

    @property
    def device(self) -> str:
        return f"/dev/nvidia{self.minor}"


class QueryFormatError(ValueError):
    """nvidia-smi's answer is not in the format asked for."""


def proc_bus_id(bus_id: str) -> str:
    """nvidia-smi's bus id as /proc/driver/nvidia names it: ``00000000:18:00.0`` →
    ``0000:18:00.0`` (a 4-digit domain, lower case)."""
    domain, _, rest = bus_id.strip().partition(":")
    return f"{domain[-4:].rjust(4, '0')}:{rest}".lower()


def device_minor(bus_id: str, root: Path = PROC_GPUS) -> int | None:
    """The ``Device Minor`` the driver gave the GPU at ``bus_id``; None if not told."""
    try:
        text = (root / proc_bus_id(bus_id) / "information").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Device Minor":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def parse_query(text: str, root: Path = PROC_GPUS) -> list[Gpu]:
    """The GPUs of nvidia-smi's answer to :data:`QUERY`; QueryFormatError if a line is
    not six fields of the kinds asked."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(QUERY_FIELDS):
            raise QueryFormatError(f"line {number}: {len(fields)} fields, expected "
                                   f"{len(QUERY_FIELDS)}: {line[:200]!r}")
        index, uuid, model, memory, driver, bus_id = fields
        try:
            idx, mib = int(index), int(float(memory))
        except ValueError as exc:
            raise QueryFormatError(f"line {number}: index or memory is not a number: "
                                   f"{line[:200]!r}") from exc
        if not uuid.startswith(("GPU-", "MIG-")):
            raise QueryFormatError(f"line {number}: {uuid[:80]!r} is not a GPU UUID")
        minor = device_minor(bus_id, root)
        found.append(Gpu(index=idx, uuid=uuid, model=model, memory_mib=mib, driver=driver,
                         bus_id=bus_id, minor=idx if minor is None else minor))
    return sorted(found, key=lambda g: g.index)


def query(command: list[str] | None = None, root: Path = PROC_GPUS) -> tuple[list[Gpu], str]:
    """Ask the driver; the GPUs found and, when there are none, why (in words)."""
    try:
        done = subprocess.run(command or QUERY, capture_output=True, text=True, check=False,
                              timeout=QUERY_TIMEOUT_S)
    except FileNotFoundError:
        return [], "nvidia-smi is not installed (no NVIDIA driver)"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi could not run: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return [], (f"nvidia-smi failed (exit {done.returncode}): "
                    f"{said[0][:200] if said else 'no output'}")
    try:
        gpus = parse_query(done.stdout, root)
    except QueryFormatError as exc:
        return [], f"nvidia-smi's answer was not understood: {exc}"
    return gpus, "" if gpus else "nvidia-smi lists no GPUs"


@cache
def node_gpus() -> tuple[Gpu, ...]:
    """The node's GPUs, asked once (the reason there are none logged once)."""
    gpus, reason = query()
    if not gpus:
        log.info("no GPUs: %s", reason)
    return tuple(gpus)


def summary(gpus: tuple[Gpu, ...] | list[Gpu]) -> str:
    """The GPUs in a few words for the start-up line: ``2 H100 (80 GiB, driver 550.54.15)``."""
    if not gpus:
        return "no GPUs"
    by_sku: dict[str, list[Gpu]] = {}
    for gpu in gpus:
        by_sku.setdefault(gpu.sku, []).append(gpu)
    return ", ".join(f"{len(group)} {sku} ({round(group[0].memory_mib / 1024)} GiB, "
                     f"driver {group[0].driver})" for sku, group in sorted(by_sku.items()))


def main(argv: list[str] | None = None) -> int:
    """``python3 -m skiff.engine.gpus [--spec N]``: discovery, and the OCI parts of a
    container given N GPUs, as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python3 -m skiff.engine.gpus",
                                     description="The node's NVIDIA GPUs as skiff sees them.")
    parser.add_argument("--spec", type=int, metavar="N", default=0,
                        help="also print what a container given the first N GPUs gets "
                             "(devices, cgroup rules, mounts, hooks, environment)")
    args = parser.parse_args(argv)
    gpus, reason = query()
    out: dict[str, object] = {"gpus": [{**asdict(g), "sku": g.sku} for g in gpus],
                              "reason": reason, "summary": summary(gpus)}
    if args.spec:
        from skiff.engine.spec.nvidia import NvidiaDriverFiles, container_gpu_parts

        if len(gpus) < args.spec:
            out["spec_error"] = f"{args.spec} GPUs asked, {len(gpus)} found"
        else:
            parts = container_gpu_parts(gpus[:args.spec], NvidiaDriverFiles.of_host())
            out["spec"] = parts.as_json()
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if gpus else 1


if __name__ == "__main__":
    sys.exit(main())
