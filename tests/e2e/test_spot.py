"""Spot container groups on a real node, driven with the Azure SDK (azure-mgmt-
containerinstance, api-version 2023-05-01, which has ``priority``): a Spot group is
evicted for a Regular one (its containers stopped, an Evicted event), and runs again
once the Regular group stops."""

from __future__ import annotations

import pytest
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance.models import (
    Container,
    ContainerGroup,
    ResourceRequests,
    ResourceRequirements,
)

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer
from skiff.testing.waiting import eventually
from tests.e2e.test_quotas import SUB, StaticToken

pytestmark = pytest.mark.root


def group(images: BuiltImages, cpu: float, priority: str) -> ContainerGroup:
    return ContainerGroup(location="westeurope", os_type="Linux", priority=priority,
                          containers=[Container(
                              name="c", image=images.bb, command=["sleep", "300"],
                              resources=ResourceRequirements(
                                  requests=ResourceRequests(cpu=cpu, memory_in_gb=0.1)))])


def test_a_spot_group_is_evicted_for_a_regular_one(skiff: RunningServer,
                                                   images: BuiltImages) -> None:
    """Each group asks 60% of the node's CPUs: the Regular group is admitted, the Spot
    group's container is stopped (its group Stopped, with a Warning event Evicted)
    before the Regular one runs; once the Regular group is stopped, the Spot group runs
    again on its own."""
    client = ContainerInstanceManagementClient(
        StaticToken(skiff.token), SUB, base_url=skiff.url, connection_verify=str(skiff.ca),
        polling_interval=0.2)
    groups = client.container_groups
    share = round(skiff.server.plane.engine.capacity().cpu_cores * 0.6, 2)
    spot = groups.begin_create_or_update("rg", "spot", group(images, share, "Spot")).result()
    assert spot.priority == "Spot"
    assert groups.get("rg", "spot").instance_view.state == "Running"

    groups.begin_create_or_update("rg", "regular", group(images, share, "Regular")).result()
    evicted = groups.get("rg", "spot")
    assert evicted.instance_view.state == "Stopped"
    assert evicted.containers[0].instance_view.current_state.state == "Terminated"
    [event] = [e for e in evicted.instance_view.events if e.name == "Evicted"]
    assert event.type == "Warning"
    assert event.count == 1
    eventually(lambda: groups.get("rg", "regular").instance_view.state == "Running",
               what="the Regular group to run", timeout_s=60)

    groups.stop("rg", "regular")
    eventually(lambda: groups.get("rg", "spot").instance_view.state == "Running",
               what="the evicted Spot group to run again", timeout_s=60)
    assert groups.get("rg", "regular").instance_view.state == "Stopped"
