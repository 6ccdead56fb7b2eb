"""Bounds every request meets before its route reads it: body size, resource group names.

A body is read into memory whole (the routes parse JSON), so its size is
bounded before it is read: a ``Content-Length`` over the limit is refused
unread, and a body sent in chunks is refused as soon as it passes the limit.
ARM refuses an invalid resource group name on every request, whatever the
resource type and method, so the check is one dependency of every route
rather than a line in each.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skiff.api.context import MAX_BODY_BYTES, plane
from skiff.errors import ArmError
from skiff.models.arm import check_resource_group_name


def _too_large() -> ArmError:
    return ArmError(400, "InvalidRequestContent",
                    f"The request content is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB.")


class BodyLimit:
    """ASGI middleware: requests whose body passes :data:`MAX_BODY_BYTES` get a 400.

    A declared length over the limit is answered at once; otherwise the body's
    chunks are counted as the route receives them, and the one that passes the
    limit raises :class:`ArmError` in the route (which answers it as any other)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            await _answer(send, _too_large())
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large()
            return message

        await self.app(scope, counted, send)


async def _answer(send: Send, error: ArmError) -> None:
    # The error body as the app's handler writes it (the app is not reached).
    body = {"error": {"code": error.code, "message": error.message}}
    response = JSONResponse(body, status_code=error.status, headers={"Connection": "close"})
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:  # pragma: no cover - a response never receives
    return {"type": "http.disconnect"}


async def check_names(request: Request) -> None:
    """A dependency of every route: the resource group the path names is valid by ARM's
    rule, whatever the method: ARM answers a GET, a list or a DELETE under an invalid name
    400 ``InvalidResourceGroup`` as it answers a PUT (not 404: no such group can exist).

    One exception: a resource group the store holds under a name the rule now refuses
    (made by a skiff from before the rule) can still be read and deleted, so that
    nothing already made becomes impossible to remove.

    A coroutine (FastAPI runs a plain function dependency in a worker thread, a hop per
    request): only that exception reads the store, in a thread of its own."""
    name = request.path_params.get("resource_group")
    if not isinstance(name, str):
        return
    try:
        check_resource_group_name(name)
    except ArmError:
        subscription = str(request.path_params.get("subscription", ""))
        if request.method == "PUT" or await asyncio.to_thread(
                plane(request).store.get_resource_group, subscription, name) is None:
            raise
