"""Relaying UDP queries upstream from the server's event loop, without ever blocking it.

The loop that answers skiff's names in microseconds cannot wait the
milliseconds (or, when an upstream is down, the seconds) an upstream takes.
So a relayed query is only *started* here: sent on a socket of its own, which
joins the loop's selector, with a deadline. When the answer comes, it goes
back to the client with the client's ID; when the deadline passes, or the
upstream refuses (ICMP port unreachable), the next upstream gets its turn;
after the last, the client gets SERVFAIL, well before its own timeout.

Selector keys carry ``(handler, argument)``, called as
``handler(socket, argument)``: the server's loop dispatches the sockets
registered here exactly as its own.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff.dns import wire
from skiff.dns.upstream import Upstream, answers, with_new_id
from skiff.dns.zone import Rcode


@dataclass(eq=False)
class _Relayed:
    """A query relayed upstream, waiting for its answer."""

    query: bytes
    end: int  # where its question ends
    client: Any  # the client's socket address, as recvfrom gave it
    listener: socket.socket  # where the client sent it, and the answer goes back from
    upstreams: tuple[Upstream, ...]
    tried: int = 0  # upstreams asked so far
    sent: bytes = b""  # the query as the current upstream got it (another ID)
    sock: socket.socket | None = None


class Relays:
    """The relayed queries in flight, owned by the loop's thread (not thread-safe).

    ``timeout_s`` is each upstream's turn; beyond ``max_pending`` queries in
    flight, a new one gets SERVFAIL at once; ``skip`` tells which upstreams
    must not be asked (the server's own addresses: relaying there would loop).
    """

    def __init__(self, sel: selectors.BaseSelector, *, timeout_s: float, max_pending: int,
                 skip: Callable[[Upstream], bool]) -> None:
        self._sel = sel
        self._timeout = timeout_s
        self._max = max_pending
        self._skip = skip
        self._pending: dict[socket.socket, _Relayed] = {}
        # The timeout is constant, so deadlines are appended in order.
        self._deadlines: deque[tuple[float, _Relayed, socket.socket]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def relay(self, query: bytes, end: int, client: Any, listener: socket.socket,
              upstreams: tuple[Upstream, ...]) -> None:
        """Start relaying ``query`` (question ending at ``end``) from ``client``."""
        relayed = _Relayed(query, end, client, listener, upstreams)
        if len(self._pending) >= self._max:
            self._answer(relayed, None)
        else:
            self._next(relayed)

    def wait_s(self) -> float | None:
        """Seconds until the next deadline, for the loop's select; None if nothing waits."""
        if not self._deadlines:
            return None
        return max(self._deadlines[0][0] - time.monotonic(), 0.0)

    def expire(self) -> None:
        """Give the next upstream its turn wherever the current one's time is up."""
        deadlines, now = self._deadlines, time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, relayed, sock = deadlines.popleft()
            if relayed.sock is sock and sock in self._pending:
                self._drop(sock)
                self._next(relayed)

    def close(self) -> None:
        """Forget every query in flight (the server is stopping) and close their sockets."""
        for sock in list(self._pending):
            self._drop(sock)
        self._deadlines.clear()

    def _next(self, relayed: _Relayed) -> None:
        """Send ``relayed`` to its next upstream, or answer SERVFAIL when none is left."""
        while relayed.tried < len(relayed.upstreams):
            upstream = relayed.upstreams[relayed.tried]
            relayed.tried += 1
            if self._skip(upstream):
                continue
            sock = socket.socket(upstream.family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(upstream.sockaddr)  # a fresh random source port
                relayed.sent = with_new_id(relayed.query)
                sock.send(relayed.sent)
            except OSError:
                sock.close()
                continue
            relayed.sock = sock
            self._pending[sock] = relayed
            self._sel.register(sock, selectors.EVENT_READ, (self._on_answer, relayed))
            self._deadlines.append((time.monotonic() + self._timeout, relayed, sock))
            return
        self._answer(relayed, None)

    def _on_answer(self, sock: socket.socket, relayed: _Relayed) -> None:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:  # refused (ICMP port unreachable): the next upstream's turn
            self._drop(sock)
            self._next(relayed)
            return
        if not answers(relayed.sent, relayed.end, data):
            return  # not the answer (late, or forged): keep waiting
        self._drop(sock)
        self._answer(relayed, relayed.query[:2] + data[2:])

    def _drop(self, sock: socket.socket) -> None:
        self._pending.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(sock)
        sock.close()

    def _answer(self, relayed: _Relayed, reply: bytes | None) -> None:
        if reply is None:
            reply = wire.error(relayed.query, Rcode.SERVFAIL, relayed.end,
                               recursion_available=True)
        with contextlib.suppress(OSError):  # the client is gone: like a lost datagram
            relayed.listener.sendto(reply, relayed.client)
