"""Service principals and role assignments: what ``skiff ad sp`` and ``skiff role``
send.

Service principals are the node admin's (``/skiff/servicePrincipals``, the admin token
only); role assignments and role definitions are ARM's ``Microsoft.Authorization``
resources at a scope (api-version 2022-04-01, as az's).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from skiff.client.errors import json_object
from skiff.client.http import HttpApi

AUTHORIZATION_VERSION = "2022-04-01"
_PRINCIPALS = "/skiff/servicePrincipals"
_AUTH = "providers/Microsoft.Authorization"
_VERSION = f"?api-version={AUTHORIZATION_VERSION}"


def _url(path: str, query: dict[str, str]) -> str:
    """``path`` with the api-version and ``query`` (in the URL: the client's ``params``
    would replace its query, not add to it)."""
    return f"{path}?{urlencode({'api-version': AUTHORIZATION_VERSION, **query})}"


def _path(scope: str) -> str:
    """A scope (an ARM id) as a URL path, each segment quoted."""
    return "/".join(quote(part, safe="") for part in scope.strip().rstrip("/").split("/"))


class AccessApi(HttpApi):
    """skiff's service principals and Microsoft.Authorization's role assignments."""

    # --- service principals (the node's admin) -----------------------------------------------

    def create_for_rbac(self, name: str, role: str | None = None,
                        scopes: Sequence[str] = ()) -> dict[str, Any]:
        """A principal named ``name`` (the existing one of that name, with a new secret),
        given ``role`` at each scope; answers appId, displayName, password, tenant."""
        body: dict[str, Any] = {"displayName": name}
        if role is not None:
            body["role"] = role
        if scopes:
            body["scopes"] = list(scopes)
        return json_object(self._send("POST", _PRINCIPALS, json=body))

    def list_principals(self) -> list[dict[str, Any]]:
        return list(self._pages(_PRINCIPALS, "service principals"))

    def get_principal(self, id_: str) -> dict[str, Any]:
        return json_object(self._send("GET", f"{_PRINCIPALS}/{quote(id_, safe='')}"))

    def delete_principal(self, id_: str) -> None:
        self._send("DELETE", f"{_PRINCIPALS}/{quote(id_, safe='')}")

    def reset_credential(self, id_: str, *, append: bool = False) -> dict[str, Any]:
        return json_object(self._send("POST", f"{_PRINCIPALS}/{quote(id_, safe='')}"
                                               "/resetCredential", json={"append": append}))

    # --- role assignments and definitions ----------------------------------------------------

    def role_definitions(self, scope: str, name: str | None = None) -> list[dict[str, Any]]:
        query = {"$filter": f"roleName eq '{name}'"} if name else {}
        answer = json_object(self._send("GET", _url(f"{_path(scope)}/{_AUTH}/roleDefinitions",
                                                    query)))
        return [d for d in answer.get("value") or [] if isinstance(d, dict)]

    def create_assignment(self, scope: str, role_definition_id: str, principal_id: str,
                          principal_type: str = "ServicePrincipal") -> dict[str, Any]:
        body = {"properties": {"roleDefinitionId": role_definition_id,
                               "principalId": principal_id, "principalType": principal_type}}
        return json_object(self._send(
            "PUT", f"{_path(scope)}/{_AUTH}/roleAssignments/{uuid.uuid4()}{_VERSION}",
            json=body))

    def list_assignments(self, scope: str, *, principal_id: str | None = None,
                         at_scope: bool = False) -> list[dict[str, Any]]:
        filters = (["atScope()"] if at_scope else []) + (
            [f"principalId eq '{principal_id}'"] if principal_id else [])
        query = {"$filter": " and ".join(filters)} if filters else {}
        answer = json_object(self._send("GET", _url(f"{_path(scope)}/{_AUTH}/roleAssignments",
                                                    query)))
        return [a for a in answer.get("value") or [] if isinstance(a, dict)]

    def delete_assignment(self, assignment_id: str) -> dict[str, Any]:
        """Delete a role assignment by its ARM id ({} if there was none)."""
        return json_object(self._send("DELETE", _path(assignment_id) + _VERSION))
