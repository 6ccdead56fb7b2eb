"""A real skiff server (HTTPS, store, reconcile loop, engine) in this process.

For end-to-end tests and benchmarks: it listens on a free loopback port over
a given data root and, on exit, deletes every group it ran and removes what
the node set up (network pool, bridge, cgroups, run directory), pass or fail.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from skiff.engine.network import firewall
from skiff.engine.runtime import cgroups, rundir
from skiff.server import Server, bind, build, files_endpoint, serving_app, start_files
from skiff.settings import (
    ApiSettings,
    DnsSettings,
    FilesSettings,
    NetworkSettings,
    QuotaSettings,
    RuntimeSettings,
    Settings,
)
from skiff.testing.engine import remove_everything
from skiff.testing.registry import free_port
from skiff.testing.waiting import eventually


@dataclass
class RunningServer:
    """A skiff serving HTTPS at ``url`` (its CA certificate at ``ca``), with the admin token."""

    server: Server
    url: str
    ca: Path
    token: str
    data_root: Path
    #: The Azure Files data plane's URL base (``https://127.0.0.1:PORT``), when served.
    files_url: str | None = None

    @property
    def settings(self) -> Settings:
        return self.server.plane.settings

    def client(self, **options: Any) -> httpx.Client:
        """An HTTPS client of the API, as the admin (``options`` go to httpx.Client)."""
        return httpx.Client(base_url=self.url, timeout=30,
                            verify=ssl.create_default_context(cafile=self.ca),
                            headers={"Authorization": f"Bearer {self.token}"}, **options)


def wait_port(port: int, timeout_s: float = 15) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    def accepts() -> bool:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True

    eventually(accepts, what=f"something listens on 127.0.0.1:{port}", timeout_s=timeout_s,
               interval_s=0.02, ignore=(OSError,))


@contextlib.contextmanager
def running_server(data_root: Path, *, pool_size: int = 2, stop_grace_s: float = 1,
                   dns_listen: str | None = None,
                   allow: Sequence[str] = (), files: bool = False,
                   api_for_groups: bool = False,
                   quotas: QuotaSettings | None = None) -> Iterator[RunningServer]:
    """Serve a skiff on ``data_root``; stop it and clean up after.

    ``dns_listen`` (``HOST:PORT``): serve name labels over DNS there too. ``allow``:
    local endpoints (the tests' registries) that tenants' pulls may reach, as
    ``skiff serve --allow-local-endpoint`` says. ``files``: serve the Azure Files data
    plane too, on a free loopback port (accounts' ``primaryEndpoints.file`` name it).
    ``api_for_groups``: the groups reach the API at their gateway, as ``skiff serve
    --api-for-groups`` lets them. ``quotas``: the subscriptions' (ACI's defaults if None).
    """
    port = free_port()
    files_sock, files_listen = bind("127.0.0.1:0") if files else (None, None)
    settings = Settings(data_root=data_root, api=ApiSettings(listen=f"127.0.0.1:{port}",
                                                             for_groups=api_for_groups),
                        network=NetworkSettings(pool_size=pool_size,
                                                allow_local_endpoints=tuple(allow)),
                        runtime=RuntimeSettings(stop_grace_s=stop_grace_s),
                        dns=DnsSettings(listen=dns_listen),
                        files=FilesSettings(listen=files_listen),
                        quotas=quotas or QuotaSettings())
    try:
        server = build(settings, file_endpoint=lambda account: files_endpoint(settings, account))
    except BaseException:
        if files_sock is not None:
            files_sock.close()
        raise
    engine = server.node
    assert engine is not None  # the local backend's
    with contextlib.ExitStack() as cleanup:  # each step runs even when one before it fails
        cleanup.callback(rundir.remove, engine.runtime.run_dir)
        cleanup.callback(cgroups.remove, f"/{engine.runtime.run_dir.name}")
        cleanup.callback(subprocess.run, ["ip", "link", "del", engine.networks.bridge],
                         capture_output=True, check=False)
        cleanup.callback(firewall.remove_host_guard, engine.networks.bridge)

        @cleanup.callback
        def _remove_vnets() -> None:
            for vnet in engine.networks.vnets():
                with contextlib.suppress(Exception):
                    engine.networks.remove_vnet(vnet)

        cleanup.callback(engine.networks.drain_pool)
        cleanup.callback(server.close)

        @cleanup.callback
        def _delete_groups() -> None:  # all on the node, those known only from disk too
            with contextlib.suppress(Exception):
                remove_everything(engine)

        config = uvicorn.Config(serving_app(server.plane), host=server.host, port=server.port,
                                ssl_certfile=str(server.cert), ssl_keyfile=str(server.key),
                                log_level="warning", lifespan="off", ws="websockets-sansio",
                                proxy_headers=False,  # the client is the peer, not a header
                                # at the test's end: a graceful stop waits this long for the
                                # idle TLS keep-alives of clients a test left open (asyncio
                                # waits for their close_notify), however long it is; typed
                                # int, taken by asyncio.timeout (any number of seconds)
                                timeout_graceful_shutdown=0.2)  # type: ignore[arg-type]
        http = uvicorn.Server(config)
        thread = threading.Thread(target=http.run, name="skiff-server", daemon=True)
        thread.start()

        @cleanup.callback
        def _stop_http() -> None:
            http.should_exit = True
            thread.join(timeout=10)

        files_url = None
        if files_sock is not None:
            assert server.plane.storage is not None
            plane = start_files(settings, server.plane.storage, server.cert, server.key,
                                sock=files_sock)
            assert plane is not None
            cleanup.callback(plane.close)
            files_url = plane.url
        wait_port(port)
        token = (data_root / "admin.token").read_text().strip()
        yield RunningServer(server, server.plane.base_url, data_root / "ca.pem", token,
                            data_root, files_url)


def settled(http: httpx.Client, path: str, timeout_s: float = 30) -> dict[str, Any]:
    """GET the group at ``path`` until its provisioningState is Succeeded or Failed."""
    def group() -> dict[str, Any]:
        found: dict[str, Any] = http.get(path).json()
        return found

    def done(found: dict[str, Any]) -> bool:
        return found["properties"]["provisioningState"] in ("Succeeded", "Failed")

    return eventually(group, until=done, what=f"{path} settles", timeout_s=timeout_s)
