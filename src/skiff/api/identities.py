"""Microsoft.ManagedIdentity routes: user-assigned identities.

The ARM subset ``az identity`` and the SDKs' managed identity client use, any
api-version date: PUT (create, or change tags), GET, PATCH (tags), the lists by
resource group and by subscription, DELETE. Everything answers at once; an
identity's ``tenantId``, ``principalId`` and ``clientId`` are made with it and
never change. A container group names one in ``identity.userAssignedIdentities``
and its containers get tokens for it from the identity endpoint inside the group.
Another tenant's identities are as absent as its other resources.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import IDENTITY_PATCH, USER_ASSIGNED_IDENTITY, request_body
from skiff.api.context import (
    PROVIDER,
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    check_api_version,
    check_linked,
    json_body,
    plane,
)
from skiff.control.access import Caller
from skiff.errors import ArmError
from skiff.models import ContainerGroupBody
from skiff.models.arm import check_tags
from skiff.models.identity import (
    ASSIGN_ACTION,
    NONE,
    USER_ASSIGNED_TYPE,
    check_identity_name,
    parse_group_identity,
    parse_identity_body,
    render_group_identity,
    render_identity,
)
from skiff.store import GroupRecord, IdentityRecord

router = APIRouter(dependencies=[Depends(check_api_version)])
_PROVIDER = "providers/Microsoft.ManagedIdentity/userAssignedIdentities"
IDENTITIES = f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/{_PROVIDER}"
IDENTITY = IDENTITIES + "/{name}"
SUB_IDENTITIES = f"/subscriptions/{{subscription}}/{_PROVIDER}"
#: The routes' callers, each allowed its ARM action (skiff.control.access).
_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities"
CanRead = Annotated[Caller, allow(f"{_ACTION}/read")]
CanList = Annotated[Listing, allow_listing(f"{_ACTION}/read")]
CanWrite = Annotated[Caller, allow(f"{_ACTION}/write")]
CanDelete = Annotated[Caller, allow(f"{_ACTION}/delete")]


def render(record: IdentityRecord) -> dict[str, Any]:
    return render_identity(resource_id=record.resource_id, name=record.name,
                           location=record.location, tags=record.tags,
                           tenant_id=record.tenant_id, principal_id=record.principal_id,
                           client_id=record.client_id)


def _found(plane_: ControlPlane, subscription: str, resource_group: str,
           name: str) -> IdentityRecord:
    record = plane_.store.get_identity(subscription, resource_group, name)
    if record is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{USER_ASSIGNED_TYPE}/{name}' under resource group "
                       f"'{resource_group}' was not found.")
    return record


def _tenant(plane_: ControlPlane, subscription: str) -> str:
    if plane_.identities is None:
        raise ArmError(503, "ServiceUnavailable",
                       "Managed identities are not served by this node.")
    return plane_.identities.tokens.tenant_of(subscription)


@router.put(IDENTITY, openapi_extra=request_body(USER_ASSIGNED_IDENTITY))
async def put_identity(subscription: str, resource_group: str, name: str, request: Request,
                       token: CanWrite) -> Response:
    """Create a user-assigned identity (201), or replace its tags (200)."""
    plane_ = plane(request)
    check_identity_name(name)
    body = parse_identity_body(json_body(await request.body()),
                               default_location=plane_.settings.api.location)
    tenant = _tenant(plane_, subscription)
    record, created = await asyncio.to_thread(plane_.store.put_identity, subscription,
                                              resource_group, name, body.location, body.tags,
                                              tenant)
    return JSONResponse(render(record), status_code=201 if created else 200)


@router.get(IDENTITY)
def get_identity(subscription: str, resource_group: str, name: str, request: Request,
                 token: CanRead) -> dict[str, Any]:
    return render(_found(plane(request), subscription, resource_group, name))


@router.patch(IDENTITY, openapi_extra=request_body(IDENTITY_PATCH))
async def patch_identity(subscription: str, resource_group: str, name: str, request: Request,
                         token: CanWrite) -> dict[str, Any]:
    """Change an identity's tags (the rest of a PATCH is left as it is)."""
    plane_ = plane(request)
    record = _found(plane_, subscription, resource_group, name)
    doc = json_body(await request.body())
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if tags is None:
        return render(record)
    changed, _ = await asyncio.to_thread(plane_.store.put_identity, subscription,
                                         resource_group, name, record.location,
                                         check_tags(tags), record.tenant_id)
    return render(changed)


@router.get(IDENTITIES)
def list_identities(subscription: str, resource_group: str, request: Request,
                    token: CanList) -> dict[str, Any]:
    plane_ = plane(request)
    return {"value": token.visible([render(r) for r in plane_.store.list_identities(
        subscription, resource_group)])}


@router.get(SUB_IDENTITIES)
def list_all_identities(subscription: str, request: Request,
                        token: CanList) -> dict[str, Any]:
    plane_ = plane(request)
    return {"value": token.visible([render(r) for r in plane_.store.list_identities(
        subscription)])}


@router.delete(IDENTITY)
def delete_identity(subscription: str, resource_group: str, name: str, request: Request,
                    token: CanDelete) -> Response:
    """Delete an identity (200; 204 if there was none). Groups naming it keep the name;
    their tokens for it are refused from now on."""
    plane_ = plane(request)
    gone = plane_.store.delete_identity(subscription, resource_group, name)
    return Response(status_code=200 if gone else 204)


# ---- a container group's identity -------------------------------------------------------


def assign_group_identity(plane_: ControlPlane, token: Caller, body: ContainerGroupBody,
                          subscription: str, resource_group: str, name: str,
                          existing: GroupRecord | None) -> None:
    """Check the group's ``identity`` and put in its place what the store keeps: the
    caller must be allowed to assign each user-assigned identity it names (as ARM's
    linked authorization: the refusal names only what the request named), which must
    exist; a system identity keeps the principal ``existing`` had."""
    identity = parse_group_identity(body.identity)
    if identity is None:
        return
    scope = (f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
             f"{PROVIDER}/containerGroups/{name}")
    for key in identity.user_assigned:
        check_linked(plane_, token, action=f"{PROVIDER}/containerGroups/write", scope=scope,
                     linked=key, linked_action=ASSIGN_ACTION)
    if plane_.identities is None:
        if identity.type == NONE:
            body.identity = {"type": NONE}
            return
        raise ArmError(503, "ServiceUnavailable",
                       "Managed identities are not served by this node.")
    body.identity = plane_.identities.stored(identity, subscription=subscription,
                                             resource_group=resource_group, name=name,
                                             existing=existing)


def render_group_identity_of(plane_: ControlPlane, rendered: dict[str, Any]) -> None:
    """Answer a rendered group's ``identity`` as ACI does (in place)."""
    stored = rendered.get("identity")
    if not isinstance(stored, dict):
        return

    def lookup(resource_id: str) -> tuple[str, str] | None:
        found = plane_.store.identity_by_id(resource_id)
        return None if found is None else (found.principal_id, found.client_id)

    rendered["identity"] = render_group_identity(stored, lookup)
