"""Storage accounts and their file shares, the ``Microsoft.Storage`` resources that
groups' ``azureFile`` volumes name (any api-version date; the client sends its own).

skiff answers every change at once (``provisioningState`` Succeeded); an answer with an
operation, as Azure's may be, is waited for and the resource read again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from skiff.client.errors import ApiError, json_object
from skiff.client.networks import NetworksApi

STORAGE_PROVIDER = "Microsoft.Storage"


class StorageApi(NetworksApi):
    """skiff's ARM API for storage accounts, their keys and their file shares."""

    def account_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a storage account, of a resource group's accounts (``name``
        None), or of the subscription's (both None)."""
        return self.resource_url(f"{STORAGE_PROVIDER}/storageAccounts", "a storage account's",
                                 rg, name)

    def share_url(self, rg: str, account: str, name: str | None = None) -> str:
        path = f"{self.account_url(rg, account)}/fileServices/default/shares"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    def create_account(self, rg: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a storage account; the account."""
        return self._put_resource(self.account_url(rg, name), body)

    def get_account(self, rg: str, name: str) -> dict[str, Any]:
        return json_object(self._send("GET", self.account_url(rg, name)))

    def list_accounts(self, rg: str | None = None) -> list[dict[str, Any]]:
        return [*self._pages(self.account_url(rg), "storage accounts")]

    def delete_account(self, rg: str, name: str) -> None:
        self._send("DELETE", self.account_url(rg, name))

    def account_keys(self, rg: str, name: str) -> list[dict[str, Any]]:
        """The account's keys: ``[{"keyName", "value", "permissions"}, ...]``."""
        keys = json_object(self._send("POST", f"{self.account_url(rg, name)}/listKeys"))
        value = keys.get("keys")
        if not isinstance(value, list):
            raise ApiError(200, "InvalidResponse", "a listKeys answer has no keys")
        return [k for k in value if isinstance(k, dict)]

    def account_resource_group(self, name: str) -> str:
        """The resource group of the subscription's account ``name`` (404 if none)."""
        for found in self.list_accounts():
            if str(found.get("name", "")).lower() == name.lower():
                parts = str(found.get("id", "")).split("/")
                if len(parts) > 4 and parts[3].lower() == "resourcegroups":
                    return parts[4]
        raise ApiError(404, "ResourceNotFound",
                       f"The storage account {name} was not found in the subscription.")

    def create_share(self, rg: str, account: str, name: str,
                     body: Mapping[str, Any]) -> dict[str, Any]:
        return json_object(self._send("PUT", self.share_url(rg, account, name), json=body))

    def get_share(self, rg: str, account: str, name: str, *,
                  stats: bool = False) -> dict[str, Any]:
        return json_object(self._send("GET", self.share_url(rg, account, name),
                                      params={"$expand": "stats"} if stats else None))

    def list_shares(self, rg: str, account: str) -> list[dict[str, Any]]:
        return [*self._pages(self.share_url(rg, account), "file shares")]

    def delete_share(self, rg: str, account: str, name: str) -> None:
        self._send("DELETE", self.share_url(rg, account, name))
