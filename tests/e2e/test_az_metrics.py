"""The real az CLI reads a container group's metrics from skiff: ``az monitor metrics
list`` (with az's own timespan, interval and ``--dimension`` filter) and
``list-definitions``, over the API on the fake engine (no root), its sampler fed by
the fake engine's counters; and azure-monitor-query's ``MetricsQueryClient`` (the one
in az's venv) reads the same."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import FakeHttps, fake_https
from skiff.testing.waiting import eventually
from tests.e2e.test_az import AZ, SUB, AzWithGroup
from tests.e2e.test_az import az_with_group as az_with_group  # the fixture

pytestmark = pytest.mark.skipif(AZ is None, reason="no az CLI (SKIFF_AZ, /opt/skiff-az)")


#: azure-monitor-query's MetricsQueryClient against skiff, run by az's own Python (which
#: holds the package): argv = endpoint, token, resource id; prints what it read.
SDK_SCRIPT = """
import json, sys, time
from datetime import timedelta
from azure.core.credentials import AccessToken
from azure.monitor.query import MetricAggregationType, MetricsQueryClient

class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(sys.argv[2], int(time.time()) + 3600)

client = MetricsQueryClient(Token(), endpoint=sys.argv[1])
result = client.query_resource(
    sys.argv[3], ["CpuUsage", "MemoryUsage"], timespan=timedelta(hours=1),
    granularity=timedelta(minutes=1),
    aggregations=[MetricAggregationType.AVERAGE, MetricAggregationType.MAXIMUM],
    filter="containerName eq '*'")
print(json.dumps({
    "granularity": str(result.granularity),
    "metrics": {m.name: {"unit": str(m.unit), "series": [
        {"metadata": ts.metadata_values,
         "averages": [p.average for p in ts.data if p.average is not None]}
        for ts in m.timeseries]} for m in result.metrics}}))
"""


def sdk_python() -> Path | None:
    """az's venv Python, when az is a venv's (it holds azure-monitor-query)."""
    if AZ is None:
        return None
    python = Path(AZ).parent / "python"
    return python if python.exists() else None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeHttps]:
    with fake_https(tmp_path / "root") as running:
        yield running


def test_az_monitor_metrics_list_reads_cpu_by_container(az_with_group: AzWithGroup) -> None:
    """az monitor metrics list --metric CpuUsage --dimension containerName: 250 millicores
    for the container; MemoryUsage; list-definitions names the four metrics."""
    server, az = az_with_group.server, az_with_group.az
    rid = az_with_group.made["id"]
    record = server.plane.store.get_group(SUB, "rg1", "web")
    assert record is not None
    engine = server.plane.engine
    assert isinstance(engine, FakeEngine)
    assert server.plane.sampler is not None
    eventually(lambda: any(s.group_id == record.uid for s in engine.samples()),
               what="the group runs")
    engine.load[(record.uid, "web")] = (250.0, 64 << 20)
    base = time.time()
    engine.clock = lambda: base
    server.plane.sampler.sample_once()
    engine.clock = lambda: base + 15
    server.plane.sampler.sample_once()

    answer = az.json("monitor", "metrics", "list", "--resource", rid, "--metric", "CpuUsage",
                     "--dimension", "containerName", "--aggregation", "Average", "Maximum")
    assert answer["interval"] == "PT1M"
    [cpu] = answer["value"]
    assert cpu["name"]["value"] == "CpuUsage"
    [series] = cpu["timeseries"]
    assert series["metadatavalues"][0]["value"] == "web"
    values = [p["average"] for p in series["data"] if p.get("average") is not None]
    assert values[-1] == pytest.approx(250.0, rel=0.01)
    memory = az.json("monitor", "metrics", "list", "--resource", rid, "--metric",
                     "MemoryUsage", "--interval", "5m", "--offset", "2h")
    assert memory["interval"] == "PT5M"
    points = memory["value"][0]["timeseries"][0]["data"]
    assert [p["average"] for p in points if p.get("average") is not None] == [64 << 20]
    definitions = az.json("monitor", "metrics", "list-definitions", "--resource", rid)
    assert [d["name"]["value"] for d in definitions] == [
        "CpuUsage", "MemoryUsage", "NetworkBytesReceivedPerSecond",
        "NetworkBytesTransmittedPerSecond"]


def test_azure_monitor_query_reads_the_metrics(server: FakeHttps, tmp_path: Path) -> None:
    """MetricsQueryClient.query_resource (api-version 2018-01-01, its own timespan and
    granularity, a containerName filter): CpuUsage per container as sampled, its unit."""
    python = sdk_python()
    if python is None or subprocess.run([str(python), "-c", "import azure.monitor.query"],
                                        capture_output=True, check=False).returncode:
        pytest.skip("no azure-monitor-query beside az")
    _, admin = server.plane.store.create_token(None, "admin")
    plane = server.plane
    with httpx.Client(base_url=server.url, verify=ssl.create_default_context(
            cafile=str(server.ca)), headers={"Authorization": f"Bearer {admin}"}) as http:
        body = {"location": "local", "properties": {"osType": "Linux", "containers": [
            {"name": "web", "properties": {"image": "registry.test/busybox:1",
                                           "command": ["sleep", "300"], "resources": {
                                               "requests": {"cpu": 0.5, "memoryInGB": 0.5}}}}]}}
        rid = f"/subscriptions/{SUB}/resourceGroups/rg2/providers/" \
              "Microsoft.ContainerInstance/containerGroups/web"
        assert http.put(f"{rid}?api-version=2023-05-01", json=body).status_code == 201
    record = eventually(lambda: plane.store.get_group(SUB, "rg2", "web"),
                        what="the group is stored")
    assert record is not None
    engine = plane.engine
    assert isinstance(engine, FakeEngine)
    assert plane.sampler is not None
    eventually(lambda: any(s.group_id == record.uid for s in engine.samples()),
               what="the group runs")
    engine.load[(record.uid, "web")] = (125.0, 1 << 20)
    base = time.time()
    engine.clock = lambda: base
    plane.sampler.sample_once()
    engine.clock = lambda: base + 15
    plane.sampler.sample_once()
    done = subprocess.run([str(python), "-c", SDK_SCRIPT, server.url, admin, rid],
                          env={"REQUESTS_CA_BUNDLE": str(server.ca),
                               "SSL_CERT_FILE": str(server.ca)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert read["granularity"] == "0:01:00"
    cpu = read["metrics"]["CpuUsage"]
    assert cpu["unit"] == "Count"
    [series] = cpu["series"]
    assert series["metadata"] == {"containername": "web"}
    assert series["averages"][-1] == pytest.approx(125.0, rel=0.01)
    assert read["metrics"]["MemoryUsage"]["series"][0]["averages"][-1] == 1 << 20
