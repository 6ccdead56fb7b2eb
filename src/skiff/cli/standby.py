"""``skiff standby-container-group-pool ...``: the ``az standby-container-group-pool``
commands (az's standbypool extension), against skiff's API.

A standby pool keeps ``--max-ready-capacity`` container groups of a container group
profile created and running, refilled in the background; a group PUT naming the pool
(``properties.standbyPoolProfile.id``) is answered with one of them, already Running.
Pools print as az prints them (``properties`` flattened, ``resourceGroup`` added);
``status`` prints the pool's runtime view (its groups counted by state). Output
options, ``--query`` and errors are those of ``skiff container``.
"""

from __future__ import annotations

from typing import Any

import click

from skiff.cli.common import AzCommand, handle_errors, new_client
from skiff.cli.identity import _tags
from skiff.cli.output import emit, output_options
from skiff.cli.views import resource_view
from skiff.client import SkiffClient


@click.group("standby-container-group-pool")
@click.pass_context
def standby_pool(ctx: click.Context) -> None:
    """Manage standby container group pools, as `az standby-container-group-pool` does,
    through skiff's API.

    A pool keeps --max-ready-capacity groups of a container group profile running; a
    container group PUT whose properties.standbyPoolProfile.id names the pool gets one
    of them at once (isCreatedFromStandbyPool: true), and the pool refills. A group is
    ready, claimable, once its declared ports answer. The API is
    reached as for `skiff container` (SKIFF_URL, SKIFF_TOKEN, SKIFF_CA,
    SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


_name = click.option("--name", "-n", required=True,
                     help="The pool's name: 3 to 24 letters, digits and '-'.")
_rg = click.option("--resource-group", "-g", "resource_group", required=True,
                   help="Name of resource group.")


@standby_pool.command("create", cls=AzCommand)
@_name
@_rg
@click.option("--container-profile-id", required=True,
              help="ARM id of the container group profile the pool's groups are made of.")
@click.option("--profile-revision", type=int,
              help="The profile's revision. Default: its latest.")
@click.option("--max-ready-capacity", type=click.IntRange(0, 2000), required=True,
              help="How many groups the pool keeps ready (0 to 2000).")
@click.option("--refill-policy", type=click.Choice(["always"], case_sensitive=False),
              default="always", show_default=True, help="When the pool refills.")
@click.option("--subnet-ids", multiple=True, metavar="ID [ID ...]",
              help="Space-separated subnet ids the pool's groups are placed in.")
@click.option("--location", "-l", help="Location. Default: the resource group's location.")
@click.option("--tags", multiple=True, metavar="KEY[=VALUE] [KEY[=VALUE] ...]",
              help="Space-separated tags: key[=value] [key[=value] ...].")
@output_options
@handle_errors
def pool_create(name: str, resource_group: str, container_profile_id: str,
                profile_revision: int | None, max_ready_capacity: int, refill_policy: str,
                subnet_ids: tuple[str, ...], location: str | None, tags: tuple[str, ...],
                output: str, query: Any) -> None:
    """Create a standby pool (or replace one's definition). PROFILE_ID is a profile's
    ARM id: /subscriptions/SUB/resourceGroups/RG/providers/
    Microsoft.ContainerInstance/containerGroupProfiles/NAME.

    \b
    Examples:
      skiff standby-container-group-pool create -n mypool -g MyResourceGroup \\
        --container-profile-id $PROFILE_ID --max-ready-capacity 5
    """
    profile: dict[str, Any] = {"id": container_profile_id}
    if profile_revision is not None:
        profile["revision"] = profile_revision
    group: dict[str, Any] = {"containerGroupProfile": profile}
    subnets = [s for value in subnet_ids for s in value.split()]
    if subnets:
        group["subnetIds"] = [{"id": s} for s in subnets]
    body: dict[str, Any] = {"tags": _tags(tags), "properties": {
        "elasticityProfile": {"maxReadyCapacity": max_ready_capacity,
                              "refillPolicy": refill_policy.lower()},
        "containerGroupProperties": group}}
    with new_client() as client:
        location = location or client.resource_group_location(resource_group)
        if location:  # else the node's
            body["location"] = location
        created = client.create_pool(resource_group, name, body)
    emit(resource_view(created), output, query)


@standby_pool.command("show")
@_name
@_rg
@output_options
@handle_errors
def pool_show(name: str, resource_group: str, output: str, query: Any) -> None:
    """Show a standby pool."""
    with new_client() as client:
        found = client.get_pool(resource_group, name)
    emit(resource_view(found), output, query)


@standby_pool.command("status")
@_name
@_rg
@output_options
@handle_errors
def pool_status(name: str, resource_group: str, output: str, query: Any) -> None:
    """Show a standby pool's runtime view: its groups counted by state (Running: ready,
    its declared ports answering; Creating: not yet; Deleting) and its health."""
    with new_client() as client:
        found = client.pool_status(resource_group, name)
    emit(resource_view(found), output, query)


@standby_pool.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every pool of the subscription.")
@output_options
@handle_errors
def pool_list(resource_group: str | None, output: str, query: Any) -> None:
    """List standby pools."""
    with new_client() as client:
        found = client.list_pools(resource_group)
    emit([resource_view(p) for p in found], output, query)


@standby_pool.command("delete")
@_name
@_rg
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation (skiff "
                                                  "never prompts; accepted as az's).")
@handle_errors
def pool_delete(name: str, resource_group: str, yes: bool) -> None:
    """Delete a standby pool and the groups it keeps ready (groups claimed from it are
    the claimers' and stay). Deleting one that is not there does nothing."""
    with new_client() as client:
        client.delete_pool(resource_group, name)
