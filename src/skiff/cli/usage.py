"""``skiff usage show``: container groups' usage and its cost, through skiff's API.

It asks Cost Management's query (``Microsoft.CostManagement/query``, the request
``az costmanagement query`` sends) at the subscription, or at ``-g``'s resource
group, grouped by resource and meter, and shows one line per container group (per
day or month with ``--granularity``): its vCPU-seconds, GB-seconds, GPU-seconds
and their cost under the node's price sheet. ``-o json`` gives those lines as a
list, ``-o csv`` as comma-separated values with a header.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import click

from skiff.cli.common import AzCommand, handle_errors, new_client
from skiff.cli.monitor import parse_time
from skiff.cli.output import emit
from skiff.client import SkiffClient

_QUANTITY = {"vCPU Duration": "vCPUSeconds", "Memory Duration": "GBSeconds",
             "GPU Duration": "GPUSeconds"}


def _date(text: str, option: str) -> str:
    return parse_time(text, option).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def definition(start: str | None, end: str | None, granularity: str) -> dict[str, Any]:
    """The Cost Management query for the options: this month to date, or [start, end]."""
    body: dict[str, Any] = {"type": "Usage", "timeframe": "MonthToDate", "dataset": {
        "granularity": granularity,
        "aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"},
                        "usage": {"name": "UsageQuantity", "function": "Sum"}},
        "grouping": [{"type": "Dimension", "name": "ResourceId"},
                     {"type": "Dimension", "name": "Meter"}]}}
    if start or end:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["timeframe"] = "Custom"
        body["timePeriod"] = {"from": _date(start, "--start") if start else
                              datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z"),
                              "to": _date(end, "--end") if end else now}
    return body


def usage_lines(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per container group (and period): names, quantities by meter, cost."""
    props = answer.get("properties", {})
    names = [c["name"] for c in props.get("columns", [])]
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for row in props.get("rows", []):
        cell = dict(zip(names, row, strict=False))
        when = str(cell.get("UsageDate", cell.get("BillingMonth", "")))
        resource = str(cell.get("ResourceId", ""))
        parts = resource.split("/")
        line = lines.setdefault((when, resource), {
            **({"Date": when} if when else {}),
            "ResourceGroup": parts[4] if len(parts) > 4 else "",
            "Name": parts[-1], "vCPUSeconds": 0.0, "GBSeconds": 0.0, "GPUSeconds": 0.0,
            "Cost": 0.0, "Currency": cell.get("Currency", "")})
        key = _QUANTITY.get(str(cell.get("Meter")))
        if key is not None:
            line[key] += float(cell.get("UsageQuantity", 0))
        line["Cost"] += float(cell.get("PreTaxCost", 0))
    found = []
    for line in lines.values():
        for key in ("vCPUSeconds", "GBSeconds", "GPUSeconds"):
            line[key] = round(line[key], 3)
        line["Cost"] = round(line["Cost"], 6)
        found.append(line)
    return found


def _csv(lines: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if lines:
        writer = csv.DictWriter(out, fieldnames=list(lines[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    return out.getvalue()


@click.group("usage")
@click.pass_context
def usage(ctx: click.Context) -> None:
    """Show container groups' usage and its cost (Microsoft.CostManagement), through
    skiff's API.

    Usage is metered per second as ACI bills it: from the start of a group's
    deployment (its first image pull) until it is stopped, for the vCPUs and GB of
    memory its containers request; Stopped, Succeeded and Failed groups accrue
    nothing. The API is reached as for `skiff container` (SKIFF_URL, SKIFF_TOKEN,
    SKIFF_CA, SKIFF_SUBSCRIPTION).
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


@usage.command("show", cls=AzCommand)
@click.option("--resource-group", "-g", "resource_group",
              help="Only this resource group's container groups. Default: the subscription's.")
@click.option("--start", metavar="DATE",
              help="Start of the period (yyyy-mm-dd or yyyy-mm-ddThh:mm:ss, UTC without an "
                   "offset). Default: the first of this month.")
@click.option("--end", metavar="DATE",
              help="End of the period (a date alone includes its whole day). Default: now.")
@click.option("--granularity", type=click.Choice(["None", "Daily", "Monthly"],
                                                 case_sensitive=False),
              default="None", show_default=True, help="One line per group, or per group and "
                                                      "day or month.")
@click.option("--output", "-o", type=click.Choice(["table", "json", "csv"],
                                                  case_sensitive=False),
              default="table", show_default=True, help="Output format.")
@handle_errors
def show(resource_group: str | None, start: str | None, end: str | None, granularity: str,
         output: str) -> None:
    """Show each container group's vCPU-seconds, GB-seconds and cost over a period.

    \b
    Examples:
      skiff usage show
      skiff usage show -g MyResourceGroup --start 2026-01-01 --end 2026-01-31 -o csv
      skiff usage show --granularity Daily -o json
    """
    body = definition(start, end, granularity.capitalize() if granularity != "None"
                      else "None")
    with new_client() as client:
        answer = client.query_costs(body, resource_group)
    lines = usage_lines(answer)
    if output.lower() == "json":
        click.echo(json.dumps(lines, indent=2))
    elif output.lower() == "csv":
        click.echo(_csv(lines), nl=False)
    else:
        emit(lines, "table", table=lambda rows: list(rows))
