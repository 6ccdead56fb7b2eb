"""The image engine against real registries, skopeo and overlayfs.

Unpacking layers (chown, mknod, trusted.* xattrs) and mounting overlays need
root: those tests are marked ``root``. The pull errors (missing image, silent
or closed registry, a tampered blob) fail before any of that and run as anyone.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skiff.engine.images import ImageStore, RegistryCredential
from skiff.engine.images.blobs import sha256_file
from skiff.engine.mounts import is_mounted
from skiff.errors import (
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    ImageUnknown,
    LayerRejected,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from skiff.settings import ImageSettings
from skiff.testing.catalog import PRIVATE_PASSWORD, PRIVATE_USER, BuiltImages
from skiff.testing.images import skopeo_copy
from skiff.testing.waiting import eventually


def creds_for(images: BuiltImages, password: str = PRIVATE_PASSWORD) -> list[RegistryCredential]:
    return [RegistryCredential(images.private.host, PRIVATE_USER, password)]


@pytest.mark.root
def test_pull_unpacks_layers_with_whiteouts_opaque_dirs_and_setuid(
    store: ImageStore, images: BuiltImages
) -> None:
    """A pulled image's rootfs shows the top layers' whiteouts, opaque dirs and modes."""
    image = store.pull(images.bb)
    root = store.create_rootfs("c1", image)
    assert (root / "bin" / "busybox").is_file()
    assert (root / "data" / "kept").read_text() == "kept\n"
    assert not (root / "data" / "gone").exists()
    assert sorted(os.listdir(root / "cache")) == ["new"]
    assert stat.S_IMODE((root / "bin" / "su-test").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "shared").stat().st_mode) == 0o1777
    assert os.readlink(root / "bin" / "sh") == "busybox"
    # The layer directory itself holds overlayfs's forms of the OCI markers.
    top = store.layer_path(image.layers[2])
    assert stat.S_ISCHR((top / "data" / "gone").lstat().st_mode)
    assert os.getxattr(top / "cache", "trusted.overlay.opaque") == b"y"


@pytest.mark.root
def test_container_runs_in_the_rootfs(store: ImageStore, images: BuiltImages) -> None:
    """The assembled rootfs is a working root: busybox runs in it (chroot)."""
    root = store.create_rootfs("c1", store.pull(images.bb))
    out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", "cat /etc/motd; ls /cache"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "hello from skiff\nnew\n"


@pytest.mark.root
def test_image_config_is_exposed(store: ImageStore, images: BuiltImages) -> None:
    """Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts and Labels come from the image."""
    config = store.pull(images.app).config
    assert config.entrypoint == ("/app/run.sh",)
    assert config.cmd == ("--serve",)
    assert config.env == ("PATH=/bin", "MODE=test")
    assert config.working_dir == "/app"
    assert config.user == "65534:65534"
    assert config.exposed_ports == ("53/udp", "80/tcp")
    assert dict(config.labels) == {"org.skiff.test": "yes"}


@pytest.mark.root
def test_cached_image_is_reused_without_blob_downloads(
    store: ImageStore, images: BuiltImages
) -> None:
    """Pulling an image already present downloads no blob and gives the same image."""
    first = store.pull(images.bb)
    before = len(images.public.blob_downloads())
    second = store.pull(images.bb)
    assert len(images.public.blob_downloads()) == before
    assert second.digest == first.digest


@pytest.mark.root
def test_shared_layers_are_stored_and_downloaded_once(
    store: ImageStore, images: BuiltImages
) -> None:
    """Two images with a common base layer share its blob and its unpacked directory."""
    bb = store.pull(images.bb)
    before = images.public.blob_downloads()
    app = store.pull(images.app)
    fetched = images.public.blob_downloads()[len(before):]
    assert bb.layers[0] == app.layers[0]
    base_blob = _layer_blobs(store, app)[0]
    assert base_blob not in fetched
    assert len(fetched) == 2  # the app's config and its own layer only
    assert len(list(store.blobs.digests())) == len(set(
        _layer_blobs(store, bb) + _layer_blobs(store, app))) + 4  # + 2 configs + 2 manifests


def _layer_blobs(store: ImageStore, image: Any) -> list[str]:
    from skiff.engine.images.manifest import parse_manifest
    return [d.digest for d in parse_manifest(store.blobs.read(image.digest)).layers]


@pytest.mark.root
def test_concurrent_pulls_fetch_each_blob_once(tmp_path: Path, images: BuiltImages) -> None:
    """Two pulls of the same image at once (two stores on one root) download each blob once."""
    before = len(images.public.blob_downloads())
    stores = [ImageStore(tmp_path / "images") for _ in range(2)]
    results: list[Any] = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.pull(images.app)))
               for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    assert results[0].digest == results[1].digest
    fetched = images.public.blob_downloads()[before:]
    assert len(fetched) == len(set(fetched)) == 3  # config + two layers, each once


@pytest.mark.root
def test_multi_platform_index_resolves_to_the_host_platform(
    store: ImageStore, images: BuiltImages
) -> None:
    """A manifest list resolves to the linux/amd64 image, not the arm64 one."""
    image = store.pull(images.multi)
    assert len(image.layers) == 1  # the arm64 image has two layers
    assert sha256_file(store.blobs.path(image.digest)) == image.digest


@pytest.mark.root
def test_pull_by_digest(store: ImageStore, images: BuiltImages) -> None:
    """`repo@sha256:...` pulls exactly that manifest; a digest nobody has is not found."""
    image = store.pull(images.bb)
    repo = images.bb.rsplit(":", 1)[0]
    assert store.pull(f"{repo}@{image.digest}").digest == image.digest
    with pytest.raises(ImageNotFound, match="was not found"):
        store.pull(f"{repo}@sha256:{'0' * 64}")


@pytest.mark.root
def test_private_image_needs_credentials(store: ImageStore, images: BuiltImages) -> None:
    """Without or with wrong credentials a private image is refused; with them it is pulled."""
    with pytest.raises(RegistryUnauthorized):
        store.pull(images.private_bb)
    with pytest.raises(RegistryUnauthorized):
        store.pull(images.private_bb, creds_for(images, "wrong-password"))
    image = store.pull(images.private_bb, creds_for(images))
    assert not image.anonymous


@pytest.mark.root
def test_cached_private_image_is_not_handed_to_a_caller_without_credentials(
    store: ImageStore, images: BuiltImages
) -> None:
    """Once cached, a private image is still refused to callers who cannot authenticate."""
    store.pull(images.private_bb, creds_for(images))
    with pytest.raises(RegistryUnauthorized):
        store.pull(images.private_bb)
    with pytest.raises(RegistryUnauthorized):
        store.pull(images.private_bb, creds_for(images, "wrong-password"))


@pytest.mark.root
def test_credentials_never_appear_in_arguments_errors_or_files(
    store: ImageStore, images: BuiltImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """skopeo gets the password through a memfd, not argv; errors and the data root omit it."""
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: Any) -> Any:
        seen.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    store.pull(images.private_bb, creds_for(images))
    with pytest.raises(RegistryUnauthorized) as refused:
        store.pull(images.private_bb, creds_for(images, PRIVATE_PASSWORD + "-bad"))
    assert seen
    assert all(PRIVATE_PASSWORD not in " ".join(argv) for argv in seen)
    assert any(a.startswith("--authfile=/proc/self/fd/") for argv in seen for a in argv)
    assert PRIVATE_PASSWORD not in str(refused.value)
    found = subprocess.run(["grep", "-rlaF", PRIVATE_PASSWORD, str(store.root)],
                           capture_output=True, text=True)
    assert found.stdout == ""
    assert PRIVATE_PASSWORD not in repr(creds_for(images)[0])


def test_missing_image_fails_fast_and_names_the_reference(
    store: ImageStore, images: BuiltImages
) -> None:
    """An image the registry does not have is ImageNotFound, final, naming the reference."""
    name = f"{images.public.host}/test/nothing:here"
    start = time.monotonic()
    with pytest.raises(ImageNotFound) as missing:
        store.pull(name)
    assert time.monotonic() - start < 5
    assert name in str(missing.value)
    assert not missing.value.transient
    assert not RegistryUnauthorized("x").transient


def test_unreachable_registry_answers_within_the_timeout(tmp_path: Path) -> None:
    """A registry that accepts connections but never answers is RegistryUnreachable, in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections queue, nobody answers
        port = silent.getsockname()[1]
        store = ImageStore(tmp_path / "images", ImageSettings(registry_timeout_s=2))
        start = time.monotonic()
        with pytest.raises(RegistryUnreachable) as unreachable:
            store.pull(f"127.0.0.1:{port}/some/image:1")
        assert time.monotonic() - start < 10
        assert unreachable.value.transient


def test_refused_connection_is_unreachable(store: ImageStore) -> None:
    """A registry port with nothing listening is RegistryUnreachable, at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryUnreachable, match=f"127.0.0.1:{port}"):
        store.pull(f"127.0.0.1:{port}/some/image:1")


@pytest.mark.root
def test_public_image_is_served_from_cache_when_its_registry_is_down(
    tmp_path: Path, images: BuiltImages
) -> None:
    """An image pulled anonymously keeps working when its registry cannot be reached."""
    from skiff.testing.images import push
    from skiff.testing.registry import running_registry

    store = ImageStore(tmp_path / "images")
    with running_registry(tmp_path / "reg") as reg:
        push(images.layout, "bb", reg.host, "test/bb")
        image = store.pull(f"{reg.host}/test/bb:bb")
    assert store.pull(f"{reg.host}/test/bb:bb").digest == image.digest


def test_tampered_blob_is_a_digest_mismatch_and_stores_nothing(
    tmp_path: Path, images: BuiltImages
) -> None:
    """A registry serving wrong bytes for a blob fails the pull; the blob never enters the store."""
    from skiff.testing.images import push
    from skiff.testing.registry import running_registry

    store = ImageStore(tmp_path / "images")
    with running_registry(tmp_path / "reg") as reg:
        push(images.layout, "app", reg.host, "test/app")
        blobs = sorted((tmp_path / "reg" / "data").rglob("blobs/sha256/*/*/data"),
                       key=lambda p: p.stat().st_size)
        victim = blobs[-1]  # the largest: busybox's layer
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        with pytest.raises(DigestMismatch):
            store.pull(f"{reg.host}/test/app:app")
    digest = "sha256:" + victim.parent.name
    assert not store.blobs.has(digest)
    assert all(sha256_file(store.blobs.path(d)) == d for d in store.blobs.digests())
    assert [p.name for p in (store.root / "layers").iterdir()] == []


@pytest.mark.root
def test_layer_escaping_its_directory_is_rejected_and_leaves_nothing(
    store: ImageStore, images: BuiltImages, tmp_path: Path
) -> None:
    """A layer with a `../../evil` entry fails the pull and leaves no layer directory behind."""
    with pytest.raises(LayerRejected, match="escapes"):
        store.pull(images.evil)
    layers = [p.name for p in (store.root / "layers").iterdir()]
    assert len(layers) == 1  # the busybox layer below it; no half-written directory
    assert not any(tmp_path.rglob("evil"))


@pytest.mark.root
def test_many_layers_mount(store: ImageStore, images: BuiltImages) -> None:
    """An 80-layer image, whose layer paths overflow one page of mount options, mounts."""
    image = store.pull(images.many)
    root = store.create_rootfs("many", image)
    assert len(image.layers) == 80
    assert (root / "layer-00").read_text() == "0\n"
    assert (root / "layer-78").read_text() == "78\n"
    assert (root / "bin" / "busybox").is_file()


@pytest.mark.root
def test_rootfs_writes_stay_in_each_containers_upper_dir(
    store: ImageStore, images: BuiltImages
) -> None:
    """Two containers of one image each see only their own writes; the layers never change."""
    image = store.pull(images.bb)
    one, two = store.create_rootfs("one", image), store.create_rootfs("two", image)
    (one / "data" / "kept").write_text("changed\n")
    (one / "etc" / "motd").unlink()
    assert (two / "data" / "kept").read_text() == "kept\n"
    assert (two / "etc" / "motd").exists()
    assert (store.layer_path(image.layers[1]) / "data" / "kept").read_text() == "kept\n"


@pytest.mark.root
def test_remove_rootfs_unmounts_and_deletes(store: ImageStore, images: BuiltImages) -> None:
    """Removing a rootfs unmounts it and deletes its directories; doing it twice is fine."""
    root = store.create_rootfs("gone", store.pull(images.bb))
    assert is_mounted(root)
    store.remove_rootfs("gone")
    store.remove_rootfs("gone")
    assert not root.parent.exists()


@pytest.mark.root
def test_rootfs_is_mounted_again_after_a_reboot(store: ImageStore, images: BuiltImages) -> None:
    """A recorded rootfs whose mount vanished (a reboot) is mounted again with its writes."""
    root = store.create_rootfs("c", store.pull(images.bb))
    (root / "written").write_text("survives\n")
    subprocess.run(["umount", str(root)], check=True)
    assert store.mount_rootfs("c") == root
    assert (root / "written").read_text() == "survives\n"


@pytest.mark.root
def test_import_docker_archive_and_oci_archive(tmp_path: Path, images: BuiltImages) -> None:
    """`docker save` tarballs and OCI archives import, under their own or a given name."""
    docker_tar, oci_tar = tmp_path / "bb-docker.tar", tmp_path / "bb-oci.tar"
    skopeo_copy(f"oci:{images.layout}:bb", f"docker-archive:{docker_tar}:offline/bb:1")
    skopeo_copy(f"oci:{images.layout}:app", f"oci-archive:{oci_tar}:ignored")
    store = ImageStore(tmp_path / "images")
    imported = store.import_archive(docker_tar)
    assert imported.reference == "docker.io/offline/bb:1"
    assert imported.source == "archive"
    app = store.import_archive(oci_tar, "offline/app:2")
    assert app.config.entrypoint == ("/app/run.sh",)
    # Offline: pulling an imported name needs no registry.
    assert store.pull("offline/bb:1").digest == imported.digest
    assert [i.reference for i in store.list()] == ["docker.io/offline/app:2",
                                                   "docker.io/offline/bb:1"]
    root = store.create_rootfs("imp", imported)
    assert (root / "data" / "kept").exists()


@pytest.mark.root
def test_remove_and_prune(store: ImageStore, images: BuiltImages) -> None:
    """Pruning deletes what no image and no container uses, and nothing else."""
    bb, app = store.pull(images.bb), store.pull(images.app)
    store.create_rootfs("uses-app", app)
    with pytest.raises(ImageInUse, match="uses-app"):
        store.remove(app.reference)
    store.remove(bb.id)
    with pytest.raises(ImageUnknown):
        store.get(bb.reference)
    removed = store.prune()
    assert removed["layers"] == 2  # bb's own two layers; the shared base stays
    assert store.layer_path(bb.layers[0]).exists()
    assert not store.layer_path(bb.layers[2]).exists()
    assert not store.blobs.has(bb.digest)
    assert store.blobs.has(app.digest)
    # A forced removal keeps the container's layers until the container goes.
    store.remove(app.reference, force=True)
    store.prune()
    assert all(store.layer_path(d).exists() for d in app.layers)
    assert list(store.blobs.digests()) == []
    store.remove_rootfs("uses-app")
    store.prune()
    assert list((store.root / "layers").iterdir()) == []
    assert list((store.root / "l").iterdir()) == []


def _kill_when(child: subprocess.Popen[bytes], reached: Callable[[], bool], moment: str) -> None:
    """SIGKILL ``child`` as soon as ``reached()``; fail if it ended before."""
    try:
        eventually(lambda: reached() or child.poll() is not None, what=f"the pull is {moment}",
                   timeout_s=60, interval_s=0.001)
        assert child.poll() is None, f"the pull ended before it was {moment}"
    finally:
        child.kill()
        child.wait()


@pytest.mark.root
def test_crash_mid_pull_leaves_no_corrupt_blob_or_layer(
    tmp_path: Path, images: BuiltImages
) -> None:
    """A pull killed with SIGKILL at any point leaves only verified blobs; the next pull works."""
    root = tmp_path / "images"
    code = ("import sys; from pathlib import Path; from skiff.engine.images import ImageStore;"
            "ImageStore(Path(sys.argv[1])).pull(sys.argv[2])")
    moments: dict[str, Callable[[], bool]] = {  # kill the pull as soon as it is ...
        "downloading": lambda: any((root / "tmp").glob("pull-*")),
        "unpacking": lambda: any((root / "layers").glob(".*")),
        "half unpacked": lambda: len(list((root / "layers").glob("[0-9a-f]*"))) >= 40,
    }
    for moment, reached in moments.items():
        _kill_when(subprocess.Popen([sys.executable, "-c", code, str(root), images.many]),
                   reached, moment)
        store = ImageStore(root)
        assert all(sha256_file(store.blobs.path(d)) == d for d in store.blobs.digests())
    store = ImageStore(root)
    image = store.pull(images.many)
    store.prune()
    assert list((root / "tmp").iterdir()) == [root / "tmp" / "home"]
    for diff_id in image.layers:
        assert store.layer_path(diff_id).is_dir()
    assert not [p for p in (root / "layers").iterdir() if p.name.startswith(".")]

