"""The data plane's own HTTPS listener, beside the API's (see FilesSettings)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from skiff.core.shares import FileShares
from skiff.files.app import WORKERS, FilesApp
from skiff.files.limits import ClientSlots, limited_protocol

#: Connections served at once per client address, by default (see skiff.files.limits).
MAX_CONNECTIONS_PER_CLIENT = 64

log = logging.getLogger(__name__)


@dataclass
class FilesServer:
    """A running data plane: ``url`` is the base clients address (``<url>/<account>``)."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def close(self) -> None:
        """Stop serving (requests in flight get 2 s) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def public_url(listen: str, public: str | None) -> str:
    if public:
        return public.rstrip("/")
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # noqa: S104 -- a check
        host = "127.0.0.1"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def start(sock: socket.socket, listen: str, shares: FileShares, *, cert: Path, key: Path,
          public: str | None = None, workers: int = WORKERS,
          per_client: int = MAX_CONNECTIONS_PER_CLIENT) -> FilesServer:
    """Serve the data plane over ``shares`` on the bound ``sock`` (``listen`` its address,
    with the real port) in a thread of its own, with TLS from ``cert``/``key``: requests
    handled by at most ``workers`` threads at once, at most ``per_client`` connections
    served per client address (beyond, answered 503 ``ServerBusy``)."""
    url = public_url(listen, public)
    app = FilesApp(shares, endpoint=url, workers=workers)
    config = uvicorn.Config(app, ssl_certfile=str(cert), ssl_keyfile=str(key),
                            log_level="warning", lifespan="off", access_log=False,
                            proxy_headers=False,  # a SAS's signedIp checks the peer
                            timeout_graceful_shutdown=2,
                            http=limited_protocol(ClientSlots(per_client)))
    server = uvicorn.Server(config)

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="skiff-files", daemon=True)
    thread.start()
    log.info("skiff files serves %s", url)
    return FilesServer(url, server, thread, sock)
