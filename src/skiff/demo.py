"""skiff's main job, end to end on this machine, with nothing from the internet.

1. starts ``skiff serve`` on its embedded defaults (data root /var/lib/skiff,
   HTTPS on 127.0.0.1:8443 with its own CA, an admin token);
2. builds a small web image from busybox-static and imports it offline
   (``skiff image import``);
3. creates a container group with a web server through the API, as a user
   would: ``skiff container create ... --ip-address Public --ports 80``;
4. shows it Running, fetches its page from its IP, shows its logs;
5. checks that the web portal answers (``https://<listen>/portal/``);
6. deletes it, stops the server and resets the node (``skiff node reset``): nothing
   of it stays on the host but its data root, where the imported image stays cached;
   then prints how to open the portal and sign in once ``skiff serve`` runs again.

Run it with ``sudo bash scripts/demo`` (it installs what is missing), or
``python3 -m skiff.demo [--data-root DIR] [--listen HOST:PORT]`` once installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from skiff.settings import DEFAULT_DATA_ROOT, ApiSettings
from skiff.testing.images import ImageSpec, LayerBuilder, Layout, busybox_layer, skopeo_copy

PAGE = b"Hello from a skiff container group!\n"
IMAGE = "skiff-demo/web:1"
WEB = "trap 'exit 0' TERM; httpd -f -v -p 80 -h /www & wait"


def _web_layer(b: LayerBuilder) -> None:
    b.dir("www")
    b.file("www/index.html", PAGE)


def _port_free(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    with socket.socket() as s:
        try:
            s.bind((host or "127.0.0.1", int(port)))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _server(data_root: Path, listen: str) -> Iterator[dict[str, str]]:
    """``skiff serve`` in the background; the environment its CLI needs."""
    process = subprocess.Popen([sys.executable, "-m", "skiff", "serve", "--data-root",
                                str(data_root), "--listen", listen], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # "skiff: serving https://... (data root ...)"
        if not line.startswith("skiff: serving"):
            raise RuntimeError(f"skiff serve did not start: {line or process.wait()}")
        print(f"  $ skiff serve --data-root {data_root} --listen {listen}")
        print(f"    {line}")
        env = dict(os.environ, SKIFF_DATA_ROOT=str(data_root), SKIFF_URL=f"https://{listen}")
        yield env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _skiff(env: dict[str, str], *args: str, show: bool = True) -> str:
    print("  $ skiff " + " ".join(a if " " not in a else repr(a) for a in args))
    done = subprocess.run([sys.executable, "-m", "skiff", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"skiff {args[0]} {args[1]} failed: {done.stderr.strip()}")
    if show:
        for line in done.stdout.rstrip().splitlines():
            print(f"    {line}")
    return done.stdout


def run(data_root: Path, listen: str) -> int:
    print(f"skiff demo: data root {data_root}")
    if not _port_free(listen):
        raise SystemExit(f"skiff demo: {listen} is taken (a skiff serve already running?); "
                         "pass --listen HOST:PORT")
    with tempfile.TemporaryDirectory(prefix="skiff-demo-") as scratch:
        layout = Layout(Path(scratch) / "layout")
        layout.tag("1", layout.image(ImageSpec(layers=[busybox_layer, _web_layer])))
        archive = Path(scratch) / "web.tar"
        skopeo_copy(f"oci:{layout.path}:1", f"oci-archive:{archive}:{IMAGE}")
        env = dict(os.environ, SKIFF_DATA_ROOT=str(data_root))
        _skiff(env, "image", "import", str(archive), "--name", IMAGE)
    with _server(data_root, listen) as env:
        start = time.perf_counter()
        _skiff(env, "container", "create", "-g", "demo", "-n", "web", "--image", IMAGE,
               "--cpu", "0.5", "--memory", "0.5", "--ip-address", "Public", "--ports", "80",
               "--command-line", f"sh -c \"{WEB}\"", "-o", "none")
        print(f"    (created and Running in {(time.perf_counter() - start) * 1e3:.0f} ms)")
        _skiff(env, "container", "show", "-g", "demo", "-n", "web", "-o", "table")
        ip = _skiff(env, "container", "show", "-g", "demo", "-n", "web",
                    "--query", "ipAddress.ip", "-o", "tsv").strip()
        print(f"  $ curl http://{ip}/")
        page = _fetch(f"http://{ip}/")
        print(f"    {page.decode().strip()}")
        logs = _wait_for_logs(env)
        portal = _portal(data_root, listen)
        _skiff(env, "container", "delete", "-g", "demo", "-n", "web", "--yes", "-o", "none")
    removed = _skiff(env, "node", "reset", "--data-root", str(data_root), show=False)
    lines = removed.splitlines()
    for line in lines[:3]:
        print(f"    {line}")
    if len(lines) > 3:
        print(f"    ... ({len(lines) - 3} more)")
    ok = page == PAGE and "response:200" in logs and portal
    print("skiff demo: " + ("OK" if ok else "FAILED"))
    print(f"skiff demo: the web portal is at https://{listen}/portal/ while skiff serves:\n"
          f"  $ skiff serve --data-root {data_root} --listen {listen}\n"
          f"  open https://{listen}/portal/ (trust skiff's CA, {data_root / 'ca.pem'}), and "
          f"sign in with the admin token (the contents of {data_root / 'admin.token'})\n"
          "  or with a service principal's tenant, appId and password "
          "(skiff ad sp create-for-rbac)")
    return 0 if ok else 1


def _portal(data_root: Path, listen: str) -> bool:
    """Whether the portal's sign-in page answers over the API's HTTPS."""
    url = f"https://{listen}/portal/signin"
    print(f"  $ curl --cacert {data_root / 'ca.pem'} {url}")
    context = ssl.create_default_context(cafile=str(data_root / "ca.pem"))
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:
            found = b"Sign in to skiff" in answer.read()
    except OSError as exc:
        print(f"    {exc}")
        return False
    print("    " + ("the portal's sign-in page" if found else "not the portal's page"))
    return found


def _fetch(url: str, timeout_s: float = 20) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 -- our group
                data: bytes = answer.read()
                return data
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_logs(env: dict[str, str], timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run([sys.executable, "-m", "skiff", "container", "logs", "-g", "demo",
                              "-n", "web"], env=env, capture_output=True, text=True,
                             check=False).stdout
        if "response:200" in out or time.monotonic() > deadline:
            print("  $ skiff container logs -g demo -n web")
            for line in out.rstrip().splitlines():
                print(f"    {line}")
            return out
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m skiff.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT,
                        help=f"where skiff keeps its state (default {DEFAULT_DATA_ROOT})")
    parser.add_argument("--listen", default=ApiSettings.listen,
                        help=f"where the API listens (default {ApiSettings.listen})")
    args = parser.parse_args()
    sys.exit(run(args.data_root, args.listen))


if __name__ == "__main__":
    main()
