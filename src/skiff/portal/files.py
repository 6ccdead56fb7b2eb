"""The portal's way to a file share's contents: the Azure Files data plane, in process.

Browsing, downloading and uploading go through the data plane's own REST API
(:class:`skiff.files.app.FilesApp`, over the node's shares) as any Azure Files client
does: each request signed with the account's key (SharedKey), a key the portal asks
the API for as the signed-in caller (``listKeys``, as the Azure portal's storage
browser does). So a caller whose role may not list the keys may not browse, and the
data plane's own checks (paths never out of the share, names, quotas) are the ones
that apply; nothing reads the share's directory behind its back. The requests go to
the ASGI app (no socket, no TLS), like :mod:`skiff.portal.arm`'s.
"""

from __future__ import annotations

import contextlib
import email.utils
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

from skiff.files import auth

VERSION = "2025-05-05"
#: The data plane's largest range write (Azure's 4 MiB).
CHUNK = 4 * 1024 * 1024


class FilesFailure(Exception):
    """An Azure Files error answer: its status, Azure's code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Entry:
    """A directory's item: a file (its size) or a directory."""

    name: str
    is_directory: bool
    size: int | None


#: ``.`` and ``..`` as a path segment, percent-encoded (see :meth:`Share._path`).
_DOTS = {".": "%2E", "..": "%2E%2E"}


@dataclass
class Share:
    """One share of one account, as its key's holder reaches it."""

    app: ASGIApp
    account: str
    key: str = field(repr=False)
    share: str
    #: The browser's (host, port): the data plane's client for these requests.
    client: tuple[str, int] = ("127.0.0.1", 0)

    def _path(self, path: str) -> str:
        """The request's path: each segment percent-encoded, ``.`` and ``..`` too, so
        that no client removes them before sending (httpx would, and the request would
        reach another place than the one signed): the data plane refuses them, 400."""
        segments = [_DOTS.get(s, quote(s, safe="")) for s in path.strip("/").split("/") if s]
        return "/".join(["", quote(self.account, safe=""), quote(self.share, safe=""),
                         *segments])

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None,
                      content: bytes = b"") -> httpx.Response:
        """One signed request; an error answer raises :class:`FilesFailure`."""
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        sent["x-ms-version"] = VERSION
        sent["x-ms-date"] = email.utils.formatdate(usegmt=True)
        if content or method == "PUT":
            sent["content-length"] = str(len(content))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in (params or {}).items())
        raw_path = self._path(path)
        sent["authorization"] = auth.shared_key_header(
            self.account, self.key, method, sent, raw_path, auth.decoded_query(query))
        transport = httpx.ASGITransport(app=self.app, client=self.client)
        async with httpx.AsyncClient(transport=transport, base_url="https://files.invalid") \
                as http:
            answer = await http.request(method, raw_path + (f"?{query}" if query else ""),
                                        headers=sent, content=content)
        if answer.status_code >= 400:
            message = answer.reason_phrase
            with contextlib.suppress(ET.ParseError):
                message = (ET.fromstring(answer.content).findtext("Message")  # noqa: S314
                           or message).split("\n")[0]
            raise FilesFailure(answer.status_code,
                               answer.headers.get("x-ms-error-code", "Error"), message)
        return answer

    async def list(self, path: str = "") -> list[Entry]:
        """A directory's items, directories first, each by name."""
        found: list[Entry] = []
        marker = ""
        while True:
            params = {"restype": "directory", "comp": "list"}
            if marker:
                params["marker"] = marker
            root = ET.fromstring((await self.request(  # noqa: S314 -- our own server's XML
                "GET", path, params=params)).content)
            entries = root.find("Entries")
            for item in entries if entries is not None else []:
                size = item.findtext("Properties/Content-Length")
                found.append(Entry(item.findtext("Name") or "", item.tag == "Directory",
                                   int(size) if size else None))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return sorted(found, key=lambda e: (not e.is_directory, e.name.lower()))

    async def size(self, path: str) -> int:
        """A file's length (HEAD)."""
        answer = await self.request("HEAD", path)
        return int(answer.headers.get("content-length", "0"))

    async def read(self, path: str, start: int = 0, length: int | None = None) -> bytes:
        """A file's bytes: all of it, or ``length`` of them from ``start`` (a Get Range)."""
        if length is None and not start:
            return (await self.request("GET", path)).content
        end = "" if length is None else str(start + length - 1)
        return (await self.request("GET", path,
                                   headers={"x-ms-range": f"bytes={start}-{end}"})).content

    async def make_directory(self, path: str) -> None:
        """Create the directory at ``path`` (its parent must exist)."""
        await self.request("PUT", path, params={"restype": "directory"}, headers=_smb())

    async def delete(self, path: str, *, directory: bool) -> None:
        """Delete the file, or the (empty) directory, at ``path``."""
        await self.request("DELETE", path,
                           params={"restype": "directory"} if directory else None)

    async def write(self, path: str, data: bytes) -> None:
        """Create (or replace) the file at ``path`` with ``data``, a range at a time."""
        await self.request("PUT", path, headers={"x-ms-type": "file",
                                                 "x-ms-content-length": str(len(data)),
                                                 **_smb()})
        for offset in range(0, len(data), CHUNK):
            piece = data[offset:offset + CHUNK]
            await self.request("PUT", path, params={"comp": "range"}, content=piece,
                               headers={"x-ms-write": "update",
                                        "x-ms-range": f"bytes={offset}-{offset + len(piece) - 1}"})


def _smb() -> dict[str, str]:
    """The SMB properties a create must give (the SDK's defaults)."""
    return {"x-ms-file-attributes": "None", "x-ms-file-creation-time": "now",
            "x-ms-file-last-write-time": "now", "x-ms-file-permission": "inherit"}
