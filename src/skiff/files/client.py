"""A small Azure Files client (httpx and :mod:`skiff.files.auth`'s SharedKey) for
``skiff storage file|directory``: any Azure Files endpoint, skiff's or Azure's."""

from __future__ import annotations

import email.utils
import os
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from skiff.files import auth

VERSION = "2025-05-05"
CHUNK = 4 * 1024 * 1024


class FilesClientError(Exception):
    """An Azure error answer: ``code`` is Azure's (x-ms-error-code)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Entry:
    name: str
    is_directory: bool
    size: int | None


def parse_connection_string(text: str) -> dict[str, str]:
    """The connection string's fields (AccountName, AccountKey, FileEndpoint, ...)."""
    fields = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


class FilesClient:
    """``endpoint`` is the account's URL (``https://HOST:PORT/<account>`` for skiff)."""

    def __init__(self, endpoint: str, account: str, key: str, *,
                 verify: str | bool = True) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self._key = key
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) \
            else ssl.create_default_context()
        self._http = httpx.Client(verify=context if verify else False, timeout=60.0)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FilesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, share: str, path: str = "") -> str:
        url = f"{self.endpoint}/{quote(share)}"
        if path.strip("/"):
            url += "/" + quote(path.strip("/"))
        return url

    def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, content: bytes = b"",
                stream: bool = False) -> httpx.Response:
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        sent["x-ms-version"] = VERSION
        sent["x-ms-date"] = email.utils.formatdate(usegmt=True)
        if content or method in ("PUT", "POST"):
            sent["content-length"] = str(len(content))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in (params or {}).items())
        full = httpx.URL(url + (f"?{query}" if query else ""))
        raw_path = urlsplit(url).path
        pairs = auth.decoded_query(query)
        sent["authorization"] = auth.shared_key_header(self.account, self._key, method, sent,
                                                       raw_path, pairs)
        req = self._http.build_request(method, full, headers=sent, content=content)
        response = self._http.send(req, stream=stream)
        if response.status_code >= 400:
            body = response.read() if stream else response.content
            code = response.headers.get("x-ms-error-code", "")
            message = ""
            try:
                message = (ET.fromstring(body).findtext("Message") or "").split("\n")[0]  # noqa: S314
            except ET.ParseError:
                message = response.reason_phrase
            response.close()
            raise FilesClientError(response.status_code, code, message)
        return response

    def create_directory(self, share: str, path: str) -> None:
        self.request("PUT", self._url(share, path), params={"restype": "directory"},
                     headers=_smb())

    def list(self, share: str, path: str = "", *, prefix: str = "") -> Iterator[Entry]:
        marker = ""
        while True:
            params = {"restype": "directory", "comp": "list"}
            if prefix:
                params["prefix"] = prefix
            if marker:
                params["marker"] = marker
            root = ET.fromstring(self.request("GET", self._url(share, path),  # noqa: S314
                                              params=params).content)
            entries = root.find("Entries")
            for item in entries if entries is not None else []:
                size = item.findtext("Properties/Content-Length")
                yield Entry(item.findtext("Name") or "", item.tag == "Directory",
                            int(size) if size else None)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return

    def upload(self, source: Path, share: str, path: str) -> int:
        size = source.stat().st_size
        self.request("PUT", self._url(share, path),
                     headers={"x-ms-type": "file", "x-ms-content-length": str(size), **_smb()})
        with source.open("rb") as f:
            offset = 0
            while offset < size:
                data = f.read(CHUNK)
                if not data:
                    break
                self.request("PUT", self._url(share, path), params={"comp": "range"},
                             headers={"x-ms-write": "update",
                                      "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}"},
                             content=data)
                offset += len(data)
        return size

    def download(self, share: str, path: str, dest: Path) -> int:
        response = self.request("GET", self._url(share, path), stream=True)
        total = 0
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with tmp.open("wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
                    total += len(chunk)
            os.replace(tmp, dest)
        finally:
            response.close()
            tmp.unlink(missing_ok=True)
        return total

    def delete(self, share: str, path: str) -> None:
        self.request("DELETE", self._url(share, path))


def _smb() -> dict[str, str]:
    return {"x-ms-file-attributes": "None", "x-ms-file-creation-time": "now",
            "x-ms-file-last-write-time": "now", "x-ms-file-permission": "inherit"}
