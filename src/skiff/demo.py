"""skiff's main job, end to end on this machine, with nothing from the internet.

What it does today (it grows with the engine):

1. starts a real OCI registry (Debian's docker-registry) on a loopback port;
2. builds a small image from busybox-static and pushes it there with skopeo;
3. pulls it into the data root through skiff's image engine (cold, then cached);
4. assembles a container rootfs on overlayfs and runs a container in it with
   runc, printing what the container says;
5. cleans up: container, rootfs and registry (the pulled image stays cached).

Run it with ``sudo bash scripts/demo`` (it installs what is missing), or
``python3 -m skiff.demo [--data-root DIR]`` once installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from skiff.engine.images import ImageStore
from skiff.settings import DEFAULT_DATA_ROOT, Settings
from skiff.testing.images import ImageSpec, LayerBuilder, Layout, busybox_layer, push
from skiff.testing.registry import running_registry


def _hello_layer(b: LayerBuilder) -> None:
    b.file("etc/motd", b"Hello from a skiff container!\n")


def _bundle(bundle: Path, rootfs: Path, args: list[str]) -> None:
    """An OCI bundle for ``runc run``: runc's default spec, pointed at our rootfs."""
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": False}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["hostname"] = "skiff-demo"
    (bundle / "config.json").write_text(json.dumps(spec))


def run(data_root: Path) -> int:
    settings = Settings(data_root=data_root)
    store = ImageStore(settings.images_root, settings.images)
    print(f"skiff demo: data root {data_root}")
    with tempfile.TemporaryDirectory(prefix="skiff-demo-") as scratch:
        work = Path(scratch)
        layout = Layout(work / "layout")
        layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer, _hello_layer],
                                               cmd=["cat", "/etc/motd"])))
        with running_registry(work / "registry") as registry:
            print(f"  registry      docker-registry on {registry.host}")
            push(work / "layout", "1", registry.host, "demo/hello")
            reference = f"{registry.host}/demo/hello:1"
            for label in ("pull", "pull (cached)"):
                start = time.perf_counter()
                image = store.pull(reference)
                print(f"  {label:<13} {image.reference} {image.id} "
                      f"{(time.perf_counter() - start) * 1e3:.1f} ms")
        container = f"skiff-demo-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        rootfs = store.create_rootfs(container, image)
        print(f"  rootfs        overlayfs of {len(image.layers)} layers "
              f"{(time.perf_counter() - start) * 1e3:.1f} ms")
        try:
            _bundle(work / "bundle", rootfs, [*image.config.entrypoint, *image.config.cmd])
            start = time.perf_counter()
            done = subprocess.run(["runc", "run", "--bundle", str(work / "bundle"), container],
                                  capture_output=True, text=True, timeout=60, check=False)
            took = (time.perf_counter() - start) * 1e3
            print(f"  runc run      exit {done.returncode} {took:.1f} ms")
            for line in (done.stdout + done.stderr).splitlines():
                print(f"  | {line}")
        finally:
            subprocess.run(["runc", "delete", "--force", container], capture_output=True,
                           check=False)
            store.remove_rootfs(container)
    ok = done.returncode == 0 and "Hello from a skiff container!" in done.stdout
    print("skiff demo: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m skiff.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help=f"where skiff keeps its state (default {DEFAULT_DATA_ROOT})")
    sys.exit(run(parser.parse_args().data_root))


if __name__ == "__main__":
    main()
