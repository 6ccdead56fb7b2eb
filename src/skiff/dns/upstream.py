"""The host's resolvers, which answer every name that is not skiff's.

Containers get skiff's resolver in their /etc/resolv.conf, so it must answer
the rest of the world's names too: it relays those queries, as they came, to
the resolvers the host itself uses (its /etc/resolv.conf), and relays their
answers back. It does not resolve recursively or cache: the host's resolvers
do that, and a container sees the same world as the host.

The server relays UDP queries without blocking (from its event loop, see
:mod:`skiff.dns.relaying`); this module holds what both paths share, and the
blocking exchange that serves queries which came over TCP: those are rare
(a client asks over TCP after a truncated answer), and each TCP connection
has a thread of its own.

Every relayed query gets a fresh random ID and a fresh socket (so a random
source port): an off-path attacker must guess both to slip in a forged answer.
An answer is taken only if its ID and question are the ones sent.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.dns.wire import HEADER

#: A socket address as getaddrinfo gives it: (host, port) or IPv6's (host, port, flow, scope).
SockAddr = tuple[Any, ...]
#: glibc reads at most three nameservers from resolv.conf (MAXNS).
MAX_NAMESERVERS = 3
_TC = 0x02


@dataclass(frozen=True)
class Upstream:
    """A resolver that answers the names no zone holds: an IP address (IPv6 may carry a
    ``%scope``) and a port. ValueError for anything but an address."""

    host: str
    port: int = 53
    #: How to reach it: the socket family and address, as getaddrinfo gives them.
    family: socket.AddressFamily = field(init=False, compare=False, repr=False)
    sockaddr: SockAddr = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise ValueError(f"not an upstream resolver's address: {self.host!r}") from exc
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "sockaddr", tuple(sockaddr))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def host_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The ``nameserver`` lines of ``resolv_conf`` (at most three, as glibc reads them).

    A missing file, or one without nameservers, gives none: the server then
    refuses the names it does not hold, as a host without resolvers would fail them.
    """
    try:
        lines = resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: list[Upstream] = []
    for line in lines:
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            ipaddress.ip_address(words[1].partition("%")[0])
        except ValueError:
            continue
        found.append(Upstream(words[1]))
    return found[:MAX_NAMESERVERS]


def answers(sent: bytes, end: int, data: bytes) -> bool:
    """Whether ``data`` is the answer to ``sent`` (its question ending at ``end``).

    The ID must match and QR be set; the question must match as well, in any
    case, unless the answer has none (an upstream's FORMERR may carry none).
    """
    if len(data) < HEADER or data[:2] != sent[:2] or not data[2] & 0x80:
        return False
    if data[4:6] == b"\x00\x00":
        return True
    return data[HEADER:end].lower() == sent[HEADER:end].lower()


def with_new_id(query: bytes) -> bytes:
    """``query`` with a fresh random ID."""
    return secrets.token_bytes(2) + query[2:]


def exchange(query: bytes, end: int, upstreams: list[Upstream], timeout_s: float) -> bytes | None:
    """Ask each upstream in turn, over UDP and then TCP if truncated, for the answer to
    ``query``; the answer with the query's ID, or None if none answered in time."""
    for upstream in upstreams:
        sent = with_new_id(query)
        deadline = time.monotonic() + timeout_s
        try:
            data = _udp(sent, end, upstream, deadline)
            if data is not None and data[2] & _TC:
                data = _tcp(sent, end, upstream, deadline)
        except OSError:
            continue
        if data is not None:
            return query[:2] + data[2:]
    return None


def _udp(sent: bytes, end: int, upstream: Upstream, deadline: float) -> bytes | None:
    with socket.socket(upstream.family, socket.SOCK_DGRAM) as sock:
        sock.connect(upstream.sockaddr)
        sock.send(sent)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            if answers(sent, end, data):
                return data
    return None


def _tcp(sent: bytes, end: int, upstream: Upstream, deadline: float) -> bytes | None:
    with socket.socket(upstream.family, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.connect(upstream.sockaddr)
            sock.sendall(len(sent).to_bytes(2, "big") + sent)
            head = recv_exact(sock, 2)
            data = recv_exact(sock, int.from_bytes(head, "big")) if head else None
        except TimeoutError:
            return None
    return data if data is not None and answers(sent, end, data) else None


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes from a stream, or None if it ends first."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
