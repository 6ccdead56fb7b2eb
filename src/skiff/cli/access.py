"""``skiff ad sp ...`` and ``skiff role ...``: az's identity and access commands against
skiff's API.

``skiff ad sp create-for-rbac --name N --role ROLE --scopes SCOPE`` makes a service
principal (the node admin's: the admin token) and prints what az prints, appId,
displayName, password and tenant, with az's warnings on stderr; ``az login
--service-principal -u APPID -p PASSWORD --tenant TENANT`` then signs in with it.
``skiff role assignment create|list|delete`` and ``skiff role definition list`` are
az's ``az role`` commands (Microsoft.Authorization), which any Owner may run at the
scopes it owns.
"""

from __future__ import annotations

import re
from typing import Any

import click

from skiff.cli.common import AzCommand, InvalidArgument, handle_errors, new_client
from skiff.cli.output import emit, output_options
from skiff.client import ApiError, SkiffClient

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_PROTECT = ("The output includes credentials that you must protect. Be sure that you do not "
            "include these credentials in your code or check the credentials into your "
            "source control. For more information, see https://aka.ms/azadsp-cli")


@click.group()
def ad() -> None:
    """Manage service principals, as `az ad` does (the node's admin token)."""


@ad.group("sp")
def sp() -> None:
    """Manage service principals: create-for-rbac, list, show, delete, credential reset."""


@sp.command("create-for-rbac", cls=AzCommand)
@click.option("--name", "-n", "name", required=True,
              help="Display name of the service principal (an existing one of this name "
                   "gets a new secret).")
@click.option("--role", help="Role of the service principal: Owner, Contributor or Reader.")
@click.option("--scopes", multiple=True,
              help="Space-separated scopes the role assignment applies to: "
                   "/subscriptions/ID, a resource group's or a resource's id.")
@output_options
@handle_errors
def create_for_rbac(name: str, role: str | None, scopes: tuple[str, ...], output: str,
                    query: Any) -> None:
    """Create a service principal and configure its access to Azure resources.

    Prints appId, displayName, password and tenant, as az does: the password is shown
    this once (skiff keeps only its hash). Sign in with `az login --service-principal
    -u APPID -p PASSWORD --tenant TENANT`.
    """
    if scopes and not role:
        raise InvalidArgument("--scopes needs --role (az: usage error)")
    with new_client() as client:
        made = client.create_for_rbac(name, role, scopes)
    for scope in scopes:
        click.echo(f"Creating '{role}' role assignment under scope '{scope}'", err=True)
    click.echo(_PROTECT, err=True)
    emit({k: made.get(k) for k in ("appId", "displayName", "password", "tenant")}, output,
         query)


@sp.command("list")
@output_options
@handle_errors
def sp_list(output: str, query: Any) -> None:
    """List the node's service principals."""
    with new_client() as client:
        found = client.list_principals()
    emit(found, output, query)


@sp.command("show")
@click.option("--id", "id_", required=True, help="The principal's appId or object id.")
@output_options
@handle_errors
def sp_show(id_: str, output: str, query: Any) -> None:
    """Show a service principal."""
    with new_client() as client:
        emit(client.get_principal(id_), output, query)


@sp.command("delete")
@click.option("--id", "id_", required=True, help="The principal's appId or object id.")
@handle_errors
def sp_delete(id_: str) -> None:
    """Delete a service principal, its secrets and its role assignments."""
    with new_client() as client:
        client.delete_principal(id_)


@sp.group("credential")
def credential() -> None:
    """Manage a service principal's secrets."""


@credential.command("reset")
@click.option("--id", "id_", required=True, help="The principal's appId or object id.")
@click.option("--append", is_flag=True,
              help="Add the new secret beside the others instead of replacing them.")
@output_options
@handle_errors
def credential_reset(id_: str, append: bool, output: str, query: Any) -> None:
    """Give a service principal a new secret; prints appId, password and tenant."""
    with new_client() as client:
        made = client.reset_credential(id_, append=append)
    click.echo(_PROTECT, err=True)
    emit({k: made.get(k) for k in ("appId", "password", "tenant")}, output, query)


# ---- az role ------------------------------------------------------------------------------


@click.group()
def role() -> None:
    """Manage role assignments and see role definitions, as `az role` does."""


@role.group("assignment")
def assignment() -> None:
    """Manage role assignments: create, list, delete."""


@role.group("definition")
def definition() -> None:
    """See the built-in role definitions: Owner, Contributor, Reader."""


#: What ``--scope`` takes, in every command's help.
_SCOPE_HELP = ("Scope: an ARM id (default: the subscription); '/' is the root scope, where "
               "only the node's admin (or a principal Owner at '/') may act.")


def _scope(client: SkiffClient, scope: str | None, resource_group: str | None) -> str:
    if scope:
        return scope.rstrip("/")
    base = f"/subscriptions/{client.subscription}"
    return f"{base}/resourceGroups/{resource_group}" if resource_group else base


def _principal(client: SkiffClient, assignee: str | None, object_id: str | None) -> str | None:
    """An assignee's object id: given, or looked up (an appId) among the principals."""
    if object_id:
        return object_id.lower()
    if not assignee:
        return None
    try:
        return str(client.get_principal(assignee)["id"])
    except ApiError as exc:
        if _GUID.match(assignee) and exc.status in (403, 404):
            return assignee.lower()  # az too assumes an object id it cannot look up
        raise


def _role_id(client: SkiffClient, scope: str, role_: str) -> str:
    if "/" in role_ or _GUID.match(role_):
        return role_
    found = client.role_definitions(scope, role_)
    if not found:
        raise InvalidArgument(f"Role '{role_}' doesn't exist.")
    return str(found[0]["id"])


def assignment_view(item: dict[str, Any]) -> dict[str, Any]:
    """A role assignment as az prints it: properties flattened, the role's name added."""
    out = {k: v for k, v in item.items() if k != "properties"}
    out.update(item.get("properties") or {})
    names = {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
             "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
             "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c": "Reader"}
    out["roleDefinitionName"] = names.get(str(out.get("roleDefinitionId", "")).rsplit("/")[-1])
    parts = str(out.get("scope", "")).split("/")
    if len(parts) > 4 and parts[3].lower() == "resourcegroups":
        out["resourceGroup"] = parts[4]
    return dict(sorted(out.items()))


def _table(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Principal": i.get("principalId"), "Role": i.get("roleDefinitionName"),
             "Scope": i.get("scope")} for i in items]


@assignment.command("create")
@click.option("--assignee", help="The principal's appId or object id.")
@click.option("--assignee-object-id", help="The principal's object id (no look-up).")
@click.option("--assignee-principal-type", default="ServicePrincipal", show_default=True,
              type=click.Choice(["ServicePrincipal", "User", "Group"]),
              help="The principal's type.")
@click.option("--role", "role_", required=True, help="Role name or id: Owner, Contributor, "
                                                     "Reader.")
@click.option("--scope", help="Scope at which the role assignment applies. " + _SCOPE_HELP)
@click.option("--resource-group", "-g", "resource_group",
              help="Use it as the scope: the resource group.")
@output_options
@handle_errors
def assignment_create(assignee: str | None, assignee_object_id: str | None,
                      assignee_principal_type: str, role_: str, scope: str | None,
                      resource_group: str | None, output: str, query: Any) -> None:
    """Create a new role assignment for a principal."""
    with new_client() as client:
        principal = _principal(client, assignee, assignee_object_id)
        if principal is None:
            raise InvalidArgument("usage error: --assignee | --assignee-object-id")
        where = _scope(client, scope, resource_group)
        made = client.create_assignment(where, _role_id(client, where, role_), principal,
                                        assignee_principal_type)
    emit(assignment_view(made), output, query)


def _listed(client: SkiffClient, where: str, principal: str | None, role_: str | None,
            *, all_: bool, inherited: bool) -> list[dict[str, Any]]:
    found = [assignment_view(a) for a in client.list_assignments(
        where, principal_id=principal, at_scope=not all_)]
    if not all_ and not inherited:  # the root is '' here, '/' in an assignment
        found = [a for a in found
                 if str(a.get("scope", "")).rstrip("/").lower() == where.rstrip("/").lower()]
    if role_:
        found = [a for a in found if role_.lower() in (
            str(a.get("roleDefinitionName", "")).lower(),
            str(a.get("roleDefinitionId", "")).rsplit("/")[-1].lower(),
            str(a.get("roleDefinitionId", "")).lower())]
    return found


@assignment.command("list")
@click.option("--assignee", help="The principal's appId or object id.")
@click.option("--role", "role_", help="Only this role.")
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--resource-group", "-g", "resource_group", help="The resource group's scope.")
@click.option("--all", "all_", is_flag=True,
              help="Show assignments at, above and below the scope.")
@click.option("--include-inherited", is_flag=True,
              help="Show assignments above the scope too.")
@output_options
@handle_errors
def assignment_list(assignee: str | None, role_: str | None, scope: str | None,
                    resource_group: str | None, all_: bool, include_inherited: bool,
                    output: str, query: Any) -> None:
    """List role assignments (by default: at the subscription's scope)."""
    with new_client() as client:
        principal = _principal(client, assignee, None)
        found = _listed(client, _scope(client, scope, resource_group), principal, role_,
                        all_=all_, inherited=include_inherited)
    emit(found, output, query, table=_table)


@assignment.command("delete", cls=AzCommand)
@click.option("--ids", multiple=True, help="Space-separated role assignment ids.")
@click.option("--assignee", help="The principal's appId or object id.")
@click.option("--role", "role_", help="Only this role.")
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--resource-group", "-g", "resource_group", help="The resource group's scope.")
@handle_errors
def assignment_delete(ids: tuple[str, ...], assignee: str | None, role_: str | None,
                      scope: str | None, resource_group: str | None) -> None:
    """Delete role assignments: by id, or those of an assignee (and role) at a scope."""
    with new_client() as client:
        targets = list(ids)
        if not targets:
            if not assignee and not role_:
                raise InvalidArgument("usage error: --ids | --assignee [--role] [--scope]")
            principal = _principal(client, assignee, None)
            where = _scope(client, scope, resource_group)
            targets = [str(a["id"]) for a in _listed(client, where, principal, role_,
                                                      all_=False, inherited=False)]
            if not targets:
                raise InvalidArgument("No matched assignments were found to delete")
        for target in targets:
            client.delete_assignment(target)


@definition.command("list")
@click.option("--name", help="Only the role of this name.")
@click.option("--scope", help=_SCOPE_HELP)
@output_options
@handle_errors
def definition_list(name: str | None, scope: str | None, output: str, query: Any) -> None:
    """List the role definitions."""
    with new_client() as client:
        found = client.role_definitions(_scope(client, scope, None), name)
    views = []
    for item in found:
        view = {k: v for k, v in item.items() if k != "properties"}
        view.update(item.get("properties") or {})
        views.append(view)
    emit(views, output, query)
