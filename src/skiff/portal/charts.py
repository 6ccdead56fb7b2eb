"""A group's CPU, memory and network over time, as charts drawn on the server: pure
functions.

The group page asks the API's Azure Monitor metrics twice: ``CpuUsage`` and
``MemoryUsage`` split by ``containerName`` (as ``az monitor metrics list --dimension
containerName`` does), and ``NetworkBytesReceivedPerSecond`` and
``NetworkBytesTransmittedPerSecond``, which ACI measures per group and which take no
dimension (a split is refused, as in Azure). This module turns the answers into what
the template draws: one line per container (the network chart: one for received and
one for transmitted) in SVG coordinates, the axes' labels, and the same values as rows for the
data table that stands in for the picture (a screen reader, a copy). No chart library
and no script: the page's Content-Security-Policy allows no inline style, and SVG
presentation attributes and classes need none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skiff.portal.views import parse_time

#: The time ranges offered: their word → (the query's timespan, interval, label).
RANGES: dict[str, tuple[str, str, str]] = {
    "1h": ("PT1H", "PT1M", "last hour"),
    "6h": ("PT6H", "PT5M", "last 6 hours"),
    "24h": ("P1D", "PT15M", "last 24 hours"),
}
DEFAULT_RANGE = "1h"
#: The metrics drawn: the API's name → (the chart's title, its unit's label, the
#: divisor from the API's unit to the shown one).
METRICS: dict[str, tuple[str, str, float]] = {
    "CpuUsage": ("CPU", "millicores", 1.0),
    "MemoryUsage": ("Memory", "MiB", 1024.0 * 1024.0),
}
#: The group's network metrics (no dimension), drawn as one chart: the API's name →
#: its line's name.
NETWORK_METRICS: dict[str, str] = {
    "NetworkBytesReceivedPerSecond": "received",
    "NetworkBytesTransmittedPerSecond": "transmitted",
}
#: The network chart's id, title, unit and divisor (bytes per second → KiB/s).
NETWORK = "Network"
_DRAWN = {**METRICS, NETWORK: ("Network", "KiB/s", 1024.0)}
#: The drawing's size in SVG units (the page scales it to its width), and its margins
#: for the axes' labels.
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
#: Series drawn with distinct classes (colours in portal.css), then again from the first.
PALETTE = 6


@dataclass(frozen=True)
class Line:
    """One container's values: its polylines (a gap where nothing was sampled)."""

    container: str
    css: str
    segments: tuple[str, ...]
    last: str


@dataclass(frozen=True)
class Chart:
    """One metric's chart: its lines, axes and the data table's rows."""

    metric: str
    title: str
    unit: str
    lines: tuple[Line, ...]
    #: (y in SVG units, the label) of the value axis' ticks.
    y_ticks: tuple[tuple[float, str], ...]
    #: (x in SVG units, the label) of the time axis' ticks.
    x_ticks: tuple[tuple[float, str], ...]
    containers: tuple[str, ...]
    #: The table: (time, one value per container, '' where none).
    rows: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def empty(self) -> bool:
        return not any(line.segments for line in self.lines)


def series_of(metric: Mapping[str, Any]) -> dict[str, list[tuple[datetime, float | None]]]:
    """Each container's (time, average) points of one metric of the answer."""
    found: dict[str, list[tuple[datetime, float | None]]] = {}
    for series in metric.get("timeseries") or []:
        name = next((str(m.get("value", "")) for m in series.get("metadatavalues") or []),
                    "")
        points = []
        for point in series.get("data") or []:
            when = parse_time(point.get("timeStamp"))
            value = point.get("average")
            if when is not None:
                points.append((when, float(value) if isinstance(value, int | float) else None))
        found[name] = points
    return found


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times 10^n at or above ``value`` (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def chart(name: str, metric: Mapping[str, Any],
          span: tuple[datetime, datetime] | None = None) -> Chart:
    """The chart of one metric of the API's answer (``name``: a key of METRICS, or
    NETWORK); ``span``: the answer's timespan, the time axis when no series has a point."""
    title, unit, divisor = _DRAWN[name]
    series = {c: [(t, None if v is None else v / divisor) for t, v in points]
              for c, points in sorted(series_of(metric).items())}
    times = sorted({t for points in series.values() for t, _ in points})
    values = [v for points in series.values() for _, v in points if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    start, end = (times[0], times[-1]) if times else span or (None, None)
    seconds = (end - start).total_seconds() if start and end and end > start else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: datetime) -> float:
        return LEFT + plot_w * ((when - start).total_seconds() / seconds if start else 0.0)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    lines = []
    for index, (container, points) in enumerate(series.items()):
        segments: list[str] = []
        current: list[str] = []
        for when, value in points:
            if value is None:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            current.append(f"{x(when):.1f},{y(value):.1f}")
        if current:
            segments.append(" ".join(current))
        # A lone point is drawn as a short flat line, so that it shows.
        segments = [s if " " in s else _dot(s) for s in segments]
        last = next((_number(v) for _, v in reversed(points) if v is not None), "—")
        lines.append(Line(container or "group", f"series-{index % PALETTE}",
                          tuple(segments), last))
    y_ticks = tuple((y(top * f), _number(top * f)) for f in (0, 0.5, 1))
    x_ticks: tuple[tuple[float, str], ...] = ()
    if start and end:
        middle = start + (end - start) / 2
        x_ticks = tuple((x(t), t.strftime("%H:%M")) for t in (start, middle, end))
    table = tuple(
        (when.strftime("%Y-%m-%d %H:%M"),
         tuple(_cell(dict(points).get(when)) for points in series.values()))
        for when in times)
    return Chart(name, title, unit, tuple(lines), y_ticks, x_ticks,
                 tuple(c or "group" for c in series), table)


def charts(answer: Mapping[str, Any]) -> list[Chart]:
    """The charts of a metrics answer, in METRICS' order (those it lacks left out)."""
    by_name, span = _by_name(answer)
    return [chart(name, by_name[name], span) for name in METRICS if name in by_name]


def network_chart(answer: Mapping[str, Any]) -> Chart | None:
    """The network chart of a metrics answer: a line for the bytes received per second,
    one for those transmitted (None: the answer has neither)."""
    by_name, span = _by_name(answer)
    found = [(line, by_name[name]) for name, line in NETWORK_METRICS.items()
             if name in by_name]
    if not found:
        return None
    series = [{"metadatavalues": [{"value": line}], "data": s.get("data") or []}
              for line, metric in found for s in (metric.get("timeseries") or [])[:1]]
    return chart(NETWORK, {"timeseries": series}, span)


def _by_name(answer: Mapping[str, Any]
             ) -> tuple[dict[str, Mapping[str, Any]], tuple[datetime, datetime] | None]:
    """A metrics answer's metrics by name, and its timespan (None: none, or not one)."""
    by_name = {str((m.get("name") or {}).get("value", "")): m
               for m in answer.get("value") or []}
    first, _, last = str(answer.get("timespan") or "").partition("/")
    start, end = parse_time(first), parse_time(last)
    return by_name, (start, end) if start and end and end > start else None


def _dot(point: str) -> str:
    px, py = (float(v) for v in point.split(","))
    return f"{px - 2:.1f},{py:.1f} {px + 2:.1f},{py:.1f}"


def _cell(value: float | None) -> str:
    return "" if value is None else _number(value)


def query_of(range_word: str) -> tuple[str, dict[str, str]]:
    """The range shown (an unknown word: the default) and the metrics query's
    parameters for it."""
    word = range_word if range_word in RANGES else DEFAULT_RANGE
    timespan, interval, _ = RANGES[word]
    return word, {"metricnames": ",".join(METRICS), "timespan": timespan,
                  "interval": interval, "aggregation": "Average",
                  "$filter": "containerName eq '*'"}


def network_query_of(range_word: str) -> dict[str, str]:
    """The network metrics query's parameters for a range (as :func:`query_of`'s, with
    no ``$filter``: the group's metrics have no dimension)."""
    _, params = query_of(range_word)
    params.pop("$filter")
    return {**params, "metricnames": ",".join(NETWORK_METRICS)}


def labels(ranges: Sequence[str] = tuple(RANGES)) -> dict[str, str]:
    """The range selector's words and labels."""
    return {word: RANGES[word][2] for word in ranges}
