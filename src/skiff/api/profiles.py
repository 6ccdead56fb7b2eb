"""Container group profile routes (``Microsoft.ContainerInstance/containerGroupProfiles``).

What ACI's REST API does to profiles, from api-version 2024-05-01-preview: PUT (create,
or a new revision where the definition changed; 201 then 200, synchronous), GET, PATCH
(tags), DELETE (200, or 204 when there was none), the lists by resource group and by
subscription, and the immutable history: ``.../revisions`` and ``.../revisions/{n}``.
Under an older api-version the type does not exist, as ARM answers
(``NoRegisteredProviderFound``). A profile is checked as strictly as a group
(:mod:`skiff.models.profile`); its secrets are sealed at rest and never answered.
Another tenant's profiles are as absent as its other resources.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import CONTAINER_GROUP, TAGS_PATCH, request_body
from skiff.api.context import (
    PROVIDER,
    ControlPlane,
    Listing,
    allow,
    allow_listing,
    api_version_of,
    check_api_version,
    json_body,
    plane,
)
from skiff.api.places import locations
from skiff.control.access import Caller
from skiff.control.profiles import check_revision, not_found, revision_not_found
from skiff.errors import ArmError
from skiff.models.arm import check_tags
from skiff.models.profile import PUBLISHED, has_profiles, parse_profile_body, render_profile
from skiff.models.versions import NEVER_ANSWERED, left_out, shape
from skiff.store import ProfileRecord


def check_profiles_version(request: Request) -> str:
    """The request's api-version, which must know container group profiles."""
    version = api_version_of(request)
    if not has_profiles(version):
        raise ArmError(400, "NoRegisteredProviderFound",
                       f"No registered resource provider found for API version '{version}' "
                       f"and type 'containerGroupProfiles'. The supported api-versions are "
                       f"'{', '.join(PUBLISHED)}'.")
    return version


def _allowed(checked: Any) -> Any:
    """``checked`` (the caller, authorized), then the api-version: a caller refused its
    action learns nothing, not even which versions know the type."""

    def check(request: Request, caller: Any = checked) -> Any:
        check_profiles_version(request)
        return caller

    return Depends(check)


router = APIRouter(dependencies=[Depends(check_api_version)])
_TYPE = f"{PROVIDER}/containerGroupProfiles"
PROFILES = f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/{_TYPE}"
PROFILE = PROFILES + "/{name}"
SUB_PROFILES = f"/subscriptions/{{subscription}}/providers/{_TYPE}"
#: The routes' callers, each allowed its ARM action (skiff.control.access).
CanRead = Annotated[Caller, _allowed(allow(f"{_TYPE}/read"))]
CanList = Annotated[Listing, _allowed(allow_listing(f"{_TYPE}/read"))]
CanWrite = Annotated[Caller, _allowed(allow(f"{_TYPE}/write"))]
CanDelete = Annotated[Caller, _allowed(allow(f"{_TYPE}/delete"))]


def render(request: Request, record: ProfileRecord, body: dict[str, Any] | None = None,
           revision: int | None = None) -> dict[str, Any]:
    """The profile (or, with ``body`` and ``revision``, one of its revisions) as ARM
    answers it to the request's api-version (the group fields it has: as a group's
    answers, :func:`skiff.models.versions.left_out`, but the profile's own fields); the
    profile itself lists every revision it has had."""
    answer = render_profile(body if body is not None else record.body,
                            resource_id=record.resource_id, name=record.name,
                            tags=record.tags,
                            revision=revision if revision is not None else record.revision,
                            revisions=None if body is not None else
                            list(range(1, record.revision + 1)))
    newer = left_out(request.query_params.get("api-version"))[len(NEVER_ANSWERED):]
    return shape(answer, newer)


def _found(plane_: ControlPlane, subscription: str, resource_group: str,
           name: str) -> ProfileRecord:
    record = plane_.store.get_profile(subscription, resource_group, name)
    if record is None:
        raise not_found(resource_group, name)
    return record


@router.put(PROFILE, openapi_extra=request_body(CONTAINER_GROUP))
async def put_profile(subscription: str, resource_group: str, name: str, request: Request,
                      token: CanWrite) -> Response:
    """Create a profile (201, revision 1), or update it (200): a changed definition is a
    new revision, the old ones stay as they were."""
    plane_ = plane(request)
    raw = json_body(await request.body())
    body = parse_profile_body(raw, name=name, default_location=plane_.settings.api.location,
                              known_locations=locations(plane_),
                              allow_privileged=plane_.settings.api.allow_privileged,
                              api_version=request.query_params.get("api-version"))
    record, created = await asyncio.to_thread(plane_.store.put_profile, subscription,
                                              resource_group, name, body.location,
                                              body.stored, body.tags)
    return JSONResponse(render(request, record), status_code=201 if created else 200)


@router.get(PROFILE)
def get_profile(subscription: str, resource_group: str, name: str, request: Request,
                token: CanRead) -> dict[str, Any]:
    return render(request, _found(plane(request), subscription, resource_group, name))


@router.patch(PROFILE, openapi_extra=request_body(TAGS_PATCH))
async def patch_profile(subscription: str, resource_group: str, name: str, request: Request,
                        token: CanWrite) -> dict[str, Any]:
    """Replace a profile's tags; its definition and revision stay."""
    plane_ = plane(request)
    _found(plane_, subscription, resource_group, name)
    doc = json_body(await request.body())
    tags = doc.get("tags") if isinstance(doc, dict) else None
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidRequestContent", "PATCH takes {\"tags\": {name: value}}.",
                       target="tags")
    record = plane_.store.update_profile_tags(subscription, resource_group, name,
                                              check_tags(tags))
    if record is None:  # deleted meanwhile
        raise not_found(resource_group, name)
    return render(request, record)


@router.delete(PROFILE)
def delete_profile(subscription: str, resource_group: str, name: str, request: Request,
                   token: CanDelete) -> Response:
    """Delete a profile and its revisions (200; 204 if there was none). Groups made from
    it keep their definitions."""
    gone = plane(request).store.delete_profile(subscription, resource_group, name)
    return Response(status_code=200 if gone else 204)


@router.get(PROFILES)
def list_profiles(subscription: str, resource_group: str, request: Request,
                  token: CanList) -> dict[str, Any]:
    found = plane(request).store.list_profiles(subscription, resource_group)
    return {"value": token.visible([render(request, r) for r in found])}


@router.get(SUB_PROFILES)
def list_all_profiles(subscription: str, request: Request, token: CanList) -> dict[str, Any]:
    found = plane(request).store.list_profiles(subscription)
    return {"value": token.visible([render(request, r) for r in found])}


@router.get(PROFILE + "/revisions")
def list_revisions(subscription: str, resource_group: str, name: str, request: Request,
                   token: CanRead) -> dict[str, Any]:
    """Every revision of the profile, oldest first."""
    plane_ = plane(request)
    record = _found(plane_, subscription, resource_group, name)
    revisions = plane_.store.profile_revisions(subscription, resource_group, name) or []
    return {"value": [render(request, record, r.body, r.revision) for r in revisions]}


@router.get(PROFILE + "/revisions/{revision}")
def get_revision(subscription: str, resource_group: str, name: str, revision: str,
                 request: Request, token: CanRead) -> dict[str, Any]:
    """One revision of the profile, as it was written."""
    plane_ = plane(request)
    record = _found(plane_, subscription, resource_group, name)
    try:
        number = check_revision(revision)
    except ArmError:
        raise revision_not_found(record.name, revision) from None
    found = plane_.store.profile_revision(subscription, resource_group, name, number or 0)
    if found is None:
        raise revision_not_found(record.name, number or 0)
    return render(request, record, found.body, found.revision)
