"""Azure Monitor's reads of a resource (``Microsoft.Insights``, api-version 2018-01-01, as
``az monitor metrics`` sends them): its metrics over time and their definitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from skiff.client.errors import json_object
from skiff.client.http import HttpApi

INSIGHTS_PROVIDER = "Microsoft.Insights"
METRICS_API_VERSION = "2018-01-01"


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
