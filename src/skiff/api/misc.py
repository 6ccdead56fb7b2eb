"""The rest of the API: resource groups, operation status, location resources, operations list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import RESOURCE_GROUP, request_body
from skiff.api.context import (
    PROVIDER,
    ControlPlane,
    Listing,
    Principal,
    allow,
    allow_listing,
    arm_id,
    check_api_version,
    json_body,
    plane,
    until_idle,
)
from skiff.api.places import locations
from skiff.control.access import Caller, authorization_failed, scope_of
from skiff.control.capacity import release_ended
from skiff.control.reconciler import VNET_TEARDOWNS
from skiff.control.storage import worded_for
from skiff.core.reference import parse as parse_reference
from skiff.core.view import iso
from skiff.errors import ArmError, InvalidReference, ShareInUse
from skiff.models.arm import check_location_text, check_tags
from skiff.settings import QUOTA_NAMES
from skiff.store import GroupRecord, OperationRecord, ResourceGroupRecord, subscription_key

router = APIRouter(dependencies=[Depends(check_api_version)])
RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}"
LOCATION = f"/subscriptions/{{subscription}}/providers/{PROVIDER}/locations/{{location}}"
#: The routes' callers, each allowed its ARM action (skiff.control.access).
_RG_ACTION = "Microsoft.Resources/subscriptions/resourceGroups"
CanReadGroups = Annotated[Caller, allow(f"{_RG_ACTION}/read")]
CanListGroups = Annotated[Listing, allow_listing(f"{_RG_ACTION}/read")]
CanWriteGroups = Annotated[Caller, allow(f"{_RG_ACTION}/write")]
CanDeleteGroups = Annotated[Caller, allow(f"{_RG_ACTION}/delete")]
#: An operation's status is read by whoever may read the subscription's operations, or
#: the resource the operation acts on (a Contributor of a resource group polls its own
#: creates); see operation_status.
_OPERATIONS_READ = f"{PROVIDER}/locations/operations/read"
CanReadUsages = Annotated[Caller, allow(f"{PROVIDER}/locations/usages/read")]
CanReadCapabilities = Annotated[Caller, allow(f"{PROVIDER}/locations/capabilities/read")]
CanReadCachedImages = Annotated[Caller, allow(f"{PROVIDER}/locations/cachedImages/read")]


def _rg(record: ResourceGroupRecord) -> dict[str, Any]:
    return {"id": arm_id(record.subscription, record.name), "name": record.name,
            "type": "Microsoft.Resources/resourceGroups", "location": record.location,
            "tags": record.tags, "properties": {"provisioningState": "Succeeded"}}


@router.put(RG, openapi_extra=request_body(RESOURCE_GROUP))
async def put_resource_group(subscription: str, resource_group: str, request: Request,
                             token: CanWriteGroups) -> Response:
    doc = json_body(await request.body())
    if not isinstance(doc, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    check_location_text(doc.get("location"))
    location = locations(plane(request)).place_resource_group(doc["location"])
    tags = check_tags(doc.get("tags"))
    record, created = plane(request).store.put_resource_group(subscription, resource_group,
                                                              location, tags)
    return JSONResponse(_rg(record), status_code=201 if created else 200)


@router.get(RG)
def get_resource_group(subscription: str, resource_group: str, request: Request,
                       token: CanReadGroups) -> dict[str, Any]:
    record = plane(request).store.get_resource_group(subscription, resource_group)
    if record is None:
        raise ArmError(404, "ResourceGroupNotFound",
                       f"Resource group '{resource_group}' could not be found.")
    return _rg(record)


@router.head(RG)
def resource_group_exists(subscription: str, resource_group: str, request: Request,
                          token: CanReadGroups) -> Response:
    """ARM's check for existence (``az group exists``): 204 if it does, 404 if not."""
    found = plane(request).store.get_resource_group(subscription, resource_group)
    return Response(status_code=204 if found is not None else 404)


@router.delete(RG)
def delete_resource_group(subscription: str, resource_group: str, request: Request,
                          token: CanDeleteGroups) -> Response:
    """Delete the resource group and everything in it: its container groups and its
    virtual networks, both through the reconcile loop (the store records the networks'
    removal from the node with the deletion; a network whose groups are still being
    deleted leaves the node after the last of them), and its storage accounts, their
    shares' data included (409 ShareInUse, and nothing deleted, while a container group
    of another resource group mounts one of their shares)."""
    plane_ = plane(request)
    if plane_.store.get_resource_group(subscription, resource_group) is None:
        return Response(status_code=204)
    try:
        records = plane_.store.delete_resource_group(subscription, resource_group)
    except ShareInUse as exc:
        raise worded_for(exc, subscription, f"A file share of the resource group "
                         f"'{resource_group}'") from None
    for record in records:
        plane_.reconciler.kick(record.uid)
    plane_.reconciler.kick(VNET_TEARDOWNS)
    if plane_.storage is not None:
        plane_.storage.sweep()  # the disks of its accounts' shares
    return Response(status_code=202)


@router.get("/subscriptions/{subscription}/resourcegroups")
@router.get("/subscriptions/{subscription}/resourceGroups")
def list_resource_groups(subscription: str, request: Request,
                         token: CanListGroups) -> dict[str, Any]:
    return {"value": token.visible([_rg(r) for r in
                                    plane(request).store.list_resource_groups(subscription)])}


#: Seconds a poll of an operation in progress is held, waiting for the operation to end.
#: A client polling in a tight loop (rather than after ``Retry-After``) then costs a
#: couple of waiting requests a second, not the hundreds of answers (and the CPU they
#: take from the containers being started) it cost when every poll was answered at once;
#: and any poller hears of the end at once. Short enough that a client obeying
#: ``Retry-After`` still sees progress every 1.5 s, and far below any read timeout.
OPERATION_HOLD_S = 0.5


@router.get(LOCATION + "/operations/{operation}")
async def operation_status(subscription: str, location: str, operation: str, request: Request,
                           token: Principal) -> Response:
    """The status of a long-running operation, as the ARM poller reads it.

    Allowed to a caller that may read operations at the path's scope (the subscription's),
    or may read the resource the operation acts on, so that a principal whose role is on
    a resource group polls its own operations. To any other caller the answer is 403
    AuthorizationFailed, whether the operation exists or not.

    While the operation is in progress and its group is being reconciled, the answer
    waits (up to :data:`OPERATION_HOLD_S`) for the reconcile loop to finish with it.
    """
    plane_ = plane(request)
    scope = scope_of(request.scope["path"])
    if not plane_.access.permits(token, _OPERATIONS_READ, scope):
        found = plane_.store.get_operation(operation)
        if found is None or found.subscription != subscription_key(subscription) or \
                not plane_.access.permits(token, _resource_read(found.resource_id),
                                          found.resource_id):
            raise authorization_failed(token, _OPERATIONS_READ, scope)
    op = _operation(plane_, subscription, operation)
    if op.status == "InProgress":
        group = _operation_group(plane_, op)
        if group is not None:
            await until_idle(plane_.reconciler, group.uid, OPERATION_HOLD_S)
            op = _operation(plane_, subscription, operation)
    answer: dict[str, Any] = {
        "id": f"/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/"
              f"operations/{operation}",
        "name": operation, "status": op.status, "startTime": iso(op.started_at)}
    if op.ended_at is not None:
        answer["endTime"] = iso(op.ended_at)
    if op.error:
        answer["error"] = op.error
    # The SDK's poller waits what the latest answer says, else 30 s.
    headers = {"Retry-After": "1"} if op.status == "InProgress" else None
    return JSONResponse(answer, headers=headers)


def _resource_read(resource_id: str) -> str:
    """The read action of the resource an ARM id names (``.../providers/NS/type/name``)."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        types = parts[at + 2::2]
        return "/".join([parts[at + 1], *types, "read"])
    return "Microsoft.Resources/subscriptions/resourceGroups/read"


def _operation(plane_: ControlPlane, subscription: str, operation: str) -> OperationRecord:
    op = plane_.store.get_operation(operation)
    if op is None or op.subscription != subscription_key(subscription):
        raise ArmError(404, "OperationNotFound", f"The operation '{operation}' was not found.")
    return op


def _operation_group(plane_: ControlPlane, op: OperationRecord) -> GroupRecord | None:
    """The container group an operation acts on, if it still exists."""
    parts = op.resource_id.split("/")
    if len(parts) != 9 or parts[1].lower() != "subscriptions":
        return None
    return plane_.store.get_group(parts[2], parts[4], parts[8])


def _location(request: Request, location: str) -> str:
    """The location's known spelling; 404 if the node does not serve it."""
    known = locations(plane(request)).resolve(location)
    if known is None:
        raise ArmError(404, "LocationNotAvailableForResourceType",
                       f"The location '{location[:80]}' is not available for resource type "
                       f"'{PROVIDER}/locations'. This skiff serves "
                       f"'{plane(request).settings.api.location}' and its aliases.")
    return known


#: The words ``usages`` names each quota with (``name.localizedValue``).
_QUOTA_WORDS = {"ContainerGroups": "Container Groups", "StandardCores": "Standard Cores",
                "ContainerGroupCreatesPer5Minutes": "Container Group Creates per 5 Minutes",
                "ContainerGroupCreatesPerHour": "Container Group Creates per Hour",
                "ContainerGroupDeletesPer5Minutes": "Container Group Deletes per 5 Minutes",
                "ContainerGroupDeletesPerHour": "Container Group Deletes per Hour",
                "StandardSpotCores": "Standard Spot Cores"}


@router.get(LOCATION + "/usages")
def usages(subscription: str, location: str, request: Request,
           token: CanReadUsages) -> dict[str, Any]:
    """The subscription's quotas on this node: each one's current value and limit, as
    ACI's ``List Usage`` answers them (the node is one region: every location name it
    answers to shows the same). Cores are those held by groups that run."""
    _location(request, location)
    plane_ = plane(request)
    release_ended(plane_.store, plane_.engine)  # groups that ended hold no cores
    current = plane_.store.quota_usage(subscription)
    limits = plane_.settings.quotas.limits(subscription)
    return {"value": [{"unit": "Count", "currentValue": _count(current[name]),
                       "limit": limits[name],
                       "name": {"value": name, "localizedValue": _QUOTA_WORDS[name]}}
                      for name in QUOTA_NAMES]}


def _count(value: float) -> int | float:
    """A usage as ARM writes it: an integer, unless cores held are fractional (0.5)."""
    return int(value) if float(value).is_integer() else round(value, 3)


@router.get(LOCATION + "/capabilities")
def capabilities(subscription: str, location: str, request: Request,
                 token: CanReadCapabilities) -> dict[str, Any]:
    known = _location(request, location)
    ratio = plane(request).settings.api.overcommit
    capacity = plane(request).engine.capacity()
    memory, cpu = round(capacity.memory_gb * ratio, 1), capacity.cpu_cores * ratio
    # As ACI lists a region's: one entry without GPUs, then one per GPU SKU the node has
    # (its count the most one group may ask for, since the node is the region).
    skus = [("None", 0), *sorted((s, n) for s, n in capacity.gpu_skus.items() if n)]
    return {"value": [{
        "resourceType": "containerGroups", "osType": "Linux",
        "location": known, "ipAddressType": "Public",
        "gpu": sku, "capabilities": {"maxMemoryInGB": memory, "maxCpu": cpu,
                                     "maxGpuCount": count}} for sku, count in skus]}


@router.get(LOCATION + "/cachedImages")
def cached_images(subscription: str, location: str, request: Request,
                  token: CanReadCachedImages) -> dict[str, Any]:
    """The images in the node's cache that the subscription may know of: those its own
    groups use, and those the operator made public (``--public-cached-image``).

    The node's cache is shared by every tenant, and an image's reference can tell what
    another tenant runs (a private registry, a product's name), so it is never listed
    whole."""
    _location(request, location)
    plane_ = plane(request)
    visible = {_image_key(ref) for ref in plane_.settings.api.public_cached_images}
    visible |= _images_of(plane_, subscription)
    images = [ref for ref in plane_.engine.cached_images() if _image_key(ref) in visible]
    return {"value": [{"osType": "Linux", "image": image} for image in images]}


def _image_key(text: str) -> str:
    """An image reference as the cache knows it (``busybox``: docker.io/library/busybox:latest)."""
    try:
        return str(parse_reference(text))
    except InvalidReference:
        return text


def _images_of(plane_: ControlPlane, subscription: str) -> set[str]:
    """The images (keys) of every container, init containers too, of the subscription's groups."""
    found: set[str] = set()
    marker = None
    while True:
        page, marker = plane_.store.list_groups(subscription, limit=1000, after=marker)
        for record in page:
            props = record.body.get("properties", {})
            for container in (*props.get("containers", []), *props.get("initContainers", [])):
                image = container.get("properties", {}).get("image")
                if isinstance(image, str):
                    found.add(_image_key(image))
        if marker is None:
            return found


_ACTIONS = ("read", "write", "delete", "restart/action", "stop/action", "start/action",
            "containers/logs/read", "containers/exec/action", "containers/attach/action")


@router.get(f"/providers/{PROVIDER}/operations")
def provider_operations(request: Request,
                        token: Principal) -> dict[str, Any]:
    return {"value": [{
        "name": f"{PROVIDER}/containerGroups/{action}", "origin": "User",
        "display": {"provider": PROVIDER, "resource": "Container Groups",
                    "operation": action.replace("/", " "),
                    "description": f"containerGroups {action}"}} for action in _ACTIONS]}

