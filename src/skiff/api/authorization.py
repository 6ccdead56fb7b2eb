"""Microsoft.Authorization: role assignments and the built-in role definitions.

``roleAssignments`` live at any scope (the root ``/``, a subscription, a resource
group, a resource): ``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}``,
PUT, GET, DELETE and list, the list taking ARM's ``$filter`` (``atScope()``,
``principalId eq '...'``, ``assignedTo('...')``) as az sends it. ``roleDefinitions`` are
Owner, Contributor and Reader (:mod:`skiff.control.access`), read-only, listed with
``$filter=roleName eq '...'`` as az resolves ``--role``.

The root scope has routes of its own (``/providers/Microsoft.Authorization/...``: a
path parameter cannot be empty). Only a caller holding a role at the root may act
there: the node owner's admin token (Owner of everything), or a principal it made
Owner at ``/``; a subscription's Owner is refused 403 ``AuthorizationFailed``, as in
Azure without elevated access. An assignment at the root is inherited by every scope:
listed under a subscription it is shown as ARM shows an inherited one, its ``scope``
``/`` and its ``roleDefinitionId`` under the subscription listed. skiff has no
management groups: a ``/providers/Microsoft.Management/managementGroups/{g}`` scope is
refused to every caller with ARM's 403 ``AuthorizationFailed`` ("... or the scope is
invalid"), which is what ARM answers a caller without access to a management group.

Each route authorizes its action at the scope its path names (reading an assignment
needs ``roleAssignments/read`` there, writing one ``roleAssignments/write``: an Owner's,
not a Contributor's). An assignment is found only under its own scope: its GUID under
another scope is as absent as an unknown one.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import ROLE_ASSIGNMENT, request_body
from skiff.api.context import authenticate as _authenticate
from skiff.api.context import check_api_version, json_body, plane
from skiff.api.tracing import authorized
from skiff.control.access import ROLES, Caller, Role, authorization_failed, role_named
from skiff.core.view import iso
from skiff.errors import ArmError
from skiff.store.principals import AssignmentRecord, scope_key

router = APIRouter(dependencies=[Depends(check_api_version)])
_AUTH = "providers/Microsoft.Authorization"
ASSIGNMENTS = f"/{{scope:path}}/{_AUTH}/roleAssignments"
DEFINITIONS = f"/{{scope:path}}/{_AUTH}/roleDefinitions"
#: The same resources at the root scope ``/``.
PERMISSIONS = f"/{{scope:path}}/{_AUTH}/permissions"
ROOT_ASSIGNMENTS = f"/{_AUTH}/roleAssignments"
ROOT_DEFINITIONS = f"/{_AUTH}/roleDefinitions"
_MANAGEMENT_GROUPS = "/providers/microsoft.management/managementgroups/"
_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _is_management_group(text: str) -> bool:
    """Whether a scope (``/`` + the path's) is a management group or lies under one."""
    parts = text.lower().split("/")
    return (text.lower().startswith(_MANAGEMENT_GROUPS) and len(parts) >= 5
            and all(parts[1:]))


def _scope(scope: str) -> str:
    """The scope a path names, checked: the root, a subscription, an id under one, or a
    management group (refused by :func:`_authorize`)."""
    text = "/" + scope.strip("/") if scope.strip("/") else ""
    parts = text.split("/")[1:]
    if text and not _is_management_group(text) and (
            len(parts) < 2 or parts[0].lower() != "subscriptions" or not all(parts)):
        raise ArmError(400, "InvalidScope", f"The scope '{scope}' is not valid.")
    return text


def _authorize(request: Request, scope: str, action: str) -> Caller:
    caller = _authenticate(request)
    full = f"Microsoft.Authorization/{action}"
    if _is_management_group(scope):  # none exists here: no role reaches one
        raise authorization_failed(caller, full, scope)
    plane(request).access.authorize(caller, full, scope)
    # The event names the assignment (the path), the role check its scope.
    authorized(request, caller, full, request.scope["path"].rstrip("/"))
    return caller


def _definition_id(scope: str, role: Role) -> str:
    """A role definition's id as ARM shows it: under the scope's subscription."""
    parts = scope.split("/")
    prefix = f"/subscriptions/{parts[2]}" if len(parts) > 2 else ""
    return f"{prefix}/{_AUTH}/roleDefinitions/{role.id}"


def render_assignment(record: AssignmentRecord, seen_from: str | None = None) -> dict[str, Any]:
    """An assignment as ARM answers it; listed at ``seen_from`` (a scope at or below the
    assignment's), its role definition's id is under that scope's subscription."""
    role = ROLES[record.role_id]
    return {"id": f"{record.scope}/{_AUTH}/roleAssignments/{record.name}",
            "name": record.name, "type": _ASSIGNMENT_TYPE,
            "properties": {"roleDefinitionId": _definition_id(
                               record.scope if seen_from is None else seen_from, role),
                           "principalId": record.principal_id,
                           "principalType": record.principal_type, "scope": record.scope or "/",
                           "condition": None, "conditionVersion": None,
                           "createdOn": iso(record.created_at),
                           "updatedOn": iso(record.created_at), "createdBy": None,
                           "updatedBy": None, "delegatedManagedIdentityResourceId": None,
                           "description": None}}


def render_definition(scope: str, role: Role) -> dict[str, Any]:
    return {"id": _definition_id(scope, role), "name": role.id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {"roleName": role.name, "type": "BuiltInRole",
                           "description": role.description, "assignableScopes": ["/"],
                           "permissions": [{"actions": list(role.actions),
                                            "notActions": list(role.not_actions),
                                            "dataActions": [], "notDataActions": []}],
                           "createdOn": "2015-02-02T21:55:09.8806423Z",
                           "updatedOn": "2021-11-11T20:13:47.8628684Z",
                           "createdBy": None, "updatedBy": None}}


def _not_found(name: str) -> ArmError:
    return ArmError(404, "RoleAssignmentNotFound",
                    f"The role assignment '{name}' is not found.")


# ---- role assignments ---------------------------------------------------------------------


async def _put_assignment(at: str, name: str, request: Request) -> Response:
    _authorize(request, at, "roleAssignments/write")
    if not _GUID.match(name):
        raise ArmError(400, "InvalidRoleAssignmentId",
                       f"The role assignment ID '{name}' is not valid. The role assignment ID "
                       "must be a GUID.")
    doc = json_body(await request.body())
    props = doc.get("properties") if isinstance(doc, dict) else None
    if not isinstance(props, dict):
        raise ArmError(400, "InvalidRequestContent",
                       "The request content was invalid: 'properties' is required.")
    definition, principal = props.get("roleDefinitionId"), props.get("principalId")
    if not isinstance(definition, str) or not definition:
        raise ArmError(400, "InvalidRoleDefinitionId",
                       "The role definition ID '' is not valid.")
    role = role_named(definition) if "/" in definition or _GUID.match(definition) else None
    if role is None:
        raise ArmError(400, "RoleDefinitionDoesNotExist",
                       f"The specified role definition with ID '{definition.rsplit('/', 1)[-1]}'"
                       " does not exist.")
    if not isinstance(principal, str) or not _GUID.match(principal):
        raise ArmError(400, "InvalidPrincipalId",
                       "A valid principal ID must be provided for role assignment.")
    plane_ = plane(request)
    tenant = plane_.issuer.tenant
    known = plane_.store.principal(principal)
    # A service principal by its object id, or a managed identity's principal (as in
    # Entra, a managed identity is a service principal of the tenant).
    if (known is None or known.object_id != principal.lower()) and \
            plane_.store.managed_identity_of(principal) is None:
        raise ArmError(400, "PrincipalNotFound",
                       f"Principal {principal.replace('-', '')} does not exist in the directory "
                       f"{tenant}. Check that you have the correct principal ID. If you are "
                       "creating this principal and then immediately assigning a role, this "
                       "error might be related to a replication delay. In this case, set the "
                       "role assignment principalType property to a value, such as "
                       "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype")
    kind = str(props.get("principalType") or "ServicePrincipal")
    record, created = plane_.store.put_assignment(name, at, role.id, principal, kind)
    return JSONResponse(render_assignment(record), status_code=201 if created else 200)


@router.put(ASSIGNMENTS + "/{role_assignment_name}", openapi_extra=request_body(ROLE_ASSIGNMENT))
async def put_assignment(scope: str, role_assignment_name: str, request: Request) -> Response:
    return await _put_assignment(_scope(scope), role_assignment_name, request)


@router.put(ROOT_ASSIGNMENTS + "/{role_assignment_name}",
            openapi_extra=request_body(ROLE_ASSIGNMENT))
async def put_root_assignment(role_assignment_name: str, request: Request) -> Response:
    """An assignment at the root scope ``/``: the admin's (or a root Owner's) alone."""
    return await _put_assignment("", role_assignment_name, request)


def _own(request: Request, at: str, name: str) -> AssignmentRecord:
    record = plane(request).store.get_assignment(name)
    if record is None or scope_key(record.scope) != scope_key(at):
        raise _not_found(name)
    return record


def _get_assignment(at: str, name: str, request: Request) -> dict[str, Any]:
    _authorize(request, at, "roleAssignments/read")
    return render_assignment(_own(request, at, name))


@router.get(ASSIGNMENTS + "/{role_assignment_name}")
def get_assignment(scope: str, role_assignment_name: str,
                   request: Request) -> dict[str, Any]:
    return _get_assignment(_scope(scope), role_assignment_name, request)


@router.get(ROOT_ASSIGNMENTS + "/{role_assignment_name}")
def get_root_assignment(role_assignment_name: str, request: Request) -> dict[str, Any]:
    return _get_assignment("", role_assignment_name, request)


def _delete_assignment(at: str, name: str, request: Request) -> Response:
    """Delete an assignment: 200 with what it was, 204 if there was none (as ARM)."""
    _authorize(request, at, "roleAssignments/delete")
    found = plane(request).store.get_assignment(name)
    if found is None or scope_key(found.scope) != scope_key(at):
        return Response(status_code=204)
    plane(request).store.delete_assignment(name)
    return JSONResponse(render_assignment(found))


@router.delete(ASSIGNMENTS + "/{role_assignment_name}")
def delete_assignment(scope: str, role_assignment_name: str, request: Request) -> Response:
    """Delete an assignment: 200 with what it was, 204 if there was none (as ARM)."""
    return _delete_assignment(_scope(scope), role_assignment_name, request)


@router.delete(ROOT_ASSIGNMENTS + "/{role_assignment_name}")
def delete_root_assignment(role_assignment_name: str, request: Request) -> Response:
    """Delete an assignment at the root scope ``/``."""
    return _delete_assignment("", role_assignment_name, request)


_FILTER = re.compile(r"^\s*(?:atScope\(\)|principalId\s+eq\s+'([^']*)'|assignedTo\('([^']*)'\))"
                     r"\s*(?:and\s+|$)", re.IGNORECASE)


def _filters(text: str) -> tuple[bool, str | None]:
    """(atScope(), the principal) of a ``$filter``; 400 for anything else."""
    at_scope, principal, rest = False, None, text.strip()
    while rest:
        match = _FILTER.match(rest)
        if match is None:
            raise ArmError(400, "InvalidFilterInQueryString",
                           f"The filter '{text}' is not supported. Supported filters are "
                           "atScope(), principalId eq '{id}' and assignedTo('{id}').")
        if match.group(0).strip().lower().startswith("atscope"):
            at_scope = True
        else:
            principal = (match.group(1) or match.group(2) or "").lower()
        rest = rest[match.end():]
    return at_scope, principal


def _list_assignments(at: str, request: Request) -> dict[str, Any]:
    _authorize(request, at, "roleAssignments/read")
    at_scope, principal = _filters(request.query_params.get("$filter", ""))
    key = scope_key(at)
    found = []
    for record in plane(request).store.assignments(principal):
        other = scope_key(record.scope)
        above = other == "" or key == other or key.startswith(other + "/")
        below = other.startswith(key + "/") or key == ""
        if above or (below and not at_scope):
            found.append(render_assignment(record, at if other == "" and at else None))
    return {"value": found}


@router.get(ASSIGNMENTS)
def list_assignments(scope: str, request: Request) -> dict[str, Any]:
    """The assignments at the scope, above it (inherited: the root's too) and below it;
    with ``atScope()``, at and above only."""
    return _list_assignments(_scope(scope), request)


@router.get(ROOT_ASSIGNMENTS)
def list_root_assignments(request: Request) -> dict[str, Any]:
    """Every assignment (at the root and below it); with ``atScope()``, the root's."""
    return _list_assignments("", request)


# ---- role definitions ---------------------------------------------------------------------


def _get_definition(at: str, role_id: str, request: Request) -> dict[str, Any]:
    _authorize(request, at, "roleDefinitions/read")
    role = ROLES.get(role_id.lower())
    if role is None:
        raise ArmError(404, "RoleDefinitionDoesNotExist",
                       f"The specified role definition with ID '{role_id}' does not exist.")
    return render_definition(at, role)


@router.get(DEFINITIONS + "/{role_id}")
def get_definition(scope: str, role_id: str, request: Request) -> dict[str, Any]:
    return _get_definition(_scope(scope), role_id, request)


@router.get(ROOT_DEFINITIONS + "/{role_id}")
def get_root_definition(role_id: str, request: Request) -> dict[str, Any]:
    return _get_definition("", role_id, request)


_ROLE_NAME = re.compile(r"^\s*roleName\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_ROLE_TYPE = re.compile(r"^\s*type\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _list_definitions(at: str, request: Request) -> dict[str, Any]:
    _authorize(request, at, "roleDefinitions/read")
    text = request.query_params.get("$filter", "")
    roles = list(ROLES.values())
    if text.strip():
        by_name, by_type = _ROLE_NAME.match(text), _ROLE_TYPE.match(text)
        if by_name:
            roles = [r for r in roles if r.name.lower() == by_name.group(1).lower()]
        elif by_type:
            roles = roles if by_type.group(1).lower() == "builtinrole" else []
        else:
            raise ArmError(400, "InvalidFilterInQueryString",
                           f"The filter '{text}' is not supported.")
    return {"value": [render_definition(at, r) for r in roles]}


@router.get(DEFINITIONS)
def list_definitions(scope: str, request: Request) -> dict[str, Any]:
    return _list_definitions(_scope(scope), request)


@router.get(ROOT_DEFINITIONS)
def list_root_definitions(request: Request) -> dict[str, Any]:
    """The built-in roles at the root scope ``/`` (az resolves ``--role`` there for an
    assignment at ``/``)."""
    return _list_definitions("", request)


# ---- the caller's own permissions -----------------------------------------------------------


@router.get(PERMISSIONS)
def list_permissions(scope: str, request: Request) -> dict[str, Any]:
    """What the caller may do at a resource group or a resource (ARM's
    ``AzurePermissionsForResourceGroup_List`` and ``AzurePermissionsForResource_List``):
    the actions and notActions of each role it holds there or above (portals read it to
    offer only the actions a caller may take). A caller holding no role at, above or
    below the scope gets ARM's 403 ``AuthorizationFailed``, the same whether the scope
    exists or not; one holding a role only below it, an empty list."""
    at = _scope(scope)
    caller = _authenticate(request)
    access = plane(request).access
    action = "Microsoft.Authorization/permissions/read"
    if _is_management_group(at) or not access.may_see(caller, at):
        raise authorization_failed(caller, action, at)
    return {"value": [{"actions": list(role.actions), "notActions": list(role.not_actions),
                       "dataActions": [], "notDataActions": []}
                      for role in access.roles_at(caller, at)]}
