"""Cost Management's query of container groups' usage, priced (``Microsoft.CostManagement``).

``POST /subscriptions/{s}/providers/Microsoft.CostManagement/query`` and the same under
``/resourceGroups/{rg}``: what ``az costmanagement query``, azure-mgmt-costmanagement
and ``skiff usage show`` send. The query and the answer's shape are
:mod:`skiff.models.costs`'; the usage is the store's spans (:mod:`skiff.store.usage`,
kept by :mod:`skiff.control.metering`), priced by :mod:`skiff.control.pricing`.

The query only reads, so it is authorized as ``Microsoft.CostManagement/query/read`` at
its scope, as Azure does (a Reader may view costs): another tenant, or a principal
without a role there, gets 403 before anything is read. The spans are selected by the
path's subscription (and resource group), so an answer holds the caller's own usage
only; a resource group that no longer exists still answers for what ran in it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from skiff.api.bodies import COST_QUERY, request_body
from skiff.api.context import allow, check_api_version, json_body, plane
from skiff.control.access import Caller
from skiff.control.pricing import cost_rows
from skiff.models.costs import PROVIDER, parse_query, render_answer

router = APIRouter(dependencies=[Depends(check_api_version)])
CanQuery = Annotated[Caller, allow(f"{PROVIDER}/query/read")]


@router.post(f"/subscriptions/{{subscription}}/providers/{PROVIDER}/query",
             openapi_extra=request_body(COST_QUERY))
async def query_subscription(subscription: str, request: Request,
                             caller: CanQuery) -> dict[str, Any]:
    return await _answer(request, subscription, None)


@router.post(f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/"
             f"{PROVIDER}/query", openapi_extra=request_body(COST_QUERY))
async def query_resource_group(subscription: str, resource_group: str, request: Request,
                               caller: CanQuery) -> dict[str, Any]:
    return await _answer(request, subscription, resource_group)


async def _answer(request: Request, subscription: str,
                  resource_group: str | None) -> dict[str, Any]:
    plane_ = plane(request)
    now = plane_.store.now()
    query = parse_query(json_body(await request.body()), now)
    spans = plane_.store.spans_between(subscription, query.start, query.end,
                                       resource_group=resource_group)
    rows = cost_rows(query, spans, plane_.settings.usage.prices, now)
    scope = f"/subscriptions/{subscription}" + (
        f"/resourceGroups/{resource_group}" if resource_group is not None else "")
    return render_answer(query, rows, scope, str(uuid.uuid4()))
