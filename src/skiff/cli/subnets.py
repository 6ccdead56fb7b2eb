"""Where ``skiff container create --vnet/--subnet`` places a group, as az decides it.

A private group names its subnet by ARM id in ``properties.subnetIds``; on
the command line the subnet is a full resource id, or a name together with
``--vnet`` (a name in the group's resource group, or a network's resource
id). As ``az container create`` does, a subnet that is not there yet is made
first: its network too when that is missing (with ``--vnet-address-prefix``),
then the subnet (with ``--subnet-address-prefix``), delegated to
``Microsoft.ContainerInstance/containerGroups``; an existing subnet without
delegation gets ACI's, and one delegated to another service is refused.

This module only knows the client; ``skiff network`` and ``skiff container``
both use it, which is why it sits apart from either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from skiff.client import ApiError, SkiffClient
from skiff.errors import SkiffError

#: The service a subnet is delegated to for container groups.
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
#: az's defaults for a network and a subnet that ``container create`` makes.
DEFAULT_VNET_PREFIX = "10.0.0.0/16"
DEFAULT_SUBNET_PREFIX = "10.0.0.0/24"

# A subnet's properties the API sets itself: not sent back when the subnet is PUT again
# (as the SDK's serializer leaves them out).
_READ_ONLY = frozenset({"provisioningState", "ipConfigurations", "ipConfigurationProfiles",
                        "purpose", "serviceAssociationLinks", "privateEndpoints"})

_NETWORK = r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Network"
_SUBNET_ID = re.compile(rf"{_NETWORK}/virtualNetworks/([^/]+)/subnets/([^/]+)/?", re.I)
_VNET_ID = re.compile(rf"{_NETWORK}/virtualNetworks/([^/]+)/?", re.I)


class SubnetError(SkiffError):
    """The subnet named on the command line cannot hold a container group."""

    code = "InvalidArgumentValue"


@dataclass(frozen=True)
class SubnetRef:
    """A subnet as the flags name it: where it is, whether or not it exists yet."""

    subscription: str
    resource_group: str
    vnet: str
    name: str

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Network/virtualNetworks/{self.vnet}/subnets/{self.name}")


def is_resource_id(value: str) -> bool:
    return value.startswith("/")


def _same_subscription(ref: SubnetRef, subscription: str) -> SubnetRef:
    """``ref``, if the client can reach it: the API serves one subscription per request."""
    if ref.subscription.lower() != subscription.lower():
        raise SubnetError(f"the subnet {ref.id} is in subscription {ref.subscription}, not in "
                          f"{subscription} (SKIFF_SUBSCRIPTION)")
    return ref


def subnet_ref(*, subscription: str, resource_group: str, vnet: str | None,
               subnet: str) -> SubnetRef:
    """The subnet ``--subnet`` names: its resource id, or a name in ``--vnet`` (a name in
    ``resource_group`` or a network's resource id). SubnetError if neither fits."""
    if is_resource_id(subnet):
        if m := _SUBNET_ID.fullmatch(subnet):
            return _same_subscription(SubnetRef(m[1], m[2], m[3], m[4]), subscription)
        raise SubnetError(f"--subnet {subnet!r} is not a subnet's resource id (/subscriptions/"
                          "{s}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/"
                          "{vnet}/subnets/{subnet})")
    if not vnet:
        raise SubnetError("usage error: --vnet NAME --subnet NAME | --vnet ID --subnet NAME | "
                          "--subnet ID")
    if is_resource_id(vnet):
        if m := _VNET_ID.fullmatch(vnet):
            return _same_subscription(SubnetRef(m[1], m[2], m[3], subnet), subscription)
        raise SubnetError(f"--vnet {vnet!r} is not a virtual network's resource id "
                          "(/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/"
                          "virtualNetworks/{vnet})")
    return SubnetRef(subscription, resource_group, vnet, subnet)


def _missing(call: Any, *args: str) -> dict[str, Any] | None:
    """What ``call(*args)`` answers, or None when the API says 404."""
    try:
        return dict(call(*args))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _delegations(subnet: dict[str, Any]) -> list[dict[str, Any]]:
    found = (subnet.get("properties") or {}).get("delegations") or []
    return [d for d in found if isinstance(d, dict)]


def _service(delegation: dict[str, Any]) -> str:
    return str((delegation.get("properties") or {}).get("serviceName")
               or delegation.get("serviceName") or "")


def aci_delegation(name: str = ACI_DELEGATION) -> dict[str, Any]:
    """A subnet's delegation to container groups, as az writes it."""
    return {"name": name, "properties": {"serviceName": ACI_DELEGATION}}


def ensure_subnet(client: SkiffClient, ref: SubnetRef, *, location: str | None,
                  vnet_prefix: str = DEFAULT_VNET_PREFIX,
                  subnet_prefix: str = DEFAULT_SUBNET_PREFIX) -> str:
    """The id of the subnet ``ref`` names, made first if it is not there (az's
    ``_get_subnet_id``): the network with ``vnet_prefix`` when it is missing, the
    subnet with ``subnet_prefix``, delegated to container groups."""
    _same_subscription(ref, client.subscription)
    rg, vnet, name = ref.resource_group, ref.vnet, ref.name
    subnet = _missing(client.get_subnet, rg, vnet, name)
    if subnet is not None:
        others = sorted({_service(d) for d in _delegations(subnet)} - {ACI_DELEGATION})
        if others:
            raise SubnetError(f"Can not use subnet {name} with existing delegations other than "
                              f"{ACI_DELEGATION} ({', '.join(others)})")
        if not _delegations(subnet):
            props = {k: v for k, v in (subnet.get("properties") or {}).items()
                     if k not in _READ_ONLY}
            props["delegations"] = [aci_delegation()]
            subnet = client.create_or_update_subnet(rg, vnet, name, {"properties": props})
    else:
        if _missing(client.get_vnet, rg, vnet) is None:
            body: dict[str, Any] = {"properties": {
                "addressSpace": {"addressPrefixes": [vnet_prefix]}}}
            if location:
                body["location"] = location
            client.create_or_update_vnet(rg, vnet, body)
        subnet = client.create_or_update_subnet(rg, vnet, name, {"properties": {
            "addressPrefix": subnet_prefix, "delegations": [aci_delegation()]}})
    found = subnet.get("id")
    return found if isinstance(found, str) and found else ref.id
