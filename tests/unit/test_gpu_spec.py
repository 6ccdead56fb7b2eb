"""What a container given GPUs gets in its OCI spec: exactly its devices, the driver's
files read-only, and nothing of the GPUs it was not given.

The host is a tree of the test's own (regular files where the device nodes would be,
a fake ``stat`` giving them NVIDIA's majors: 195 for nvidia<N> and nvidiactl, a
dynamic one for nvidia-uvm); the linker cache is text in ``ldconfig -p``'s format and
the CDI spec one in the format ``nvidia-ctk cdi generate`` writes. Not recorded from a
machine (none was lent).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from skiff.engine.gpus import Gpu
from skiff.engine.spec import options as oci
from skiff.engine.spec.nvidia import (
    BIN_DIR,
    LIB_DIR,
    GpuSetupError,
    NvidiaDriverFiles,
    container_gpu_parts,
    driver_libraries,
    find_cdi,
    with_gpus,
)

GPUS = [Gpu(i, f"GPU-{i}{i}{i}{i}", "NVIDIA H100 80GB HBM3", 81559, "550.54.15",
            f"00000000:{0x18 + i:02X}:00.0", i) for i in range(4)]

#: ``ldconfig -p``'s format: 32- and 64-bit entries of a multilib host, and others.
LDCONFIG = """1234 libs found in cache `/etc/ld.so.cache'
\tlibnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
\tlibnvidia-ml.so.1 (libc6) => /usr/lib/i386-linux-gnu/libnvidia-ml.so.1
\tlibnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/lib\
nvidia-ptxjitcompiler.so.1
\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibcuda.so (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so
\tlibnvidia-egl-wayland.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-egl-wayland.so.1
\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
"""

_MAJORS = {"nvidiactl": (195, 255), "nvidia-uvm": (510, 0), "nvidia-uvm-tools": (510, 1),
           "nvidia-modeset": (195, 254)}


def _host(tmp_path: Path, modeset: bool = False) -> tuple[Path, Any]:
    dev = tmp_path / "dev"
    dev.mkdir()
    names = [*(f"nvidia{g.minor}" for g in GPUS), "nvidiactl", "nvidia-uvm",
             "nvidia-uvm-tools", *(["nvidia-modeset"] if modeset else [])]
    for name in names:
        (dev / name).write_text("")

    def fake_stat(path: str) -> os.stat_result:
        name = os.path.basename(path)
        if not (dev / name).exists():
            raise FileNotFoundError(2, "No such file or directory", path)
        known = _MAJORS.get(name)
        major, minor = known if known else (195, int(name.removeprefix("nvidia")))
        return _Stat(stat.S_IFCHR | 0o666, os.makedev(major, minor))  # type: ignore[return-value]

    return dev, fake_stat


class _Stat:
    def __init__(self, mode: int, rdev: int) -> None:
        self.st_mode, self.st_rdev = mode, rdev


def _files(tmp_path: Path, **kw: Any) -> NvidiaDriverFiles:
    dev, fake_stat = _host(tmp_path, kw.pop("modeset", False))
    bins = tmp_path / "bin"
    bins.mkdir()
    (bins / "nvidia-smi").write_text("")
    (bins / "nvidia-smi").chmod(0o755)
    return NvidiaDriverFiles.of_host(dev_root=dev, ldconfig=LDCONFIG, path=str(bins),
                                     cdi_dirs=kw.pop("cdi_dirs", ()),
                                     proc_gpus=Path("/proc/driver/nvidia/gpus"),
                                     stat=fake_stat)


def test_linker_cache_read() -> None:
    """The driver's libraries, 64-bit entries preferred, nothing else of the cache."""
    libs = driver_libraries(LDCONFIG)
    assert libs == {
        "libnvidia-ml.so.1": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1":
            "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1",
        "libcuda.so.1": "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "libcuda.so": "/usr/lib/x86_64-linux-gnu/libcuda.so",
    }


def _spec(parts: Any) -> dict[str, Any]:
    return oci.default_spec(oci.with_process(["nvidia-smi", "-L"], ["PATH=/usr/bin:/bin"]),
                            with_gpus(parts))


def test_exactly_the_chosen_devices(tmp_path: Path) -> None:
    """GPUs 1 and 3 of four: their nodes and the control nodes, allowed in the cgroup;
    GPUs 0 and 2 neither created, allowed, nor visible in /proc."""
    files = _files(tmp_path)
    chosen = [GPUS[1], GPUS[3]]
    spec = _spec(container_gpu_parts(chosen, files, others=GPUS))
    paths = [d["path"] for d in spec["linux"]["devices"]]
    assert paths == ["/dev/nvidia1", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm",
                     "/dev/nvidia-uvm-tools"]
    assert {(d["major"], d["minor"]) for d in spec["linux"]["devices"]} == {
        (195, 1), (195, 3), (195, 255), (510, 0), (510, 1)}
    rules = spec["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # deny-all first, as before
    allowed = {(r["type"], r["major"], r["minor"]) for r in rules[1:]}
    assert allowed == {("c", 195, 1), ("c", 195, 3), ("c", 195, 255), ("c", 510, 0),
                       ("c", 510, 1)}
    assert not allowed & {("c", 195, 0), ("c", 195, 2)}
    masked = spec["linux"]["maskedPaths"]
    assert "/proc/driver/nvidia/gpus/0000:18:00.0" in masked
    assert "/proc/driver/nvidia/gpus/0000:1a:00.0" in masked
    assert "/proc/driver/nvidia/gpus/0000:19:00.0" not in masked


def test_driver_files_read_only_and_found(tmp_path: Path) -> None:
    """Libraries and tools bound read-only where CUDA images look; env points there."""
    spec = _spec(container_gpu_parts([GPUS[0]], _files(tmp_path), others=GPUS))
    mounts = {m["destination"]: m for m in spec["mounts"]}
    cuda = mounts[f"{LIB_DIR}/libcuda.so.1"]
    assert cuda["source"] == "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    assert "ro" in cuda["options"]
    assert "nosuid" in cuda["options"]
    assert mounts[f"{BIN_DIR}/nvidia-smi"]["source"] == str(tmp_path / "bin" / "nvidia-smi")
    assert "ro" in mounts[f"{BIN_DIR}/nvidia-smi"]["options"]
    env = dict(e.split("=", 1) for e in spec["process"]["env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-0000"
    assert env["PATH"] == f"/usr/bin:/bin:{BIN_DIR}"
    assert env["LD_LIBRARY_PATH"] == LIB_DIR
    assert "/dev/nvidia-modeset" not in [d["path"] for d in spec["linux"]["devices"]]


def test_modeset_when_present(tmp_path: Path) -> None:
    """nvidia-modeset is given where the host has it."""
    spec = _spec(container_gpu_parts([GPUS[0]], _files(tmp_path, modeset=True)))
    assert "/dev/nvidia-modeset" in [d["path"] for d in spec["linux"]["devices"]]


def test_no_gpus_no_change(tmp_path: Path) -> None:
    """A container without GPUs: the spec is as it was."""
    before = _spec(container_gpu_parts([], _files(tmp_path)))
    assert "devices" not in before["linux"]
    assert before["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_missing_device_fails(tmp_path: Path) -> None:
    """A GPU whose device node is gone fails the container, never starts it without."""
    files = _files(tmp_path)
    (files.dev_root / "nvidia2").unlink()
    with pytest.raises(GpuSetupError, match="nvidia2"):
        container_gpu_parts([GPUS[2]], files)


def test_no_libcuda_fails(tmp_path: Path) -> None:
    """Without the driver's libcuda on the host, a clear error."""
    files = _files(tmp_path)
    bare = NvidiaDriverFiles(dev_root=files.dev_root, libraries={}, stat=files.stat)
    with pytest.raises(GpuSetupError, match="libcuda"):
        container_gpu_parts([GPUS[0]], bare)


#: A CDI spec as nvidia-ctk cdi generate writes it (its documented layout).
CDI = {
    "cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
    "devices": [
        {"name": str(g.index), "containerEdits": {"deviceNodes": [
            {"path": f"/dev/nvidia{g.minor}"}]}} for g in GPUS
    ] + [{"name": "all", "containerEdits": {"deviceNodes": [
        {"path": f"/dev/nvidia{g.minor}"} for g in GPUS]}}],
    "containerEdits": {
        "env": ["NVIDIA_VISIBLE_DEVICES=void"],
        "deviceNodes": [{"path": "/dev/nvidiactl"}, {"path": "/dev/nvidia-uvm"},
                        {"path": "/dev/nvidia-uvm-tools"}],
        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-ctk",
                   "args": ["nvidia-ctk", "hook", "update-ldcache", "--folder",
                            "/usr/lib/x86_64-linux-gnu"]}],
        "mounts": [{"hostPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
                    "containerPath": "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
                    "options": ["ro", "nosuid", "nodev", "bind"]}],
    },
}


def test_cdi_spec_used_when_present(tmp_path: Path) -> None:
    """With a CDI spec, its nodes, mounts and hooks for the chosen devices; the
    visible devices are the chosen UUIDs (the spec's ``void`` replaced)."""
    cdi_dir = tmp_path / "cdi"
    cdi_dir.mkdir()
    (cdi_dir / "nvidia.yaml").write_text(yaml.safe_dump(CDI))
    (cdi_dir / "other.json").write_text('{"kind": "example.com/device", "devices": []}')
    files = _files(tmp_path, cdi_dirs=[cdi_dir])
    assert files.cdi is not None
    assert files.cdi["kind"] == "nvidia.com/gpu"
    spec = _spec(container_gpu_parts([GPUS[2]], files, others=GPUS))
    assert [d["path"] for d in spec["linux"]["devices"]] == [
        "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia2"]
    assert spec["hooks"]["createContainer"][0]["args"][2] == "update-ldcache"
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" in mounts["/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15"]["options"]
    env = dict(e.split("=", 1) for e in spec["process"]["env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-2222"
    assert "LD_LIBRARY_PATH" not in env  # the hook runs ldconfig in the container


def test_cdi_without_the_device_fails(tmp_path: Path) -> None:
    """A CDI spec that names no chosen device: a clear error, not a GPU-less start."""
    cdi = {**CDI, "devices": []}
    with pytest.raises(GpuSetupError, match="cdi generate"):
        container_gpu_parts([GPUS[0]], NvidiaDriverFiles(cdi=cdi))


def test_unreadable_cdi_spec(tmp_path: Path) -> None:
    """A CDI spec that is not YAML is an error naming it."""
    (tmp_path / "nvidia.yaml").write_text("kind: [unclosed")
    with pytest.raises(GpuSetupError, match=r"nvidia\.yaml"):
        find_cdi([tmp_path])
