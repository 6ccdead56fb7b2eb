"""The API's app factory and its one table from errors to ARM answers.

Every failure leaves as an ARM error body ``{"error": {"code", "message",
"target"}}`` with a fitting status: skiff's own errors by their class,
FastAPI's request validation as 400 ``InvalidRequestContent``, unknown
paths as 404, anything unforeseen as a 500 that says so without a traceback
(and is logged without a secret: :mod:`skiff.api.failures`). Secrets never
appear: messages are built without them, and what an engine says is scrubbed.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from skiff import __version__
from skiff.api import (
    activity,
    authorization,
    costs,
    groups,
    grouptokens,
    identities,
    insights,
    misc,
    networks,
    ngroups,
    principals,
    profiles,
    prometheus,
    signin,
    sockets,
    standby,
    storage,
)
from skiff.api.clients import RelayedClients
from skiff.api.context import ControlPlane
from skiff.api.failures import Unforeseen
from skiff.api.limits import BodyLimit, check_names
from skiff.api.openapi import allowed_methods, describe
from skiff.api.paths import CanonicalPaths
from skiff.api.tracing import Tracing
from skiff.control.scrubbing import describe_failure
from skiff.errors import (
    ArmError,
    ContainerCreateFailed,
    GroupNotFound,
    ImageError,
    InvalidInput,
    ShareNotFound,
    ShareQuotaTooSmall,
    SkiffError,
    StorageAccountNotFound,
)

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, target: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if target:
        body["target"] = target
    return JSONResponse({"error": body}, status_code=status)


def _status_of(exc: SkiffError) -> int:
    if isinstance(exc, ArmError):
        return exc.status
    if isinstance(exc, GroupNotFound | ShareNotFound | StorageAccountNotFound):
        return 404
    if isinstance(exc, InvalidInput | ImageError | ContainerCreateFailed | ShareQuotaTooSmall):
        return 400
    return 409 if not exc.transient else 503


def create_app(plane: ControlPlane) -> FastAPI:
    """The ASGI app of one control plane."""
    app = FastAPI(title="skiff", version=__version__,
                  description="A self-hosted Azure Container Instances: the ACI REST API "
                              "(Microsoft.ContainerInstance, api-version 2023-05-01), "
                              "with the virtual networks (Microsoft.Network), storage "
                              "accounts and file shares (Microsoft.Storage) and managed "
                              "identities (Microsoft.ManagedIdentity) groups use.")
    app.state.plane = plane
    for router in (groups.router, identities.router, misc.router, networks.router,
                   storage.router, authorization.router, insights.router, costs.router,
                   activity.router, profiles.router, ngroups.router, standby.router):
        app.include_router(router, dependencies=[Depends(check_names)])
    app.include_router(sockets.router)
    app.include_router(principals.router)
    app.include_router(prometheus.router)
    app.include_router(grouptokens.router)
    app.include_router(signin.router)  # last: its paths start with a tenant's name
    app.openapi = lambda: describe(app)  # type: ignore[method-assign]

    @app.exception_handler(SkiffError)
    async def skiff_error(request: Request, exc: SkiffError) -> JSONResponse:
        target = exc.target if isinstance(exc, ArmError) else None
        answer = _error(_status_of(exc), exc.code, exc.message, target)
        if answer.status_code == 401:  # ARM's challenge: where to get a token
            answer.headers["WWW-Authenticate"] = (
                f'Bearer authorization_uri="{str(request.base_url).rstrip("/")}/adfs", '
                'error="invalid_token", error_description="The authentication failed because '
                'of missing \'Authorization\' header or the token is invalid."')
        return answer

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return _error(400, "InvalidRequestContent",
                      f"The request is invalid: {first.get('msg', 'malformed')}"
                      + (f" ({where})" if where else ""), where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, "InvalidResourceType",
                          f"The resource type or path '{request.url.path}' is not supported.")
        if exc.status_code == 405:
            answer = _error(405, "MethodNotAllowed",
                            f"{request.method} is not supported on '{request.url.path}'.")
            answer.headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
            return answer
        return _error(exc.status_code, "BadRequest", str(exc.detail))

    @app.exception_handler(Exception)
    async def unforeseen(request: Request, exc: Exception) -> JSONResponse:
        # The last resort, for a failure outside the routes (Unforeseen handles theirs):
        # nothing tells which secrets its messages could quote, so they are left out.
        log.error("unhandled error on %s %s\n%s", request.method, request.url.path,
                  describe_failure(exc, None))
        return _error(500, "InternalServerError",
                      "skiff hit an unexpected error; it has been logged.")

    app.add_middleware(prometheus.RequestTimer)  # innermost: it sees the route matched
    app.add_middleware(BodyLimit)
    app.add_middleware(CanonicalPaths)
    app.add_middleware(Unforeseen)  # it sees every route's failure
    app.add_middleware(Tracing)  # the outermost of ours: request ids on every answer
    # The outermost: every other layer sees a relayed request's true client.
    app.add_middleware(RelayedClients, lookup=lambda: plane.relay_clients)
    return app
