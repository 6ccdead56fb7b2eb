"""A group's containers: logs, and the exec and attach streams over websockets.

``exec`` and ``attach`` answer a :class:`WebSocketTarget` (a ``wss://`` URI
and its one-time password); :meth:`ContainersApi.websocket` connects to it,
sends the password first as the az CLI does, and verifies ``wss://`` with
the client's CA. websockets' exceptions become :class:`ApiError` here.
:func:`exit_code` reads an exec's exit code from the close that ends it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

import httpx

from skiff import __version__
from skiff.client.errors import ApiError, json_object
from skiff.client.groups import GroupsApi

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

# Output frames of exec/attach: a log line or a terminal burst, well below this.
_WS_MAX_MESSAGE = 16 * 1024 * 1024
# The reason of the close that ends an exec, when skiff's server knows the command's exit
# code (ACI's protocol has no place for it; az ignores close reasons).
_EXIT_REASON = re.compile(r"exit code (\d{1,3})")


def exit_code(ws: ClientConnection) -> int | None:
    """The exit code the server gave in its close of an exec stream, if it gave one."""
    close = ws.protocol.close_rcvd
    found = None if close is None else _EXIT_REASON.fullmatch(close.reason)
    return int(found.group(1)) if found else None


class WebSocketTarget(NamedTuple):
    """Where exec and attach stream: a ``wss://`` URI and its one-time password."""

    uri: str
    password: str


class ContainersApi(GroupsApi):
    """skiff's ARM API for the containers of a group."""

    def _container_url(self, rg: str, name: str, container: str, action: str) -> str:
        return f"{self.group_url(rg, name)}/containers/{quote(container, safe='')}/{action}"

    def logs(self, rg: str, name: str, container: str, tail: int | None = None,
             timestamps: bool = False, previous: bool = False) -> str:
        """The container's output (its previous instance's with ``previous``)."""
        params = {}
        if tail is not None:
            params["tail"] = str(tail)
        if timestamps:
            params["timestamps"] = "true"
        if previous:
            params["previous"] = "true"
        data = json_object(self._send("GET", self._container_url(rg, name, container, "logs"),
                                      params=params))
        content = data.get("content")
        return content if isinstance(content, str) else ""

    def exec(self, rg: str, name: str, container: str, command: str, *, rows: int = 24,
             cols: int = 80) -> WebSocketTarget:
        """Start ``command`` in the container; where its terminal streams."""
        body = {"command": command, "terminalSize": {"rows": rows, "cols": cols}}
        return self._socket(self._send("POST", self._container_url(rg, name, container, "exec"),
                                       json=body))

    def attach(self, rg: str, name: str, container: str) -> WebSocketTarget:
        """Where the container's output streams (from its start, then as written)."""
        return self._socket(self._send("POST",
                                       self._container_url(rg, name, container, "attach")))

    @staticmethod
    def _socket(response: httpx.Response) -> WebSocketTarget:
        data = json_object(response)
        uri, password = data.get("webSocketUri"), data.get("password")
        if not isinstance(uri, str) or not uri or not isinstance(password, str):
            raise ApiError(response.status_code, "InvalidResponse",
                           "the answer has no webSocketUri and password")
        return WebSocketTarget(uri, password)

    @contextmanager
    def websocket(self, target: WebSocketTarget) -> Iterator[ClientConnection]:
        """Connect to an exec/attach stream and authenticate (the password is the
        first message, as the az CLI sends it); closed when the block ends."""
        # websockets only for exec and attach: every other command starts without it.
        from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
        from websockets.sync.client import connect

        with ExitStack() as stack:
            try:
                ws = stack.enter_context(connect(
                    target.uri, ssl=self.ssl_context if target.uri.startswith("wss:") else None,
                    open_timeout=self.timeout, max_size=_WS_MAX_MESSAGE,
                    user_agent_header=f"skiff-cli/{__version__}"))
                ws.send(target.password)
            except InvalidURI as exc:
                raise ApiError(0, "InvalidResponse", f"not a websocket URI: {exc}") from exc
            except InvalidStatus as exc:
                status = exc.response.status_code
                raise ApiError(status, "WebSocketRejected",
                               f"the stream refused the connection: HTTP {status}") from exc
            except (OSError, TimeoutError, WebSocketException) as exc:
                raise ApiError(0, "ConnectionFailed", self._why(exc)) from exc
            yield ws
