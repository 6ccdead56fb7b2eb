"""The API relay at the groups' gateways: what knowing a relayed request's client costs.

Run: ``python3 bench/bench_relay.py [--rounds N]`` (no root: the API over the fake
engine, :func:`skiff.testing.inprocess.fake_https`, and a real
:class:`~skiff.gateway.ApiRelay` on 127.0.0.2). Figures are medians (p50) over N rounds:

- the :class:`~skiff.api.clients.RelayedClients` middleware per request, in process:
  an ASGI call of a no-op app through it (the relay's look-up, a hit and a miss)
  against the same call without it, alternating rounds, in microseconds;
- a keep-alive GET (``/metadata/endpoints``) reached directly and through the relay,
  over real TLS, in milliseconds (the client, the relay and uvicorn share one
  interpreter here: compare the two figures with each other, not with other benches).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROUNDS = 2000
GATEWAY = "127.0.0.2"


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def middleware_cost(relay: Any, relayed_from: tuple[str, int], rounds: int) -> None:
    from skiff.api.clients import RelayedClients

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    wrapped = RelayedClients(app, lambda: relay.client_of)

    async def timed(call: Callable[..., Any], client: tuple[str, int]) -> float:
        scope = {"type": "http", "client": client}
        start = time.perf_counter()
        for _ in range(100):
            await call(scope, None, None)
        return (time.perf_counter() - start) / 100

    async def run() -> None:
        plain: list[float] = []
        hit: list[float] = []
        miss: list[float] = []
        for _ in range(rounds // 10):
            plain.append(await timed(app, relayed_from))
            hit.append(await timed(wrapped, relayed_from))
            miss.append(await timed(wrapped, ("127.0.0.1", 1)))
        base = _median_us(plain)
        print(f"ASGI call, no middleware:        {base:7.2f} µs (baseline)")
        for name, samples in (("relayed (hit)", hit), ("direct (miss)", miss)):
            value = _median_us(samples)
            print(f"ASGI call, RelayedClients {name}: {value:7.2f} µs "
                  f"(+{value - base:.2f} µs, x{value / base:.2f})")

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()

    import ssl

    import httpx

    from skiff.api.tls import ensure_address_certificate
    from skiff.gateway import ApiRelay
    from skiff.testing.inprocess import fake_https
    from skiff.testing.registry import free_port

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        with fake_https(root) as https:
            def certificates(address: str) -> tuple[Path, Path]:
                files = ensure_address_certificate(root, address)
                return files.cert, files.key

            relay = ApiRelay(free_port(), ("127.0.0.1", int(https.url.rpartition(":")[2])),
                             root / "server.pem", certificates)
            https.plane.relay_clients = relay.client_of
            relay.serve(GATEWAY)
            verify = ssl.create_default_context(cafile=str(https.ca))
            try:
                timings: dict[str, list[float]] = {"direct": [], "relayed": []}
                with httpx.Client(base_url=https.url, verify=verify) as direct, \
                        httpx.Client(base_url=f"https://{GATEWAY}:{relay.port}",
                                     verify=verify) as relayed:
                    path = "/metadata/endpoints?api-version=2022-09-01"
                    for client in (direct, relayed):
                        for _ in range(50):  # warm: connections, caches
                            client.get(path).raise_for_status()
                    for _ in range(args.rounds):
                        for name, client in (("direct", direct), ("relayed", relayed)):
                            start = time.perf_counter()
                            client.get(path).raise_for_status()
                            timings[name].append(time.perf_counter() - start)
                    local = next(iter(relay._relayed))  # the relayed client's connection
                direct_ms = statistics.median(timings["direct"]) * 1000
                relayed_ms = statistics.median(timings["relayed"]) * 1000
                print(f"GET direct:         {direct_ms:6.3f} ms (baseline, {args.rounds} rounds)")
                print(f"GET via the relay:  {relayed_ms:6.3f} ms (x{relayed_ms / direct_ms:.2f})")
                middleware_cost(relay, local, args.rounds)
            finally:
                relay.close()


if __name__ == "__main__":
    main()
