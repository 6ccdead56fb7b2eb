"""Cost Management's query shapes (``Microsoft.CostManagement/query``), for skiff's usage.

``POST {scope}/providers/Microsoft.CostManagement/query`` at a subscription or a
resource group, as ``az costmanagement query`` and the SDKs send it: a ``type``
(Usage, ActualCost, AmortizedCost: one answer here, there are no reservations to
amortize), a ``timeframe`` (MonthToDate, BillingMonthToDate, TheLastMonth,
TheLastBillingMonth, WeekToDate, or Custom with ``timePeriod.from``/``to``) and a
``dataset``: ``granularity`` (Daily, Monthly or None), ``aggregation`` (each a
``{"name": column, "function": "Sum"}`` of PreTaxCost, Cost, CostUSD, PreTaxCostUSD
or UsageQuantity) and ``grouping`` (Dimension ResourceId, ResourceGroup,
ResourceGroupName or Meter). The answer is Azure's: ``properties.columns`` (the
aggregations, then UsageDate as a yyyymmdd Number or BillingMonth as a Datetime, the
groupings, Currency) and ``properties.rows``. ResourceId and resource group values are
lower case, as Cost Management writes them. A ``filter`` is refused (400), not ignored.

ACI's meters, as a Meter grouping names them: ``vCPU Duration`` (vCPU-seconds),
``Memory Duration`` (GB-seconds) and ``GPU Duration`` (GPU-seconds).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from skiff.errors import ArmError

PROVIDER = "Microsoft.CostManagement"
TYPES = ("Usage", "ActualCost", "AmortizedCost")
TIMEFRAMES = ("MonthToDate", "BillingMonthToDate", "TheLastMonth", "TheLastBillingMonth",
              "WeekToDate", "Custom")
GRANULARITIES = ("Daily", "Monthly", "None")
COST_COLUMNS = ("PreTaxCost", "Cost", "CostUSD", "PreTaxCostUSD")
QUANTITY = "UsageQuantity"
DIMENSIONS = ("ResourceId", "ResourceGroup", "ResourceGroupName", "Meter")
METERS = ("vCPU Duration", "Memory Duration", "GPU Duration")
#: The longest Custom period Cost Management answers.
MAX_DAYS = 366


@dataclass(frozen=True)
class CostQuery:
    """A parsed query: [start, end) in UNIX seconds, and how to cut and sum it."""

    start: float
    end: float
    granularity: str
    #: (column name, what it sums: a cost column or UsageQuantity), in the body's order.
    aggregations: tuple[str, ...]
    grouping: tuple[str, ...]


def _bad(message: str) -> ArmError:
    return ArmError(400, "BadRequest", message)


def _pick(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """``value`` spelled as ``allowed`` spells it (Cost Management ignores case)."""
    if isinstance(value, str):
        for option in allowed:
            if option.lower() == value.lower():
                return option
    raise _bad(f"Invalid {what} '{value}'. Allowed values: {', '.join(allowed)}.")


def _instant(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"timePeriod.{what} must be a date-time string.")
    try:
        found = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"timePeriod.{what} '{value[:40]}' is not a valid date-time.") from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _month_start(day: datetime) -> datetime:
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def period(timeframe: str, now: float, time_period: Any = None) -> tuple[float, float]:
    """[start, end) of ``timeframe`` (UTC days) as of ``now``."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0,
                                                     microsecond=0)
    tomorrow = today + timedelta(days=1)
    if timeframe in ("MonthToDate", "BillingMonthToDate"):
        return _month_start(today).timestamp(), tomorrow.timestamp()
    if timeframe in ("TheLastMonth", "TheLastBillingMonth"):
        this_month = _month_start(today)
        return _month_start(this_month - timedelta(days=1)).timestamp(), this_month.timestamp()
    if timeframe == "WeekToDate":  # weeks begin on Sunday, as Cost Management's
        return (today - timedelta(days=(today.weekday() + 1) % 7)).timestamp(), \
            tomorrow.timestamp()
    if not isinstance(time_period, dict) or "from" not in time_period \
            or "to" not in time_period:
        raise _bad("A Custom timeframe needs timePeriod with 'from' and 'to'.")
    start, end = _instant(time_period["from"], "from"), _instant(time_period["to"], "to")
    if end == end.replace(hour=0, minute=0, second=0, microsecond=0):
        end += timedelta(days=1)  # a date names its whole day
    if end <= start:
        raise _bad("timePeriod.to must not be before timePeriod.from.")
    if end - start > timedelta(days=MAX_DAYS):
        raise _bad(f"The time period must not exceed {MAX_DAYS} days.")
    return start.timestamp(), end.timestamp()


def parse_query(body: Any, now: float) -> CostQuery:
    """The query of a request body; an ARM 400 for what Cost Management would refuse."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    _pick(body.get("type"), TYPES, "type")
    timeframe = _pick(body.get("timeframe"), TIMEFRAMES, "timeframe")
    dataset = body.get("dataset") or {}
    if not isinstance(dataset, dict):
        raise _bad("dataset must be an object.")
    if dataset.get("filter") is not None:
        raise _bad("dataset.filter is not supported by skiff; group by ResourceId or "
                   "ResourceGroupName instead, or query at the resource group's scope.")
    unknown = sorted(str(k)[:40] for k in dataset
                     if k not in ("granularity", "aggregation", "grouping", "filter"))
    if unknown:
        raise _bad(f"dataset.{unknown[0]} is not supported by skiff.")
    granularity = _pick(dataset.get("granularity", "None"), GRANULARITIES, "granularity")
    aggregation = dataset.get("aggregation") or {"totalCost": {"name": "PreTaxCost",
                                                               "function": "Sum"}}
    if not isinstance(aggregation, dict) or len(aggregation) > 2:
        raise _bad("dataset.aggregation must be an object of at most 2 aggregations.")
    columns = []
    for alias, spec in aggregation.items():
        if not isinstance(spec, dict):
            raise _bad(f"Aggregation '{str(alias)[:40]}' must be an object.")
        _pick(spec.get("function"), ("Sum",), "aggregation function")
        columns.append(_pick(spec.get("name"), (*COST_COLUMNS, QUANTITY), "aggregation name"))
    grouping = dataset.get("grouping") or []
    if not isinstance(grouping, list) or len(grouping) > 2:
        raise _bad("dataset.grouping must be a list of at most 2 groupings.")
    dimensions = []
    for group in grouping:
        if not isinstance(group, dict):
            raise _bad("Each grouping must be an object.")
        _pick(group.get("type"), ("Dimension",), "grouping type")
        dimensions.append(_pick(group.get("name"), DIMENSIONS, "grouping dimension"))
    start, end = period(timeframe, now, body.get("timePeriod"))
    return CostQuery(start, end, granularity, tuple(columns), tuple(dimensions))


def bucket_edges(query: CostQuery) -> list[tuple[float, float, Any]]:
    """The query's periods: (start, end, the row's date value), by its granularity."""
    if query.granularity == "None":
        return [(query.start, query.end, None)]
    edges = []
    at = datetime.fromtimestamp(query.start, UTC)
    while at.timestamp() < query.end:
        if query.granularity == "Daily":
            day = at.replace(hour=0, minute=0, second=0, microsecond=0)
            following = day + timedelta(days=1)
            value: Any = int(day.strftime("%Y%m%d"))
        else:
            month = _month_start(at)
            days = calendar.monthrange(month.year, month.month)[1]
            following = month + timedelta(days=days)
            value = month.strftime("%Y-%m-%dT00:00:00")
        edges.append((max(at.timestamp(), query.start), min(following.timestamp(), query.end),
                      value))
        at = following
    return edges


def render_answer(query: CostQuery, rows: list[list[Any]], scope: str,
                  query_id: str) -> dict[str, Any]:
    """Cost Management's answer: the columns the query asks for, and ``rows``."""
    columns = [{"name": name, "type": "Number"} for name in query.aggregations]
    if query.granularity == "Daily":
        columns.append({"name": "UsageDate", "type": "Number"})
    elif query.granularity == "Monthly":
        columns.append({"name": "BillingMonth", "type": "Datetime"})
    columns += [{"name": name, "type": "String"} for name in query.grouping]
    columns.append({"name": "Currency", "type": "String"})
    return {"id": f"{scope}/providers/{PROVIDER}/query/{query_id}", "name": query_id,
            "type": f"{PROVIDER}/query", "location": None, "sku": None, "eTag": None,
            "properties": {"nextLink": None, "columns": columns, "rows": rows}}
