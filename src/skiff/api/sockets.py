"""The exec and attach websockets, speaking the az CLI's protocol.

``POST .../exec`` answers a websocket address and a password; the client
connects, sends the password as its first message, then its keystrokes;
the server sends the terminal's output back and closes when the command
ends. ``attach`` streams the container's output the same way.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from skiff.control.scrubbing import scrubbing_errors
from skiff.errors import SkiffError

router = APIRouter()
_POLICY_VIOLATION = 1008


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
    try:
        with scrubbing_errors(found.secrets):
            if kind == "exec":
                await _exec(websocket, found.group_uid, found.container, found.command,
                            (found.rows, found.cols))
            else:
                await _attach(websocket, found.group_uid, found.container)
    except SkiffError as exc:
        with contextlib.suppress(Exception):
            await websocket.send_text(f"error: {exc.message}\r\n")
    await _close(websocket, 1000)


async def _close(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code)


async def _exec(websocket: WebSocket, uid: str, container: str, command: list[str],
                size: tuple[int, int]) -> None:
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

