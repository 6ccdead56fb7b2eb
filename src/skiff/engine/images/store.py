"""The image store: pull, import, list, remove, garbage-collect, build rootfses.

Layout under the images root (``<data root>/images``)::

    blobs/sha256/<hex>   every manifest, config and layer blob, once
    layers/<hex>/        each layer unpacked once, keyed by its diff-id
    l/<20 hex>           short links to layers, for overlay mount options
    refs/<hash>.json     reference → manifest digest, one small file each
    rootfs/<id>/         a container's upper, work and merged directories
    locks/, tmp/, gc.lock

Every step writes aside and renames, so a crash leaves whole things or
nothing. Pulls, imports and rootfs creations hold ``gc.lock`` shared;
garbage collection holds it exclusive, so it never removes what one of them
is about to use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from skiff.core.reference import Reference, parse
from skiff.engine.images import manifest as mf
from skiff.engine.images.blobs import BlobStore
from skiff.engine.images.layers import unpack_layer
from skiff.engine.images.registry import RegistryCredential, Skopeo, credential_for
from skiff.engine.images.rootfs import Rootfses, RootfsRecord
from skiff.engine.locking import locked
from skiff.errors import (
    DigestMismatch,
    ImageError,
    ImageInUse,
    ImageUnknown,
    InvalidInput,
    RegistryUnreachable,
    UnsupportedImage,
)
from skiff.settings import ImageSettings

_LINK_LEN = 20  # hex digits of a diff-id in a layer's short link: 80 bits, no practical clash


@dataclass(frozen=True)
class Image:
    """An image in the local store, resolved to this host's platform."""

    reference: str  # normalized: docker.io/library/busybox:latest
    digest: str  # the platform manifest's digest: the image's identity
    config: mf.ImageConfig
    layers: tuple[str, ...]  # diff-ids, bottom first
    size: int  # bytes of its compressed blobs
    source: str  # "registry" or "archive"
    anonymous: bool  # pulled without credentials: a public image
    updated: float

    @property
    def id(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


def _link_name(diff_id: str) -> str:
    return diff_id.removeprefix("sha256:")[:_LINK_LEN]


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # unique per writer
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class ImageStore:
    """All images of one data root."""

    def __init__(self, root: Path, settings: ImageSettings | None = None, *,
                 confine: Callable[[Sequence[str]], list[str]] | None = None) -> None:
        """``confine``: how registry calls are made to run where tenants' fetches
        must (the node's fetch namespace); None: on the host, as the operator's."""
        self.root = root
        self.settings = settings or ImageSettings()
        self.blobs = BlobStore(root)
        self._layers = root / "layers"
        self._links = root / "l"
        self._refs = root / "refs"
        self._tmp = root / "tmp"
        for d in (self._layers, self._links, self._refs):
            d.mkdir(parents=True, exist_ok=True)
        self.rootfs = Rootfses(root, self._links)
        self.skopeo = Skopeo(self.settings, self._tmp, confine=confine)
        self._gc_lock = root / "gc.lock"

    # ---- references -------------------------------------------------------

    def _ref_path(self, ref: str) -> Path:
        return self._refs / (hashlib.sha256(ref.encode()).hexdigest()[:32] + ".json")

    def _record(self, ref: str) -> dict[str, object] | None:
        try:
            doc: dict[str, object] = json.loads(self._ref_path(ref).read_bytes())
        except FileNotFoundError:
            return None
        return doc

    def _records(self) -> Iterator[dict[str, object]]:
        for entry in os.scandir(self._refs):
            if entry.name.endswith(".json"):
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    yield json.loads(Path(entry.path).read_bytes())

    def _save_record(self, ref: str, digest: str, index: str | None, source: str,
                     anonymous: bool) -> None:
        doc: dict[str, object] = {"reference": ref, "digest": digest, "index": index,
                                  "source": source, "anonymous": anonymous}
        old = self._record(ref)
        if old is not None and all(old.get(k) == v for k, v in doc.items()):
            return  # unchanged: no write on the hot path of a cached pull
        doc["updated"] = time.time()
        _write_atomic(self._ref_path(ref), json.dumps(doc).encode())

    def _image(self, doc: dict[str, object]) -> Image:
        digest = str(doc["digest"])
        manifest = mf.parse_manifest(self.blobs.read(digest))
        config = mf.parse_config(self.blobs.read(manifest.config.digest))
        size = manifest.config.size + sum(layer.size for layer in manifest.layers)
        return Image(reference=str(doc["reference"]), digest=digest, config=config,
                     layers=config.diff_ids, size=size, source=str(doc["source"]),
                     anonymous=bool(doc["anonymous"]), updated=float(str(doc["updated"])))

    # ---- reading ----------------------------------------------------------

    def list(self) -> list[Image]:
        images = []
        for doc in self._records():
            with contextlib.suppress(FileNotFoundError, ImageError):
                images.append(self._image(doc))
        return sorted(images, key=lambda i: i.reference)

    def get(self, name: str) -> Image:
        """A local image by reference, digest or id prefix; never contacts a registry."""
        wanted = name.removeprefix("sha256:")
        if len(wanted) >= 4 and all(c in "0123456789abcdef" for c in wanted):
            for image in self.list():
                if image.digest.removeprefix("sha256:").startswith(wanted):
                    return image
        with contextlib.suppress(InvalidInput):
            doc = self._record(str(parse(name)))
            if doc is not None:
                return self._image(doc)
        raise ImageUnknown(f"image {name} is not in the local store")

    def _complete(self, manifest: mf.Manifest) -> bool:
        return all(self.blobs.has(d.digest) for d in (manifest.config, *manifest.layers))

    # ---- pulling ----------------------------------------------------------

    def pull(self, reference: str,
             credentials: Sequence[RegistryCredential] = ()) -> Image:
        """Make the image ``reference`` present and current, and return it.

        The registry is always asked for the manifest with the caller's
        credentials (a cached private image is never handed to a caller who
        cannot read it); only blobs not yet stored are downloaded. An
        imported image is served from the store without a registry; a public
        image is served from the store when its registry is unreachable.
        """
        ref = parse(reference)
        name = str(ref)
        cred = credential_for(ref, credentials)
        known = self._record(name)
        if known is not None and known.get("source") == "archive":
            return self._image(known)
        try:
            raw = self.skopeo.manifest(ref, cred)
        except RegistryUnreachable:
            if known is not None and known.get("anonymous"):
                return self._image(known)
            raise
        if ref.digest and mf.digest_of(raw) != ref.digest:
            raise DigestMismatch(f"the registry answered image {name} with a manifest of "
                                 f"another digest ({mf.digest_of(raw)})")
        index_raw = None
        if mf.is_index(raw):
            index_raw = raw
            child = mf.select_platform(raw, self.settings.platform)
            raw = (self.blobs.read(child) if self.blobs.has(child)
                   else self.skopeo.manifest(ref.at(child), cred))
            if mf.digest_of(raw) != child:
                raise DigestMismatch(f"image {name}: the platform manifest does not match "
                                     f"its digest {child}")
        manifest = mf.parse_manifest(raw)
        with locked(self._gc_lock, shared=True):
            if not self._complete(manifest):
                self._fetch(ref, cred, manifest)
            self.blobs.put(raw, manifest.digest)
            index = self.blobs.put(index_raw) if index_raw is not None else None
            config = self._checked_config(manifest)
            self._unpack(manifest, config)
            self._save_record(name, manifest.digest, index, "registry", cred is None)
        return self._stored(name)

    def cached(self, reference: str) -> Image | None:
        """The image stored under ``reference``, without asking any registry (so
        without checking the caller may read it: :meth:`pull` does that)."""
        with contextlib.suppress(InvalidInput, ImageError, FileNotFoundError):
            doc = self._record(str(parse(reference)))
            if doc is not None:
                return self._image(doc)
        return None

    def _stored(self, name: str) -> Image:
        """The image recorded under the normalized reference ``name``."""
        doc = self._record(name)
        if doc is None:
            raise ImageUnknown(f"image {name} is not in the local store")
        return self._image(doc)

    def _fetch(self, ref: Reference, cred: RegistryCredential | None,
               manifest: mf.Manifest) -> None:
        needed = [manifest.config.digest, *(layer.digest for layer in manifest.layers)]
        with self.blobs.locked(needed):
            missing = [d for d in needed if not self.blobs.has(d)]
            if not missing:
                return  # another pull fetched them while we waited
            with self._scratch("pull-") as layout:
                blob_dir = layout / "blobs" / "sha256"
                blob_dir.mkdir(parents=True)
                for digest in set(needed) - set(missing):  # skopeo reuses what is there
                    os.link(self.blobs.path(digest), blob_dir / digest.removeprefix("sha256:"))
                self.skopeo.copy(ref.at(manifest.digest), cred, layout)
                for digest in missing:
                    self._ingest(blob_dir, digest, str(ref))

    def _ingest(self, blob_dir: Path, digest: str, name: str) -> None:
        source = blob_dir / digest.removeprefix("sha256:")
        if not source.exists():
            raise ImageError(f"image {name}: blob {digest} was not downloaded")
        self.blobs.ingest(source, digest)

    @contextlib.contextmanager
    def _scratch(self, prefix: str) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _checked_config(self, manifest: mf.Manifest) -> mf.ImageConfig:
        config = mf.parse_config(self.blobs.read(manifest.config.digest))
        if len(config.diff_ids) != len(manifest.layers):
            raise UnsupportedImage(f"image {manifest.digest} has {len(manifest.layers)} layers "
                                   f"but its config names {len(config.diff_ids)}")
        return config

    # ---- layers -----------------------------------------------------------

    def layer_path(self, diff_id: str) -> Path:
        return self._layers / diff_id.removeprefix("sha256:")

    def _unpack(self, manifest: mf.Manifest, config: mf.ImageConfig) -> None:
        for layer, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
            self.ensure_layer(layer.digest, diff_id)

    def ensure_layer(self, blob: str, diff_id: str) -> Path:
        """Unpack the layer blob ``blob`` once, into the directory of ``diff_id``."""
        target = self.layer_path(diff_id)
        if not target.exists():
            with locked(self.blobs.root / "locks" / f"layer-{_link_name(diff_id)}"):
                if not target.exists():
                    tmp = Path(tempfile.mkdtemp(prefix=f".{_link_name(diff_id)}-",
                                                dir=self._layers))
                    try:
                        os.chmod(tmp, 0o755)  # noqa: S103 -- a layer root is a rootfs "/"
                        unpack_layer(self.blobs.path(blob), tmp, diff_id)
                        os.rename(tmp, target)
                    except BaseException:
                        shutil.rmtree(tmp, ignore_errors=True)
                        raise
        self._ensure_link(diff_id)
        return target

    def _ensure_link(self, diff_id: str) -> None:
        link = self._links / _link_name(diff_id)
        want = f"../layers/{diff_id.removeprefix('sha256:')}"
        try:
            current = os.readlink(link)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.symlink(want, link)
            current = os.readlink(link)
        if current != want:
            raise ImageError(f"layer link {link} points at {current}, not {want}")

    # ---- importing --------------------------------------------------------

    def import_archive(self, path: Path, name: str | None = None) -> Image:
        """Import a ``docker save`` tarball or an OCI archive, for offline use."""
        kind, archived_name = _archive_kind(path)
        name = name or archived_name
        if not name:
            raise InvalidInput(f"the archive {path} names no image: give it a name")
        ref = parse(name)
        with locked(self._gc_lock, shared=True), self._scratch("import-") as layout:
            self.skopeo.copy_archive(f"{kind}:{path}", layout, ref)
            index = json.loads((layout / "index.json").read_bytes())
            digest = index["manifests"][0]["digest"]
            blob_dir = layout / "blobs" / "sha256"
            raw = (blob_dir / digest.removeprefix("sha256:")).read_bytes()
            manifest = mf.parse_manifest(raw)
            for blob in (manifest.config, *manifest.layers):
                self._ingest(blob_dir, blob.digest, str(ref))
            self.blobs.put(raw, manifest.digest)
            config = self._checked_config(manifest)
            self._unpack(manifest, config)
            self._save_record(str(ref), manifest.digest, None, "archive", True)
        return self._stored(str(ref))

    # ---- removing ---------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> Image:
        """Forget the image ``name`` (a reference, digest or id); its blobs and
        layers go at the next :meth:`prune`. Refused while a container uses it,
        unless ``force``: the container keeps its layers either way."""
        image = self.get(name)
        if not force:
            users = [r.container_id for r in self.rootfs.records() if r.image == image.digest]
            if users:
                raise ImageInUse(f"image {image.reference} is used by container(s) "
                                 f"{', '.join(sorted(users))}")
        with contextlib.suppress(FileNotFoundError):
            self._ref_path(image.reference).unlink()
        return image

    def prune(self) -> dict[str, int]:
        """Delete every blob, layer and scratch file that no image and no container
        uses. Returns what was removed, counted."""
        removed = {"blobs": 0, "layers": 0, "tmp": 0}
        with locked(self._gc_lock):
            live_blobs: set[str] = set()
            live_layers = {d for r in self.rootfs.records() for d in r.layers}
            for doc in list(self._records()):
                for key in ("digest", "index"):
                    if doc.get(key):
                        live_blobs.add(str(doc[key]))
                with contextlib.suppress(FileNotFoundError, ImageError):
                    manifest = mf.parse_manifest(self.blobs.read(str(doc["digest"])))
                    live_blobs.update(d.digest for d in (manifest.config, *manifest.layers))
                    live_layers.update(mf.parse_config(
                        self.blobs.read(manifest.config.digest)).diff_ids)
            for digest in list(self.blobs.digests()):
                if digest not in live_blobs:
                    self.blobs.remove(digest)
                    removed["blobs"] += 1
            keep_links = {_link_name(d) for d in live_layers}
            for entry in os.scandir(self._layers):
                if "sha256:" + entry.name not in live_layers:
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed["layers"] += not entry.name.startswith(".")
            for entry in os.scandir(self._links):
                if entry.name not in keep_links:
                    os.unlink(entry.path)
            for entry in os.scandir(self._refs):
                if entry.name.startswith("."):  # a record write a crash interrupted
                    os.unlink(entry.path)
                    removed["tmp"] += 1
            for entry in os.scandir(self._tmp):
                if entry.name == "home":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed["tmp"] += 1
            for entry in os.scandir(self.rootfs.root):
                if self.rootfs.get(entry.name) is None:  # a rootfs half-created or half-removed
                    self.rootfs.remove(entry.name)
        return removed

    # ---- root filesystems ---------------------------------------------------

    def create_rootfs(self, container_id: str, image: Image, *,
                      idmap: tuple[int, int] | None = None,
                      writable: Path | None = None) -> Path:
        """Mount a new rootfs for ``container_id`` from ``image``; returns its path.

        ``idmap`` (first host id, count): for a container in a user namespace mapping
        its ids 0.. to those (see :mod:`skiff.engine.images.rootfs`). ``writable``: the
        directory for its upper layer (on its group's disk), else beside the rootfs.
        """
        with locked(self._gc_lock, shared=True):
            links = [self._layer_link(d) for d in image.layers]
            record = RootfsRecord(container_id, image.digest, image.layers, idmap,
                                  None if writable is None else str(writable))
            return self.rootfs.create(record, links)

    def mount_rootfs(self, container_id: str) -> Path:
        """Mount an existing container's rootfs again (after a reboot)."""
        record = self.rootfs.get(container_id)
        if record is None:
            raise ImageUnknown(f"container {container_id} has no rootfs")
        return self.rootfs.mount(container_id, [self._layer_link(d) for d in record.layers])

    def remove_rootfs(self, container_id: str) -> None:
        self.rootfs.remove(container_id)

    def _layer_link(self, diff_id: str) -> str:
        if not self.layer_path(diff_id).is_dir():
            raise ImageUnknown(f"layer {diff_id} is not in the local store")
        name = _link_name(diff_id)
        if not os.path.lexists(self._links / name):
            self._ensure_link(diff_id)
        return name


def _archive_kind(path: Path) -> tuple[str, str | None]:
    """(skopeo transport, image name it carries) of a local archive."""
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            if "oci-layout" in names or "./oci-layout" in names:
                member = tar.extractfile("index.json" if "index.json" in names else "./index.json")
                index = json.loads(member.read()) if member else {}
                annotations = (index.get("manifests") or [{}])[0].get("annotations") or {}
                name = (annotations.get("io.containerd.image.name")
                        or annotations.get("org.opencontainers.image.ref.name"))
                if name and "/" not in name and ":" not in name:
                    name = None  # only a tag: no repository to name the image by
                return "oci-archive", name
            if "manifest.json" in names:
                member = tar.extractfile("manifest.json")
                entries = json.loads(member.read()) if member else []
                tags = entries[0].get("RepoTags") if entries else None
                return "docker-archive", (tags[0] if tags else None)
    except (OSError, tarfile.TarError, json.JSONDecodeError, KeyError, IndexError) as exc:
        raise InvalidInput(f"{path} is not a readable image archive: {exc}") from exc
    raise InvalidInput(f"{path} is neither a docker-save tarball nor an OCI archive")
