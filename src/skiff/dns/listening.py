"""The server's sockets: a UDP and a TCP socket per address, and a thread per TCP client.

DNS is served on the same port over UDP and TCP (RFC 7766): clients ask over
TCP when a UDP answer came back truncated. Each listening address is thus a
pair of sockets bound together (:func:`bind`), non-blocking, for the server's
event loop. An address can be bound before any interface holds it
(``IP_FREEBIND``), so that the resolver for a network's containers can listen
on the gateway's address whether or not the bridge is up yet.

TCP clients are few and slow compared to UDP's, and a TCP query may need a
blocking exchange with an upstream: each connection gets a thread of its own
(:class:`TcpClients`), up to a bound, and is closed when idle.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from skiff.dns.upstream import recv_exact

log = logging.getLogger(__name__)

# Linux's IP_FREEBIND (include/uapi/linux/in.h); Python does not name it.
_IP_FREEBIND = 15
# Connections waiting to be accepted; the loop accepts at once, so few wait.
_BACKLOG = 64


@dataclass(eq=False)
class Listener:
    """The UDP and the TCP socket listening on one address and port."""

    udp: socket.socket
    tcp: socket.socket

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def bind(family: socket.AddressFamily, host: str, port: int, *, freebind: bool) -> Listener:
    """A UDP and a TCP socket, non-blocking, bound to the same ``host``:``port``
    (port 0: the one the kernel picks for UDP). OSError if either cannot be bound."""
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        for sock in (udp, tcp):
            sock.setblocking(False)
            if freebind:  # IPv6 sockets take the IPv4-level option too
                sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        # TCP only: a restarted server may rebind while old connections linger
        # in TIME_WAIT. (On UDP it would let two servers share the port.)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind((host, port))
        tcp.bind((host, udp.getsockname()[1]))
        tcp.listen(_BACKLOG)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return Listener(udp, tcp)


class TcpClients:
    """TCP connections, each served by a thread of its own until it closes or idles.

    ``answer`` gives the reply to one query, or None to close the connection
    (a stream that sends responses or garbage is no client); at most
    ``max_clients`` connections are served at once (more are closed at once),
    each closed after ``idle_s`` without a query. ``errors`` counts unexpected
    failures, each logged.
    """

    def __init__(self, answer: Callable[[bytes], bytes | None], *, max_clients: int,
                 idle_s: float) -> None:
        self._answer = answer
        self._max = max_clients
        self._idle = idle_s
        self._lock = threading.Lock()
        self._threads: dict[socket.socket, threading.Thread] = {}
        self._closing = False
        self.errors = 0

    def accept(self, listening: socket.socket) -> None:
        """Accept a connection waiting on ``listening`` and serve it (in its own thread)."""
        try:
            conn, _ = listening.accept()
        except OSError:  # gone already, or the listener was just removed
            return
        with self._lock:
            if len(self._threads) >= self._max or self._closing:
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="skiff-dns-tcp",
                                      daemon=True)
            self._threads[conn] = thread
        thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """End every connection and wait (up to ``timeout_s`` each) for its thread."""
        with self._lock:
            self._closing = True
            threads = dict(self._threads)
        for conn, thread in threads.items():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=timeout_s)

    def _serve(self, conn: socket.socket) -> None:
        """Answer length-prefixed queries (RFC 1035 §4.2.2) on ``conn``, one after another."""
        try:
            conn.settimeout(self._idle)
            while not self._closing:
                head = recv_exact(conn, 2)
                query = recv_exact(conn, int.from_bytes(head, "big")) if head else None
                if query is None:
                    return
                reply = self._answer(query)
                if reply is None:
                    return
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return  # idle timeout, reset, or close(): the connection is over
        except Exception:
            self.errors += 1
            log.exception("DNS: failure on a TCP connection")
        finally:
            conn.close()
            with self._lock:
                self._threads.pop(conn, None)
