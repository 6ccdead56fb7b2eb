"""The exec and attach websockets, speaking the az CLI's protocol.

``POST .../exec`` answers a websocket address and a password; the client
connects, sends the password as its first message, then its keystrokes;
the server sends the terminal's output back and closes when the command
ends. ``attach`` streams the container's output the same way.

ACI's protocol has no place for an exec's exit code: az prints the output
and ends with 0 whatever the command did. skiff puts it in the reason of the
normal close (``exit code 3``, :func:`close_reason`), which az's client
ignores, so ``skiff container exec`` can end with it.

A client that leaves (Ctrl-C, a timeout, a closed laptop) is how every
attach ends: the session ends quietly, never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from skiff.control.scrubbing import scrubbing_errors
from skiff.errors import SkiffError

router = APIRouter()
_NORMAL = 1000
_POLICY_VIOLATION = 1008
#: How long a command that closed its terminal is given to be reaped for its exit code.
_REAP_S = 5.0


def close_reason(exit_code: int | None) -> str:
    """The reason of the close that ends an exec: its exit code, when known (read back by
    :func:`skiff.client.containers.exit_code`)."""
    return "" if exit_code is None else f"exit code {exit_code}"


@router.websocket("/ws/{kind}/{session_id}")
async def session(websocket: WebSocket, kind: str, session_id: str) -> None:
    await websocket.accept()
    try:
        password = await asyncio.wait_for(websocket.receive_text(), timeout=30)
    except (TimeoutError, WebSocketDisconnect, KeyError):
        await _close(websocket, _POLICY_VIOLATION)
        return
    plane_ = websocket.app.state.plane
    found = plane_.sessions.take(session_id, password.strip())
    if found is None or found.kind != kind:
        await _close(websocket, _POLICY_VIOLATION)
        return
    reason = ""
    try:
        with scrubbing_errors(found.secrets):
            if kind == "exec":
                reason = close_reason(await _exec(websocket, found.group_uid, found.container,
                                                  found.command, (found.rows, found.cols)))
            else:
                await _until_gone(websocket,
                                  _attach(websocket, found.group_uid, found.container))
    except WebSocketDisconnect:
        return  # the client left: nothing to close, nothing to report
    except SkiffError as exc:
        with contextlib.suppress(Exception):
            await websocket.send_text(f"error: {exc.message}\r\n")
    await _close(websocket, _NORMAL, reason)


async def _close(websocket: WebSocket, code: int, reason: str = "") -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason or None)


async def _until_gone(websocket: WebSocket, work: Awaitable[None]) -> None:
    """Run ``work`` (which only sends) until it ends or the client leaves: a client gone
    is heard at once, not at the next send (an attach to a quiet container may send
    nothing for hours). WebSocketDisconnect when the client left."""
    sending = asyncio.ensure_future(work)
    listening = asyncio.ensure_future(_gone(websocket))
    try:
        done, _ = await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, listening):
            task.cancel()
    if sending in done:
        sending.result()  # its error, if any
        return
    raise WebSocketDisconnect(_NORMAL)


async def _gone(websocket: WebSocket) -> None:
    """Return once the client has left (what it says before is not listened to)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


async def _exec(websocket: WebSocket, uid: str, container: str, command: list[str],
                size: tuple[int, int]) -> int | None:
    """Run the command behind a terminal until it ends; its exit code (None if unknown)."""
    engine = websocket.app.state.plane.engine
    session = await asyncio.to_thread(engine.exec, uid, container, command, tty=True,
                                      terminal_size=size)

    async def output() -> None:
        while True:
            data = await asyncio.to_thread(session.read, 65536)
            if not data:  # the command ended
                return
            await websocket.send_bytes(data)

    async def keystrokes() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or (message.get("text") or "").encode()
                if data:
                    await asyncio.to_thread(session.write, data)

    reader = asyncio.create_task(keystrokes())
    try:
        await output()
        code: int | None = await asyncio.to_thread(session.wait, _REAP_S)
        return code
    finally:
        reader.cancel()
        await asyncio.to_thread(session.close)


async def _attach(websocket: WebSocket, uid: str, container: str) -> None:
    lines = websocket.app.state.plane.engine.attach(uid, container)
    sentinel = object()
    while True:
        line = await asyncio.to_thread(next, lines, sentinel)
        if line is sentinel:
            return
        await websocket.send_text(str(line))
