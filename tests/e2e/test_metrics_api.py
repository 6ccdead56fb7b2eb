"""Metrics of a real group through a real server: a busy loop held to half a core shows
≈ 500 millicores in ``Microsoft.Insights/metrics`` CpuUsage, and in the Prometheus
endpoint."""

from __future__ import annotations

import time

import pytest

from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "metrics-test"
GROUP = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
         "containerGroups/spin")
#: Seconds between the two sampling rounds the test takes itself.
WINDOW_S = 3.0


def test_a_busy_loop_shows_its_cpu_limit_in_cpu_usage(skiff: RunningServer,
                                                       images: BuiltImages) -> None:
    """``while :; do :; done`` with cpu 0.5, sampled by the server's own sampler:
    CpuUsage (split by containerName) averages ≈ 500 millicores in the last minute;
    MemoryUsage is above zero; /metrics (admin) shows the container's gauge."""
    with skiff.client() as http:
        answer = http.put(f"{GROUP}?api-version=2023-05-01",
                          json=one_container_group(images.bb, "while :; do :; done",
                                                   cpu=0.5))
        assert answer.status_code == 201, answer.text
        group = settled(http, f"{GROUP}?api-version=2023-05-01")
        assert group["properties"]["provisioningState"] == "Succeeded", group
        sampler = skiff.server.plane.sampler
        assert sampler is not None
        record = skiff.server.plane.store.get_group(SUB, "rg", "spin")
        assert record is not None
        eventually(lambda: any(p.group == record.uid for p in sampler.sample_once()),
                   what="the group is sampled")
        time.sleep(WINDOW_S)  # the measuring window itself, not a wait for a condition
        sampler.sample_once()
        doc = http.get(f"{GROUP}/providers/Microsoft.Insights/metrics", params={
            "api-version": "2018-01-01", "timespan": "PT5M", "interval": "PT1M",
            "metricnames": "CpuUsage,MemoryUsage", "aggregation": "Average,Maximum",
            "$filter": "containerName eq '*'"}).json()
        cpu, memory = doc["value"]
        [series] = cpu["timeseries"]
        assert series["metadatavalues"][0]["value"] == "c"
        averages = [p["average"] for p in series["data"] if p.get("average") is not None]
        assert averages, doc
        assert 380 <= averages[-1] <= 560, f"CpuUsage {averages[-1]:.0f} for a 0.5 limit"
        used = [p["average"] for p in memory["timeseries"][0]["data"] if p.get("average")]
        assert used
        assert used[-1] > 0
        text = http.get("/metrics").text
        assert 'skiff_container_cpu_millicores{container="c",group="spin"' in text
        assert "skiff_group_starts_total 1.0" in text
