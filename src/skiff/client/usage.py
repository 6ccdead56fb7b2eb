"""Cost Management's query (``Microsoft.CostManagement/query``): container groups' usage and
its cost, at a subscription or a resource group."""

from __future__ import annotations

from typing import Any

import httpx

from skiff.client.errors import json_object
from skiff.client.http import HttpApi

COSTS_PROVIDER = "Microsoft.CostManagement"
COSTS_API_VERSION = "2023-03-01"


class UsageApi(HttpApi):
    """skiff's Microsoft.CostManagement query."""

    def query_costs(self, definition: dict[str, Any],
                    resource_group: str | None = None) -> dict[str, Any]:
        """``POST {scope}/providers/Microsoft.CostManagement/query`` with ``definition``
        (type, timeframe, timePeriod, dataset), at the subscription or ``resource_group``."""
        scope = f"/subscriptions/{self.subscription}" + (
            f"/resourceGroups/{resource_group}" if resource_group else "")
        url = httpx.URL(f"{scope}/providers/{COSTS_PROVIDER}/query",
                        params={"api-version": COSTS_API_VERSION})
        return json_object(self._send("POST", url, json=definition))
