"""``skiff standby-container-group-pool ...`` against the in-process app (a real store, the
fake engine, a profile table), through the CLI's own client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner, Result

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.inprocess import BASE, fake_plane
from skiff.testing.profiles import ProfileTable
from tests.unit.test_cli_storage import PortalTransport
from tests.unit.test_standby import group_of_profile

SUB = "sub-cli"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
        running.profiles = ProfileTable()
        yield running


@pytest.fixture
def run(plane: ControlPlane) -> Iterator[Any]:
    _, secret = plane.store.create_token(SUB, "cli")
    app = create_app(plane)
    with start_blocking_portal() as portal:
        transport = PortalTransport(portal, app)

        def factory() -> SkiffClient:
            return SkiffClient(BASE, secret, subscription=SUB, transport=transport)

        def invoke(*args: str) -> Result:
            return CliRunner().invoke(main, list(args), obj=factory)

        yield invoke


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if result.output.strip() else None


def test_pools_are_made_shown_counted_listed_and_deleted(plane: ControlPlane,
                                                         run: Any) -> None:
    """create prints the pool as az does (properties flattened, resourceGroup), status
    its runtime view, list and delete act on it; a bad capacity is refused by the CLI."""
    assert isinstance(plane.profiles, ProfileTable)
    profile = plane.profiles.add(SUB, "rg", "web", group_of_profile())
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
