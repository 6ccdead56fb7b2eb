"""Microsoft.Insights metrics and metricDefinitions, the Prometheus endpoint and
``skiff monitor metrics list``, in process: a real store and time-series file, the fake
engine's counters sampled by the real sampler."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from click.testing import CliRunner
from fastapi import FastAPI

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.api.prometheus import serve_metrics
from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.errors import ArmError, NetworkError
from skiff.models.metrics import parse_filter, parse_query, parse_timespan
from skiff.store.timeseries import Point
from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import BASE, InProcessClient, fake_plane
from skiff.testing.waiting import eventually
from tests.unit.test_api_routes import GROUPS, SUB, create
from tests.unit.test_cli_storage import PortalTransport

INSIGHTS = f"{GROUPS}/g/providers/Microsoft.Insights"
V = "api-version=2018-01-01"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        yield running


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture
def app(plane: ControlPlane) -> FastAPI:
    return create_app(plane)


@pytest.fixture
def http(plane: ControlPlane, app: FastAPI, portal: BlockingPortal) -> InProcessClient:
    _, secret = plane.store.create_token(SUB, "tests")
    return InProcessClient(portal, app, secret)


def uid_of(plane: ControlPlane, name: str = "g") -> str:
    record = plane.store.get_group(SUB, "rg", name)
    assert record is not None
    return record.uid


def two_readings(engine: FakeEngine, plane: ControlPlane) -> None:
    """Two sampling rounds 10 s apart on the fake engine's clock."""
    assert plane.sampler is not None
    base = time.time()
    engine.clock = lambda: base
    plane.sampler.sample_once()
    engine.clock = lambda: base + 10
    plane.sampler.sample_once()


def seed(plane: ControlPlane, uid: str, start: int) -> None:
    """An hour of samples every 15 s: container c at 250 + (i % 4) * 100 millicores and
    1 MiB, the network at 1000 B/s in and 10 B/s out."""
    assert plane.metrics is not None
    for i in range(240):
        plane.metrics.record(start + 15 * i, [
            Point(uid, "c", 250.0 + (i % 4) * 100, 1048576.0),
            Point(uid, "", 1000.0, 10.0)])


def test_metrics_answer_as_azure_monitor_with_a_split_by_container(
        plane: ControlPlane, http: InProcessClient) -> None:
    """CpuUsage and MemoryUsage split by containerName (az's $filter), PT5M, Average and
    Maximum: a point per interval, the values from the samples."""
    create(http, "g")
    start = int(time.time()) // 3600 * 3600 - 3600
    seed(plane, uid_of(plane), start)
    span = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))}/PT1H"
    answer = http.get(f"{INSIGHTS}/metrics?{V}&timespan={span}&interval=PT5M"
                      "&metricnames=CpuUsage,MemoryUsage&aggregation=Average,Maximum"
                      "&$filter=containerName eq '*'")
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["interval"] == "PT5M"
    assert doc["namespace"] == "Microsoft.ContainerInstance/containerGroups"
    assert doc["resourceregion"] == "local"
    cpu, memory = doc["value"]
    assert cpu["name"] == {"value": "CpuUsage", "localizedValue": "CPU Usage"}
    assert cpu["unit"] == "Count"
    assert memory["unit"] == "Bytes"
    assert cpu["id"].endswith("/containerGroups/g/providers/Microsoft.Insights/metrics/CpuUsage")
    series = cpu["timeseries"]
    assert [s["metadatavalues"] for s in series] == [
        [{"name": {"value": "containername", "localizedValue": "containername"},
          "value": "c"}]]
    points = series[0]["data"]
    assert len(points) == 12
    assert points[0] == {"timeStamp": span[:20], "average": 400.0, "maximum": 550.0}
    assert memory["timeseries"][0]["data"][3]["average"] == 1048576.0


def test_network_metrics_are_per_group_and_refuse_a_container_split(
        plane: ControlPlane, http: InProcessClient) -> None:
    """The network metrics have no dimension: one series; a containerName filter on them
    is refused as Azure refuses it."""
    create(http, "g")
    start = int(time.time()) // 3600 * 3600 - 3600
    seed(plane, uid_of(plane), start)
    span = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))}/PT10M"
    doc = http.get(f"{INSIGHTS}/metrics?{V}&timespan={span}&interval=PT1M&metricnames="
                   "NetworkBytesReceivedPerSecond,NetworkBytesTransmittedPerSecond").json()
    received, sent = doc["value"]
    assert received["timeseries"][0]["metadatavalues"] == []
    assert {p["average"] for p in received["timeseries"][0]["data"]} == {1000.0}
    assert {p["average"] for p in sent["timeseries"][0]["data"]} == {10.0}
    refused = http.get(f"{INSIGHTS}/metrics?{V}&metricnames=NetworkBytesReceivedPerSecond"
                       "&$filter=containerName eq '*'")
    assert refused.status_code == 400
    assert "does not support requested dimension" in refused.json()["error"]["message"]


def test_unsplit_cpu_is_the_groups_sum_and_the_sampler_fills_the_file(
        plane: ControlPlane, http: InProcessClient) -> None:
    """The sampler over the fake engine's counters: two containers at 300 and 200
    millicores show 500 for the group without a split (default metric, aggregation and
    timespan), each its own with one."""
    doc = {"location": "local", "properties": {"osType": "Linux", "containers": [
        {"name": n, "properties": {"image": "registry.test/busybox:1",
                                   "command": ["sh", "-c", "sleep 300"],
                                   "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}
        for n in ("a", "b")]}}
    answer = http.put(f"{GROUPS}/g?api-version=2023-05-01", json=doc)
    assert answer.status_code == 201
    uid = uid_of(plane)
    engine = plane.engine
    assert isinstance(engine, FakeEngine)
    assert plane.sampler is not None
    eventually(lambda: engine.samples(), what="the fake group runs")
    engine.load[(uid, "a")] = (300.0, 1000)
    engine.load[(uid, "b")] = (200.0, 2000)
    two_readings(engine, plane)
    whole = http.get(f"{INSIGHTS}/metrics?{V}").json()["value"]
    assert [m["name"]["value"] for m in whole] == ["CpuUsage"]
    values = [p["average"] for p in whole[0]["timeseries"][0]["data"] if "average" in p]
    assert values
    assert values[-1] == pytest.approx(500.0, rel=0.02)
    one = http.get(f"{INSIGHTS}/metrics?{V}&$filter=containerName eq 'b'").json()["value"][0]
    [series] = one["timeseries"]
    assert series["metadatavalues"][0]["value"] == "b"
    assert [p["average"] for p in series["data"] if "average" in p][-1] == pytest.approx(
        200.0, rel=0.02)


def test_definitions_list_acis_four_metrics(http: InProcessClient) -> None:
    """metricDefinitions: names, units, Average/Minimum/Maximum, PT1M and coarser, the
    containerName dimension on CPU and memory only."""
    create(http, "g")
    doc = http.get(f"{INSIGHTS}/metricDefinitions?{V}").json()
    by_name = {d["name"]["value"]: d for d in doc["value"]}
    assert list(by_name) == ["CpuUsage", "MemoryUsage", "NetworkBytesReceivedPerSecond",
                             "NetworkBytesTransmittedPerSecond"]
    assert by_name["CpuUsage"]["supportedAggregationTypes"] == ["Average", "Minimum",
                                                                "Maximum"]
    assert by_name["CpuUsage"]["dimensions"] == [{"value": "containerName",
                                                  "localizedValue": "containerName"}]
    assert by_name["NetworkBytesReceivedPerSecond"]["dimensions"] == []
    assert by_name["MemoryUsage"]["metricAvailabilities"][0]["timeGrain"] == "PT1M"


@pytest.mark.parametrize(("query", "words"), [
    ("metricnames=Nope", "Failed to find metric configuration"),
    ("interval=PT2M", "invalid time interval"),
    ("aggregation=Total", "Invalid aggregation type"),
    ("timespan=2026-01-02T00:00:00Z/2026-01-01T00:00:00Z", "ends before it starts"),
    ("timespan=yesterday/today", "not an ISO 8601"),
    ("$filter=region eq 'x'", "dimension 'region' is not supported"),
    ("$filter=containerName gt 3", "is not supported"),
    ("metricnamespace=Microsoft.Compute/virtualMachines", "not supported"),
    ("top=many", "must be a number"),
])
def test_bad_queries_get_400_with_a_reason(http: InProcessClient, query: str,
                                           words: str) -> None:
    """Each malformed parameter: 400 with an ARM error that says which, never a 500."""
    create(http, "g")
    answer = http.get(f"{INSIGHTS}/metrics?{V}&{query}")
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]["message"]


def test_absent_groups_and_other_tenants_get_no_metrics(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient) -> None:
    """An unknown group: 404; another subscription's token: 403 before any look-up."""
    assert http.get(f"{GROUPS}/absent/providers/Microsoft.Insights/metrics?{V}"
                    ).status_code == 404
    create(http, "g")
    _, other = plane.store.create_token("sub-other", "other")
    stranger = InProcessClient(portal, app, other)
    refused = stranger.get(f"{INSIGHTS}/metrics?{V}")
    assert refused.status_code == 403
    assert "Microsoft.Insights/metrics/read" in refused.json()["error"]["message"]
    assert stranger.get(f"{INSIGHTS}/metricDefinitions?{V}").status_code == 403


def test_paths_are_case_blind(http: InProcessClient) -> None:
    """az and the SDKs spell the provider in several ways: all reach the routes."""
    create(http, "g")
    lowered = f"{GROUPS}/g/providers/microsoft.insights/metricdefinitions?{V}"
    assert http.get(lowered).status_code == 200


def test_prometheus_endpoint_is_the_admins_and_counts(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient) -> None:
    """/metrics: 403 to a tenant, to the admin token the groups by state, starts, the
    start and API latency histograms, pool sizes and per-container CPU and memory."""
    create(http, "g")
    uid = uid_of(plane)
    engine = plane.engine
    assert isinstance(engine, FakeEngine)
    assert plane.sampler is not None
    engine.load[(uid, "c")] = (100.0, 4096)
    two_readings(engine, plane)
    assert http.get("/metrics").status_code == 403
    _, admin = plane.store.create_token(None, "admin")
    text = InProcessClient(portal, app, admin).get("/metrics").text
    assert 'skiff_container_groups{desired="running",provisioning_state="Succeeded"} 1.0' in text
    assert "skiff_group_starts_total 1.0" in text
    assert "skiff_group_start_failures_total 0.0" in text
    assert "skiff_group_start_seconds_count 1.0" in text
    assert 'skiff_api_request_seconds_count{code="201",method="PUT",route=' in text
    assert 'skiff_pool_size{pool="network"} 0.0' in text
    assert ('skiff_container_memory_working_set_bytes{container="c",group="g",'
            'resource_group="rg",subscription="sub-1"} 4096.0') in text
    assert 'skiff_container_cpu_millicores{container="c",group="g"' in text


def test_query_parsing_follows_what_az_sends() -> None:
    """az's timespan comes quoted once more (and naive: UTC); a bare duration ends now;
    $filter's or-clauses name containers; '*' splits by all."""
    now = 1_800_000_000.0
    assert parse_timespan("2026-01-01T00%3A00%3A00%2F2026-01-01T01%3A00%3A00", now) == (
        1767225600.0, 1767229200.0)
    assert parse_timespan("PT1H", now) == (now - 3600, now)
    assert parse_timespan(None, now) == (now - 3600, now)
    assert parse_filter("containerName eq 'a' or containerName eq 'b'") == ("a", "b")
    assert parse_filter("containerName eq '*'") == ("*",)
    assert parse_filter(None) is None
    query = parse_query({"timespan": "2026-01-01T00:00:30Z/PT1H", "interval": "PT5M"}, now)
    assert query.start == 1767225600.0  # aligned down to the interval
    with pytest.raises(ArmError):
        parse_query({"timespan": "2020-01-01T00:00:00Z/P3650D", "interval": "PT1M"}, now)


def test_skiff_monitor_metrics_list_sends_what_az_sends(
        plane: ControlPlane, app: FastAPI, portal: BlockingPortal,
        http: InProcessClient) -> None:
    """``skiff monitor metrics list --resource ID --metric CpuUsage --dimension
    containerName --interval 5m``: the Azure Monitor answer; ``-o table``: a row per point
    with a value; list-definitions lists the four metrics."""
    group = create(http, "g")
    del group
    uid = uid_of(plane)
    now = int(time.time())
    seed(plane, uid, now - now % 300 - 3600)
    _, secret = plane.store.create_token(SUB, "cli")
    transport = PortalTransport(portal, app)

    def factory() -> SkiffClient:
        return SkiffClient(BASE, secret, subscription=SUB, transport=transport)

    rid = f"{GROUPS}/g"

    def run(*args: str) -> Any:
        result = CliRunner().invoke(main, list(args), obj=factory)
        assert result.exit_code == 0, result.output
        return result.output

    doc = json.loads(run("monitor", "metrics", "list", "--resource", rid, "--metric",
                         "CpuUsage", "--dimension", "containerName", "--interval", "5m",
                         "--aggregation", "Average", "Maximum"))
    assert doc["interval"] == "PT5M"
    [metric] = doc["value"]
    [series] = metric["timeseries"]
    assert series["metadatavalues"][0]["value"] == "c"
    assert any(p.get("maximum") == 550.0 for p in series["data"])
    table = run("monitor", "metrics", "list", "--resource", "g", "-g", "rg", "--metrics",
                "MemoryUsage", "-o", "table")
    assert table.splitlines()[0].split() == ["Timestamp", "Name", "Average"]
    assert "1048576.0" in table
    names = json.loads(run("monitor", "metrics", "list-definitions", "--resource", rid,
                           "--query", "[].name.value"))
    assert names[0] == "CpuUsage"
    assert len(names) == 4
    bad = CliRunner().invoke(main, ["monitor", "metrics", "list", "--resource", rid,
                                    "--interval", "soon"], obj=factory)
    assert bad.exit_code == 2
    assert "PERIOD" in bad.output


def test_the_prometheus_listener_needs_no_token(plane: ControlPlane) -> None:
    """``--metrics-listen``'s own plain-HTTP listener serves the same registry; a bad
    address is a NetworkError, not a traceback."""
    server = serve_metrics("127.0.0.1:0", plane.telemetry)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
        assert "skiff_container_groups" in text
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NetworkError):
        serve_metrics("127.0.0.1:nope", plane.telemetry)
