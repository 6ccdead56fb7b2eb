"""The activity log, read as Azure Monitor answers it: ``eventtypes/management/values``.

``GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values``
(api-version 2015-04-01, what ``az monitor activity-log list`` and azure-mgmt-monitor's
``activity_logs.list`` send) answers the subscription's events, newest first, that the
``$filter`` asks (:func:`skiff.models.activity.parse_filter`), with only the properties
of a ``$select``, a page at a time (``nextLink``). Reading is
``Microsoft.Insights/eventtypes/values/read`` (a Reader's): a caller with that right on
the subscription sees all its events; one who holds roles only below it (a resource
group's Reader) sees the events of what it may read. Another tenant gets 403.

``GET /providers/Microsoft.Insights/eventtypes/management/values`` answers the tenant's
own events (sign-ins, the node's service principals), to the node's admin token only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from skiff.api.context import Admin, Listing, authenticate, check_api_version, plane
from skiff.control.access import authorization_failed
from skiff.models.activity import parse_filter, parse_select, select
from skiff.store import InvalidSkipToken

router = APIRouter(dependencies=[Depends(check_api_version)])
VALUES = "/providers/Microsoft.Insights/eventtypes/management/values"
READ = "Microsoft.Insights/eventtypes/values/read"
#: Events per page (Azure's pages hold up to 200).
PAGE = 200


def _reader(subscription: str, request: Request) -> Listing:
    """Who reads a subscription's log, and which of its events it may see: all with the
    right at the subscription, those of what it may read with roles below it only."""
    caller = authenticate(request)
    access = plane(request).access
    scope = f"/subscriptions/{subscription}"
    if access.permits(caller, READ, scope):
        return Listing(caller, READ)
    if access.may_see(caller, scope):
        return Listing(caller, READ, access)
    raise authorization_failed(caller, READ, scope)


CanRead = Annotated[Listing, Depends(_reader)]


def _marker(request: Request) -> str | None:
    text = request.query_params.get("$skipToken") or request.query_params.get("$skiptoken")
    if text is not None and len(text) > 64:
        raise InvalidSkipToken()
    return text


def _page(request: Request, subscription: str,
          visible: Listing | None) -> dict[str, Any]:
    params = request.query_params
    query = parse_filter(params.get("$filter"), time.time())
    names = parse_select(params.get("$select"))
    plane_ = plane(request)
    events, more = plane_.store.list_events(subscription, query, after=_marker(request),
                                            limit=PAGE)
    if visible is not None:
        events = visible.visible(events)
    answer: dict[str, Any] = {"value": [select(e, names) for e in events]}
    if more is not None:
        kept = {k: v for k, v in params.items() if k.lower() != "$skiptoken"}
        answer["nextLink"] = (f"{plane_.base_for(request)}{request.url.path}?"
                              f"{urlencode({**kept, '$skipToken': more})}")
    return answer


@router.get("/subscriptions/{subscription}" + VALUES)
def list_events(subscription: str, request: Request, reader: CanRead) -> dict[str, Any]:
    """The subscription's activity log: its writes' events, newest first."""
    return _page(request, subscription, reader)


@router.get(VALUES)
def list_tenant_events(request: Request, _: Admin) -> dict[str, Any]:
    """The tenant's activity log (sign-ins, service principals): the admin token's."""
    return _page(request, "", None)
