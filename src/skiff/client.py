"""A small typed HTTP client of skiff's ARM API, for the CLI and for tests.

skiff speaks the ACI REST API (``Microsoft.ContainerInstance``, api-version
2023-05-01), so the Azure SDK works against it; this client exists because
the ``skiff`` CLI needs less than the SDK and must say more when something
fails: every answer is decoded JSON (``dict``), every failure one
:class:`ApiError` with the HTTP status and the ARM code the server sent, and
nothing of httpx or websockets leaks out (their exceptions are mapped here,
at the boundary, to ``ApiError(0, "ConnectionFailed", ...)``).

Long-running operations follow ARM's contract as the SDK's poller does: poll
the ``Azure-AsyncOperation`` URL (else ``Location``, else the resource's
``provisioningState``), waiting ``Retry-After`` seconds between polls, until
the status is terminal. Links the server hands out (operations, ``nextLink``)
are only followed on the API's own origin: a link to another host is re-rooted
on the base URL, so the bearer token never travels anywhere else.

The virtual networks that private groups are placed in are
``Microsoft.Network`` resources (``virtualNetworks`` and their ``subnets``,
same api-version); the client has typed methods for them too, which answer
the resource as the API accepted it (waiting, should the API answer with an
operation, as Azure does).

Configuration comes in explicitly (:class:`SkiffClient`) or from the
environment (:meth:`SkiffClient.from_env`): ``SKIFF_URL``, ``SKIFF_TOKEN``
(else ``<data root>/admin.token``), ``SKIFF_CA`` (else ``<data root>/ca.pem``
when it exists), ``SKIFF_SUBSCRIPTION``; the data root is ``SKIFF_DATA_ROOT``.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from skiff import __version__
from skiff.errors import SkiffError
from skiff.settings import DEFAULT_DATA_ROOT

API_VERSION = "2023-05-01"
DEFAULT_URL = "https://127.0.0.1:8443"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PROVIDER = "Microsoft.ContainerInstance"
NETWORK_PROVIDER = "Microsoft.Network"

_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# Without Retry-After the SDK waits 30 s; skiff always sends 1, so 1 is the
# fallback, and a server asking for more than a minute is not believed.
_DEFAULT_RETRY_S = 1.0
_MAX_RETRY_S = 60.0
# Polls that fail in a row (connection lost, 5xx) before waiting gives up:
# a restarting server comes back within a few seconds.
_POLL_FAILURES = 5
# A nextLink chain longer than this is a server bug, not a big list.
_MAX_PAGES = 10_000
# Output frames of exec/attach: a log line or a terminal burst, well below this.
_WS_MAX_MESSAGE = 16 * 1024 * 1024

#: Called with the operation's status ("InProgress", a provisioningState) at each poll.
Progress = Callable[[str], None]


class ApiError(SkiffError):
    """The API refused (``status`` and the ARM ``code`` it answered), or could
    not be reached (``status`` 0, code ``ConnectionFailed``)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.target = target

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


class OperationFailed(ApiError):
    """A long-running operation ended Failed or Canceled, or a deployment ended
    with ``provisioningState`` Failed; code and message are the operation's error."""


class ClientConfigError(SkiffError):
    """The client's configuration is unusable: no token, an unreadable CA file."""

    code = "InvalidClientConfiguration"


@dataclass(frozen=True)
class Operation:
    """A long-running operation as the API started it."""

    #: The verb that started it (PUT, DELETE, POST).
    method: str
    #: The resource it works on (its ARM URL, without query).
    resource_url: str
    #: The HTTP status of the first answer (200, 201, 202, 204).
    status_code: int
    #: The body of the first answer ({} when there was none).
    body: dict[str, Any]
    #: The ``Azure-AsyncOperation`` URL to poll, if the API gave one.
    async_url: str | None = None
    #: The ``Location`` URL to poll, if the API gave one (and no async URL).
    location_url: str | None = None
    #: Seconds to wait between polls (``Retry-After``).
    retry_after: float = _DEFAULT_RETRY_S


class WebSocketTarget(NamedTuple):
    """Where exec and attach stream: a ``wss://`` URI and its one-time password."""

    uri: str
    password: str


def _retry_after(response: httpx.Response) -> float:
    try:
        value = float(response.headers.get("Retry-After", _DEFAULT_RETRY_S))
    except ValueError:  # an HTTP date: not worth parsing for a one-second poll
        return _DEFAULT_RETRY_S
    return min(max(value, 0.0), _MAX_RETRY_S)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_from(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` an error answer stands for (ARM body, or its status line)."""
    status = response.status_code
    code = response.reason_phrase.replace(" ", "") or f"Http{status}"
    message = f"HTTP {status} {response.reason_phrase}".strip()
    target = None
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        if text:
            message = f"{message}: {_one_line(text)[:500]}"
        return ApiError(status, code, message)
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        target = error.get("target")
    return ApiError(status, code, message, str(target) if target is not None else None)


def _json(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise ApiError(response.status_code, "InvalidResponse",
                       f"{response.request.method} {response.request.url.path} answered "
                       f"HTTP {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(response.status_code, "InvalidResponse",
                       f"{response.request.method} {response.request.url.path} answered "
                       "JSON that is not an object")
    return data


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


class SkiffClient:
    """skiff's ARM API for container groups, in the shapes of api-version 2023-05-01."""

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, timeout: float = 30,
                 transport: httpx.BaseTransport | None = None) -> SkiffClient:
        """A client configured by ``SKIFF_URL``, ``SKIFF_TOKEN``, ``SKIFF_CA``,
        ``SKIFF_SUBSCRIPTION`` and ``SKIFF_DATA_ROOT`` (see the module's docstring)."""
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

    def __enter__(self) -> SkiffClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths and requests ---------------------------------------------------

    def group_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a group, of the groups of a resource group (``name``
        None), or of the subscription's groups (both None)."""
        path = f"/subscriptions/{quote(self.subscription, safe='')}"
        if rg is not None:
            path += f"/resourceGroups/{quote(rg, safe='')}"
        path += f"/providers/{PROVIDER}/containerGroups"
        if name is not None:
            if rg is None:
                raise ValueError("a group's path needs its resource group")
            path += f"/{quote(name, safe='')}"
        return path

    def vnet_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a virtual network, of the networks of a resource group
        (``name`` None), or of the subscription's networks (both None)."""
        path = f"/subscriptions/{quote(self.subscription, safe='')}"
        if rg is not None:
            path += f"/resourceGroups/{quote(rg, safe='')}"
        path += f"/providers/{NETWORK_PROVIDER}/virtualNetworks"
        if name is not None:
            if rg is None:
                raise ValueError("a virtual network's path needs its resource group")
            path += f"/{quote(name, safe='')}"
        return path

    def subnet_url(self, rg: str, vnet: str, name: str | None = None) -> str:
        """The ARM path of a subnet, or of the subnets of a virtual network (``name`` None)."""
        path = f"{self.vnet_url(rg, vnet)}/subnets"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def subnet_id(self, rg: str, vnet: str, name: str) -> str:
        """A subnet's ARM resource id, as a group's ``subnetIds`` names it (not URL-quoted:
        an id is a name, not a path to send)."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{rg}/providers/"
                f"{NETWORK_PROVIDER}/virtualNetworks/{vnet}/subnets/{name}")

    def _container_url(self, rg: str, name: str, container: str, action: str) -> str:
        return f"{self.group_url(rg, name)}/containers/{quote(container, safe='')}/{action}"

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
        if "api-version" not in target.params:
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
            return (f"cannot verify the TLS certificate of {self.base_url} ({_one_line(text)}); "
                    "point SKIFF_CA at skiff's ca.pem")
        return f"cannot reach {self.base_url}: {_one_line(text)}"

    def _operation(self, method: str, url: str, response: httpx.Response) -> Operation:
        async_url = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location")
        return Operation(method=method, resource_url=url, status_code=response.status_code,
                         body=_json(response), async_url=async_url or None,
                         location_url=None if async_url else (location or None),
                         retry_after=_retry_after(response))

    # -- container groups -----------------------------------------------------

    def begin_create_or_update(self, rg: str, name: str, body: Mapping[str, Any]) -> Operation:
        """PUT the group; the operation to wait for (its body is the group as accepted)."""
        url = self.group_url(rg, name)
        return self._operation("PUT", url, self._send("PUT", url, json=body))

    def create_or_update(self, rg: str, name: str, body: Mapping[str, Any], *,
                         wait: bool = True, progress: Progress | None = None) -> dict[str, Any]:
        """PUT the group. With ``wait``, poll until the deployment ends and answer
        the group as it is then (:class:`OperationFailed` if it failed); else
        answer the group as accepted."""
        operation = self.begin_create_or_update(rg, name, body)
        if not wait:
            return operation.body
        self.wait(operation, progress=progress)
        group = self.get(rg, name)
        if str(group.get("properties", {}).get("provisioningState", "")).lower() == "failed":
            raise OperationFailed(200, "DeploymentFailed", _failure_message(group))
        return group

    def get(self, rg: str, name: str) -> dict[str, Any]:
        """The group (``ResourceNotFound`` 404 if there is none)."""
        return _json(self._send("GET", self.group_url(rg, name)))

    def iter_groups(self, rg: str | None = None) -> Iterator[dict[str, Any]]:
        """The groups of a resource group, or of the subscription; follows ``nextLink``."""
        return self._pages(self.group_url(rg), "groups")

    def _pages(self, first: str, what: str) -> Iterator[dict[str, Any]]:
        """The items of a list answer and of its ``nextLink`` pages."""
        url: str | httpx.URL = first
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = _json(self._send("GET", url))
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

    def update_tags(self, rg: str, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
        """PATCH the group's tags; the group."""
        return _json(self._send("PATCH", self.group_url(rg, name), json={"tags": dict(tags)}))

    def begin_delete(self, rg: str, name: str) -> Operation:
        url = self.group_url(rg, name)
        return self._operation("DELETE", url, self._send("DELETE", url))

    def delete(self, rg: str, name: str, wait: bool = True, *,
               progress: Progress | None = None) -> dict[str, Any] | None:
        """Delete the group; with ``wait``, until it is gone. The group as the
        API answered it (200), or None (202, 204: nothing to show)."""
        operation = self.begin_delete(rg, name)
        if wait:
            self.wait(operation, progress=progress)
        return operation.body or None

    def _action(self, rg: str, name: str, action: str) -> Operation:
        url = f"{self.group_url(rg, name)}/{action}"
        return self._operation("POST", url, self._send("POST", url))

    def start(self, rg: str, name: str, *, wait: bool = True,
              progress: Progress | None = None) -> None:
        """Start a stopped group's containers (long-running)."""
        operation = self._action(rg, name, "start")
        if wait:
            self.wait(operation, progress=progress)

    def restart(self, rg: str, name: str, *, wait: bool = True,
                progress: Progress | None = None) -> None:
        """Restart the group's containers in place (long-running)."""
        operation = self._action(rg, name, "restart")
        if wait:
            self.wait(operation, progress=progress)

    def stop(self, rg: str, name: str) -> None:
        """Stop the group's containers (synchronous: 204)."""
        self._action(rg, name, "stop")

    # -- virtual networks and subnets ----------------------------------------

    def _put_resource(self, url: str, body: Mapping[str, Any], *,
                      progress: Progress | None = None) -> dict[str, Any]:
        """PUT a resource that may be long-running; the resource once it is provisioned.

        skiff answers network changes at once (provisioningState Succeeded, no
        operation), and then the answer is the resource; an answer with an
        operation, as Azure's, is waited for and the resource read again."""
        operation = self._operation("PUT", url, self._send("PUT", url, json=body))
        state = str(operation.body.get("properties", {}).get("provisioningState")
                    or "Succeeded")
        if (operation.async_url is None and operation.location_url is None
                and state.lower() == "succeeded"):
            return operation.body
        self.wait(operation, progress=progress)
        return _json(self._send("GET", url))

    def _delete_resource(self, url: str, *, progress: Progress | None = None) -> None:
        """DELETE a resource and wait until it is gone (204: there was none)."""
        self.wait(self._operation("DELETE", url, self._send("DELETE", url)), progress=progress)

    def create_or_update_vnet(self, rg: str, name: str, body: Mapping[str, Any], *,
                              progress: Progress | None = None) -> dict[str, Any]:
        """PUT a virtual network (its subnets included: a PUT replaces them); the network."""
        return self._put_resource(self.vnet_url(rg, name), body, progress=progress)

    def get_vnet(self, rg: str, name: str) -> dict[str, Any]:
        """The virtual network (``ResourceNotFound`` 404 if there is none)."""
        return _json(self._send("GET", self.vnet_url(rg, name)))

    def list_vnets(self, rg: str | None = None) -> list[dict[str, Any]]:
        """Every virtual network of a resource group, or of the subscription."""
        return [*self._pages(self.vnet_url(rg), "virtual networks")]

    def delete_vnet(self, rg: str, name: str, *, progress: Progress | None = None) -> None:
        """Delete a virtual network (400 ``InUseSubnetCannotBeDeleted`` while a group is in
        one of its subnets); nothing to do if there is none."""
        self._delete_resource(self.vnet_url(rg, name), progress=progress)

    def create_or_update_subnet(self, rg: str, vnet: str, name: str, body: Mapping[str, Any],
                                *, progress: Progress | None = None) -> dict[str, Any]:
        """PUT one subnet of an existing virtual network; the subnet."""
        return self._put_resource(self.subnet_url(rg, vnet, name), body, progress=progress)

    def get_subnet(self, rg: str, vnet: str, name: str) -> dict[str, Any]:
        """The subnet (``ResourceNotFound`` 404 if it, or its network, is not there)."""
        return _json(self._send("GET", self.subnet_url(rg, vnet, name)))

    def list_subnets(self, rg: str, vnet: str) -> list[dict[str, Any]]:
        """Every subnet of a virtual network."""
        return [*self._pages(self.subnet_url(rg, vnet), "subnets")]

    def delete_subnet(self, rg: str, vnet: str, name: str, *,
                      progress: Progress | None = None) -> None:
        """Delete a subnet (400 ``InUseSubnetCannotBeDeleted`` while a group is in it)."""
        self._delete_resource(self.subnet_url(rg, vnet, name), progress=progress)

    # -- containers -----------------------------------------------------------

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
        data = _json(self._send("GET", self._container_url(rg, name, container, "logs"),
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
        data = _json(response)
        uri, password = data.get("webSocketUri"), data.get("password")
        if not isinstance(uri, str) or not uri or not isinstance(password, str):
            raise ApiError(response.status_code, "InvalidResponse",
                           "the answer has no webSocketUri and password")
        return WebSocketTarget(uri, password)

    @contextmanager
    def websocket(self, target: WebSocketTarget) -> Iterator[ClientConnection]:
        """Connect to an exec/attach stream and authenticate (the password is the
        first message, as the az CLI sends it); closed when the block ends."""
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

    def resource_group_location(self, rg: str) -> str | None:
        """The resource group's location, as az uses it for a group without
        ``--location``; None if skiff has no such group (it makes them on use)."""
        url = (f"/subscriptions/{quote(self.subscription, safe='')}"
               f"/resourcegroups/{quote(rg, safe='')}")
        try:
            data = _json(self._send("GET", url, params={"api-version": "2021-04-01"}))
        except ApiError as exc:
            if exc.status in (404, 405):
                return None
            raise
        location = data.get("location")
        return location if isinstance(location, str) and location else None

    # -- long-running operations ---------------------------------------------

    def wait(self, operation: Operation | str, *, progress: Progress | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Poll until the operation ends; its last status body (``{"status": ...}``).

        ``operation`` is what a ``begin_*`` method answered, or an
        ``Azure-AsyncOperation`` URL. Raises :class:`OperationFailed` when it
        ended Failed or Canceled."""
        if isinstance(operation, str):
            # A bare URL: the caller has had its answer a while ago, so poll at once.
            operation = Operation(method="GET", resource_url="", status_code=202, body={},
                                  async_url=operation, retry_after=0)
        deadline = None if timeout is None else time.monotonic() + timeout
        if operation.async_url:
            return self._poll_async(operation, progress, deadline)
        if operation.location_url:
            return self._poll_location(operation, progress, deadline)
        if operation.method == "PUT":
            return self._poll_resource(operation, progress, deadline)
        if operation.method == "DELETE" and operation.status_code == 202:
            return self._poll_gone(operation, progress, deadline)
        return {"status": "Succeeded"}

    def _sleep(self, seconds: float, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise ApiError(0, "OperationTimedOut", "the operation did not end in time")
        time.sleep(seconds)

    def _poll(self, url: str | httpx.URL, failures: list[int]) -> httpx.Response | None:
        """One poll; None when it failed in a way worth another try."""
        try:
            response = self._send("GET", url)
        except ApiError as exc:
            if exc.status == 0 or exc.status >= 500 or exc.status == 429:
                failures[0] += 1
                if failures[0] >= _POLL_FAILURES:
                    raise
                return None
            raise
        failures[0] = 0
        return response

    def _poll_async(self, operation: Operation, progress: Progress | None,
                    deadline: float | None) -> dict[str, Any]:
        assert operation.async_url is not None
        url, delay, failures = self._local(operation.async_url), operation.retry_after, [0]
        while True:
            self._sleep(delay, deadline)
            response = self._poll(url, failures)
            if response is None:
                continue
            data = _json(response)
            delay = _retry_after(response) if "Retry-After" in response.headers else delay
            status = str(data.get("status") or "InProgress")
            if progress is not None:
                progress(status)
            if status.lower() in _TERMINAL:
                if status.lower() != "succeeded":
                    raise _operation_failed(status, data.get("error"))
                return data

    def _poll_location(self, operation: Operation, progress: Progress | None,
                       deadline: float | None) -> dict[str, Any]:
        assert operation.location_url is not None
        url, delay, failures = self._local(operation.location_url), operation.retry_after, [0]
        while True:
            self._sleep(delay, deadline)
            response = self._poll(url, failures)
            if response is None:
                continue
            if response.status_code != 202:
                if progress is not None:
                    progress("Succeeded")
                return {"status": "Succeeded"}
            delay = _retry_after(response)
            if progress is not None:
                progress("InProgress")

    def _poll_resource(self, operation: Operation, progress: Progress | None,
                       deadline: float | None) -> dict[str, Any]:
        state = str(operation.body.get("properties", {}).get("provisioningState") or "Succeeded")
        failures = [0]
        while state.lower() not in _TERMINAL:
            self._sleep(operation.retry_after, deadline)
            response = self._poll(operation.resource_url, failures)
            if response is None:
                continue
            state = str(_json(response).get("properties", {}).get("provisioningState")
                        or "Succeeded")
            if progress is not None:
                progress(state)
        if state.lower() != "succeeded":
            raise _operation_failed(state, None)
        return {"status": state}

    def _poll_gone(self, operation: Operation, progress: Progress | None,
                   deadline: float | None) -> dict[str, Any]:
        failures = [0]
        while True:
            self._sleep(operation.retry_after, deadline)
            try:
                if self._poll(operation.resource_url, failures) is None:
                    continue
            except ApiError as exc:
                if exc.status == 404:
                    return {"status": "Succeeded"}
                raise
            if progress is not None:
                progress("Deleting")


    # Last in the class: below it, ``list`` in an annotation would mean this method.
    def list(self, rg: str | None = None) -> list[dict[str, Any]]:
        """Every group of a resource group, or of the subscription (all pages)."""
        return [*self.iter_groups(rg)]


def _operation_failed(status: str, error: Any) -> OperationFailed:
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        return OperationFailed(200, str(error.get("code") or status),
                               str(error.get("message") or f"the operation ended {status}"))
    return OperationFailed(200, "Canceled" if status.lower() == "canceled" else "OperationFailed",
                           f"the operation ended {status}")


def _failure_message(group: Mapping[str, Any]) -> str:
    """Why a deployment failed, from the events the group or its containers report."""
    props = group.get("properties", {})
    events: list[Mapping[str, Any]] = list(props.get("instanceView", {}).get("events") or [])
    for container in props.get("containers", []) or []:
        view = container.get("properties", {}).get("instanceView", {}) or {}
        events.extend(view.get("events", []) or [])
    for event in reversed(events):
        if str(event.get("type", "")).lower() == "warning" and event.get("message"):
            return str(event["message"])
    return f"the container group {group.get('name', '')} failed to deploy"
