"""The real az CLI reads a container group's metrics from skiff: ``az monitor metrics
list`` (with az's own timespan, interval and ``--dimension`` filter) and
``list-definitions``, over the API on the fake engine (no root), its sampler fed by
the fake engine's counters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.testing.fake import FakeEngine
from skiff.testing.inprocess import FakeHttps, fake_https
from skiff.testing.waiting import eventually
from tests.e2e.test_az import AZ, SUB, make_az, sign_in, skiff_cli

pytestmark = pytest.mark.skipif(AZ is None, reason="no az CLI (SKIFF_AZ, /opt/skiff-az)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeHttps]:
    with fake_https(tmp_path / "root") as running:
        yield running


def test_az_monitor_metrics_list_reads_cpu_by_container(server: FakeHttps,
                                                        tmp_path: Path) -> None:
    """az monitor metrics list --metric CpuUsage --dimension containerName: 250 millicores
    for the container; MemoryUsage; list-definitions names the four metrics."""
    _, admin = server.plane.store.create_token(None, "admin")
    owner = skiff_cli(server.url, server.ca, admin, "ad", "sp", "create-for-rbac", "--name",
                      "ci", "--role", "Owner", "--scopes", f"/subscriptions/{SUB}")
    az = make_az(tmp_path, server.ca)
    sign_in(az, server.url, owner)
    az.run("group", "create", "-n", "rg1", "-l", "local")
    made = az.json("container", "create", "-g", "rg1", "-n", "web", "--image",
                   "registry.test/busybox:1", "--cpu", "0.5", "--memory", "0.5",
                   "--os-type", "Linux")
    rid = made["id"]
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
