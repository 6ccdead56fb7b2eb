"""A GPU container's spec under real runc, with stand-in devices (no GPU was lent).

The spec is built as the engine builds it (:mod:`skiff.engine.spec.nvidia`) from a host
tree of the test's own: two "GPUs" whose device nodes are real character devices made
with mknod, numbered as harmless kernel devices that runc does not allow by default
(loop-control's 10:237 as the GPU given, fuse's 10:229 as the GPU not given), a fake
libcuda in an ``ldconfig -p`` text and a fake nvidia-smi. Inside the container: the given
GPU's node opens, the other's is absent and, made again with mknod, is refused by the
devices cgroup; the driver's files are there read-only; the environment points at them.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from skiff.engine.gpus import Gpu
from skiff.engine.spec.nvidia import GpuParts, NvidiaDriverFiles, container_gpu_parts, with_gpus
from skiff.engine.spec.options import with_process
from tests.engine.test_spec_runc import Bundle, bundle  # noqa: F401 -- the fixture

pytestmark = [pytest.mark.root]

#: Stand-ins: kernel devices any root opens without a capability, harmlessly (an open
#: alone does nothing), and that runc's default device rules do not allow.
LOOP_CONTROL = (10, 237)
FUSE = (10, 229)
GIVEN = Gpu(0, "GPU-given", "NVIDIA H100 80GB HBM3", 81559, "550.54.15", "00000000:18:00.0", 0)
OTHER = Gpu(1, "GPU-other", "NVIDIA H100 80GB HBM3", 81559, "550.54.15", "00000000:19:00.0", 1)


def _host(tmp_path: Path) -> NvidiaDriverFiles:
    dev = tmp_path / "hostdev"
    dev.mkdir()
    numbers = {"nvidia0": LOOP_CONTROL, "nvidia1": FUSE, "nvidiactl": LOOP_CONTROL,
               "nvidia-uvm": LOOP_CONTROL, "nvidia-uvm-tools": LOOP_CONTROL}
    for name, (major, minor) in numbers.items():
        os.mknod(dev / name, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    lib = tmp_path / "hostlib"
    lib.mkdir()
    (lib / "libcuda.so.550.54.15").write_text("not really libcuda\n")
    (lib / "libcuda.so.1").symlink_to("libcuda.so.550.54.15")
    tools = tmp_path / "hostbin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: stand-in (UUID: GPU-given)'\n")
    (tools / "nvidia-smi").chmod(0o755)
    ldconfig = f"\tlibcuda.so.1 (libc6,x86-64) => {lib}/libcuda.so.1\n"
    return NvidiaDriverFiles.of_host(dev_root=dev, ldconfig=ldconfig, path=str(tools),
                                     cdi_dirs=())


def _run(bundle: Bundle, script: str, parts: GpuParts) -> str:  # noqa: F811
    """``sh -c script`` in a container given ``parts``; its output."""
    bundle.write(with_process(["/bin/sh", "-c", script], ["PATH=/bin", "HOME=/"]),
                 with_gpus(parts))
    done = subprocess.run(bundle.runc("run", "--bundle", str(bundle.path), bundle.id),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout + done.stderr


def test_only_the_given_gpu_is_reachable(bundle: Bundle, tmp_path: Path) -> None:  # noqa: F811
    """The given GPU opens; the other is absent, and refused by the cgroup when made."""
    parts = container_gpu_parts([GIVEN], _host(tmp_path), others=[GIVEN, OTHER])
    out = _run(bundle,
        "ls /dev; head -c 0 /dev/nvidia0 && echo given=ok; "
        "test -e /dev/nvidia1 || echo other=absent; "
        "mknod /tmp/sneak c 10 229; head -c 0 /tmp/sneak; echo sneak=$?", parts)
    assert "nvidia1" not in out.split("other=")[0]  # not in ls /dev
    assert "given=ok" in out, out
    assert "other=absent" in out, out
    assert "sneak=0" not in out, out
    assert "Operation not permitted" in out, out


def test_driver_files_and_environment(bundle: Bundle, tmp_path: Path) -> None:  # noqa: F811
    """libcuda and nvidia-smi are there read-only; PATH, LD_LIBRARY_PATH and
    NVIDIA_VISIBLE_DEVICES name them."""
    parts = container_gpu_parts([GIVEN], _host(tmp_path), others=[GIVEN, OTHER])
    out = _run(bundle,
        "cat /usr/local/nvidia/lib64/libcuda.so.1; nvidia-smi; "
        "echo vis=$NVIDIA_VISIBLE_DEVICES ld=$LD_LIBRARY_PATH; "
        "echo x > /usr/local/nvidia/lib64/libcuda.so.1; echo write=$?", parts)
    assert "not really libcuda" in out, out
    assert "GPU 0: stand-in" in out, out
    assert "vis=GPU-given ld=/usr/local/nvidia/lib64" in out, out
    assert "write=0" not in out, out
