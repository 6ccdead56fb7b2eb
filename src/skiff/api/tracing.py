"""Request ids on every answer, and every write in the activity log.

ARM gives each request three ids, and so does skiff: ``x-ms-request-id`` (new for each
request), ``x-ms-correlation-request-id`` (the client's, which ties the requests of
one command together, else a new one) and ``x-ms-client-request-id`` (the client's,
echoed). A client's id is taken only when it looks like one (:func:`client_id`: a
GUID-like token, at most 64 characters); anything else is replaced, never echoed. The
ids are in :data:`REQUEST_IDS` while the request is served, so every line the server
logs for it carries them (:mod:`skiff.api.logs`).

:class:`Tracing` (the outermost middleware) also records each write (PUT, PATCH,
DELETE, POST) whose caller was authorized in the activity log
(:mod:`skiff.store.activity`) before the answer leaves, so that a client that reads the
log right after its write finds it. A request that failed authentication or
authorization is not recorded: it did nothing, and recording it in the subscription
it named would let anyone fill another tenant's log. Routes tell who was authorized,
for what and where, through :func:`authorized`.

The client's address is :func:`client_address`'s to tell: one function, so that a
relay in front of the API can say whose request it carries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skiff.control.access import Caller
from skiff.models.activity import RequestFacts, request_events, sign_in_event, target_of

log = logging.getLogger(__name__)
#: The per-request log line's logger (at INFO: ``skiff serve -v``).
requests_log = logging.getLogger("skiff.api.requests")

#: The methods whose requests are writes, as the activity log counts them.
WRITES = frozenset({"PUT", "PATCH", "DELETE", "POST"})
#: A client's id, as accepted: a GUID, or a token of its characters and a few more.
_CLIENT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:{}-]{0,63}")
#: The most of an error answer read for its code and message.
_MAX_ERROR = 64 * 1024
_STATE = "skiff_authorized"


@dataclass(frozen=True)
class RequestIds:
    """The ids of the request being served."""

    request_id: str
    correlation_id: str
    #: The client's own id ('' when it sent none, or none that looked like one).
    client_request_id: str = ""


#: The ids of the request this task or thread serves (None: none, a background job).
REQUEST_IDS: ContextVar[RequestIds | None] = ContextVar("skiff_request_ids", default=None)


def client_id(value: str | None) -> str | None:
    """A client's request or correlation id, if it looks like one; else None."""
    if value is None:
        return None
    value = value.strip()
    return value if _CLIENT_ID.fullmatch(value) else None


def ids_for(headers: Headers) -> RequestIds:
    """The ids of a request with ``headers``: skiff's own, and the client's if valid."""
    return RequestIds(str(uuid.uuid4()),
                      client_id(headers.get("x-ms-correlation-request-id"))
                      or str(uuid.uuid4()),
                      client_id(headers.get("x-ms-client-request-id")) or "")


def client_address(scope: Scope) -> str:
    """The address the request came from: the connection's peer, which for a request a
    group sent through its gateway's API relay is the group's own address (the outer
    :class:`skiff.api.clients.RelayedClients` middleware puts it in ``scope["client"]``)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


@dataclass(frozen=True)
class Authorized:
    """Who a route let do what, where: what its write's events say."""

    caller: Caller
    action: str
    scope: str


def authorized(request: Request, caller: Caller, action: str, scope: str) -> None:
    """Tell :class:`Tracing` that the request's ``caller`` was allowed ``action`` at
    ``scope`` (an ARM id): a write it makes is recorded as that."""
    request.scope.setdefault("state", {})[_STATE] = Authorized(caller, action, scope)


def _lro_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The operation an answer's ``Azure-AsyncOperation`` points at, if it has one."""
    for name, value in headers:
        if name.lower() == b"azure-asyncoperation":
            path = urlsplit(value.decode("latin-1")).path
            return unquote(path.rsplit("/", 1)[-1]) or None
    return None


def _error_of(body: bytes) -> dict[str, Any] | None:
    """An ARM error answer's code and message (nothing else of it)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    return {k: str(error[k]) for k in ("code", "message") if k in error}


class Tracing:
    """ASGI middleware: the request ids on every answer (and in the logs while it is
    served), each authorized write in the activity log, a log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ids = ids_for(Headers(scope=scope))
        reset = REQUEST_IDS.set(ids)
        state: dict[str, Any] = scope.setdefault("state", {})
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                REQUEST_IDS.reset(reset)
            return
        began = time.time()
        method = str(scope["method"])
        extra = [(b"x-ms-request-id", ids.request_id.encode()),
                 (b"x-ms-correlation-request-id", ids.correlation_id.encode())]
        if ids.client_request_id:
            extra.append((b"x-ms-client-request-id", ids.client_request_id.encode()))
        held: Message | None = None
        chunks: list[bytes] = []
        status = 500

        async def sending(message: Message) -> None:
            nonlocal held, status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                who = state.get(_STATE) if method in WRITES else None
                if who is None or who.action.lower().endswith("/read"):  # a POSTed read
                    await send(message)
                elif status < 400:
                    await self._record(scope, ids, who, status, began,
                                       _lro_id(message["headers"]), None)
                    await send(message)
                else:  # the error's code and message go in the event: read them first
                    held = message
                return
            if held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body") and sum(map(len, chunks)) < _MAX_ERROR:
                    return
                start, held = held, None
                body = b"".join(chunks)
                await self._record(scope, ids, state[_STATE], status, began, None,
                                   _error_of(body))
                await send(start)
                await send({**message, "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            REQUEST_IDS.reset(reset)
            requests_log.info("%s %s %d %.1f ms", method, scope["path"], status,
                              (time.time() - began) * 1000,
                              extra={"request_id": ids.request_id,
                                     "correlation_id": ids.correlation_id,
                                     "client_ip": client_address(scope)})

    @staticmethod
    async def _record(scope: Scope, ids: RequestIds, who: Authorized, status: int,
                      began: float, lro_id: str | None, error: dict[str, Any] | None) -> None:
        """The write's events into the store (off the event loop); a failure is logged,
        never the request's: the write itself is done."""
        plane = scope["app"].state.plane
        facts = RequestFacts(
            caller=who.caller.client, object_id=who.caller.object_id,
            tenant_id=plane.issuer.tenant, action=who.action, scope=who.scope,
            method=str(scope["method"]), status_code=status, request_id=ids.request_id,
            correlation_id=ids.correlation_id, client_request_id=ids.client_request_id,
            client_ip=client_address(scope), began=began, ended=time.time(), lro_id=lro_id,
            error=error)
        try:
            await asyncio.to_thread(plane.store.record_events,
                                    target_of(who.scope).subscription,
                                    request_events(facts), lro_id)
        except Exception as exc:
            log.error("the activity log missed %s %s: %s", facts.method, who.scope, exc)


def record_sign_in(request: Request, *, client: str, object_id: str, succeeded: bool,
                   error_code: str = "") -> None:
    """A sign-in of a known service principal (issued or refused) in the tenant's activity
    log: its client id and outcome, never what it signed in with."""
    plane = request.app.state.plane
    ids = REQUEST_IDS.get() or ids_for(request.headers)
    event = sign_in_event(client_id=client, object_id=object_id,
                          tenant_id=plane.issuer.tenant, succeeded=succeeded,
                          error_code=error_code, request_id=ids.request_id,
                          correlation_id=ids.correlation_id,
                          client_request_id=ids.client_request_id,
                          client_ip=client_address(request.scope), at=time.time())
    try:
        plane.store.record_events("", [event])
    except Exception as exc:
        log.error("the activity log missed a sign-in of %s: %s", client, exc)
