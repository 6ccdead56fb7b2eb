"""Container group routes: what ACI's REST API does to ``containerGroups``.

Handlers validate, commit desired state to the store, kick the reconcile
loop and answer at once; long-running work is reported through operation
resources (``Azure-AsyncOperation``) as the SDK's ARM poller expects.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import CONTAINER_GROUP, EXEC_REQUEST, TAGS_PATCH, request_body
from skiff.api.context import (
    PROVIDER,
    SUBNET_JOIN,
    ControlPlane,
    Listing,
    Session,
    allow,
    allow_listing,
    arm_id,
    check_api_version,
    check_linked,
    json_body,
    lro_headers,
    plane,
    until_idle,
)
from skiff.api.identities import assign_group_identity, render_group_identity_of
from skiff.api.listing import encode, named, page_size, shape_of
from skiff.api.places import locations
from skiff.api.standby import put_from_pool, standby_profile
from skiff.control.access import Caller
from skiff.control.capacity import node_admission, release_ended
from skiff.control.names import group_fqdn
from skiff.control.profiles import merge_group_fields, parse_profile_id, profile_group_body
from skiff.control.scrubbing import group_secrets, scrub_view, scrubbing_errors
from skiff.core.view import Event, GroupView
from skiff.errors import ArmError, GroupNotFound
from skiff.models import ContainerGroupBody, parse_container_group, render_container_group
from skiff.models.arm import check_tags
from skiff.models.labels import group_label
from skiff.models.rules import subnet_key
from skiff.models.versions import key_of, left_out, shape
from skiff.store import GroupRecord
from skiff.store.admission import Admission, CapacityExceeded, QuotaExceeded

router = APIRouter(dependencies=[Depends(check_api_version)])
T = TypeVar("T")
GROUP = (f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/"
         f"{PROVIDER}/containerGroups/{{name}}")
#: The routes' callers, each allowed its ARM action (skiff.control.access).
_ACTION = f"{PROVIDER}/containerGroups"
CanRead = Annotated[Caller, allow(f"{_ACTION}/read")]
CanList = Annotated[Listing, allow_listing(f"{_ACTION}/read")]
CanWrite = Annotated[Caller, allow(f"{_ACTION}/write")]
CanDelete = Annotated[Caller, allow(f"{_ACTION}/delete")]
CanStart = Annotated[Caller, allow(f"{_ACTION}/start/action")]
CanRestart = Annotated[Caller, allow(f"{_ACTION}/restart/action")]
CanStop = Annotated[Caller, allow(f"{_ACTION}/stop/action")]
CanReadLogs = Annotated[Caller, allow(f"{_ACTION}/containers/logs/read")]
CanExec = Annotated[Caller, allow(f"{_ACTION}/containers/exec/action")]
CanAttach = Annotated[Caller, allow(f"{_ACTION}/containers/attach/action")]


def _record(plane_: ControlPlane, token: Caller, subscription: str, resource_group: str,
            name: str, *, deleting: bool = False) -> GroupRecord:
    """The group, 404 if there is none; one being deleted only when ``deleting`` (a GET
    shows it ``Deleting`` until it is gone; nothing else acts on it)."""
    record = plane_.store.get_group(subscription, resource_group, name)
    if record is None or (record.desired == "deleted" and not deleting):
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{PROVIDER}/containerGroups/{name}' under resource group "
                       f"'{resource_group}' was not found.")
    return record


def _view(plane_: ControlPlane, record: GroupRecord,
          body: ContainerGroupBody | None = None) -> GroupView | None:
    """The engine's view of the group, every text in it scrubbed of the group's secrets
    (whatever the engine did: the control plane relies on no engine for that)."""
    try:
        view = plane_.engine.view(record.uid)
    except GroupNotFound:
        return None
    return scrub_view(view, _secrets(record, body))


def _secrets(record: GroupRecord, body: ContainerGroupBody | None = None) -> tuple[str, ...] | None:
    return group_secrets(body if body is not None else record.body, uid=record.uid,
                         name=record.name)


def _render(plane_: ControlPlane, record: GroupRecord, *, instance_view: bool = True,
            view: GroupView | None = None, ip: str | None = None,
            version: str | None = None) -> dict[str, Any]:
    """The group as ARM answers it to api-version ``version`` (its fields only:
    :func:`skiff.models.versions.left_out`); ``ip`` is its address where no ``view`` is
    given (a list shows addresses but no instance views, as ARM's does)."""
    body = ContainerGroupBody.from_stored(record.body)
    if instance_view and view is None:
        view = _view(plane_, record, body)
    elif view is not None:
        view = scrub_view(view, _secrets(record, body))
    if view is not None and record.evictions:
        view = replace(view, events=[*view.events, _eviction(record)])
    rendered = render_container_group(
        body, resource_id=record.resource_id, name=record.name,
        provisioning_state=record.provisioning_state, view=view if instance_view else None,
        ip=view.ip if view is not None else ip,
        fqdn=group_fqdn(body, record, plane_.settings.dns), include_instance_view=instance_view)
    rendered["tags"] = record.tags or rendered.get("tags") or {}
    if record.body.get("properties", {}).get("isCreatedFromStandbyPool"):
        rendered["properties"]["isCreatedFromStandbyPool"] = True  # claimed from a pool
    render_group_identity_of(plane_, rendered)
    return shape(rendered, left_out(version))


def _version(request: Request) -> str | None:
    return request.query_params.get("api-version")


def _eviction(record: GroupRecord) -> Event:
    """The group's evictions, as an event of its instance view (the last one's time)."""
    at = record.evicted_at or record.updated_at
    waiting = " It runs again once capacity is spare." if record.evicted else ""
    return Event("Evicted", f"The Spot container group was evicted: a Regular container "
                 f"group needed its capacity.{waiting}", "Warning", record.evictions, at, at)


def admission_for(plane_: ControlPlane, subscription: str, region: str) -> Admission:
    """What a group of ``subscription`` must fit in: the node's CPUs and memory times the
    overcommit, and the subscription's quotas (``region``: the location it named)."""
    return node_admission(plane_.settings, plane_.engine)(subscription, region)


def _admitted(plane_: ControlPlane, write: Callable[[], T], body: ContainerGroupBody | None,
              location: str) -> T:
    """``write`` (a store write that admits a group); refused for capacity or cores, it is
    tried once more after the groups whose containers have all ended are released (the
    engine knows of those exits, the store learns them here, when they matter)."""
    try:
        try:
            return write()
        except (CapacityExceeded, QuotaExceeded) as exc:
            if (isinstance(exc, QuotaExceeded)
                    and exc.quota not in ("StandardCores", "StandardSpotCores")) \
                    or not release_ended(plane_.store, plane_.engine):
                raise
        return write()
    except CapacityExceeded as exc:
        raise _unavailable(exc, body, location) from None


def _unavailable(exc: CapacityExceeded, body: ContainerGroupBody | None,
                 location: str) -> ArmError:
    """ACI's words for a node that is full, naming only what the request asked: what is
    left on the node would tell a tenant how much the others use."""
    os_type = body.properties.os_type if body is not None else "Linux"
    network = " virtual network" if body is not None and body.properties.subnet_ids else ""
    gpus = "".join(f" '{n}' '{sku}' GPU" for sku, n in sorted(exc.gpus.items()))
    return ArmError(409, "ServiceUnavailable",
                    f"The requested resource is not available in the location "
                    f"'{location}' at this moment. Please retry with a "
                    f"different resource request or in another location. Resource "
                    f"requested: '{exc.cpu:g}' CPU '{exc.memory_gb:g}' GB memory "
                    f"'{os_type}' OS{gpus}{network}"
                    + (f".{exc.gpu_words()}" if exc.node_gpus is not None else ""))


@router.put(GROUP, status_code=201, openapi_extra=request_body(CONTAINER_GROUP))
async def create_or_update(subscription: str, resource_group: str, name: str, request: Request,
                           token: CanWrite) -> Response:
    """Create a container group, or update one (tags in place; anything else redeploys).

    The work (validation, store transactions with their fsyncs, rendering) runs
    in a worker thread, so that concurrent requests are not queued behind it
    on the event loop."""
    plane_ = plane(request)
    raw = await request.body()
    return await asyncio.to_thread(_create_or_update, plane_, token, subscription,
                                   resource_group, name, raw,
                                   request.query_params.get("api-version"),
                                   plane_.base_for(request))


def _create_or_update(plane_: ControlPlane, token: Caller, subscription: str,
                      resource_group: str, name: str, raw: bytes,
                      api_version: str | None = None, base: str | None = None,
                      built: bool = False) -> Response:
    """The PUT's work; ``built``: the body is already made from its profile revision (an
    NGroup's member, with per-member fields a group's own PUT could not add)."""
    doc = json_body(raw)
    standby = None if built else standby_profile(doc)
    if standby is not None:  # a claim from a standby pool, or the profile's group
        claimed = put_from_pool(
            plane_, token, subscription, resource_group, name, doc, standby,
            render=lambda record: _render(plane_, record),
            label=lambda uid, stored: _label(plane_, ContainerGroupBody.from_stored(stored),
                                             subscription, resource_group, uid))
        if isinstance(claimed, Response):
            return claimed
        doc = claimed
    elif not built:
        doc = _from_profile(plane_, token, doc, subscription,
                            arm_id(subscription, resource_group, name))
    body = parse_container_group(doc, name=name,
                                 default_location=plane_.settings.api.location,
                                 known_locations=locations(plane_),
                                 allow_privileged=plane_.settings.api.allow_privileged,
                                 api_version=api_version)
    placement = subnet_key(body.properties)
    if placement is not None:  # before any look-up: the answer tells nothing of the subnet
        check_linked(plane_, token, action=f"{PROVIDER}/containerGroups/write",
                     scope=arm_id(subscription, resource_group, name),
                     linked=str((body.properties.subnet_ids or [{}])[0].get("id", placement)),
                     linked_action=SUBNET_JOIN)
    if body.properties.isolation is None:  # the server's default, kept with the group
        body.properties.isolation = plane_.settings.api.default_isolation
    existing = plane_.store.get_group(subscription, resource_group, name)
    if existing is not None and existing.desired == "deleted":
        raise ArmError(409, "ContainerGroupDeleting",
                       f"The container group '{name}' is being deleted; retry once it is gone.")
    assign_group_identity(plane_, token, body, subscription, resource_group, name, existing)
    stored = body.to_stored()
    admission = admission_for(plane_, subscription, body.location)

    def label(uid: str) -> str | None:
        return _label(plane_, body, subscription, resource_group, uid)

    # Admission and the label's claim are decided in the transaction that writes the
    # group: two racing PUTs cannot both take the last cores, nor one label.
    record, created = _admitted(
        plane_, lambda: plane_.store.put_group(subscription, resource_group, name,
                                               body.location, stored, body.tags or {},
                                               subnet_key=placement, admission=admission,
                                               label=label),
        body, body.location)
    headers: dict[str, str] = {}
    if created or (existing is not None and record.generation != existing.generation):
        op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                           "create" if created else "update",
                                           generation=record.generation)
        headers = lro_headers(base or plane_.base_url, subscription, record.location, op.id)
        plane_.reconciler.kick(record.uid)
    return JSONResponse(_render(plane_, record, version=api_version),
                        status_code=201 if created else 200,
                        headers=headers)


def _from_profile(plane_: ControlPlane, token: Caller, doc: Any, subscription: str,
                  scope: str) -> Any:
    """``doc`` itself, or, where it names ``properties.containerGroupProfile``, the body of
    that profile revision with the group's own fields of ``doc`` over it
    (:mod:`skiff.control.profiles`). The caller must be allowed to read the profile (as
    ARM's linked authorization: the refusal names only what the request named)."""
    props = doc.get(key_of(doc, "properties") or "properties") if isinstance(doc, dict) \
        else None
    ref_key = key_of(props, "containerGroupProfile") if isinstance(props, dict) else None
    if props is None or ref_key is None or props[ref_key] is None:
        return doc
    ref = props[ref_key]
    if not isinstance(ref, dict):
        raise ArmError(400, "InvalidRequestContent",
                       "The property 'properties.containerGroupProfile' must be an object.",
                       target="properties.containerGroupProfile")
    profile_id, revision = ref.get(key_of(ref, "id") or "id"), \
        ref.get(key_of(ref, "revision") or "revision")
    parse_profile_id(profile_id)
    check_linked(plane_, token, action=f"{PROVIDER}/containerGroups/write", scope=scope,
                 linked=str(profile_id), linked_action=f"{PROVIDER}/containerGroupProfiles/read")
    return merge_group_fields(profile_group_body(plane_, subscription, str(profile_id),
                                                 revision), doc)


def _label(plane_: ControlPlane, body: ContainerGroupBody, subscription: str,
           resource_group: str, uid: str) -> str | None:
    dns = plane_.settings.dns
    return group_label(body, tenant=dns.tenant, subscription=subscription,
                       resource_group=resource_group, group_uid=uid)


@router.get(GROUP)
def get(subscription: str, resource_group: str, name: str, request: Request,
        token: CanRead) -> dict[str, Any]:
    """The group; one being deleted answers ``Deleting`` (without an instance view: its
    containers are being torn down) until it is gone, then 404, as ARM does."""
    plane_ = plane(request)
    record = _record(plane_, token, subscription, resource_group, name, deleting=True)
    return _render(plane_, record, instance_view=record.desired != "deleted",
                   version=_version(request))


@router.patch(GROUP, openapi_extra=request_body(TAGS_PATCH))
async def update_tags(subscription: str, resource_group: str, name: str, request: Request,
                      token: CanWrite) -> dict[str, Any]:
    plane_ = plane(request)
    _record(plane_, token, subscription, resource_group, name)
    patch = json_body(await request.body())
    tags = patch.get("tags") if isinstance(patch, dict) else None
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidRequestContent", "PATCH takes {\"tags\": {name: value}}.",
                       target="tags")
    check_tags(tags)
    record = plane_.store.update_tags(subscription, resource_group, name, tags)
    assert record is not None
    return _render(plane_, record, version=_version(request))


#: Seconds a DELETE waits for the group's teardown before it answers. ACI answers a
#: delete with the group (200) once it is gone, and the SDKs take that answer as the
#: deleted group (``begin_delete().result()``, ``beginDeleteAndWait``); a teardown that
#: takes longer (a container slow to stop) is answered 202 with an operation to poll.
#: Twice the default stop grace, and below the clients' read timeouts (skiff's: 30 s).
DELETE_WAIT_S = 20.0


@router.delete(GROUP)
async def delete(subscription: str, resource_group: str, name: str, request: Request,
                 token: CanDelete) -> Response:
    """Delete the group: 200 with the group as it was, once its containers are gone;
    202 with ``Azure-AsyncOperation`` while a teardown goes on past :data:`DELETE_WAIT_S`;
    204 when there is no such group. These are ACI's three answers."""
    plane_ = plane(request)
    found = await asyncio.to_thread(_begin_delete, plane_, subscription, resource_group, name,
                                    _version(request))
    if found is None:
        return Response(status_code=204)
    record, rendered, op_id = found
    await until_idle(plane_.reconciler, record.uid, DELETE_WAIT_S)
    op = plane_.store.get_operation(op_id)
    if op is not None and op.status == "InProgress":
        return JSONResponse(rendered, status_code=202,
                            headers=lro_headers(plane_.base_for(request), subscription,
                                                record.location, op.id))
    return JSONResponse(rendered, status_code=200)


def _begin_delete(plane_: ControlPlane, subscription: str, resource_group: str, name: str,
                  version: str | None = None) -> tuple[GroupRecord, dict[str, Any], str] | None:
    """Mark the group deleted and start its teardown: the group, as a GET showed it
    before (without its instance view: its containers are going), and the operation."""
    record = plane_.store.get_group(subscription, resource_group, name)
    if record is None:
        return None
    rendered = _render(plane_, record, instance_view=False, version=version)
    record = plane_.store.set_desired(subscription, resource_group, name, "deleted",
                                      admission=admission_for(plane_, subscription,
                                                           record.location)) or record
    op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                       "delete", generation=record.generation)
    plane_.reconciler.kick(record.uid)
    return record, rendered, op.id


def _lro_action(request: Request, subscription: str, resource_group: str, name: str,
                token: Caller, kind: str, status: int) -> Response:
    plane_ = plane(request)
    record = _record(plane_, token, subscription, resource_group, name)
    if kind in ("start", "restart"):  # a group that holds nothing must fit again
        admission = admission_for(plane_, subscription, record.location)
        record = _admitted(plane_, lambda: plane_.store.set_desired(
            subscription, resource_group, name, "running", admission=admission),
            ContainerGroupBody.from_stored(record.body), record.location) or record
    op = plane_.store.create_operation(subscription, record.location, record.resource_id,
                                       kind, generation=record.generation)
    plane_.reconciler.kick(record.uid)
    return Response(status_code=status,
                    headers=lro_headers(plane_.base_for(request), subscription,
                                        record.location, op.id))


@router.post(GROUP + "/start", status_code=202)
def start(subscription: str, resource_group: str, name: str, request: Request,
          token: CanStart) -> Response:
    return _lro_action(request, subscription, resource_group, name, token, "start", 202)


@router.post(GROUP + "/restart")
def restart(subscription: str, resource_group: str, name: str, request: Request,
            token: CanRestart) -> Response:
    # The SDK's begin_restart accepts 204 only; the operation header still tells progress.
    return _lro_action(request, subscription, resource_group, name, token, "restart", 204)


@router.post(GROUP + "/stop", status_code=204)
def stop(subscription: str, resource_group: str, name: str, request: Request,
         token: CanStop) -> Response:
    """Stop every container; the group and its definition stay."""
    plane_ = plane(request)
    record = _record(plane_, token, subscription, resource_group, name)
    plane_.store.set_desired(subscription, resource_group, name, "stopped")
    plane_.reconciler.kick(record.uid)
    plane_.reconciler.wait_idle(record.uid)
    return Response(status_code=204)


@router.get(GROUP + "/outboundNetworkDependenciesEndpoints")
def outbound_network_dependencies(subscription: str, resource_group: str, name: str,
                                  request: Request, token: CanRead) -> list[str]:
    """The endpoints a group in a virtual network must reach for ACI to run it: ACI
    answers a JSON array of strings; a skiff node needs none, so the array is empty."""
    _record(plane(request), token, subscription, resource_group, name)
    return []


def _list(plane_: ControlPlane, request: Request, subscription: str, resource_group: str | None,
          visible: Callable[[str], bool] | None = None) -> Response:
    """A page of groups (those being deleted: Deleting; ``$top`` of them, else the node's
    page size), each group's answer made once per version of it
    (:mod:`skiff.api.listing`); ``visible``: whether the caller may see a group, by its
    id (None: every one)."""
    marker = request.query_params.get("$skipToken")
    limit = page_size(request.query_params.get("$top"), plane_.settings.api.page_size)
    stamps, after = plane_.store.list_group_stamps(subscription, resource_group,
                                                   limit=limit, after=marker)
    addresses = plane_.engine.addresses() if stamps else {}
    version = _version(request)
    page = plane_.renders.page(
        stamps, addresses, plane_.store.groups_by_uid,
        lambda record, ip: _render(plane_, record, instance_view=False, ip=ip,
                                   version=version),
        shape=shape_of(version))
    items = [answer for id_, answer in page if visible is None or visible(id_)]
    tail = b""
    if after is not None:
        query = dict(request.query_params)
        query["$skipToken"] = after
        tail = b',"nextLink":' + encode(f"{plane_.base_for(request)}{request.url.path}?"
                                         f"{urlencode(query)}")
    return Response(b'{"value":[' + b",".join(items) + b"]" + tail + b"}",
                    media_type="application/json")


#: The lists' answer, for /openapi.json (their handlers answer bytes of their own).
_LIST: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": True,
    "properties": {"value": {"type": "array", "items": {"type": "object"}},
                   "nextLink": {"type": "string"}}}}}}}


@router.get(f"/subscriptions/{{subscription}}/providers/{PROVIDER}/containerGroups",
            responses=_LIST)
def list_in_subscription(subscription: str, request: Request, token: CanList) -> Response:
    """The subscription's groups, those the caller may read; with skiff's ``names``
    (``rg/name,...``), the named groups instead, as :func:`_named` answers them."""
    names = request.query_params.get("names")
    if names is not None:
        return _named(plane(request), request, subscription, names, token.sees)
    return _list(plane(request), request, subscription, None,
                 token.sees)


def _named(plane_: ControlPlane, request: Request, subscription: str, names: str,
           visible: Callable[[str], bool]) -> Response:
    """The groups ``names`` names (:func:`skiff.api.listing.named`), each as its GET
    answers it (its instance view included), in the order named, in one list answer
    (no ``nextLink``): a group the caller may not read (judged at the group's id, as its
    GET is, before anything is read) or that does not exist is left out, so the answer
    tells nothing a GET of each would not."""
    version = _version(request)
    items: list[bytes] = []
    for resource_group, name in named(names):
        if not visible(arm_id(subscription, resource_group, name)):
            continue
        record = plane_.store.get_group(subscription, resource_group, name)
        if record is None:
            continue
        items.append(encode(_render(plane_, record, instance_view=record.desired != "deleted",
                                    version=version)))
    return Response(b'{"value":[' + b",".join(items) + b"]}", media_type="application/json")


@router.get(f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/"
            f"{PROVIDER}/containerGroups", responses=_LIST)
def list_in_resource_group(subscription: str, resource_group: str, request: Request,
                           token: CanRead) -> Response:
    return _list(plane(request), request, subscription, resource_group)


# ---- containers -------------------------------------------------------------------------


def _container(record: GroupRecord, container: str) -> None:
    names = [c.get("name") for key in ("containers", "initContainers")
             for c in record.body.get("properties", {}).get(key, [])]
    if container not in names:
        raise ArmError(404, "ContainerNotFound",
                       f"The container '{container}' was not found in container group "
                       f"'{record.name}'.")


@router.get(GROUP + "/containers/{container}/logs")
def logs(subscription: str, resource_group: str, name: str, container: str, request: Request,
         token: CanReadLogs, tail: int | None = None, timestamps: bool = False,
         previous: bool = False) -> dict[str, Any]:
    """The container's output (all of it, up to 4 MB, or the last ``tail`` lines);
    ``previous=true`` (a skiff extension) gives the previous instance's."""
    plane_ = plane(request)
    record = _record(plane_, token, subscription, resource_group, name)
    _container(record, container)
    if tail is not None and tail < 0:
        raise ArmError(400, "InvalidRequestContent", "tail must be 0 or more.", target="tail")
    try:
        with scrubbing_errors(_secrets(record)):  # the output itself is the container's
            content = plane_.engine.logs(record.uid, container, tail=tail,
                                         timestamps=timestamps, previous=previous)
    except GroupNotFound:
        content = ""
    return {"content": content}


def _dimension(size: dict[str, Any], key: str, default: int) -> int:
    """A terminal size: a whole number a terminal can have (an unsigned short)."""
    try:
        value = int(size.get(key) or default)
    except (TypeError, ValueError, OverflowError):
        value = 0
    if not 0 < value < 65536:
        raise ArmError(400, "InvalidRequestContent",
                       f"terminalSize.{key} must be a whole number from 1 to 65535.",
                       target=f"terminalSize.{key}")
    return value


async def _session(request: Request, subscription: str, resource_group: str, name: str,
                   container: str, token: Caller, kind: str) -> dict[str, str]:
    plane_ = plane(request)
    record = _record(plane_, token, subscription, resource_group, name)
    _container(record, container)
    command: list[str] = []
    rows, cols = 24, 80
    if kind == "exec":
        doc = json_body(await request.body())
        text = doc.get("command") if isinstance(doc, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ArmError(400, "InvalidRequestContent", "exec needs a command.",
                           target="command")
        try:
            command = shlex.split(text)
        except ValueError as exc:  # an unclosed quote or a trailing escape
            raise ArmError(400, "InvalidRequestContent", f"The command cannot be parsed: {exc}.",
                           target="command") from exc
        if "\x00" in text:
            raise ArmError(400, "InvalidRequestContent", "The command contains a NUL character.",
                           target="command")
        size = doc.get("terminalSize") or {}
        if isinstance(size, dict):
            rows, cols = _dimension(size, "rows", 24), _dimension(size, "cols", 80)
    view = _view(plane_, record)
    state = view.container(container) if view is not None else None
    if state is None or state.current.state != "Running":
        raise ArmError(409, "ContainerNotRunning",
                       f"The container '{container}' is not running.")
    password = secrets.token_urlsafe(24)
    session_id = plane_.sessions.add(Session(kind, record.uid, container, password, command,
                                             rows, cols, secrets=_secrets(record)))
    uri = plane_.base_for(request).replace("https://", "wss://", 1) + f"/ws/{kind}/{session_id}"
    return {"webSocketUri": uri, "password": password}


@router.post(GROUP + "/containers/{container}/exec", openapi_extra=request_body(EXEC_REQUEST))
async def exec_(subscription: str, resource_group: str, name: str, container: str,
                request: Request, token: CanExec) -> dict[str, str]:
    return await _session(request, subscription, resource_group, name, container, token, "exec")


@router.post(GROUP + "/containers/{container}/attach")
async def attach(subscription: str, resource_group: str, name: str, container: str,
                 request: Request, token: CanAttach) -> dict[str, str]:
    return await _session(request, subscription, resource_group, name, container, token,
                          "attach")
