"""ARM's own limits, common to every resource type: resource group names, tags, locations.

Azure Resource Manager checks these before a resource provider sees the
request, so they hold for container groups, virtual networks, resource groups
and a tags PATCH alike; each route that takes one calls the check here rather
than its own copy. Messages quote names (cut short), never tag values.

The limits are ARM's published ones (learn.microsoft.com, "Naming rules and
restrictions for Azure resources" and "Use tags to organize your Azure
resources"): a resource group name is 1-90 letters, digits, underscores,
hyphens, periods and parentheses, not ending in a period; a resource has at
most 50 tags, a tag name at most 512 characters without ``<>%&\\?/`` or control
characters, a tag value at most 256 characters.
"""

from __future__ import annotations

import re
from typing import Any

from skiff.errors import ArmError

MAX_RESOURCE_GROUP_NAME = 90
MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
#: The longest location name skiff reads (Azure's are under 30 characters).
MAX_LOCATION = 90

# \w: Unicode letters and digits, and '_' (ARM admits Unicode letters and digits).
_RESOURCE_GROUP = re.compile(r"[-\w.()]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The rules as JSON schema patterns, for /openapi.json (the checks below are the rule).
RESOURCE_GROUP_PATTERN = r"^[-\w.()]*[-\w()]$"
LOCATION_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_TAG_NAME_RESERVED = re.compile(r"[<>%&\\?/\x00-\x1f\x7f]")


def _fail(code: str, message: str, target: str | None) -> ArmError:
    return ArmError(400, code, message, target)


def check_resource_group_name(name: str) -> None:
    """ArmError 400 ``InvalidResourceGroup`` unless ``name`` is a valid resource group name."""
    if (not 0 < len(name) <= MAX_RESOURCE_GROUP_NAME or not _RESOURCE_GROUP.fullmatch(name)
            or name.endswith(".")):
        raise _fail("InvalidResourceGroup",
                    f"The resource group name {name[:80]!r} is invalid: use 1 to "
                    f"{MAX_RESOURCE_GROUP_NAME} letters, digits, underscores, hyphens, periods "
                    "and parentheses, not ending in a period.", "resourceGroupName")


def check_location_text(location: Any, target: str = "location") -> None:
    """A location given in a body: a non-empty string of a sane length (whether this
    skiff serves it is the route's rule)."""
    if not isinstance(location, str) or not location.strip():
        raise _fail("LocationRequired", "The location property is required and must be a "
                    "non-empty string.", target)
    if len(location) > MAX_LOCATION or _CONTROL.search(location):
        raise _fail("InvalidLocation", f"The location {location[:40]!r} is not a location "
                    "name.", target)


def check_tags(tags: Any, target: str = "tags") -> dict[str, str]:
    """``tags`` (None or an object) as ARM admits them: at most 50 names to string values,
    within ARM's lengths and characters. Returns them (``{}`` for None)."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise _fail("InvalidRequestContent", "tags must be an object of names to string "
                    "values.", target)
    if len(tags) > MAX_TAGS:
        raise _fail("InvalidTagCount", f"A resource has at most {MAX_TAGS} tags; this one "
                    f"has {len(tags)}.", target)
    for name, value in tags.items():
        shown = name[:80] if isinstance(name, str) else ""
        where = f"{target}.{shown}"
        if not isinstance(name, str) or not name or _TAG_NAME_RESERVED.search(name):
            raise _fail("InvalidTagNameCharacters", f"The tag name {shown!r} is empty or has "
                        "reserved characters (<, >, %, &, \\, ?, /) or control characters.",
                        where)
        if len(name) > MAX_TAG_NAME:
            raise _fail("InvalidTagNameLength", f"The tag name {shown!r}... is longer than "
                        f"{MAX_TAG_NAME} characters.", where)
        if not isinstance(value, str):
            raise _fail("InvalidTagValue", f"The value of tag {shown!r} must be a string.",
                        where)
        if len(value) > MAX_TAG_VALUE:
            raise _fail("InvalidTagValueLength", f"The value of tag {shown!r} is longer than "
                        f"{MAX_TAG_VALUE} characters.", where)
    return tags


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as a JSON merge patch (RFC 7396), as ARM's PATCH
    reads a body: an object merges key by key, in depth; a null removes the key; anything
    else (a list, a string, a number) replaces the value. Neither argument is changed."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
