"""A real OCI registry (Debian's ``docker-registry``) on a free loopback port.

Used by tests, benchmarks and the demo. Optionally behind htpasswd auth, for
the credential cases. Every request the registry serves is in its log, which
is how tests count blob downloads.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from skiff.testing.waiting import eventually

REGISTRY_BIN = "docker-registry"
_BLOB_GET = re.compile(
    r'http\.request\.method=GET .*http\.request\.uri="?/v2/\S*?/blobs/(sha256:[0-9a-f]{64})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    log: Path
    process: subprocess.Popen[bytes]
    creds: str | None = None  # "user:password" when behind htpasswd
    _syncs: int = 0

    def blob_downloads(self) -> list[str]:
        """The digests of every blob served so far, in order, repeats included."""
        self._sync_log()
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = _BLOB_GET.search(line)
            if match and 'msg="response completed' in line:
                found.append(match.group(1))
        return found

    def _sync_log(self, timeout_s: float = 10.0) -> None:
        """Wait until a request made now is in the log: those before it are too."""
        self._syncs += 1
        marker = f"/v2/?skiff-sync={self._syncs}"
        host, port = self.host.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", marker)
        conn.getresponse().read()
        conn.close()
        eventually(lambda: marker in self.log.read_text(errors="replace"),
                   what="the registry log shows a request made just now", timeout_s=timeout_s,
                   interval_s=0.01)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(port: int, process: subprocess.Popen[bytes]) -> bool:
    """Whether the registry answers ``/v2/`` (401 too: it is up, behind htpasswd)."""
    if process.poll() is not None:
        raise RuntimeError(f"docker-registry exited with {process.returncode}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().status in (200, 401)
    finally:
        conn.close()


@contextlib.contextmanager
def running_registry(workdir: Path, *, user: str | None = None,
                     password: str | None = None) -> Iterator[Registry]:
    """Start ``docker-registry`` storing under ``workdir``; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ""
    if user is not None and password is not None:
        htpasswd = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                  capture_output=True, text=True).stdout
        (workdir / "htpasswd").write_text(htpasswd)
        auth = (f"auth:\n  htpasswd:\n    realm: skiff-test\n"
                f"    path: {workdir / 'htpasswd'}\n")
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT)
    registry = Registry(f"127.0.0.1:{port}", log, process,
                        f"{user}:{password}" if user is not None else None)
    try:
        eventually(lambda: _answers(port, process), what="docker-registry answers",
                   timeout_s=15, ignore=(OSError,))
        yield registry
    finally:
        registry.stop()
