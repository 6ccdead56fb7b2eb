"""What nobody foresaw: a 500 that tells the caller nothing, and a log that tells no secret.

An unexpected exception in a route is a bug, and its traceback belongs in the
server's log; but its message may quote what the route was given (a body with
secureValues, a stored definition, a command line). :class:`Unforeseen` sits
outside every route: it catches such an exception, logs its traceback with
every secret the request could have touched scrubbed from its messages (those
of the request's body and of the container group its path names), or with the
messages left out when those secrets cannot be known, and answers 500
``InternalServerError``. Nothing reaches Starlette's last-resort handler, nor
the web server's own log of exceptions, which would print the text as is.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skiff.api.context import ControlPlane, json_body
from skiff.api.paths import canonical
from skiff.control.scrubbing import describe_failure, group_secrets, secrets_in_body

log = logging.getLogger(__name__)


def request_secrets(plane: ControlPlane, path: str, body: bytes) -> tuple[str, ...] | None:
    """The secrets a request may have handed a route: its body's, and those of the
    container group its path names; None when they cannot be known (an unreadable body,
    a store that fails)."""
    found: list[str] = []
    if body.strip():
        try:
            found.extend(secrets_in_body(json_body(body)))
        except Exception:  # not JSON: any piece of it could be a secret
            return None
    parts = canonical(path).strip("/").split("/")
    if (len(parts) >= 8 and parts[0] == "subscriptions" and parts[2] == "resourceGroups"
            and parts[6] == "containerGroups"):
        try:
            record = plane.store.get_group(parts[1], parts[3], parts[7])
        except Exception:  # the store may be what failed
            return None
        if record is not None:
            stored = group_secrets(record.body, uid=record.uid, name=record.name)
            if stored is None:
                return None
            found.extend(stored)
    return tuple(found)


class Unforeseen:
    """ASGI middleware: an exception a route did not handle is logged without secrets and
    answered 500 (if the answer has not begun; else the connection just ends)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []  # the body as the route read it (bounded by BodyLimit)
        answering = False

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception as exc:
            plane: ControlPlane = scope["app"].state.plane
            secrets = await asyncio.to_thread(request_secrets, plane, scope["path"],
                                              b"".join(chunks))
            log.error("unhandled error on %s %s\n%s", scope["method"], scope["path"],
                      describe_failure(exc, secrets))
            if not answering:
                answer = JSONResponse({"error": {
                    "code": "InternalServerError",
                    "message": "skiff hit an unexpected error; it has been logged."}},
                    status_code=500)
                await answer(scope, receiving, send)
