"""What every route needs: the store, the engine, the reconciler, the settings.

One :class:`ControlPlane` per server, built by the app factory's caller and
reached from routes through ``request.app.state.plane``; no globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request

from skiff.control.identities import GroupIdentities
from skiff.control.reconciler import Reconciler
from skiff.control.storage import StorageService
from skiff.core.engine import Engine
from skiff.errors import ArmError
from skiff.settings import Settings
from skiff.store import Store, TokenRecord, subscription_key

API_VERSION = "2023-05-01"
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


def check_api_version(request: Request) -> str:
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


def authenticate(request: Request) -> TokenRecord:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(401, "AuthenticationFailed",
                       "Authentication failed. The 'Authorization' header is missing or is "
                       "not a bearer token.")
    record = plane(request).store.check_token(token.strip())
    if record is None:
        raise ArmError(401, "AuthenticationFailed",
                       "Authentication failed. The access token is invalid or revoked.")
    return record


#: A route parameter that authenticates the request and gives its token.
Principal = Annotated[TokenRecord, Depends(authenticate)]


def may_access(token: TokenRecord, subscription: str) -> bool:
    """Whether ``token`` may act in ``subscription``: an admin token in every one, a bound
    token in its own (ids compared by :func:`~skiff.store.subscription_key`, as ARM
    compares them, so a token made for ``ACME`` reaches ``acme``, the same subscription)."""
    return (token.subscription is None
            or subscription_key(token.subscription) == subscription_key(subscription))


def check_subscription(token: TokenRecord, subscription: str) -> None:
    """A token bound to one subscription sees nothing of any other: 404, as if absent."""
    if not may_access(token, subscription):
        raise ArmError(404, "SubscriptionNotFound",
                       f"The subscription '{subscription}' could not be found.")


#: What a resource must be allowed to do to a subnet to be placed in it (ARM's action).
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"


def check_linked(token: TokenRecord, *, action: str, scope: str, linked: str,
                 linked_action: str) -> None:
    """403 LinkedAuthorizationFailed unless ``token`` may use the resource ``linked`` (an
    ARM id the request names, such as a subnet a group is placed in) from ``scope``.

    A resource is looked up by its id in whichever subscription the id names, so a
    request must not name what its token could not reach: skiff has no role assignments
    yet, so a token bound to a subscription links only that subscription's resources,
    and the admin token any. The refusal is the same whether the linked resource exists
    or not, and names only what the request itself named.
    """
    parts = linked.strip("/").split("/")
    linked_sub = parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""
    if may_access(token, linked_sub):
        return
    raise ArmError(403, "LinkedAuthorizationFailed",
                   f"The client '{token.name}' with object id '{token.id}' has permission to "
                   f"perform action '{action}' on scope '{scope}'; however, it does not have "
                   f"permission to perform action(s) '{linked_action}' on the linked "
                   f"scope(s) '{linked}' or the linked scope(s) are invalid.")


def arm_id(subscription: str, resource_group: str, name: str | None = None) -> str:
    base = f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
    if name is None:
        return base
    return f"{base}/providers/{PROVIDER}/containerGroups/{name}"


def operation_url(plane_: ControlPlane, subscription: str, location: str, op_id: str) -> str:
    # Percent-encoded: a header is latin-1, and a subscription may be any text.
    sub, loc, op = (quote(part, safe="") for part in (subscription, location, op_id))
    return (f"{plane_.base_url}/subscriptions/{sub}/providers/{PROVIDER}/locations/"
            f"{loc}/operations/{op}?api-version={API_VERSION}")


def lro_headers(plane_: ControlPlane, subscription: str, location: str,
                op_id: str) -> dict[str, str]:
    url = operation_url(plane_, subscription, location, op_id)
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
