"""The portal's subscription-wide pages: usage and cost, and virtual networks.

Both are the API's answers to the signed-in caller, per subscription it sees: ACI's
quotas (``locations/{node's}/usages``) and Cost Management's query (the one ``skiff
usage show`` sends: cost and quantity by resource and meter) for the usage page;
Microsoft.Network's virtual networks with their subnets, and the container groups whose
``subnetIds`` name each subnet, for the networks page. A subscription the caller may
not read there (403) is shown as such, not as an empty one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from skiff.portal.arm import PROVIDER, ArmFailure
from skiff.portal.routes import ROOT, Signed, _arm, _expired, _failed, page

#: The api-versions the pages ask (any date is served; these are az's).
COSTS = "2023-03-01"
NETWORK = "2023-09-01"
#: The periods the usage page offers: Cost Management's timeframe → its label.
TIMEFRAMES = {"MonthToDate": "This month", "WeekToDate": "This week",
              "TheLastMonth": "Last month"}
#: Cost Management's meters → the usage table's columns.
_METERS = {"vCPU Duration": "vcpu", "Memory Duration": "gb", "GPU Duration": "gpu"}

router = APIRouter(prefix=ROOT, include_in_schema=False)


def cost_query(timeframe: str) -> dict[str, Any]:
    """Cost Management's query of the period: cost and quantity by resource and meter."""
    return {"type": "Usage", "timeframe": timeframe, "dataset": {
        "granularity": "None",
        "aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"},
                        "usage": {"name": "UsageQuantity", "function": "Sum"}},
        "grouping": [{"type": "Dimension", "name": "ResourceId"},
                     {"type": "Dimension", "name": "Meter"}]}}


@dataclass
class Spend:
    """A container group's usage over the period (quantities in seconds)."""

    resource_group: str
    name: str
    vcpu: float = 0.0
    gb: float = 0.0
    gpu: float = 0.0
    cost: float = 0.0
    currency: str = ""


@dataclass
class Subscription:
    """What the usage page shows of one subscription."""

    id: str
    quotas: list[dict[str, Any]] = field(default_factory=list)
    spends: list[Spend] = field(default_factory=list)
    problem: str = ""

    @property
    def total(self) -> float:
        return round(sum(s.cost for s in self.spends), 6)

    @property
    def currency(self) -> str:
        return next((s.currency for s in self.spends if s.currency), "")


def spends_of(answer: dict[str, Any]) -> list[Spend]:
    """A cost answer's rows as one line per group, by resource group and name."""
    props = answer.get("properties") or {}
    names = [str(c.get("name")) for c in props.get("columns") or []]
    found: dict[str, Spend] = {}
    for row in props.get("rows") or []:
        cell = dict(zip(names, row, strict=False))
        resource = str(cell.get("ResourceId", ""))
        parts = resource.split("/")
        spend = found.setdefault(resource, Spend(parts[4] if len(parts) > 4 else "",
                                                 parts[-1]))
        meter = _METERS.get(str(cell.get("Meter")))
        if meter is not None:
            setattr(spend, meter, getattr(spend, meter) + float(cell.get("UsageQuantity", 0)))
        spend.cost += float(cell.get("PreTaxCost", 0))
        spend.currency = str(cell.get("Currency") or spend.currency)
    return sorted(found.values(), key=lambda s: (s.resource_group, s.name))


@router.get("/usage")
async def usage(request: Request, session: Signed) -> Response:
    """Each subscription's quotas on this node and its usage's cost over a period."""
    timeframe = request.query_params.get("timeframe", "MonthToDate")
    if timeframe not in TIMEFRAMES:
        timeframe = "MonthToDate"
    arm = _arm(request, session)
    location = quote(str(request.app.state.plane.settings.api.location), safe="")
    shown: list[Subscription] = []
    try:
        for subscription in await arm.subscriptions():
            found = Subscription(subscription)
            scope = f"/subscriptions/{quote(subscription, safe='')}"
            try:
                found.quotas = (await arm.get(
                    f"{scope}/providers/{PROVIDER}/locations/{location}/usages")).get(
                    "value") or []
                found.spends = spends_of((await arm.call(
                    "POST", f"{scope}/providers/Microsoft.CostManagement/query",
                    version=COSTS, body=cost_query(timeframe))).json())
            except ArmFailure as failure:
                if failure.status not in (403, 404):
                    raise
                found.problem = f"{failure.code}: {failure.message}"
            shown.append(found)
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    return page("usage.html", session=session, title="Usage and cost", subscriptions=shown,
                timeframe=timeframe, timeframes=TIMEFRAMES)


@router.get("/networks")
async def networks(request: Request, session: Signed) -> Response:
    """Every virtual network the caller sees, its subnets, and the groups in each."""
    arm = _arm(request, session)
    vnets: list[dict[str, Any]] = []
    try:
        for subscription in await arm.subscriptions():
            try:
                vnets += await arm.listing(
                    f"/subscriptions/{quote(subscription, safe='')}/providers/"
                    "Microsoft.Network/virtualNetworks", version=NETWORK)
            except ArmFailure as failure:
                if failure.status not in (403, 404):
                    raise
        groups = await arm.groups()
    except ArmFailure as failure:
        return _expired(failure) or _failed(failure, session)
    return page("networks.html", session=session, title="Virtual networks",
                vnets=network_rows(vnets, groups))


def network_rows(vnets: list[dict[str, Any]],
                 groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each network with its subnets, each subnet with the groups (name, resource group,
    portal path) whose ``subnetIds`` name it (ids compared as ARM does, case ignored)."""
    members: dict[str, list[dict[str, str]]] = defaultdict(list)
    for group in groups:
        parts = str(group.get("id", "")).split("/")
        if len(parts) < 9:
            continue
        for ref in (group.get("properties") or {}).get("subnetIds") or []:
            members[str(ref.get("id", "")).lower()].append({
                "name": str(group.get("name", "")), "resource_group": parts[4],
                "path": f"{parts[2]}/{parts[4]}/{parts[-1]}"})
    rows = []
    for vnet in sorted(vnets, key=lambda v: (str(v.get("name", "")), str(v.get("id", "")))):
        props = vnet.get("properties") or {}
        parts = str(vnet.get("id", "")).split("/")
        subnets = []
        for subnet in props.get("subnets") or []:
            sprops = subnet.get("properties") or {}
            prefixes = sprops.get("addressPrefixes") or [sprops.get("addressPrefix", "")]
            subnets.append({"name": subnet.get("name", ""),
                            "prefixes": [p for p in prefixes if p],
                            "delegations": [str((d.get("properties") or {}).get(
                                "serviceName", "")) for d in sprops.get("delegations") or []],
                            "groups": sorted(members.get(str(subnet.get("id", "")).lower(), []),
                                             key=lambda g: g["name"])})
        rows.append({"name": vnet.get("name", ""), "id": vnet.get("id", ""),
                     "subscription": parts[2] if len(parts) > 2 else "",
                     "resource_group": parts[4] if len(parts) > 4 else "",
                     "location": vnet.get("location", ""),
                     "prefixes": (props.get("addressSpace") or {}).get("addressPrefixes") or [],
                     "subnets": subnets})
    return rows
