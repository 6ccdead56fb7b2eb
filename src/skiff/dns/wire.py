"""DNS messages on the wire: the few bytes the server reads, and answers packed once.

The server's budget is a millisecond an answer at most and 5,000 answers a
second on one core. A DNS library that parses every query into objects and
packs every answer from objects costs 40 µs (dnslib) to 95 µs (dnspython) a
query in CPython, most of a core at that rate. Yet a query needs little: its
header, and the question that follows it (name, type, class). So the hot path
reads those bytes itself and looks the lower-cased question up in a table of
answers packed earlier; dnslib (the faster of the two, measured by
bench/bench_dns.py) packs each answer the first time it is asked for, into an
:class:`Template`, and again only after the zone has changed.

A template is an answer with a blank ID and its question cut out: the
question is spliced back in from the query as the client sent it. Names in
the answer are compressed into pointers to the question's labels, whose
lengths lower-casing does not change, so the spliced answer is well formed and
echoes the client's spelling of the name (which resolvers that randomise the
case of queries, "DNS 0x20", check).
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import (  # type: ignore[import-untyped]  # dnslib ships no type hints
    AAAA,
    NS,
    RR,
    SOA,
    A,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

from skiff.dns.zone import Answer, Rcode, Record, RRType, Soa

#: A query's header is 12 bytes; its question follows at this offset.
HEADER = 12
#: The payload a UDP answer may have when the query has no EDNS (RFC 1035 §4.2.1).
UDP_LIMIT = 512
#: The UDP payload we announce over EDNS: the size DNS Flag Day 2020 agreed
#: on, which avoids IP fragmentation on every usual path.
EDNS_PAYLOAD = 1232
# An OPT pseudo-record (RFC 6891 §6.1.2): root name, type 41, our payload size
# as its class, extended rcode, version 0 and flags all zero, no options.
_OPT = b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
_OPT_HEAD = b"\x00\x00\x29"
_MAX_WIRE_NAME = 255  # RFC 1035 §2.3.4


def question_end(data: bytes) -> int:
    """The offset just past the question's type and class, or -1 if the question is malformed.

    A question's name is a run of labels of at most 63 octets each, 255 in
    all, ending with the empty label. Compression pointers have no business in
    the only question of a query and count as malformed.
    """
    i, size = HEADER, len(data)
    while i < size:
        length = data[i]
        if length == 0:
            end = i + 5
            return end if end <= size and i + 1 - HEADER <= _MAX_WIRE_NAME else -1
        if length > 63:  # a pointer (0xC0) or a reserved label type
            return -1
        i += length + 1
    return -1


def labels(wire_name: bytes) -> tuple[bytes, ...]:
    """The labels of a name in wire form, which :func:`question_end` has checked."""
    out, i = [], 0
    while wire_name[i]:
        out.append(wire_name[i + 1 : i + 1 + wire_name[i]])
        i += wire_name[i] + 1
    return tuple(out)


def text(name_labels: tuple[bytes, ...]) -> str:
    """A name's text, escaping what a label may hold but text cannot (RFC 4343 §2.1).

    Zone names are letters, digits and hyphens only, so an escaped name never
    matches one; escaping keeps a label ``a.b`` from passing for two labels.
    """
    out = []
    for label in name_labels:
        part = label.decode("latin-1")
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in part):
            part = "".join(c if c.isascii() and (c.isalnum() or c in "-_")
                           else f"\\{ord(c):03d}" for c in part)
        out.append(part)
    return ".".join(out) + "."


@dataclass(frozen=True, slots=True)
class Template:
    """A packed answer without its ID and question, ready to splice into a reply."""

    #: Flag bytes (header bytes 2-3) for a query without RD, and with RD.
    flags: tuple[bytes, bytes]
    #: The four counts (header bytes 4-11), without and with our OPT record.
    counts: bytes
    counts_edns: bytes
    #: Everything after the question: answer, authority, additional sections.
    tail: bytes


def pack(question: bytes, answer: Answer, *, recursion_available: bool) -> Template:
    """Pack ``answer`` to the question ``question`` (name in wire form, lower case, type, class).

    ValueError if dnslib packs the question differently from the query's
    bytes, which would make the splice unsound (it never should).
    """
    header = DNSHeader(id=0, qr=1, aa=int(answer.authoritative),
                       ra=int(recursion_available), rcode=int(answer.rcode))
    qtype = int.from_bytes(question[-4:-2], "big")
    qclass = int.from_bytes(question[-2:], "big")
    message = DNSRecord(header, q=DNSQuestion(DNSLabel(labels(question[:-4])), qtype, qclass))
    for record in answer.answer:
        message.add_answer(_rr(record))
    for record in answer.authority:
        message.add_auth(_rr(record))
    for record in answer.additional:
        message.add_ar(_rr(record))
    packed = bytes(message.pack())
    end = HEADER + len(question)
    if packed[HEADER:end] != question:
        raise ValueError("dnslib packed the question differently from the query")
    arcount = int.from_bytes(packed[10:12], "big")
    return Template(flags=(packed[2:4], bytes((packed[2] | 0x01, packed[3]))),
                    counts=packed[4:12],
                    counts_edns=packed[4:10] + (arcount + 1).to_bytes(2, "big"),
                    tail=packed[end:])


def splice(query: bytes, end: int, template: Template) -> tuple[bytes, int]:
    """The reply to ``query`` (question ending at ``end``) from ``template``, and the
    UDP payload size the client accepts."""
    flags = template.flags[query[2] & 0x01]  # RD is copied from the query
    if query[10:12] != b"\x00\x00" and query[end : end + 3] == _OPT_HEAD:
        # The client speaks EDNS: answer with an OPT record of our own.
        limit = max(UDP_LIMIT, int.from_bytes(query[end + 3 : end + 5], "big"))
        return b"".join((query[:2], flags, template.counts_edns, query[HEADER:end],
                         template.tail, _OPT)), limit
    return b"".join((query[:2], flags, template.counts, query[HEADER:end],
                     template.tail)), UDP_LIMIT


def truncated(reply: bytes, end: int) -> bytes:
    """``reply`` cut to its header and question, with TC set: "ask again over TCP"."""
    return b"".join((reply[:2], bytes((reply[2] | 0x02, reply[3])),
                     b"\x00\x01\x00\x00\x00\x00\x00\x00", reply[HEADER:end]))


def error(query: bytes, rcode: Rcode, end: int = -1, *, recursion_available: bool = False
          ) -> bytes:
    """An empty reply with ``rcode``; the question is echoed when ``end`` says where it ends."""
    # QR set; opcode and RD copied from the query.
    flags = bytes((0x80 | (query[2] & 0x79), (0x80 if recursion_available else 0) | int(rcode)))
    if end < 0:
        return query[:2] + flags + b"\x00" * 8
    return b"".join((query[:2], flags, b"\x00\x01\x00\x00\x00\x00\x00\x00", query[HEADER:end]))


def _label(name: str) -> DNSLabel:
    return DNSLabel(tuple(part.encode("ascii") for part in name.split(".")))


def _rr(record: Record) -> RR:
    data = record.data
    if record.rtype == RRType.SOA and isinstance(data, Soa):
        rdata = SOA(_label(data.mname), _label(data.rname),
                    (data.serial, data.refresh, data.retry, data.expire, data.minimum))
    elif record.rtype == RRType.NS:
        rdata = NS(_label(str(data)))
    elif record.rtype == RRType.AAAA:
        rdata = AAAA(str(data))
    else:
        rdata = A(str(data))
    return RR(_label(record.name), int(record.rtype), ttl=record.ttl, rdata=rdata)
