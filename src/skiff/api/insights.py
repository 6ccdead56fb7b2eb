"""Microsoft.Insights metrics of a container group, as Azure Monitor answers them for ACI.

``GET {group id}/providers/Microsoft.Insights/metrics`` and ``.../metricDefinitions``
(any api-version date; az sends 2018-01-01): what ``az monitor metrics list``,
``az monitor metrics list-definitions``, azure-mgmt-monitor and azure-monitor-query's
``MetricsQueryClient.query_resource`` ask. The query's parameters and the answer's
shape are :mod:`skiff.models.metrics`'; the values come from the time-series file
the sampler fills (:mod:`skiff.control.sampling`). A metric's read is authorized as
``Microsoft.Insights/metrics/read`` (definitions: ``.../metricDefinitions/read``) at
the group's scope, so a Reader of the group (``*/read``) may, and another tenant sees
a 403 before anything is looked up.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from skiff.api.context import PROVIDER, allow, check_api_version, plane
from skiff.control.access import Caller
from skiff.errors import ArmError
from skiff.models.metrics import (
    NAMESPACE,
    MetricDefinition,
    MetricsQuery,
    Values,
    parse_query,
    render_definitions,
    render_metric,
    render_metrics,
    render_series,
)
from skiff.store import GroupRecord
from skiff.store.timeseries import Bucket, MetricsFile

router = APIRouter(dependencies=[Depends(check_api_version)])
_GROUP = (f"/subscriptions/{{subscription}}/resourceGroups/{{resource_group}}/providers/"
          f"{PROVIDER}/containerGroups/{{name}}/providers/Microsoft.Insights")
CanReadMetrics = Annotated[Caller, allow("Microsoft.Insights/metrics/read")]
CanReadDefinitions = Annotated[Caller, allow("Microsoft.Insights/metricDefinitions/read")]


def _group(request: Request, subscription: str, resource_group: str, name: str) -> GroupRecord:
    record = plane(request).store.get_group(subscription, resource_group, name)
    if record is None or record.desired == "deleted":
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{PROVIDER}/containerGroups/{name}' under resource group "
                       f"'{resource_group}' was not found.")
    return record


def _values(buckets: list[Bucket], metric: MetricDefinition) -> dict[str, Values]:
    """Each series' (average, minimum, maximum) by interval start, for ``metric``."""
    found: dict[str, Values] = {}
    for b in buckets:
        triple = (b.avg_a, b.min_a, b.max_a) if metric.value == "a" else (
            b.avg_b, b.min_b, b.max_b)
        found.setdefault(b.container, {})[b.start] = triple
    return found


def _series(series: MetricsFile | None, uid: str, query: MetricsQuery,
            metric: MetricDefinition, now: float, top: int,
            read: dict[str, list[Bucket]]) -> list[dict[str, Any]]:
    """The metric's time series: the group's, or one per container when split. ``read``
    keeps what was read by selection: CPU and memory come from the same rows."""
    def fetch(**selection: Any) -> list[Bucket]:
        if series is None:
            return []
        key = repr(sorted(selection.items()))
        if key not in read:
            read[key] = series.query(uid, query.start, query.end, query.interval_s, now,
                                     **selection)
        return read[key]

    if not metric.per_container:
        return [render_series(query, _values(fetch(network=True), metric).get("", {}), None)]
    if query.containers is None:
        return [render_series(query, _values(fetch(combined=True), metric).get("", {}), None)]
    if query.containers == ("*",):
        values = _values(fetch(), metric)
        names = sorted(values)
    else:
        names = list(query.containers)
        values = _values(fetch(containers=names), metric)
    return [render_series(query, values.get(n, {}), n) for n in names[:top]]


@router.get(_GROUP + "/metrics")
def list_metrics(subscription: str, resource_group: str, name: str, request: Request,
                 caller: CanReadMetrics) -> dict[str, Any]:
    """The group's metrics over a timespan, as Azure Monitor answers them."""
    record = _group(request, subscription, resource_group, name)
    params = dict(request.query_params)
    namespace = next((v for k, v in params.items() if k.lower() == "metricnamespace"), None)
    if namespace and namespace.lower() != NAMESPACE.lower():
        raise ArmError(400, "BadRequest", f"Metric namespace '{namespace}' is not supported "
                       f"for this resource: its metrics are in '{NAMESPACE}'.")
    top_text = next((v for k, v in params.items() if k.lower() == "top"), "10")
    try:
        top = int(top_text)
    except ValueError:
        raise ArmError(400, "BadRequest", f"'top' must be a number, not '{top_text}'.") from None
    now = time.time()
    query = parse_query(params, now)
    metadata_only = next((v for k, v in params.items() if k.lower() == "resulttype"),
                         "").lower() == "metadata"
    store = plane(request).metrics
    metrics = []
    read: dict[str, list[Bucket]] = {}
    for metric in query.metrics:
        series = _series(store, record.uid, query, metric, now, max(1, top), read)
        if metadata_only:
            series = [{**s, "data": []} for s in series]
        metrics.append(render_metric(record.resource_id, metric, series))
    return render_metrics(record.resource_id, record.location, query, metrics)


@router.get(_GROUP + "/metricDefinitions")
def list_metric_definitions(subscription: str, resource_group: str, name: str,
                            request: Request, caller: CanReadDefinitions) -> dict[str, Any]:
    """ACI's metrics of the group: names, units, aggregations, grains, dimensions."""
    record = _group(request, subscription, resource_group, name)
    return render_definitions(record.resource_id)
