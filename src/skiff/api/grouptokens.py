"""Groups' token endpoint on the API's listener (the kubernetes backend's identities).

``GET /identity/<group uid>/token``: the App Service managed identity protocol
(:mod:`skiff.metadata.appservice`) that a group on a cluster reaches through
``IDENTITY_ENDPOINT``, authenticated by its ``X-IDENTITY-HEADER`` alone (no ARM token:
the group has none), answered in App Service's words, not ARM's. Where the plane serves
no such endpoint (the local node: its groups ask 169.254.169.254) the path is 404.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from skiff.api.context import plane
from skiff.metadata.appservice import failure

router = APIRouter()


@router.api_route("/identity/{uid}/token", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                  include_in_schema=False)
async def group_token(uid: str, request: Request) -> JSONResponse:
    """A token for one of the group's managed identities."""
    plane_ = plane(request)
    endpoint, identities = plane_.app_service, plane_.identities
    if endpoint is None or identities is None:
        reply = failure(404, "Not found")
    else:
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = await asyncio.to_thread(endpoint.reply, request.method, request.url.path,
                                        list(request.query_params.multi_items()), headers,
                                        identities.answer)
    return JSONResponse(dict(reply.body), status_code=reply.status)
