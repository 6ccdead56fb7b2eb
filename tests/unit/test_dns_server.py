"""The DNS server on loopback, asked by a real resolver client (dnspython) over UDP and TCP.

Forwarding goes to a fake upstream that the tests start on another loopback
port; no query ever leaves the host.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from skiff.dns import Address, DnsServer, Upstream, Zone
from skiff.errors import NetworkError
from skiff.settings import DnsSettings
from skiff.testing.waiting import eventually

ORIGIN = "skiff.internal"
WEB = "web.local.skiff.internal"
TIMEOUT = 5.0  # for answers that must come: a failure, not a wait, when it runs out


class FakeUpstream:
    """A resolver on a loopback port, UDP and TCP, with a few canned names.

    ``ext.example.`` has one address; ``big.example.`` has 60, too many for
    512 bytes, so over UDP it answers truncated; ``silent.example.`` gets no
    answer at all; anything else is NXDOMAIN. ``seen`` lists (transport, ID,
    name) of each query received.
    """

    def __init__(self) -> None:
        # The UDP port the kernel picks may be some client's TCP port: pick again.
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port: int = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(8)
        self.seen: list[tuple[str, int, str]] = []
        self._closing = False
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def upstream(self) -> Upstream:
        return Upstream("127.0.0.1", self.port)

    def close(self) -> None:
        """Stop both threads (a datagram and a connection wake them) and close the sockets."""
        self._closing = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"", ("127.0.0.1", self.port))
        socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
        self.udp.close()
        self.tcp.close()

    def answer(self, data: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(data)
        name = str(query.question[0].name)
        self.seen.append((transport, query.id, name))
        if name == "silent.example.":
            return None
        reply = dns.message.make_response(query)
        if name == "ext.example.":
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
        elif name == "big.example.":
            reply.answer.append(dns.rrset.from_text(
                name, 60, "IN", "A", *(f"192.0.2.{i}" for i in range(1, 61))))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        wire = reply.to_wire()
        if transport == "udp" and len(wire) > 512:
            reply.answer.clear()
            reply.flags |= dns.flags.TC
            wire = reply.to_wire()
        return wire

    def _serve_udp(self) -> None:
        while True:
            data, client = self.udp.recvfrom(4096)
            if self._closing:
                return
            reply = self.answer(data, "udp")
            if reply is not None:
                self.udp.sendto(reply, client)

    def _serve_tcp(self) -> None:
        while True:
            conn, _ = self.tcp.accept()
            if self._closing:
                conn.close()
                return
            with conn:
                size = int.from_bytes(conn.recv(2), "big")
                data = b""
                while len(data) < size:
                    data += conn.recv(size - len(data))
                reply = self.answer(data, "tcp")
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)


@pytest.fixture
def zone() -> Zone:
    """A zone with one group's name."""
    z = Zone(ORIGIN, ns_ip="127.0.0.1")
    z.set(WEB, "10.89.0.5")
    return z


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fake upstream resolver on loopback."""
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def server(zone: Zone, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
           ) -> Iterator[DnsServer]:
    """A running server over the zone on a free loopback port, relaying to the fake upstream;
    no test may leave an error in its log."""
    s = DnsServer([zone], listen=[("127.0.0.1", 0)], upstreams=[upstream.upstream],
                  forward_timeout_s=0.5)
    s.start()
    yield s
    s.stop()
    assert s.errors == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def ask(address: Address, name: str, rdtype: str = "A", *, tcp: bool = False,
        edns: bool = False) -> dns.message.Message:
    """One query, as a stub resolver asks it."""
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    host, port = address
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=TIMEOUT)
    return dns.query.udp(query, host, port=port, timeout=TIMEOUT)


def addresses(message: dns.message.Message) -> list[str]:
    """The addresses in the answer section, in order."""
    return [rdata.address for rrset in message.answer for rdata in rrset]


def types(section: list[dns.rrset.RRset]) -> list[str]:
    return [dns.rdatatype.to_text(rrset.rdtype) for rrset in section]


# --- answers from the zone ---------------------------------------------------------------------


def test_a_record_over_udp(server: DnsServer) -> None:
    """A known name gets its address, authoritatively, with the zone's short TTL."""
    reply = ask(server.address, WEB)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert addresses(reply) == ["10.89.0.5"]
    assert reply.answer[0].ttl == 5


def test_soa_and_ns_at_the_apex(server: DnsServer, zone: Zone) -> None:
    """The apex answers SOA (with the current serial) and NS with the name server's glue."""
    soa = ask(server.address, ORIGIN, "SOA")
    assert soa.answer[0][0].serial == zone.serial
    assert str(soa.answer[0][0].mname) == "ns.skiff.internal."
    ns = ask(server.address, ORIGIN, "NS")
    assert [str(r.target) for r in ns.answer[0]] == ["ns.skiff.internal."]
    assert [r.address for r in ns.additional[0]] == ["127.0.0.1"]


def test_unknown_name_is_nxdomain_with_soa(server: DnsServer) -> None:
    """An unknown name in the zone: NXDOMAIN, the SOA in authority, nothing relayed."""
    reply = ask(server.address, "nope.local.skiff.internal")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert types(reply.authority) == ["SOA"]
    assert server.counters.forwarded == 0


def test_other_type_of_a_known_name_is_nodata(server: DnsServer) -> None:
    """A known name asked for AAAA or MX: NOERROR, no answer, the SOA in authority."""
    for rdtype in ("AAAA", "MX"):
        reply = ask(server.address, WEB, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer == []
        assert types(reply.authority) == ["SOA"]


def test_names_are_case_insensitive_and_echoed_as_asked(server: DnsServer) -> None:
    """Mixed case finds the name, and the answer spells it as the query did (DNS 0x20)."""
    reply = ask(server.address, "wEb.LoCaL.SKIFF.internal")
    assert addresses(reply) == ["10.89.0.5"]
    assert str(reply.answer[0].name) == "wEb.LoCaL.SKIFF.internal."


def test_updates_are_visible_at_once(server: DnsServer, zone: Zone) -> None:
    """A set, a change and a removal each show in the very next answer."""
    assert ask(server.address, "new.local.skiff.internal").rcode() == dns.rcode.NXDOMAIN
    zone.set("new.local.skiff.internal", "10.89.0.9")
    assert addresses(ask(server.address, "new.local.skiff.internal")) == ["10.89.0.9"]
    zone.set("new.local.skiff.internal", "10.89.0.10")
    assert addresses(ask(server.address, "new.local.skiff.internal")) == ["10.89.0.10"]
    zone.remove("new.local.skiff.internal")
    assert ask(server.address, "new.local.skiff.internal").rcode() == dns.rcode.NXDOMAIN
    assert ask(server.address, ORIGIN, "SOA").answer[0][0].serial == zone.serial


def test_edns_query_gets_edns_answer(server: DnsServer) -> None:
    """A query with EDNS gets an OPT record back."""
    reply = ask(server.address, WEB, edns=True)
    assert reply.edns == 0
    assert addresses(reply) == ["10.89.0.5"]


def test_tcp_answers_and_keeps_the_connection(server: DnsServer) -> None:
    """Over TCP, several queries on one connection each get their answer."""
    host, port = server.address
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        for name, rcode in ((WEB, dns.rcode.NOERROR), ("x.skiff.internal", dns.rcode.NXDOMAIN)):
            query = dns.message.make_query(name, "A")
            dns.query.send_tcp(sock, query)
            reply, _ = dns.query.receive_tcp(sock, expiration=time.time() + TIMEOUT)
            assert reply.id == query.id
            assert reply.rcode() == rcode
    assert addresses(ask(server.address, WEB, tcp=True)) == ["10.89.0.5"]


# --- relaying to upstreams ------------------------------------------------------------------------


def test_outside_names_are_relayed_with_a_fresh_id(server: DnsServer,
                                                   upstream: FakeUpstream) -> None:
    """A name outside the zone is asked upstream under another ID, and its answer relayed."""
    query = dns.message.make_query("ext.example", "A")
    host, port = server.address
    reply = dns.query.udp(query, host, port=port, timeout=TIMEOUT)
    assert reply.id == query.id
    assert addresses(reply) == ["192.0.2.1"]
    [(transport, upstream_id, name)] = upstream.seen
    assert (transport, name) == ("udp", "ext.example.")
    # A random 16-bit ID equals the client's once in 65,536 runs.
    assert upstream_id != query.id
    assert ask(server.address, "missing.example").rcode() == dns.rcode.NXDOMAIN


def test_truncated_upstream_answer_falls_back_to_tcp(server: DnsServer,
                                                     upstream: FakeUpstream) -> None:
    """A truncated answer reaches the client with TC; its TCP retry gets all 60 addresses."""
    truncated = ask(server.address, "big.example")
    assert truncated.flags & dns.flags.TC
    query = dns.message.make_query("big.example", "A")
    host, port = server.address
    reply, used_tcp = dns.query.udp_with_fallback(query, host, port=port, timeout=TIMEOUT)
    assert used_tcp
    assert len(addresses(reply)) == 60
    assert ("tcp", "big.example.") in [(t, n) for t, _, n in upstream.seen]


def test_silent_upstream_gives_servfail_after_the_timeout(server: DnsServer) -> None:
    """An upstream that never answers: SERVFAIL once its 0.5 s are up, not the client's timeout."""
    started = time.monotonic()
    reply = ask(server.address, "silent.example")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert 0.4 <= time.monotonic() - started < TIMEOUT
    started = time.monotonic()
    assert ask(server.address, "silent.example", tcp=True).rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started >= 0.4


def test_refusing_upstream_passes_to_the_next_at_once(zone: Zone, upstream: FakeUpstream) -> None:
    """A closed port (ICMP refused) passes to the next upstream without waiting out the timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with DnsServer([zone], listen=[("127.0.0.1", 0)], forward_timeout_s=10.0,
                   upstreams=[Upstream("127.0.0.1", closed), upstream.upstream]) as server:
        started = time.monotonic()
        assert addresses(ask(server.address, "ext.example")) == ["192.0.2.1"]
        assert time.monotonic() - started < 5.0


def test_without_upstreams_outside_names_are_refused(zone: Zone) -> None:
    """An authoritative-only server refuses names outside its zones."""
    with DnsServer([zone], listen=[("127.0.0.1", 0)]) as server:
        reply = ask(server.address, "ext.example")
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.flags & dns.flags.RA


def test_upstreams_can_change_while_running(zone: Zone, upstream: FakeUpstream) -> None:
    """Names refused without upstreams are relayed once upstreams are set, and refused again."""
    with DnsServer([zone], listen=[("127.0.0.1", 0)]) as server:
        assert ask(server.address, "ext.example").rcode() == dns.rcode.REFUSED
        server.set_upstreams([upstream.upstream])
        assert server.upstreams == [upstream.upstream]
        assert addresses(ask(server.address, "ext.example")) == ["192.0.2.1"]
        server.set_upstreams([])
        assert ask(server.address, "ext.example").rcode() == dns.rcode.REFUSED


def test_own_address_is_never_an_upstream(zone: Zone) -> None:
    """An upstream that is the server itself is skipped, so a query cannot loop: SERVFAIL."""
    with DnsServer([zone], listen=[("127.0.0.1", 0)]) as server:
        server.set_upstreams([Upstream(*server.address)])
        assert ask(server.address, "ext.example").rcode() == dns.rcode.SERVFAIL
        assert server.counters.forwarded == 1


# --- robustness -------------------------------------------------------------------------------


def test_malformed_packets_are_dropped_or_formerr(server: DnsServer) -> None:
    """Garbage and responses are dropped, broken questions get FORMERR; the server goes on."""
    host, port = server.address
    valid = dns.message.make_query(WEB, "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for junk in (b"", b"\x00", b"\xff" * 11, valid[:2] + b"\x80" + valid[3:],
                     bytes(range(256)) * 8):
            sock.sendto(junk, (host, port))
        sock.sendto(valid[:12] + b"\xc0\x0c\x00\x01\x00\x01", (host, port))
        reply = dns.message.from_wire(sock.recv(4096))
        assert reply.rcode() == dns.rcode.FORMERR
    assert addresses(ask(server.address, WEB)) == ["10.89.0.5"]
    assert server.counters.dropped >= 3
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        broken = valid[:12] + b"\x05web"  # a label cut short
        conn.sendall(len(broken).to_bytes(2, "big") + broken)
        size = int.from_bytes(conn.recv(2), "big")
        assert dns.message.from_wire(conn.recv(size)).rcode() == dns.rcode.FORMERR
        conn.sendall(b"\x00\x05hello")  # not even a header: the connection is closed
        assert conn.recv(512) == b""
    assert addresses(ask(server.address, WEB, tcp=True)) == ["10.89.0.5"]


def connect(server: DnsServer, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to the server from ``source`` (any 127/8 address is lo's)."""
    return socket.create_connection(server.address, timeout=TIMEOUT, source_address=(source, 0))


def answered(sock: socket.socket) -> bool:
    """Whether one query on ``sock`` gets its answer (False: the server closed it)."""
    query = dns.message.make_query(WEB, "A")
    try:
        dns.query.send_tcp(sock, query)
        reply, _ = dns.query.receive_tcp(sock, expiration=time.time() + TIMEOUT)
    except (EOFError, ConnectionError):
        return False
    return reply.id == query.id and addresses(reply) == ["10.89.0.5"]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (waiting at most TIMEOUT for it to)."""
    try:
        return sock.recv(512) == b""
    except ConnectionResetError:  # closed with our bytes unread: just as closed
        return True


def test_one_client_holding_many_tcp_connections_does_not_starve_another(zone: Zone) -> None:
    """64 silent connections from one address (which once blocked TCP for the node) get
    only their address's share; another address is answered at once, as is the first."""
    server = DnsServer([zone], listen=[("127.0.0.1", 0)], tcp_idle_s=60.0)  # default limits
    with server, contextlib.ExitStack() as held:
        hogs = [held.enter_context(connect(server)) for _ in range(64)]
        eventually(lambda: server.tcp_connections + server.tcp_refused == 64,
                   what="all 64 connections accepted or refused")
        assert (server.tcp_connections, server.tcp_refused) == (8, 56)
        started = time.monotonic()
        with connect(server, "127.0.0.2") as other:
            assert answered(other)
        assert time.monotonic() - started < 1.0
        served = [hog for hog in hogs if answered(hog)]
        assert len(served) == 8  # the hog is served too, within its share


def test_clients_over_their_limit_are_closed_while_others_are_served(zone: Zone) -> None:
    """Beyond max_tcp_per_client an address's new connection is closed at once, beyond
    max_tcp anyone's; once a connection ends, its place can be taken again."""
    server = DnsServer([zone], listen=[("127.0.0.1", 0)], max_tcp=4, max_tcp_per_client=2,
                       tcp_idle_s=60.0)
    with server, connect(server) as a1, connect(server) as a2, connect(server) as a3:
        assert closed_by_server(a3)
        assert answered(a1)
        assert answered(a2)
        with connect(server, "127.0.0.2") as b1, connect(server, "127.0.0.2") as b2:
            assert answered(b1)
            assert answered(b2)
            with connect(server, "127.0.0.3") as c1:  # the server is full
                assert closed_by_server(c1)
            a1.close()
            eventually(lambda: server.tcp_connections == 3, what="a1's place freed")
            with connect(server, "127.0.0.3") as c2:
                assert answered(c2)
        assert answered(a2)
        assert server.tcp_refused == 2
        assert server.errors == 0


def test_tcp_limits_default_to_the_settings() -> None:
    """A DnsServer built without TCP limits has DnsSettings' (the node passes its own)."""
    defaults = inspect.signature(DnsServer).parameters
    settings = DnsSettings()
    for name in ("max_tcp", "max_tcp_per_client", "tcp_idle_s"):
        assert defaults[name].default == getattr(settings, name), name


def test_idle_tcp_connections_are_closed(zone: Zone) -> None:
    """A connection that sends nothing, or nothing more after an answer, is closed after
    tcp_idle_s."""
    server = DnsServer([zone], listen=[("127.0.0.1", 0)], tcp_idle_s=0.3)
    with server, connect(server) as silent, connect(server) as done:
        assert answered(done)
        started = time.monotonic()
        assert closed_by_server(silent)
        assert closed_by_server(done)
        assert 0.2 <= time.monotonic() - started < TIMEOUT
        eventually(lambda: server.tcp_connections == 0, what="both connections forgotten")


def test_partial_queries_do_not_hold_a_connection(zone: Zone) -> None:
    """Half a length prefix, or a query trickled a byte at a time, is closed after
    tcp_idle_s in all, not kept alive by each byte, and frees its place."""
    server = DnsServer([zone], listen=[("127.0.0.1", 0)], max_tcp_per_client=1,
                       tcp_idle_s=0.4)
    query = dns.message.make_query(WEB, "A").to_wire()
    with server:
        with connect(server) as half:
            half.sendall(b"\x00")
            assert closed_by_server(half)
        eventually(lambda: server.tcp_connections == 0, what="the half prefix forgotten")
        with connect(server) as trickle:
            started = time.monotonic()
            gone = False
            for byte in len(query).to_bytes(2, "big") + query:  # 0.1 s apart: 3 s in all
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    trickle.send(bytes([byte]))
                if select.select([trickle], [], [], 0.1)[0]:
                    gone = closed_by_server(trickle)
                    break
            assert gone
            assert time.monotonic() - started < 1.5
        eventually(lambda: server.tcp_connections == 0, what="the trickle forgotten")
        with connect(server) as whole:  # the address's one place is free again
            assert answered(whole)


# --- listeners ---------------------------------------------------------------------------------


def bindable(address: Address) -> bool:
    """Whether both a UDP and a TCP socket can bind ``address`` (nobody holds it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT holds nothing
            udp.bind(address)
            tcp.bind(address)
    except OSError:
        return False
    return True


def test_listeners_come_and_go_while_running(server: DnsServer) -> None:
    """A second address answers once added, and is free again once removed."""
    second = server.add_listener("127.0.0.2", 0)
    assert server.addresses == [server.address, second]
    assert addresses(ask(second, WEB)) == ["10.89.0.5"]
    assert addresses(ask(second, WEB, tcp=True)) == ["10.89.0.5"]
    assert server.remove_listener(*second)
    assert bindable(second)
    assert not server.remove_listener(*second)
    assert addresses(ask(server.address, WEB)) == ["10.89.0.5"]


def test_ipv6_loopback_listener(server: DnsServer) -> None:
    """The server listens on ::1 as well as on IPv4 addresses."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback (::1) on this host")
    six = server.add_listener("::1", 0)  # where a plain socket binds, the server must too
    assert addresses(ask(six, WEB)) == ["10.89.0.5"]
    assert addresses(ask(six, WEB, tcp=True)) == ["10.89.0.5"]


def test_address_in_use_is_a_network_error(server: DnsServer) -> None:
    """Binding a port someone else holds fails with NetworkError, not a bare OSError."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        with pytest.raises(NetworkError, match="DNS cannot listen"):
            server.add_listener(*holder.getsockname())


def test_adding_an_address_twice_keeps_the_first(server: DnsServer) -> None:
    """Adding the address already listened on changes nothing (networks re-adopted at restart)."""
    assert server.add_listener(*server.address) == server.address
    assert server.addresses == [server.address]
    assert addresses(ask(server.address, WEB)) == ["10.89.0.5"]


def test_freebind_listens_on_an_address_no_interface_has_yet(server: DnsServer) -> None:
    """With freebind, a gateway address is bound before its bridge exists; without, it fails."""
    absent = "192.0.2.53"  # TEST-NET-1: no interface here holds it
    with pytest.raises(NetworkError):
        server.add_listener(absent, 0)
    bound = server.add_listener(absent, 0, freebind=True)
    assert bound[0] == absent
    assert server.remove_listener(*bound)
    if socket.has_ipv6:
        six = server.add_listener("2001:db8::53", 0, freebind=True)  # documentation prefix
        assert server.remove_listener(*six)


def test_stop_releases_every_port(zone: Zone) -> None:
    """After stop, the server's addresses can be bound by anyone."""
    server = DnsServer([zone], listen=[("127.0.0.1", 0)])
    server.start()
    address = server.address
    assert addresses(ask(address, WEB)) == ["10.89.0.5"]
    server.stop()
    assert bindable(address)
    with pytest.raises(RuntimeError):
        server.start()
