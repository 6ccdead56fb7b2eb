"""Microsoft.Network's virtualNetworks and subnets: the subset private groups need.

A PUT body is ``{"location", "tags", "properties": {"addressSpace":
{"addressPrefixes": [...]}, "subnets": [{"name", "properties":
{"addressPrefix", "delegations"}}]}}``; a subnet's own PUT body is
``{"properties": {"addressPrefix"}}``. Unknown properties are kept and
answered back, read-only ones (``provisioningState``, ``id``, ``etag`` ...)
are dropped, as for container groups.

Rules, with Azure's codes where they are known (*Azure*):

- ``InvalidResourceName``: a network or subnet name is not 1-80 letters, digits,
  '_', '.', '-', starting with a letter or digit and ending with a letter,
  digit or '_'.
- ``InvalidAddressPrefix``: a prefix is not an IPv4 CIDR (host bits set count
  as wrong, as Azure says), or the address space is empty.
- ``NetcfgInvalidSubnet`` (*Azure*): a subnet has no prefix, or is smaller than /29.
- ``NetcfgSubnetRangeOutsideVnet`` (*Azure*): a subnet lies outside the address space.
- ``NetcfgSubnetRangesOverlap`` (*Azure*): two subnets overlap.
- ``DuplicateResourceName`` (*Azure*): two subnets share a name.

Node-wide rules (overlaps with other virtual networks, subnets in use) are
the store's (:mod:`skiff.store.vnets`); an overlap with the node's own routes
is the API's, which knows the engine.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import Field, ValidationError

from skiff.errors import ArmError
from skiff.models.body import ArmModel
from skiff.models.parse import check_arm_fields, content_error

VNET_TYPE = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
#: The delegation a subnet may carry for ACI (any other service's is refused for groups).
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?")
_SMALLEST = 29


class SubnetProperties(ArmModel):
    _read_only = frozenset({"provisioningstate", "ipconfigurations", "purpose",
                            "serviceassociationlinks", "ipconfigurationprofiles"})

    address_prefix: str | None = None
    address_prefixes: list[str] | None = None
    delegations: list[dict[str, Any]] | None = None


class Subnet(ArmModel):
    _read_only = frozenset({"id", "etag", "type"})

    name: str | None = None
    properties: SubnetProperties = Field(default_factory=SubnetProperties)


class AddressSpace(ArmModel):
    address_prefixes: list[str] = Field(default_factory=list)


class VnetProperties(ArmModel):
    _read_only = frozenset({"provisioningstate", "resourceguid"})

    address_space: AddressSpace | None = None
    subnets: list[Subnet] = Field(default_factory=list)


class VnetBody(ArmModel):
    _read_only = frozenset({"id", "name", "type", "etag"})

    location: str | None = None
    tags: dict[str, str] | None = None
    properties: VnetProperties


def _fail(code: str, message: str, target: str) -> None:
    raise ArmError(400, code, message, target=target)


def check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        _fail("InvalidResourceName", f"The {what} name {name[:80]!r} is invalid: use 1-80 "
              "letters, digits, '_', '.' and '-', starting with a letter or digit and ending "
              "with a letter, digit or '_'.", "name")


def _prefix(text: str, target: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text)
    except ValueError:
        _fail("InvalidAddressPrefix", f"{text[:60]!r} is not a valid IPv4 address prefix "
              "(CIDR such as 10.0.0.0/16, without host bits).", target)
        raise AssertionError from None  # unreachable: _fail raised


def _subnet_prefix(subnet: Subnet, target: str) -> ipaddress.IPv4Network:
    props = subnet.properties
    texts = ([props.address_prefix] if props.address_prefix else []) + (
        props.address_prefixes or [])
    if not texts:
        _fail("NetcfgInvalidSubnet", f"Subnet '{subnet.name}' has no addressPrefix.",
              f"{target}.properties.addressPrefix")
    net = _prefix(texts[0], f"{target}.properties.addressPrefix")
    if net.prefixlen > _SMALLEST:
        _fail("NetcfgInvalidSubnet", f"Subnet '{subnet.name}' ({net}) is too small: the "
              f"smallest subnet is /{_SMALLEST}.", f"{target}.properties.addressPrefix")
    return net


def _parse(model: type[ArmModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise content_error(exc.errors()[0]) from None


def parse_vnet(body: Any, *, name: str, default_location: str) -> VnetBody:
    """Validate a virtual network's PUT body; ArmError(400) on the first broken rule."""
    check_name(name, "virtual network")
    if isinstance(body, dict):
        check_arm_fields(body)
    model: VnetBody = _parse(VnetBody, body)
    model.location = model.location or default_location
    props = model.properties
    if props.address_space is None or not props.address_space.address_prefixes:
        _fail("InvalidAddressPrefix", "A virtual network needs at least one prefix in "
              "addressSpace.addressPrefixes.", "properties.addressSpace.addressPrefixes")
    assert props.address_space is not None
    space = [_prefix(p, f"properties.addressSpace.addressPrefixes[{i}]")
             for i, p in enumerate(props.address_space.address_prefixes)]
    seen: dict[str, ipaddress.IPv4Network] = {}
    for i, subnet in enumerate(props.subnets):
        target = f"properties.subnets[{i}]"
        if not subnet.name:
            _fail("InvalidResourceName", "Every subnet needs a name.", f"{target}.name")
        assert subnet.name is not None
        check_name(subnet.name, "subnet")
        net = check_subnet(subnet, space, target)
        if subnet.name.lower() in seen:
            _fail("DuplicateResourceName", f"Two subnets are named '{subnet.name}'.",
                  f"{target}.name")
        for other_name, other in seen.items():
            if net.overlaps(other):
                _fail("NetcfgSubnetRangesOverlap", f"Subnet '{subnet.name}' ({net}) overlaps "
                      f"subnet '{other_name}' ({other}).", f"{target}.properties.addressPrefix")
        seen[subnet.name.lower()] = net
    return model


def check_subnet(subnet: Subnet, space: list[ipaddress.IPv4Network],
                 target: str) -> ipaddress.IPv4Network:
    """The subnet's range, which must lie inside the network's address space."""
    net = _subnet_prefix(subnet, target)
    if not any(net.subnet_of(s) for s in space):
        _fail("NetcfgSubnetRangeOutsideVnet", f"Subnet '{subnet.name}' ({net}) is not in the "
              f"address space of its virtual network ({', '.join(map(str, space))}).",
              f"{target}.properties.addressPrefix")
    return net


def parse_subnet(body: Any, *, name: str) -> Subnet:
    """Validate a subnet's own PUT body (its place in the network is checked later)."""
    check_name(name, "subnet")
    model: Subnet = _parse(Subnet, body)
    model.name = name
    _subnet_prefix(model, "")
    return model


def put_subnet(vnet_body: dict[str, Any], subnet: Subnet) -> dict[str, Any]:
    """The network's stored body with ``subnet`` added or replaced, checked against
    the address space and the other subnets."""
    props = dict(vnet_body.get("properties", {}))
    assert subnet.name is not None
    others = [s for s in props.get("subnets", []) if s["name"].lower() != subnet.name.lower()]
    body = {**vnet_body, "properties": {**props, "subnets": [
        *others, subnet.model_dump(by_alias=True, exclude_none=True)]}}
    parse_vnet(body, name="checked", default_location="checked")  # same rules as a whole PUT
    return body


def remove_subnet(vnet_body: dict[str, Any], name: str) -> dict[str, Any]:
    props = dict(vnet_body.get("properties", {}))
    props["subnets"] = [s for s in props.get("subnets", []) if s["name"].lower() != name.lower()]
    return {**vnet_body, "properties": props}


def stored(model: VnetBody) -> dict[str, Any]:
    """What the store keeps: the properties (tags and location are columns)."""
    return {"properties": model.properties.model_dump(by_alias=True, exclude_none=True)}
