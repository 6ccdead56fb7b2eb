"""``skiff container ngroup ...``: NGroups, in the style of ``az container``.

az has no NGroup commands yet; these follow its conventions: ``-g``/``-n``, ``--no-wait``,
``-o``/``--query``, ``--yes`` for delete, a body from ``--file`` or from flags. An NGroup
is printed as ARM answers it (api-version 2025-09-01, whose SDK models keep
``properties``), with az's ``resourceGroup`` added; ``-o table`` is a short table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from skiff.cli.common import (
    InvalidArgument,
    confirm_delete,
    handle_errors,
    new_client,
    rg_and_name,
    show_progress,
)
from skiff.cli.output import emit, output_options
from skiff.cli.views import add_resource_group


def _view(ngroup: dict[str, Any]) -> dict[str, Any]:
    add_resource_group(ngroup)
    return ngroup


def _table(ngroups: Any) -> list[dict[str, Any]]:
    rows = ngroups if isinstance(ngroups, list) else [ngroups]
    return [{"Name": n.get("name"), "ResourceGroup": n.get("resourceGroup"),
             "Count": (n.get("properties", {}).get("elasticProfile") or {}).get("desiredCount"),
             "Mode": (n.get("properties", {}).get("updateProfile") or {}).get("updateMode",
                                                                              "Manual"),
             "State": n.get("properties", {}).get("provisioningState"),
             "Location": n.get("location")} for n in rows]


def _ngroup_flags(func: Any) -> Any:
    """The flags ``create`` and ``update`` share: each sets one field of the body."""
    for option in reversed([
        click.option("--file", "-f", "file", type=click.Path(dir_okay=False, path_type=Path),
                     help="An NGroup's ARM body (JSON); the flags below change it."),
        click.option("--location", "-l", help="Location. Default: the resource group's."),
        click.option("--profile", "profile",
                     help="The ARM id of the container group profile the members are built "
                          "from."),
        click.option("--profile-revision", type=click.IntRange(1),
                     help="The profile's revision. Default: its latest."),
        click.option("--desired-count", type=click.IntRange(0),
                     help="How many container groups the NGroup keeps."),
        click.option("--maintain-desired-count/--no-maintain-desired-count", default=None,
                     help="Replace members that are deleted or fail."),
        click.option("--prefix", help="The members' name prefix (their names: prefix+GUID)."),
        click.option("--update-mode", type=click.Choice(["Manual", "Rolling"]),
                     help="Manual: new members only get a new revision. Rolling: every "
                          "member is rolled over in batches."),
        click.option("--max-batch-percent", type=click.IntRange(1, 100),
                     help="Rolling: the share of members one batch updates."),
        click.option("--max-unhealthy-percent", type=click.IntRange(0, 100),
                     help="Rolling: the share of updated members that may be unhealthy "
                          "before the update stops."),
        click.option("--pause-time-between-batches",
                     help="Rolling: the wait between batches, ISO 8601 (PT30S)."),
        click.option("--in-place-update/--no-in-place-update", default=None,
                     help="Rolling: update members where they are instead of replacing them."),
        click.option("--no-wait", is_flag=True,
                     help="Do not wait for the long-running operation to finish."),
    ]):
        func = option(func)
    return func


def _apply(body: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the fields the flags give."""
    props = body.setdefault("properties", {})
    if flags["location"]:
        body["location"] = flags["location"]
    elastic = props.setdefault("elasticProfile", {})
    if flags["desired_count"] is not None:
        elastic["desiredCount"] = flags["desired_count"]
    if flags["maintain_desired_count"] is not None:
        elastic["maintainDesiredCount"] = flags["maintain_desired_count"]
    if flags["prefix"] is not None:
        elastic["containerGroupNamingPolicy"] = {"guidNamingPolicy": {"prefix": flags["prefix"]}}
    stubs = props.setdefault("containerGroupProfiles", [{}])
    if not stubs:
        stubs.append({})
    if flags["profile"]:
        stubs[0]["resource"] = {"id": flags["profile"]}
    if flags["profile_revision"] is not None:
        stubs[0]["revision"] = flags["profile_revision"]
    update = props.setdefault("updateProfile", {})
    if flags["update_mode"]:
        update["updateMode"] = flags["update_mode"]
    rolling = update.setdefault("rollingUpdateProfile", {})
    for flag, field in (("max_batch_percent", "maxBatchPercent"),
                        ("max_unhealthy_percent", "maxUnhealthyPercent"),
                        ("pause_time_between_batches", "pauseTimeBetweenBatches"),
                        ("in_place_update", "inPlaceUpdate")):
        if flags[flag] is not None:
            rolling[field] = flags[flag]
    return body


def _from_file(file: Path | None) -> dict[str, Any]:
    if file is None:
        return {}
    try:
        found = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {file}: {exc}") from exc
    if not isinstance(found, dict):
        raise InvalidArgument(f"{file} does not hold a JSON object")
    return found


def _put(resource_group: str, name: str, body: dict[str, Any], no_wait: bool, output: str,
         query: Any) -> None:
    for key in ("id", "name", "type", "systemData"):
        body.pop(key, None)
    body.get("properties", {}).pop("provisioningState", None)
    with new_client() as client:
        if "location" not in body:
            location = client.resource_group_location(resource_group)
            if location:
                body["location"] = location
        if no_wait:
            found = client.create_or_update_ngroup(resource_group, name, body, wait=False)
        else:
            with show_progress() as progress:
                found = client.create_or_update_ngroup(resource_group, name, body,
                                                       progress=progress)
    emit(_view(found), output, query, table=_table)


_rg_name = rg_and_name("NGroup")


@click.group("ngroup")
def ngroup() -> None:
    """Manage NGroups: N container groups kept from one container group profile,
    updated by hand or rolled over in batches."""


@ngroup.command("create")
@_rg_name
@_ngroup_flags
@output_options
@handle_errors
def create(resource_group: str, name: str, output: str, query: Any, **flags: Any) -> None:
    """Create an NGroup (or replace one) from a profile and a desired count."""
    body = _apply(_from_file(flags["file"]), flags)
    if not body["properties"]["containerGroupProfiles"][0].get("resource"):
        raise InvalidArgument("the NGroup needs a profile: --profile or --file")
    _put(resource_group, name, body, flags["no_wait"], output, query)


@ngroup.command("update")
@_rg_name
@_ngroup_flags
@output_options
@handle_errors
def update(resource_group: str, name: str, output: str, query: Any, **flags: Any) -> None:
    """Change an NGroup: a new profile revision rolls its members over as its update
    mode says; a new count scales it."""
    with new_client() as client:
        body = client.get_ngroup(resource_group, name)
    body = _apply({**body, **_from_file(flags["file"])}, flags)
    _put(resource_group, name, body, flags["no_wait"], output, query)


@ngroup.command("show")
@_rg_name
@click.option("--events", is_flag=True, help="Show the NGroup's newest events instead.")
@output_options
@handle_errors
def show(resource_group: str, name: str, events: bool, output: str, query: Any) -> None:
    """Get the details of an NGroup, or its events (batches, replacements, failures)."""
    with new_client() as client:
        if events:
            emit(client.ngroup_events(resource_group, name), output, query)
            return
        found = client.get_ngroup(resource_group, name)
    emit(_view(found), output, query, table=_table)


@ngroup.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every NGroup of the subscription.")
@output_options
@handle_errors
def list_(resource_group: str | None, output: str, query: Any) -> None:
    """List NGroups."""
    with new_client() as client:
        found = [_view(n) for n in client.iter_ngroups(resource_group)]
    emit(found, output, query, table=_table)


@ngroup.command("delete")
@_rg_name
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@handle_errors
def delete(resource_group: str, name: str, yes: bool, no_wait: bool) -> None:
    """Delete an NGroup and its container groups."""
    confirm_delete(yes)
    _act(resource_group, name, "delete", no_wait)


def _act(resource_group: str, name: str, action: str, no_wait: bool) -> None:
    with new_client() as client:
        def run(rg: str, n: str, **options: Any) -> None:
            if action == "delete":
                client.delete_ngroup(rg, n, **options)
            else:
                client.ngroup_action(rg, n, action, **options)
        if no_wait:
            run(resource_group, name, wait=False)
            return
        with show_progress() as progress:
            run(resource_group, name, progress=progress)


def _action_command(action: str, doc: str) -> None:
    @ngroup.command(action, help=doc)
    @_rg_name
    @click.option("--no-wait", is_flag=True,
                  help="Do not wait for the long-running operation to finish.")
    @handle_errors
    def command(resource_group: str, name: str, no_wait: bool) -> None:
        _act(resource_group, name, action, no_wait)


_action_command("start", "Start every container group of an NGroup.")
_action_command("stop", "Stop every container group of an NGroup (none is replaced while "
                        "stopped).")
_action_command("restart", "Restart every container group of an NGroup in place.")
