"""Standby container group pools (``Microsoft.StandbyPool``) and the group PUT that claims
from one.

A pool (``standbyContainerGroupPools``, the StandbyPool api-versions, 2025-03-01 and
2025-10-01 among them) names a container group profile and how many groups of it to
keep ready (``elasticityProfile.maxReadyCapacity``, refilled ``always``); the refill
loop (:mod:`skiff.control.standby`) keeps them running, and ``runtimeViews/latest``
counts them by state, as the StandbyPool API does.

A group PUT whose body names a pool (``properties.standbyPoolProfile.id``) carries
little more than the container names and their config maps: the rest comes from the
profile. It is answered with a ready member, re-keyed to the caller's name in one store
transaction (:meth:`skiff.store.Store.claim_member`), already ``Running`` and serving
its declared ports (:mod:`skiff.control.readiness`), with
``isCreatedFromStandbyPool: true``; no engine work is on that path. An empty pool
falls back to a normal create of the profile's group, unless the profile says
``failContainerGroupCreateOnReuseFailure``.

The group body of a profile, and what a group may add over it, come from
:mod:`skiff.control.profiles`, as for any group made from a profile.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from skiff.api.bodies import request_body
from skiff.api.context import (
    PROVIDER,
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    arm_id,
    check_api_version,
    check_linked,
    json_body,
    lro_headers,
    plane,
)
from skiff.api.places import locations
from skiff.control.access import Caller
from skiff.control.profiles import (
    check_revision,
    merge_group_fields,
    parse_profile_id,
    profile_group_body,
)
from skiff.control.readiness import STALLED_AFTER_S
from skiff.control.servicelog import STANDBY_POOL, WRITE
from skiff.control.standby import REFILL_INTERVAL_S, AdmissionOf, StandbyPools
from skiff.errors import ArmError
from skiff.models import parse_container_group
from skiff.models.arm import check_tags, merge_patch
from skiff.store import GroupRecord, subscription_key
from skiff.store.standby import POOL_TYPE, PoolRecord

router = APIRouter(dependencies=[Depends(check_api_version)])
_RG = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers"
POOL = f"{_RG}/{POOL_TYPE}/{{name}}"
POOLS = f"{_RG}/{POOL_TYPE}"
POOLS_OF_SUBSCRIPTION = f"/subscriptions/{{subscription}}/providers/{POOL_TYPE}"
VIEWS = f"{POOL}/runtimeViews"
VIEW = f"{VIEWS}/{{view}}"
CanRead = Annotated[Caller, allow(f"{POOL_TYPE}/read")]
CanList = Annotated[Listing, allow_listing(f"{POOL_TYPE}/read")]
CanWrite = Annotated[Caller, allow(f"{POOL_TYPE}/write")]
CanDelete = Annotated[Caller, allow(f"{POOL_TYPE}/delete")]

#: The spec's bounds: pool names, and the capacity of one pool.
_POOL_NAME = re.compile(r"[a-zA-Z0-9-]{3,24}")
MAX_READY_CAPACITY = 2000
REFILL_POLICIES = ("always",)
#: The first StandbyPool api-version with zones, the runtime view's status and its
#: counts per zone.
_ZONES_SINCE = "2025-03-01"
#: The api-version a profile's group body is read as (the one that has profiles).
_PROFILE_API_VERSION = "2025-09-01"
_POOL_ID = re.compile(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                      rf"{POOL_TYPE}/([^/]+)", re.IGNORECASE)
_POOL_BODY = {"type": "object", "required": ["properties"], "properties": {
    "location": {"type": "string"}, "tags": {"type": "object"},
    "properties": {"type": "object"}}}


# --- the pools' bodies -----------------------------------------------------------------------

def _invalid(message: str, target: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message, target=target)


def _get(doc: Any, name: str) -> Any:
    """``doc[name]``, the name matched without case (as ARM reads bodies); None if absent."""
    if not isinstance(doc, dict):
        return None
    return next((v for k, v in doc.items() if isinstance(k, str) and k.lower() == name.lower()),
                None)


def _pool_properties(props: Any) -> dict[str, Any]:
    """A pool's ``properties`` in canonical form, or a 400 naming the first broken rule."""
    if not isinstance(props, dict):
        raise _invalid("The pool's 'properties' must be an object.", "properties")
    elastic = _get(props, "elasticityProfile")
    if not isinstance(elastic, dict):
        raise _invalid("'elasticityProfile' is required.", "properties.elasticityProfile")
    ready = _get(elastic, "maxReadyCapacity")
    if isinstance(ready, bool) or not isinstance(ready, int) \
            or not 0 <= ready <= MAX_READY_CAPACITY:
        raise _invalid(f"'maxReadyCapacity' must be an integer from 0 to "
                       f"{MAX_READY_CAPACITY}.",
                       "properties.elasticityProfile.maxReadyCapacity")
    refill = _get(elastic, "refillPolicy")
    if refill is not None and (not isinstance(refill, str)
                               or refill.lower() not in REFILL_POLICIES):
        raise _invalid(f"'refillPolicy' must be one of {', '.join(REFILL_POLICIES)}.",
                       "properties.elasticityProfile.refillPolicy")
    group = _get(props, "containerGroupProperties")
    profile = _get(group, "containerGroupProfile")
    profile_id = _get(profile, "id")
    parse_profile_id(profile_id)  # ACI's 400s for a malformed reference
    revision = check_revision(_get(profile, "revision"))
    out_group: dict[str, Any] = {"containerGroupProfile": {"id": profile_id}}
    if revision is not None:
        out_group["containerGroupProfile"]["revision"] = revision
    subnets = _get(group, "subnetIds")
    if subnets is not None:
        if not isinstance(subnets, list) or not all(
                isinstance(_get(s, "id"), str) for s in subnets):
            raise _invalid("'subnetIds' must be a list of {\"id\": subnet id}.",
                           "properties.containerGroupProperties.subnetIds")
        out_group["subnetIds"] = [{"id": _get(s, "id")} for s in subnets]
    out: dict[str, Any] = {
        "elasticityProfile": {"maxReadyCapacity": ready,
                              "refillPolicy": (refill or "always").lower()},
        "containerGroupProperties": out_group}
    zones = _get(props, "zones")
    if zones is not None:
        if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
            raise _invalid("'zones' must be a list of strings.", "properties.zones")
        out["zones"] = zones
    return out


def render_pool(pool: PoolRecord, api_version: str | None = None) -> dict[str, Any]:
    """The pool as the StandbyPool API answers it."""
    props = copy.deepcopy(pool.properties)
    if api_version is not None and api_version[:10] < _ZONES_SINCE:
        props.pop("zones", None)
    props["provisioningState"] = "Succeeded"
    return {"id": pool.resource_id, "name": pool.name, "type": POOL_TYPE,
            "location": pool.location, "tags": pool.tags, "properties": props}


def _check_name(name: str) -> None:
    if _POOL_NAME.fullmatch(name) is None:
        raise ArmError(400, "InvalidResourceName",
                       f"The resource name '{name}' is invalid: a standby container group "
                       f"pool's name is 3 to 24 letters, digits and dashes.")


def _not_found(resource_group: str, name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{POOL_TYPE}/{name}' under resource group "
                    f"'{resource_group}' was not found.")


def _pool(plane_: ControlPlane, subscription: str, resource_group: str,
          name: str) -> PoolRecord:
    pool = plane_.store.get_pool(subscription, resource_group, name)
    if pool is None:
        raise _not_found(resource_group, name)
    return pool


# --- a profile's group --------------------------------------------------------------------------

def member_body(plane_: ControlPlane, pool: PoolRecord) -> dict[str, Any]:
    """The stored body of a new member of ``pool``: its profile's group, validated as a
    group PUT is, in the pool's location and subnets, without a DNS name label (a ready
    member holds none; the claim takes the profile's)."""
    group = pool.properties["containerGroupProperties"]
    profile = group["containerGroupProfile"]
    doc = profile_group_body(plane_, pool.subscription, profile["id"], profile.get("revision"))
    doc["location"] = pool.location
    props = doc.setdefault("properties", {})
    if "subnetIds" in group:
        props["subnetIds"] = group["subnetIds"]
    stored = _validated(plane_, doc, "standby-member")
    ip = stored["properties"].get("ipAddress")
    if isinstance(ip, dict):
        ip.pop("dnsNameLabel", None)
    return stored


def _validated(plane_: ControlPlane, doc: dict[str, Any], name: str) -> dict[str, Any]:
    body = parse_container_group(doc, name=name, default_location=plane_.settings.api.location,
                                 known_locations=locations(plane_),
                                 allow_privileged=plane_.settings.api.allow_privileged,
                                 api_version=_PROFILE_API_VERSION)
    if body.properties.isolation is None:
        body.properties.isolation = plane_.settings.api.default_isolation
    return body.to_stored()


def standby_pools(plane_: ControlPlane, admission: AdmissionOf, *,
                  interval_s: float = REFILL_INTERVAL_S) -> StandbyPools:
    """The refill loop of ``plane_``'s pools (not started), its members admitted by
    ``admission`` (the groups' rules: quotas, the node's capacity)."""
    return StandbyPools(plane_.store, plane_.reconciler,
                        member_body=lambda pool: member_body(plane_, pool),
                        admission=admission, interval_s=interval_s,
                        service_log=plane_.service_log)


# --- the pools' routes ------------------------------------------------------------------------

@router.put(POOL, openapi_extra=request_body(_POOL_BODY))
async def create_or_update(subscription: str, resource_group: str, name: str,
                           request: Request, token: CanWrite) -> Response:
    """Create a pool or replace its definition; the refill loop then fills it."""
    plane_ = plane(request)
    data = json_body(await request.body())
    version = request.query_params.get("api-version")
    return await asyncio.to_thread(_put_pool, plane_, subscription, resource_group, name, data,
                                   version, plane_.base_for(request))


def _put_pool(plane_: ControlPlane, subscription: str, resource_group: str, name: str,
              data: Any, version: str | None, base: str) -> Response:
    _check_name(name)
    if not isinstance(data, dict):
        raise _invalid("The request body must be a JSON object.", "")
    props = _pool_properties(_get(data, "properties"))
    tags = _get(data, "tags") or {}
    check_tags(tags)
    location = _get(data, "location") or plane_.settings.api.location
    if not isinstance(location, str):
        raise _invalid("'location' must be a string.", "location")
    existing = plane_.store.get_pool(subscription, resource_group, name)
    if existing is not None:
        location = existing.location
    # The profile must give a valid group now: a pool of nothing could never fill.
    member_body(plane_, PoolRecord(subscription, resource_group, name, location, tags, props,
                                   0.0))
    pool, created = plane_.store.put_pool(subscription, resource_group, name, location, tags,
                                          props)
    _refill(plane_)
    if not created:
        return JSONResponse(render_pool(pool, version))
    # The specification's create is asynchronous (201 with Azure-AsyncOperation): the pool
    # itself is made at once (its members are the refill's), so its operation is done.
    return JSONResponse(render_pool(pool, version), status_code=201,
                        headers=_finished(plane_, base, pool, "create"))


def _finished(plane_: ControlPlane, base: str, pool: PoolRecord, verb: str) -> dict[str, str]:
    """The LRO headers of a finished operation ``verb`` on ``pool``: the StandbyPool
    API's writes and deletes are asynchronous, and the SDKs poll what they are given."""
    op = plane_.store.create_operation(pool.subscription, pool.location, pool.resource_id,
                                       verb)
    plane_.store.finish_operation(op.id, "Succeeded")
    return lro_headers(base, pool.subscription, pool.location, op.id)


def _same_subscription(subscription: str, resource_id: str, what: str) -> None:
    found = resource_id.strip("/").split("/")
    if len(found) < 2 or subscription_key(found[1]) != subscription_key(subscription):
        raise ArmError(400, "InvalidResourceReference",
                       f"The {what} '{resource_id}' must be in the subscription "
                       f"'{subscription_key(subscription)}' of the request.")


def _refill(plane_: ControlPlane) -> None:
    if plane_.standby is not None:
        plane_.standby.kick()


@router.get(POOL)
def get(subscription: str, resource_group: str, name: str, request: Request,
        token: CanRead) -> dict[str, Any]:
    pool = _pool(plane(request), subscription, resource_group, name)
    return render_pool(pool, request.query_params.get("api-version"))


@router.patch(POOL, openapi_extra=request_body(_POOL_BODY))
async def update(subscription: str, resource_group: str, name: str, request: Request,
                 token: CanWrite) -> dict[str, Any]:
    """Change a pool's tags or any part of its properties, as a JSON merge patch (the
    rest stays)."""
    plane_ = plane(request)
    patch = json_body(await request.body())
    pool = _pool(plane_, subscription, resource_group, name)
    if not isinstance(patch, dict):
        raise _invalid("The request body must be a JSON object.", "")
    tags = _get(patch, "tags")
    if tags is not None:
        check_tags(tags)
    props = pool.properties
    change = _get(patch, "properties")
    if change is not None:
        if not isinstance(change, dict):
            raise _invalid("'properties' must be an object.", "properties")
        props = merge_patch(props, change)  # ARM's PATCH: a JSON merge patch, in depth
    props = _pool_properties(props)
    updated, _ = plane_.store.put_pool(subscription, resource_group, name, pool.location,
                                       pool.tags if tags is None else tags, props)
    _refill(plane_)
    return render_pool(updated, request.query_params.get("api-version"))


@router.delete(POOL)
def delete(subscription: str, resource_group: str, name: str, request: Request,
           token: CanDelete) -> Response:
    """Delete a pool and its ready members (claimed groups are the tenant's and stay):
    202 with the finished operation, or 204 when there was none."""
    plane_ = plane(request)
    found = plane_.store.get_pool(subscription, resource_group, name)
    members = plane_.store.delete_pool(subscription, resource_group, name)
    if found is None or members is None:
        return Response(status_code=204)
    for uid in members:
        plane_.reconciler.kick(uid)
    headers = _finished(plane_, plane_.base_for(request), found, "delete")
    headers["Location"] = headers["Azure-AsyncOperation"]
    return Response(status_code=202, headers=headers)


@router.get(POOLS)
def list_by_resource_group(subscription: str, resource_group: str, request: Request,
                           token: CanList) -> dict[str, Any]:
    version = request.query_params.get("api-version")
    pools = plane(request).store.list_pools(subscription, resource_group)
    return {"value": token.visible([render_pool(p, version) for p in pools])}


@router.get(POOLS_OF_SUBSCRIPTION)
def list_by_subscription(subscription: str, request: Request,
                         token: CanList) -> dict[str, Any]:
    version = request.query_params.get("api-version")
    pools = plane(request).store.list_pools(subscription)
    return {"value": token.visible([render_pool(p, version) for p in pools])}


def runtime_view(plane_: ControlPlane, pool: PoolRecord,
                 api_version: str | None = None) -> dict[str, Any]:
    """The pool's ``runtimeViews/latest``: its members counted by state (one that runs
    but does not serve yet is ``Creating``), and whether the refill loop keeps it full
    and its members serve (``status``)."""
    counts = {"Running": 0, "Creating": 0, "Deleting": 0}
    for member in plane_.store.pool_members(pool.key):
        if member.state in counts:
            counts[member.state] += 1
    props: dict[str, Any] = {
        "instanceCountSummary": [{"instanceCountsByState": [
            {"state": state, "count": count} for state, count in counts.items()]}],
        "provisioningState": "Succeeded"}
    if api_version is None or api_version[:10] >= _ZONES_SINCE:
        problem = None if plane_.standby is None else plane_.standby.problems.get(pool.key)
        stalled = 0 if plane_.standby is None else plane_.standby.readiness.stalled(pool.key)
        if problem is None and stalled:
            problem = (f"{stalled} of the pool's container groups run but their declared "
                       f"ports have not answered for {STALLED_AFTER_S:g} s; a group is "
                       f"claimed only once they answer.")
        props["status"] = ({"code": "HealthState/healthy", "message": "The pool is healthy."}
                           if problem is None else
                           {"code": "HealthState/degraded", "message": problem})
    return {"id": f"{pool.resource_id}/runtimeViews/latest", "name": "latest",
            "type": f"{POOL_TYPE}/runtimeViews", "properties": props}


@router.get(VIEW)
def get_runtime_view(subscription: str, resource_group: str, name: str, view: str,
                     request: Request, token: CanRead) -> dict[str, Any]:
    """The pool's latest runtime view; any other name than ``latest`` is not found."""
    plane_ = plane(request)
    pool = _pool(plane_, subscription, resource_group, name)
    if view.lower() != "latest":
        raise ArmError(404, "ResourceNotFound",
                       f"The runtime view '{view}' of pool '{name}' was not found; ask for "
                       f"'latest'.")
    return runtime_view(plane_, pool, request.query_params.get("api-version"))


@router.get(VIEWS)
def list_runtime_views(subscription: str, resource_group: str, name: str, request: Request,
                       token: CanRead) -> dict[str, Any]:
    plane_ = plane(request)
    pool = _pool(plane_, subscription, resource_group, name)
    return {"value": [runtime_view(plane_, pool, request.query_params.get("api-version"))]}


# --- the group PUT that claims from a pool -------------------------------------------------

def standby_profile(data: Any) -> Any:
    """The ``standbyPoolProfile`` a group PUT body names (None: an ordinary PUT)."""
    return _get(_get(data, "properties"), "standbyPoolProfile")


def put_from_pool(plane_: ControlPlane, token: Caller, subscription: str, resource_group: str,
                  name: str, data: dict[str, Any], standby: Any, *,
                  render: Callable[[GroupRecord], dict[str, Any]],
                  label: Callable[[str, dict[str, Any]], str | None]) -> Response | dict[str, Any]:
    """Answer a group PUT that names a pool with a claimed ready member (201, Running), or
    give back the whole body (the profile's group with the request's fields) for an
    ordinary create or update: the pool is empty, or the group exists already.
    ``label(uid, stored body)``: the DNS label the claimed group takes."""
    pool_id = _get(standby, "id")
    if not isinstance(pool_id, str) or _POOL_ID.fullmatch(pool_id) is None:
        raise _invalid("'standbyPoolProfile.id' must be the ARM id of a standby container "
                       "group pool.", "properties.standbyPoolProfile.id")
    _same_subscription(subscription, pool_id, "standby pool")
    check_linked(plane_, token, action=f"{PROVIDER}/containerGroups/write",
                 scope=arm_id(subscription, resource_group, name), linked=pool_id,
                 linked_action=f"{POOL_TYPE}/read")
    match = _POOL_ID.fullmatch(pool_id)
    assert match is not None
    pool = _pool(plane_, subscription, match.group(2), match.group(3))
    whole = _claim_body(plane_, pool, data, standby)
    tags = _get(data, "tags") or {}
    fail = _get(standby, "failContainerGroupCreateOnReuseFailure") is True
    maps_changed: list[bool] = []

    def claimed(member: dict[str, Any]) -> dict[str, Any]:
        out = _claimed(member, whole)
        maps_changed.append(_config_maps(out) != _config_maps(member))
        return out

    record = plane_.store.claim_member(pool.key, subscription, resource_group, name,
                                       body=claimed, tags=tags, label=label)
    if record is not None:
        answer = render(record)
        names = plane_.reconciler.names
        if names is not None:  # the claimed label resolves from now on
            names.publish(record, (answer["properties"].get("ipAddress") or {}).get("ip"))
        # Once the answer is sent, not on the claim's path: the pool's event of the claim,
        # the refill (a profile read, a store write, the loop's kick), and the loop's run
        # of the group where its config maps changed (the engine rewrites their files in
        # place, restarting nothing).
        return JSONResponse(answer, status_code=201, background=BackgroundTask(
            _after_claim, plane_, pool, record, maps_changed == [True]))
    if fail and plane_.store.get_group(subscription, resource_group, name) is None:
        raise ArmError(409, "StandbyPoolReuseFailed",
                       f"The standby pool '{pool.name}' has no ready container group, and "
                       f"failContainerGroupCreateOnReuseFailure is set: none was created.")
    return whole


def _claim_body(plane_: ControlPlane, pool: PoolRecord, data: dict[str, Any],
                standby: Any) -> dict[str, Any]:
    """The whole group a claim asks for: the profile's (the request's revision, else the
    pool's) with what a group may add over it (its containers' config maps, tags, its
    DNS label: :func:`~skiff.control.profiles.merge_group_fields`), in the pool's
    location and subnets, validated as any group PUT (ACI takes the claim's validation
    from the profile)."""
    props = _get(data, "properties") or {}
    ref = _get(props, "containerGroupProfile") or \
        pool.properties["containerGroupProperties"]["containerGroupProfile"]
    containers = _get(props, "containers") or []
    if not isinstance(containers, list) or not all(
            isinstance(_get(c, "name"), str) for c in containers):
        raise _invalid("'containers' must be a list of {\"name\", \"properties\"}, each "
                       "named as a container of the profile.", "properties.containers")
    for container in containers:
        config = _get(_get(container, "properties"), "configMap")
        pairs = _get(config, "keyValuePairs")
        if config is not None and (not isinstance(pairs, dict) or not all(
                isinstance(v, str) for v in pairs.values())):
            raise _invalid("A container's config map must be {\"keyValuePairs\": {key: "
                           "string value}}.", "properties.containers.properties.configMap")
    doc = profile_group_body(plane_, pool.subscription, _get(ref, "id"),
                             check_revision(_get(ref, "revision")))
    whole = merge_group_fields(doc, data)
    whole["location"] = pool.location
    group = whole.setdefault("properties", {})
    group["standbyPoolProfile"] = standby
    if "subnetIds" in pool.properties["containerGroupProperties"]:
        group["subnetIds"] = pool.properties["containerGroupProperties"]["subnetIds"]
    return _validated(plane_, whole, "standby-claim")


def _after_claim(plane_: ControlPlane, pool: PoolRecord, claimed: GroupRecord,
                 maps_changed: bool) -> None:
    plane_.service_log.record(
        caller=STANDBY_POOL, action=WRITE, resource_id=claimed.resource_id,
        on_behalf_of=pool.resource_id,
        description=f"A container group of the standby pool '{pool.name}': claimed.")
    if maps_changed:
        plane_.reconciler.kick(claimed.uid)
    _refill(plane_)


def _config_maps(body: dict[str, Any]) -> dict[str, Any]:
    return {c.get("name"): c.get("properties", {}).get("configMap")
            for c in body.get("properties", {}).get("containers", [])}


def _claimed(member: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    """A ready member's body as the claim leaves it: what it runs, with the request's
    config maps, profile, pool and DNS label, and ``isCreatedFromStandbyPool``."""
    body = copy.deepcopy(member)
    props, asked = body["properties"], whole["properties"]
    maps = {c["name"].lower(): c["properties"].get("configMap")
            for c in asked.get("containers", [])}
    for container in props.get("containers", []):
        config = maps.get(container["name"].lower())
        if config is not None:
            container["properties"]["configMap"] = config
    for key in ("containerGroupProfile", "standbyPoolProfile"):
        props[key] = asked[key]
    label = (asked.get("ipAddress") or {}).get("dnsNameLabel")
    if label and isinstance(props.get("ipAddress"), dict):
        props["ipAddress"]["dnsNameLabel"] = label
    props["isCreatedFromStandbyPool"] = True
    if "tags" in whole:
        body["tags"] = whole["tags"]
    return body
