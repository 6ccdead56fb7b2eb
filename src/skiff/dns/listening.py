"""The server's sockets: a UDP and a TCP socket per address, and a thread per TCP client.

DNS is served on the same port over UDP and TCP (RFC 7766): clients ask over
TCP when a UDP answer came back truncated. Each listening address is thus a
pair of sockets bound together (:func:`bind`), non-blocking, for the server's
event loop. An address can be bound before any interface holds it
(``IP_FREEBIND``), so that the resolver for a network's containers can listen
on the gateway's address whether or not the bridge is up yet.

TCP clients are few and slow compared to UDP's, and a TCP query may need a
blocking exchange with an upstream: each connection gets a thread of its own
(:class:`TcpClients`). Those threads are a shared resource that one client
must not be able to take from the others (a container holding 64 silent
connections once blocked TCP for the whole node), so, as RFC 7766 §6.2.3
advises and resolvers do (BIND's ``tcp-clients`` and idle timeouts,
unbound's ``tcp-connection-limit``): connections are bounded in all and per
client address, beyond which a new one is closed at once; and each query
must arrive whole within the idle time, counted from the end of the
previous answer, so a silent client, or one trickling a query byte by byte,
is closed after a few seconds whatever it sends. The answer must be taken
within that time too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    (a stream that sends responses or garbage is no client). At most
    ``max_clients`` connections are served at once, at most ``per_client``
    from one client address; a connection beyond either is closed at once
    (``refused`` counts them). A connection is closed when a query has not
    arrived whole (or an answer has not been taken) ``idle_s`` after the
    previous answer or the accept. ``errors`` counts unexpected failures, each
    logged.
    """

    def __init__(self, answer: Callable[[bytes], bytes | None], *, max_clients: int,
                 per_client: int, idle_s: float) -> None:
        if max_clients < 1 or per_client < 1 or idle_s <= 0:
            raise ValueError("TCP limits must be positive")
        self._answer = answer
        self._max = max_clients
        self._per_client = per_client
        self._idle = idle_s
        self._lock = threading.Lock()
        self._threads: dict[socket.socket, threading.Thread] = {}
        self._per_address: dict[str, int] = {}  # connections served, by client address
        self._closing = False
        self.errors = 0
        self.refused = 0

    def __len__(self) -> int:
        """Connections served now."""
        return len(self._threads)

    def accept(self, listening: socket.socket) -> None:
        """Accept a connection waiting on ``listening`` and serve it (in its own thread),
        or close it at once if the server or its client has all the connections it may."""
        try:
            conn, peer = listening.accept()
        except OSError:  # gone already, or the listener was just removed
            return
        client: str = peer[0]
        with self._lock:
            taken = self._per_address.get(client, 0)
            if self._closing or len(self._threads) >= self._max or taken >= self._per_client:
                self.refused += 1
                thread = None
            else:
                self._per_address[client] = taken + 1
                thread = threading.Thread(target=self._serve, args=(conn, client),
                                          name="skiff-dns-tcp", daemon=True)
                self._threads[conn] = thread
        if thread is None:
            log.debug("DNS: TCP connection from %s refused (limit reached)", client)
            conn.close()
            return
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: as if over the limit
            self.refused += 1
            self._forget(conn, client)
            conn.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """End every connection and wait (up to ``timeout_s`` each) for its thread."""
        with self._lock:
            self._closing = True
            threads = dict(self._threads)
        for conn, thread in threads.items():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=timeout_s)

    def _serve(self, conn: socket.socket, client: str) -> None:
        """Answer length-prefixed queries (RFC 1035 §4.2.2) on ``conn``, one after another."""
        try:
            while not self._closing:
                deadline = time.monotonic() + self._idle
                head = _recv_by(conn, 2, deadline)
                query = _recv_by(conn, int.from_bytes(head, "big"), deadline) if head else None
                if query is None:
                    return
                reply = self._answer(query)
                if reply is None:
                    return
                # sendall's timeout bounds the whole answer: a client that does not
                # read it holds the thread no longer than an idle one.
                conn.settimeout(self._idle)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return  # idle timeout, reset, or close(): the connection is over
        except Exception:
            self.errors += 1
            log.exception("DNS: failure on a TCP connection")
        finally:
            conn.close()
            self._forget(conn, client)

    def _forget(self, conn: socket.socket, client: str) -> None:
        with self._lock:
            self._threads.pop(conn, None)
            left = self._per_address.get(client, 0) - 1
            if left > 0:
                self._per_address[client] = left
            else:
                self._per_address.pop(client, None)


def _recv_by(conn: socket.socket, size: int, deadline: float) -> bytes | None:
    """Exactly ``size`` bytes from ``conn``, or None if it ends first or ``deadline``
    (time.monotonic) passes, however the bytes trickle in."""
    chunks, left = [], size
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(left)
        except TimeoutError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
