"""skiff's main job, end to end on this machine, with nothing from the internet.

What it does today (it grows with the project):

1. starts a real OCI registry (Debian's docker-registry) on a loopback port;
2. builds a small web image from busybox-static and pushes it there;
3. runs a container group of two containers through skiff's engine: a web
   server and a client that fetches the page over the group's shared
   localhost (image pulled into the data root, network namespace from CNI,
   hardened runc containers under conmon);
4. shows the group's state, address, events and the client's output;
5. deletes the group (containers, rootfs, network, cgroups, logs) and the
   registry; the pulled image stays cached.

Run it with ``sudo bash scripts/demo`` (it installs what is missing), or
``python3 -m skiff.demo [--data-root DIR]`` once installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from skiff.engine.model import Container, GroupSpec, Resources
from skiff.engine.supervisor import Supervisor
from skiff.engine.view import GroupView
from skiff.settings import DEFAULT_DATA_ROOT, NetworkSettings, Settings
from skiff.testing.images import ImageSpec, LayerBuilder, Layout, busybox_layer, push
from skiff.testing.registry import running_registry

PAGE = b"Hello from a skiff container group!\n"


def _web_layer(b: LayerBuilder) -> None:
    b.dir("www")
    b.file("www/index.html", PAGE)


def _group(image: str) -> GroupSpec:
    small = Resources(cpu=0.5, memory_gb=0.25)
    return GroupSpec(
        id=uuid.uuid4().hex, name="skiff-demo",
        containers=(
            # PID 1 ignores SIGTERM unless it traps it: these do, so delete is quick.
            Container(name="web", image=image, resources=small, command=(
                "sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")),
            Container(name="client", image=image, resources=small, command=(
                "sh", "-c", "trap 'exit 0' TERM; "
                            "until wget -q -O- http://127.0.0.1:8080/; do sleep 0.1; done; "
                            "echo fetched by $(hostname); sleep 3600 & wait")),
        ))


def _wait(engine: Supervisor, group_id: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = engine.logs(group_id, "client")
        if "fetched by" in out:
            return out
        time.sleep(0.05)
    return engine.logs(group_id, "client")


def _show(view: GroupView) -> None:
    print(f"  group         {view.name}: {view.state}, address {view.ip}")
    for container in view.containers:
        events = ", ".join(e.name for e in container.events)
        print(f"  container     {container.name}: {container.current.state} ({events})")


def run(data_root: Path) -> int:
    settings = Settings(data_root=data_root, network=NetworkSettings(pool_size=1))
    print(f"skiff demo: data root {data_root}")
    engine = Supervisor(settings)
    ok = False
    try:
        with tempfile.TemporaryDirectory(prefix="skiff-demo-") as scratch:
            work = Path(scratch)
            layout = Layout(work / "layout")
            layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer, _web_layer])))
            with running_registry(work / "registry") as registry:
                print(f"  registry      docker-registry on {registry.host}")
                push(work / "layout", "1", registry.host, "demo/web")
                spec = _group(f"{registry.host}/demo/web:1")
                start = time.perf_counter()
                view = engine.run(spec)
                took = (time.perf_counter() - start) * 1e3
            print(f"  run group     {took:.0f} ms (pull, network, 2 containers created and "
                  "started)")
            out = _wait(engine, spec.id)
            _show(engine.view(spec.id))
            for line in out.splitlines():
                print(f"  | {line}")
            ok = view.state == "Running" and PAGE.decode().strip() in out
            start = time.perf_counter()
            engine.delete(spec.id)
            print(f"  delete        {(time.perf_counter() - start) * 1e3:.0f} ms (containers, "
                  "rootfs, network, cgroups, logs)")
    finally:
        for group_id in engine.group_ids():
            engine.delete(group_id)
        engine.close()
        engine.networks.drain_pool()
        engine.networks.close()
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
