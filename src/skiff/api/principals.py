"""The node's service principals: the admin's routes behind ``skiff ad sp``.

Azure keeps service principals in Entra ID (Microsoft Graph), not in ARM; skiff keeps
them in its store and serves them here, under ``/skiff/servicePrincipals``, to the node's
admin token alone. Creating one answers its secret once (only a hash is kept), as
``az ad sp create-for-rbac`` prints it; with a role and scopes, the principal is given
that role there in the same request, each scope checked first, so that a bad scope
leaves nothing half made. A principal of the same display name is reused with a new
secret (az "patches" an existing app the same way).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from skiff.api.bodies import CREDENTIAL_RESET, SERVICE_PRINCIPAL, request_body
from skiff.api.context import Admin, json_body, plane
from skiff.control.access import role_named
from skiff.core.view import iso
from skiff.errors import ArmError
from skiff.store.principals import PrincipalRecord

router = APIRouter()
PRINCIPALS = "/skiff/servicePrincipals"


def render(record: PrincipalRecord) -> dict[str, Any]:
    return {"id": record.object_id, "appId": record.app_id,
            "displayName": record.display_name, "servicePrincipalType": "Application",
            "createdDateTime": iso(record.created_at)}


def _scopes(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ArmError(400, "InvalidRequestContent", "'scopes' must be a list of ARM ids.")
    found = []
    for value in values:
        if value.strip() == "/":  # the root: this route is the admin's, who may assign there
            found.append("")
            continue
        parts = value.strip().rstrip("/").split("/")
        if len(parts) < 3 or parts[0] or parts[1].lower() != "subscriptions" \
                or not all(parts[1:]) or len(parts) % 2 == 0:
            raise ArmError(400, "InvalidScope",
                           f"The scope '{value}' is not valid: give the root (/), a "
                           "subscription (/subscriptions/ID), a resource group or a resource "
                           "id.")
        found.append("/".join(parts))
    return found


@router.post(PRINCIPALS, status_code=201, openapi_extra=request_body(SERVICE_PRINCIPAL))
async def create(request: Request, _: Admin) -> JSONResponse:
    """Make a principal (or reuse the one of that display name with a new secret) and give
    it ``role`` at each of ``scopes``; answers az's create-for-rbac fields."""
    doc = json_body(await request.body())
    if not isinstance(doc, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    name = doc.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise ArmError(400, "InvalidRequestContent",
                       "'displayName' must be a name of 1 to 120 characters.")
    scopes = _scopes(doc.get("scopes"))
    role = None
    if doc.get("role") is not None:
        role = role_named(str(doc["role"]))
        if role is None:
            raise ArmError(400, "RoleDefinitionDoesNotExist",
                           f"Role '{doc['role']}' doesn't exist: the roles are Owner, "
                           "Contributor and Reader.")
    if scopes and role is None:
        raise ArmError(400, "InvalidRequestContent", "'scopes' needs a 'role'.")
    store = plane(request).store
    existing = next((p for p in store.list_principals() if p.display_name == name), None)
    if existing is not None:
        reset = store.reset_secret(existing.object_id)
        assert reset is not None
        record, secret = reset
    else:
        record, secret = store.create_principal(name)
    for scope in scopes:
        assert role is not None
        if not any(a.role_id == role.id and a.scope.lower() == scope.lower()
                   for a in store.assignments(record.object_id)):
            store.put_assignment(str(uuid.uuid4()), scope, role.id, record.object_id,
                                 "ServicePrincipal")
    return JSONResponse({"appId": record.app_id, "displayName": record.display_name,
                         "password": secret, "tenant": store.tenant_id(),
                         "objectId": record.object_id}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get(PRINCIPALS)
def list_(request: Request, _: Admin) -> dict[str, Any]:
    return {"value": [render(p) for p in plane(request).store.list_principals()]}


def _not_found(id_: str) -> ArmError:
    return ArmError(404, "ServicePrincipalNotFound",
                    f"Resource '{id_}' does not exist or one of its queried reference-property "
                    "objects are not present.")


@router.get(PRINCIPALS + "/{id_}")
def get(id_: str, request: Request, _: Admin) -> dict[str, Any]:
    record = plane(request).store.principal(id_)
    if record is None:
        raise _not_found(id_)
    return render(record)


@router.delete(PRINCIPALS + "/{id_}")
def delete(id_: str, request: Request, _: Admin) -> Response:
    """Delete a principal, its secrets and its role assignments: its tokens stop working
    at their next use (they hold no role any more)."""
    if not plane(request).store.delete_principal(id_):
        raise _not_found(id_)
    return Response(status_code=204)


@router.post(PRINCIPALS + "/{id_}/resetCredential",
             openapi_extra=request_body(CREDENTIAL_RESET))
async def reset_credential(id_: str, request: Request, _: Admin) -> JSONResponse:
    """A new secret (``append``: beside the others, else in their place)."""
    raw = await request.body()
    doc = json_body(raw) if raw.strip() else {}
    append = bool(doc.get("append")) if isinstance(doc, dict) else False
    store = plane(request).store
    reset = store.reset_secret(id_, append=append)
    if reset is None:
        raise _not_found(id_)
    record, secret = reset
    return JSONResponse({"appId": record.app_id, "password": secret,
                         "tenant": store.tenant_id()}, headers={"Cache-Control": "no-store"})
