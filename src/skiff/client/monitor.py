"""Azure Monitor's reads (``Microsoft.Insights``, as ``az monitor`` sends them): a
resource's metrics over time and their definitions (api-version 2018-01-01), and a
subscription's activity log (2015-04-01)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from skiff.client.errors import json_object
from skiff.client.http import HttpApi

INSIGHTS_PROVIDER = "Microsoft.Insights"
METRICS_API_VERSION = "2018-01-01"
ACTIVITY_API_VERSION = "2015-04-01"


class MonitorApi(HttpApi):
    """skiff's Microsoft.Insights reads."""

    def list_metrics(self, resource_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET {resource_id}/providers/Microsoft.Insights/metrics`` with ``params``
        (timespan, interval, metricnames, aggregation, $filter, top...)."""
        url = httpx.URL(f"{resource_id.rstrip('/')}/providers/{INSIGHTS_PROVIDER}/metrics",
                        params={**params, "api-version": METRICS_API_VERSION})
        return json_object(self._send("GET", url))

    def list_metric_definitions(self, resource_id: str) -> dict[str, Any]:
        url = httpx.URL(
            f"{resource_id.rstrip('/')}/providers/{INSIGHTS_PROVIDER}/metricDefinitions",
            params={"api-version": METRICS_API_VERSION})
        return json_object(self._send("GET", url))

    def activity_log(self, params: Mapping[str, str], *,
                     tenant: bool = False) -> Iterator[dict[str, Any]]:
        """The subscription's activity log events (``tenant``: the tenant's own) that
        ``params`` ($filter, $select) ask, newest first, every page."""
        scope = "" if tenant else f"/subscriptions/{self.subscription}"
        url = httpx.URL(f"{scope}/providers/{INSIGHTS_PROVIDER}/eventtypes/management/values",
                        params={**params, "api-version": ACTIVITY_API_VERSION})
        return self._pages(str(url), "events")
