"""Build small OCI images offline, from busybox-static, and push them.

No registry on the internet is reachable from tests (or from many of our
users' machines), so tests, benchmarks and the demo make their own images:
layers are tar archives written here, with exactly the entries a test needs
(whiteouts, opaque directories, setuid files, devices), laid out as an OCI
image layout that skopeo pushes to a local registry or packs into an archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "id", "sleep", "env", "true", "false", "wget", "nc",
           "httpd", "mkdir", "rm", "touch", "stat", "test", "grep", "ps", "hostname", "uname")

LayerWriter = Callable[["LayerBuilder"], None]


class LayerBuilder:
    """Writes the entries of one layer: a tar archive in memory."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self.tar = tarfile.open(  # noqa: SIM115 -- closed by tar_bytes()
            fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int, uid: int = 0,
              gid: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, 1_700_000_000
        return info

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0,
             gid: int = 0, xattrs: dict[str, str] | None = None) -> None:
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def hardlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.tar.addfile(info)

    def device(self, name: str, major: int, minor: int, mode: int = 0o666,
               block: bool = False) -> None:
        info = self._info(name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode)
        info.devmajor, info.devminor = major, minor
        self.tar.addfile(info)

    def fifo(self, name: str, mode: int = 0o644) -> None:
        self.tar.addfile(self._info(name, tarfile.FIFOTYPE, mode))

    def whiteout(self, path: str) -> None:
        """Hide ``path`` of the layers below."""
        parent, _, base = path.rpartition("/")
        self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")

    def opaque(self, directory: str) -> None:
        """Hide everything the layers below have in ``directory``."""
        self.file(f"{directory}/.wh..wh..opq")

    def busybox(self) -> None:
        """/bin/busybox with its applets as symlinks."""
        self.dir("bin")
        self.file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        for applet in APPLETS:
            self.symlink(f"bin/{applet}", "busybox")

    def tar_bytes(self) -> bytes:
        self.tar.close()
        return self._buffer.getvalue()


@dataclass
class ImageSpec:
    """What an image holds: its layers (bottom first) and its config."""

    layers: Sequence[LayerWriter]
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = ("sh",)
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str = ""
    user: str = ""
    exposed_ports: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    compress: bool = True


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = _sha(data)
        (self.path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, spec: ImageSpec) -> dict[str, Any]:
        """Write the blobs of ``spec``; returns its manifest's descriptor."""
        layer_descs, diff_ids = [], []
        for writer in spec.layers:
            builder = LayerBuilder()
            writer(builder)
            tar = builder.tar_bytes()
            diff_ids.append(_sha(tar))
            if spec.compress:
                layer_descs.append(self.blob(gzip.compress(tar, mtime=0),
                                             "application/vnd.oci.image.layer.v1.tar+gzip"))
            else:
                layer_descs.append(self.blob(tar, "application/vnd.oci.image.layer.v1.tar"))
        conf: dict[str, Any] = {"Env": list(spec.env)}
        if spec.entrypoint is not None:
            conf["Entrypoint"] = list(spec.entrypoint)
        if spec.cmd is not None:
            conf["Cmd"] = list(spec.cmd)
        if spec.working_dir:
            conf["WorkingDir"] = spec.working_dir
        if spec.user:
            conf["User"] = spec.user
        if spec.exposed_ports:
            conf["ExposedPorts"] = {p: {} for p in spec.exposed_ports}
        if spec.labels:
            conf["Labels"] = dict(spec.labels)
        config = {"architecture": spec.architecture, "os": "linux", "config": conf,
                  "created": "2023-11-14T22:13:20Z",
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_desc = self.blob(json.dumps(config).encode(),
                                "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": layer_descs}
        desc = self.blob(json.dumps(manifest).encode(),
                         "application/vnd.oci.image.manifest.v1+json")
        desc["platform"] = {"architecture": spec.architecture, "os": "linux"}
        return desc

    def tag(self, name: str, desc: dict[str, Any]) -> None:
        entry = dict(desc)
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs = [r for r in self.refs
                     if r["annotations"]["org.opencontainers.image.ref.name"] != name]
        self.refs.append(entry)
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": self.refs}
        (self.path / "index.json").write_text(json.dumps(index))

    def index(self, descs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A multi-platform index over ``descs``; returns its descriptor."""
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": list(descs)}
        return self.blob(json.dumps(doc).encode(), "application/vnd.oci.image.index.v1+json")


def skopeo_copy(source: str, dest: str, *extra: str) -> None:
    """Run ``skopeo copy`` between two transports (e.g. a layout and a registry)."""
    subprocess.run(["skopeo", "copy", "--quiet", "--insecure-policy", *extra, source, dest],
                   check=True, capture_output=True)


def push(layout: Path, tag: str, registry: str, repository: str, *,
         creds: str | None = None, all_platforms: bool = False) -> None:
    """Push ``layout:tag`` to ``registry/repository:tag`` over plain HTTP."""
    extra = ["--dest-tls-verify=false"]
    if creds:
        extra.append(f"--dest-creds={creds}")
    if all_platforms:
        extra.append("--all")
    skopeo_copy(f"oci:{layout}:{tag}", f"docker://{registry}/{repository}:{tag}", *extra)


def busybox_layer(b: LayerBuilder) -> None:
    b.busybox()
    for d in ("etc", "tmp", "root", "var", "proc", "sys", "dev"):
        b.dir(d, mode=0o1777 if d == "tmp" else 0o755)
    b.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    b.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")

