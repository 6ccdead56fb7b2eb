"""skiff's DNS server: name labels for everyone, and the world's names for containers.

One server answers from skiff's zones (:class:`~skiff.dns.zone.Zone`) on
several addresses at once: a loopback port (``--dns-listen``) for the host and
the API's users, and port 53 on each group network's gateway for containers,
whose resolv.conf cannot name another port. Addresses come and go with
networks, so listeners are added and removed while the server runs. With
upstream resolvers (the host's, :func:`~skiff.dns.upstream.host_nameservers`)
it relays the names no zone holds to them, which makes it the containers'
only resolver; without, it refuses those names, as an authoritative-only
server does.

Everything UDP happens in one thread around one ``selectors`` loop: queries
answered from zones (the hot path, see :mod:`skiff.dns.wire` for how it stays
under a few microseconds), relayed queries waiting for their upstream
(:mod:`skiff.dns.relaying`), and control calls from other threads (listeners
added or removed, stop), which reach the loop through a queue and a wake-up
socket. TCP, which clients use after a truncated answer, gets a thread per
connection (:mod:`skiff.dns.listening`): it is rare, and blocking code is the
simple way to serve it. Those connections are bounded in all and per client
address, and closed when a query does not arrive whole in a few seconds, so
that no client can hold TCP for the others.

A packet the server cannot read never stops it: a truncated header or a
response is dropped, a malformed question gets FORMERR, another opcode
NOTIMP; an unexpected error is logged and the loop goes on.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import logging
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from types import TracebackType

from skiff.dns import upstream as _upstream
from skiff.dns import wire
from skiff.dns.listening import Listener, TcpClients, bind
from skiff.dns.relaying import Relays
from skiff.dns.upstream import Upstream
from skiff.dns.zone import REFUSED, Rcode, Zone
from skiff.errors import NetworkError

log = logging.getLogger(__name__)

#: A listening address: host (IPv4 or IPv6 literal) and port.
Address = tuple[str, int]

# A UDP query is small; 4 KiB holds any sane one and costs less to allocate
# per datagram than 64 KiB. A longer one arrives cut short and gets FORMERR.
_UDP_RECV = 4096
# Datagrams read from one socket before the loop looks at the others again.
_BATCH = 64
_IN, _ANY = 1, 255


class Forward(enum.Enum):
    """What :meth:`DnsServer.reply` gives for a name no zone holds: relay it upstream."""

    FORWARD = enum.auto()


FORWARD = Forward.FORWARD


@dataclass
class Counters:
    """What the server did, for tests and the operator's curiosity (not exact under
    concurrent TCP connections)."""

    #: Replies sent from zones, errors (FORMERR, NOTIMP) included.
    answered: int = 0
    #: Queries relayed to upstreams.
    forwarded: int = 0
    #: Datagrams dropped unanswered (no header, or a response).
    dropped: int = 0
    #: Unexpected failures in the loop, each logged with its traceback
    #: (those on TCP connections: see :attr:`DnsServer.errors`).
    errors: int = 0


class DnsServer:
    """A DNS server answering from ``zones`` on UDP and TCP, in a background thread.

    ``listen`` are the addresses bound by :meth:`start` (port 0: a free one,
    the same for UDP and TCP); more can be added and removed at any time.
    ``upstreams``: where names outside every zone are relayed (none: REFUSED);
    ``forward_timeout_s``: how long each upstream has to answer before the
    next is asked; ``max_relayed``: queries waiting upstream at once (beyond:
    SERVFAIL); ``max_tcp``: TCP connections served at once, at most
    ``max_tcp_per_client`` from one client address (beyond either, a new one
    is closed at once), each closed when a query has not arrived whole
    ``tcp_idle_s`` after the previous answer; ``cache_size``: packed answers
    kept (0: pack every answer anew, for benchmarks). The TCP limits' defaults
    are those of :class:`~skiff.settings.DnsSettings`.
    """

    def __init__(self, zones: Iterable[Zone] = (), *, listen: Iterable[Address] = (),
                 upstreams: Iterable[Upstream] = (), forward_timeout_s: float = 2.0,
                 max_relayed: int = 256, max_tcp: int = 256, max_tcp_per_client: int = 8,
                 tcp_idle_s: float = 5.0, cache_size: int = 4096) -> None:
        self._zones: tuple[Zone, ...] = ()
        self._zone_lock = threading.Lock()
        # Packed answers by lower-cased question, each with the epoch it was
        # packed in; a change of a zone or of the upstreams moves the epoch (_bump).
        self._cache: dict[bytes, tuple[int, wire.Template | Forward]] = {}
        self._epoch = 0
        self._initial = list(listen)
        self._upstreams: tuple[Upstream, ...] = ()  # replaced whole, never changed
        self.set_upstreams(upstreams)
        self._timeout = forward_timeout_s
        self._tcp = TcpClients(self._answer_stream, max_clients=max_tcp,
                               per_client=max_tcp_per_client, idle_s=tcp_idle_s)
        self._cache_size = cache_size
        self._listeners: dict[Address, Listener] = {}
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._sel = selectors.DefaultSelector()
        self._relays = Relays(self._sel, timeout_s=forward_timeout_s, max_pending=max_relayed,
                              skip=self._is_self)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.counters = Counters()
        for zone in zones:
            self.add_zone(zone)

    # -- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Bind the addresses given at construction and serve in a background thread.

        NetworkError if an address cannot be bound; RuntimeError on a second start.
        """
        if self._thread is not None or self._stopping:
            raise RuntimeError("a DnsServer starts once")
        try:
            for host, port in self._initial:
                self.add_listener(host, port)
        except NetworkError:
            self._stopping = True
            self._close_all()
            raise
        self._sel.register(self._wake_r, selectors.EVENT_READ, (self._on_wake, None))
        with self._lock:
            for listener in self._listeners.values():
                self._register(listener)
        self._thread = threading.Thread(target=self._loop, name="skiff-dns", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket; the server cannot start again."""
        self._stopping = True
        thread = self._thread
        if thread is not None:
            self._wake()
            thread.join()
        self._close_all()
        self._tcp.close()
        for zone in self._zones:
            zone.remove_listener(self._bump)

    def __enter__(self) -> DnsServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- zones and listeners ------------------------------------------------------

    def add_zone(self, zone: Zone) -> None:
        """Answer for ``zone`` too (the zone with the longest origin answers a name)."""
        with self._zone_lock:
            zones = [z for z in self._zones if z is not zone] + [zone]
            self._zones = tuple(sorted(zones, key=lambda z: -len(z.origin)))
        zone.add_listener(self._bump)
        self._bump()

    def remove_zone(self, zone: Zone) -> None:
        """Stop answering for ``zone``."""
        zone.remove_listener(self._bump)
        with self._zone_lock:
            self._zones = tuple(z for z in self._zones if z is not zone)
        self._bump()

    @property
    def errors(self) -> int:
        """Unexpected failures so far, in the loop and on TCP connections (each logged)."""
        return self.counters.errors + self._tcp.errors

    @property
    def tcp_connections(self) -> int:
        """TCP connections served now."""
        return len(self._tcp)

    @property
    def tcp_refused(self) -> int:
        """TCP connections closed at once so far, their client (or the server) at its limit."""
        return self._tcp.refused

    @property
    def zones(self) -> tuple[Zone, ...]:
        return self._zones

    def set_upstreams(self, upstreams: Iterable[Upstream]) -> None:
        """Relay names outside every zone to ``upstreams`` from now on (none: refuse them),
        e.g. after the host's resolv.conf changed. Queries already relayed finish as they are."""
        self._upstreams = tuple(upstreams)
        self._bump()  # answers packed for "refuse" or "relay" may have to change

    @property
    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams)

    @property
    def addresses(self) -> list[Address]:
        """Every address listened on, as bound (ports resolved)."""
        with self._lock:
            return list(self._listeners)

    @property
    def address(self) -> Address:
        """The first address listened on; RuntimeError if there is none."""
        addresses = self.addresses
        if not addresses:
            raise RuntimeError("the DNS server listens nowhere")
        return addresses[0]

    def add_listener(self, host: str, port: int = 53, *, freebind: bool = False) -> Address:
        """Listen on ``host``:``port`` over UDP and TCP; the address bound.

        Port 0 picks a port free for both. ``freebind`` binds an address that
        no interface has yet (a bridge's gateway before the bridge is up).
        An address already listened on is kept as it is. NetworkError if it
        cannot be bound (in use, not an address of this host).
        """
        if self._stopping:
            raise RuntimeError("the DNS server is stopped")
        ip = ipaddress.ip_address(host)
        host = str(ip)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        with self._lock:
            if (host, port) in self._listeners:
                return host, port
        last: OSError | None = None
        # Port 0 lets the kernel pick the UDP port; TCP then needs the same
        # one, which may be taken: try a few.
        for _ in range(20 if port == 0 else 1):
            try:
                listener = bind(family, host, port, freebind=freebind)
            except OSError as exc:
                last = exc
                continue
            bound: Address = (host, listener.udp.getsockname()[1])
            with self._lock:
                self._listeners[bound] = listener
            if self._thread is not None:
                self._in_loop(partial(self._register, listener))
            return bound
        raise NetworkError(f"DNS cannot listen on {host}:{port}: {last}") from last

    def remove_listener(self, host: str, port: int = 53) -> bool:
        """Stop listening on ``host``:``port``, closing its sockets before returning;
        true if it was listened on."""
        with self._lock:
            listener = self._listeners.pop((str(ipaddress.ip_address(host)), port), None)
        if listener is None:
            return False
        if self._thread is not None and self._thread.is_alive():
            self._in_loop(partial(self._unregister, listener))
        else:
            listener.close()
        return True

    # -- answering ------------------------------------------------------------------

    def reply(self, query: bytes, *, udp: bool = True) -> bytes | Forward | None:
        """The reply to one query: bytes, None to drop it, or FORWARD (not ours).

        The hot path: header checks, question bounds, one dict look-up and a splice.
        """
        if len(query) < wire.HEADER or query[2] & 0x80:
            return None  # no header, or a response: answering those invites loops
        if query[2] & 0x78:
            return wire.error(query, Rcode.NOTIMP)  # an opcode other than QUERY
        if query[4:6] != b"\x00\x01":
            return wire.error(query, Rcode.FORMERR)
        end = wire.question_end(query)
        if end < 0:
            return wire.error(query, Rcode.FORMERR)
        qend = end - 4
        key = query[wire.HEADER:qend].lower() + query[qend:end]
        entry = self._cache.get(key)
        if entry is None or entry[0] != self._epoch:
            entry = self._prepare(key)
        template = entry[1]
        if template is FORWARD:
            return FORWARD
        reply, limit = wire.splice(query, end, template)
        if udp and len(reply) > limit:
            return wire.truncated(reply, end)
        return reply

    def _prepare(self, key: bytes) -> tuple[int, wire.Template | Forward]:
        """Resolve and pack the answer to a lower-cased question, and keep it."""
        # The epoch is read before the zones: a change after this point moves
        # the epoch past the one stored, so a stale answer is never reused.
        epoch = self._epoch
        name = wire.text(wire.labels(key[:-4]))
        qtype = int.from_bytes(key[-4:-2], "big")
        qclass = int.from_bytes(key[-2:], "big")
        zone = next((z for z in self._zones if z.covers(name)), None)
        template: wire.Template | Forward
        if zone is None and self._upstreams:
            template = FORWARD
        else:
            answer = (zone.resolve(name, qtype) if zone is not None and qclass in (_IN, _ANY)
                      else REFUSED)
            template = wire.pack(key, answer, recursion_available=bool(self._upstreams))
        entry = (epoch, template)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # simpler than LRU, and floods of odd names do not grow it
            self._cache[key] = entry
        return entry

    def _bump(self) -> None:
        """A zone or the upstreams changed: every packed answer is stale."""
        with self._zone_lock:
            self._epoch += 1

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        select, relays = self._sel.select, self._relays
        while not self._stopping:
            for key, _ in select(relays.wait_s()):
                handler, arg = key.data
                try:
                    handler(key.fileobj, arg)
                except Exception:  # a bug must not take the resolver down
                    self.counters.errors += 1
                    log.exception("DNS: failure handling %s", key.fileobj)
            if len(relays):
                relays.expire()
        self._shutdown_loop()

    def _on_udp(self, sock: socket.socket, _: object) -> None:
        reply_to, counters = self.reply, self.counters
        for _ in range(_BATCH):
            try:
                query, client = sock.recvfrom(_UDP_RECV)
            except OSError:  # drained (EAGAIN), or closed by remove_listener
                return
            reply = reply_to(query)
            if reply is None:
                counters.dropped += 1
            elif reply is FORWARD:
                counters.forwarded += 1
                self._relays.relay(query, wire.question_end(query), client, sock,
                                   self._upstreams)
            else:
                counters.answered += 1
                # A full buffer or a vanished client is a lost datagram: the
                # client asks again.
                with contextlib.suppress(OSError):
                    sock.sendto(reply, client)

    def _on_accept(self, sock: socket.socket, _: object) -> None:
        self._tcp.accept(sock)

    def _answer_stream(self, query: bytes) -> bytes | None:
        """The reply to a query that came over TCP, in its connection's thread: relayed
        upstream with a blocking exchange when it is not ours."""
        reply = self.reply(query, udp=False)
        if reply is not FORWARD:
            if reply is not None:
                self.counters.answered += 1
            return reply
        end = wire.question_end(query)
        self.counters.forwarded += 1
        upstreams = [u for u in self._upstreams if not self._is_self(u)]
        return (_upstream.exchange(query, end, upstreams, self._timeout)
                or wire.error(query, Rcode.SERVFAIL, end, recursion_available=True))

    def _on_wake(self, sock: socket.socket, _: object) -> None:
        with contextlib.suppress(OSError):
            sock.recv(4096)
        while self._calls:
            self._calls.popleft()()

    # -- plumbing -----------------------------------------------------------------------

    def _is_self(self, upstream: Upstream) -> bool:
        """Whether ``upstream`` is one of our own addresses: relaying there would loop."""
        return (upstream.host, upstream.port) in self._listeners

    def _register(self, listener: Listener) -> None:
        self._sel.register(listener.udp, selectors.EVENT_READ, (self._on_udp, None))
        self._sel.register(listener.tcp, selectors.EVENT_READ, (self._on_accept, None))

    def _unregister(self, listener: Listener) -> None:
        for sock in (listener.udp, listener.tcp):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()

    def _in_loop(self, call: Callable[[], None]) -> None:
        """Run ``call`` in the loop's thread and wait for it (at once if this is that thread)."""
        if threading.current_thread() is self._thread:
            call()
            return
        done = threading.Event()

        def run() -> None:
            try:
                call()
            finally:
                done.set()

        self._calls.append(run)
        self._wake()
        thread = self._thread
        while not done.wait(timeout=0.1):
            if thread is None or not thread.is_alive():
                # The loop ended without running it: no thread is left to race with.
                with contextlib.suppress(ValueError):
                    self._calls.remove(run)
                    run()
                return

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake-up pipe wakes the loop anyway
            self._wake_w.send(b"\0")

    def _shutdown_loop(self) -> None:
        """In the loop's thread, as it ends: run pending calls, end relayed queries."""
        while self._calls:
            self._calls.popleft()()
        self._relays.close()

    def _close_all(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            self._unregister(listener)
        with contextlib.suppress(OSError):
            self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

