"""DNS benchmark: skiff's name-label server as a resolver client sees it.

Run: ``python3 bench/bench_dns.py [--queries N] [--seconds S] [--clients C]``.
Everything is on loopback. The servers run in this process, pinned to one
CPU; the clients run in another process, pinned to another CPU when there is
one, so that the clients' work is not counted against the server and the two
do not fight over one interpreter lock. Per server:

- latency: N queries one after the other from one UDP socket (send, wait for
  the answer, next), p50/p90/p99 of the round trip. Target p50 <= 1 ms;
- throughput: C sockets, each with a few queries in flight, for S seconds:
  answers per second, and the server process's CPU time per answer, whose
  inverse is answers per second on one fully used core. Target >= 5,000/s.

Servers compared, each over a zone of 1,000 names asked for in random order:

- ``skiff``: :class:`skiff.dns.DnsServer` as it runs (packed answers kept);
- ``skiff, no answer cache``: every answer packed anew with dnslib, the cost
  of the first query for a name after a change of the zone;
- ``skiff, relayed``: names outside the zone relayed to an upstream, here a
  second skiff server in the same process (so on the same CPU);
- ``dnslib DNSServer``: dnslib's own example server framework (a thread per
  datagram) answering from the same zone: the baseline.

Before those, the cost of one answer inside the process: skiff's hot path,
and parsing a query and packing its answer with dnslib and with dnspython
(which is why skiff packs with dnslib).
"""

from __future__ import annotations

import argparse
import os
import random
import selectors
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

import dns.flags
import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dnslib import RR, A, DNSRecord  # type: ignore[import-untyped]  # no type hints
from dnslib.server import DNSLogger, DNSServer  # type: ignore[import-untyped]

from skiff.dns import DnsServer, Upstream, Zone

Address = tuple[str, int]
ORIGIN = "skiff.internal"
TARGET_P50_MS, TARGET_RATE = 1.0, 5000.0


def _names(count: int, suffix: str) -> list[str]:
    return [f"g{i}.local.{suffix}" for i in range(count)]


def _queries(names: list[str], count: int, seed: int) -> list[bytes]:
    """``count`` A queries for names drawn at random, each with a random ID."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        query = dns.message.make_query(rng.choice(names), "A")
        query.id = rng.randrange(65536)
        out.append(query.to_wire())
    return out


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


# ---- clients (run in the other process) ---------------------------------------------------


def latency_client(address: Address, queries: list[bytes], warmup: int) -> list[int]:
    """Round trips in nanoseconds, one query at a time; warm-up queries are not counted."""
    samples: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.settimeout(2.0)
        clock = time.perf_counter_ns
        for i, query in enumerate(queries):
            started = clock()
            sock.send(query)
            while True:
                reply = sock.recv(4096)
                if reply[:2] == query[:2]:
                    break
            if i >= warmup:
                samples.append(clock() - started)
    return samples


def throughput_client(address: Address, queries: list[bytes], clients: int, window: int,
                      seconds: float) -> tuple[int, float, int]:
    """Answers received, seconds taken, and windows re-sent after a silence (lost datagrams)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(clients):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(address)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    by_fd = {sock.fileno(): sock for sock in socks}
    n, k, answers, resent = len(queries), 0, 0, 0

    def fill() -> None:
        nonlocal k
        for sock in socks:
            for _ in range(window):
                sock.send(queries[k % n])
                k += 1

    started = time.perf_counter()
    deadline = started + seconds
    fill()
    while (now := time.perf_counter()) < deadline:
        events = sel.select(min(0.2, deadline - now))
        if not events:
            resent += 1
            fill()
            continue
        for key, _ in events:
            sock = by_fd[key.fd]
            while True:
                try:
                    sock.recv(4096)
                except BlockingIOError:
                    break
                answers += 1
                sock.send(queries[k % n])
                k += 1
    elapsed = time.perf_counter() - started
    for sock in socks:
        sock.close()
    return answers, elapsed, resent


# ---- servers (run here) -------------------------------------------------------------------


def _zone(names: list[str]) -> Zone:
    zone = Zone(ORIGIN, ns_ip="127.0.0.1")
    for i, name in enumerate(names):
        zone.set(name, f"10.89.{i // 250}.{i % 250 + 1}")
    return zone


@contextmanager
def skiff_server(names: list[str], **options: Any) -> Iterator[Address]:
    with DnsServer([_zone(names)], listen=[("127.0.0.1", 0)], **options) as server:
        yield server.address


@contextmanager
def relaying_server(names: list[str]) -> Iterator[Address]:
    """skiff relaying ``<name>`` to a second skiff that holds them (zone ``example.test``)."""
    upstream_zone = Zone("example.test", ns_ip="127.0.0.1")
    for i, name in enumerate(names):
        upstream_zone.set(name.replace(ORIGIN, "example.test"), f"10.90.{i // 250}.{i % 250 + 1}")
    with DnsServer([upstream_zone], listen=[("127.0.0.1", 0)]) as upstream, \
            DnsServer([_zone(names)], listen=[("127.0.0.1", 0)],
                      upstreams=[Upstream(*upstream.address)]) as server:
        yield server.address


class _ZoneResolver:
    """dnslib's resolver interface over a skiff zone (A records only, as benchmarked)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = request.q.qname
        address = self.zone.get(str(qname))
        if address is None:
            reply.header.rcode = 3
        else:
            reply.add_answer(RR(qname, 1, ttl=self.zone.ttl, rdata=A(address)))
        return reply


@contextmanager
def dnslib_server(names: list[str]) -> Iterator[Address]:
    logger = DNSLogger("-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(_ZoneResolver(_zone(names)), address="127.0.0.1", port=0, logger=logger)
    server.start_thread()
    try:
        yield "127.0.0.1", server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


# ---- in-process costs ---------------------------------------------------------------------


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(rounds // 10):
        fn()
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds * 1e6


def codec_costs(rounds: int) -> list[tuple[str, float]]:
    """Microseconds per answer: skiff's hot path, and a full parse + pack per library."""
    query = dns.message.make_query("g1.local.skiff.internal", "A").to_wire()
    server = DnsServer([_zone(_names(10, ORIGIN))])
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, "10.89.0.2")

    def with_dnslib() -> object:
        request = DNSRecord.parse(query)
        reply = request.reply()
        reply.add_answer(RR(request.q.qname, 1, ttl=5, rdata=A("10.89.0.2")))
        return reply.pack()

    def with_dnspython() -> object:
        request = dns.message.from_wire(query)
        reply = dns.message.make_response(request)
        reply.flags |= dns.flags.AA
        reply.find_rrset(reply.answer, request.question[0].name, dns.rdataclass.IN,
                         dns.rdatatype.A, create=True).add(rdata, 5)
        return reply.to_wire()

    try:
        return [("skiff hot path (DnsServer.reply, answer kept)",
                 _per_call_us(lambda: server.reply(query), rounds * 10)),
                ("dnslib: parse query, build and pack answer", _per_call_us(with_dnslib, rounds)),
                ("dnspython: parse query, build and pack answer",
                 _per_call_us(with_dnspython, rounds))]
    finally:
        server.stop()


# ---- the run ------------------------------------------------------------------------------


def measure(pool: ProcessPoolExecutor, address: Address, queries: list[bytes], args: Any
            ) -> dict[str, float]:
    warmup = min(500, len(queries) // 10)
    samples = pool.submit(latency_client, address, queries[: args.queries + warmup],
                          warmup).result()
    cpu_before = time.process_time()
    answers, elapsed, resent = pool.submit(throughput_client, address, queries, args.clients,
                                           args.window, args.seconds).result()
    cpu = time.process_time() - cpu_before
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered) / 1e6,
            "p90": ordered[int(len(ordered) * 0.9)] / 1e6,
            "p99": ordered[int(len(ordered) * 0.99)] / 1e6,
            "rate": answers / elapsed,
            "cpu_us": cpu / max(answers, 1) * 1e6,
            "resent": resent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=5000, help="sequential queries timed")
    parser.add_argument("--seconds", type=float, default=3.0, help="throughput run per server")
    parser.add_argument("--clients", type=int, default=8, help="client sockets")
    parser.add_argument("--window", type=int, default=4, help="queries in flight per socket")
    parser.add_argument("--names", type=int, default=1000, help="names in the zone")
    parser.add_argument("--no-baseline", action="store_true", help="skip dnslib's DNSServer")
    args = parser.parse_args()

    _pin(0)
    names = _names(args.names, ORIGIN)
    queries = _queries(names, max(args.queries + 500, 20000), seed=1)
    relayed = _queries(_names(args.names, "example.test"), max(args.queries + 500, 20000), 2)
    servers: list[tuple[str, Callable[[], Any], list[bytes]]] = [
        ("skiff", lambda: skiff_server(names), queries),
        ("skiff, no answer cache", lambda: skiff_server(names, cache_size=0), queries),
        ("skiff, relayed to a 2nd skiff", lambda: relaying_server(names), relayed),
    ]
    if not args.no_baseline:
        servers.append(("dnslib DNSServer (baseline)", lambda: dnslib_server(names), queries))

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; servers on CPU 0, "
          f"clients in another process on CPU {1 if (os.cpu_count() or 1) > 1 else 0}")
    print("\ncost of one answer in-process:")
    for what, us in codec_costs(20000):
        print(f"  {what:<48} {us:>7.2f} µs")

    print(f"\n{'server':<32} {'p50':>8} {'p90':>8} {'p99':>8} {'answers/s':>10} "
          f"{'CPU/answer':>11} {'on 1 core':>10}")
    results = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                             initializer=_pin, initargs=(1,)) as pool:
        for label, start, wanted in servers:
            with start() as address:
                r = measure(pool, address, wanted, args)
            results[label] = r
            lost = f"  ({int(r['resent'])} stalls)" if r["resent"] else ""
            print(f"{label:<32} {r['p50']:>6.3f}ms {r['p90']:>6.3f}ms {r['p99']:>6.3f}ms "
                  f"{r['rate']:>10,.0f} {r['cpu_us']:>9.1f}µs {1e6 / r['cpu_us']:>10,.0f}{lost}")

    skiff = results["skiff"]
    print(f"\ntargets: p50 {skiff['p50']:.3f} ms <= {TARGET_P50_MS} ms: "
          f"{'met' if skiff['p50'] <= TARGET_P50_MS else 'MISSED'}; "
          f"{1e6 / skiff['cpu_us']:,.0f} answers/s on one core >= {TARGET_RATE:,.0f}: "
          f"{'met' if 1e6 / skiff['cpu_us'] >= TARGET_RATE else 'MISSED'}")


if __name__ == "__main__":
    main()
