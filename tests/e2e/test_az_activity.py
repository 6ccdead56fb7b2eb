"""The real az CLI reads skiff's activity log: ``az monitor activity-log list`` by resource
group, resource id and correlation id (az's own ``$filter``, ``$select`` and paging)
finds a container group's create by the service principal that made it, from Started
to Succeeded; over the API on the fake engine (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_az import AZ, AzWithGroup, make_az, sign_in, skiff_cli
from tests.e2e.test_az import az_with_group as az_with_group  # the fixture

pytestmark = pytest.mark.skipif(AZ is None, reason="no az CLI (SKIFF_AZ, /opt/skiff-az)")
WRITE = "Microsoft.ContainerInstance/containerGroups/write"


def test_az_activity_log_lists_a_create_by_its_caller(az_with_group: AzWithGroup,
                                                      tmp_path: Path) -> None:
    """az container create, then az monitor activity-log list --resource-group and
    --resource-id: the create's Started, Accepted and Succeeded events, its caller the
    principal's app id, one correlation id; --correlation-id and --select narrow it;
    another subscription's principal sees none of it."""
    server, admin, owner, az = (az_with_group.server, az_with_group.admin,
                                az_with_group.owner, az_with_group.az)
    rid = az_with_group.made["id"]

    by_group = az.json("monitor", "activity-log", "list", "--resource-group", "rg1")
    writes = [e for e in by_group if e["operationName"]["value"] == WRITE]
    assert sorted(e["status"]["value"] for e in writes) == ["Accepted", "Started",
                                                             "Succeeded"]
    assert {e["caller"] for e in writes} == {owner["appId"]}
    assert {e["resourceId"].lower() for e in writes} == {rid.lower()}
    assert len({e["correlationId"] for e in writes}) == 1
    group_writes = [e for e in by_group if e["operationName"]["value"]
                    == "Microsoft.Resources/subscriptions/resourceGroups/write"]
    assert [e["status"]["value"] for e in group_writes] == ["Succeeded", "Started"]

    by_id = az.json("monitor", "activity-log", "list", "--resource-id", rid,
                    "--offset", "1h")
    assert sorted(e["eventDataId"] for e in by_id) == sorted(e["eventDataId"] for e in writes)
    correlation = writes[0]["correlationId"]
    picked = az.json("monitor", "activity-log", "list", "--correlation-id", correlation,
                     "--select", "caller", "status")
    assert picked
    assert all(set(e) <= {"caller", "status"} and e["caller"] == owner["appId"]
               for e in picked)

    other = skiff_cli(server.url, server.ca, admin, "ad", "sp", "create-for-rbac", "--name",
                      "other", "--role", "Owner", "--scopes",
                      "/subscriptions/00000000-0000-0000-0000-00000000b3b3")
    stranger = make_az(tmp_path, server.ca, "stranger")
    sign_in(stranger, server.url, other)
    assert stranger.json("monitor", "activity-log", "list") == []
