"""The group page's metrics charts: the API's Azure Monitor answer drawn as SVG on the
server (a line per container, a gap where nothing was sampled, axes a person can read;
the group's network received and transmitted as two lines of one chart), with the same
values in a table, for the range chosen."""

from __future__ import annotations

import re
import time
from typing import Any

from skiff.portal.charts import (
    chart,
    charts,
    network_chart,
    network_query_of,
    nice_ceiling,
    query_of,
)
from skiff.store.timeseries import Point
from skiff.testing.inprocess import InProcessClient
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    Served,
    admin,
    admin_token,
    browser,
    make_group,
    served,
    sign_in,
)


def metric(name: str, series: dict[str, list[float | None]]) -> dict[str, Any]:
    """An Azure Monitor metric of ``series`` (container → a value a minute)."""
    def point(i: int, value: float | None) -> dict[str, Any]:
        found: dict[str, Any] = {"timeStamp": f"2026-01-01T10:{i:02d}:00Z"}
        if value is not None:
            found["average"] = value
        return found

    return {"name": {"value": name}, "timeseries": [
        {"metadatavalues": [{"name": {"value": "containername"}, "value": c}],
         "data": [point(i, v) for i, v in enumerate(values)]} for c, values in series.items()]}


def test_a_gap_splits_the_line_and_the_axis_is_rounded_up() -> None:
    """A minute without a sample ends one polyline and starts another; the value axis
    tops at a round number above the largest value; the table has every minute."""
    drawn = chart("CpuUsage", metric("CpuUsage", {"web": [100, 200, None, 340, 300],
                                                  "side": [None, None, None, None, 50]}))
    web, side = sorted(drawn.lines, key=lambda line: line.container != "web")
    assert len(web.segments) == 2
    assert len(web.segments[0].split()) == 2
    assert web.last == "300"
    assert len(side.segments) == 1  # a lone point is still drawn
    assert [label for _, label in drawn.y_ticks] == ["0", "250", "500"]
    assert [label for _, label in drawn.x_ticks] == ["10:00", "10:02", "10:04"]
    assert drawn.containers == ("side", "web")
    assert drawn.rows[2] == ("2026-01-01 10:02", ("", ""))
    assert drawn.rows[4] == ("2026-01-01 10:04", ("50", "300"))
    assert not drawn.empty


def test_memory_is_shown_in_mib_and_nothing_sampled_is_empty() -> None:
    """Bytes become MiB; a series without a value draws nothing and says so."""
    drawn = chart("MemoryUsage", metric("MemoryUsage", {"c": [3 * 1048576.0, None]}))
    assert drawn.unit == "MiB"
    assert drawn.rows[0][1] == ("3",)
    assert chart("MemoryUsage", metric("MemoryUsage", {"c": [None, None]})).empty


def test_round_ceilings_and_ranges() -> None:
    """1-2-2.5-5 steps; an unknown range word is the last hour's query."""
    assert [nice_ceiling(v) for v in (0, 0.3, 7, 11, 240, 260, 999)] == [
        1, 0.5, 10, 20, 250, 500, 1000]
    word, params = query_of("forever")
    assert word == "1h"
    assert params["timespan"] == "PT1H"
    assert params["$filter"] == "containerName eq '*'"
    assert query_of("24h")[1]["interval"] == "PT15M"


def test_the_group_page_draws_its_containers_metrics(served: Served,  # noqa: F811
                                                     browser: InProcessClient,  # noqa: F811
                                                     admin: InProcessClient,  # noqa: F811
                                                     admin_token: str) -> None:  # noqa: F811
    """Samples recorded for the group's container come back as a figure (caption, SVG
    line, table) per metric; the range chosen is the one marked current."""
    make_group(admin, "charted")
    record = served.plane.store.get_group(
        "00000000-0000-0000-0000-0000000000a1", "rg", "charted")
    assert record is not None
    assert served.plane.metrics is not None
    now = int(time.time()) // 60 * 60
    for i in range(10):
        served.plane.metrics.record(now - 600 + 60 * i, [
            Point(record.uid, "c", 120.0 + i, 8 * 1048576.0),
            Point(record.uid, "", 3 * 1024.0, 5 * 1024.0)])
    sign_in(browser, admin_token)
    page = browser.get(
        "/portal/groups/00000000-0000-0000-0000-0000000000a1/rg/charted?range=6h").text
    assert re.search(r'<a href="[^"]*\?range=6h#metrics" aria-current="true">', page)
    for name, caption in (("CpuUsage", "CPU (millicores)"), ("MemoryUsage", "Memory (MiB)"),
                          ("Network", "Network (KiB/s)")):
        figure = page.split(f'<figure class="chart" id="chart-{name}">')[1].split("</figure>")[0]
        assert caption in figure
        assert "<polyline" in figure
        assert 'role="img"' in figure
    assert "<td class=\"num\">8</td>" in page
    network = page.split('<figure class="chart" id="chart-Network">')[1].split("</figure>")[0]
    assert "received 3 KiB/s now, transmitted 5 KiB/s now" in network
    assert re.search(r'<td class="num">3</td><td class="num">5</td></tr>', network)
    assert not charts({"value": []})
    [empty] = charts({"timespan": "2026-01-01T10:00:00Z/2026-01-01T11:00:00Z",
                      "value": [{"name": {"value": "CpuUsage"}, "timeseries": []}]})
    assert empty.empty
    assert [label for _, label in empty.x_ticks] == ["10:00", "10:30", "11:00"]


def test_the_network_chart_draws_received_and_transmitted_per_group() -> None:
    """The two network metrics (no dimension) become one chart in KiB/s, a line each,
    received first; their query asks no split (the API refuses one); an answer without
    them draws no network chart."""
    def group_metric(name: str, values: list[float | None]) -> dict[str, Any]:
        found = metric(name, {"": values})
        found["timeseries"][0]["metadatavalues"] = []
        return found

    drawn = network_chart({"value": [
        group_metric("NetworkBytesTransmittedPerSecond", [2048.0, None, 512.0]),
        group_metric("NetworkBytesReceivedPerSecond", [10240.0, 20480.0, None])]})
    assert drawn is not None
    assert (drawn.metric, drawn.title, drawn.unit) == ("Network", "Network", "KiB/s")
    assert drawn.containers == ("received", "transmitted")
    assert [(line.container, line.last) for line in drawn.lines] == [
        ("received", "20"), ("transmitted", "0.5")]
    assert drawn.rows[0] == ("2026-01-01 10:00", ("10", "2"))
    assert drawn.rows[2] == ("2026-01-01 10:02", ("", "0.5"))
    assert [label for _, label in drawn.y_ticks] == ["0", "10", "20"]
    assert network_chart({"value": [metric("CpuUsage", {"c": [1.0]})]}) is None
    params = network_query_of("6h")
    assert params["metricnames"] == \
        "NetworkBytesReceivedPerSecond,NetworkBytesTransmittedPerSecond"
    assert "$filter" not in params
    assert (params["timespan"], params["interval"]) == ("PT6H", "PT5M")
