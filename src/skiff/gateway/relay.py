"""The relay that serves the API on the groups' gateways (see :mod:`skiff.gateway`).

One asyncio loop, in a thread of its own, serves every gateway's listener: each
connection accepted there is TLS-ended with the gateway's certificate, then joined
to the API by a TLS connection of its own, pinned to the API's certificate (the
one uvicorn serves: no other server is trusted, whatever listens on the loopback),
and bytes are copied both ways until either side ends. WebSockets (``az container
exec``) pass as any other bytes.

The groups share the relay, so one must not take it from the others: a client
address (a group) holds at most :data:`PER_CLIENT` connections at once and the
relay :data:`MAX_CONNECTIONS` in all (beyond either, a new one is closed at once);
a TLS handshake has :data:`HANDSHAKE_TIMEOUT_S`. What the API does with a request
(authentication, authorization, its own limits) is the API's: the relay reads none
of it.

The API sees every relayed connection come from the loopback, so the relay tells it
who is behind each: :meth:`ApiRelay.client_of` maps the local address of a connection
it opened to the API to the group's address it relays for (the middleware
:class:`skiff.api.clients.RelayedClients` asks it). Nothing in the bytes (no
``X-Forwarded-For``, which a client could write itself) carries that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from skiff.errors import NetworkError

log = logging.getLogger(__name__)

#: Connections the relay serves at once, all gateways together.
MAX_CONNECTIONS = 512
#: Connections one client address (a group) may hold at once: az keeps a few.
PER_CLIENT = 32
#: Seconds a client has to finish its TLS handshake, and the API to accept one.
HANDSHAKE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
#: Seconds the client of a connection the relay ended is still known by its local
#: address: the API may read a request the relay passed on just before the end.
CLIENT_LINGER_S = 60.0
_CHUNK = 64 * 1024
# Linux's IP_FREEBIND (include/uapi/linux/in.h): a gateway before its bridge is up.
_IP_FREEBIND = 15

#: A gateway's certificate and key files, made if needed (:func:`skiff.api.tls.
#: ensure_address_certificate`).
Certificates = Callable[[str], tuple[Path, Path]]


def listen_on(address: str, port: int) -> socket.socket:
    """A TCP socket listening on ``address``:``port``, non-blocking, bound whether or not
    an interface holds the address yet. NetworkError if it cannot be bound."""
    ip = ipaddress.ip_address(address)
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
    # and the accepted ones inherit it. Without it, Nagle held each response's second
    # TLS record for the client's delayed ACK: ≈ 40 ms a request (bench/bench_relay.py).
    sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        sock.bind((str(ip), port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise NetworkError(f"the API cannot listen on {address}:{port}: "
                           f"{exc.strerror or exc}") from exc
    return sock


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS for the groups at a gateway, with its certificate: TLS 1.2 or 1.3, and for
    1.2 ECDHE with an AEAD cipher only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # busybox's own TLS client (wget without an openssl binary, as in a busybox image)
    # sends no signature_algorithms extension, so TLS 1.2 lets the server sign its key
    # exchange with SHA-1 only, which OpenSSL 3 refuses from security level 1 up: the
    # handshake fails ("no shared cipher"). Level 0 lets that signature be made. It is
    # safe here: it bears on this context alone, for the relay's own certificate (a
    # P-256 key of skiff's CA) on a host-local gateway; the ciphers offered are still
    # ECDHE (forward secrecy) with AES-GCM or ChaCha20-Poly1305, nothing weak, and a
    # client that names its signature algorithms (az, the SDKs, curl, TLS 1.3, whose
    # suites this string does not touch) gets SHA-256 or better as before.
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    return context


def upstream_context(api_cert: Path) -> ssl.SSLContext:
    """TLS to the API that trusts its own certificate (``api_cert``, the file uvicorn
    serves) and nothing else: the relay reaches the API at an address (the loopback)
    that certificate need not name, so the certificate itself is the anchor."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(api_cert))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False  # pinned above: a name adds nothing
    return context


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close after what is buffered was sent (at most a few seconds), else cut."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncio.CancelledError):
        writer.transport.abort()


class ApiRelay:
    """The API (at ``target``) served on groups' gateways at ``port``, each with its own
    certificate from ``certificates``. Thread safe; :meth:`close` ends it."""

    def __init__(self, port: int, target: tuple[str, int], api_cert: Path,
                 certificates: Certificates, *, max_connections: int = MAX_CONNECTIONS,
                 per_client: int = PER_CLIENT) -> None:
        self.port = port
        self.target = target
        self._certificates = certificates
        self._upstream = upstream_context(api_cert)
        self._max = max_connections
        self._per_client = per_client
        self._lock = threading.Lock()
        self._servers: dict[str, asyncio.Server] = {}
        self._closed = False
        # Touched in the loop's thread only.
        self._open = 0
        self._clients: dict[str, int] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        # The local address of each connection to the API -> the client it relays for
        # (and the connection's token); the connections ended, oldest first. Read from
        # the API's threads: under the lock.
        self._relayed: dict[tuple[str, int], tuple[tuple[str, int], object]] = {}
        self._ended_at: collections.deque[tuple[float, tuple[str, int], object]] = \
            collections.deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="skiff-api-relay")
        self._thread.start()

    @property
    def gateways(self) -> frozenset[str]:
        """The addresses served now."""
        with self._lock:
            return frozenset(self._servers)

    def hosts(self) -> frozenset[str]:
        """The ``Host`` values (``address:port``) clients reach the API at through the
        relay."""
        return frozenset(f"[{a}]:{self.port}" if ":" in a else f"{a}:{self.port}"
                         for a in self.gateways)

    def serve(self, gateway: str) -> None:
        """Serve the API on ``gateway`` from now on; nothing if it is served already.
        NetworkError if it cannot listen there."""
        address = str(ipaddress.ip_address(gateway))
        with self._lock:
            if self._closed:
                raise NetworkError("the API relay is closed")
            if address in self._servers:
                return
            context = server_context(*self._certificates(address))
            sock = listen_on(address, self.port)
            try:
                started = asyncio.run_coroutine_threadsafe(
                    asyncio.start_server(partial(self._relay, address), sock=sock,
                                         ssl=context,
                                         ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                                         limit=_CHUNK),
                    self._loop)
                self._servers[address] = started.result(timeout=CONNECT_TIMEOUT_S)
            except BaseException:
                sock.close()
                raise
        log.info("the API is served to the groups at https://%s:%d/", address, self.port)

    def withdraw(self, gateway: str) -> bool:
        """Stop serving ``gateway``: its listening socket is closed when this returns (its
        open connections go on); true if it was served."""
        with self._lock:
            server = self._servers.pop(str(ipaddress.ip_address(gateway)), None)
        if server is None:
            return False

        async def stop() -> None:
            server.close()  # closes the listening socket at once, before it returns

        with contextlib.suppress(RuntimeError, TimeoutError):  # the loop ended: closed
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(CONNECT_TIMEOUT_S)
        log.info("the API is no longer served to the groups at %s", gateway)
        return True

    def client_of(self, host: str, port: int) -> tuple[str, int] | None:
        """The client (address, port) the relay passes on through its connection to the
        API from ``host``:``port`` (the address the API sees as the client), or None if
        that is no connection of the relay's. Known while it is open and
        :data:`CLIENT_LINGER_S` after."""
        with self._lock:
            found = self._relayed.get((host, port))
        return None if found is None else found[0]

    def _opened(self, local: tuple[str, int], client: tuple[str, int]) -> object:
        """Record the client behind the API connection from ``local``; its token."""
        token = object()
        with self._lock:
            self._forget_ended()
            self._relayed[local] = (client, token)
        return token

    def _ended(self, local: tuple[str, int], token: object) -> None:
        with self._lock:
            self._ended_at.append((time.monotonic(), local, token))
            self._forget_ended()

    def _forget_ended(self) -> None:
        """Forget the clients of connections ended over :data:`CLIENT_LINGER_S` ago (in
        the order they ended), unless their local address serves a newer one now."""
        expired = time.monotonic() - CLIENT_LINGER_S
        while self._ended_at and self._ended_at[0][0] < expired:
            _, local, token = self._ended_at.popleft()
            found = self._relayed.get(local)
            if found is not None and found[1] is token:
                del self._relayed[local]

    async def _relay(self, gateway: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        client_port = int(peer[1]) if peer else 0
        if self._open >= self._max or self._clients.get(client, 0) >= self._per_client:
            writer.transport.abort()  # as full as it may be: the client retries later
            return
        self._open += 1
        self._clients[client] = self._clients.get(client, 0) + 1
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        local: tuple[str, int] | None = None
        token: object = None
        try:
            try:
                api_reader, api_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.target, ssl=self._upstream, limit=_CHUNK),
                    CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.warning("the API relay at %s cannot reach the API: %s", gateway, exc)
                return
            upstream = api_writer
            self._writers.add(api_writer)
            sockname = api_writer.get_extra_info("sockname")
            local = (str(sockname[0]), int(sockname[1]))
            token = self._opened(local, (client, client_port))  # before a byte is passed
            pumps = [asyncio.ensure_future(_pump(reader, api_writer)),
                     asyncio.ensure_future(_pump(api_reader, writer))]
            # Either side's end ends the connection: TLS has no half-close to pass on.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for end in (writer, upstream):
                if end is not None:
                    await _close(end)
                    self._writers.discard(end)
            if local is not None:
                self._ended(local, token)
            self._open -= 1
            left = self._clients.get(client, 1) - 1
            if left:
                self._clients[client] = left
            else:
                self._clients.pop(client, None)

    def close(self) -> None:
        """Stop listening everywhere and cut the connections open now."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            servers = list(self._servers.values())
            self._servers.clear()

        async def end() -> None:
            for server in servers:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(end(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
