"""User-assigned managed identities, the ``Microsoft.ManagedIdentity`` resources that a
group's ``identity.userAssignedIdentities`` names (api-version 2023-01-31, az's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.client.errors import json_object
from skiff.client.networks import NetworksApi

IDENTITY_PROVIDER = "Microsoft.ManagedIdentity"
IDENTITY_API_VERSION = "2023-01-31"
_VERSION = {"api-version": IDENTITY_API_VERSION}


class IdentitiesApi(NetworksApi):
    """skiff's ARM API for user-assigned identities."""

    def identity_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of an identity, of a resource group's (``name`` None), or of the
        subscription's (both None)."""
        return self.resource_url(f"{IDENTITY_PROVIDER}/userAssignedIdentities", "an identity's",
                                 rg, name)

    def create_identity(self, rg: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return json_object(self._send("PUT", self.identity_url(rg, name), json=body,
                                      params=_VERSION))

    def get_identity(self, rg: str, name: str) -> dict[str, Any]:
        return json_object(self._send("GET", self.identity_url(rg, name), params=_VERSION))

    def list_identities(self, rg: str | None = None) -> list[dict[str, Any]]:
        url = f"{self.identity_url(rg)}?api-version={IDENTITY_API_VERSION}"
        return [*self._pages(url, "managed identities")]

    def delete_identity(self, rg: str, name: str) -> None:
        self._send("DELETE", self.identity_url(rg, name), params=_VERSION)
