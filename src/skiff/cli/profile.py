"""``skiff container profile ...``: container group profiles, against skiff's API.

A profile is a container group's definition kept under a name (an ACI YAML or JSON
file, as ``skiff container create --file`` reads), with its ``shutdownGracePeriod`` and
``timeToLive``. Every change makes a new revision, and the old ones stay as they were:
``revisions`` lists them, ``show --revision N`` shows one. A group is made from one
with ``skiff container create --profile ID [--profile-revision N]``. Profiles print
as az prints resources (``properties`` flattened, ``resourceGroup`` added); output
options, ``--query`` and errors are those of ``skiff container``; secrets in a file are
never printed, and never answered back by the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from skiff.cli.bodies import body_from_file
from skiff.cli.common import AzCommand, handle_errors, keep_secret, new_client
from skiff.cli.output import emit, output_options
from skiff.cli.views import resource_view
from skiff.documents import secrets_of


@click.group("profile")
def profile() -> None:
    """Manage container group profiles: definitions to make container groups from.

    Each change of a profile is a new revision; groups name the revision they are
    made from (skiff container create --profile ID --profile-revision N).
    """


_name = click.option("--name", "-n", help="The profile's name: 1 to 63 letters, digits, "
                                          "'-' and '_' (default: the file's name).")
_rg = click.option("--resource-group", "-g", "resource_group", required=True,
                   help="Name of resource group.")


@profile.command("create", cls=AzCommand)
@_name
@_rg
@click.option("--file", "-f", "file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The profile's definition: an ACI YAML (or JSON) file, as for skiff "
                   "container create --file; its properties may hold shutdownGracePeriod "
                   "and timeToLive (ISO 8601 durations, such as PT30S, or RFC 3339 "
                   "date-times).")
@click.option("--location", "-l", help="Location. Default: the file's, else the resource "
                                       "group's.")
@output_options
@handle_errors
def profile_create(name: str | None, resource_group: str, file: Path, location: str | None,
                   output: str, query: Any) -> None:
    """Create a profile, or make a new revision of it (a file unchanged makes none).

    \b
    Examples:
      skiff container profile create -g MyResourceGroup -n web --file web.yaml
    """
    name, body = body_from_file(file, name)
    keep_secret(*secrets_of(body))
    body.pop("name", None)
    with new_client() as client:
        location = location or body.get("location") or \
            client.resource_group_location(resource_group)
        if location:  # else the node's
            body["location"] = location
        made = client.put_profile(resource_group, name, body)
    emit(resource_view(made), output, query)


@profile.command("show")
@click.option("--name", "-n", required=True, help="The profile's name.")
@_rg
@click.option("--revision", type=click.IntRange(min=1),
              help="Show this revision. Default: the current one.")
@output_options
@handle_errors
def profile_show(name: str, resource_group: str, revision: int | None, output: str,
                 query: Any) -> None:
    """Show a profile (its current revision and every revision it has had), or one of
    its revisions."""
    with new_client() as client:
        found = client.get_profile(resource_group, name, revision)
    emit(resource_view(found), output, query)


@profile.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every profile of the subscription.")
@output_options
@handle_errors
def profile_list(resource_group: str | None, output: str, query: Any) -> None:
    """List profiles."""
    with new_client() as client:
        found = client.list_profiles(resource_group)
    emit([resource_view(p) for p in found], output, query)


@profile.command("revisions")
@click.option("--name", "-n", required=True, help="The profile's name.")
@_rg
@output_options
@handle_errors
def profile_revisions(name: str, resource_group: str, output: str, query: Any) -> None:
    """List a profile's revisions, oldest first, each as it was written."""
    with new_client() as client:
        found = client.list_profile_revisions(resource_group, name)
    emit([resource_view(r) for r in found], output, query)


@profile.command("delete")
@click.option("--name", "-n", required=True, help="The profile's name.")
@_rg
@handle_errors
def profile_delete(name: str, resource_group: str) -> None:
    """Delete a profile and its revisions. Groups made from it keep their definitions;
    deleting one that is not there does nothing."""
    with new_client() as client:
        client.delete_profile(resource_group, name)
