"""Managed identities in ARM shapes: a container group's ``identity``, and the
``Microsoft.ManagedIdentity/userAssignedIdentities`` resource.

A group's ``identity`` is checked and brought to one form here
(:func:`parse_group_identity`); the control plane gives its system-assigned
identity a principal when it is first asked for (and keeps it across updates) and
checks that the user-assigned identities it names exist. What a group answers
back (:func:`render_group_identity`) is ACI's: the system identity's
``principalId`` and ``tenantId``, and each user-assigned identity's
``principalId`` and ``clientId``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skiff.errors import ArmError
from skiff.models.arm import check_tags

USER_ASSIGNED_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
SYSTEM = "SystemAssigned"
USER = "UserAssigned"
BOTH = "SystemAssigned, UserAssigned"
NONE = "None"
TYPES = (SYSTEM, USER, BOTH, NONE)
#: The ARM action a caller needs on a user-assigned identity to give it to a resource.
ASSIGN_ACTION = f"{USER_ASSIGNED_TYPE}/assign/action"
#: Azure's rule for a user-assigned identity's name: 3 to 128 characters, letters,
#: digits, '-' and '_', starting with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}")


@dataclass(frozen=True)
class GroupIdentity:
    """A group's identity as asked for: its type, and the user-assigned identities'
    ARM ids in the order given (duplicates, in any case, once)."""

    type: str
    user_assigned: tuple[str, ...] = field(default=())

    @property
    def system(self) -> bool:
        return self.type in (SYSTEM, BOTH)


def _bad(message: str, target: str, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message, target=target)


def identity_id_parts(resource_id: str) -> tuple[str, str, str] | None:
    """(subscription, resource group, name) of a user-assigned identity's ARM id, or
    None if ``resource_id`` is not one."""
    parts = resource_id.strip("/").split("/")
    if (len(parts) != 8 or parts[0].lower() != "subscriptions"
            or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers"
            or f"{parts[5]}/{parts[6]}".lower() != USER_ASSIGNED_TYPE.lower()
            or not all(parts)):
        return None
    return parts[1], parts[3], parts[7]


def parse_group_identity(doc: Any) -> GroupIdentity | None:
    """A group body's ``identity`` checked; None when it has none (absent or null)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise _bad("The identity must be an object with a type.", "identity",
                   "InvalidRequestContent")
    fields = {k.lower(): v for k, v in doc.items() if isinstance(k, str)}
    given = fields.get("type")
    kind = next((t for t in TYPES if isinstance(given, str)
                 and given.replace(" ", "").lower() == t.replace(" ", "").lower()), None)
    if kind is None:
        raise _bad(f"The identity type '{given}' is not supported. The supported types are "
                   f"{', '.join(repr(t) for t in TYPES)}.", "identity.type",
                   "InvalidIdentityType")
    users = fields.get("userassignedidentities")
    if users is None:
        users = {}
    if not isinstance(users, dict) or not all(v is None or isinstance(v, dict)
                                              for v in users.values()):
        raise _bad("userAssignedIdentities must map each identity's resource id to {}.",
                   "identity.userAssignedIdentities", "InvalidRequestContent")
    if kind in (USER, BOTH) and not users:
        raise _bad(f"The identity ids must not be null or empty for '{kind}' identity type.",
                   "identity.userAssignedIdentities", "MissingIdentityIds")
    if kind not in (USER, BOTH) and users:
        raise _bad("The request format was unexpected, a non-UserAssigned identity type "
                   "should not contain: userAssignedIdentities",
                   "identity.userAssignedIdentities")
    ids: dict[str, str] = {}
    for key in users:
        if identity_id_parts(key) is None:
            raise _bad(f"The user assigned identity '{key}' is not a valid resource id. "
                       f"Expected '/subscriptions/{{subscriptionId}}/resourceGroups/"
                       f"{{resourceGroupName}}/providers/{USER_ASSIGNED_TYPE}/"
                       f"{{identityName}}'.", "identity.userAssignedIdentities",
                       "InvalidIdentityValues")
        ids.setdefault(key.lower(), key)
    return GroupIdentity(kind, tuple(ids.values()))


def stored_group_identity(identity: GroupIdentity, *, principal_id: str, client_id: str,
                          tenant_id: str) -> dict[str, Any]:
    """What the store keeps of a group's identity: the system identity's ids (when it
    has one) beside what was asked. ``clientId`` is the system identity's application
    id, for its tokens; ACI does not answer it."""
    stored: dict[str, Any] = {"type": identity.type}
    if identity.system:
        stored.update(principalId=principal_id, clientId=client_id, tenantId=tenant_id)
    if identity.user_assigned:
        stored["userAssignedIdentities"] = {key: {} for key in identity.user_assigned}
    return stored


def render_group_identity(stored: dict[str, Any],
                          lookup: Callable[[str], tuple[str, str] | None]) -> dict[str, Any]:
    """A group's identity as ACI answers it; ``lookup(id)`` gives a user-assigned
    identity's (principalId, clientId), None if it is gone (answered without them)."""
    out: dict[str, Any] = {k: v for k, v in stored.items()
                           if k in ("principalId", "tenantId")}
    out["type"] = stored.get("type", NONE)
    users = stored.get("userAssignedIdentities")
    if isinstance(users, dict) and users:
        rendered: dict[str, Any] = {}
        for key in users:
            found = lookup(key)
            rendered[key] = ({} if found is None
                             else {"principalId": found[0], "clientId": found[1]})
        out["userAssignedIdentities"] = rendered
    return out


# ---- Microsoft.ManagedIdentity/userAssignedIdentities ----------------------------------


def check_identity_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ArmError(400, "InvalidResourceName",
                       f"Resource name '{name}' is invalid. The name can contain only letters, "
                       "numbers, underscores and hyphens, start with a letter or number, and "
                       "be 3 to 128 characters long.", target="name")


@dataclass(frozen=True)
class IdentityBody:
    location: str
    tags: dict[str, str]


def parse_identity_body(doc: Any, *, default_location: str) -> IdentityBody:
    """A user-assigned identity's PUT body: ``location`` and ``tags`` (its properties
    are all read-only)."""
    if not isinstance(doc, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    fields = {k.lower(): v for k, v in doc.items() if isinstance(k, str)}
    location = fields.get("location") or default_location
    if not isinstance(location, str) or not location.strip():
        raise ArmError(400, "LocationRequired", "The location property is required for this "
                       "definition.", target="location")
    return IdentityBody(location, check_tags(fields.get("tags")))


def render_identity(*, resource_id: str, name: str, location: str, tags: dict[str, str],
                    tenant_id: str, principal_id: str, client_id: str) -> dict[str, Any]:
    """A user-assigned identity as ARM answers it."""
    return {"id": resource_id, "name": name, "type": USER_ASSIGNED_TYPE, "location": location,
            "tags": tags,
            "properties": {"tenantId": tenant_id, "principalId": principal_id,
                           "clientId": client_id}}
