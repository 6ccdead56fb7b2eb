"""Manifests, indexes and image configs: what the bytes of an image mean.

Registries hand out two families of the same formats, Docker's (schema 2)
and OCI's. This module reads both into small typed values, picks the host's
manifest out of a multi-platform index, and exposes the part of the image
config the runtime needs. Pure code: bytes in, values out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from skiff.errors import UnsupportedImage
from skiff.settings import Platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """One platform's image: a config blob and its layers, bottom first."""

    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class IndexEntry:
    digest: str
    media_type: str
    platform: Platform | None


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime takes from an image (the ``config`` of its config blob)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""
    diff_ids: tuple[str, ...] = ()
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "Entrypoint": list(self.entrypoint), "Cmd": list(self.cmd), "Env": list(self.env),
            "WorkingDir": self.working_dir, "User": self.user,
            "ExposedPorts": list(self.exposed_ports), "Labels": dict(self.labels),
            "StopSignal": self.stop_signal, "Created": self.created,
        }


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedImage(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise UnsupportedImage(f"{what} is not a JSON object")
    return value


def media_type_of(data: bytes) -> str:
    """The media type a manifest or index declares, or the one its shape implies."""
    doc = _load(data, "manifest")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    if "fsLayers" in doc:
        return _SCHEMA1[0]
    raise UnsupportedImage("manifest has neither layers nor manifests")


def is_index(data: bytes) -> bool:
    return media_type_of(data) in INDEX_TYPES


def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise UnsupportedImage(f"{what} is not a descriptor")
    digest, size, media_type = raw.get("digest"), raw.get("size", -1), raw.get("mediaType", "")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise UnsupportedImage(f"{what} has an unsupported digest {digest!r}")
    if not isinstance(size, int) or not isinstance(media_type, str):
        raise UnsupportedImage(f"{what} is malformed")
    return Descriptor(media_type, digest, size)


def parse_manifest(data: bytes) -> Manifest:
    media_type = media_type_of(data)
    if media_type in _SCHEMA1:
        raise UnsupportedImage("Docker schema 1 images are not supported; push the image again "
                               "with a current client")
    if media_type not in MANIFEST_TYPES:
        raise UnsupportedImage(f"unsupported manifest type {media_type!r}")
    doc = _load(data, "manifest")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise UnsupportedImage("manifest has no layer list")
    return Manifest(
        digest=digest_of(data),
        media_type=media_type,
        config=_descriptor(doc.get("config"), "manifest config"),
        layers=tuple(_descriptor(layer, f"layer {i}") for i, layer in enumerate(layers)),
    )


def parse_index(data: bytes) -> tuple[IndexEntry, ...]:
    doc = _load(data, "image index")
    entries = []
    for raw in doc.get("manifests") or []:
        desc = _descriptor(raw, "index entry")
        plat = raw.get("platform")
        platform = None
        if isinstance(plat, dict):
            platform = Platform(os=str(plat.get("os", "")),
                                architecture=str(plat.get("architecture", "")),
                                variant=plat.get("variant") or None)
        entries.append(IndexEntry(desc.digest, desc.media_type, platform))
    return tuple(entries)


def select_platform(data: bytes, want: Platform) -> str:
    """The digest of the manifest in index ``data`` that runs on ``want``.

    An exact variant match wins, then an entry without a variant, then any
    variant of the architecture; entries without a platform are skipped
    (BuildKit's attestation manifests say ``unknown/unknown``).
    """
    candidates = [e for e in parse_index(data)
                  if e.platform and e.platform.os == want.os
                  and e.platform.architecture == want.architecture
                  and e.media_type not in INDEX_TYPES]
    for rank in (lambda e: e.platform.variant == want.variant,
                 lambda e: e.platform.variant is None,
                 lambda e: True):
        for entry in candidates:
            if rank(entry):
                return entry.digest
    offered = sorted({str(e.platform) for e in parse_index(data) if e.platform})
    raise UnsupportedImage(f"no image for platform {want} (the image offers: "
                           f"{', '.join(offered) or 'none'})")


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UnsupportedImage("image config holds a malformed string list")


def parse_config(data: bytes) -> ImageConfig:
    doc = _load(data, "image config")
    conf = doc.get("config") or {}
    rootfs = doc.get("rootfs") or {}
    if not isinstance(conf, dict) or not isinstance(rootfs, dict):
        raise UnsupportedImage("image config is malformed")
    labels = conf.get("Labels") or {}
    ports = conf.get("ExposedPorts") or {}
    if not isinstance(labels, dict) or not isinstance(ports, dict):
        raise UnsupportedImage("image config is malformed")
    diff_ids = _strings(rootfs.get("diff_ids"))
    if any(not _DIGEST.fullmatch(d) for d in diff_ids):
        raise UnsupportedImage("image config names an unsupported layer digest")
    return ImageConfig(
        entrypoint=_strings(conf.get("Entrypoint")),
        cmd=_strings(conf.get("Cmd")),
        env=_strings(conf.get("Env")),
        working_dir=str(conf.get("WorkingDir") or ""),
        user=str(conf.get("User") or ""),
        exposed_ports=tuple(sorted(str(p) for p in ports)),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        stop_signal=str(conf.get("StopSignal") or ""),
        diff_ids=diff_ids,
        created=str(doc.get("created") or ""),
    )
