"""``skiff ad sp`` and ``skiff role`` against the real API (the fake engine's plane, served
over loopback HTTPS): az's output and flags, errors as az prints them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.inprocess import FakeHttps, fake_https

SUB = "00000000-0000-0000-0000-0000000000c1"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeHttps]:
    with fake_https(tmp_path / "root") as running:
        yield running


@pytest.fixture
def admin(server: FakeHttps) -> str:
    return server.plane.store.create_token(None, "admin")[1]


def run(server: FakeHttps, token: str, *args: str) -> Result:
    def factory() -> SkiffClient:
        return SkiffClient(server.url, token, ca=str(server.ca), subscription=SUB)

    return CliRunner().invoke(main, list(args), obj=factory)


def out(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_for_rbac_prints_what_az_prints(server: FakeHttps, admin: str) -> None:
    """appId, displayName, password, tenant in az's order; the role assignment and the
    warning on stderr; the principal signs in with the password."""
    result = run(server, admin, "ad", "sp", "create-for-rbac", "--name", "ci", "--role",
                 "Reader", "--scopes", RG_SCOPE)
    made = out(result)
    assert list(made) == ["appId", "displayName", "password", "tenant"]
    assert made["tenant"] == server.plane.store.tenant_id()
    assert f"Creating 'Reader' role assignment under scope '{RG_SCOPE}'" in result.stderr
    assert "credentials that you must protect" in result.stderr
    assert server.plane.store.check_secret(made["appId"], made["password"]) is not None
    listed = out(run(server, admin, "ad", "sp", "list"))
    assert [p["appId"] for p in listed] == [made["appId"]]
    reset = out(run(server, admin, "ad", "sp", "credential", "reset", "--id", made["appId"]))
    assert list(reset) == ["appId", "password", "tenant"]
    assert server.plane.store.check_secret(made["appId"], made["password"]) is None
    assert run(server, admin, "ad", "sp", "delete", "--id", made["appId"]).exit_code == 0
    gone = run(server, admin, "ad", "sp", "show", "--id", made["appId"])
    assert gone.exit_code == 3
    assert "ServicePrincipalNotFound" in gone.stderr


def test_role_assignments_as_az_role(server: FakeHttps, admin: str) -> None:
    """create (the role by name), list at the scope (az's flattened shape, the role's
    name added), delete by assignee and role."""
    made = out(run(server, admin, "ad", "sp", "create-for-rbac", "--name", "ci"))
    created = out(run(server, admin, "role", "assignment", "create", "--assignee",
                      made["appId"], "--role", "contributor", "--scope", RG_SCOPE))
    assert created["roleDefinitionName"] == "Contributor"
    assert created["scope"] == RG_SCOPE
    assert created["resourceGroup"] == "rg"
    listed = out(run(server, admin, "role", "assignment", "list", "--scope", RG_SCOPE))
    assert [(a["principalId"], a["roleDefinitionName"]) for a in listed] == [
        (created["principalId"], "Contributor")]
    assert out(run(server, admin, "role", "assignment", "list")) == []  # the subscription
    assert len(out(run(server, admin, "role", "assignment", "list", "--all"))) == 1
    deleted = run(server, admin, "role", "assignment", "delete", "--assignee", made["appId"],
                  "--role", "Contributor", "--scope", RG_SCOPE)
    assert deleted.exit_code == 0, deleted.output
    assert out(run(server, admin, "role", "assignment", "list", "--all")) == []
    roles = out(run(server, admin, "role", "definition", "list", "--query", "[].roleName"))
    assert sorted(roles) == ["Contributor", "Owner", "Reader"]


def test_errors_are_azs_lines(server: FakeHttps, admin: str) -> None:
    """A subscription's token may not manage principals (403, one ERROR line); an
    unknown role and --scopes without --role are refused before anything is made."""
    bound = server.plane.store.create_token(SUB, "bound")[1]
    refused = run(server, bound, "ad", "sp", "create-for-rbac", "--name", "x")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("ERROR: (AuthorizationFailed)")
    unknown = run(server, admin, "ad", "sp", "create-for-rbac", "--name", "x", "--role",
                  "Superuser", "--scopes", RG_SCOPE)
    assert unknown.exit_code == 1
    assert "RoleDefinitionDoesNotExist" in unknown.stderr
    usage = run(server, admin, "ad", "sp", "create-for-rbac", "--name", "x", "--scopes",
                RG_SCOPE)
    assert usage.exit_code == 1
    assert server.plane.store.list_principals() == []


def test_role_assignments_at_the_root_scope(server: FakeHttps, admin: str) -> None:
    """``--scope /``: the admin creates, lists (at '/', and inherited under the
    subscription with --include-inherited) and deletes; a subscription's token is refused
    with ARM's AuthorizationFailed."""
    made = out(run(server, admin, "ad", "sp", "create-for-rbac", "--name", "ci"))
    created = out(run(server, admin, "role", "assignment", "create", "--assignee",
                      made["appId"], "--role", "Reader", "--scope", "/"))
    assert (created["scope"], created["roleDefinitionName"]) == ("/", "Reader")
    assert created["id"].startswith("/providers/Microsoft.Authorization/roleAssignments/")
    listed = out(run(server, admin, "role", "assignment", "list", "--scope", "/"))
    assert [a["id"] for a in listed] == [created["id"]]
    assert out(run(server, admin, "role", "assignment", "list")) == []  # not at the sub
    [inherited] = out(run(server, admin, "role", "assignment", "list", "--include-inherited"))
    assert inherited["roleDefinitionId"] == (f"/subscriptions/{SUB}/providers/Microsoft."
                                             "Authorization/roleDefinitions/"
                                             "acdd72a7-3d97-46b9-8ea0-e9b62cb98f8c")
    bound = server.plane.store.create_token(SUB, "bound")[1]
    refused = run(server, bound, "role", "assignment", "list", "--scope", "/")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("ERROR: (AuthorizationFailed)")
    assert "over scope '/'" in refused.stderr
    deleted = run(server, admin, "role", "assignment", "delete", "--assignee", made["appId"],
                  "--scope", "/")
    assert deleted.exit_code == 0, deleted.output
    assert out(run(server, admin, "role", "assignment", "list", "--scope", "/")) == []
