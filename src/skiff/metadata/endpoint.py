"""The identity endpoint's HTTP server: one listening socket per group, one event loop.

Each group's network namespace holds a socket listening on
``169.254.169.254:80`` (made by :class:`~skiff.engine.network.networks.Networks`
inside the namespace, where a socket stays whoever uses it): a connection
accepted on it came from inside that group, so the group is known by the socket
that accepted it, never by anything the request says (its source address, a
header). The sockets are served here, by one asyncio loop in a thread of its
own, as :meth:`MetadataEndpoint.serve` hands them over and
:meth:`~MetadataEndpoint.withdraw` takes them back with the group's network.

Only ``GET /metadata/identity/oauth2/token`` is served, as Azure's IMDS serves it
(the ``Metadata: true`` header, ``api-version`` and ``resource`` required; errors
in its words, ``{"error", "error_description"}``); every other path is 404. One
request per connection; a request head must arrive whole, within 16 KiB and 10 s;
a group has at most :data:`MAX_CONNECTIONS` open at once (beyond: closed at once),
so one group cannot take the endpoint from the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from skiff.errors import NetworkError

log = logging.getLogger(__name__)

#: The address and port the endpoint has inside every group (Azure's).
ADDRESS = "169.254.169.254"
PORT = 80
TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 -- a path
#: Connections one group may hold open at once.
MAX_CONNECTIONS = 16
#: The largest request head read, and the time it has to arrive whole.
MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}


@dataclass(frozen=True)
class MetadataReply:
    """What the endpoint answers: a status and a JSON body."""

    status: int
    body: Mapping[str, Any]


def imds_error(description: str, error: str = "invalid_request",
               status: int = 400) -> MetadataReply:
    """An error as IMDS's identity endpoint words it."""
    return MetadataReply(status, {"error": error, "error_description": description})


#: Answers a token request of group ``group_id`` (its query, the names lower case), off
#: the loop: the request's header and path were checked already.
Answer = Callable[[str, Mapping[str, str]], MetadataReply]


def check_request(method: str, target: str,
                  headers: Mapping[str, str]) -> MetadataReply | dict[str, str]:
    """The query of a token request (names lower case), or the reply IMDS gives a
    request that is not one."""
    parts = urlsplit(target)
    if parts.path.rstrip("/") != TOKEN_PATH:
        return MetadataReply(404, {"error": "Not found"})
    if method != "GET":
        return MetadataReply(405, {"error": "Method not allowed"})
    if headers.get("metadata", "").strip().lower() != "true":
        return imds_error("Required metadata header not specified")
    query = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
    if not query.get("api-version"):
        return imds_error("Required query variable 'api-version' is missing")
    if not query.get("resource"):
        return imds_error("Required audience parameter not specified")
    return query


def _response(reply: MetadataReply) -> bytes:
    body = json.dumps(reply.body, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Server: skiff-imds\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(method, target, headers with lower-case names) of a request head; None if it is
    not HTTP/1.x."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover -- latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    request = lines[0].split(" ")
    if len(request) != 3 or not request[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return request[0], request[1], headers


class _Listener:
    """One group's socket being served, and its connections."""

    def __init__(self, group_id: str, server: asyncio.AbstractServer) -> None:
        self.group_id = group_id
        self.server = server
        self.open = 0


class MetadataEndpoint:
    """The identity endpoint of every group on the node. Thread safe."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._loop = asyncio.new_event_loop()
        self._listeners: dict[str, _Listener] = {}
        self._thread = threading.Thread(target=self._run, name="skiff-imds", daemon=True)
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> None:
        with self._lock:
            if self._closed:
                raise NetworkError("the identity endpoint is closed")
            if not self._started:
                self._thread.start()
                self._started = True

    def serve(self, group_id: str, sock: socket.socket) -> None:
        """Serve ``sock`` (bound inside group ``group_id``'s namespace) from now on, in
        place of any socket served for the group before."""
        self.start()
        sock.setblocking(False)
        with self._lock:
            if self._closed:
                raise NetworkError("the identity endpoint is closed")
            done = asyncio.run_coroutine_threadsafe(self._serve(group_id, sock), self._loop)
        done.result(10)

    def withdraw(self, group_id: str) -> None:
        """Stop serving the group (its network is going); nothing if it is not served."""
        with self._lock:
            if not self._started or self._closed:
                return  # nothing is served any more
            done = asyncio.run_coroutine_threadsafe(self._withdraw(group_id), self._loop)
        done.result(10)

    def groups(self) -> list[str]:
        """The groups served now."""
        return sorted(self._listeners)

    def close(self) -> None:
        """Stop serving every group and end the loop's thread. Idempotent; a group
        withdrawn afterwards is no error."""
        with self._lock:
            if self._closed:
                return
            started, self._closed = self._started, True
        if not started:
            self._loop.close()
            return
        for group_id in list(self._listeners):
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._withdraw(group_id),
                                                 self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # ---- on the loop ------------------------------------------------------------------

    async def _serve(self, group_id: str, sock: socket.socket) -> None:
        await self._withdraw(group_id)
        holder: list[_Listener] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(holder[0], reader, writer)

        server = await asyncio.start_server(handle, sock=sock, limit=MAX_HEAD_BYTES)
        listener = _Listener(group_id, server)
        holder.append(listener)
        self._listeners[group_id] = listener

    async def _withdraw(self, group_id: str) -> None:
        listener = self._listeners.pop(group_id, None)
        if listener is not None:
            # The listening socket closes now; a connection in flight ends on its own
            # (HEAD_TIMEOUT_S at most), and the namespace is let go with it.
            listener.server.close()

    async def _connection(self, listener: _Listener, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if listener.open >= MAX_CONNECTIONS:
            writer.close()
            return
        listener.open += 1
        try:
            reply = await self._reply(listener.group_id, reader)
            if reply is not None:
                writer.write(_response(reply))
                await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            listener.open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _reply(self, group_id: str, reader: asyncio.StreamReader) -> MetadataReply | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return imds_error("The request is too large", "bad_request")
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        parsed = parse_head(head[:-4])
        if parsed is None:
            return imds_error("The request is not HTTP/1.1", "bad_request")
        checked = check_request(*parsed)
        if isinstance(checked, MetadataReply):
            return checked
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._answer, group_id, checked)
        except Exception:
            log.exception("identity endpoint: the answer for group %s failed", group_id)
            return imds_error("An unexpected error occurred", "internal_error", 500)
