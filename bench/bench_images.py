"""Image engine benchmark: cached pulls, rootfs assembly, layer unpacking.

Run as root: ``python3 bench/bench_images.py [--rounds N]``. Everything is
local: a docker-registry on loopback, images built from busybox-static. Each
figure is a median over N rounds, beside a baseline measured in the same run:

- reusing a present image (the manifest check included) vs a bare
  ``skopeo inspect --raw`` of the same reference (the floor of any check);
  target < 50 ms, and no blob downloaded;
- the same, and a pull into an empty store, as a group's are made: in the
  node's fetch namespace (``nsenter``, the registry reached through a relay),
  beside the same on the host;
- assembling a container rootfs of a cached image; target < 20 ms;
- unpacking a layer vs ``tar -xpf`` of the same layer blob; target <= 2x. On
  disk (where layers live) file creation dominates both; on tmpfs the figure
  shows the CPU overhead alone.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skiff.engine.images import ImageStore
from skiff.engine.images.layers import unpack_layer
from skiff.engine.network.fetching import FetchNamespace
from skiff.settings import NetworkSettings
from skiff.testing.images import ImageSpec, LayerBuilder, Layout, busybox_layer, push
from skiff.testing.registry import running_registry


def _median_ms(fn: Callable[[], object], rounds: int,
               between: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
        if between is not None:
            between()
    return statistics.median(times)


def _tree_layer(files: int, seed: int = 7) -> Callable[[LayerBuilder], None]:
    """A layer shaped like a real one: many small files, a few large, links, deep dirs."""
    rng = random.Random(seed)

    def write(b: LayerBuilder) -> None:
        dirs = ["usr", "usr/lib", "usr/share", "usr/bin"]
        for d in dirs:
            b.dir(d)
        for i in range(files):
            if i % 50 == 0:
                d = f"{rng.choice(dirs)}/d{i}"
                b.dir(d)
                dirs.append(d)
            size = rng.choice((0, 100, 1_000, 4_000, 16_000, 64_000)) if i % 500 else 2_000_000
            b.file(f"{rng.choice(dirs)}/f{i}", rng.randbytes(size // 2) * 2, mode=0o644)
            if i % 20 == 0:
                b.symlink(f"{rng.choice(dirs)}/s{i}", f"f{i}")

    return write


def bench_pull_and_rootfs(work: Path, rounds: int) -> list[tuple[str, float, str]]:
    layout = Layout(work / "layout")
    layers = [busybox_layer] + [_tree_layer(200, seed=i) for i in range(4)]
    layout.tag("app", layout.image(ImageSpec(layers=layers)))
    rows = []
    with running_registry(work / "registry") as registry:
        push(work / "layout", "app", registry.host, "bench/app")
        ref = f"{registry.host}/bench/app:app"
        store = ImageStore(work / "root" / "images")
        image = store.pull(ref)
        before = len(registry.blob_downloads())
        floor = _median_ms(lambda: subprocess.run(
            ["skopeo", "inspect", "--raw", "--no-creds", "--tls-verify=false", f"docker://{ref}"],
            check=True, capture_output=True), rounds)
        cached = _median_ms(lambda: store.pull(ref), rounds)
        downloads = len(registry.blob_downloads()) - before
        rows.append(("pull of a present image (manifest check included)", cached,
                     f"floor: bare skopeo inspect --raw {floor:.1f} ms; "
                     f"blobs downloaded: {downloads}"))
        rows.extend(_bench_fetch_namespace(work, ref, registry.host, store, rounds))
    ids = iter(range(10**6))
    current: list[str] = []

    def create() -> None:
        current.append(f"c{next(ids)}")
        store.create_rootfs(current[-1], image)

    def remove() -> None:
        store.remove_rootfs(current.pop())

    rows.append((f"rootfs assembly ({len(image.layers)} layers)",
                 _median_ms(create, rounds, between=remove), ""))
    create()
    rows.append(("rootfs removal (unmount, delete)", _median_ms(remove, rounds, between=create),
                 ""))
    remove()
    return rows


def _bench_fetch_namespace(work: Path, ref: str, registry: str, host_store: ImageStore,
                           rounds: int) -> list[tuple[str, float, str]]:
    """Pulls as a group's are made (in the fetch namespace), beside the same on the host."""
    fetch = FetchNamespace(work / "root", NetworkSettings(allow_local_endpoints=(registry,)))
    try:
        confined = ImageStore(work / "confined" / "images", confine=fetch.command)
        confined.pull(ref)  # the namespace is made at the first fetch
        on_host = _median_ms(lambda: host_store.pull(ref), rounds)
        inside = _median_ms(lambda: confined.pull(ref), rounds)
        fresh = iter(range(10**6))

        def empty_store_pull(confine: bool) -> None:
            store = ImageStore(work / f"fresh{next(fresh)}" / "images",
                               confine=fetch.command if confine else None)
            store.pull(ref)
            shutil.rmtree(store.root.parent)

        few = max(3, rounds // 4)
        cold_host = _median_ms(lambda: empty_store_pull(False), few)
        cold_inside = _median_ms(lambda: empty_store_pull(True), few)
    finally:
        fetch.close()
    return [("pull of a present image, in the fetch namespace", inside,
             f"on the host: {on_host:.1f} ms"),
            ("pull into an empty store, in the fetch namespace", cold_inside,
             f"on the host: {cold_host:.1f} ms")]


def bench_unpack(work: Path, into: Path, rounds: int, where: str) -> list[tuple[str, float, str]]:
    builder = LayerBuilder()
    _tree_layer(3000)(builder)
    blob = work / "layer.tar.gz"
    blob.write_bytes(gzip.compress(builder.tar_bytes(), compresslevel=6))
    counter = iter(range(10**6))

    def fresh() -> Path:
        d = into / f"x{next(counter)}"
        d.mkdir()
        return d

    tar_times: list[float] = []
    our_times: list[float] = []
    for _ in range(rounds):  # interleaved, each after a sync: neither pays the other's writeback
        for fn, times in ((lambda: subprocess.run(["tar", "-xpf", str(blob), "-C", str(fresh())],
                                                  check=True), tar_times),
                          (lambda: unpack_layer(blob, fresh()), our_times)):
            os.sync()
            times.append(_median_ms(fn, 1))
    tar_ms, ours_ms = statistics.median(tar_times), statistics.median(our_times)
    size = blob.stat().st_size / 1e6
    for d in into.glob("x*"):
        shutil.rmtree(d)
    return [(f"unpack a layer (3000 files, {size:.1f} MB gzip) {where}", ours_ms,
             f"tar -xpf: {tar_ms:.1f} ms; ratio {ours_ms / tar_ms:.2f}x")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    try:
        rows = bench_pull_and_rootfs(work, args.rounds)
        unpack_rounds = max(3, args.rounds // 4)
        rows += bench_unpack(work, work, unpack_rounds, "on disk")
        with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
            rows += bench_unpack(work, Path(shm), unpack_rounds, "on tmpfs")
    finally:
        for merged in sorted(work.glob("root/images/rootfs/*/merged")):
            subprocess.run(["umount", str(merged)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':<55} {'median':>10}  baseline")
    for what, ms, note in rows:
        print(f"{what:<55} {ms:>7.2f} ms  {note}")


if __name__ == "__main__":
    main()
