"""Relays: the few host endpoints the fetch namespace may reach, joined from inside it.

The fetch namespace (:mod:`~skiff.engine.network.fetching`) reaches no address
of the node. The endpoints the operator allows (``skiff serve
--allow-local-endpoint 127.0.0.1:5000``: a developer's registry, the tests'
registries) and the host's loopback DNS stub (systemd-resolved's
127.0.0.53) are the exceptions: for each, a socket listens *inside* the
namespace at the same address and port, and each connection (or datagram) it
takes is joined to the real endpoint from the node's namespace. skopeo and git
then use the reference text the tenant gave, TLS and SNI unchanged, and reach
exactly the endpoints named, nothing beside them on the same host.

A relay serves at most ``max_connections`` at once (a new one beyond is
closed at once), one thread per direction of each, so a stuck fetch holds
two threads until skopeo or git gives up and closes its end.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

_log = logging.getLogger(__name__)

#: Connections (or DNS queries) a relay serves at once: skopeo copies a few blobs in
#: parallel and git opens one or two connections, so 64 leaves room for many fetches.
MAX_CONNECTIONS = 64
#: Seconds a connection to the real endpoint may take to open, and a DNS answer to come.
CONNECT_TIMEOUT_S = 10.0
_CHUNK = 256 * 1024


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` into ``sink`` until ``source`` ends, then end ``sink``'s writing."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class TcpRelay:
    """Connections accepted by ``listener`` (a socket made in the fetch namespace, bound
    to ``target``'s address), each joined to ``target`` from the node's namespace."""

    def __init__(self, listener: socket.socket, target: tuple[str, int], *,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.target = target
        self._listener = listener
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"skiff-relay-{target[1]}")

    def start(self) -> None:
        self._listener.listen(MAX_CONNECTIONS)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by close()
                return
            if not self._slots.acquire(blocking=False):
                conn.close()  # as full as it may be: the fetch fails, the others go on
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name=f"skiff-relay-{self.target[1]}-conn").start()

    def _serve(self, inside: socket.socket) -> None:
        outside: socket.socket | None = None
        try:
            try:
                outside = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                _log.debug("relay to %s:%d: %s", *self.target, exc)
                return  # closing ``inside`` tells the fetch the endpoint is not there
            outside.settimeout(None)
            with self._lock:
                if self._closed:
                    return
                self._open.update((inside, outside))
            back = threading.Thread(target=_pump, args=(outside, inside), daemon=True)
            back.start()
            _pump(inside, outside)
            back.join()
        finally:
            with self._lock:
                self._open.discard(inside)
                if outside is not None:
                    self._open.discard(outside)
            inside.close()
            if outside is not None:
                outside.close()
            self._slots.release()

    def close(self) -> None:
        """Stop listening and cut the connections open now."""
        with self._lock:
            self._closed = True
            conns = list(self._open)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


class UdpRelay:
    """DNS queries received by ``listener`` (a UDP socket made in the fetch namespace,
    bound to ``target``'s address), each asked of ``target`` from the node's namespace
    and answered back."""

    def __init__(self, listener: socket.socket, target: tuple[str, int], *,
                 max_queries: int = MAX_CONNECTIONS) -> None:
        self.target = target
        self._listener = listener
        self._slots = threading.BoundedSemaphore(max_queries)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True,
                                        name=f"skiff-relay-udp-{target[1]}")

    def start(self) -> None:
        # A blocked recvfrom() is not woken by close(): it looks up at this pace.
        self._listener.settimeout(0.5)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self._listener.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                continue  # dropped, as a busy resolver does: the client asks again
            threading.Thread(target=self._ask, args=(query, client), daemon=True,
                             name="skiff-relay-dns").start()

    def _ask(self, query: bytes, client: tuple[str, int]) -> None:
        try:
            family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as out:
                out.settimeout(CONNECT_TIMEOUT_S)
                out.connect(self.target)
                out.send(query)
                answer = out.recv(65535)
            self._listener.sendto(answer, client)
        except OSError as exc:
            _log.debug("DNS relay to %s: %s", self.target[0], exc)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
