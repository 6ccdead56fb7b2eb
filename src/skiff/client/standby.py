"""Standby container group pools (``Microsoft.StandbyPool/standbyContainerGroupPools``,
api-version 2025-03-01): the pools and their runtime view, as the StandbyPool API and
``az standby-container-group-pool`` see them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from skiff.client.errors import json_object
from skiff.client.http import HttpApi

STANDBY_PROVIDER = "Microsoft.StandbyPool"
STANDBY_API_VERSION = "2025-03-01"
_VERSION = f"?api-version={STANDBY_API_VERSION}"  # in the URL: params would be overridden


class StandbyApi(HttpApi):
    """skiff's ARM API for standby container group pools."""

    def pool_url(self, rg: str | None = None, name: str | None = None) -> str:
        """The ARM path of a pool, of a resource group's (``name`` None), or of the
        subscription's (both None)."""
        path = f"/subscriptions/{quote(self.subscription, safe='')}"
        if rg is not None:
            path += f"/resourceGroups/{quote(rg, safe='')}"
        path += f"/providers/{STANDBY_PROVIDER}/standbyContainerGroupPools"
        if name is not None:
            if rg is None:
                raise ValueError("a pool's path needs its resource group")
            path += f"/{quote(name, safe='')}"
        return path

    def create_pool(self, rg: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return json_object(self._send("PUT", self.pool_url(rg, name) + _VERSION, json=body))

    def get_pool(self, rg: str, name: str) -> dict[str, Any]:
        return json_object(self._send("GET", self.pool_url(rg, name) + _VERSION))

    def pool_status(self, rg: str, name: str) -> dict[str, Any]:
        """The pool's runtime view (``runtimeViews/latest``): its members by state."""
        return json_object(self._send(
            "GET", f"{self.pool_url(rg, name)}/runtimeViews/latest{_VERSION}"))

    def list_pools(self, rg: str | None = None) -> list[dict[str, Any]]:
        url = f"{self.pool_url(rg)}{_VERSION}"
        return [*self._pages(url, "standby container group pools")]

    def delete_pool(self, rg: str, name: str) -> None:
        self._send("DELETE", self.pool_url(rg, name) + _VERSION)
