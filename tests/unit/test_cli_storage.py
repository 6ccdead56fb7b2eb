"""``skiff storage account|share ...`` against the in-process app (a real store, fake share
disks): the az-style commands, their output (JSON, --query, tsv), the connection string
and the errors, through the CLI's own client on a transport that calls the ASGI app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from click.testing import CliRunner, Result

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.cli.main import main
from skiff.cli.storage import connection_string
from skiff.client import SkiffClient
from skiff.core.shares import ShareRef
from skiff.testing.inprocess import BASE, fake_plane

SUB = "sub-cli"


class PortalTransport(httpx.BaseTransport):
    """A synchronous transport that runs each request through the app's ASGI transport
    on the portal's event loop."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()

        async def send() -> httpx.Response:
            inner = httpx.Request(request.method, request.url, headers=request.headers,
                                  content=content)
            response = await self.asgi.handle_async_request(inner)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers,
                                  content=body)

        result: httpx.Response = self.portal.call(send)
        return result


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

        def invoke(*args: str, input: str | None = None) -> Result:
            return CliRunner().invoke(main, list(args), obj=factory, input=input)

        yield invoke


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if result.output.strip() else None


def test_account_commands(run: Any, plane: ControlPlane) -> None:
    made = ok(run("storage", "account", "create", "-n", "clistore", "-g", "rg", "-l", "local",
                  "--sku", "Standard_LRS", "--tags", "a=1", "b=2"))
    assert made["name"] == "clistore"
    assert made["resourceGroup"] == "rg"
    assert made["provisioningState"] == "Succeeded"
    assert made["kind"] == "StorageV2"
    assert made["sku"]["name"] == "Standard_LRS"
    assert made["tags"] == {"a": "1", "b": "2"}
    assert made["primaryEndpoints"]["file"] == "https://127.0.0.1:8444/clistore/"

    assert ok(run("storage", "account", "show", "-n", "clistore", "-g", "rg"))["id"] == made["id"]
    listed = run("storage", "account", "list", "--query", "[].name", "-o", "tsv")
    assert listed.exit_code == 0
    assert listed.output == "clistore\n"
    keys = ok(run("storage", "account", "keys", "list", "-n", "clistore"))
    assert [k["keyName"] for k in keys] == ["key1", "key2"]
    assert plane.storage is not None
    assert tuple(k["value"] for k in keys) == plane.storage.account_keys("clistore")

    conn = ok(run("storage", "account", "show-connection-string", "-n", "clistore"))
    assert conn["connectionString"] == (
        "DefaultEndpointsProtocol=https;AccountName=clistore;"
        f"AccountKey={keys[0]['value']};FileEndpoint=https://127.0.0.1:8444/clistore/")
    secondary = run("storage", "account", "show-connection-string", "-n", "clistore",
                    "--key", "secondary", "-o", "tsv")
    assert keys[1]["value"] in secondary.output

    ok(run("storage", "account", "delete", "-n", "clistore", "-g", "rg", "--yes"))
    gone = run("storage", "account", "show", "-n", "clistore", "-g", "rg")
    assert gone.exit_code == 3
    assert "ResourceNotFound" in gone.output


def test_share_commands(run: Any, plane: ControlPlane) -> None:
    ok(run("storage", "account", "create", "-n", "shares1", "-g", "rg", "-l", "local"))
    made = ok(run("storage", "share", "create", "--account-name", "shares1", "-n", "data",
                  "--quota", "3", "--metadata", "a=1", "b=2"))
    assert made["name"] == "data"
    assert made["shareQuota"] == 3
    assert made["metadata"] == {"a": "1", "b": "2"}
    assert made["resourceGroup"] == "rg"
    assert plane.storage is not None
    (plane.storage.root(ShareRef("shares1", "data")) / "f").write_bytes(b"1234")
    shown = ok(run("storage", "share", "show", "--account-name", "shares1", "-n", "data",
                   "-g", "rg", "--expand", "stats"))
    assert shown["shareUsageBytes"] == 4
    assert [s["name"] for s in ok(run("storage", "share", "list", "--account-name",
                                      "shares1"))] == ["data"]
    table = run("storage", "share", "list", "--account-name", "shares1", "-o", "table")
    assert table.exit_code == 0
    assert "data" in table.output
    ok(run("storage", "share", "delete", "--account-name", "shares1", "-n", "data", "-y"))
    assert ok(run("storage", "share", "list", "--account-name", "shares1")) == []


def test_errors(run: Any) -> None:
    bad = run("storage", "account", "create", "-n", "Bad_Name", "-g", "rg", "-l", "local")
    assert bad.exit_code == 1
    assert "AccountNameInvalid" in bad.output
    missing = run("storage", "share", "list", "--account-name", "nosuch")
    assert missing.exit_code == 3
    assert "nosuch" in missing.output
    ok(run("storage", "account", "create", "-n", "errs1", "-g", "rg", "-l", "local"))
    bad_share = run("storage", "share", "create", "--account-name", "errs1", "-n", "A--b")
    assert bad_share.exit_code == 1
    assert "InvalidResourceName" in bad_share.output
    refused = run("storage", "share", "delete", "--account-name", "errs1", "-n", "x",
                  input="n\n")
    assert refused.exit_code == 1
    assert "Aborted" in refused.output


def test_help_texts() -> None:
    for args in (["storage"], ["storage", "account"], ["storage", "account", "create"],
                 ["storage", "account", "keys", "list"], ["storage", "share"],
                 ["storage", "share", "create"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_connection_string_without_endpoint() -> None:
    assert connection_string({"name": "a"}, "k") == \
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k"


def test_no_data_plane_no_file_endpoint_and_no_connection_string(
        run: Any, plane: ControlPlane) -> None:
    """Where the node serves no Azure Files (skiff serve --files-listen none), an account
    answers no primaryEndpoints.file (as Azure leaves out a service an account lacks),
    and show-connection-string says so rather than give a string whose SDK would sign
    requests for Azure's public endpoint."""
    assert plane.storage is not None
    plane.storage.file_endpoint = lambda account: None
    made = ok(run("storage", "account", "create", "-n", "nofiles", "-g", "rg", "-l", "local"))
    assert made["primaryEndpoints"] == {}
    refused = run("storage", "account", "show-connection-string", "-n", "nofiles")
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("ERROR: (NoFileEndpoint) The storage account nofiles "
                                     "has no file endpoint"), refused.stderr
    assert "--files-listen none" in refused.stderr
    for key in plane.storage.account_keys("nofiles"):
        assert key not in refused.output
