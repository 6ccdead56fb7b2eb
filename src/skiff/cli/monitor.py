"""``skiff monitor ...``: the ``az monitor`` commands, against skiff's API.

``skiff monitor metrics list`` reads a container group's CPU, memory and network
metrics over time as ``az monitor metrics list`` does (the same options, the same
request: ``Microsoft.Insights/metrics``, api-version 2018-01-01, the same JSON
answer); ``list-definitions`` lists the metrics a group has. ``skiff monitor activity-log list``
reads the subscription's activity log as ``az monitor activity-log list`` does (the same
options and ``$filter``). Output options, ``--query`` and errors are those of
``skiff container``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from skiff.cli.common import AzCommand, handle_errors, new_client
from skiff.cli.output import emit, output_options
from skiff.client import SkiffClient

_GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
_SHORT = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.IGNORECASE)


def period(text: str, option: str) -> timedelta:
    """az's periods: ``##d##h##m##s`` shorthand, or an ISO 8601 duration (PT1M, P1D)."""
    value = text.strip()
    iso = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", value,
                       re.IGNORECASE)
    match = iso or _SHORT.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise click.BadParameter('PERIOD should be of the form "##h##m##s" or ISO8601',
                                 param_hint=option)
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def iso_duration(span: timedelta) -> str:
    """``span`` as the ISO 8601 duration Azure's grains are named by (PT5M, PT1H, P1D)."""
    seconds = int(span.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (
        f"{seconds}S" if seconds else "")
    return text + ("T" + clock if clock else "") if text + clock != "P" else "PT0S"


def parse_time(text: str, option: str) -> datetime:
    """A date and time as az takes them (ISO 8601; UTC without an offset), or a usage
    error naming ``option``."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date and time (yyyy-mm-dd hh:mm:ss, "
                                 "an optional +hh:mm offset; UTC without one)",
                                 param_hint=option) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def time_range(start: str | None, end: str | None,
               offset: timedelta) -> tuple[datetime, datetime]:
    """az's time range: from the start and end given, or ``offset`` before the end (now)."""
    end_at = parse_time(end, "--end-time") if end else None
    start_at = parse_time(start, "--start-time") if start else None
    if start_at is None:
        end_at = end_at or datetime.now(UTC)
        start_at = end_at - offset
    elif end_at is None:
        end_at = start_at + offset
    return start_at.astimezone(UTC), end_at.astimezone(UTC)


def timespan(start: str | None, end: str | None, offset: timedelta) -> str:
    """az's timespan (``start/end``, to the second) for a metrics query."""
    start_at, end_at = time_range(start, end, offset)
    return f"{start_at:%Y-%m-%dT%H:%M:%SZ}/{end_at:%Y-%m-%dT%H:%M:%SZ}"


def resource_id(client: SkiffClient, resource: str, resource_group: str | None,
                resource_type: str) -> str:
    """The resource's ARM id: ``--resource`` as given when it is one, else a name in
    ``--resource-group`` of ``--resource-type``."""
    if resource.startswith("/"):
        return resource
    if not resource_group:
        raise click.UsageError("--resource is a name: give its --resource-group (or pass "
                               "the resource's full ID)")
    return (f"/subscriptions/{client.subscription}/resourceGroups/{resource_group}/providers/"
            f"{resource_type}/{resource}")


def metrics_table(result: Any) -> list[dict[str, Any]]:
    """One row per point that holds a value: when, which metric (and container), values."""
    rows: list[dict[str, Any]] = []
    for metric in result.get("value", []) if isinstance(result, dict) else []:
        name = metric.get("name", {}).get("value")
        for series in metric.get("timeseries", []):
            dims = {m["name"]["value"].capitalize(): m["value"]
                    for m in series.get("metadatavalues", [])}
            for point in series.get("data", []):
                values = {k.capitalize(): v for k, v in point.items() if k != "timeStamp"}
                if values:
                    rows.append({"Timestamp": point["timeStamp"], "Name": name, **dims,
                                 **values})
    return rows


@click.group("monitor")
@click.pass_context
def monitor(ctx: click.Context) -> None:
    """Read container groups' metrics and the activity log, as `az monitor` does.

    The API is reached as for `skiff container` (SKIFF_URL, SKIFF_TOKEN, SKIFF_CA,
    SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


@monitor.group("metrics")
def metrics() -> None:
    """View a container group's metrics: CpuUsage (millicores), MemoryUsage (bytes),
    NetworkBytesReceivedPerSecond and NetworkBytesTransmittedPerSecond.

    skiff samples every running container every 15 s (skiff serve --metrics-interval)
    and keeps the samples 24 h, then 5-minute points for 30 days.
    """


_resource = click.option("--resource", required=True, metavar="ID",
                         help="The container group: its ID, or its name with "
                              "--resource-group.")
_rg = click.option("--resource-group", "-g", "resource_group",
                   help="Name of resource group (with a --resource name).")
_type = click.option("--resource-type", default=_GROUP_TYPE, show_default=True,
                     help="The resource's type (with a --resource name).")


@metrics.command("list", cls=AzCommand)
@_resource
@_rg
@_type
@click.option("--metrics", "--metric", "metric_names", multiple=True, metavar="NAME [NAME ...]",
              help="Space-separated metric names: CpuUsage, MemoryUsage, "
                   "NetworkBytesReceivedPerSecond, NetworkBytesTransmittedPerSecond. "
                   "Default: CpuUsage.")
@click.option("--aggregation", multiple=True, metavar="{Average,Maximum,Minimum} ...",
              help="Space-separated aggregations. Default: Average.")
@click.option("--dimension", multiple=True, metavar="NAME [NAME ...]",
              help="Space-separated dimensions to split by: containerName (CpuUsage and "
                   "MemoryUsage; one time series per container).")
@click.option("--filter", "filters", metavar="ODATA",
              help="An OData filter, such as \"containerName eq 'web'\"; not with "
                   "--dimension.")
@click.option("--interval", default="1m", show_default=True, metavar="PERIOD",
              help="The interval of the points: 1m, 5m, 15m, 30m, 1h, 6h, 12h, 1d (or "
                   "ISO 8601: PT1M ...).")
@click.option("--start-time", metavar="DATETIME",
              help="Start of the time span (yyyy-mm-dd hh:mm:ss[+hh:mm], UTC without an "
                   "offset). Default: --offset before the end.")
@click.option("--end-time", metavar="DATETIME",
              help="End of the time span. Default: now (or --offset after --start-time).")
@click.option("--offset", default="1h", show_default=True, metavar="PERIOD",
              help="The time span's length when only one end (or none) is given.")
@click.option("--namespace", metavar="NAMESPACE",
              help="The metrics' namespace: Microsoft.ContainerInstance/containerGroups.")
@click.option("--top", type=int, default=10, show_default=True,
              help="At most this many time series (with --dimension or --filter).")
@click.option("--orderby", metavar="AGGREGATION [asc|desc]",
              help="The aggregation to sort the time series by (accepted, as az sends it).")
@click.option("--metadata", is_flag=True, help="Only the time series, not their data.")
@output_options
@handle_errors
def metrics_list(resource: str, resource_group: str | None, resource_type: str,
                 metric_names: tuple[str, ...], aggregation: tuple[str, ...],
                 dimension: tuple[str, ...], filters: str | None, interval: str,
                 start_time: str | None, end_time: str | None, offset: str,
                 namespace: str | None, top: int, orderby: str | None, metadata: bool,
                 output: str, query: Any) -> None:
    """List a container group's metric values over a time span.

    \b
    Examples:
      skiff monitor metrics list --resource ID --metric CpuUsage
      skiff monitor metrics list --resource ID --metrics CpuUsage MemoryUsage \\
          --aggregation Average Maximum --dimension containerName --interval 5m
      skiff monitor metrics list --resource mygroup -g MyResourceGroup \\
          --metric NetworkBytesReceivedPerSecond --start-time 2026-01-01T00:00:00 --offset 1d
    """
    if dimension and filters:
        raise click.UsageError("usage: --dimension and --filter parameters are mutually "
                               "exclusive.")
    params = {"timespan": timespan(start_time, end_time, period(offset, "--offset")),
              "interval": iso_duration(period(interval, "--interval")), "top": str(top)}
    if metric_names:
        params["metricnames"] = ",".join(n for names in metric_names for n in names.split(","))
    if aggregation:
        params["aggregation"] = ",".join(aggregation)
    if dimension:
        params["$filter"] = " and ".join(f"{d} eq '*'" for d in dimension)
    elif filters:
        params["$filter"] = filters
    if namespace:
        params["metricnamespace"] = namespace
    if orderby:
        params["orderby"] = orderby
    if metadata:
        params["resultType"] = "Metadata"
    with new_client() as client:
        target = resource_id(client, resource, resource_group, resource_type)
        result = client.list_metrics(target, params)
    emit(result, output, query, table=metrics_table)


@metrics.command("list-definitions", cls=AzCommand)
@_resource
@_rg
@_type
@output_options
@handle_errors
def metrics_definitions(resource: str, resource_group: str | None, resource_type: str,
                        output: str, query: Any) -> None:
    """List the metrics a container group has: names, units, aggregations, time grains.

    \b
    Examples:
      skiff monitor metrics list-definitions --resource ID
    """
    with new_client() as client:
        target = resource_id(client, resource, resource_group, resource_type)
        result = client.list_metric_definitions(target)
    emit(result.get("value", []), output, query)


# ---- the activity log ----------------------------------------------------------------------


def activity_filter(*, start: str | None, end: str | None, offset: timedelta,
                    correlation_id: str | None, resource_group: str | None,
                    resource_id: str | None, namespace: str | None, caller: str | None,
                    status: str | None) -> str:
    """The ``$filter`` az builds for ``az monitor activity-log list``: the time range, then
    one of the correlation id, resource group, resource id or provider (in that order of
    precedence, as az), then the caller and the status."""
    begin, finish = time_range(start, end, offset)  # to the microsecond, as az
    text = (f"eventTimestamp ge '{begin:%Y-%m-%dT%H:%M:%S.%fZ}' and "
            f"eventTimestamp le '{finish:%Y-%m-%dT%H:%M:%S.%fZ}'")
    for label, value in (("correlationId", correlation_id),
                         ("resourceGroupName", resource_group),
                         ("resourceId", resource_id), ("resourceProvider", namespace)):
        if value:
            text += f" and {label} eq '{value}'"
            break
    for label, value in (("caller", caller), ("status", status)):
        if value:
            text += f" and {label} eq '{value}'"
    return text


def activity_table(result: Any) -> list[dict[str, Any]]:
    """One row per event: when, what, on what, by whom, how it went."""
    return [{"EventTimestamp": e.get("eventTimestamp"),
             "Operation": (e.get("operationName") or {}).get("value"),
             "Status": (e.get("status") or {}).get("value"),
             "ResourceGroup": e.get("resourceGroupName"), "Caller": e.get("caller"),
             "CorrelationId": e.get("correlationId")}
            for e in (result if isinstance(result, list) else [])]


@monitor.group("activity-log")
def activity_log() -> None:
    """Read the activity log: every write (create, update, delete, start, stop, restart,
    exec, role assignments...) with who made it, its status and correlation id.

    skiff keeps a subscription's events 90 days (and at most 100,000 of them).
    """


@activity_log.command("list", cls=AzCommand)
@click.option("--correlation-id", metavar="ID",
              help="The events of one correlation id (x-ms-correlation-request-id).")
@click.option("--resource-group", "-g", "resource_group",
              help="The events of a resource group's resources.")
@click.option("--resource-id", metavar="ID", help="The events of one resource (its ID).")
@click.option("--namespace", "--resource-provider", "namespace", metavar="NAMESPACE",
              help="The events of a resource provider (Microsoft.ContainerInstance...).")
@click.option("--caller", help="Only the events of this caller (a client id, a token's "
                               "name).")
@click.option("--status", help="Only the events of this status: Started, Accepted, "
                               "Succeeded, Failed.")
@click.option("--start-time", metavar="DATETIME",
              help="Start of the time span (yyyy-mm-dd hh:mm:ss[+hh:mm], UTC without an "
                   "offset). Default: --offset before the end.")
@click.option("--end-time", metavar="DATETIME",
              help="End of the time span. Default: now (or --offset after --start-time).")
@click.option("--offset", default="6h", show_default=True, metavar="PERIOD",
              help="The time span's length when only one end (or none) is given.")
@click.option("--max-events", type=click.IntRange(min=0), default=50, show_default=True,
              help="At most this many events (the newest).")
@click.option("--select", "select_", multiple=True, metavar="PROPERTY [PROPERTY ...]",
              help="Only these properties of each event (caller, eventTimestamp, status, "
                   "operationName, resourceId...).")
@output_options
@handle_errors
def activity_log_list(correlation_id: str | None, resource_group: str | None,
                      resource_id: str | None, namespace: str | None, caller: str | None,
                      status: str | None, start_time: str | None, end_time: str | None,
                      offset: str, max_events: int, select_: tuple[str, ...], output: str,
                      query: Any) -> None:
    """List the activity log's events, newest first.

    \b
    Examples:
      skiff monitor activity-log list -g MyResourceGroup
      skiff monitor activity-log list --resource-id ID --offset 1d
      skiff monitor activity-log list --correlation-id 8a7c... --select caller status
    """
    params = {"$filter": activity_filter(
        start=start_time, end=end_time, offset=period(offset, "--offset"),
        correlation_id=correlation_id, resource_group=resource_group,
        resource_id=resource_id, namespace=namespace, caller=caller, status=status)}
    names = [n.strip() for names in select_ for n in names.split(",") if n.strip()]
    if names:
        params["$select"] = ",".join(names)
    events: list[dict[str, Any]] = []
    with new_client() as client:
        for event in client.activity_log(params):
            if len(events) >= max_events:
                break
            events.append(event)
    emit(events, output, query, table=activity_table)
