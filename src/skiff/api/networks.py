"""Microsoft.Network routes: virtual networks and their subnets.

Only what private container groups need: PUT, GET, list and DELETE of
``virtualNetworks`` and of their ``subnets``. A virtual network is a record
in the store, nothing more, until a group is placed in one of its subnets:
the engine then makes the subnet's bridge and the network's isolation rules
(:mod:`skiff.engine.network.subnets`). Deleting the network records their
removal in the store with the deletion; the reconcile loop removes them
(:data:`~skiff.control.reconciler.VNET_TEARDOWNS`), and DELETE waits a while
for it so that a 200 usually finds the node clean. So every change answers at
once, provisioningState Succeeded.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import SUBNET as SUBNET_BODY
from skiff.api.bodies import VIRTUAL_NETWORK, request_body
from skiff.api.context import (
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    check_api_version,
    json_body,
    plane,
    until_idle,
)
from skiff.api.places import locations
from skiff.control.access import Caller
from skiff.control.reconciler import VNET_TEARDOWNS
from skiff.errors import ArmError, SkiffError
from skiff.models import network as models
from skiff.store import VnetRecord

router = APIRouter(dependencies=[Depends(check_api_version)])
_PROVIDER = "providers/Microsoft.Network/virtualNetworks"
VNETS = f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/{_PROVIDER}"
VNET = VNETS + "/{name}"
SUBNETS = VNET + "/subnets"
SUBNET = SUBNETS + "/{subnet}"
#: The routes' callers, each allowed its ARM action (skiff.control.access).
_ACTION = "Microsoft.Network/virtualNetworks"
CanRead = Annotated[Caller, allow(f"{_ACTION}/read")]
CanList = Annotated[Listing, allow_listing(f"{_ACTION}/read")]
CanWrite = Annotated[Caller, allow(f"{_ACTION}/write")]
CanDelete = Annotated[Caller, allow(f"{_ACTION}/delete")]
CanReadSubnets = Annotated[Caller, allow(f"{_ACTION}/subnets/read")]
CanWriteSubnets = Annotated[Caller, allow(f"{_ACTION}/subnets/write")]
CanDeleteSubnets = Annotated[Caller, allow(f"{_ACTION}/subnets/delete")]
#: Seconds a DELETE of a virtual network waits for the node to be rid of it: it takes
#: a fraction of a second, unless every reconcile worker is busy with groups.
TEARDOWN_WAIT_S = 30.0


def _not_found(what: str, name: str, resource_group: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource 'Microsoft.Network/{what}/{name}' under resource group "
                    f"'{resource_group}' was not found.")


def _vnet(plane_: ControlPlane, token: Any, subscription: str, resource_group: str,
          name: str) -> VnetRecord:
    record = plane_.store.get_vnet(subscription, resource_group, name)
    if record is None:
        raise _not_found("virtualNetworks", name, resource_group)
    return record


def _check_on_node(plane_: ControlPlane, body: models.VnetBody) -> None:
    """400 if the address space clashes with the node's own routes or public pool."""
    space = body.properties.address_space
    try:
        plane_.engine.check_address_space(space.address_prefixes if space else [])
    except SkiffError as exc:
        raise ArmError(400, "VirtualNetworkAddressSpaceConflict", exc.message,
                       target="properties.addressSpace.addressPrefixes") from exc


@router.put(VNET, openapi_extra=request_body(VIRTUAL_NETWORK))
async def put_vnet(subscription: str, resource_group: str, name: str, request: Request,
                   token: CanWrite) -> Response:
    """Create or replace a virtual network (its subnets included)."""
    plane_ = plane(request)
    body = models.parse_vnet(json_body(await request.body()), name=name,
                             default_location=plane_.settings.api.location)
    _check_on_node(plane_, body)
    assert body.location is not None
    body.location = locations(plane_).place(body.location, "Microsoft.Network/virtualNetworks")
    record, created = await asyncio.to_thread(
        plane_.store.put_vnet, subscription, resource_group, name, body.location,
        models.stored(body), body.tags or {})
    return JSONResponse(render_vnet(record), status_code=201 if created else 200)


@router.get(VNET)
def get_vnet(subscription: str, resource_group: str, name: str, request: Request,
             token: CanRead) -> dict[str, Any]:
    return render_vnet(_vnet(plane(request), token, subscription, resource_group, name))


@router.get(VNETS)
def list_vnets(subscription: str, resource_group: str, request: Request,
               token: CanRead) -> dict[str, Any]:
    records = plane(request).store.list_vnets(subscription, resource_group)
    return {"value": [render_vnet(r) for r in records]}


@router.get(f"/subscriptions/{{subscription}}/{_PROVIDER}")
def list_all_vnets(subscription: str, request: Request, token: CanList) -> dict[str, Any]:
    return {"value": token.visible([render_vnet(r) for r in plane(request).store.list_vnets(
        subscription)])}


@router.delete(VNET)
async def delete_vnet(subscription: str, resource_group: str, name: str, request: Request,
                      token: CanDelete) -> Response:
    """Delete a virtual network; 400 InUseSubnetCannotBeDeleted while a group is in it."""
    plane_ = plane(request)
    record = await asyncio.to_thread(plane_.store.delete_vnet, subscription, resource_group,
                                     name)
    if record is None:
        return Response(status_code=204)
    # The node's part (bridges, rules) goes through the reconcile loop, from the record
    # the deletion wrote; its failure is the loop's to retry, not the answer's.
    plane_.reconciler.kick(VNET_TEARDOWNS)
    await until_idle(plane_.reconciler, VNET_TEARDOWNS, TEARDOWN_WAIT_S)
    return Response(status_code=200)


@router.put(SUBNET, openapi_extra=request_body(SUBNET_BODY))
async def put_subnet(subscription: str, resource_group: str, name: str, subnet: str,
                     request: Request, token: CanWriteSubnets) -> Response:
    """Create or replace one subnet of an existing virtual network."""
    plane_ = plane(request)
    before = _vnet(plane_, token, subscription, resource_group, name)
    model = models.parse_subnet(json_body(await request.body()), name=subnet)
    record = await asyncio.to_thread(
        plane_.store.change_vnet, subscription, resource_group, name,
        lambda body: models.put_subnet(body, model))
    if record is None:
        raise _not_found("virtualNetworks", name, resource_group)
    found = find_subnet(record, subnet)
    assert found is not None
    created = find_subnet(before, subnet) is None
    return JSONResponse(render_subnet(record, found), status_code=201 if created else 200)


@router.get(SUBNET)
def get_subnet(subscription: str, resource_group: str, name: str, subnet: str,
               request: Request, token: CanReadSubnets) -> dict[str, Any]:
    record = _vnet(plane(request), token, subscription, resource_group, name)
    found = find_subnet(record, subnet)
    if found is None:
        raise _not_found(f"virtualNetworks/{name}/subnets", subnet, resource_group)
    return render_subnet(record, found)


@router.get(SUBNETS)
def list_subnets(subscription: str, resource_group: str, name: str, request: Request,
                 token: CanReadSubnets) -> dict[str, Any]:
    record = _vnet(plane(request), token, subscription, resource_group, name)
    return {"value": [render_subnet(record, s)
                      for s in record.body.get("properties", {}).get("subnets", [])]}


@router.delete(SUBNET)
async def delete_subnet(subscription: str, resource_group: str, name: str, subnet: str,
                        request: Request, token: CanDeleteSubnets) -> Response:
    """Delete a subnet; 400 InUseSubnetCannotBeDeleted while a group is in it."""
    plane_ = plane(request)
    before = _vnet(plane_, token, subscription, resource_group, name)
    if find_subnet(before, subnet) is None:
        return Response(status_code=204)
    await asyncio.to_thread(plane_.store.change_vnet, subscription, resource_group, name,
                            lambda body: models.remove_subnet(body, subnet))
    return Response(status_code=200)


# ---- answers ----------------------------------------------------------------------------


def _etag(record: VnetRecord) -> str:
    return f'W/"{record.guid}"'


def render_subnet(record: VnetRecord, subnet: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"{record.resource_id}/subnets/{subnet['name']}", "name": subnet["name"],
            "type": models.SUBNET_TYPE, "etag": _etag(record),
            "properties": {**subnet.get("properties", {}), "provisioningState": "Succeeded"}}


def render_vnet(record: VnetRecord) -> dict[str, Any]:
    props = record.body.get("properties", {})
    return {"id": record.resource_id, "name": record.name, "type": models.VNET_TYPE,
            "location": record.location, "tags": record.tags, "etag": _etag(record),
            "properties": {**props, "provisioningState": "Succeeded",
                           "resourceGuid": record.guid,
                           "subnets": [render_subnet(record, s)
                                       for s in props.get("subnets", [])]}}


def find_subnet(record: VnetRecord, name: str) -> dict[str, Any] | None:
    for subnet in record.body.get("properties", {}).get("subnets", []):
        if str(subnet["name"]).lower() == name.lower():
            return dict(subnet)
    return None
