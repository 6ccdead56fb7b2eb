"""What every route needs: the store, the engine, the reconciler, the settings.

One :class:`ControlPlane` per server, built by the app factory's caller and
reached from routes through ``request.app.state.plane``; no globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from skiff.api.clients import Lookup, client_address
from skiff.api.listing import Renders
from skiff.api.tracing import authorized
from skiff.control.access import Access, Caller, authorization_failed, scope_of
from skiff.control.identities import GroupIdentities
from skiff.control.identity import Issuer, TokenRejected, looks_like_jwt
from skiff.control.ngroups import NGroups
from skiff.control.reconciler import Reconciler
from skiff.control.sampling import Sampler
from skiff.control.servicelog import ServiceLog
from skiff.control.standby import StandbyPools
from skiff.control.storage import StorageService
from skiff.control.telemetry import Telemetry
from skiff.core.engine import Engine
from skiff.errors import ArmError
from skiff.metadata.appservice import AppServiceEndpoint
from skiff.settings import Settings
from skiff.store import Store
from skiff.store.timeseries import MetricsFile

API_VERSION = "2023-05-01"
#: Azure's resource manager audiences: a token for them is one for skiff's API too.
AZURE_AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
PROVIDER = "Microsoft.ContainerInstance"
#: Seconds an exec or attach session's websocket address stays valid.
SESSION_TTL_S = 300.0


@dataclass
class Session:
    """An exec or attach request, waiting for its websocket."""

    kind: str  # "exec" | "attach"
    group_uid: str
    container: str
    password: str = field(repr=False)
    command: list[str] = field(default_factory=list)
    rows: int = 24
    cols: int = 80
    expires: float = 0.0
    #: The group's secrets, scrubbed from an engine's error the session answers (None:
    #: unknown, so such an error tells its code only).
    secrets: tuple[str, ...] | None = field(default=(), repr=False)


class Sessions:
    """Single-use exec/attach sessions, each behind a random password."""

    def __init__(self) -> None:
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def add(self, session: Session) -> str:
        session_id = secrets.token_urlsafe(16)
        session.expires = time.monotonic() + SESSION_TTL_S
        with self._lock:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v.expires > now}
            self._items[session_id] = session
        return session_id

    def take(self, session_id: str, password: str) -> Session | None:
        with self._lock:
            session = self._items.get(session_id)
            if session is None or session.expires < time.monotonic():
                return None
            if not hmac.compare_digest(session.password.encode(), password.encode()):
                return None
            del self._items[session_id]
            return session


@dataclass
class ControlPlane:
    settings: Settings
    store: Store
    engine: Engine
    reconciler: Reconciler
    #: https://host:port the server is reached at: for operation and websocket URLs.
    base_url: str
    sessions: Sessions = field(default_factory=Sessions)
    #: Storage accounts and file shares (None: this plane serves none, the
    #: Microsoft.Storage routes answer 503).
    storage: StorageService | None = None
    #: Groups' managed identities and their tokens (None: this plane has none, a group
    #: that asks for one is refused).
    identities: GroupIdentities | None = None
    #: The groups' token endpoint in the App Service protocol (the kubernetes backend's,
    #: ``serve --identity-url``): None where groups get none (``/identity/`` is 404).
    app_service: AppServiceEndpoint | None = None
    #: The other addresses (``host:port``) the API is reached at now: the groups'
    #: gateways, when it is served to them (:mod:`skiff.gateway`). None: only base_url.
    api_hosts: Callable[[], Collection[str]] | None = None
    #: The relay's look-up of the client behind one of its connections to the API
    #: (:meth:`skiff.gateway.ApiRelay.client_of`). None: the API is not relayed.
    relay_clients: Lookup | None = None

    #: The containers' metrics over time (None: not kept, ``Microsoft.Insights/metrics``
    #: answers every point empty), and the sampler writing them.
    metrics: MetricsFile | None = None
    sampler: Sampler | None = None
    #: The operator's Prometheus metrics (:mod:`skiff.api.prometheus`).
    telemetry: Telemetry = field(default_factory=Telemetry)
    #: The container groups' list answers, each kept per version (:mod:`skiff.api.listing`).
    renders: Renders = field(default_factory=Renders)
    #: The NGroups controller (None: this plane serves no NGroups, their routes answer 503).
    ngroups: NGroups | None = None
    #: The standby pools' refill loop (None: pools are kept but never filled).
    standby: StandbyPools | None = None

    def base_for(self, request: Request) -> str:
        """Where the URLs built for ``request`` (operations, next pages, websockets) point:
        the address the client reached, when it is one of the API's own (a group calls
        the API at its gateway, where the configured base URL is not reachable); else
        ``base_url``. A Host header naming anything else is never echoed back."""
        host = request.headers.get("host", "").strip().lower()
        if host and host != urlsplit(self.base_url).netloc.lower() \
                and self.api_hosts is not None and host in self.api_hosts():
            return f"https://{host}"
        return self.base_url

    def relayed_client(self, request: Request) -> str | None:
        """The address of the client that sent ``request``: for one a group sent through
        its gateway's relay, the group's (not the loopback the relay connects from); else
        the connection's peer. Never a header's word (:mod:`skiff.api.clients`). Use it
        wherever the API records or bounds something per client."""
        return client_address(request.scope, self.relay_clients)

    @functools.cached_property
    def access(self) -> Access:
        """Authorization over the store's role assignments (:mod:`skiff.control.access`)."""
        return Access(self.store)

    @functools.cached_property
    def service_log(self) -> ServiceLog:
        """skiff's own writes in the activity log (:mod:`skiff.control.servicelog`)."""
        return ServiceLog(self.store, self.issuer.tenant)

    @functools.cached_property
    def issuer(self) -> Issuer:
        """The node's access tokens: its signing key beside the node key, made once."""
        return Issuer(self.store.key_path.parent, self.store.tenant_id())

    def audiences(self, request: Request) -> set[str]:
        """The ``aud`` values a token for this API may carry (no trailing slash): the API's
        own address, as configured and as the request reached it, and Azure's resource
        manager (the SDKs' default scope)."""
        return {self.base_url.rstrip("/"), str(request.base_url).rstrip("/"),
                *AZURE_AUDIENCES}


async def until_idle(reconciler: Reconciler, uid: str, timeout_s: float) -> None:
    """Wait, without holding a thread, until the reconcile loop is idle on ``uid`` (a
    group, or :data:`~skiff.control.reconciler.VNET_TEARDOWNS`), at most ``timeout_s``."""
    loop = asyncio.get_running_loop()
    idle = asyncio.Event()

    def wake() -> None:  # from a reconcile worker
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(idle.set)

    withdraw = reconciler.when_idle(uid, wake)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), timeout_s)
    finally:
        withdraw()


def plane(request: Request) -> ControlPlane:
    value: ControlPlane = request.app.state.plane
    return value


async def check_api_version(request: Request) -> str:
    """Every ARM route's dependency: the api-version is there and looks like one.

    A coroutine, so that it runs on the event loop: FastAPI runs a plain function
    dependency in a worker thread, a hop per request that costs more than the check."""
    return api_version_of(request)


def api_version_of(request: Request) -> str:
    """The request's api-version; 400 if it has none or one that is not a date."""
    version = request.query_params.get("api-version")
    if not version:
        raise ArmError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all "
                       "requests.")
    if not _looks_like_version(version):
        raise ArmError(400, "InvalidApiVersionParameter",
                       f"The api-version '{version}' is invalid. The supported versions are "
                       f"dates such as '{API_VERSION}'.")
    return version


def _looks_like_version(version: str) -> bool:
    date, _, suffix = version.partition("-preview")
    parts = date.split("-")
    return (len(parts) == 3 and all(p.isdigit() for p in parts) and len(parts[0]) == 4
            and suffix == "")


def authenticate(request: Request) -> Caller:
    """Who sent the request: a token skiff issued (a JWT, checked against the node's
    signing key), or a legacy opaque ``skf_`` token (looked up in the store). 401 if
    neither."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ArmError(401, "AuthenticationFailed",
                       "Authentication failed. The 'Authorization' header is missing or is "
                       "not a bearer token.")
    plane_ = plane(request)
    if looks_like_jwt(token):
        try:
            claims = plane_.issuer.verify(token)
        except TokenRejected as exc:
            raise ArmError(401, exc.code, exc.message) from None
        if claims.aud.rstrip("/") not in plane_.audiences(request):
            allowed = ",".join(f"'{a}/','{a}'" for a in (plane_.base_url.rstrip("/"),
                                                           *AZURE_AUDIENCES))
            raise ArmError(401, "InvalidAuthenticationTokenAudience",
                           f"The access token has been obtained for wrong audience or "
                           f"resource '{claims.aud}'. It should exactly match with one of the "
                           f"allowed audiences {allowed}.")
        return Caller(claims.oid, claims.appid or claims.oid, "ServicePrincipal",
                      app_id=claims.appid)
    record = plane_.store.check_token(token)
    if record is None:
        raise ArmError(401, "AuthenticationFailed",
                       "Authentication failed. The access token is invalid or revoked.")
    owner_of = "" if record.subscription is None else f"/subscriptions/{record.subscription}"
    return Caller(record.id, record.name, "Token", owner_of=owner_of)


#: A route parameter that authenticates the request and gives its caller (no action:
#: for the few routes any signed-in caller may use).
Principal = Annotated[Caller, Depends(authenticate)]


def allow(action: str) -> Any:
    """A route's dependency: authenticate, then authorize ``action`` at the request's scope
    (:func:`~skiff.control.access.scope_of` its path): 403 AuthorizationFailed before the
    route looks anything up, so a refusal tells nothing of what exists. Gives the caller.

    The check runs on the event loop (a coroutine: FastAPI would run a plain function in
    a worker thread, and then the route in another, two hops per request): it costs a
    token's signature check or one indexed read, and the caller's grants, cached."""

    async def check(request: Request) -> Caller:
        caller = authenticate(request)
        scope = scope_of(request.scope["path"])
        plane(request).access.authorize(caller, action, scope)
        authorized(request, caller, action, scope)
        return caller

    return Depends(check)


@dataclass(frozen=True)
class Listing:
    """The caller of a collection GET, and which of the collection's items it may see."""

    caller: Caller
    action: str
    #: None: every item (the caller may read at the collection's scope); else the access
    #: that tells, item by item.
    access: Access | None = None

    def visible(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items (ARM resources, by ``id``) the caller may read."""
        return [i for i in items if self.sees(str(i["id"]))]

    def sees(self, resource_id: str) -> bool:
        """Whether the caller may read the item of ``resource_id``."""
        return self.access is None or self.access.permits(self.caller, self.action,
                                                          resource_id)


def allow_listing(action: str) -> Any:
    """A collection GET's dependency: as :func:`allow`, except that a caller who may not
    read at the collection's scope but holds a role below it (a resource group's Reader
    listing the subscription's container groups) is let through, to see only the items
    it may read, as ARM filters a collection by the caller's access. A caller with no
    role at, above or below the scope gets 403. On the event loop, as :func:`allow`'s."""

    async def check(request: Request) -> Listing:
        caller = authenticate(request)
        access = plane(request).access
        scope = scope_of(request.scope["path"])
        if access.permits(caller, action, scope):
            return Listing(caller, action)
        if access.may_see(caller, scope):
            return Listing(caller, action, access)
        raise authorization_failed(caller, action, scope)

    return Depends(check)


def admin_only(request: Request) -> Caller:
    """The node owner's admin token, else 403 (principals and their secrets are the node
    owner's to manage)."""
    caller = authenticate(request)
    if not caller.admin:
        raise ArmError(403, "AuthorizationFailed",
                       f"The client '{caller.client}' with object id '{caller.object_id}' "
                       "does not have authorization to manage the node's service principals: "
                       "only the node's admin token does.")
    verb = "delete" if request.method == "DELETE" else "write"
    authorized(request, caller, f"Microsoft.Skiff/servicePrincipals/{verb}",
               request.scope["path"])
    return caller


Admin = Annotated[Caller, Depends(admin_only)]


#: What a resource must be allowed to do to a subnet to be placed in it (ARM's action).
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"


def check_linked(plane_: ControlPlane, caller: Caller, *, action: str, scope: str,
                 linked: str, linked_action: str) -> None:
    """403 LinkedAuthorizationFailed unless ``caller`` may perform ``linked_action`` on the
    resource ``linked`` (an ARM id the request names, such as a subnet a group is placed
    in) from ``scope``: by its role assignments (a Contributor or Owner of the subnet, or
    above it, may join it; a Reader may not).

    A resource is looked up by its id in whichever subscription the id names, so a
    request must not name what its caller could not use. The refusal is the same whether
    the linked resource exists or not, and names only what the request itself named.
    """
    if plane_.access.permits(caller, linked_action, linked):
        return
    raise ArmError(403, "LinkedAuthorizationFailed",
                   f"The client '{caller.client}' with object id '{caller.object_id}' has "
                   f"permission to perform action '{action}' on scope '{scope}'; however, it "
                   f"does not have permission to perform action(s) '{linked_action}' on the "
                   f"linked scope(s) '{linked}' or the linked scope(s) are invalid.")


def arm_id(subscription: str, resource_group: str, name: str | None = None) -> str:
    base = f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
    if name is None:
        return base
    return f"{base}/providers/{PROVIDER}/containerGroups/{name}"


def operation_url(base: str, subscription: str, location: str, op_id: str) -> str:
    """An operation's URL under ``base`` (:meth:`ControlPlane.base_for` the request)."""
    # Percent-encoded: a header is latin-1, and a subscription may be any text.
    sub, loc, op = (quote(part, safe="") for part in (subscription, location, op_id))
    return (f"{base}/subscriptions/{sub}/providers/{PROVIDER}/locations/"
            f"{loc}/operations/{op}?api-version={API_VERSION}")


def lro_headers(base: str, subscription: str, location: str,
                op_id: str) -> dict[str, str]:
    url = operation_url(base, subscription, location, op_id)
    return {"Azure-AsyncOperation": url, "Retry-After": "1"}


#: The largest request body read (ARM's limit is 4 MB): larger ones are refused unread.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: The deepest nesting of arrays and objects a body may have: ARM's bodies nest ~10 deep,
#: and a deeper one would make the parser (and everything after it) recurse without end.
MAX_JSON_DEPTH = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _invalid(reason: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: {reason}")


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing (or recursing):
    strings are cut out, then the brackets counted."""
    brackets = _STRINGS.sub(b"", raw).translate(None, delete=_NOT_BRACKETS)
    return max(itertools.accumulate(_NESTING[b] for b in brackets), default=0)


_NOT_BRACKETS = bytes(b for b in range(256) if b not in _NESTING)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_body(raw: bytes) -> Any:
    """A request body decoded, or ArmError 400 ``InvalidRequestContent``: empty, too large,
    nested too deep, not JSON, or a number Python will not read (NaN, an integer of more
    than 4,300 digits)."""
    if not raw.strip():
        raise ArmError(400, "InvalidRequestContent", "The request content is empty.")
    if len(raw) > MAX_BODY_BYTES:
        raise _invalid(f"it is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB.")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise _invalid(f"arrays and objects nest more than {MAX_JSON_DEPTH} deep.")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # a huge integer, NaN; deep as a last resort
        raise _invalid(str(exc).split(";")[0] + ".") from None
