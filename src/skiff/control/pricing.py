"""Pricing: the store's usage spans, cut by a cost query's periods and priced.

A span's seconds within a period, times its requests, are its usage of each of
ACI's meters (vCPU-seconds, GB-seconds, GPU-seconds); times the price sheet's
price per second of each (:class:`~skiff.settings.PriceSheet`: ACI's published
Linux pay-as-you-go prices for East US by default,
https://azure.microsoft.com/pricing/details/container-instances/, and the sheet's
Spot prices for a span of a Spot group, under the same meters), its cost. An open
span counts until now, so a running group's cost grows as it runs. Amounts are summed
exactly and rounded once per row, as Cost Management shows them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from skiff.models.costs import COST_COLUMNS, CostQuery, bucket_edges
from skiff.settings import PriceSheet
from skiff.store.usage import Span

#: A price sheet file's keys (``skiff serve --prices``), by PriceSheet's fields.
SHEET_KEYS = {"currency": "currency", "region": "region", "vcpuSecond": "vcpu_second",
              "gbSecond": "gb_second", "gpuSecond": "gpu_second",
              "spotVcpuSecond": "spot_vcpu_second", "spotGbSecond": "spot_gb_second"}


def price_sheet(doc: Any) -> PriceSheet:
    """A price sheet from a JSON object (``{"currency": "EUR", "vcpuSecond": 0.00001,
    "gbSecond": 0.000001, ...}``; a key left out keeps its default); ValueError saying
    what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("a price sheet is a JSON object")
    unknown = sorted(set(doc) - set(SHEET_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; known: {', '.join(SHEET_KEYS)}")
    fields: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("currency", "region"):
            if not isinstance(value, str) or not value.strip() or len(value) > 40:
                raise ValueError(f"{key} must be a short text")
            fields[SHEET_KEYS[key]] = value.strip()
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value < 1e6:
                raise ValueError(f"{key} must be a number of at least 0 (a price per second)")
            fields[SHEET_KEYS[key]] = float(value)
    return PriceSheet(**fields)


def meters(span: Span, prices: PriceSheet) -> list[tuple[str, float, float]]:
    """(meter, quantity per second, price per second) of what ``span`` bills."""
    wanted = span.requests
    vcpu, gb = ((prices.spot_vcpu_second, prices.spot_gb_second) if span.spot
                else (prices.vcpu_second, prices.gb_second))
    found = [("vCPU Duration", wanted.cpu, vcpu), ("Memory Duration", wanted.memory_gb, gb)]
    if wanted.gpu:
        found.append(("GPU Duration", float(wanted.gpu), prices.gpu_second))
    return found


def _dimension(span: Span, name: str, meter: str) -> str:
    if name == "ResourceId":
        return span.resource_id.lower()
    if name == "Meter":
        return meter
    return span.resource_group.lower()  # ResourceGroup, ResourceGroupName


def cost_rows(query: CostQuery, spans: Iterable[Span], prices: PriceSheet,
              now: float) -> list[list[Any]]:
    """The answer's rows: per period and grouping, each aggregation summed, then the
    period's date (unless granularity None), the groupings' values and the currency."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    edges = bucket_edges(query)
    starts = [start for start, _, _ in edges]
    for span in spans:
        until = span.ended_at if span.ended_at is not None else max(now, span.last_seen)
        first = max(0, bisect.bisect_right(starts, span.started_at) - 1)
        for start, end, date in edges[first:bisect.bisect_left(starts, until)]:
            seconds = span.seconds(start, end, now)
            if seconds <= 0:
                continue
            for meter, per_second, price in meters(span, prices):
                quantity = seconds * per_second
                key = (date, *(_dimension(span, d, meter) for d in query.grouping))
                totals = sums.setdefault(key, [0.0] * len(query.aggregations))
                for i, column in enumerate(query.aggregations):
                    totals[i] += quantity * price if column in COST_COLUMNS else quantity
    rows = []
    for key in sorted(sums, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        date, groups = key[0], list(key[1:])
        row: list[Any] = [round(v, 10) for v in sums[key]]
        if query.granularity != "None":
            row.append(date)
        rows.append(row + groups + [prices.currency])
    return rows
