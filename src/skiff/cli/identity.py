"""``skiff identity ...``: the ``az identity`` commands, against skiff's API.

A user-assigned managed identity is a ``Microsoft.ManagedIdentity`` resource with a
principal (``principalId``) and an application (``clientId``) of its own; a container
group holds it with ``skiff container create --assign-identity ID`` (or a system
identity of its own with ``--assign-identity`` alone), and its containers get its
tokens from the identity endpoint, ``http://169.254.169.254/metadata/identity/oauth2/
token``. Identities print as az prints them (``properties`` flattened,
``resourceGroup`` added); output options, ``--query`` and errors are those of ``skiff
container``.
"""

from __future__ import annotations

from typing import Any

import click

from skiff.cli.common import AzCommand, handle_errors, new_client
from skiff.cli.output import emit, output_options
from skiff.cli.views import resource_view
from skiff.client import SkiffClient


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        for item in value.split():
            name, _, tag = item.partition("=")
            tags[name] = tag
    return tags


@click.group("identity")
@click.pass_context
def identity(ctx: click.Context) -> None:
    """Manage user-assigned managed identities, as `az identity` does, through skiff's API.

    A container group holds one with skiff container create --assign-identity ID;
    its containers then get the identity's tokens from
    http://169.254.169.254/metadata/identity/oauth2/token (header Metadata: true),
    as ManagedIdentityCredential and az login --identity ask for them. The API is
    reached as for `skiff container` (SKIFF_URL, SKIFF_TOKEN, SKIFF_CA,
    SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


_name = click.option("--name", "-n", required=True,
                     help="The identity's name: 3 to 128 letters, digits, '-' and '_'.")
_rg = click.option("--resource-group", "-g", "resource_group", required=True,
                   help="Name of resource group.")


@identity.command("create", cls=AzCommand)
@_name
@_rg
@click.option("--location", "-l", help="Location. Default: the resource group's location.")
@click.option("--tags", multiple=True, metavar="KEY[=VALUE] [KEY[=VALUE] ...]",
              help="Space-separated tags: key[=value] [key[=value] ...].")
@output_options
@handle_errors
def identity_create(name: str, resource_group: str, location: str | None,
                    tags: tuple[str, ...], output: str, query: Any) -> None:
    """Create an identity (or replace the tags of one); its clientId, principalId and
    tenantId are made with it.

    \b
    Examples:
      skiff identity create -n myidentity -g MyResourceGroup
    """
    body: dict[str, Any] = {"tags": _tags(tags)}
    with new_client() as client:
        location = location or client.resource_group_location(resource_group)
        if location:  # else the node's
            body["location"] = location
        created = client.create_identity(resource_group, name, body)
    emit(resource_view(created), output, query)


@identity.command("show")
@_name
@_rg
@output_options
@handle_errors
def identity_show(name: str, resource_group: str, output: str, query: Any) -> None:
    """Show an identity: its clientId, principalId, tenantId and id."""
    with new_client() as client:
        found = client.get_identity(resource_group, name)
    emit(resource_view(found), output, query)


@identity.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every identity of the subscription.")
@output_options
@handle_errors
def identity_list(resource_group: str | None, output: str, query: Any) -> None:
    """List identities."""
    with new_client() as client:
        found = client.list_identities(resource_group)
    emit([resource_view(i) for i in found], output, query)


@identity.command("delete")
@_name
@_rg
@handle_errors
def identity_delete(name: str, resource_group: str) -> None:
    """Delete an identity. Groups that hold it keep its id; their containers get no
    more tokens for it. Deleting one that is not there does nothing."""
    with new_client() as client:
        client.delete_identity(resource_group, name)
