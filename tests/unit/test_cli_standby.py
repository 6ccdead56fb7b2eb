"""``skiff standby-container-group-pool ...`` against the in-process app (a real store, the
fake engine: test_standby's plane), through the CLI's own client (as test_cli_identity
runs it)."""

from __future__ import annotations

from typing import Any

from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.testing.inprocess import InProcessClient
from tests.unit import test_cli_identity, test_standby
from tests.unit.test_cli_identity import SUB, ok
from tests.unit.test_standby import ACI_API, group_of_profile

#: The fixtures these tests share: test_standby's plane (with a profile table), and
#: test_cli_identity's CLI runner over it.
plane = test_standby.plane
run = test_cli_identity.run


def test_pools_are_made_shown_counted_listed_and_deleted(plane: ControlPlane,
                                                         run: Any) -> None:
    """create prints the pool as az does (properties flattened, resourceGroup), status
    its runtime view, list and delete act on it; a bad capacity is refused by the CLI."""
    profile_path = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                    f"Microsoft.ContainerInstance/containerGroupProfiles/web")
    _, secret = plane.store.create_token(SUB, "profiles")
    with start_blocking_portal() as portal:
        made = InProcessClient(portal, create_app(plane), secret).put(
            f"{profile_path}{ACI_API}", json=group_of_profile())
    assert made.status_code == 201, made.text
    profile = profile_path
    made = ok(run("standby-container-group-pool", "create", "-n", "pool", "-g", "rg",
                  "--container-profile-id", profile, "--max-ready-capacity", "0",
                  "--tags", "team=a"))
    assert made["resourceGroup"] == "rg"
    assert made["elasticityProfile"] == {"maxReadyCapacity": 0, "refillPolicy": "always"}
    assert made["tags"] == {"team": "a"}
    shown = ok(run("standby-container-group-pool", "show", "-n", "pool", "-g", "rg"))
    assert shown["containerGroupProperties"]["containerGroupProfile"]["id"] == profile
    status = ok(run("standby-container-group-pool", "status", "-n", "pool", "-g", "rg"))
    assert "status" in status, status
    assert status["status"]["code"] == "HealthState/healthy"
    assert [p["name"] for p in ok(run("standby-container-group-pool", "list"))] == ["pool"]
    ok(run("standby-container-group-pool", "delete", "-n", "pool", "-g", "rg", "--yes"))
    assert ok(run("standby-container-group-pool", "list", "-g", "rg")) == []
    refused = run("standby-container-group-pool", "create", "-n", "pool", "-g", "rg",
                  "--container-profile-id", profile, "--max-ready-capacity", "2001")
    assert refused.exit_code != 0


def test_a_missing_profile_is_an_arm_error(run: Any) -> None:
    """A pool naming a profile that does not exist prints ACI's error, no traceback."""
    result = run("standby-container-group-pool", "create", "-n", "pool", "-g", "rg",
                 "--container-profile-id",
                 f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                 f"Microsoft.ContainerInstance/containerGroupProfiles/none",
                 "--max-ready-capacity", "1")
    assert result.exit_code != 0
    assert "ResourceNotFound" in result.output
    assert "Traceback" not in result.output
