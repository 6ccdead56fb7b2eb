"""Azure Monitor's metrics shapes for container groups (``Microsoft.Insights``, api-version
2018-01-01, as ``az monitor metrics list`` and azure-monitor-query send it).

ACI's metrics (Azure Monitor's "supported metrics" page for
``Microsoft.ContainerInstance/containerGroups``), each with the Average, Minimum and
Maximum aggregations and the time grains PT1M to P1D:

=================================  ======  ===============  ========================
name                               unit    dimension        skiff's source
=================================  ======  ===============  ========================
CpuUsage                           Count   containerName    millicores, per container
MemoryUsage                        Bytes   containerName    working set, per container
NetworkBytesReceivedPerSecond      Bytes   (none)           the group's namespace
NetworkBytesTransmittedPerSecond   Bytes   (none)           the group's namespace
=================================  ======  ===============  ========================

A query (:func:`parse_query`) names a ``timespan`` (``start/end``, ``start/duration``
or a duration ending now; default the last hour), an ``interval`` (default PT1M),
``metricnames`` (default CpuUsage), ``aggregation`` (default Average) and a ``$filter``
in the subset az sends: ``containerName eq '*'`` splits a metric by container (one
time series each), ``containerName eq 'a' or containerName eq 'b'`` keeps those.
Without a split, a container metric is the group's: the containers' values summed at
each sample. :func:`render_metrics` answers with a point per interval of the timespan,
as Azure does (a point without a value where nothing was sampled).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from skiff.errors import ArmError

NAMESPACE = "Microsoft.ContainerInstance/containerGroups"
DIMENSION = "containerName"
#: The time grains ACI's metrics offer, in seconds by their ISO 8601 name.
TIME_GRAINS = {"PT1M": 60, "PT5M": 300, "PT15M": 900, "PT30M": 1800, "PT1H": 3600,
               "PT6H": 21600, "PT12H": 43200, "P1D": 86400}
AGGREGATIONS = ("Average", "Minimum", "Maximum")
#: How far back a query may reach: what the time-series file keeps (downsampled).
RETENTION = "P30D"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    display: str
    description: str
    unit: str
    #: Per container (``containerName``) or per group (network).
    per_container: bool
    #: Which of a series' two values it is (see skiff.store.timeseries).
    value: str  # "a" | "b"


METRICS: dict[str, MetricDefinition] = {m.name.lower(): m for m in (
    MetricDefinition("CpuUsage", "CPU Usage", "CPU usage on all cores in millicores.",
                     "Count", True, "a"),
    MetricDefinition("MemoryUsage", "Memory Usage", "Total memory usage in byte.",
                     "Bytes", True, "b"),
    MetricDefinition("NetworkBytesReceivedPerSecond", "Network Bytes Received Per Second",
                     "The network bytes received per second.", "Bytes", False, "a"),
    MetricDefinition("NetworkBytesTransmittedPerSecond",
                     "Network Bytes Transmitted Per Second",
                     "The network bytes transmitted per second.", "Bytes", False, "b"),
)}


@dataclass(frozen=True)
class MetricsQuery:
    start: float  # UNIX seconds, aligned down to the interval
    end: float
    interval_s: int
    interval: str  # its ISO 8601 name
    metrics: tuple[MetricDefinition, ...]
    aggregations: tuple[str, ...]
    #: None: not split by container; ("*",): one series per container; else those.
    containers: tuple[str, ...] | None


def _bad(message: str, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message)


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                       re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds of an ISO 8601 duration (days, hours, minutes, seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip().upper() in ("P", "PT"):
        raise _bad(f"'{text}' is not an ISO 8601 duration (such as PT1H or P1D).")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def parse_time(text: str) -> float:
    """UNIX seconds of an ISO 8601 date and time (UTC when it names no offset)."""
    try:
        when = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        raise _bad(f"'{text}' is not an ISO 8601 date and time.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_timespan(text: str | None, now: float) -> tuple[float, float]:
    if not text:
        return now - 3600, now
    if "%" in text:  # az quotes it once more than the URL needs
        text = unquote(text)
    first, slash, second = text.partition("/")
    if not slash:
        return now - parse_duration(first), now
    start = parse_time(first)
    end = start + parse_duration(second) if second.strip().upper().startswith("P") \
        else parse_time(second)
    if end <= start:
        raise _bad(f"The timespan '{text}' ends before it starts.")
    return start, end


def _interval(text: str | None) -> tuple[str, int]:
    if not text:
        return "PT1M", 60
    seconds = parse_duration(text)
    for name, grain in TIME_GRAINS.items():
        if grain == seconds:
            return name, grain
    raise _bad(f"Detected invalid time interval of: {text}. Supported time grains are "
               f"{', '.join(TIME_GRAINS)}.")


def _metrics(text: str | None) -> tuple[MetricDefinition, ...]:
    names = [n.strip() for n in (text or "CpuUsage").split(",") if n.strip()]
    found = []
    for name in names or ["CpuUsage"]:
        metric = METRICS.get(name.lower())
        if metric is None:
            raise _bad(f"Failed to find metric configuration for provider: "
                       f"Microsoft.ContainerInstance, resource Type: containerGroups, metric: "
                       f"{name}, Valid metrics: "
                       f"{','.join(m.name for m in METRICS.values())}")
        if metric not in found:
            found.append(metric)
    return tuple(found)


def _aggregations(text: str | None) -> tuple[str, ...]:
    found: list[str] = []
    for name in (text or "Average").split(","):
        name = name.strip()
        match = next((a for a in AGGREGATIONS if a.lower() == name.lower()), None)
        if match is None:
            raise _bad(f"Invalid aggregation type '{name}': container group metrics offer "
                       f"{', '.join(AGGREGATIONS)}.")
        if match not in found:
            found.append(match)
    return tuple(found)


_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def parse_filter(text: str | None) -> tuple[str, ...] | None:
    """The containers a ``$filter`` keeps: None (no split), ``("*",)`` or names. Only
    ``containerName eq '...'`` clauses joined by ``or`` (one dimension: ``and`` adds
    nothing) are understood."""
    if not text or not text.strip():
        return None
    names: list[str] = []
    for clause in re.split(r"\s+(?:or|and)\s+", text.strip().strip("()"),
                           flags=re.IGNORECASE):
        match = _CLAUSE.fullmatch(clause.strip("() "))
        if match is None:
            raise _bad(f"The $filter '{text}' is not supported: container group metrics "
                       f"take {DIMENSION} eq '<name>' or {DIMENSION} eq '*'.")
        if match.group(1).lower() != DIMENSION.lower():
            raise _bad(f"Metric dimension '{match.group(1)}' is not supported: container "
                       f"group metrics have the dimension {DIMENSION}.")
        names.append(match.group(2).replace("''", "'"))
    return ("*",) if "*" in names else tuple(dict.fromkeys(names))


def parse_query(params: dict[str, str], now: float) -> MetricsQuery:
    """A metrics query from its URL parameters (names as Azure spells them; case-blind)."""
    lowered = {k.lower(): v for k, v in params.items()}
    start, end = parse_timespan(lowered.get("timespan"), now)
    interval, step = _interval(lowered.get("interval"))
    if (end - start) / step > 50_000:
        raise _bad(f"The timespan holds more than 50000 intervals of {interval}: ask for a "
                   "coarser interval.")
    metrics = _metrics(lowered.get("metricnames"))
    containers = parse_filter(lowered.get("$filter"))
    if containers is not None:
        for metric in metrics:
            if not metric.per_container:
                raise _bad(f"Metric: {metric.name} does not support requested dimension "
                           f"combination: {DIMENSION.lower()}, supported ones are: none")
    aligned = math.floor(start / step) * step
    return MetricsQuery(aligned, end, step, interval, metrics,
                        _aggregations(lowered.get("aggregation")), containers)


# ---- answers ----------------------------------------------------------------------------

#: (average, minimum, maximum) of a metric's values in one interval, by its start.
Values = dict[int, tuple[float | None, float | None, float | None]]


def _name(metric: MetricDefinition) -> dict[str, str]:
    return {"value": metric.name, "localizedValue": metric.display}


def render_series(query: MetricsQuery, values: Values,
                  container: str | None) -> dict[str, Any]:
    """One time series: a point per interval of the query, its aggregations where known."""
    keys = {"Average": ("average", 0), "Minimum": ("minimum", 1), "Maximum": ("maximum", 2)}
    data = []
    t = int(query.start)
    while t < query.end:
        point: dict[str, Any] = {"timeStamp": iso(t)}
        found = values.get(t)
        if found is not None:
            for aggregation in query.aggregations:
                key, index = keys[aggregation]
                if found[index] is not None:
                    point[key] = found[index]
        data.append(point)
        t += query.interval_s
    metadata = [] if container is None else [
        {"name": {"value": DIMENSION.lower(), "localizedValue": DIMENSION.lower()},
         "value": container}]
    return {"metadatavalues": metadata, "data": data}


def render_metric(resource_id: str, metric: MetricDefinition,
                  series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"{resource_id}/providers/Microsoft.Insights/metrics/{metric.name}",
            "type": "Microsoft.Insights/metrics", "name": _name(metric),
            "displayDescription": metric.description, "unit": metric.unit,
            "timeseries": series, "errorCode": "Success"}


def render_metrics(resource_id: str, location: str, query: MetricsQuery,
                   metrics: list[dict[str, Any]]) -> dict[str, Any]:
    intervals = max(1, math.ceil((query.end - query.start) / query.interval_s))
    return {"cost": intervals * max(1, len(metrics)),
            "timespan": f"{iso(query.start)}/{iso(query.end)}",
            "interval": query.interval, "value": metrics, "namespace": NAMESPACE,
            "resourceregion": location}


def render_definitions(resource_id: str) -> dict[str, Any]:
    """``metricDefinitions``: ACI's four metrics, their units, aggregations and grains."""
    return {"value": [{
        "id": f"{resource_id}/providers/microsoft.insights/metricdefinitions/{m.name}",
        "resourceId": resource_id,
        "namespace": NAMESPACE,
        "name": _name(m),
        "displayDescription": m.description,
        "category": "Container Group",
        "isDimensionRequired": False,
        "unit": m.unit,
        "primaryAggregationType": "Average",
        "supportedAggregationTypes": list(AGGREGATIONS),
        "metricAvailabilities": [{"timeGrain": grain, "retention": RETENTION}
                                 for grain in TIME_GRAINS],
        "dimensions": ([{"value": DIMENSION, "localizedValue": DIMENSION}]
                       if m.per_container else []),
    } for m in METRICS.values()]}
