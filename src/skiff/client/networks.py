"""Virtual networks and their subnets, the ``Microsoft.Network`` resources that
private groups are placed in (same api-version as the groups).

The methods answer the resource as the API accepted it. skiff answers network
changes at once (``provisioningState`` Succeeded, no operation); should an
API answer with an operation, as Azure does, it is waited for and the
resource read again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from skiff.client.errors import json_object
from skiff.client.http import HttpApi
from skiff.client.polling import Progress

NETWORK_PROVIDER = "Microsoft.Network"


class NetworksApi(HttpApi):
    """skiff's ARM API for virtual networks and subnets."""

    def vnet_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a virtual network, of the networks of a resource group
        (``name`` None), or of the subscription's networks (both None)."""
        return self.resource_url(f"{NETWORK_PROVIDER}/virtualNetworks", "a virtual network's",
                                 rg, name)

    def subnet_url(self, rg: str, vnet: str, name: str | None = None) -> str:
        """The ARM path of a subnet, or of the subnets of a virtual network (``name`` None)."""
        path = f"{self.vnet_url(rg, vnet)}/subnets"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def subnet_id(self, rg: str, vnet: str, name: str) -> str:
        """A subnet's ARM resource id, as a group's ``subnetIds`` names it (not URL-quoted:
        an id is a name, not a path to send)."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{rg}/providers/"
                f"{NETWORK_PROVIDER}/virtualNetworks/{vnet}/subnets/{name}")

    def _put_resource(self, url: str, body: Mapping[str, Any], *,
                      progress: Progress | None = None) -> dict[str, Any]:
        """PUT a resource that may be long-running; the resource once it is provisioned.

        skiff answers network changes at once (provisioningState Succeeded, no
        operation), and then the answer is the resource; an answer with an
        operation, as Azure's, is waited for and the resource read again."""
        operation = self._operation("PUT", url, json=body)
        state = str(operation.body.get("properties", {}).get("provisioningState")
                    or "Succeeded")
        if (operation.async_url is None and operation.location_url is None
                and state.lower() == "succeeded"):
            return operation.body
        self.wait(operation, progress=progress)
        return json_object(self._send("GET", url))

    def _delete_resource(self, url: str, *, progress: Progress | None = None) -> None:
        """DELETE a resource and wait until it is gone (204: there was none)."""
        self.wait(self._operation("DELETE", url), progress=progress)

    def create_or_update_vnet(self, rg: str, name: str, body: Mapping[str, Any], *,
                              progress: Progress | None = None) -> dict[str, Any]:
        """PUT a virtual network (its subnets included: a PUT replaces them); the network."""
        return self._put_resource(self.vnet_url(rg, name), body, progress=progress)

    def get_vnet(self, rg: str, name: str) -> dict[str, Any]:
        """The virtual network (``ResourceNotFound`` 404 if there is none)."""
        return json_object(self._send("GET", self.vnet_url(rg, name)))

    def list_vnets(self, rg: str | None = None) -> list[dict[str, Any]]:
        """Every virtual network of a resource group, or of the subscription."""
        return [*self._pages(self.vnet_url(rg), "virtual networks")]

    def delete_vnet(self, rg: str, name: str, *, progress: Progress | None = None) -> None:
        """Delete a virtual network (400 ``InUseSubnetCannotBeDeleted`` while a group is in
        one of its subnets); nothing to do if there is none."""
        self._delete_resource(self.vnet_url(rg, name), progress=progress)

    def create_or_update_subnet(self, rg: str, vnet: str, name: str, body: Mapping[str, Any],
                                *, progress: Progress | None = None) -> dict[str, Any]:
        """PUT one subnet of an existing virtual network; the subnet."""
        return self._put_resource(self.subnet_url(rg, vnet, name), body, progress=progress)

    def get_subnet(self, rg: str, vnet: str, name: str) -> dict[str, Any]:
        """The subnet (``ResourceNotFound`` 404 if it, or its network, is not there)."""
        return json_object(self._send("GET", self.subnet_url(rg, vnet, name)))

    def list_subnets(self, rg: str, vnet: str) -> list[dict[str, Any]]:
        """Every subnet of a virtual network."""
        return [*self._pages(self.subnet_url(rg, vnet), "subnets")]

    def delete_subnet(self, rg: str, vnet: str, name: str, *,
                      progress: Progress | None = None) -> None:
        """Delete a subnet (400 ``InUseSubnetCannotBeDeleted`` while a group is in it)."""
        self._delete_resource(self.subnet_url(rg, vnet, name), progress=progress)
