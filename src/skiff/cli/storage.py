"""``skiff storage ...``: the ``az storage account`` and ``az storage share-rm`` commands,
against skiff's API.

Storage accounts and their file shares are ``Microsoft.Storage`` resources; a container
group mounts a share with an ``azureFile`` volume (``skiff container create
--azure-file-volume-...``). Accounts print as az prints them (``properties``
flattened, ``resourceGroup`` added); ``keys list`` the two keys; ``show-connection-string``
``{"connectionString": ...}`` with the account's Azure Files endpoint. Shares are made
through the ARM API (as ``az storage share-rm``), with ``az storage share``'s
``--account-name``. Output options, ``--query`` and errors are those of ``skiff
container`` (:mod:`skiff.cli.common`, :mod:`skiff.cli.output`).

:data:`storage` is the ``storage`` click group; other commands (``storage file``,
``storage directory``) join it with ``storage.add_command``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from skiff.cli.common import AzCommand, handle_errors, keep_secret, new_client
from skiff.cli.output import emit, output_options
from skiff.cli.views import resource_view
from skiff.client import SkiffClient
from skiff.errors import SkiffError

F = TypeVar("F", bound=Callable[..., Any])

#: az's defaults for ``az storage account create``.
DEFAULT_SKU = "Standard_RAGRS"
DEFAULT_KIND = "StorageV2"
#: az's default share quota (Azure's), GiB.
DEFAULT_QUOTA = 5120


def connection_string(account: dict[str, Any], key: str) -> str:
    """az's ``show-connection-string``, with the account's file endpoint (skiff's data
    plane) in ``FileEndpoint``."""
    endpoint = ((account.get("properties") or {}).get("primaryEndpoints") or {}).get("file")
    text = f"DefaultEndpointsProtocol=https;AccountName={account.get('name')};AccountKey={key}"
    return f"{text};FileEndpoint={endpoint}" if endpoint else text


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        name, _, tag = value.partition("=")
        tags[name] = tag
    return tags


def _metadata(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--metadata")
        out[name] = item
    return out


@click.group("storage")
@click.pass_context
def storage(ctx: click.Context) -> None:
    """Manage storage accounts and file shares, as `az storage` does, through skiff's API.

    A container group mounts a file share with an azureFile volume (skiff
    container create --azure-file-volume-...); what it writes there outlives it.
    The API is reached as for `skiff container` (SKIFF_URL, SKIFF_TOKEN, SKIFF_CA,
    SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


@storage.group("account")
def account() -> None:
    """Manage storage accounts: create, show, list, delete, keys, connection strings."""


def _rg(required: bool = True, text: str = "Name of resource group.") -> Callable[[F], F]:
    return click.option("--resource-group", "-g", "resource_group", required=required,
                        help=text)


def _account_name(func: F) -> F:
    return click.option("--name", "-n", required=True,
                        help="The storage account name: 3 to 24 lower-case letters and "
                             "digits, unique on the node.")(func)


@account.command("create", cls=AzCommand)
@_account_name
@_rg()
@click.option("--location", "-l", help="Location. Default: the resource group's location.")
@click.option("--sku", default=DEFAULT_SKU, show_default=True,
              help="The storage account SKU (answered back as given).")
@click.option("--kind", default=DEFAULT_KIND, show_default=True,
              type=click.Choice(["StorageV2", "FileStorage"]),
              help="Indicate the type of storage account.")
@click.option("--tags", multiple=True, metavar="KEY[=VALUE] [KEY[=VALUE] ...]",
              help="Space-separated tags: key[=value] [key[=value] ...].")
@output_options
@handle_errors
def account_create(name: str, resource_group: str, location: str | None, sku: str, kind: str,
                   tags: tuple[str, ...], output: str, query: Any) -> None:
    """Create a storage account (or update the kind, sku and tags of one).

    \b
    Examples:
      skiff storage account create -n mystorageaccount -g MyResourceGroup -l local --sku Standard_LRS
    """  # noqa: E501
    body: dict[str, Any] = {"kind": kind, "sku": {"name": sku}, "tags": _tags(tags)}
    with new_client() as client:
        location = location or client.resource_group_location(resource_group)
        if location:  # else the node's
            body["location"] = location
        created = client.create_account(resource_group, name, body)
    emit(resource_view(created), output, query)


@account.command("show")
@_account_name
@_rg()
@output_options
@handle_errors
def account_show(name: str, resource_group: str, output: str, query: Any) -> None:
    """Show storage account properties."""
    with new_client() as client:
        found = client.get_account(resource_group, name)
    emit(resource_view(found), output, query)


@account.command("list")
@_rg(required=False, text="Name of resource group. Default: every account of the "
                          "subscription.")
@output_options
@handle_errors
def account_list(resource_group: str | None, output: str, query: Any) -> None:
    """List storage accounts."""
    with new_client() as client:
        found = client.list_accounts(resource_group)
    emit([resource_view(a) for a in found], output, query)


@account.command("delete")
@_account_name
@_rg()
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@handle_errors
def account_delete(name: str, resource_group: str, yes: bool) -> None:
    """Delete a storage account, and the data of its file shares.

    Refused (ShareInUse) while a container group mounts one of its shares;
    deleting an account that is not there does nothing.
    """
    if not yes:
        click.confirm(f"The storage account '{name}' and the data of its file shares will "
                      "be deleted. Are you sure you want to perform this operation?",
                      abort=True)
    with new_client() as client:
        client.delete_account(resource_group, name)


@account.group("keys")
def keys() -> None:
    """Manage storage account keys."""


@keys.command("list")
@click.option("--account-name", "-n", "name", required=True, help="The storage account name.")
@_rg(required=False, text="Name of resource group. Default: the account's.")
@output_options
@handle_errors
def keys_list(name: str, resource_group: str | None, output: str, query: Any) -> None:
    """List the access keys of a storage account (key1, key2)."""
    with new_client() as client:
        rg = resource_group or client.account_resource_group(name)
        found = client.account_keys(rg, name)
    emit(found, output, query)


@account.command("show-connection-string")
@_account_name
@_rg(required=False, text="Name of resource group. Default: the account's.")
@click.option("--key", "key_name", type=click.Choice(["primary", "secondary"]),
              default="primary", show_default=True, help="The key to use.")
@output_options
@handle_errors
def show_connection_string(name: str, resource_group: str | None, key_name: str, output: str,
                           query: Any) -> None:
    """Get the connection string of a storage account, for the Azure Files SDK and tools
    (its FileEndpoint is skiff's Azure Files endpoint for the account).

    \b
    Examples:
      export AZURE_STORAGE_CONNECTION_STRING=$(skiff storage account show-connection-string -n mystorageaccount -o tsv)
    """  # noqa: E501
    with new_client() as client:
        rg = resource_group or client.account_resource_group(name)
        found = client.get_account(rg, name)
        values = [str(k.get("value", "")) for k in client.account_keys(rg, name)]
    keep_secret(*values)
    if not ((found.get("properties") or {}).get("primaryEndpoints") or {}).get("file"):
        # Without FileEndpoint, SDKs and az would send the key's signatures to Azure's
        # public endpoint (<account>.file.core.windows.net): no string is better.
        raise NoFileEndpoint(
            f"The storage account {name} has no file endpoint: this skiff does not serve "
            "Azure Files (skiff serve --files-listen none), so there is no connection "
            "string to give. `skiff storage account keys list` gives the keys.")
    value = values[0 if key_name == "primary" else 1] if len(values) > 1 else ""
    emit({"connectionString": connection_string(found, value)}, output, query)


class NoFileEndpoint(SkiffError):
    """The account has no Azure Files endpoint (the node serves none)."""

    code = "NoFileEndpoint"


# ---- shares -----------------------------------------------------------------------------


@storage.group("share")
def share() -> None:
    """Manage file shares of a storage account (through the ARM API, as `az storage
    share-rm`)."""


def _share_args(func: F) -> F:
    func = click.option("--name", "-n", required=True,
                        help="The file share name: 3 to 63 lower-case letters, digits and "
                             "single hyphens.")(func)
    return _account_args(func)


def _account_args(func: F) -> F:
    func = click.option("--account-name", "--storage-account", "account_name", required=True,
                        help="The storage account name.")(func)
    return _rg(required=False, text="Name of resource group. Default: the account's.")(func)


def _resolve(client: SkiffClient, resource_group: str | None, account_name: str) -> str:
    return resource_group or client.account_resource_group(account_name)


@share.command("create", cls=AzCommand)
@_share_args
@click.option("--quota", type=click.IntRange(1, 102400),
              help=f"The share's maximum size in GiB (1 to 102400). Default: {DEFAULT_QUOTA}.")
@click.option("--metadata", multiple=True, metavar="KEY=VALUE [KEY=VALUE ...]",
              help="Metadata in space-separated key=value pairs.")
@output_options
@handle_errors
def share_create(name: str, account_name: str, resource_group: str | None, quota: int | None,
                 metadata: tuple[str, ...], output: str, query: Any) -> None:
    """Create a file share in a storage account (or change one's quota and metadata).

    \b
    Examples:
      skiff storage share create --account-name mystorageaccount -n myshare --quota 10
    """
    props: dict[str, Any] = {}
    if quota is not None:
        props["shareQuota"] = quota
    if metadata:
        props["metadata"] = _metadata(metadata)
    with new_client() as client:
        rg = _resolve(client, resource_group, account_name)
        created = client.create_share(rg, account_name, name, {"properties": props})
    emit(resource_view(created), output, query)


@share.command("show")
@_share_args
@click.option("--expand", type=click.Choice(["stats"]),
              help="stats: add the share's usage (shareUsageBytes).")
@output_options
@handle_errors
def share_show(name: str, account_name: str, resource_group: str | None, expand: str | None,
               output: str, query: Any) -> None:
    """Show the properties of a file share."""
    with new_client() as client:
        rg = _resolve(client, resource_group, account_name)
        found = client.get_share(rg, account_name, name, stats=expand == "stats")
    emit(resource_view(found), output, query)


@share.command("list")
@_account_args
@output_options
@handle_errors
def share_list(account_name: str, resource_group: str | None, output: str,
               query: Any) -> None:
    """List the file shares of a storage account."""
    with new_client() as client:
        rg = _resolve(client, resource_group, account_name)
        found = client.list_shares(rg, account_name)
    emit([resource_view(s) for s in found], output, query)


@share.command("delete")
@_share_args
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@handle_errors
def share_delete(name: str, account_name: str, resource_group: str | None, yes: bool) -> None:
    """Delete a file share and its data.

    Refused (ShareInUse) while a container group mounts it; deleting a share
    that is not there does nothing.
    """
    if not yes:
        click.confirm(f"The file share '{name}' and its data will be deleted. Are you sure "
                      "you want to perform this operation?", abort=True)
    with new_client() as client:
        rg = _resolve(client, resource_group, account_name)
        client.delete_share(rg, account_name, name)


def _data_plane_commands() -> None:
    """``skiff storage file`` and ``skiff storage directory`` (the data plane's)."""
    from skiff.cli.storage_files import directory_group, file_group

    storage.add_command(file_group)
    storage.add_command(directory_group)


_data_plane_commands()
