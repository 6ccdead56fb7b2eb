"""``skiff identity ...`` and ``skiff container create --assign-identity`` against the
in-process app (a real store, the fake engine), through the CLI's own client."""

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
from skiff.cli.bodies import identity_body
from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.inprocess import BASE, fake_plane
from tests.unit.test_cli_storage import PortalTransport

SUB = "sub-cli"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    with fake_plane(tmp_path) as running:
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


def test_identities_are_made_shown_listed_and_deleted_as_az_prints_them(run: Any) -> None:
    made = ok(run("identity", "create", "-n", "worker", "-g", "rg", "--tags", "team=a b"))
    assert made["name"] == "worker"
    assert made["resourceGroup"] == "rg"
    assert made["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert made["tags"] == {"team": "a", "b": ""}
    assert {"clientId", "principalId", "tenantId"} <= set(made)
    shown = ok(run("identity", "show", "-n", "worker", "-g", "rg"))
    assert shown["principalId"] == made["principalId"]
    assert run("identity", "show", "-n", "worker", "-g", "rg", "--query", "clientId",
               "-o", "tsv").output.strip() == made["clientId"]
    assert [i["name"] for i in ok(run("identity", "list"))] == ["worker"]
    assert ok(run("identity", "list", "-g", "other")) == []
    ok(run("identity", "delete", "-n", "worker", "-g", "rg"))
    missing = run("identity", "show", "-n", "worker", "-g", "rg")
    assert missing.exit_code != 0
    assert "ResourceNotFound" in missing.output


def test_assign_identity_gives_a_group_its_identities(run: Any) -> None:
    """The flag alone: a system identity; with ids: those, [system] beside them: both."""
    uai = ok(run("identity", "create", "-n", "worker", "-g", "rg"))
    alone = ok(run("container", "create", "-g", "rg", "-n", "sys", "--image", "busybox",
                   "--assign-identity"))
    assert alone["identity"]["type"] == "SystemAssigned"
    assert alone["identity"]["principalId"]
    both = ok(run("container", "create", "-g", "rg", "-n", "both", "--image", "busybox",
                  "--assign-identity", "[system]", uai["id"], "--cpu", "0.5"))
    assert both["identity"]["type"] == "SystemAssigned, UserAssigned"
    assert both["identity"]["userAssignedIdentities"][uai["id"]]["clientId"] == uai["clientId"]


def test_identity_bodies_are_built_as_az_builds_them() -> None:
    assert identity_body(("[system]",)) == {"type": "SystemAssigned"}
    assert identity_body(("/x/a", "/x/a")) == {"type": "UserAssigned",
                                               "userAssignedIdentities": {"/x/a": {}}}
    assert identity_body(("[SYSTEM] /x/a",))["type"] == "SystemAssigned, UserAssigned"
