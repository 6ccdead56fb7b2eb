"""The client's connection to the API: configuration, one request, pages, waiting.

:class:`HttpApi` holds the httpx client (bearer token, CA, timeout) and sends
every request: ``api-version`` is added unless the URL names one, transport
failures become ``ApiError(0, "ConnectionFailed", ...)`` and 4xx/5xx answers
their ARM error (:mod:`skiff.client.errors`). Links the server hands out
(operations, ``nextLink``) are only followed on the API's own origin: a link
to another host is re-rooted on the base URL, so the bearer token never
travels anywhere else. The resource methods (:mod:`skiff.client.groups`,
:mod:`skiff.client.containers`, :mod:`skiff.client.networks`) build on it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from skiff import __version__
from skiff.client.errors import ApiError, ClientConfigError, error_from, json_object, one_line
from skiff.client.polling import Operation, Poller, Progress, started

#: skiff.settings.DEFAULT_DATA_ROOT (a test holds them equal), not imported from there: the
#: node's settings are ~7 ms of every command's start.
DEFAULT_DATA_ROOT = Path("/var/lib/skiff")

API_VERSION = "2023-05-01"
DEFAULT_URL = "https://127.0.0.1:8443"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

# A nextLink chain longer than this is a server bug, not a big list.
_MAX_PAGES = 10_000


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ClientConfigError(
            f"no API token: set SKIFF_TOKEN, or make {path} readable "
            f"({exc.strerror or exc})") from exc
    if not token:
        raise ClientConfigError(f"no API token: {path} is empty (set SKIFF_TOKEN)")
    return token


def _ssl_context(ca: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ClientConfigError(f"cannot load the CA certificate {ca}: {exc}") from exc


class HttpApi:
    """Requests to skiff's ARM API, and waiting for its long-running operations."""

    def __init__(self, base_url: str, token: str, *, ca: str | None = None,
                 subscription: str = DEFAULT_SUBSCRIPTION, timeout: float = 30,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = httpx.URL(base_url.rstrip("/"))
        self.subscription = subscription
        self.timeout = timeout
        self.ssl_context = _ssl_context(ca)
        self._http = httpx.Client(
            base_url=self.base_url, verify=self.ssl_context, timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "User-Agent": f"skiff-cli/{__version__}"})
        self._poller = Poller(lambda url: self._send("GET", url), self._local)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, timeout: float = 30,
                 transport: httpx.BaseTransport | None = None) -> Self:
        """A client configured by ``SKIFF_URL``, ``SKIFF_TOKEN``, ``SKIFF_CA``,
        ``SKIFF_SUBSCRIPTION`` and ``SKIFF_DATA_ROOT`` (see :mod:`skiff.client`)."""
        env = os.environ if environ is None else environ
        root = Path(env.get("SKIFF_DATA_ROOT") or DEFAULT_DATA_ROOT)
        token = env.get("SKIFF_TOKEN") or _read_token(root / "admin.token")
        ca = env.get("SKIFF_CA") or None
        if ca is None and (root / "ca.pem").is_file():
            ca = str(root / "ca.pem")
        return cls(env.get("SKIFF_URL") or DEFAULT_URL, token, ca=ca,
                   subscription=env.get("SKIFF_SUBSCRIPTION") or DEFAULT_SUBSCRIPTION,
                   timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------

    def resource_url(self, resource_type: str, what: str, rg: str | None = None,
                     name: str | None = None) -> str:
        """The ARM path of a resource of ``resource_type`` (``Provider/type``), of those of
        a resource group (``name`` None), or of the subscription's (both None); ``what``
        names the resource in the error of a name without its resource group."""
        path = f"/subscriptions/{quote(self.subscription, safe='')}"
        if rg is not None:
            path += f"/resourceGroups/{quote(rg, safe='')}"
        path += f"/providers/{resource_type}"
        if name is not None:
            if rg is None:
                raise ValueError(f"{what} path needs its resource group")
            path += f"/{quote(name, safe='')}"
        return path

    def _local(self, link: str) -> httpx.URL:
        """A link the server handed out, on the API's own origin."""
        url = self.base_url.join(link)
        if (url.scheme, url.host, url.port) != (self.base_url.scheme, self.base_url.host,
                                                 self.base_url.port):
            url = self.base_url.copy_with(raw_path=url.raw_path)
        return url

    def _send(self, method: str, url: str | httpx.URL, *, json: Any = None,
              params: Mapping[str, str] | None = None) -> httpx.Response:
        """One request; transport failures become ``ApiError(0, ...)``, 4xx/5xx
        their ARM error."""
        query = dict(params or {})
        target = url if isinstance(url, httpx.URL) else httpx.URL(url)
        if "api-version" not in target.params and "api-version" not in query:
            query["api-version"] = API_VERSION
        try:
            response = self._http.request(method, url, json=json, params=query or None)
        except httpx.TimeoutException as exc:
            raise ApiError(0, "ConnectionFailed",
                           f"{self.base_url} did not answer {method} within "
                           f"{self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise ApiError(0, "ConnectionFailed", self._why(exc)) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def _why(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc.__context__, ssl.SSLError):
            return (f"cannot verify the TLS certificate of {self.base_url} ({one_line(text)}); "
                    "point SKIFF_CA at skiff's ca.pem")
        return f"cannot reach {self.base_url}: {one_line(text)}"

    def _pages(self, first: str, what: str) -> Iterator[dict[str, Any]]:
        """The items of a list answer and of its ``nextLink`` pages."""
        url: str | httpx.URL = first
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = json_object(self._send("GET", url))
            value = page.get("value") or []
            if not isinstance(value, list):
                raise ApiError(200, "InvalidResponse", "a list answer's value is not a list")
            yield from (item for item in value if isinstance(item, dict))
            link = page.get("nextLink")
            if not link or link in seen:
                return
            seen.add(link)
            url = self._local(str(link))
        raise ApiError(200, "InvalidResponse", f"more than {_MAX_PAGES} pages of {what}")

    # -- long-running operations ---------------------------------------------

    def _operation(self, method: str, url: str, *, json: Any = None) -> Operation:
        """Send ``method`` to ``url``; the operation its answer started."""
        return started(method, url, self._send(method, url, json=json))

    def wait(self, operation: Operation | str, *, progress: Progress | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Poll until the operation ends; its last status body (``{"status": ...}``).

        ``operation`` is what a ``begin_*`` method answered, or an
        ``Azure-AsyncOperation`` URL. Raises :class:`OperationFailed` when it
        ended Failed or Canceled (see :mod:`skiff.client.polling`)."""
        return self._poller.wait(operation, progress=progress, timeout=timeout)
