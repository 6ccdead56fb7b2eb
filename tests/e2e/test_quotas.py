"""Quotas and capacity on a real node: a Failed group's containers release its cores, a
stopped group's start is admitted, and a quota refusal as the Azure SDK reads it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ResourceRequests,
    ResourceRequirements,
)

from skiff.settings import QuotaSettings
from skiff.testing.catalog import BuiltImages
from skiff.testing.documents import one_container_group
from skiff.testing.server import RunningServer, running_server, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

SUB = "quota-test"
API = "?api-version=2023-05-01"
GROUPS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerInstance/" \
         "containerGroups"


def body(images: BuiltImages, cpu: float, script: str = "sleep 300",
         policy: str = "Always") -> dict[str, Any]:
    doc = one_container_group(images.bb, script, cpu=cpu, memory_gb=0.1)
    doc["properties"]["restartPolicy"] = policy
    return doc


def group_state(skiff: RunningServer, name: str) -> str | None:
    doc = skiff.client().get(f"{GROUPS}/{name}{API}").json()
    return (doc["properties"].get("instanceView") or {}).get("state")


def test_a_failed_group_releases_its_cores_and_start_is_admitted(
        skiff: RunningServer, images: BuiltImages) -> None:
    """Each group asks 60% of the node's CPUs: a group whose container failed (restart
    policy Never) holds none, so a second one runs; once that one is stopped a third
    runs, and the stopped one's start is refused with 409 ServiceUnavailable."""
    http = skiff.client()
    cores = skiff.server.plane.engine.capacity().cpu_cores
    share = round(cores * 0.6, 2)
    assert http.put(f"{GROUPS}/failed{API}",
                    json=body(images, share, "exit 3", "Never")).status_code == 201
    eventually(lambda: group_state(skiff, "failed") == "Failed", what="the group to fail",
               timeout_s=60)
    assert http.put(f"{GROUPS}/second{API}", json=body(images, share)).status_code == 201
    settled(http, f"{GROUPS}/second{API}", 60)
    assert group_state(skiff, "second") == "Running"
    assert http.post(f"{GROUPS}/second/stop{API}").status_code == 204
    assert http.put(f"{GROUPS}/third{API}", json=body(images, share)).status_code == 201
    refused = http.post(f"{GROUPS}/second/start{API}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "ServiceUnavailable"
    assert group_state(skiff, "second") == "Stopped"


class StaticToken:
    """A credential handing the SDK a skiff token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def test_the_sdk_reads_a_quota_refusal_and_the_usages(tmp_path: Path,
                                                       images: BuiltImages) -> None:
    """On a node whose subscriptions may hold one group, the SDK's second create raises
    ContainerGroupQuotaReached, and its list_usage shows ContainerGroups 1 of 1."""
    quotas = QuotaSettings(container_groups=1)
    with running_server(tmp_path / "root", allow=images.endpoints, quotas=quotas) as skiff:
        client = ContainerInstanceManagementClient(
            StaticToken(skiff.token), SUB, base_url=skiff.url,
            connection_verify=str(skiff.ca), polling_interval=0.2)

        def group() -> ContainerGroup:
            return ContainerGroup(location="westeurope", os_type="Linux", containers=[
                Container(name="c", image=images.bb, command=["sleep", "300"],
                          resources=ResourceRequirements(
                              requests=ResourceRequests(cpu=0.1, memory_in_gb=0.1)))])

        client.container_groups.begin_create_or_update("rg", "one", group()).result()
        with pytest.raises(HttpResponseError) as refused:
            client.container_groups.begin_create_or_update("rg", "two", group())
        assert refused.value.status_code == 400
        assert refused.value.error is not None
        assert refused.value.error.code == "ContainerGroupQuotaReached"
        assert "quota 'ContainerGroups' exceeded in region 'westeurope'" in str(refused.value)
        usage = {u.name.value: u.as_dict() for u in client.location.list_usage("westeurope")}
        assert (usage["ContainerGroups"]["current_value"],
                usage["ContainerGroups"]["limit"]) == (1, 1)
        assert usage["StandardCores"]["limit"] == 100
