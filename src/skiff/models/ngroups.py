"""NGroups (``Microsoft.ContainerInstance/ngroups``, 2024-09-01-preview on): N container
groups kept from one container group profile, and how they are updated.

An NGroup's body is checked here, once, into a :class:`NGroupSpec` the controller
(:mod:`skiff.control.ngroups`) acts on; the stored body is the request's, less what
only answers carry. Members are ordinary container groups: their ARM body is the
profile revision's, with the per-member fields of ``containerGroupProperties`` over it
(:func:`member_body`), and their names follow the GUID naming policy
(:func:`member_name`). Every refusal is ACI's 400 with the field it names.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

from skiff.errors import ArmError
from skiff.models.arm import check_location_text, check_tags
from skiff.models.metrics import parse_duration

PROFILE_TYPE = "Microsoft.ContainerInstance/containerGroupProfiles"
#: An NGroup's name (NGroup.tsp's pattern).
_NAME = re.compile(r"[a-zA-Z0-9]|[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]")
#: A member's name is the prefix and a GUID (36 characters), together a container
#: group's name (at most 63 lowercase letters, digits and '-').
_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,26}")
_PROFILE_ID = re.compile(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                         r"Microsoft\.ContainerInstance/containerGroupProfiles/([^/]+)",
                         re.IGNORECASE)
#: The most members one NGroup keeps (the subscription's quotas bound them too).
MAX_DESIRED_COUNT = 1000
#: Rolling update defaults where the body names none (VMSS's, which ACI's follow).
DEFAULT_BATCH_PERCENT = 20
DEFAULT_UNHEALTHY_PERCENT = 20
#: The tag every member carries: the ARM id of its NGroup, as ACI tags them.
ORCHESTRATOR_TAG = "orchestratorId"
#: The fields of a body the members are built from: a change to one is a new rollout.
_MEMBER_FIELDS = ("containerGroupProfiles",)


def _bad(message: str, target: str, code: str = "InvalidRequestContent") -> ArmError:
    return ArmError(400, code, message, target=target)


def check_ngroup_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise _bad(f"The NGroup name '{name[:80]}' is invalid: use 1 to 63 letters, digits, "
                   "'-' and '_', starting and ending with a letter or digit.", "name",
                   "InvalidResourceName")


@dataclass(frozen=True)
class Rolling:
    """``updateProfile.rollingUpdateProfile``, defaults applied."""

    max_batch_percent: int = DEFAULT_BATCH_PERCENT
    max_unhealthy_percent: int = DEFAULT_UNHEALTHY_PERCENT
    pause_s: float = 0.0
    in_place: bool = False

    def batch_size(self, count: int) -> int:
        """Members one batch updates: maxBatchPercent of ``count``, rounded up, at least 1."""
        return max(1, math.ceil(count * self.max_batch_percent / 100))

    def too_unhealthy(self, unhealthy: int, updated: int) -> bool:
        """Whether ``unhealthy`` of the ``updated`` members exceed maxUnhealthyPercent."""
        return updated > 0 and unhealthy * 100 > self.max_unhealthy_percent * updated


@dataclass(frozen=True)
class ProfileRef:
    """One ``containerGroupProfiles[]`` entry: the profile, its revision (None: the
    latest) and the per-member fields over it."""

    id: str
    revision: int | None
    overrides: dict[str, Any]


@dataclass(frozen=True)
class NGroupSpec:
    """What the controller keeps: the NGroup's checked body."""

    desired_count: int
    maintain: bool
    prefix: str
    profile: ProfileRef
    rolling: Rolling | None  # None: Manual

    @classmethod
    def from_stored(cls, body: dict[str, Any]) -> NGroupSpec:
        props = body.get("properties", {})
        elastic = props.get("elasticProfile") or {}
        naming = (elastic.get("containerGroupNamingPolicy") or {}).get("guidNamingPolicy") or {}
        stub = props["containerGroupProfiles"][0]
        update = props.get("updateProfile") or {}
        rolling = None
        if update.get("updateMode") == "Rolling":
            r = update.get("rollingUpdateProfile") or {}
            rolling = Rolling(
                max_batch_percent=r.get("maxBatchPercent", DEFAULT_BATCH_PERCENT),
                max_unhealthy_percent=r.get("maxUnhealthyPercent", DEFAULT_UNHEALTHY_PERCENT),
                pause_s=parse_duration(r["pauseTimeBetweenBatches"])
                if r.get("pauseTimeBetweenBatches") else 0.0,
                in_place=bool(r.get("inPlaceUpdate", False)))
        overrides = {k: v for k, v in stub.items()
                     if k in ("containerGroupProperties", "networkProfile", "storageProfile")}
        return cls(desired_count=int(elastic.get("desiredCount", 0)),
                   maintain=bool(elastic.get("maintainDesiredCount", False)),
                   prefix=str(naming.get("prefix", "")),
                   profile=ProfileRef(stub["resource"]["id"], stub.get("revision"), overrides),
                   rolling=rolling)


def _object(value: Any, target: str, *, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"'{target}' must be an object.", target)
    return value


def _int(value: Any, target: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(f"'{target}' must be a whole number from {low} to {high}.", target)
    return value


def _bool(value: Any, target: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise _bad(f"'{target}' must be true or false.", target)


def parse_ngroup(doc: Any, *, subscription: str, name: str,
                 default_location: str) -> dict[str, Any]:
    """The NGroup body to store, from a PUT's JSON; ArmError 400 for what ACI refuses.

    Its one profile must be in the NGroup's own subscription: an NGroup never builds
    groups from another tenant's profile (the same 404 as a missing one, later, would
    tell whether it exists)."""
    check_ngroup_name(name)
    body = _object(doc, "body", required=True)
    props = _object(body.get("properties"), "properties", required=True)
    location = body.get("location", default_location)
    check_location_text(location)
    if "tags" in body and body["tags"] is not None:
        check_tags(body["tags"])
    elastic = _object(props.get("elasticProfile"), "properties.elasticProfile")
    if "desiredCount" in elastic:
        _int(elastic["desiredCount"], "properties.elasticProfile.desiredCount", 0,
             MAX_DESIRED_COUNT)
    _bool(elastic.get("maintainDesiredCount"), "properties.elasticProfile.maintainDesiredCount")
    naming = _object(elastic.get("containerGroupNamingPolicy"),
                     "properties.elasticProfile.containerGroupNamingPolicy")
    guid = _object(naming.get("guidNamingPolicy"),
                   "properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy")
    prefix = guid.get("prefix")
    if prefix is not None and (not isinstance(prefix, str)
                               or (prefix and not _PREFIX.fullmatch(prefix))):
        raise _bad("The naming prefix must be at most 27 lowercase letters, digits and '-', "
                   "starting with a letter or digit: with the GUID after it, it names a "
                   "container group.",
                   "properties.elasticProfile.containerGroupNamingPolicy.guidNamingPolicy.prefix")
    _check_profiles(props.get("containerGroupProfiles"), subscription)
    _check_update(_object(props.get("updateProfile"), "properties.updateProfile"))
    placement = _object(props.get("placementProfile"), "properties.placementProfile")
    if "faultDomainCount" in placement:
        _int(placement["faultDomainCount"], "properties.placementProfile.faultDomainCount", 1, 3)
    if body.get("zones") is not None and (not isinstance(body["zones"], list) or not all(
            isinstance(z, str) for z in body["zones"])):
        raise _bad("'zones' must be a list of zone names.", "zones")
    identity = _object(body.get("identity"), "identity")
    if identity and identity.get("type") not in (
            "SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None"):
        raise _bad("'identity.type' must be SystemAssigned, UserAssigned, 'SystemAssigned, "
                   "UserAssigned' or None.", "identity.type")
    stored: dict[str, Any] = {"location": location,
                              "properties": {k: v for k, v in props.items()
                                             if k != "provisioningState"}}
    for key in ("zones", "identity"):
        if body.get(key) is not None:
            stored[key] = body[key]
    return stored


def _check_profiles(value: Any, subscription: str) -> None:
    where = "properties.containerGroupProfiles"
    if not isinstance(value, list) or not value:
        raise _bad("'containerGroupProfiles' must list the container group profile the "
                   "NGroup's members are built from.", where)
    if len(value) > 1:
        # The spec's array has no bound, but nothing in it says how members would be
        # divided among several profiles (no share, weight or zone per entry), and ACI's
        # documentation and examples name one: several are refused, never guessed at.
        raise _bad(f"An NGroup builds its members from one container group profile; "
                   f"'containerGroupProfiles' lists {len(value)}, and the API has no field "
                   f"saying how members are divided among several. List one (make an "
                   f"NGroup per profile).", f"{where}[1]")
    stub = _object(value[0], f"{where}[0]", required=True)
    resource = _object(stub.get("resource"), f"{where}[0].resource", required=True)
    match = _PROFILE_ID.fullmatch(str(resource.get("id", "")))
    if match is None:
        raise _bad("'resource.id' must be the ARM id of a container group profile.",
                   f"{where}[0].resource.id")
    if match.group(1).lower() != subscription.lower():
        raise _bad("The container group profile must be in the NGroup's subscription.",
                   f"{where}[0].resource.id", "LinkedInvalidPropertyId")
    if stub.get("revision") is not None:
        _int(stub["revision"], f"{where}[0].revision", 1, 2**31 - 1)
    cg = _object(stub.get("containerGroupProperties"), f"{where}[0].containerGroupProperties")
    for key in ("subnetIds", "volumes", "containers"):
        if cg.get(key) is not None and not isinstance(cg[key], list):
            raise _bad(f"'{key}' must be a list.", f"{where}[0].containerGroupProperties.{key}")
    for i, container in enumerate(cg.get("containers") or []):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            raise _bad("Each container names the profile's container it adds to.",
                       f"{where}[0].containerGroupProperties.containers[{i}].name")


def _check_update(update: dict[str, Any]) -> None:
    where = "properties.updateProfile"
    mode = update.get("updateMode", "Manual")
    if mode not in ("Manual", "Rolling"):
        raise _bad("'updateMode' must be Manual or Rolling.", f"{where}.updateMode")
    rolling = _object(update.get("rollingUpdateProfile"), f"{where}.rollingUpdateProfile")
    where += ".rollingUpdateProfile"
    if "maxBatchPercent" in rolling:
        _int(rolling["maxBatchPercent"], f"{where}.maxBatchPercent", 1, 100)
    if "maxUnhealthyPercent" in rolling:
        _int(rolling["maxUnhealthyPercent"], f"{where}.maxUnhealthyPercent", 0, 100)
    _bool(rolling.get("inPlaceUpdate"), f"{where}.inPlaceUpdate")
    pause = rolling.get("pauseTimeBetweenBatches")
    if pause is not None:
        try:
            if not isinstance(pause, str):
                raise _bad("", "")
            seconds = parse_duration(pause)
        except ArmError:
            raise _bad("'pauseTimeBetweenBatches' must be an ISO 8601 duration (such as PT30S).",
                       f"{where}.pauseTimeBetweenBatches") from None
        if seconds > 86400:
            raise _bad("'pauseTimeBetweenBatches' must be at most a day (P1D).",
                       f"{where}.pauseTimeBetweenBatches")


def check_immutable(old: dict[str, Any], new: dict[str, Any]) -> None:
    """What an update may not change: the fault domain count, fixed at creation."""
    def count(body: dict[str, Any]) -> Any:
        return (body.get("properties", {}).get("placementProfile") or {}).get("faultDomainCount")
    if count(old) != count(new):
        raise _bad("'faultDomainCount' can only be set when the NGroup is created.",
                   "properties.placementProfile.faultDomainCount")


def member_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What the members are built from: a change here is a new generation of members."""
    props = body.get("properties", {})
    return {k: props.get(k) for k in _MEMBER_FIELDS}


def member_name(prefix: str) -> str:
    """A new member's name: the naming policy's prefix and a GUID."""
    return f"{prefix}{uuid.uuid4()}"


def member_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The per-member ``containerGroupProperties`` as a group's own fields over its
    profile (:func:`skiff.control.profiles.merge_group_fields`): subnets and volumes."""
    cg = overrides.get("containerGroupProperties") or {}
    return {"properties": {k: copy.deepcopy(cg[k]) for k in ("subnetIds", "volumes")
                           if cg.get(k)}}


def add_volume_mounts(group: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``group`` with the per-member containers' volume mounts added to the profile's
    containers of those names (400 for a container the profile lacks)."""
    merged = copy.deepcopy(group)
    props = merged.setdefault("properties", {})
    cg = overrides.get("containerGroupProperties") or {}
    containers = {c.get("name"): c for c in props.get("containers") or []}
    for i, extra in enumerate(cg.get("containers") or []):
        target = containers.get(extra.get("name"))
        if target is None:
            raise _bad(f"The profile has no container '{extra.get('name')}'.",
                       f"properties.containerGroupProfiles[0].containerGroupProperties."
                       f"containers[{i}].name", "ContainerNotFoundInProfile")
        mounts = (extra.get("properties") or {}).get("volumeMounts") or []
        cprops = target.setdefault("properties", {})
        cprops["volumeMounts"] = [*(cprops.get("volumeMounts") or []), *copy.deepcopy(mounts)]
    return merged


def render_ngroup(body: dict[str, Any], *, resource_id: str, name: str,
                  provisioning_state: str, tags: dict[str, str]) -> dict[str, Any]:
    """The NGroup as ARM answers it."""
    answer: dict[str, Any] = {
        "id": resource_id, "name": name, "type": "Microsoft.ContainerInstance/ngroups",
        "location": body.get("location"), "tags": tags,
        "properties": {**copy.deepcopy(body.get("properties", {})),
                       "provisioningState": provisioning_state}}
    for key in ("zones", "identity"):
        if key in body:
            answer[key] = copy.deepcopy(body[key])
    return answer
