"""Who sent a request: the true client address, also of a request the gateway relay passed on.

A group calls the API at its gateway (``skiff serve --api-for-groups``), where a relay
(:mod:`skiff.gateway`) ends its TLS and opens a connection of its own to the API, from
the loopback. Without more, every request of every group would come from 127.0.0.1,
the address of the node itself: whatever the API records or bounds per client
(an activity log's caller address, a limit per address) would take a tenant for the
host. So the relay remembers which client each of its connections carries
(:meth:`skiff.gateway.ApiRelay.client_of`), and :class:`RelayedClients` puts that
client in the request's scope before any route reads it: ``request.client`` is the
group's address, and :func:`client_address` says it.

Nothing a client sends is trusted for this: uvicorn is run with ``proxy_headers=False``
everywhere, so an ``X-Forwarded-For`` header (which any tenant may write) changes
nothing, and the relay's answer is keyed by the connection's local address, which no
one but the kernel chooses.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

#: The relay's look-up: the local (address, port) the API sees as a connection's client
#: -> the client it relays, or None (not one of its connections).
Lookup = Callable[[str, int], tuple[str, int] | None]

#: Set in the scope of a request the relay passed on, to the relay's own (loopback)
#: address of the connection, which ``client`` no longer says.
RELAYED = "skiff.relayed_from"


def relayed(scope: Scope, lookup: Lookup | None) -> Scope:
    """``scope`` with the true client when the relay passed the connection on (marked
    :data:`RELAYED`), else as it is."""
    client = scope.get("client")
    if lookup is None or not client or RELAYED in scope:
        return scope
    found = lookup(str(client[0]), int(client[1]))
    if found is None:
        return scope
    return {**scope, "client": found, RELAYED: (client[0], client[1])}


def client_address(scope: Scope, lookup: Lookup | None) -> str | None:
    """The address of the client that sent the request of ``scope``: a group's, for one
    the relay passed on; the TCP peer's otherwise; None if the server did not say."""
    client = relayed(scope, lookup).get("client")
    return str(client[0]) if client else None


class RelayedClients:
    """ASGI middleware: the requests (and websockets) the relay passes on carry their true
    client in ``scope["client"]``. ``lookup`` is read on every request (the relay starts
    after the app is made); None: nothing is relayed."""

    def __init__(self, app: ASGIApp, lookup: Callable[[], Lookup | None]) -> None:
        self.app = app
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = relayed(scope, self.lookup())
        await self.app(scope, receive, send)
