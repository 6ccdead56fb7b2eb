"""NGroup routes: ``Microsoft.ContainerInstance/ngroups`` (api-version 2024-09-01-preview
and later): CRUD, lists, and start, stop and restart of every member.

Handlers check the body, commit it to the store, kick the controller
(:mod:`skiff.control.ngroups`) and answer at once with an operation to poll, as ACI's
PUT, PATCH, DELETE, start and restart are long-running. The controller writes members
through :class:`ApiMemberWrites`: the container groups' own PUT and DELETE, so a member
is admitted, labelled, reconciled and metered as any group is.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api import groups
from skiff.api.context import (
    PROVIDER,
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    api_version_of,
    arm_id,
    check_api_version,
    json_body,
    lro_headers,
    plane,
)
from skiff.api.places import locations
from skiff.control.access import Caller
from skiff.control.ngroups import NGroups, Profiles, member_body
from skiff.control.profiles import profile_group_body
from skiff.control.servicelog import CONTAINER_INSTANCE, DELETE, WRITE
from skiff.errors import ArmError
from skiff.models import parse_container_group
from skiff.models.arm import check_tags, merge_patch
from skiff.models.ngroups import (
    NGroupSpec,
    check_immutable,
    member_name,
    parse_ngroup,
    render_ngroup,
)
from skiff.store.bodysecrets import ngroup_slots
from skiff.store.ngroups import NGroupRecord

#: The first api-version that has NGroups; ARM knows no such type before it.
FIRST_VERSION = "2024-09-01"
_TYPE = f"{PROVIDER}/ngroups"
#: The api-version members are checked and written in: the NGroups' own.
NGROUP_MEMBER_VERSION = "2025-09-01"
#: Where a secret volume's file is in a body (its content answered null).
_SECRET_FILE = re.compile(r"/volumes/[0-9]+/secret/[^/]+$")
NGROUP = ("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
          f"{_TYPE}/{{name}}")


def check_version(request: Request) -> None:
    """400 NoRegisteredProviderFound for an api-version before NGroups. Called by each
    route once its caller is authorized: a caller with no right there learns nothing,
    not even which versions serve the type."""
    version = api_version_of(request)
    if version[:10] < FIRST_VERSION:
        raise ArmError(400, "NoRegisteredProviderFound",
                       f"No registered resource provider found for location and API version "
                       f"'{version}' and type 'ngroups'. The supported api-versions are "
                       f"'{FIRST_VERSION}-preview' and later.")


router = APIRouter(dependencies=[Depends(check_api_version)])
CanRead = Annotated[Caller, allow(f"{_TYPE}/read")]
CanList = Annotated[Listing, allow_listing(f"{_TYPE}/read")]
CanWrite = Annotated[Caller, allow(f"{_TYPE}/write")]
CanDelete = Annotated[Caller, allow(f"{_TYPE}/delete")]
CanStart = Annotated[Caller, allow(f"{_TYPE}/start/action")]
CanStop = Annotated[Caller, allow(f"{_TYPE}/stop/action")]
CanRestart = Annotated[Caller, allow(f"{_TYPE}/restart/action")]


class ApiMemberWrites:
    """Members written as a container group's PUT and DELETE are, by the NGroup's
    service identity: an owner of the NGroup's subscription and of nothing else."""

    def __init__(self, plane_: ControlPlane) -> None:
        self.plane = plane_

    def _caller(self, ngroup: NGroupRecord) -> Caller:
        return Caller(object_id=f"ngroup:{ngroup.uid}", client=_TYPE, kind="Token",
                      owner_of=f"/subscriptions/{ngroup.subscription}")

    def put(self, ngroup: NGroupRecord, name: str, body: dict[str, Any]) -> None:
        began = time.time()
        answer = groups._create_or_update(self.plane, self._caller(ngroup),
                                          ngroup.subscription, ngroup.resource_group, name,
                                          json.dumps(body).encode(),
                                          api_version=NGROUP_MEMBER_VERSION, built=True)
        operation = answer.headers.get("Azure-AsyncOperation")
        if operation is not None:  # a write (the same body again is none)
            self._record(ngroup, WRITE, arm_id(ngroup.subscription, ngroup.resource_group,
                                               name),
                         unquote(urlsplit(operation).path.rsplit("/", 1)[-1]), began)

    def delete(self, ngroup: NGroupRecord, name: str) -> None:
        began = time.time()
        deleted = groups._begin_delete(self.plane, ngroup.subscription, ngroup.resource_group,
                                       name)
        if deleted is not None:
            self._record(ngroup, DELETE, deleted[0].resource_id, deleted[2], began)

    def _record(self, ngroup: NGroupRecord, action: str, resource_id: str, lro_id: str,
                began: float) -> None:
        self.plane.service_log.record(
            caller=CONTAINER_INSTANCE, action=action, resource_id=resource_id,
            on_behalf_of=ngroup.resource_id, lro_id=lro_id, began=began,
            description=f"A member of the NGroup '{ngroup.name}'.")


def attach_ngroups(plane_: ControlPlane, *, profiles: Profiles | None = None,
                   interval_s: float = 1.0) -> NGroups:
    """The plane's NGroups controller (not started); its members are built from the
    plane's container group profiles unless ``profiles`` says otherwise."""
    def stored(subscription: str, profile_id: str, revision: int | None) -> dict[str, Any]:
        return profile_group_body(plane_, subscription, profile_id, revision)

    plane_.ngroups = NGroups(plane_.store, plane_.engine, ApiMemberWrites(plane_),
                             profiles=profiles or stored, interval_s=interval_s)
    return plane_.ngroups


def _controller(plane_: ControlPlane) -> NGroups:
    if plane_.ngroups is None:
        raise ArmError(503, "ServiceUnavailable", "This node serves no NGroups.")
    return plane_.ngroups


def _record(plane_: ControlPlane, subscription: str, resource_group: str, name: str, *,
            deleting: bool = False) -> NGroupRecord:
    record = plane_.store.get_ngroup(subscription, resource_group, name)
    if record is None or (record.desired == "deleted" and not deleting):
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{_TYPE}/{name}' under resource group "
                       f"'{resource_group}' was not found.")
    return record


def _render(record: NGroupRecord) -> dict[str, Any]:
    return render_ngroup(_scrubbed(record.body), resource_id=record.resource_id,
                         name=record.name, provisioning_state=record.provisioning_state,
                         tags=record.tags)


def _scrubbed(body: dict[str, Any]) -> dict[str, Any]:
    """The body without the secrets its per-member fields may hold (volumes' account
    keys, secure values...): a secret is never answered; a secret volume's files are
    answered by name, their contents null, as a group's are."""
    body = json.loads(json.dumps(body))
    for holder, key, pointer in list(ngroup_slots(body)):
        if _SECRET_FILE.search(pointer):
            holder[key] = None
        else:
            del holder[key]
    return body


def _write(plane_: ControlPlane, subscription: str, resource_group: str, name: str,
           doc: Any, base: str) -> Response:
    body = parse_ngroup(doc, subscription=subscription, name=name,
                        default_location=plane_.settings.api.location)
    if body["location"] not in locations(plane_):
        raise ArmError(400, "LocationNotAvailableForResourceType",
                       f"The provided location '{body['location']}' is not available for "
                       f"resource type '{_TYPE}'.", target="location")
    controller = _controller(plane_)
    existing = plane_.store.get_ngroup(subscription, resource_group, name)
    if existing is not None and existing.desired != "deleted":
        check_immutable(existing.body, body)
    # The profile must exist now, as ACI checks it before it accepts the NGroup, and a
    # member made of it must be a group the API would take.
    spec = NGroupSpec.from_stored(body)
    group = controller.profiles(subscription, spec.profile.id, spec.profile.revision)
    member = member_body(group, spec.profile.overrides, location=body["location"],
                         ngroup_id=arm_id(subscription, resource_group) +
                         f"/providers/{_TYPE}/{name}")
    parse_container_group(member, name=member_name(spec.prefix),
                          default_location=plane_.settings.api.location,
                          known_locations=locations(plane_),
                          allow_privileged=plane_.settings.api.allow_privileged,
                          api_version=NGROUP_MEMBER_VERSION)
    tags = check_tags(doc.get("tags") or {}) if isinstance(doc, dict) else {}
    record, created = plane_.store.put_ngroup(subscription, resource_group, name,
                                              body["location"], body, tags)
    headers: dict[str, str] = {}
    if created or existing is None or record.version != existing.version:
        op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                           "create" if created else "update",
                                           generation=record.version)
        headers = lro_headers(base, subscription, record.location, op.id)
        controller.kick()
    return JSONResponse(_render(record), status_code=201 if created else 200, headers=headers)


@router.put(NGROUP, status_code=201)
async def create_or_update(subscription: str, resource_group: str, name: str,
                           request: Request, token: CanWrite) -> Response:
    """Create an NGroup, or update one (a new profile revision rolls its members over
    as its updateProfile says)."""
    check_version(request)
    plane_ = plane(request)
    doc = json_body(await request.body())
    return await asyncio.to_thread(_write, plane_, subscription, resource_group, name, doc,
                                   plane_.base_for(request))


@router.patch(NGROUP)
async def update(subscription: str, resource_group: str, name: str, request: Request,
                 token: CanWrite) -> Response:
    """ARM's PATCH (NGroupPatch): tags replaced, and the properties, identity and zones
    given merged over the NGroup's as a JSON merge patch (RFC 7396): the SDK's
    ``NGroupPatch(elastic_profile=ElasticProfile(desired_count=3))`` sends only the count,
    and the naming policy and the rest of ``elasticProfile`` stay."""
    check_version(request)
    plane_ = plane(request)
    record = _record(plane_, subscription, resource_group, name)
    patch = json_body(await request.body())
    if not isinstance(patch, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    props = patch.get("properties") or {}
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent", "'properties' must be an object.",
                       target="properties")
    doc: dict[str, Any] = {**record.body, "tags": patch.get("tags", record.tags),
                           "properties": merge_patch(record.body.get("properties", {}), props)}
    for key in ("identity", "zones"):
        if key in patch:
            doc[key] = patch[key]
    return await asyncio.to_thread(_write, plane_, subscription, resource_group, name, doc,
                                   plane_.base_for(request))


@router.get(NGROUP)
def get(subscription: str, resource_group: str, name: str, request: Request,
        token: CanRead) -> dict[str, Any]:
    check_version(request)
    return _render(_record(plane(request), subscription, resource_group, name, deleting=True))


@router.get(NGROUP + "/events")
def events(subscription: str, resource_group: str, name: str, request: Request,
           token: CanRead) -> dict[str, Any]:
    """The NGroup's newest events (a skiff extension): scale-outs, rolling update batches
    and their outcome, members replaced, members that could not be made."""
    check_version(request)
    record = _record(plane(request), subscription, resource_group, name, deleting=True)
    return {"value": record.events}


@router.delete(NGROUP)
def delete(subscription: str, resource_group: str, name: str, request: Request,
           token: CanDelete) -> Response:
    """Delete the NGroup and its members: 202 with an operation; 204 if there is none."""
    check_version(request)
    plane_ = plane(request)
    record = plane_.store.get_ngroup(subscription, resource_group, name)
    if record is None:
        return Response(status_code=204)
    plane_.store.set_ngroup_desired(record.uid, "deleted")
    op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                       "delete", generation=record.version)
    _controller(plane_).kick()
    return Response(status_code=202, headers=lro_headers(plane_.base_for(request), subscription,
                                                         record.location, op.id))


def _each_member(plane_: ControlPlane, record: NGroupRecord, desired: str) -> list[str]:
    """Ask every member for ``desired`` (running: started or restarted, admitted again);
    the uids of those asked."""
    uids = []
    for member in plane_.store.members(record.uid):
        group = plane_.store.get_group(record.subscription, record.resource_group, member.name)
        if group is None or group.desired == "deleted":
            continue
        admission = groups.admission_for(plane_, record.subscription, group.location) \
            if desired == "running" else None
        groups._admitted(plane_, functools.partial(
            plane_.store.set_desired, record.subscription, record.resource_group, member.name,
            desired, admission=admission), None, group.location)
        plane_.reconciler.kick(group.uid)
        uids.append(group.uid)
    return uids


def _action(request: Request, subscription: str, resource_group: str, name: str,
            kind: str) -> Response:
    plane_ = plane(request)
    record = _record(plane_, subscription, resource_group, name)
    record = plane_.store.set_ngroup_desired(record.uid, "running") or record
    _each_member(plane_, record, "running")
    op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                       kind, generation=record.version)
    _controller(plane_).kick()
    return Response(status_code=202, headers=lro_headers(plane_.base_for(request), subscription,
                                                         record.location, op.id))


@router.post(NGROUP + "/start", status_code=202)
def start(subscription: str, resource_group: str, name: str, request: Request,
          token: CanStart) -> Response:
    """Start every member (each admitted again: a stopped group holds no capacity)."""
    check_version(request)
    return _action(request, subscription, resource_group, name, "start")


@router.post(NGROUP + "/restart", status_code=202)
def restart(subscription: str, resource_group: str, name: str, request: Request,
            token: CanRestart) -> Response:
    """Restart every member in place."""
    check_version(request)
    return _action(request, subscription, resource_group, name, "restart")


@router.post(NGROUP + "/stop", status_code=204)
def stop(subscription: str, resource_group: str, name: str, request: Request,
         token: CanStop) -> Response:
    """Stop every member (synchronous, as ACI's): none is replaced while stopped."""
    check_version(request)
    plane_ = plane(request)
    record = _record(plane_, subscription, resource_group, name)
    plane_.store.set_ngroup_desired(record.uid, "stopped")
    for uid in _each_member(plane_, record, "stopped"):
        plane_.reconciler.wait_idle(uid)
    _controller(plane_).kick()
    return Response(status_code=204)


def _list(plane_: ControlPlane, subscription: str, resource_group: str | None,
          listing: Listing | None = None) -> dict[str, Any]:
    items = [_render(r) for r in plane_.store.list_ngroups(subscription, resource_group)
             if r.desired != "deleted"]
    return {"value": listing.visible(items) if listing is not None else items}


@router.get(f"/subscriptions/{{subscription}}/providers/{_TYPE}")
def list_in_subscription(subscription: str, request: Request, token: CanList) -> dict[str, Any]:
    check_version(request)
    return _list(plane(request), subscription, None, token)


@router.get(f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/"
            f"{_TYPE}")
def list_in_resource_group(subscription: str, resource_group: str, request: Request,
                           token: CanRead) -> dict[str, Any]:
    check_version(request)
    return _list(plane(request), subscription, resource_group)
