"""``skiff network vnet ...``: the ``az network vnet`` commands, against skiff's API.

Private container groups live in a subnet of a virtual network
(``Microsoft.Network``); these commands make, show, list and delete the
networks and their subnets with az's flags, defaults and output: ``-o json``
prints a resource as az does (``properties`` flattened, ``resourceGroup``
added), ``vnet create`` answers ``{"newVNet": ...}``, ``-o table`` is az's
table of networks. Output options, ``--query`` and errors are those of
``skiff container``, shared through :mod:`skiff.cli.common` and
:mod:`skiff.cli.output` (one ``ERROR: (Code) message`` line; exit 3 on 404).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import click

from skiff.cli.common import AzCommand, handle_errors, new_client
from skiff.cli.output import emit, output_options
from skiff.cli.subnets import DEFAULT_VNET_PREFIX
from skiff.cli.views import add_resource_group
from skiff.client import SkiffClient
from skiff.documents import todict

F = TypeVar("F", bound=Callable[..., Any])


def _flat(body: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k != "properties"}
    out.update(body.get("properties") or {})
    return out


def subnet_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A subnet as az prints it: properties flattened (its delegations' too)."""
    view = _flat(body)
    if isinstance(view.get("delegations"), list):
        view["delegations"] = [_flat(d) for d in view["delegations"] if isinstance(d, dict)]
    out = cast(dict[str, Any], todict(view))
    add_resource_group(out)
    return out


def vnet_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A virtual network as az prints it: properties flattened, its subnets' too."""
    view = _flat(body)
    if isinstance(view.get("subnets"), list):
        view["subnets"] = [subnet_view(s) for s in view["subnets"] if isinstance(s, dict)]
    out = cast(dict[str, Any], todict(view))
    add_resource_group(out)
    return out


def _vnet_row(vnet: Mapping[str, Any]) -> dict[str, Any]:
    """az's ``transform_vnet_table_output``: one row of ``az network vnet list -o table``."""
    prefixes = (vnet.get("addressSpace") or {}).get("addressPrefixes") or []
    servers = (vnet.get("dhcpOptions") or {}).get("dnsServers") or []
    return {"Name": vnet.get("name"), "ResourceGroup": vnet.get("resourceGroup"),
            "Location": vnet.get("location"), "NumSubnets": len(vnet.get("subnets") or []),
            "Prefixes": ", ".join(map(str, prefixes)) or " ",
            "DnsServers": ", ".join(map(str, servers)) or " "}


def _vnet_table(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict) and isinstance(result.get("newVNet"), dict):
        result = result["newVNet"]
    vnets = result if isinstance(result, list) else [result]
    return [_vnet_row(v) for v in vnets if isinstance(v, dict)]


def default_subnet_prefix(vnet_prefix: str) -> str:
    """az's subnet prefix for ``vnet create --subnet-name`` without ``--subnet-prefixes``:
    the network's first address with a /24 mask (the network's own, if narrower)."""
    try:
        net = ipaddress.ip_network(vnet_prefix, strict=False)
    except ValueError as exc:
        raise click.BadParameter(f"{vnet_prefix!r} is not an address prefix such as "
                                 "10.0.0.0/16", param_hint="--address-prefixes") from exc
    return f"{net.network_address}/{max(net.prefixlen, 24)}"


def subnet_properties(prefixes: tuple[str, ...],
                      delegations: tuple[str, ...] = ()) -> dict[str, Any]:
    """A subnet's ARM properties: one prefix as ``addressPrefix`` (several as
    ``addressPrefixes``, as az sends them), delegations named "0", "1", ... as az names them."""
    props: dict[str, Any] = ({"addressPrefix": prefixes[0]} if len(prefixes) == 1
                             else {"addressPrefixes": list(prefixes)})
    if delegations:
        props["delegations"] = [{"name": str(i), "properties": {"serviceName": service}}
                                for i, service in enumerate(delegations)]
    return props


def vnet_body(*, address_prefixes: tuple[str, ...] = (DEFAULT_VNET_PREFIX,),
              subnet_name: str | None = None, subnet_prefixes: tuple[str, ...] = (),
              location: str | None = None) -> dict[str, Any]:
    """The ARM body of ``az network vnet create``'s flags."""
    props: dict[str, Any] = {"addressSpace": {"addressPrefixes": list(address_prefixes)}}
    if subnet_name:
        prefixes = subnet_prefixes or (default_subnet_prefix(address_prefixes[0]),)
        props["subnets"] = [{"name": subnet_name, "properties": subnet_properties(prefixes)}]
    body: dict[str, Any] = {"properties": props}
    if location:
        body["location"] = location
    return body


@click.group("network")
@click.pass_context
def network(ctx: click.Context) -> None:
    """Manage virtual networks, as `az network` does, through skiff's API.

    A container group created with --vnet/--subnet gets a private IP address in
    the subnet. The API is reached as for `skiff container` (SKIFF_URL,
    SKIFF_TOKEN, SKIFF_CA, SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


@network.group("vnet")
def vnet() -> None:
    """Manage virtual networks: create, show, list, delete, and their subnets."""


def _rg(required: bool = True) -> Callable[[F], F]:
    return click.option("--resource-group", "-g", "resource_group", required=required,
                        help="Name of resource group." if required else
                        "Name of resource group. Default: every network of the subscription.")


@vnet.command("create", cls=AzCommand)
@_rg()
@click.option("--name", "-n", required=True, help="The virtual network (VNet) name.")
@click.option("--address-prefixes", multiple=True, metavar="PREFIX [PREFIX ...]",
              help="Space-separated list of IP address prefixes for the VNet.  "
                   f"Default: {DEFAULT_VNET_PREFIX}.")
@click.option("--subnet-name", help="Name of a new subnet to create within the VNet.")
@click.option("--subnet-prefixes", multiple=True, metavar="PREFIX [PREFIX ...]",
              help="Space-separated list of address prefixes in CIDR format for the new "
                   "subnet. Default: the VNet's first address with a /24 mask "
                   "(10.0.0.0/24 for the default VNet).")
@click.option("--location", "-l", help="Location. Default: the resource group's location.")
@output_options
@handle_errors
def vnet_create(resource_group: str, name: str, address_prefixes: tuple[str, ...],
                subnet_name: str | None, subnet_prefixes: tuple[str, ...],
                location: str | None, output: str, query: Any) -> None:
    """Create a virtual network.

    Prints {"newVNet": ...}, as az does. Creating a network that exists
    replaces it (its subnets included).

    \b
    Examples:
      skiff network vnet create -g MyResourceGroup -n MyVnet --address-prefixes 10.0.0.0/16 --subnet-name MySubnet --subnet-prefixes 10.0.0.0/24
      skiff network vnet create -g MyResourceGroup -n MyVnet
    """  # noqa: E501
    if subnet_prefixes and not subnet_name:
        raise click.UsageError("incorrect usage: --subnet-name NAME [--subnet-prefixes "
                               "PREFIXES]")
    body = vnet_body(address_prefixes=address_prefixes or (DEFAULT_VNET_PREFIX,),
                     subnet_name=subnet_name, subnet_prefixes=subnet_prefixes,
                     location=location)
    with new_client() as client:
        location = location or client.resource_group_location(resource_group)
        if location:
            body["location"] = location
        created = client.create_or_update_vnet(resource_group, name, body)
    emit({"newVNet": vnet_view(created)}, output, query, table=_vnet_table)


@vnet.command("show")
@_rg()
@click.option("--name", "-n", required=True, help="The virtual network (VNet) name.")
@output_options
@handle_errors
def vnet_show(resource_group: str, name: str, output: str, query: Any) -> None:
    """Get the details of a virtual network."""
    with new_client() as client:
        found = client.get_vnet(resource_group, name)
    emit(vnet_view(found), output, query, table=_vnet_table)


@vnet.command("list")
@_rg(required=False)
@output_options
@handle_errors
def vnet_list(resource_group: str | None, output: str, query: Any) -> None:
    """List virtual networks."""
    with new_client() as client:
        found = client.list_vnets(resource_group)
    emit([vnet_view(v) for v in found], output, query, table=_vnet_table)


@vnet.command("delete")
@_rg()
@click.option("--name", "-n", required=True, help="The virtual network (VNet) name.")
@output_options
@handle_errors
def vnet_delete(resource_group: str, name: str, output: str, query: Any) -> None:
    """Delete a virtual network.

    Refused (InUseSubnetCannotBeDeleted) while a container group is in one of
    its subnets; deleting a network that is not there does nothing.
    """
    with new_client() as client:
        client.delete_vnet(resource_group, name)


@vnet.group("subnet")
def subnet() -> None:
    """Manage subnets of a virtual network: create, show, list, delete."""


def _subnet_args(func: F) -> F:
    func = click.option("--name", "-n", required=True, help="The subnet name.")(func)
    func = click.option("--vnet-name", required=True, help="The virtual network (VNet) name.")(
        func)
    return _rg()(func)


@subnet.command("create", cls=AzCommand)
@_subnet_args
@click.option("--address-prefixes", multiple=True, required=True,
              metavar="PREFIX [PREFIX ...]",
              help="Space-separated list of address prefixes in CIDR format, inside the "
                   "VNet's address space, /29 or larger, overlapping no other subnet.")
@click.option("--delegations", multiple=True, metavar="SERVICE [SERVICE ...]",
              help="Space-separated list of services to whom the subnet should be "
                   "delegated, e.g. Microsoft.ContainerInstance/containerGroups.")
@output_options
@handle_errors
def subnet_create(resource_group: str, vnet_name: str, name: str,
                  address_prefixes: tuple[str, ...], delegations: tuple[str, ...],
                  output: str, query: Any) -> None:
    """Create a subnet in a virtual network (or replace one of that name).

    \b
    Examples:
      skiff network vnet subnet create -g MyResourceGroup --vnet-name MyVnet -n MySubnet --address-prefixes 10.0.0.0/24
    """  # noqa: E501
    body = {"properties": subnet_properties(address_prefixes, delegations)}
    with new_client() as client:
        created = client.create_or_update_subnet(resource_group, vnet_name, name, body)
    emit(subnet_view(created), output, query)


@subnet.command("show")
@_subnet_args
@output_options
@handle_errors
def subnet_show(resource_group: str, vnet_name: str, name: str, output: str,
                query: Any) -> None:
    """Show details of a subnet."""
    with new_client() as client:
        found = client.get_subnet(resource_group, vnet_name, name)
    emit(subnet_view(found), output, query)


@subnet.command("list")
@_rg()
@click.option("--vnet-name", required=True, help="The virtual network (VNet) name.")
@output_options
@handle_errors
def subnet_list(resource_group: str, vnet_name: str, output: str, query: Any) -> None:
    """List the subnets in a virtual network."""
    with new_client() as client:
        found = client.list_subnets(resource_group, vnet_name)
    emit([subnet_view(s) for s in found], output, query)


@subnet.command("delete")
@_subnet_args
@output_options
@handle_errors
def subnet_delete(resource_group: str, vnet_name: str, name: str, output: str,
                  query: Any) -> None:
    """Delete a subnet.

    Refused (InUseSubnetCannotBeDeleted) while a container group is in it.
    """
    with new_client() as client:
        client.delete_subnet(resource_group, vnet_name, name)
