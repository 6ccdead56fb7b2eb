"""Connections the data plane serves per client address.

Every connection a client keeps open costs the server memory and a place among the
requests waiting for a worker thread, so one address gets at most ``per_client`` at
once (as the DNS server bounds its TCP clients). A connection beyond is not refused
unheard: its requests are answered 503 ``ServerBusy`` (Azure Storage's answer when it
throttles; the SDK and az retry it later) and it is closed after the answer, or
after :data:`BUSY_GRACE_S` if it sends nothing. Loopback clients all count as
127.0.0.1: processes on the node share its allowance.

The count lives in the HTTP protocol instances (uvicorn's h11 protocol, subclassed
by :func:`limited_protocol`): a connection is counted from the moment its TLS
handshake completes until it closes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from skiff.files import xml as bodies

#: Seconds a connection beyond the limit may take to send its request.
BUSY_GRACE_S = 5.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ClientSlots:
    """How many connections each client address holds, at most ``per_client`` each.
    Used from the event loop's thread only."""

    def __init__(self, per_client: int) -> None:
        if per_client < 1:
            raise ValueError(f"connections per client must be at least 1, not {per_client}")
        self.per_client = per_client
        self._held: dict[str, int] = {}

    def take(self, client: str) -> bool:
        """A slot for a new connection of ``client``; False when it holds all it may."""
        held = self._held.get(client, 0)
        if held >= self.per_client:
            return False
        self._held[client] = held + 1
        return True

    def give(self, client: str) -> None:
        """A connection of ``client`` closed."""
        held = self._held.get(client, 0) - 1
        if held > 0:
            self._held[client] = held
        else:
            self._held.pop(client, None)

    def held(self, client: str) -> int:
        return self._held.get(client, 0)


def server_busy(per_client: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app answering the requests of a connection beyond the limit."""
    message = ("The server is currently unable to receive requests. Please retry your "
               f"request. (This client already has {per_client} connections open, the "
               "most one client may have.)")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())
        body = bodies.error("ServerBusy", message, request_id, now)
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/xml"), (b"x-ms-error-code", b"ServerBusy"),
            (b"x-ms-request-id", request_id.encode()),
            (b"retry-after", b"1"), (b"connection", b"close"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def limited_protocol(slots: ClientSlots) -> type[H11Protocol]:
    """uvicorn's h11 protocol, each connection counted against its client's slots."""
    busy = server_busy(slots.per_client)

    class PerClientLimited(H11Protocol):
        _slot: str | None = None
        _busy_close: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            client = self.client[0] if self.client else ""
            if slots.take(client):
                self._slot = client
            else:  # heard, answered 503, closed
                self.app = busy
                self._busy_close = self.loop.call_later(BUSY_GRACE_S, transport.close)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._slot is not None:
                slots.give(self._slot)
                self._slot = None
            if self._busy_close is not None:
                self._busy_close.cancel()
                self._busy_close = None
            super().connection_lost(exc)

    return PerClientLimited
