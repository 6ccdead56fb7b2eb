"""The parts of scripts/gpu-probe that are Python: run with PYTHONPATH=<repo>/src.

``rootfs DIR FILE...``      copy FILEs and the shared libraries they load (``ldd``) into
                            DIR, at their own paths: a root file system that runs them.
``bundle DIR ROOTFS N ARG...`` write DIR/config.json: skiff's hardened OCI spec of a
                            container running ARG... in ROOTFS, given the node's first N
                            GPUs exactly as skiff's engine gives them (devices, cgroup
                            rules, the driver's files, NVIDIA_VISIBLE_DEVICES).
``archive TAR ROOTFS NAME ARG...`` a ``docker save`` tarball of ROOTFS (one layer), its
                            command ARG..., for ``skiff image import``.

Standard library and skiff's own modules only: the lent machine has no registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path


def _libraries(path: str) -> list[str]:
    """The shared libraries ``path`` loads, as ldd resolves them (the loader included)."""
    done = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
    found = []
    for line in done.stdout.splitlines():
        match = re.search(r"(/\S+)\s+\(0x", line)
        if match:
            found.append(match.group(1))
    return found


def rootfs(target: Path, files: list[str]) -> None:
    for name in files:
        for path in (name, *_libraries(name)):
            dest = target / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), dest)
    for extra in ("dev", "proc", "sys", "tmp", "etc", "usr/local/nvidia/lib64",
                  "usr/local/nvidia/bin"):
        (target / extra).mkdir(parents=True, exist_ok=True)
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (target / "etc" / "group").write_text("root:x:0:\n")


def bundle(target: Path, root: Path, count: int, args: list[str]) -> None:
    from skiff.engine.gpus import query
    from skiff.engine.spec import options as oci
    from skiff.engine.spec.nvidia import NvidiaDriverFiles, container_gpu_parts, with_gpus

    gpus, reason = query()
    if len(gpus) < count:
        sys.exit(f"{count} GPU(s) asked, {len(gpus)} found: {reason}")
    parts = container_gpu_parts(gpus[:count], NvidiaDriverFiles.of_host(), others=gpus)
    spec = oci.default_spec(
        oci.with_process(args, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        oci.with_root(root),
        oci.with_hostname("gpu-probe"),
        with_gpus(parts))
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(spec, indent=2))


def archive(tar_path: Path, root: Path, name: str, args: list[str]) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for entry in sorted(root.rglob("*")):
            tar.add(entry, arcname=str(entry.relative_to(root)), recursive=False)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": args, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{}]}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]
    with tarfile.open(tar_path, "w") as out:
        for member, data in (("layer.tar", layer_bytes), (config_name, config_bytes),
                             ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def main(argv: list[str]) -> None:
    verb, *rest = argv
    if verb == "rootfs":
        rootfs(Path(rest[0]), rest[1:])
    elif verb == "bundle":
        bundle(Path(rest[0]), Path(rest[1]), int(rest[2]), rest[3:])
    elif verb == "archive":
        archive(Path(rest[0]), Path(rest[1]), rest[2], rest[3:])
    else:
        sys.exit(f"unknown verb {verb!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
