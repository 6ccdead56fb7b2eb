"""The names skiff is authoritative for, held in memory and answered without I/O.

A container group with a ``dnsNameLabel`` is reachable as
``<label>.<location>.<zone>``. The control plane knows which groups exist and
which address each one has; a :class:`Zone` is where it writes that down so
that the DNS server can answer. The zone is pure: it knows nothing of sockets
or wire formats, so its rules (what is NXDOMAIN, what is NODATA, when the SOA
serial moves) are tested on their own and the server stays a thin codec.

Reads must be cheap and never wait on a writer: every change builds a new
immutable :class:`_Snapshot` under a lock and swaps it in with one assignment,
and :meth:`Zone.resolve` only ever reads the current snapshot. Writes are rare
(groups come and go); reads are every DNS query.

The answers follow RFC 1034/2308/8020:

- A (or AAAA) for a known name; owner names match case-insensitively and a
  trailing dot is optional;
- SOA and NS at the apex, with the name server's address as glue when it lives
  inside the zone;
- NODATA (NOERROR, no answer, the SOA in the authority section) for a name
  that exists with other types, and for an *empty non-terminal* such as
  ``<location>.<zone>`` above the groups' names: answering NXDOMAIN there would
  tell resolvers that use QNAME minimisation that nothing exists below it;
- NXDOMAIN with the SOA in the authority section for an unknown name in the zone;
- REFUSED for a name outside the zone (the server forwards those instead when
  it has upstream resolvers).

Every TTL is the zone's short ``ttl`` (the SOA minimum too, which bounds how
long resolvers cache a negative answer), so a group created a moment after
someone asked for its name is found a few seconds later at most.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from skiff.core.names import normalize


class Rcode(IntEnum):
    """Response codes (RFC 1035 §4.1.1) that the server sends."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


class RRType(IntEnum):
    """The record types this zone holds, and ANY."""

    A = 1
    NS = 2
    SOA = 6
    AAAA = 28
    ANY = 255


@dataclass(frozen=True)
class Soa:
    """The data of an SOA record (RFC 1035 §3.3.13)."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True)
class Record:
    """One resource record: ``data`` is an address (A, AAAA), a name (NS) or an :class:`Soa`."""

    name: str
    rtype: RRType
    ttl: int
    data: str | Soa


@dataclass(frozen=True)
class Answer:
    """What a query gets: the rcode and the three record sections."""

    rcode: Rcode
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    #: The AA bit: true for every name inside the zone.
    authoritative: bool = False


#: An answer for names this zone does not hold (the server forwards instead,
#: when it can).
REFUSED = Answer(Rcode.REFUSED)

# RFC 1035 §2.3.4: at most 63 octets a label and 255 on the wire, which is
# 253 characters of text without the trailing dot.
_MAX_LABEL, _MAX_NAME = 63, 253
# SOA timers. Nothing transfers this zone (no secondaries), so they only need
# to be sane; the negative-caching TTL (``minimum``) is the zone's TTL.
_REFRESH, _RETRY, _EXPIRE = 3600, 600, 86400
_SERIAL_MOD = 1 << 32


def _check_name(name: str) -> None:
    """Refuse names other than labels of letters, digits, hyphens and underscores."""
    labels = name.split(".")
    if not name or len(name) > _MAX_NAME or any(
        not 0 < len(label) <= _MAX_LABEL
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in labels
    ):
        raise ValueError(f"not a valid DNS name: {name!r}")


@dataclass(frozen=True)
class _Snapshot:
    """One consistent state of the zone: records by name, empty non-terminals, serial."""

    records: Mapping[str, Record]
    #: Empty non-terminals, each with the number of held names below it.
    nonterminals: Mapping[str, int]
    serial: int


def _ancestors(name: str, origin: str) -> list[str]:
    """The names strictly between the apex and ``name``."""
    labels = name[: -len(origin) - 1].split(".")
    return [".".join(labels[i:]) + "." + origin for i in range(1, len(labels))]


class Zone:
    """An authoritative zone of A/AAAA records for name labels, safe to share between threads.

    ``origin`` is the apex (e.g. ``skiff.internal``); ``ns_name`` (default
    ``ns.<origin>``) is the name server that NS and SOA name, at ``ns_ip``
    (served as an A record when ``ns_name`` is inside the zone); ``ttl`` is
    every record's TTL in seconds. ValueError for a malformed name or address.
    """

    def __init__(self, origin: str, *, ttl: int = 5, ns_name: str | None = None,
                 ns_ip: str) -> None:
        self.origin = normalize(origin)
        _check_name(self.origin)
        self.ns_name = normalize(ns_name or f"ns.{self.origin}")
        _check_name(self.ns_name)
        if ttl < 0:
            raise ValueError(f"negative TTL: {ttl}")
        self.ttl = ttl
        self.ns_ip = str(ipaddress.ip_address(ns_ip))
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        records: dict[str, Record] = {}
        nonterminals: dict[str, int] = {}
        if self._inside(self.ns_name) and self.ns_name != self.origin:
            records[self.ns_name] = self._address_record(self.ns_name, self.ns_ip)
            nonterminals = dict.fromkeys(_ancestors(self.ns_name, self.origin), 1)
        # A serial from the clock keeps increasing across restarts of skiff,
        # as an SOA serial should (RFC 1982 arithmetic, so it may wrap).
        self._snap = _Snapshot(records, nonterminals, int(time.time()) % _SERIAL_MOD)

    def __repr__(self) -> str:
        return f"Zone({self.origin!r}, names={len(self._snap.records)}, serial={self.serial})"

    # -- reading ---------------------------------------------------------------

    @property
    def serial(self) -> int:
        """The SOA serial: it moves on every change of the zone's contents."""
        return self._snap.serial

    def covers(self, name: str) -> bool:
        """Whether ``name`` is the apex or below it, held or not."""
        return self._inside(normalize(name))

    def get(self, name: str) -> str | None:
        """The address held for ``name``, if any."""
        record = self._snap.records.get(normalize(name))
        return None if record is None else str(record.data)

    def records(self) -> dict[str, str]:
        """Every held name and its address (the name server's included)."""
        return {name: str(record.data) for name, record in self._snap.records.items()}

    def resolve(self, qname: str, qtype: int = RRType.A) -> Answer:
        """The answer to ``qname``/``qtype`` (class IN) as this zone's authority gives it."""
        name = normalize(qname)
        if not self._inside(name):
            return REFUSED
        snap = self._snap  # one read: the whole answer comes from one state
        if name == self.origin:
            soa = self._soa(snap)
            ns = Record(self.origin, RRType.NS, self.ttl, self.ns_name)
            if qtype == RRType.SOA:
                return Answer(Rcode.NOERROR, (soa,), authoritative=True)
            if qtype in (RRType.NS, RRType.ANY):
                glue = snap.records.get(self.ns_name)
                return Answer(Rcode.NOERROR, (soa, ns) if qtype == RRType.ANY else (ns,),
                              additional=() if glue is None else (glue,), authoritative=True)
            return Answer(Rcode.NOERROR, authority=(soa,), authoritative=True)
        record = snap.records.get(name)
        if record is not None and qtype in (record.rtype, RRType.ANY):
            return Answer(Rcode.NOERROR, (record,), authoritative=True)
        if record is not None or name in snap.nonterminals:
            return Answer(Rcode.NOERROR, authority=(self._soa(snap),), authoritative=True)
        return Answer(Rcode.NXDOMAIN, authority=(self._soa(snap),), authoritative=True)

    # -- writing ---------------------------------------------------------------

    def set(self, name_label_fqdn: str, ip: str) -> bool:
        """Point ``name_label_fqdn`` at ``ip`` (IPv4: A, IPv6: AAAA); true if the zone changed.

        ValueError for a name outside the zone, the apex, the name server's
        own name, a malformed name or address.
        """
        name = normalize(name_label_fqdn)
        _check_name(name)
        if not self._inside(name) or name == self.origin:
            raise ValueError(f"{name!r} is not a name below zone {self.origin!r}")
        if name == self.ns_name:
            raise ValueError(f"{name!r} is the zone's name server")
        record = self._address_record(name, ip)
        with self._lock:
            snap = self._snap
            old = snap.records.get(name)
            if old == record:
                return False
            nonterminals = snap.nonterminals
            if old is None:
                nonterminals = dict(nonterminals)
                for ancestor in _ancestors(name, self.origin):
                    nonterminals[ancestor] = nonterminals.get(ancestor, 0) + 1
            self._swap({**snap.records, name: record}, nonterminals, snap)
        self._notify()
        return True

    def remove(self, fqdn: str) -> bool:
        """Forget ``fqdn``; true if it was held (the name server's own name stays)."""
        name = normalize(fqdn)
        with self._lock:
            snap = self._snap
            if name not in snap.records or name == self.ns_name:
                return False
            records = dict(snap.records)
            del records[name]
            nonterminals = dict(snap.nonterminals)
            for ancestor in _ancestors(name, self.origin):
                nonterminals[ancestor] -= 1
                if not nonterminals[ancestor]:
                    del nonterminals[ancestor]
            self._swap(records, nonterminals, snap)
        self._notify()
        return True

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` in the writer's thread after each change (the server drops
        the answers it packed before)."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    # -- inside ----------------------------------------------------------------

    def _inside(self, name: str) -> bool:
        return name == self.origin or name.endswith("." + self.origin)

    def _address_record(self, name: str, ip: str) -> Record:
        address = ipaddress.ip_address(ip)
        rtype = RRType.A if address.version == 4 else RRType.AAAA
        return Record(name, rtype, self.ttl, str(address))

    def _swap(self, records: Mapping[str, Record], nonterminals: Mapping[str, int],
              old: _Snapshot) -> None:
        """Install the next snapshot; the caller holds the lock."""
        # The snapshot is complete before it becomes visible: readers see the
        # old state or the new one, never a mix.
        self._snap = _Snapshot(records, nonterminals, (old.serial + 1) % _SERIAL_MOD)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    def _soa(self, snap: _Snapshot) -> Record:
        soa = Soa(self.ns_name, f"hostmaster.{self.origin}", snap.serial,
                  _REFRESH, _RETRY, _EXPIRE, self.ttl)
        return Record(self.origin, RRType.SOA, self.ttl, soa)
