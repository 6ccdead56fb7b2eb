"""Unit tests for skiff.dns, no sockets: zone answers, the wire codec, the server's replies."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from skiff.dns import DnsServer, RRType, Soa, Upstream, Zone, host_nameservers, label_fqdn, wire
from skiff.dns.server import FORWARD
from skiff.dns.zone import Rcode

ORIGIN = "skiff.internal"
WEB = "web.local.skiff.internal"


@pytest.fixture
def zone() -> Zone:
    """A zone with one group's name in it."""
    z = Zone(ORIGIN, ns_ip="10.89.0.1")
    z.set(WEB, "10.89.0.5")
    return z


def soa_of(zone: Zone) -> Soa:
    """The SOA data the zone serves at its apex."""
    data = zone.resolve(ORIGIN, RRType.SOA).answer[0].data
    assert isinstance(data, Soa)
    return data


# --- the zone's answers ----------------------------------------------------------------------


def test_known_name_gets_its_a_record(zone: Zone) -> None:
    """A known name answers its address, authoritatively, with the zone's TTL."""
    answer = zone.resolve(WEB, RRType.A)
    assert answer.rcode == Rcode.NOERROR
    assert answer.authoritative
    [record] = answer.answer
    assert (record.name, record.rtype, record.ttl, record.data) == (WEB, RRType.A, 5, "10.89.0.5")
    assert answer.authority == ()


@pytest.mark.parametrize("spelling",
                         ["WEB.Local.SKIFF.internal", f"{WEB}.", "wEb.LoCaL.sKiFf.InTeRnAl."])
def test_names_match_in_any_case_and_with_a_trailing_dot(zone: Zone, spelling: str) -> None:
    """Owner names compare case-insensitively, and a trailing dot changes nothing."""
    assert zone.resolve(spelling).answer[0].data == "10.89.0.5"
    assert zone.get(spelling) == "10.89.0.5"


def test_ipv6_address_is_an_aaaa_record(zone: Zone) -> None:
    """An IPv6 address is served as AAAA, and an A query for that name is NODATA."""
    zone.set("six.local.skiff.internal", "fd00::5")
    assert zone.resolve("six.local.skiff.internal", RRType.AAAA).answer[0].rtype == RRType.AAAA
    nodata = zone.resolve("six.local.skiff.internal", RRType.A)
    assert (nodata.rcode, nodata.answer) == (Rcode.NOERROR, ())


def test_apex_has_soa_and_ns_with_glue(zone: Zone) -> None:
    """SOA and NS at the apex; the name server's address comes as glue and as its own A."""
    soa = soa_of(zone)
    assert (soa.mname, soa.rname, soa.minimum) == (
        "ns.skiff.internal", "hostmaster.skiff.internal", 5)
    ns = zone.resolve(ORIGIN, RRType.NS)
    assert [(r.rtype, r.data) for r in ns.answer] == [(RRType.NS, "ns.skiff.internal")]
    assert [(r.name, r.data) for r in ns.additional] == [("ns.skiff.internal", "10.89.0.1")]
    assert zone.resolve("ns.skiff.internal").answer[0].data == "10.89.0.1"
    assert {r.rtype for r in zone.resolve(ORIGIN, RRType.ANY).answer} == {RRType.SOA, RRType.NS}


def test_name_server_outside_the_zone_has_no_glue() -> None:
    """An out-of-zone name server is named in NS but not given an address."""
    z = Zone(ORIGIN, ns_name="dns.example.org", ns_ip="192.0.2.53")
    assert z.resolve(ORIGIN, RRType.NS).additional == ()
    assert z.records() == {}


def test_other_types_of_a_known_name_are_nodata(zone: Zone) -> None:
    """A known name asked for another type: NOERROR, no answer, the SOA in authority."""
    for qtype in (RRType.AAAA, RRType.SOA, RRType.NS, 16):
        answer = zone.resolve(WEB, qtype)
        assert (answer.rcode, answer.answer) == (Rcode.NOERROR, ())
        assert [r.rtype for r in answer.authority] == [RRType.SOA]
    assert zone.resolve(ORIGIN, RRType.A).answer == ()


def test_empty_non_terminal_is_nodata_until_its_last_name_goes(zone: Zone) -> None:
    """``<location>.<zone>`` exists while a name lies below it (RFC 8020), then is NXDOMAIN."""
    assert zone.resolve("local.skiff.internal").rcode == Rcode.NOERROR
    zone.remove(WEB)
    assert zone.resolve("local.skiff.internal").rcode == Rcode.NXDOMAIN


def test_unknown_name_in_the_zone_is_nxdomain_with_soa(zone: Zone) -> None:
    """An unknown name under the apex is NXDOMAIN, with the SOA for negative caching."""
    answer = zone.resolve("nope.local.skiff.internal")
    assert answer.rcode == Rcode.NXDOMAIN
    assert answer.authoritative
    assert [r.rtype for r in answer.authority] == [RRType.SOA]
    assert zone.resolve("x.web.local.skiff.internal").rcode == Rcode.NXDOMAIN


@pytest.mark.parametrize("name", ["example.com", "notskiff.internal", "internal", ".", ""])
def test_names_outside_the_zone_are_refused(zone: Zone, name: str) -> None:
    """Outside the zone (also a suffix not on a label boundary): REFUSED, not authoritative."""
    answer = zone.resolve(name)
    assert answer.rcode == Rcode.REFUSED
    assert not answer.authoritative
    assert not zone.covers(name)


def test_serial_moves_on_each_change_only(zone: Zone) -> None:
    """Each set or remove that changes the zone bumps the serial; a no-op does not."""
    serial = zone.serial
    assert not zone.set(WEB, "10.89.0.5")
    assert not zone.remove("nope.local.skiff.internal")
    assert zone.serial == serial == soa_of(zone).serial
    assert zone.set(WEB, "10.89.0.6")
    assert zone.set("api.local.skiff.internal", "10.89.0.7")
    assert zone.remove(WEB)
    assert zone.serial == serial + 3 == soa_of(zone).serial
    assert zone.resolve(WEB).rcode == Rcode.NXDOMAIN


@pytest.mark.parametrize(("name", "ip"), [
    ("web.local.example.com", "10.0.0.1"),      # outside
    (ORIGIN, "10.0.0.1"),                       # the apex
    ("ns.skiff.internal", "10.0.0.1"),          # the name server
    ("bad label.local.skiff.internal", "10.0.0.1"),
    ("a..skiff.internal", "10.0.0.1"),
    ("x" * 64 + ".skiff.internal", "10.0.0.1"),
    ("web.local.skiff.internal", "10.0.0.300"),
    ("web.local.skiff.internal", "web"),
])
def test_set_refuses_what_it_cannot_serve(zone: Zone, name: str, ip: str) -> None:
    """Names outside or at the apex, the NS's own name, bad labels and bad addresses: ValueError."""
    serial = zone.serial
    with pytest.raises(ValueError, match=r"."):
        zone.set(name, ip)
    assert zone.serial == serial


def test_the_name_server_record_cannot_be_removed(zone: Zone) -> None:
    """The NS's own A record stays: removing it would leave the NS without an address."""
    assert not zone.remove("ns.skiff.internal")
    assert zone.get("ns.skiff.internal") == "10.89.0.1"


def test_label_fqdn_is_label_location_zone() -> None:
    """A dnsNameLabel's FQDN is ``<label>.<location>.<zone>``, lower case, no trailing dot."""
    assert label_fqdn("MyApp", "westeurope", "Skiff.Internal.") == "myapp.westeurope.skiff.internal"


def test_listeners_hear_of_changes_only(zone: Zone) -> None:
    """Listeners are called once per change, never for a no-op, and not after removal."""
    calls: list[int] = []

    def heard() -> None:
        calls.append(zone.serial)

    zone.add_listener(heard)
    zone.set(WEB, "10.89.0.5")
    zone.set(WEB, "10.89.0.9")
    zone.remove(WEB)
    zone.remove_listener(heard)
    zone.set(WEB, "10.89.0.5")
    assert len(calls) == 2
    assert calls[0] < calls[1]


def test_concurrent_writers_and_readers_see_consistent_states() -> None:
    """Writers and readers at once: no error, every name lands, one serial step a change."""
    z = Zone(ORIGIN, ns_ip="10.89.0.1")
    start_serial, writers, names = z.serial, 4, 200
    errors: list[BaseException] = []
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(names):
            z.set(f"g{w}-{i}.local.skiff.internal", f"10.89.{w}.{i % 250 + 1}")

    def read() -> None:
        try:
            while not done.is_set():
                for w in range(writers):
                    answer = z.resolve(f"g{w}-{names // 2}.local.skiff.internal")
                    assert answer.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN)
                    assert z.resolve("local.skiff.internal").rcode in (Rcode.NOERROR,
                                                                      Rcode.NXDOMAIN)
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(z.records()) == writers * names + 1  # and ns.skiff.internal
    assert z.serial == start_serial + writers * names


# --- the wire codec --------------------------------------------------------------------------


def query(name: str, rdtype: str = "A", *, edns: bool = False, qid: int = 4242) -> bytes:
    """A query in wire form, as a stub resolver sends it."""
    message = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    message.id = qid
    return message.to_wire()


def test_question_end_finds_type_and_class() -> None:
    """The question ends after the root label and four bytes of type and class."""
    data = query("a.bc")
    assert wire.question_end(data) == 12 + len(b"\x01a\x02bc\x00") + 4 == len(data)


@pytest.mark.parametrize("data", [
    b"\x00" * 12,                                          # no question at all
    b"\x00" * 12 + b"\x03ab",                              # a label cut short
    b"\x00" * 12 + b"\x01a\x00\x00\x01",                  # type and class cut short
    b"\x00" * 12 + b"\xc0\x0c\x00\x01\x00\x01",            # a compression pointer
    b"\x00" * 12 + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # a 64-octet label
    b"\x00" * 12 + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
    + b"\x3f" + b"d" * 63 + b"\x00\x00\x01\x00\x01",       # 257 octets of name
])
def test_question_end_refuses_malformed_names(data: bytes) -> None:
    """Cut-short names, pointers, long labels and names over 255 octets are malformed."""
    assert wire.question_end(data) == -1


def test_text_escapes_dots_inside_labels() -> None:
    """A label holding a dot cannot pass for two labels of a zone name."""
    assert wire.text((b"web", b"local")) == "web.local."
    assert wire.text((b"web.local", b"x y")) == "web\\046local.x\\032y."


def test_splice_echoes_id_case_and_rd(zone: Zone) -> None:
    """A packed answer spliced into a reply carries the query's ID, spelling and RD bit."""
    q = query("WeB.Local.skiff.internal", qid=777)
    end = wire.question_end(q)
    key = q[12 : end - 4].lower() + q[end - 4 : end]
    template = wire.pack(key, zone.resolve(WEB), recursion_available=False)
    reply, limit = wire.splice(q, end, template)
    message = dns.message.from_wire(reply)
    assert message.id == 777
    assert limit == wire.UDP_LIMIT
    assert message.flags & dns.flags.AA
    assert message.flags & dns.flags.RD
    assert not message.flags & dns.flags.RA
    assert str(message.answer[0].name) == "WeB.Local.skiff.internal."
    assert message.edns == -1


def test_splice_answers_edns_with_edns(zone: Zone) -> None:
    """A query with an OPT record gets one back, and the client's payload size as the limit."""
    q = query(WEB, edns=True)
    end = wire.question_end(q)
    key = q[12 : end - 4].lower() + q[end - 4 : end]
    reply, limit = wire.splice(q, end, wire.pack(key, zone.resolve(WEB), recursion_available=True))
    message = dns.message.from_wire(reply)
    assert message.edns == 0
    assert message.payload == wire.EDNS_PAYLOAD
    assert limit == 1232  # dnspython's default payload
    assert message.flags & dns.flags.RA


def test_truncated_keeps_question_and_sets_tc() -> None:
    """A truncated reply is the header and question with TC set, and no records."""
    q = query(WEB)
    message = dns.message.from_wire(wire.truncated(q[:2] + b"\x85\x00" + q[4:], len(q)))
    assert message.flags & dns.flags.TC
    assert message.answer == []
    assert str(message.question[0].name) == f"{WEB}."


# --- the server's replies, without sockets ---------------------------------------------------


@pytest.fixture
def server(zone: Zone) -> Iterator[DnsServer]:
    """A server over the zone, not started: ``reply`` is pure."""
    s = DnsServer([zone])
    yield s
    s.stop()


def parse(reply: object) -> dns.message.Message:
    """The reply as dnspython reads it."""
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply)


def test_reply_sees_zone_changes_at_once(server: DnsServer, zone: Zone) -> None:
    """A cached answer is not served once the zone changed."""
    q = query(WEB)
    assert parse(server.reply(q)).answer[0][0].address == "10.89.0.5"
    zone.set(WEB, "10.89.0.77")
    assert parse(server.reply(q)).answer[0][0].address == "10.89.0.77"
    zone.remove(WEB)
    assert parse(server.reply(q)).rcode() == dns.rcode.NXDOMAIN


def test_reply_refuses_outside_names_without_upstreams(server: DnsServer) -> None:
    """No upstream: names outside every zone are REFUSED."""
    assert parse(server.reply(query("example.com"))).rcode() == dns.rcode.REFUSED


def test_reply_forwards_outside_names_with_upstreams(zone: Zone) -> None:
    """With upstreams, names outside every zone are for them; zone names still are not."""
    s = DnsServer([zone], upstreams=[Upstream("127.0.0.1", 5353)])
    try:
        assert s.reply(query("example.com")) is FORWARD
        assert parse(s.reply(query(WEB))).answer
    finally:
        s.stop()


def test_reply_picks_the_most_specific_zone(server: DnsServer) -> None:
    """A zone below another answers for its own names."""
    inner = Zone("west.skiff.internal", ns_ip="10.89.0.1")
    inner.set("app.west.skiff.internal", "10.90.0.1")
    server.add_zone(inner)
    assert parse(server.reply(query("app.west.skiff.internal"))).answer[0][0].address == "10.90.0.1"
    server.remove_zone(inner)
    assert parse(server.reply(query("app.west.skiff.internal"))).rcode() == dns.rcode.NXDOMAIN


def test_reply_errors_for_malformed_and_unsupported_queries(server: DnsServer) -> None:
    """No question or two: FORMERR; another opcode: NOTIMP; responses and scraps: dropped."""
    q = query(WEB)
    assert parse(server.reply(q[:4] + b"\x00\x00" + q[6:12])).rcode() == dns.rcode.FORMERR
    assert parse(server.reply(q[:4] + b"\x00\x02" + q[6:])).rcode() == dns.rcode.FORMERR
    assert parse(server.reply(q[:12] + b"\xc0\x0c\x00\x01\x00\x01")).rcode() == dns.rcode.FORMERR
    notify = q[:2] + bytes((q[2] | 0x20,)) + q[3:]  # opcode 4, NOTIFY
    assert parse(server.reply(notify)).rcode() == dns.rcode.NOTIMP
    assert server.reply(q[:2] + bytes((q[2] | 0x80,)) + q[3:]) is None
    assert server.reply(q[:11]) is None


def test_reply_never_raises_on_mangled_packets(server: DnsServer) -> None:
    """Thousands of flipped, cut and random packets: each is dropped or answered with its ID."""
    rng = random.Random(53)
    seeds = [query(WEB), query("nope.local.skiff.internal", "AAAA", edns=True),
             query(ORIGIN, "NS"), query("example.com", "MX")]
    for _ in range(5000):
        data = bytearray(rng.choice(seeds))
        match rng.randrange(4):
            case 0:
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            case 1:
                del data[rng.randrange(len(data)):]
            case 2:
                data += rng.randbytes(rng.randint(1, 40))
            case _:
                data = bytearray(rng.randbytes(rng.randint(0, 80)))
        reply = server.reply(bytes(data))
        assert reply is None or (isinstance(reply, bytes) and reply[:2] == data[:2]
                                 and reply[2] & 0x80)


# --- the host's resolvers --------------------------------------------------------------------


def test_host_nameservers_reads_resolv_conf(tmp_path: Path) -> None:
    """``nameserver`` lines, in order, at most three; comments and junk are skipped."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("# a comment\nsearch example.org\nnameserver 10.0.0.2\nnameserver bogus\n"
                    "nameserver fe80::1%eth0\nnameserver 127.0.0.53\nnameserver 10.0.0.3\n")
    assert host_nameservers(conf) == [Upstream("10.0.0.2"), Upstream("fe80::1%eth0"),
                                      Upstream("127.0.0.53")]
    assert host_nameservers(tmp_path / "missing") == []


def test_upstream_text_brackets_ipv6() -> None:
    """An upstream prints as host:port, IPv6 in brackets."""
    assert (str(Upstream("10.0.0.2")), str(Upstream("::1", 5353))) == ("10.0.0.2:53", "[::1]:5353")


@pytest.mark.parametrize("host", ["dns.example.org", "10.0.0.300", ""])
def test_upstream_must_be_an_address(host: str) -> None:
    """An upstream is an IP address: names (which would need DNS to reach DNS) are refused."""
    with pytest.raises(ValueError, match="upstream"):
        Upstream(host)


def test_rrtype_values_match_dnspython() -> None:
    """The zone's type numbers are the IANA ones."""
    for rtype in RRType:
        assert dns.rdatatype.from_text(rtype.name) == rtype.value
