"""The identity endpoint of groups on a cluster, in the App Service managed identity protocol.

On the node, a group asks ``169.254.169.254`` inside its own network namespace, and the
socket that took the request names the group (:mod:`skiff.metadata.endpoint`). A Pod on
a cluster has no such address of its own: on managed clusters 169.254.169.254 is the
node's metadata service, answering with the node's identity. So a group there is given
what Azure App Service gives an app, which azure-identity's ``ManagedIdentityCredential``
(and ``DefaultAzureCredential``), MSAL's ``ManagedIdentityClient`` and ``az login
--identity`` read unchanged:

- ``IDENTITY_ENDPOINT``: the URL of the group's token endpoint, ``<identity url>/identity/
  <group uid>/token`` (the group in the path, which is no secret);
- ``IDENTITY_HEADER``: the group's secret, sent back as the ``X-IDENTITY-HEADER`` header.
  It is an HMAC of the group's uid under a key of the server's own
  (``<keys>/identity-header.key``): nothing to store, the same for every apply of the
  group (its Pod is not remade for it), and a new one when the group is made again (a
  new uid). It reaches the Pod through the group's env Secret, never its spec.

A request is ``GET ...?api-version=2019-08-01&resource=R`` with the header, and at most one
of ``client_id``, ``object_id`` (``principal_id``, App Service's older name) and
``mi_res_id`` to pick an identity. The header is compared in constant time and never
logged; the identity is picked, and the token signed, by the node endpoint's own code
(:meth:`skiff.control.identities.GroupIdentities.answer`, given IMDS's names), so the
rules and their errors are the node's. The answer is App Service's: ``access_token``,
``expires_on`` (epoch seconds, a string), ``resource``, ``token_type``, ``client_id``;
an error is ``{"statusCode", "message"}``, which MSAL quotes.

:class:`AppServiceEndpoint` holds the protocol; skiff's HTTPS listener serves it
(:mod:`skiff.api.grouptokens`), and :func:`serve_plain` on a plain-HTTP address of its
own (``serve --identity-listen``), for Pods that do not trust skiff's certificate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from skiff.core.identity import IDENTITY_ENDPOINT_VAR, IDENTITY_HEADER_VAR
from skiff.errors import NetworkError
from skiff.metadata.endpoint import MAX_CONNECTIONS as MAX_GROUP_CONNECTIONS
from skiff.metadata.endpoint import Answer, MetadataReply

log = logging.getLogger(__name__)

#: The environment variables azure-identity and MSAL read (both: App Service; beware
#: ``IMDS_ENDPOINT`` beside ``IDENTITY_ENDPOINT``, which makes them speak Azure Arc's).
ENDPOINT_VAR, HEADER_VAR = IDENTITY_ENDPOINT_VAR, IDENTITY_HEADER_VAR
#: The request header carrying the group's secret.
HEADER = "x-identity-header"
#: The one protocol version served (azure-identity's and MSAL's).
API_VERSION = "2019-08-01"
#: The key file, beside the node key, that the groups' header secrets derive from.
KEY_FILE = "identity-header.key"
#: Connections the plain listener keeps open at once per client address (a group's Pod,
#: as the node's endpoint allows a group), and in all.
MAX_CONNECTIONS, MAX_OPEN = MAX_GROUP_CONNECTIONS, 512
#: Where the endpoint answers: ``/identity/<group uid>/token``.
PATH = re.compile(r"/identity/([0-9A-Za-z-]{1,64})/token/?")
#: App Service's names of the selectors, as IMDS names them (the node's code picks).
_SELECTORS = {"client_id": "client_id", "object_id": "object_id",
              "principal_id": "object_id", "mi_res_id": "msi_res_id"}
_DOMAIN = b"skiff identity header\x00"


def path_of(uid: str) -> str:
    """The token endpoint's path for group ``uid``."""
    return f"/identity/{uid}/token"


def failure(status: int, message: str) -> MetadataReply:
    """An error in App Service's words."""
    return MetadataReply(status, {"statusCode": status, "message": message})


class AppServiceEndpoint:
    """Every group's token endpoint over one key. Thread safe."""

    def __init__(self, key: bytes, url: str) -> None:
        self._key = key
        #: Where the Pods reach skiff's ``/identity/`` (no trailing slash).
        self.url = url.rstrip("/")

    @classmethod
    def from_key_dir(cls, key_dir: Path, url: str) -> AppServiceEndpoint:
        """The endpoint over ``key_dir``'s header key (made there on first use, 0600)."""
        from skiff.store.sealing import load_key

        return cls(load_key(Path(key_dir) / KEY_FILE, create=True), url)

    def secret(self, uid: str) -> str:
        """Group ``uid``'s ``IDENTITY_HEADER``: 43 characters of base64url."""
        mac = hmac.new(self._key, _DOMAIN + uid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def endpoint(self, uid: str) -> str:
        """Group ``uid``'s ``IDENTITY_ENDPOINT``."""
        return self.url + path_of(uid)

    def reply(self, method: str, path: str, query: Iterable[tuple[str, str]],
              headers: Mapping[str, str], answer: Answer) -> MetadataReply:
        """The answer to one request (``headers`` with lower-case names), the token's
        from ``answer`` (the node endpoint's: a group's id and IMDS's query)."""
        matched = PATH.fullmatch(path)
        if matched is None:
            return failure(404, "Not found")
        if method != "GET":
            return failure(405, "Method not allowed")
        uid = matched.group(1)
        given = headers.get(HEADER, "")
        if not given:
            return failure(401, "The X-IDENTITY-HEADER header is missing")
        if not hmac.compare_digest(given.encode(), self.secret(uid).encode()):
            return failure(401, "The X-IDENTITY-HEADER header is not this group's")
        asked = {k.lower(): v for k, v in query}
        if asked.get("api-version") != API_VERSION:
            return failure(400, f"api-version must be {API_VERSION}")
        if not asked.get("resource"):
            return failure(400, "Required parameter 'resource' is missing")
        picked = {"resource": asked["resource"]}
        for name, imds in _SELECTORS.items():
            if asked.get(name):
                if picked.get(imds):  # object_id and principal_id both
                    return failure(400, "Only one of client_id, object_id and msi_res_id "
                                        "may be given")
                picked[imds] = asked[name]
        answered = answer(uid, picked)
        body = answered.body
        if answered.status != 200:
            return failure(answered.status, str(body.get("error_description")
                                                or body.get("error") or "error"))
        return MetadataReply(200, {k: body[k] for k in (
            "access_token", "expires_on", "resource", "token_type", "client_id")})


def encoded(reply: MetadataReply) -> bytes:
    return json.dumps(reply.body, separators=(",", ":")).encode()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error"}


def wsgi_app(endpoint: AppServiceEndpoint, answer: Answer) -> Any:
    """A WSGI application serving ``endpoint`` alone."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = {"x-identity-header": environ.get("HTTP_X_IDENTITY_HEADER", "")}
        try:
            reply = endpoint.reply(environ.get("REQUEST_METHOD", ""),
                                   environ.get("PATH_INFO", ""),
                                   parse_qsl(environ.get("QUERY_STRING", ""),
                                             keep_blank_values=True), headers, answer)
        except Exception:
            log.exception("identity endpoint: the answer failed")
            reply = failure(500, "An unexpected error occurred")
        body = encoded(reply)
        start_response(f"{reply.status} {_REASONS.get(reply.status, 'Error')}",
                       [("Content-Type", "application/json; charset=utf-8"),
                        ("Content-Length", str(len(body)))])
        return [body]

    return app


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, at most :data:`MAX_CONNECTIONS` of them per client
    address (a Pod's) and :data:`MAX_OPEN` in all; beyond, a connection is closed at
    once, so that one group's idle connections cannot hold every thread."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: Counter[str] = Counter()
        self._guard = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        host = str(client_address[0])
        with self._guard:
            if self._open[host] >= MAX_CONNECTIONS or self._open.total() >= MAX_OPEN:
                self.shutdown_request(request)
                return
            self._open[host] += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            host = str(client_address[0])
            with self._guard:
                self._open[host] -= 1
                if self._open[host] <= 0:
                    del self._open[host]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    """No access log on stderr (the path names a group; the header is never printed)."""

    timeout = 10  # a request head must arrive within it

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_plain(listen: str, endpoint: AppServiceEndpoint, answer: Answer) -> WSGIServer:
    """Serve ``endpoint`` over plain HTTP on ``listen`` (``HOST:PORT``; port 0: a free
    one), in a thread; ``shutdown()`` and ``server_close()`` end it. NetworkError if it
    cannot listen."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        server = make_server(host, int(port), wsgi_app(endpoint, answer),
                             server_class=_Server6 if ":" in host else _Server,
                             handler_class=_Quiet)
    except (OSError, ValueError) as exc:
        raise NetworkError(f"cannot serve the identity endpoint on {listen}: {exc}") from exc
    threading.Thread(target=server.serve_forever, name="skiff-identity-http",
                     daemon=True).start()
    return server
