"""ARM paths are case-insensitive: canonicalize their fixed words before routing.

``/subscriptions/s/resourcegroups/rg/providers/microsoft.containerinstance/
containerGroups/x`` and every other spelling reach the same route. Only the
fixed words at their positions are rewritten; names (resource groups,
container groups) are left as the caller wrote them.

Empty segments are dropped first, as ARM drops them: ``az container export`` and
``create --file`` send ``.../Microsoft.ContainerInstance//containerGroups/x``,
``az cloud register`` asks for ``//metadata/endpoints``, and ARM answers both as
if the slash were single (a name is never empty, so nothing is lost).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_PROVIDER = "Microsoft.ContainerInstance"
_NETWORK = "Microsoft.Network"
_INSIGHTS = "Microsoft.Insights"
_COSTS = "Microsoft.CostManagement"
_WORDS = {w.lower(): w for w in (
    _NETWORK, "virtualNetworks", "subnets",
    "subscriptions", "resourceGroups", "providers", _PROVIDER, "containerGroups", "containers",
    "logs", "exec", "attach", "start", "stop", "restart", "locations", "operations", "usages",
    "capabilities", "cachedImages", "outboundNetworkDependenciesEndpoints",
    "containerGroupProfiles", "revisions",
    _INSIGHTS, "metrics", "metricDefinitions", _COSTS, "query", "eventtypes", "management",
    "values",
)}
# Positions of fixed words, by the shapes of the API's paths (None: a name).
_SHAPES: tuple[tuple[str | None, ...], ...] = (
    ("subscriptions", None, "resourceGroups", None, "providers", _COSTS, "query"),
    ("subscriptions", None, "providers", _COSTS, "query"),
    ("subscriptions", None, "resourceGroups", None, "providers", _PROVIDER, "containerGroups",
     None, "providers", _INSIGHTS, "*"),
    ("subscriptions", None, "resourceGroups", None, "providers", _PROVIDER, "containerGroups",
     None, "containers", None, "*"),
    ("subscriptions", None, "resourceGroups", None, "providers", _PROVIDER, "containerGroups",
     None, "*"),
    ("subscriptions", None, "resourceGroups", None, "providers", _PROVIDER,
     "containerGroupProfiles", None, "revisions", None),
    ("subscriptions", None, "providers", _PROVIDER, "containerGroupProfiles"),
    ("subscriptions", None, "providers", _PROVIDER, "locations", None, "*", None),
    ("subscriptions", None, "providers", _PROVIDER, "containerGroups"),
    ("subscriptions", None, "providers", _INSIGHTS, "eventtypes", "management", "values"),
    ("subscriptions", None, "resourceGroups", None, "providers", _NETWORK, "virtualNetworks",
     None, "subnets", None),
    ("subscriptions", None, "providers", _NETWORK, "virtualNetworks"),
    ("subscriptions", None, "resourceGroups", None),
    ("subscriptions", None, "resourceGroups"),
    ("providers", _PROVIDER, "operations"),
    ("providers", _INSIGHTS, "eventtypes", "management", "values"),
)


_SLASHES = re.compile(r"//+")


def canonical(path: str) -> str:
    """The path without empty segments, its fixed words spelled as the routes spell them."""
    path = _SLASHES.sub("/", path)
    parts = path.split("/")
    lead, segments = parts[0], parts[1:]
    for shape in _SHAPES:
        if len(segments) > len(shape):
            continue
        fixed = shape[:len(segments)]
        if all(want is None or want == "*" or segments[i].lower() == want.lower()
               for i, want in enumerate(fixed)):
            out = [(_WORDS.get(seg.lower(), seg) if want is not None else seg)
                   for seg, want in zip(segments, fixed, strict=False)]
            return "/".join([lead, *out])
    return path


class CanonicalPaths:
    """ASGI middleware applying :func:`canonical` to every request path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = canonical(scope["path"])
            if path != scope["path"]:
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)

